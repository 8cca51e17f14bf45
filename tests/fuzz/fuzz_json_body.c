/* fuzz_json_body.c - JSON request bodies as every handler reads them:
 * lc_json_body on a real ulfius request (Content-Type check, size cap,
 * json_loadb with JSON_REJECT_DUPLICATES, object only), then
 * lc_json_only_fields with the handlers' allowed lists and a strict
 * validator built on it (storage_reports_parse_req).
 * Input: "content-type\nbody". */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "lc/err.h"
#include "lc/problem.h"
#include "reports.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *body;
  size_t blen;
  char *ct = fz_split(data, size, &body, &blen);
  char err[256];
  struct _u_request req;
  FZ_CHECK(ulfius_init_request(&req) == U_OK);
  u_map_put(req.map_header, "Content-Type", ct);
  if (blen > 0) {
    req.binary_body = malloc(blen);
    FZ_CHECK(req.binary_body != NULL);
    memcpy(req.binary_body, body, blen);
    req.binary_body_length = blen;
  }
  json_t *j = NULL;
  int rc = lc_json_body(&req, 16384, &j, err);
  FZ_CHECK(memchr(err, '\0', sizeof err) != NULL || rc == LC_OK);
  if (rc == LC_OK) {
    static const char *const a1[] = {"email", "password", NULL};
    static const char *const a2[] = {"owner_id", "scope", "name", NULL};
    static const char *const a3[] = {NULL};
    FZ_CHECK(json_is_object(j) && blen <= 16384);
    int r1 = lc_json_only_fields(j, a1, err);
    int r2 = lc_json_only_fields(j, a2, err);
    int r3 = lc_json_only_fields(j, a3, err);
    FZ_CHECK(r1 == LC_OK || r1 == LC_ERR_PARAM);
    FZ_CHECK(r2 == LC_OK || r2 == LC_ERR_PARAM);
    FZ_CHECK((r3 == LC_OK) == (json_object_size(j) == 0));
    storage_report_req rq;
    int r4 = storage_reports_parse_req(j, &rq, err);
    FZ_CHECK(r4 == LC_OK || r4 == LC_ERR_PARAM);
    json_decref(j);
  } else {
    FZ_CHECK(j == NULL);
    FZ_CHECK(rc == LC_ERR_PARAM || rc == LC_ERR_MEDIA || rc == LC_ERR_TOO_LARGE);
  }
  ulfius_clean_request(&req); /* frees binary_body */
  free(ct);
  return 0;
}
