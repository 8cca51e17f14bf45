/* iauth.h - authentication of internal (daemon-to-daemon) requests.
 *
 * The gateway, after verifying a JWT or API key, forwards the caller's
 * identity in headers signed with INTERNAL_SECRET:
 *   X-Request-Id, X-Auth-User, X-Auth-Role, X-Auth-Scope, X-Auth-Ts,
 *   X-Auth-Nonce, X-Auth-Sig, and only when set: X-Auth-Jti, X-Auth-Exp,
 *   X-Client-IP
 * X-Auth-Sig = hex(HMAC-SHA256(secret, canonical)) where canonical (v2) is
 *   "v2\n" METHOD "\n" PATH_AND_QUERY "\n" user "\n" role "\n" scope "\n"
 *   request_id "\n" ts "\n" nonce "\n" hex(SHA-256(body)) "\n"
 *   content_type "\n" idempotency_key "\n" client_ip "\n" jti "\n" exp
 * Every value is the header's text exactly as sent ("" when the header is
 * absent); content_type / idempotency_key are the request's Content-Type and
 * Idempotency-Key headers, so neither can be added, removed or changed after
 * signing. Value rules (checked by sign and verify; a header that is present
 * but empty is rejected):
 *   user ""|UUID; role admin|user|service|anon|system; scope [a-z]{0,15};
 *   request_id [A-Za-z0-9._:-]{0,63}; ts decimal seconds; nonce 32 lowercase
 *   hex (16 random bytes per signing); content_type and idempotency_key
 *   1..LC_IAUTH_HVAL_MAX printable ASCII (0x20-0x7e), no leading/trailing
 *   space; client_ip [0-9A-Za-z.:]{1,45}; jti [A-Za-z0-9._:-]{1,36};
 *   exp decimal 1..INT64_MAX (0 = absent).
 * Daemons accept a request only with a valid signature, |now-ts| <= skew
 * (default LC_IAUTH_SKEW_S) and a nonce not seen before within the skew
 * window (replay cache, see lc_iauth_replay_*); otherwise 401 (503 when the
 * replay cache is full). Anonymous calls (signup/login) carry user "" and
 * role "anon".
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

#define LC_IAUTH_SKEW_S 30          /* default allowed |now - ts| in seconds */
#define LC_IAUTH_REPLAY_CAP 1000000 /* default nonce cache capacity (entries) */
#define LC_IAUTH_HVAL_MAX 255       /* Content-Type / Idempotency-Key length cap */

typedef struct {
  char user_id[37];    /* UUID or "" for anonymous */
  char role[16];       /* "admin" | "user" | "service" | "anon" | "system" */
  char scope[16];      /* "full" for JWT sessions, "read"|"write"|"admin" for API keys, "" */
  char request_id[64];
  char jti[37];        /* session token id (gateway, JWT sessions) or "" */
  int64_t exp;         /* session token expiry (unix s) or 0 = none */
  char client_ip[46];  /* client address as the gateway saw it, or "" */
} lc_identity;

#define LC_IAUTH_NHDR 10 /* at most this many signed header lines */
typedef struct {
  char line[LC_IAUTH_NHDR][160]; /* "Name: value" */
  const char *ptr[LC_IAUTH_NHDR + 1]; /* NULL-terminated pointers into line[] */
  int count;                          /* lines used (ptr[count] == NULL) */
} lc_iauth_headers;

/* Computes the signed identity headers for one request. content_type and
 * idempotency_key are the exact values of the Content-Type and
 * Idempotency-Key headers the caller will send (NULL = not sent); the caller
 * sends those headers itself. Lines are libcurl header strings: an empty
 * value (anonymous user, empty scope) is written "Name;" which libcurl sends
 * as "Name:" with an empty value (a plain "Name:" would make libcurl drop the
 * header). X-Auth-Jti / X-Auth-Exp / X-Client-IP are emitted only when
 * id->jti / id->exp / id->client_ip are set. A fresh random nonce per call.
 * Returns LC_ERR_PARAM for an invalid method/path/identity/header value (see
 * the value rules above). */
int lc_iauth_sign(const uint8_t *secret, size_t secret_len, const char *method,
                  const char *path_query, const lc_identity *id, const void *body,
                  size_t body_len, const char *content_type, const char *idempotency_key,
                  int64_t now_s, lc_iauth_headers *out);

/* Unsigned payload (streamed uploads only). The gateway forwards POST
 * /v1/files while the body is still arriving, so it cannot hash it first.
 * lc_iauth_sign_unsigned puts the marker
 *   "UNSIGNED-PAYLOAD:" content_length      (decimal, "" when chunked)
 * in the canonical string where hex(SHA-256(body)) stands; everything else
 * (method, path, identity, ts, nonce, Content-Type, Idempotency-Key, client
 * IP, session) stays signed, and the length binds the body's size (HTTP
 * framing ends the body there). lc_iauth_verify_unsigned rebuilds the marker
 * from the received Content-Length. A daemon calls it ONLY on its streaming
 * upload route (storage-svc POST /v1/files); every other route verifies with
 * lc_iauth_verify, where a marker never matches a body hash.
 * Trade-off: whoever can write into the gateway -> storage-svc connection
 * during the signature's lifetime could swap the bytes of that one upload
 * (not its identity, route, headers or length; the nonce stops replays).
 * storage-svc still sniffs, sizes and hashes what it receives, and the
 * internal network is trusted for confidentiality already (plain HTTP). */
#define LC_IAUTH_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD:"
/* content_length: the Content-Length the caller sends, or -1 for chunked. */
int lc_iauth_sign_unsigned(const uint8_t *secret, size_t secret_len, const char *method,
                           const char *path_query, const lc_identity *id,
                           int64_t content_length, const char *content_type,
                           const char *idempotency_key, int64_t now_s, lc_iauth_headers *out);

/* Replay cache: a thread-safe bounded set of nonces, each remembered until
 * its expiry (signed ts + skew); a hash set over a ring in arrival order,
 * O(1) per check. */
typedef struct lc_iauth_replay lc_iauth_replay;

/* New cache of capacity entries (1..2^31); NULL on a bad capacity. */
lc_iauth_replay *lc_iauth_replay_new(size_t capacity);
void lc_iauth_replay_free(lc_iauth_replay *r);
/* Records nonce (16 bytes) until expires_s. First evicts, oldest first,
 * entries whose expiry is < now_s. Returns LC_OK (new nonce, recorded),
 * LC_ERR_CONFLICT (already present: a replay) or LC_ERR_UNAVAIL (full of
 * unexpired entries: fail closed). */
int lc_iauth_replay_check(lc_iauth_replay *r, const uint8_t nonce[16], int64_t expires_s,
                          int64_t now_s);
/* Entries currently held. */
size_t lc_iauth_replay_count(lc_iauth_replay *r);
/* The process-wide cache used when lc_iauth_ctx.replay is NULL, created on
 * first use with capacity LC_IAUTH_REPLAY_CAP, or with capacity when
 * lc_iauth_replay_default_init(capacity) ran first (later calls: LC_ERR). */
int lc_iauth_replay_default_init(size_t capacity);
lc_iauth_replay *lc_iauth_replay_default(void);

/* Context for verification; the secret (and replay, if set) must outlive it. */
typedef struct {
  const uint8_t *secret;
  size_t secret_len;
  int max_skew_s;          /* <= 0: LC_IAUTH_SKEW_S */
  lc_iauth_replay *replay; /* NULL: the process-wide cache (lc_iauth_replay_default) */
} lc_iauth_ctx;

/* Verifies a request received by a daemon (path = request->http_url, the raw
 * path+query as received); fills *out (identity, jti, exp, client_ip) on
 * success. The nonce is recorded only for a request whose signature and
 * timestamp are valid. Returns LC_OK, LC_ERR_UNAUTH (err says why, without
 * secrets; a replay says "replayed") or LC_ERR_UNAVAIL (replay cache full). */
int lc_iauth_verify(const struct _u_request *req, const lc_iauth_ctx *ctx, int64_t now_s,
                    lc_identity *out, char err[LC_ERR_LEN]);

/* lc_iauth_verify for a request signed by lc_iauth_sign_unsigned (the body
 * is not hashed; req's body is ignored). Streaming upload routes only. */
int lc_iauth_verify_unsigned(const struct _u_request *req, const lc_iauth_ctx *ctx,
                             int64_t now_s, lc_identity *out, char err[LC_ERR_LEN]);

/* ulfius callback (user_data = lc_iauth_ctx*): GET /healthz, /readyz and
 * /metrics pass through unchecked (CONTRACTS.md), so it may be registered on
 * "*" "*". Otherwise verifies, sets the thread's log request id, stores a new
 * lc_identity copy as response shared data (freed by ulfius) and returns
 * U_CALLBACK_CONTINUE; otherwise sends 401 problem+json (503 when the replay
 * cache is full) and returns U_CALLBACK_COMPLETE. A request that already
 * carries a verified identity (the callback registered twice on matching
 * routes) is passed on without a second check. Register at priority
 * LC_PRIO_AUTH. */
int lc_iauth_callback(const struct _u_request *req, struct _u_response *resp, void *user_data);

/* Identity stored by lc_iauth_callback (borrowed), or NULL. */
const lc_identity *lc_iauth_identity(const struct _u_response *resp);

/* Signs and sends an internal request: base_url + path_query, JSON body (may
 * be NULL), as identity id. extra_headers (NULL-terminated, may be NULL) are
 * added (e.g. "Idempotency-Key: ..."); a Content-Type or Idempotency-Key
 * among them is signed (and replaces the default "Content-Type:
 * application/json" sent with a body). */
int lc_iauth_call(const uint8_t *secret, size_t secret_len, const char *base_url,
                  const char *method, const char *path_query, const lc_identity *id,
                  const char *const *extra_headers, const char *body, size_t body_len,
                  long timeout_ms, lc_http_resp *resp, char err[LC_ERR_LEN]);

#endif
