/* fuzz_topup.c - credit-svc's admin top-up validator credit_topup_validate
 * (pure) over any JSON object, loaded as lc_json_body loads it
 * (json_loadb, JSON_REJECT_DUPLICATES). Invariant: an accepted body has
 * exactly amount 1..CREDIT_TOPUP_MAX and a non-empty reason without
 * control characters. */
#include <stdio.h>
#include <string.h>

#include "credit_topup.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_error_t je;
  json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL) return 0;
  int64_t amount = 0;
  const char *reason = NULL;
  char err[LC_ERR_LEN];
  int rc = credit_topup_validate(j, &amount, &reason, err);
  if (rc == LC_OK) {
    FZ_CHECK(json_is_object(j) && json_object_size(j) == 2);
    FZ_CHECK(amount >= 1 && amount <= CREDIT_TOPUP_MAX);
    FZ_CHECK(reason != NULL && reason[0] != '\0');
    for (const unsigned char *p = (const unsigned char *)reason; *p; p++)
      FZ_CHECK(*p >= 0x20 && *p != 0x7f);
  } else {
    FZ_CHECK(rc == LC_ERR_PARAM);
  }
  json_decref(j);
  return 0;
}
