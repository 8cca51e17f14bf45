/* gw_routes.h - the gateway's public route table and its one dispatch callback.
 *
 * Every public route is one row: method, ulfius path, owning daemon, who may
 * call it. The dispatcher authenticates (gw_authn), authorises (role), then
 * forwards (gw_proxy). Adding a route = adding a row. */
#ifndef GW_ROUTES_H
#define GW_ROUTES_H

#include <stddef.h>
#include <ulfius.h>
#include "gw_authn.h"
#include "gw_proxy.h"
#include "lc/err.h"

typedef enum { GW_UP_AUTH = 0, GW_UP_CREDIT, GW_UP_STORAGE, GW_UP_CHAIN, GW_UP_COUNT } gw_up_id;
typedef enum { GW_ACCESS_PUBLIC = 0, GW_ACCESS_USER, GW_ACCESS_ADMIN } gw_access;

/* What an API key (SPEC §3 scopes) may do on a route:
 *   GW_KEYS_NONE  - sessions (JWT) only, never an API key
 *   GW_KEYS_READ  - keys with scope read or admin
 *   GW_KEYS_WRITE - keys with scope write or admin
 *   GW_KEYS_ONLY  - API keys only (read or admin scope), no session */
typedef enum { GW_KEYS_NONE = 0, GW_KEYS_READ, GW_KEYS_WRITE, GW_KEYS_ONLY } gw_keys;

typedef struct {
  const char *method;
  const char *path;   /* ulfius url format, ":x" = one segment */
  gw_up_id up;
  gw_access access;
  gw_keys keys;
  int pass_cookie;    /* forward the Cookie header (refresh / OAuth state cookies) */
} gw_route;

typedef struct {
  gw_authn_ctx authn;
  gw_upstream up[GW_UP_COUNT];
} gw_ctx;

/* The static route table (borrowed). */
const gw_route *gw_routes_table(size_t *n);

/* Registers every route of the table plus the security-header middleware on
 * inst. ctx must outlive the instance. */
int gw_routes_register(struct _u_instance *inst, const gw_ctx *ctx, char err[LC_ERR_LEN]);

/* Decides whether identity id may call route r: LC_OK, LC_ERR_UNAUTH or LC_ERR_FORBIDDEN. */
int gw_routes_authorize(const gw_route *r, const lc_identity *id);

#endif
