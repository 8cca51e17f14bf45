/* test_unit.c - credit-svc unit tests (no services): cost table, cursor
 * encoding, timestamp validation. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "credit_costs.h"
#include "credit_ledger.h"
#include "lc/err.h"
#include "lc/util.h"

START_TEST(test_costs_table) {
  int64_t c = 0;
  ck_assert_int_eq(credit_costs_lookup("file.upload", &c), LC_OK);
  ck_assert_int_eq(c, 10);
  ck_assert_int_eq(credit_costs_lookup("report.generate", &c), LC_OK);
  ck_assert_int_eq(c, 5);
  ck_assert_int_eq(credit_costs_lookup("report.download", &c), LC_OK);
  ck_assert_int_eq(c, 2);
  ck_assert_int_eq(credit_costs_lookup("service.metadata", &c), LC_OK);
  ck_assert_int_eq(c, 3);
}
END_TEST

START_TEST(test_costs_unknown) {
  int64_t c = 77;
  ck_assert_int_eq(credit_costs_lookup("file.uploadx", &c), LC_ERR_PARAM);
  ck_assert_int_eq(credit_costs_lookup("", &c), LC_ERR_PARAM);
  ck_assert_int_eq(credit_costs_lookup("FILE.UPLOAD", &c), LC_ERR_PARAM);
  ck_assert_int_eq(credit_costs_lookup(NULL, &c), LC_ERR_PARAM);
  ck_assert_int_eq(c, 77);
}
END_TEST

START_TEST(test_cursor_roundtrip) {
  const char *ts = "2026-03-01T10:20:30.123456Z";
  const char *id = "7f1d7a36-3a4b-4c1e-9a53-2f0e1c2d3b4a";
  char *cur = credit_cursor_encode(ts, id);
  ck_assert_ptr_nonnull(cur);
  ck_assert_ptr_null(strchr(cur, '|')); /* opaque */
  char ts2[40], id2[37];
  ck_assert_int_eq(credit_cursor_decode(cur, ts2, id2), LC_OK);
  ck_assert_str_eq(ts2, ts);
  ck_assert_str_eq(id2, id);
  free(cur);
}
END_TEST

static void expect_bad_cursor(const char *raw) {
  char *cur = lc_b64url_encode((const uint8_t *)raw, strlen(raw));
  char ts[40], id[37];
  ck_assert_int_eq(credit_cursor_decode(cur, ts, id), LC_ERR_PARAM);
  free(cur);
}

START_TEST(test_cursor_malformed) {
  char ts[40], id[37];
  ck_assert_int_eq(credit_cursor_decode("!!!", ts, id), LC_ERR_PARAM);
  ck_assert_int_eq(credit_cursor_decode("", ts, id), LC_ERR_PARAM);
  expect_bad_cursor("2026-03-01T10:20:30Z");
  expect_bad_cursor("2026-03-01T10:20:30Z|not-a-uuid");
  expect_bad_cursor("yesterday|7f1d7a36-3a4b-4c1e-9a53-2f0e1c2d3b4a");
  expect_bad_cursor("2026-03-01T10:20:30Z'; drop table x|7f1d7a36-3a4b-4c1e-9a53-2f0e1c2d3b4a");
  expect_bad_cursor("2026-03-01T10:20:30Z|7f1d7a36-3a4b-4c1e-9a53-2f0e1c2d3b4a|x");
  char big[400];
  memset(big, 'A', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  ck_assert_int_eq(credit_cursor_decode(big, ts, id), LC_ERR_PARAM);
}
END_TEST

START_TEST(test_ts_valid) {
  ck_assert_int_eq(credit_ts_valid("2026-01-02T03:04:05Z"), 1);
  ck_assert_int_eq(credit_ts_valid("2026-01-02T03:04:05.123456Z"), 1);
  ck_assert_int_eq(credit_ts_valid("2026-01-02T03:04:05+02:00"), 1);
  ck_assert_int_eq(credit_ts_valid("2026-01-02t03:04:05z"), 1);
  ck_assert_int_eq(credit_ts_valid("2026-01-02"), 0);
  ck_assert_int_eq(credit_ts_valid("2026-13-02T03:04:05Z"), 0);
  ck_assert_int_eq(credit_ts_valid("2026-01-02T25:04:05Z"), 0);
  ck_assert_int_eq(credit_ts_valid("2026-01-02T03:04:05"), 0);
  ck_assert_int_eq(credit_ts_valid("2026-01-02T03:04:05.Z"), 0);
  ck_assert_int_eq(credit_ts_valid("2026-01-02T03:04:05Zjunk"), 0);
  ck_assert_int_eq(credit_ts_valid("2026-01-02T03:04:05+0200"), 0);
  ck_assert_int_eq(credit_ts_valid(NULL), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("credit-svc");
  TCase *tc = tcase_create("costs");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_costs_table);
  tcase_add_test(tc, test_costs_unknown);
  suite_add_tcase(s, tc);
  tc = tcase_create("cursor");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_cursor_roundtrip);
  tcase_add_test(tc, test_cursor_malformed);
  tcase_add_test(tc, test_ts_valid);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
