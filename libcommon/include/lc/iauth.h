/* iauth.h - authentication of internal (daemon-to-daemon) requests.
 *
 * The gateway, after verifying a JWT or API key, forwards the caller's
 * identity in headers signed with INTERNAL_SECRET:
 *   X-Request-Id, X-Auth-User, X-Auth-Role, X-Auth-Scope, X-Auth-Ts, X-Auth-Sig
 * X-Auth-Sig = hex(HMAC-SHA256(secret, canonical)) where canonical is
 *   "v1\n" METHOD "\n" PATH_AND_QUERY "\n" user "\n" role "\n" scope "\n"
 *   request_id "\n" ts "\n" hex(SHA-256(body))
 * Daemons accept a request only with a valid signature and |now-ts| <= skew;
 * otherwise 401. Anonymous calls (signup/login) carry user "" and role "anon".
 *
 * secret/secret_len everywhere below: the bytes of the INTERNAL_SECRET string exactly as
 * configured (the hex text itself, NOT hex-decoded), i.e. (const uint8_t *)s, strlen(s). */
#ifndef LC_IAUTH_H
#define LC_IAUTH_H

#include <stddef.h>
#include <stdint.h>
#include <ulfius.h>
#include "lc/err.h"
#include "lc/http.h"

typedef struct {
  char user_id[37];    /* UUID or "" for anonymous */
  char role[16];       /* "admin" | "user" | "service" | "anon" | "system" */
  char scope[16];      /* "full" for JWT sessions, "read"|"write"|"admin" for API keys, "" */
  char request_id[64];
} lc_identity;

#define LC_IAUTH_NHDR 6
typedef struct {
  char line[LC_IAUTH_NHDR][160]; /* "Name: value" */
  const char *ptr[LC_IAUTH_NHDR + 1]; /* NULL-terminated pointers into line[] */
} lc_iauth_headers;

/* Computes the signed identity headers for one request. Lines are libcurl
 * header strings: an empty value (anonymous user, empty scope) is written
 * "Name;" which libcurl sends as "Name:" with an empty value (a plain
 * "Name:" would make libcurl drop the header). Returns LC_ERR_PARAM for an
 * invalid method/path/identity (user not "" or a UUID, unknown role, scope
 * not [a-z]{0,15}, request id not [A-Za-z0-9._:-]{0,63}). */
int lc_iauth_sign(const uint8_t *secret, size_t secret_len, const char *method,
                  const char *path_query, const lc_identity *id, const void *body,
                  size_t body_len, int64_t now_s, lc_iauth_headers *out);

/* Verifies a request received by a daemon; fills *out on success.
 * Returns LC_OK or LC_ERR_UNAUTH (err says why, without secrets). */
int lc_iauth_verify(const struct _u_request *req, const uint8_t *secret, size_t secret_len,
                    int max_skew_s, int64_t now_s, lc_identity *out, char err[LC_ERR_LEN]);

/* Context for the middleware below; the secret must outlive the instance. */
typedef struct {
  const uint8_t *secret;
  size_t secret_len;
  int max_skew_s;
} lc_iauth_ctx;

/* ulfius callback (user_data = lc_iauth_ctx*): GET /healthz, /readyz and
 * /metrics pass through unchecked (CONTRACTS.md), so it may be registered on
 * "*" "*". Otherwise verifies (path = request->http_url, the raw path+query
 * as received), sets the thread's log
 * request id, stores a new lc_identity copy as response shared data (freed by
 * ulfius) and returns U_CALLBACK_CONTINUE; otherwise sends 401 problem+json
 * and returns U_CALLBACK_COMPLETE. Register at priority LC_PRIO_AUTH. */
int lc_iauth_callback(const struct _u_request *req, struct _u_response *resp, void *user_data);

/* Identity stored by lc_iauth_callback (borrowed), or NULL. */
const lc_identity *lc_iauth_identity(const struct _u_response *resp);

/* Signs and sends an internal request: base_url + path_query, JSON body (may
 * be NULL), as identity id. extra_headers (NULL-terminated, may be NULL) are
 * added (e.g. "Idempotency-Key: ..."). */
int lc_iauth_call(const uint8_t *secret, size_t secret_len, const char *base_url,
                  const char *method, const char *path_query, const lc_identity *id,
                  const char *const *extra_headers, const char *body, size_t body_len,
                  long timeout_ms, lc_http_resp *resp, char err[LC_ERR_LEN]);

#endif
