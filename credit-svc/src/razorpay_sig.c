/* razorpay_sig.c - X-Razorpay-Signature verification; see razorpay_sig.h. */
#include "razorpay_sig.h"

#include <sodium.h>
#include <string.h>

#include "lc/util.h"

void razorpay_sig_compute(const char *secret, const void *body, size_t body_len, char out[65]) {
  uint8_t mac[32];
  lc_hmac_sha256((const uint8_t *)secret, strlen(secret), body, body_len, mac);
  lc_hex_encode(mac, sizeof(mac), out);
}

int razorpay_sig_verify(const char *secret, const char *sig_hex, const void *body,
                        size_t body_len, char err[LC_ERR_LEN]) {
  if (secret == NULL || secret[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "webhook secret not configured");
  if (sig_hex == NULL || sig_hex[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "missing X-Razorpay-Signature header");
  if (body == NULL && body_len > 0)
    return lc_err_set(err, LC_ERR_PARAM, "no body");
  uint8_t got[32], mac[32];
  size_t got_len = 0;
  /* 64 digits decoding to 32 bytes ("0x..." would decode to 31: rejected). */
  if (strlen(sig_hex) != 64 ||
      lc_hex_decode(sig_hex, got, sizeof(got), &got_len) != LC_OK || got_len != 32)
    return lc_err_set(err, LC_ERR_PARAM, "malformed X-Razorpay-Signature header");
  lc_hmac_sha256((const uint8_t *)secret, strlen(secret), body, body_len, mac);
  int ok = lc_ct_eq(got, mac, 32);
  sodium_memzero(mac, sizeof(mac));
  if (!ok)
    return lc_err_set(err, LC_ERR_UNAUTH, "signature does not match the payload");
  return LC_OK;
}
