/* util.h - small shared helpers: aborting allocators, encodings, randomness,
 * UUIDs, time, constant-time comparison. Thread-safe unless noted. */
#ifndef LC_UTIL_H
#define LC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Aborting allocators: out-of-memory in a daemon is fatal (untrusted sizes
 * must be bounded by caps before allocating). */
void *lc_xmalloc(size_t n);
void *lc_xcalloc(size_t n, size_t sz);
void *lc_xrealloc(void *p, size_t n);
char *lc_xstrdup(const char *s);
char *lc_xstrndup(const char *s, size_t n);

/* Bounded copy: copies at most dstsz-1 bytes, always NUL-terminates.
 * Returns LC_OK, or LC_ERR_TOO_LARGE when src did not fit (dst then holds a
 * truncated copy that callers must not use). */
int lc_strlcpy(char *dst, const char *src, size_t dstsz);

/* Lowercase hex. out must hold 2*n+1 bytes. */
void lc_hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes hex (optional "0x" prefix, either case) into out (capacity outcap).
 * *outlen receives the byte count. Odd length or bad digit -> LC_ERR_PARAM. */
int lc_hex_decode(const char *in, uint8_t *out, size_t outcap, size_t *outlen);

/* base64url without padding (JWT alphabet). Returned strings are new
 * (free with free()). decode returns LC_ERR_PARAM on malformed input. */
char *lc_b64url_encode(const uint8_t *in, size_t n);
int lc_b64url_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen);

/* Cryptographically secure random bytes (libsodium). */
void lc_random(uint8_t *out, size_t n);

/* UUID v4 as 36-char lowercase string; out must hold 37 bytes. */
void lc_uuid_v4(char out[37]);
/* 1 if s is a canonical 36-char UUID (any version, lowercase or uppercase). */
int lc_uuid_valid(const char *s);

/* Wall clock and monotonic clock in milliseconds. */
int64_t lc_now_ms(void);
int64_t lc_mono_ms(void);
/* RFC 3339 UTC timestamp "2026-11-28T12:00:00.123Z"; out must hold 32 bytes. */
void lc_rfc3339_now(char out[32]);

/* Constant-time equality of two buffers of equal length n (1 = equal). */
int lc_ct_eq(const void *a, const void *b, size_t n);

/* SHA-256 (libsodium). */
void lc_sha256(const void *in, size_t n, uint8_t out[32]);
/* HMAC-SHA256 (libsodium). */
void lc_hmac_sha256(const uint8_t *key, size_t keylen, const void *msg, size_t n,
                    uint8_t out[32]);

/* Parses a base-10 signed 64-bit integer; the whole string must be consumed.
 * Range-checked against [min,max]. */
int lc_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Must be called once in main() before threads: sodium_init, curl_global_init. */
int lc_global_init(void);
void lc_global_cleanup(void);

#endif
