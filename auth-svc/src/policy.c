/* policy.c - see policy.h. */
#include "policy.h"

#include <sodium.h>
#include <string.h>

auth_rt_decision auth_rt_decide(const auth_rt_state *s, int64_t grace_ms) {
  if (s->revoked)
    return AUTH_RT_REJECT;
  if (s->rotated) {
    if (grace_ms > 0 && s->rotated_age_ms >= 0 && s->rotated_age_ms <= grace_ms &&
        s->has_successor && s->successor_live && !s->expired)
      return AUTH_RT_GRACE;
    return AUTH_RT_REUSE;
  }
  if (s->expired)
    return AUTH_RT_REJECT;
  return AUTH_RT_ROTATE;
}

/* 1 when [a, a+n) equals the NUL-terminated s exactly. */
static int span_eq(const char *a, size_t n, const char *s) {
  return strlen(s) == n && memcmp(a, s, n) == 0;
}

int auth_csrf_allowed(const char *origin, const char *x_requested_with, const char *allowed_csv) {
  const char *p;

  if (x_requested_with != NULL && strcmp(x_requested_with, "fetch") == 0)
    return 1;
  if (origin == NULL || origin[0] == '\0' || strcmp(origin, "null") == 0 || allowed_csv == NULL)
    return 0;
  p = allowed_csv;
  while (*p != '\0') {
    const char *end = strchr(p, ',');
    size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
    const char *a = p;
    while (n > 0 && (*a == ' ' || *a == '\t')) {
      a++;
      n--;
    }
    while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t'))
      n--;
    if (n > 0 && span_eq(a, n, origin))
      return 1;
    if (end == NULL)
      break;
    p = end + 1;
  }
  return 0;
}

static void box_key(const uint8_t enc_key[32], const char *parent, uint8_t k[32]) {
  crypto_generichash(k, 32, (const unsigned char *)parent, strlen(parent), enc_key, 32);
}

int auth_seal_successor(const uint8_t enc_key[32], const char *parent_token,
                        const char *successor, uint8_t *out, size_t *outlen) {
  uint8_t k[32];
  size_t n = strlen(successor);

  *outlen = 0;
  if (n > 80 || crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n > AUTH_SEAL_MAX)
    return LC_ERR_PARAM;
  box_key(enc_key, parent_token, k);
  randombytes_buf(out, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, (const unsigned char *)successor, n,
                        out, k);
  sodium_memzero(k, sizeof(k));
  *outlen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
  return LC_OK;
}

int auth_open_successor(const uint8_t enc_key[32], const char *parent_token,
                        const uint8_t *sealed, size_t len, char *out, size_t outsz) {
  uint8_t k[32];
  size_t n;
  int rc;

  if (outsz > 0)
    out[0] = '\0';
  if (len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES || len > AUTH_SEAL_MAX)
    return LC_ERR_PARAM;
  n = len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
  if (n + 1 > outsz)
    return LC_ERR_PARAM;
  box_key(enc_key, parent_token, k);
  rc = crypto_secretbox_open_easy((unsigned char *)out, sealed + crypto_secretbox_NONCEBYTES,
                                  len - crypto_secretbox_NONCEBYTES, sealed, k);
  sodium_memzero(k, sizeof(k));
  if (rc != 0) {
    sodium_memzero(out, outsz);
    return LC_ERR_UNAUTH;
  }
  out[n] = '\0';
  return LC_OK;
}
