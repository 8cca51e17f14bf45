/* fuzz_razorpay_sig.c - credit-svc's X-Razorpay-Signature verification
 * (razorpay_sig_verify). Input: "signature\nraw body". A random signature
 * never verifies (an accepted one must equal the real HMAC, any case); the
 * computed one always does. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "razorpay_sig.h"

#define SECRET "rzp_fuzz_webhook_secret"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *body;
  size_t blen;
  char *sig = fz_split(data, size, &body, &blen);
  char err[LC_ERR_LEN], good[65];
  razorpay_sig_compute(SECRET, body, blen, good);
  int rc = razorpay_sig_verify(SECRET, sig, body, blen, err);
  FZ_CHECK(rc == LC_OK || rc == LC_ERR_PARAM || rc == LC_ERR_UNAUTH);
  if (rc == LC_OK) FZ_CHECK(strcasecmp(sig, good) == 0);
  FZ_CHECK(razorpay_sig_verify(SECRET, good, body, blen, err) == LC_OK);
  FZ_CHECK(razorpay_sig_verify("other", good, body, blen, err) == LC_ERR_UNAUTH);
  FZ_CHECK(razorpay_sig_verify("", good, body, blen, err) == LC_ERR_PARAM);
  free(sig);
  return 0;
}
