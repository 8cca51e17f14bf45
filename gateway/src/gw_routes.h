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
#include "gw_ratelimit.h"
#include "lc/err.h"

typedef enum { GW_UP_AUTH = 0, GW_UP_CREDIT, GW_UP_STORAGE, GW_UP_CHAIN, GW_UP_COUNT } gw_up_id;
typedef enum { GW_ACCESS_PUBLIC = 0, GW_ACCESS_USER, GW_ACCESS_ADMIN } gw_access;

/* What an API key (SPEC §3 scopes) may do on a route:
 *   GW_KEYS_NONE  - sessions (JWT) only, never an API key
 *   GW_KEYS_READ  - keys with scope read or admin
 *   GW_KEYS_WRITE - keys with scope write or admin
 *   GW_KEYS_ONLY  - API keys only (read or admin scope), no session */
typedef enum { GW_KEYS_NONE = 0, GW_KEYS_READ, GW_KEYS_WRITE, GW_KEYS_ONLY } gw_keys;

/* Rate-limit class of a route (gw_ratelimit): which buckets a request takes
 * a token from. IP = client address (socket, or the trusted proxy's last
 * X-Forwarded-For hop); account = the email in a login body, the refresh
 * token (body or cookie), or the verified user. */
typedef enum {
  GW_RL_NONE = 0,
  GW_RL_SIGNUP,   /* per IP */
  GW_RL_LOGIN,    /* per IP + per email */
  GW_RL_REFRESH,  /* per IP + per refresh token */
  GW_RL_PASSWORD, /* per IP + per user (login's limits: guesses of the current password) */
  GW_RL_CHECKOUT, /* per IP + per user */
  GW_RL_WEBHOOK,  /* per IP, a separate generous bucket (provider traffic) */
  GW_RL_COUNT
} gw_rl_class;

typedef struct {
  const char *method;
  const char *path;   /* ulfius url format, ":x" = one segment */
  gw_up_id up;
  gw_access access;
  gw_keys keys;
  int pass_cookie;    /* forward the Cookie header (refresh / OAuth state cookies) */
  gw_rl_class rl;
  int ends_session;   /* a 2xx answer ends the caller's session: the gateway that relayed it
                         revokes the session's token locally before answering (logout) */
} gw_route;

/* Limits per class: ip and account (account.n == 0: no per-account limit). */
typedef struct {
  gw_rl_limit ip;
  gw_rl_limit account;
} gw_rl_rule;

typedef struct {
  gw_authn_ctx authn;
  gw_upstream up[GW_UP_COUNT];
  gw_rl *rl;                     /* NULL = no rate limits */
  gw_rl_rule rules[GW_RL_COUNT];
  const char *trusted_proxy;     /* NULL/"" = none */
  int (*revocations_loaded)(void *ud); /* NULL = always loaded */
  void *revocations_ud;
  int require_revocations;       /* 1 = 503 on authenticated routes until loaded */
} gw_ctx;

/* The checks every forwarded request passes, in cb_dispatch's order:
 * credentials in the query (400), per-IP rate limit (429), authentication
 * (401/503), authorisation (403), per-account rate limit (429). Returns
 * U_CALLBACK_CONTINUE with *p (identity to sign, session jti/exp) and ip
 * (the client address to sign) filled; otherwise resp holds the answer and
 * the return value is the callback status. */
int gw_routes_admit(const gw_route *r, const gw_ctx *ctx, const struct _u_request *req,
                    struct _u_response *resp, gw_principal *p, char *ip, size_t ipsz);

/* Request id (X-Request-Id, the log's request id) and security headers;
 * U_CALLBACK_CONTINUE, or 400 for a target with an encoded NUL. */
int gw_routes_security_headers(const struct _u_request *req, struct _u_response *resp);

/* The static route table (borrowed). */
const gw_route *gw_routes_table(size_t *n);

/* Registers every route of the table plus the security-header middleware on
 * inst. ctx must outlive the instance. */
int gw_routes_register(struct _u_instance *inst, const gw_ctx *ctx, char err[LC_ERR_LEN]);

/* Decides whether identity id may call route r: LC_OK, LC_ERR_UNAUTH or
 * LC_ERR_FORBIDDEN. A session is scope "full"; anything else is an API key
 * (scope read|write|admin, role = the owner's role). Rules:
 *   public route            -> anyone;
 *   no user                 -> LC_ERR_UNAUTH;
 *   session on a KEYS_ONLY route, key on a KEYS_NONE route -> forbidden;
 *   key scope: READ needs read|admin, WRITE needs write|admin, ONLY needs
 *     read|admin;
 *   admin route: role admin, and for a key also scope admin (a key never
 *     exceeds its owner, and read/write keys are for user-level calls);
 *   user route: role user, admin or service. */
int gw_routes_authorize(const gw_route *r, const lc_identity *id);

/* The per-account rate-limit key of a request of class cls (written into
 * out; "" = none): login -> the lower-cased email of the JSON body;
 * refresh -> hex SHA-256 of the refresh token (body "refresh_token" or the
 * __Host-refresh cookie); password/checkout -> user_id. body may be NULL. */
void gw_routes_account_key(gw_rl_class cls, const char *body, size_t body_len,
                           const char *cookie_header, const char *user_id, char *out,
                           size_t outsz);

#endif
