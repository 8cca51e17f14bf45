/* util.c - aborting allocators, hex/base64url, randomness, UUIDs, clocks,
 * constant-time compare, SHA-256/HMAC and strict integer parsing.
 * Everything here is thread-safe once lc_global_init() has run. */
#include "lc/util.h"
#include "lc/err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>
#include <ulfius.h>

static void oom(size_t n) {
  fprintf(stderr, "lc: out of memory allocating %zu bytes\n", n);
  abort();
}

/* malloc that aborts on failure; n == 0 allocates 1 byte. */
void *lc_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) oom(n);
  return p;
}

void *lc_xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (p == NULL) oom(n * sz);
  return p;
}

void *lc_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) oom(n);
  return q;
}

char *lc_xstrdup(const char *s) {
  size_t n;
  char *d;
  if (s == NULL) return NULL;
  n = strlen(s);
  d = lc_xmalloc(n + 1);
  memcpy(d, s, n + 1);
  return d;
}

char *lc_xstrndup(const char *s, size_t n) {
  size_t l;
  char *d;
  if (s == NULL) return NULL;
  l = strnlen(s, n);
  d = lc_xmalloc(l + 1);
  memcpy(d, s, l);
  d[l] = '\0';
  return d;
}

int lc_strlcpy(char *dst, const char *src, size_t dstsz) {
  size_t l;
  if (dst == NULL || dstsz == 0) return LC_ERR_TOO_LARGE;
  if (src == NULL) src = "";
  l = strlen(src);
  if (l >= dstsz) {
    memcpy(dst, src, dstsz - 1);
    dst[dstsz - 1] = '\0';
    return LC_ERR_TOO_LARGE;
  }
  memcpy(dst, src, l + 1);
  return LC_OK;
}

void lc_hex_encode(const uint8_t *in, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; i++) {
    out[2 * i] = d[in[i] >> 4];
    out[2 * i + 1] = d[in[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int lc_hex_decode(const char *in, uint8_t *out, size_t outcap, size_t *outlen) {
  size_t n, i;
  if (outlen) *outlen = 0;
  if (in == NULL) return LC_ERR_PARAM;
  if (in[0] == '0' && (in[1] == 'x' || in[1] == 'X')) in += 2;
  n = strlen(in);
  if (n % 2 != 0) return LC_ERR_PARAM;
  if (n / 2 > outcap) return LC_ERR_PARAM;
  for (i = 0; i < n / 2; i++) {
    int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
    if (hi < 0 || lo < 0) return LC_ERR_PARAM;
    out[i] = (uint8_t)((hi << 4) | lo);
  }
  if (outlen) *outlen = n / 2;
  return LC_OK;
}

char *lc_b64url_encode(const uint8_t *in, size_t n) {
  size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *out = lc_xmalloc(cap);
  sodium_bin2base64(out, cap, in ? in : (const uint8_t *)"", n,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

int lc_b64url_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen) {
  size_t cap, bin_len = 0, i;
  const char *end = NULL;
  uint8_t *buf;
  if (out) *out = NULL;
  if (outlen) *outlen = 0;
  if (in == NULL || out == NULL) return LC_ERR_PARAM;
  /* Only the URL-safe alphabet: no padding, whitespace or standard chars. */
  for (i = 0; i < inlen; i++) {
    char c = in[i];
    if (!(isalnum((unsigned char)c) || c == '-' || c == '_')) return LC_ERR_PARAM;
  }
  if (inlen % 4 == 1) return LC_ERR_PARAM;
  cap = inlen / 4 * 3 + 3;
  buf = lc_xmalloc(cap);
  if (sodium_base642bin(buf, cap, in, inlen, NULL, &bin_len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != in + inlen) {
    free(buf);
    return LC_ERR_PARAM;
  }
  *out = buf;
  if (outlen) *outlen = bin_len;
  return LC_OK;
}

void lc_random(uint8_t *out, size_t n) { randombytes_buf(out, n); }

void lc_uuid_v4(char out[37]) {
  uint8_t b[16];
  char h[33];
  randombytes_buf(b, sizeof b);
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  lc_hex_encode(b, 16, h);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

int lc_uuid_valid(const char *s) {
  size_t i;
  if (s == NULL || strlen(s) != 36) return 0;
  for (i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return 0;
    } else if (hexval(s[i]) < 0) {
      return 0;
    }
  }
  return 1;
}

int64_t lc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lc_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lc_rfc3339_now(char out[32]) {
  struct timespec ts;
  struct tm tm;
  char base[24];
  unsigned ms;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  if (strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0) base[0] = '\0';
  ms = (unsigned)(ts.tv_nsec / 1000000) % 1000u;
  snprintf(out, 32, "%.20s.%03uZ", base, ms);
}

int lc_ct_eq(const void *a, const void *b, size_t n) {
  if (n == 0) return 1;
  return sodium_memcmp(a, b, n) == 0;
}

void lc_sha256(const void *in, size_t n, uint8_t out[32]) {
  crypto_hash_sha256(out, n ? in : (const void *)"", n);
}

void lc_hmac_sha256(const uint8_t *key, size_t keylen, const void *msg, size_t n,
                    uint8_t out[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, keylen);
  crypto_auth_hmacsha256_update(&st, n ? msg : (const void *)"", n);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

int lc_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
  char *end = NULL;
  long long v;
  if (s == NULL || out == NULL) return LC_ERR_PARAM;
  /* No leading whitespace or '+', at least one digit. */
  if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
    return LC_ERR_PARAM;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno == ERANGE) return LC_ERR_PARAM;
  if (errno != 0 || end == s || *end != '\0') return LC_ERR_PARAM;
  if ((int64_t)v < min || (int64_t)v > max) return LC_ERR_PARAM;
  *out = (int64_t)v;
  return LC_OK;
}

int lc_global_init(void) {
  if (sodium_init() < 0) return LC_ERR;
  /* ulfius_global_init initialises libcurl (twice, refcounted) and sets
   * jansson's allocators to orcania's (the libc ones by default). */
  if (ulfius_global_init() != U_OK) return LC_ERR;
  return LC_OK;
}

void lc_global_cleanup(void) {
  ulfius_global_close();
  curl_global_cleanup();
}
