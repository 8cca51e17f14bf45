/* fuzz_payments.c - credit-svc's webhook event parsers (after the signature
 * check the body is still provider input): payments_parse_stripe and
 * payments_parse_razorpay. Input: "razorpay event id\nbody". */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "payments_events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *body;
  size_t blen;
  char *evid = fz_split(data, size, &body, &blen);
  char err[LC_ERR_LEN];
  payments_parsed p;
  memset(&p, 0, sizeof p);
  int rc = payments_parse_stripe((const char *)body, blen, &p, err);
  if (rc == LC_OK) FZ_CHECK(p.root != NULL);
  payments_parsed_free(&p);
  memset(&p, 0, sizeof p);
  rc = payments_parse_razorpay((const char *)body, blen, evid, &p, err);
  if (rc == LC_OK) FZ_CHECK(p.root != NULL);
  payments_parsed_free(&p);
  free(evid);
  return 0;
}
