/* oauth_crypto.h - pure building blocks of the OAuth login flows (no I/O):
 * random state / PKCE / nonce / browser-binding values, the PKCE S256
 * challenge (RFC 7636), hashes stored in place of bearer values, URL rules
 * and encoding, RSA-SHA256 signature verification (GnuTLS) and the complete
 * OpenID Connect id_token check with one pinned algorithm (RS256).
 *
 * Everything here is thread-safe and allocation-bounded; nothing is logged
 * (callers log once, without secrets). */
#ifndef AUTH_OAUTH_CRYPTO_H
#define AUTH_OAUTH_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lc/err.h"

/* 32 random bytes in base64url without padding = 43 characters. */
#define OAUTH_RAND_LEN 43
/* Largest id_token accepted (bytes). */
#define OAUTH_IDTOKEN_MAX 8192
/* Smallest RSA modulus accepted from a JWKS (bits). */
#define OAUTH_RSA_MIN_BITS 2048
/* Clock leeway for exp / iat / nbf (seconds). */
#define OAUTH_LEEWAY_S 60
/* Minimum time between two JWKS fetches caused by an unknown kid (ms). */
#define OAUTH_JWKS_REFETCH_MS 60000
#define OAUTH_SUB_MAX 255
#define OAUTH_EMAIL_MAX 254

/* Fills out with 32 fresh random bytes as base64url (43 chars + NUL). Used
 * for state, PKCE code_verifier, nonce and the browser-binding cookie. */
void oauth_random_b64(char out[OAUTH_RAND_LEN + 1]);

/* 1 when s is exactly OAUTH_RAND_LEN base64url characters. */
int oauth_is_rand_b64(const char *s);

/* RFC 7636 S256: challenge = BASE64URL(SHA256(ASCII(verifier))). verifier
 * must be 43..128 characters of [A-Za-z0-9-._~] (else LC_ERR_PARAM). */
int oauth_pkce_challenge(const char *verifier, char out[OAUTH_RAND_LEN + 1]);

/* SHA-256 of a string as 64 lowercase hex characters (what is stored for
 * the state and the binding cookie value). */
void oauth_hash_hex(const char *s, char hex[65]);

/* Constant-time comparison of two 64-char hex hashes (1 = equal). */
int oauth_hash_eq(const char *a, const char *b);

/* Browser binding: 1 when cookie is a well-formed binding value whose hash
 * equals stored_hash (constant time); 0 for NULL/malformed/mismatch. */
int oauth_binding_ok(const char *stored_hash, const char *cookie);

/* Provider URL rule: "https://host..." or, for local stand-ins only,
 * "http://127.0.0.1[:port][/...]". No whitespace or control characters.
 * Returns 1 when allowed. */
int oauth_url_allowed(const char *url);

/* Appends "name=<percent-encoded value>" (with a leading '&' unless the
 * buffer is empty or ends in '?') to buf (capacity cap). Unreserved RFC
 * 3986 characters pass through. LC_ERR_TOO_LARGE when it does not fit. */
int oauth_query_add(char *buf, size_t cap, const char *name, const char *value);

/* RSA PKCS#1 v1.5 SHA-256 verification with GnuTLS. n, e are big-endian
 * unsigned integers (from a JWKS). Moduli below OAUTH_RSA_MIN_BITS are
 * refused. LC_OK when the signature is valid, else LC_ERR_UNAUTH. */
int oauth_rsa_sha256_verify(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
                            const void *msg, size_t msglen, const uint8_t *sig, size_t siglen,
                            char err[LC_ERR_LEN]);

/* What an id_token must say. */
typedef struct {
  const char *issuer;     /* == iss (the discovery document's issuer) */
  const char *client_id;  /* in aud; == azp when aud has several members */
  const char *nonce;      /* == nonce (stored with the state) */
} oauth_idt_expect;

/* What a verified id_token said. */
typedef struct {
  char sub[OAUTH_SUB_MAX + 1];
  char email[OAUTH_EMAIL_MAX + 1];  /* "" when absent */
  int email_verified;               /* 1 only for JSON true (or "true") */
} oauth_idt_claims;

/* Verifies a compact JWS id_token against a JWKS document ({"keys":[...]},
 * borrowed) at time now_s:
 * - header: JSON object, alg exactly "RS256" (pinned: none, HS*, ES*, PS*
 *   refused), kid required, no jku / jwk / x5u / x5c / crit;
 * - key: the JWKS entry with that kid, kty "RSA", use absent or "sig", alg
 *   absent or "RS256", n/e base64url; signature valid (GnuTLS);
 * - claims: iss == issuer, aud == client_id (string) or an array holding it
 *   (then azp == client_id when more than one audience), exp > now - leeway,
 *   iat <= now + leeway, nbf (if any) <= now + leeway, nonce == expected,
 *   sub 1..255 characters; email / email_verified copied when present.
 * Returns LC_OK (*out filled), LC_ERR_NOTFOUND when no key carries the kid
 * (the caller may refetch the JWKS once and retry), LC_ERR_UNAUTH otherwise
 * (err says which check failed). */
int oauth_idtoken_verify(const char *jwt, const json_t *jwks, const oauth_idt_expect *exp,
                         int64_t now_s, oauth_idt_claims *out, char err[LC_ERR_LEN]);

/* 1 when an unknown kid may trigger a JWKS refetch: the last fetch started
 * at least OAUTH_JWKS_REFETCH_MS before now (monotonic ms), or never (0). */
int oauth_jwks_may_refetch(int64_t last_fetch_ms, int64_t now_ms);

#endif
