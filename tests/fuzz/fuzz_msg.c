/* fuzz_msg.c - the queue message envelope parser lc_msg_parse, with any
 * type and with a fixed expected type. Invariant: on success the copied
 * fields are NUL-terminated, id is a UUID and body is an object. */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "lc/err.h"
#include "lc/msg.h"
#include "lc/util.h"

static void one(const uint8_t *data, size_t size, const char *expected) {
  char type[64], id[37], rid[64], err[LC_ERR_LEN];
  json_t *body = NULL;
  int rc = lc_msg_parse((const char *)data, size, expected, type, id, rid, &body, err);
  if (rc == LC_OK) {
    FZ_CHECK(body != NULL && json_is_object(body));
    FZ_CHECK(memchr(type, '\0', sizeof type) && memchr(rid, '\0', sizeof rid));
    FZ_CHECK(lc_uuid_valid(id));
    if (expected != NULL) FZ_CHECK(strcmp(type, expected) == 0);
    json_decref(body);
  } else {
    FZ_CHECK(rc == LC_ERR_PARAM);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  one(data, size, NULL);
  one(data, size, "credit.debit.committed");
  return 0;
}
