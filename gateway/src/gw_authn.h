/* gw_authn.h - authentication of public requests at the gateway.
 *
 * Turns the request's credentials into a verified lc_identity. Bearer access
 * JWTs are verified with the public key alone (lc_jwt_verify: pinned EdDSA,
 * iss/aud/typ/exp/iat). Thread-safe: the context is read-only after init. */
#ifndef GW_AUTHN_H
#define GW_AUTHN_H

#include <stdint.h>
#include <ulfius.h>
#include "lc/err.h"
#include "lc/iauth.h"

typedef struct {
  uint8_t jwt_pk[32];
  const char *issuer;   /* borrowed from config */
  const char *audience; /* borrowed from config */
  int64_t leeway_s;
} gw_authn_ctx;

/* Parses the Authorization header value and verifies it.
 * header: the single Authorization header value (NULL when absent).
 * Returns LC_OK with *id filled (user_id, role, scope "full"), or
 * LC_ERR_UNAUTH with err saying why (safe to show; no token echoed). */
int gw_authn_verify(const gw_authn_ctx *ctx, const char *header, int64_t now_s,
                    lc_identity *id, char err[LC_ERR_LEN]);

/* Extracts the Authorization header from req (several -> error).
 * *value is borrowed from the request or NULL when there is none. */
int gw_authn_header(const struct _u_request *req, const char **value, char err[LC_ERR_LEN]);

#endif
