/* gw_proxy.h - forwarding of a verified public request to the owning daemon.
 *
 * The request line (method, path and query exactly as received), body and a
 * short allow-list of headers are forwarded over HTTP with the caller's
 * identity signed by lc_iauth (INTERNAL_SECRET). The daemon's status, body and
 * an allow-list of response headers come back. Thread-safe (lc_http keeps a
 * CURL handle per thread). */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <ulfius.h>
#include "lc/err.h"
#include "lc/iauth.h"

typedef struct {
  const char *name;      /* "auth-svc", for logs */
  const char *base_url;  /* "http://127.0.0.1:21001", no trailing slash */
  const uint8_t *secret; /* INTERNAL_SECRET bytes (borrowed) */
  size_t secret_len;
  long timeout_ms;
  size_t max_resp;       /* cap on the upstream body */
  struct gw_pool *pool;  /* instances (gw_upstream.h); NULL = base_url only */
} gw_upstream;

/* Forwards req to up as identity id and writes the upstream's answer into
 * resp. pass_cookie: forward the Cookie header (auth routes only).
 * Returns LC_OK when an answer was relayed (any status), LC_ERR_IO /
 * LC_ERR_TIMEOUT / LC_ERR_TOO_LARGE when the upstream could not be used
 * (resp untouched; the caller answers 502/503/504). */
int gw_proxy_forward(const gw_upstream *up, const struct _u_request *req, const lc_identity *id,
                     int pass_cookie, struct _u_response *resp, char err[LC_ERR_LEN]);

/* Same, with the client address to sign as X-Client-IP (NULL = the socket
 * peer; id->client_ip is overwritten) and extra "Name: value" lines set by the
 * gateway itself (NULL-terminated, may be NULL; NOT covered by the signature,
 * so never identity: the session's jti/exp travel in id->jti / id->exp,
 * which lc_iauth signs). The client's Content-Type and Idempotency-Key are
 * forwarded and signed (a value lc_iauth refuses -> LC_ERR_PARAM). Client
 * headers are never forwarded except the allow-list, so a client-sent
 * X-Auth-* / X-Internal-* / X-Client-IP never reaches a daemon. */
int gw_proxy_forward_ex(const gw_upstream *up, const struct _u_request *req,
                        const lc_identity *id, int pass_cookie, const char *client_ip,
                        const char *const *extra, struct _u_response *resp,
                        char err[LC_ERR_LEN]);

/* Client IP (from the socket) as text into out; "unknown" when not available. */
void gw_proxy_client_ip(const struct _u_request *req, char *out, size_t outsz);

#endif
