/* test_msg.c - queue envelope build/parse. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lc/msg.h"
#include "lc/util.h"
#include "lc_tests.h"

static const char *UID = "5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11";

static int parse(const char *text, const char *type, json_t **body, char *err) {
  char t[64], id[37], rid[64];
  return lc_msg_parse(text, strlen(text), type, t, id, rid, body, err);
}

START_TEST(round_trip) {
  json_t *body = json_pack("{s:s, s:I}", "debit_id", UID, "cost", (json_int_t)10);
  json_t *got = NULL, *env;
  char id_out[37] = "", t[64], id[37], rid[64], err[LC_ERR_LEN] = "";
  char *text = lc_msg_build("credit.debit.committed", NULL, "req-123", body, id_out);
  ck_assert_ptr_nonnull(text);
  ck_assert(lc_uuid_valid(id_out));
  env = json_loads(text, 0, NULL);
  ck_assert_int_eq(json_integer_value(json_object_get(env, "v")), 1);
  ck_assert_uint_eq(strlen(json_string_value(json_object_get(env, "ts"))), 24);
  json_decref(env);
  ck_assert_int_eq(lc_msg_parse(text, strlen(text), "credit.debit.committed", t, id, rid, &got,
                                err),
                   LC_OK);
  ck_assert_str_eq(t, "credit.debit.committed");
  ck_assert_str_eq(id, id_out);
  ck_assert_str_eq(rid, "req-123");
  ck_assert(json_equal(got, body));
  json_decref(got);
  free(text);
  /* explicit id, any type */
  text = lc_msg_build("chain.transfer.confirmed", UID, NULL, body, NULL);
  ck_assert_ptr_nonnull(text);
  ck_assert_int_eq(lc_msg_parse(text, strlen(text), NULL, t, id, rid, &got, err), LC_OK);
  ck_assert_str_eq(id, UID);
  ck_assert_str_eq(rid, "");
  json_decref(got);
  free(text);
  /* invalid explicit id is refused by the builder */
  ck_assert_ptr_null(lc_msg_build("x.y", "not-a-uuid", NULL, body, NULL));
  json_decref(body);
}
END_TEST

START_TEST(rejects_wrong_version) {
  json_t *b = (json_t *)1;
  char err[LC_ERR_LEN] = "";
  ck_assert_int_eq(parse("{\"v\":2,\"type\":\"a.b\",\"id\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\","
                         "\"ts\":\"x\",\"request_id\":\"r\",\"body\":{}}",
                         NULL, &b, err),
                   LC_ERR_PARAM);
  ck_assert_ptr_null(b);
  ck_assert_int_eq(parse("{\"v\":\"1\",\"type\":\"a.b\",\"id\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\","
                         "\"ts\":\"x\",\"body\":{}}",
                         NULL, &b, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(parse("{\"type\":\"a.b\",\"id\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\","
                         "\"ts\":\"x\",\"body\":{}}",
                         NULL, &b, err),
                   LC_ERR_PARAM);
}
END_TEST

START_TEST(rejects_wrong_type) {
  json_t *b = NULL;
  char err[LC_ERR_LEN] = "";
  const char *m = "{\"v\":1,\"type\":\"a.b\",\"id\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\","
                  "\"ts\":\"x\",\"request_id\":\"r\",\"body\":{}}";
  ck_assert_int_eq(parse(m, "a.c", &b, err), LC_ERR_PARAM);
  ck_assert_ptr_null(b);
  ck_assert_int_eq(parse(m, "a.b", &b, err), LC_OK);
  json_decref(b);
  ck_assert_int_eq(parse("{\"v\":1,\"type\":5,\"id\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\","
                         "\"ts\":\"x\",\"body\":{}}",
                         NULL, &b, err),
                   LC_ERR_PARAM);
}
END_TEST

START_TEST(rejects_bad_id) {
  json_t *b = NULL;
  char err[LC_ERR_LEN] = "";
  ck_assert_int_eq(parse("{\"v\":1,\"type\":\"a.b\",\"id\":\"nope\",\"ts\":\"x\",\"body\":{}}", NULL,
                         &b, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(parse("{\"v\":1,\"type\":\"a.b\",\"ts\":\"x\",\"body\":{}}", NULL, &b, err),
                   LC_ERR_PARAM);
  ck_assert_ptr_null(b);
}
END_TEST

START_TEST(rejects_body_not_object) {
  json_t *b = NULL;
  char err[LC_ERR_LEN] = "";
  ck_assert_int_eq(parse("{\"v\":1,\"type\":\"a.b\",\"id\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\","
                         "\"ts\":\"x\",\"body\":[1]}",
                         NULL, &b, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(parse("{\"v\":1,\"type\":\"a.b\",\"id\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\","
                         "\"ts\":\"x\"}",
                         NULL, &b, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(parse("[]", NULL, &b, err), LC_ERR_PARAM);
  ck_assert_int_eq(parse("{not json", NULL, &b, err), LC_ERR_PARAM);
  ck_assert_int_eq(parse("{\"v\":1,\"v\":1}", NULL, &b, err), LC_ERR_PARAM);
  ck_assert_ptr_null(b);
}
END_TEST

Suite *msg_suite(void) {
  Suite *s = suite_create("msg");
  TCase *tc = tcase_create("envelope");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, round_trip);
  tcase_add_test(tc, rejects_wrong_version);
  tcase_add_test(tc, rejects_wrong_type);
  tcase_add_test(tc, rejects_bad_id);
  tcase_add_test(tc, rejects_body_not_object);
  suite_add_tcase(s, tc);
  return s;
}
