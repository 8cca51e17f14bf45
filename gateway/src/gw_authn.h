/* gw_authn.h - authentication of public requests at the gateway.
 *
 * Turns the request's credentials into a verified principal:
 *   Authorization: Bearer <access JWT>  - verified with the public key alone
 *     (lc_jwt_verify: pinned EdDSA, exact header, iss/aud/typ/exp/iat), then
 *     checked against the revocation state (revoked jti, user not-before);
 *     a token verified before is taken from gw_jwtcache (claims only: the
 *     expiry and the revocation state are checked on every request);
 *     identity {user_id = sub, role, scope "full"}.
 *   Authorization: ApiKey <key>  or  X-API-Key: <key>  - resolved through
 *     gw_keycache (auth-svc verify + short cache); identity {user_id = owner_id,
 *     role = owner_role, scope = key scope}.
 * Exactly one credential: several Authorization headers, or an
 * Authorization header and an X-API-Key header, are refused. Cookies are
 * never a credential here (the refresh cookie is auth-svc's business).
 * Thread-safe: the context is read-only after init (rv/keys lock inside). */
#ifndef GW_AUTHN_H
#define GW_AUTHN_H

#include <stdint.h>
#include <ulfius.h>
#include "gw_jwtcache.h"
#include "gw_keys.h"
#include "gw_revoke.h"
#include "lc/err.h"
#include "lc/iauth.h"

typedef struct {
  uint8_t jwt_pk[32];
  const char *issuer;   /* borrowed from config */
  const char *audience; /* borrowed from config */
  int64_t leeway_s;
  gw_revoke *rv;        /* NULL = no revocation checks (unit tests) */
  gw_keycache *keys;        /* NULL = API keys refused */
  gw_jwtcache *jwtc;        /* NULL = verify every token (no cache) */
} gw_authn_ctx;

typedef struct {
  lc_identity id;
  int is_key;       /* 1 = API key, 0 = session JWT */
  char jti[37];     /* session: token id */
  int64_t iat, exp; /* session: issued-at / expiry (unix s) */
  gw_key_info key;  /* API key: what auth-svc said */
} gw_principal;

/* Verifies the credential. authz = the Authorization header value (NULL when
 * absent), api_key = the X-API-Key header value (NULL when absent).
 * Returns LC_OK with *p filled; LC_ERR_UNAUTH (missing/invalid/expired/
 * revoked/ambiguous; err says why without echoing the credential);
 * LC_ERR_UNAVAIL when an API key could not be checked (auth-svc down). */
int gw_authn_credentials(const gw_authn_ctx *ctx, const char *authz, const char *api_key,
                         int64_t now_s, int64_t now_ms, gw_principal *p, char err[LC_ERR_LEN]);

/* Bearer-only form kept for callers that have just a header: like
 * gw_authn_credentials(ctx, header, NULL, ...) but fills only *id. */
int gw_authn_verify(const gw_authn_ctx *ctx, const char *header, int64_t now_s,
                    lc_identity *id, char err[LC_ERR_LEN]);

/* Extracts the Authorization and X-API-Key headers from req (values
 * borrowed, NULL when absent). Several of one kind -> LC_ERR_UNAUTH. */
int gw_authn_headers(const struct _u_request *req, const char **authz, const char **api_key,
                     char err[LC_ERR_LEN]);

/* 1 when the query string (raw, without '?', may be NULL) carries something
 * that looks like a credential: a parameter named api_key, apikey, api-key,
 * key, access_token, token or jwt, or any value starting with "sk_" or
 * "eyJ" (a JWT). Keys are never accepted in the query string: such a
 * request is refused with 400 before anything else happens. */
int gw_authn_query_has_credential(const char *query);

#endif
