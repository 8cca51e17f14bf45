/* stripe_sig.c - Stripe-Signature verification; see stripe_sig.h. */
#include "stripe_sig.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lc/util.h"

void stripe_sig_compute(const char *secret, int64_t t, const void *body, size_t body_len,
                        char out[65]) {
  crypto_auth_hmacsha256_state st;
  uint8_t mac[crypto_auth_hmacsha256_BYTES];
  char ts[24];
  int n = snprintf(ts, sizeof(ts), "%lld.", (long long)t);
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (unsigned long long)n);
  if (body_len > 0)
    crypto_auth_hmacsha256_update(&st, body, (unsigned long long)body_len);
  crypto_auth_hmacsha256_final(&st, mac);
  lc_hex_encode(mac, sizeof(mac), out);
  sodium_memzero(&st, sizeof(st));
}

/* Trims spaces and tabs around [*b, *e). */
static void trim(const char **b, const char **e) {
  while (*b < *e && (**b == ' ' || **b == '\t'))
    (*b)++;
  while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
    (*e)--;
}

/* Parses a canonical non-negative decimal (1..12 digits, no sign, no leading
 * zero unless "0"). Returns 0 on success. */
static int parse_t(const char *b, const char *e, int64_t *out) {
  size_t n = (size_t)(e - b);
  if (n == 0 || n > 12 || (n > 1 && b[0] == '0'))
    return -1;
  int64_t v = 0;
  for (const char *p = b; p < e; p++) {
    if (*p < '0' || *p > '9')
      return -1;
    v = v * 10 + (*p - '0');
  }
  *out = v;
  return 0;
}

int stripe_sig_verify(const char *secret, const char *header, const void *body, size_t body_len,
                      int64_t now_s, int64_t tolerance_s, char err[LC_ERR_LEN]) {
  if (secret == NULL || secret[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "webhook secret not configured");
  if (header == NULL || header[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "missing Stripe-Signature header");
  size_t hlen = strlen(header);
  if (hlen > STRIPE_SIG_HEADER_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "Stripe-Signature header too long");
  if (body == NULL && body_len > 0)
    return lc_err_set(err, LC_ERR_PARAM, "no body");

  /* Pass 1: find the single t element and validate the shape. */
  int have_t = 0, n_v1 = 0;
  int64_t t = 0;
  const char *p = header, *end = header + hlen;
  while (p <= end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *ee = comma ? comma : end;
    const char *kb = p, *ke = ee;
    trim(&kb, &ke);
    if (kb == ke) /* empty element (e.g. trailing comma) */
      return lc_err_set(err, LC_ERR_PARAM, "malformed Stripe-Signature header");
    const char *eq = memchr(kb, '=', (size_t)(ke - kb));
    if (eq == NULL || eq == kb)
      return lc_err_set(err, LC_ERR_PARAM, "malformed Stripe-Signature header");
    const char *vb = eq + 1, *ve = ke, *nb = kb, *ne = eq;
    trim(&nb, &ne);
    trim(&vb, &ve);
    if (ne - nb == 1 && nb[0] == 't') {
      if (have_t || parse_t(vb, ve, &t) != 0)
        return lc_err_set(err, LC_ERR_PARAM, "malformed timestamp in Stripe-Signature header");
      have_t = 1;
    } else if (ne - nb == 2 && nb[0] == 'v' && nb[1] == '1') {
      n_v1++;
    }
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  if (!have_t)
    return lc_err_set(err, LC_ERR_PARAM, "no timestamp in Stripe-Signature header");
  if (n_v1 == 0)
    return lc_err_set(err, LC_ERR_UNAUTH, "no v1 signature in Stripe-Signature header");

  /* Pass 2: compare every v1 against the expected signature (all of them,
   * so the time does not depend on which one matched). */
  char expected[65];
  uint8_t exp_raw[32];
  size_t exp_len = 0;
  stripe_sig_compute(secret, t, body, body_len, expected);
  lc_hex_decode(expected, exp_raw, sizeof(exp_raw), &exp_len);
  int match = 0;
  p = header;
  while (p <= end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *ee = comma ? comma : end;
    const char *kb = p, *ke = ee;
    trim(&kb, &ke);
    const char *eq = memchr(kb, '=', (size_t)(ke - kb));
    const char *nb = kb, *ne = eq, *vb = eq + 1, *ve = ke;
    trim(&nb, &ne);
    trim(&vb, &ve);
    if (ne - nb == 2 && nb[0] == 'v' && nb[1] == '1' && ve - vb == 64) {
      char hex[65];
      uint8_t got[32];
      size_t got_len = 0;
      memcpy(hex, vb, 64);
      hex[64] = '\0';
      if (lc_hex_decode(hex, got, sizeof(got), &got_len) == LC_OK && got_len == 32)
        match |= lc_ct_eq(got, exp_raw, 32);
    }
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  sodium_memzero(expected, sizeof(expected));
  sodium_memzero(exp_raw, sizeof(exp_raw));
  if (!match)
    return lc_err_set(err, LC_ERR_UNAUTH, "no v1 signature matches the payload");
  if (tolerance_s < 0 || t < now_s - tolerance_s || t > now_s + tolerance_s)
    return lc_err_set(err, LC_ERR_UNAUTH, "timestamp outside the tolerance");
  return LC_OK;
}
