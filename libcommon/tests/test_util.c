/* test_util.c - encodings, UUIDs, integer parsing, constant-time compare,
 * hashing and error mapping. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "lc/err.h"
#include "lc/log.h"
#include "lc/util.h"
#include "lc_tests.h"

START_TEST(hex_round_trip) {
  uint8_t in[256], out[256];
  char hex[513];
  size_t n = 0, i;
  for (i = 0; i < sizeof in; i++) in[i] = (uint8_t)i;
  lc_hex_encode(in, sizeof in, hex);
  ck_assert_uint_eq(strlen(hex), 512);
  ck_assert(strncmp(hex, "000102", 6) == 0);
  ck_assert_int_eq(lc_hex_decode(hex, out, sizeof out, &n), LC_OK);
  ck_assert_uint_eq(n, 256);
  ck_assert_mem_eq(in, out, 256);
  ck_assert_int_eq(lc_hex_decode("0xDEADbeef", out, 4, &n), LC_OK);
  ck_assert_uint_eq(n, 4);
  ck_assert_uint_eq(out[0], 0xde);
  ck_assert_uint_eq(out[3], 0xef);
  ck_assert_int_eq(lc_hex_decode("", out, 4, &n), LC_OK);
  ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(hex_rejects_bad) {
  uint8_t out[8];
  size_t n = 99;
  ck_assert_int_eq(lc_hex_decode("abc", out, sizeof out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_hex_decode("zz", out, sizeof out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_hex_decode("0g", out, sizeof out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_hex_decode(" 00", out, sizeof out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_hex_decode("000000000000000000", out, sizeof out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_hex_decode(NULL, out, sizeof out, &n), LC_ERR_PARAM);
}
END_TEST

START_TEST(b64url_round_trip) {
  uint8_t in[100], *out = NULL;
  size_t n, len, i;
  for (i = 0; i < sizeof in; i++) in[i] = (uint8_t)(i * 7 + 250);
  for (len = 0; len <= sizeof in; len++) {
    char *e = lc_b64url_encode(in, len);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_null(strchr(e, '='));
    ck_assert_ptr_null(strchr(e, '+'));
    ck_assert_ptr_null(strchr(e, '/'));
    ck_assert_int_eq(lc_b64url_decode(e, strlen(e), &out, &n), LC_OK);
    ck_assert_uint_eq(n, len);
    if (len) ck_assert_mem_eq(out, in, len);
    free(out);
    free(e);
  }
  {
    char *e = lc_b64url_encode((const uint8_t *)"\xfb\xff", 2);
    ck_assert_str_eq(e, "-_8");
    free(e);
  }
}
END_TEST

START_TEST(b64url_rejects) {
  uint8_t *out = (uint8_t *)1;
  size_t n;
  ck_assert_int_eq(lc_b64url_decode("YQ==", 4, &out, &n), LC_ERR_PARAM);
  ck_assert_ptr_null(out);
  ck_assert_int_eq(lc_b64url_decode("YQ=", 3, &out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_b64url_decode("Y Q", 3, &out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_b64url_decode("YQ\n", 3, &out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_b64url_decode("+/8", 3, &out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_b64url_decode("Y", 1, &out, &n), LC_ERR_PARAM);
  ck_assert_int_eq(lc_b64url_decode("YR", 2, &out, &n), LC_ERR_PARAM); /* non-zero pad bits */
  ck_assert_int_eq(lc_b64url_decode("YQ", 2, &out, &n), LC_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(out[0], 'a');
  free(out);
}
END_TEST

START_TEST(uuid_v4_format) {
  char a[37], b[37];
  int i;
  for (i = 0; i < 50; i++) {
    lc_uuid_v4(a);
    ck_assert_uint_eq(strlen(a), 36);
    ck_assert(lc_uuid_valid(a));
    ck_assert_int_eq(a[14], '4');
    ck_assert(strchr("89ab", a[19]) != NULL);
    ck_assert(strspn(a, "0123456789abcdef-") == 36);
  }
  lc_uuid_v4(b);
  ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(uuid_validity) {
  ck_assert(lc_uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
  ck_assert(lc_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
  ck_assert(!lc_uuid_valid("123e4567e89b12d3a456426614174000"));
  ck_assert(!lc_uuid_valid("123e4567-e89b-12d3-a456-42661417400"));
  ck_assert(!lc_uuid_valid("123e4567-e89b-12d3-a456-4266141740000"));
  ck_assert(!lc_uuid_valid("g23e4567-e89b-12d3-a456-426614174000"));
  ck_assert(!lc_uuid_valid("123e4567-e89b-12d3-a456_426614174000"));
  ck_assert(!lc_uuid_valid(""));
  ck_assert(!lc_uuid_valid(NULL));
}
END_TEST

START_TEST(parse_i64_cases) {
  int64_t v = 0;
  ck_assert_int_eq(lc_parse_i64("0", 0, 10, &v), LC_OK);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(lc_parse_i64("-42", -100, 100, &v), LC_OK);
  ck_assert_int_eq(v, -42);
  ck_assert_int_eq(lc_parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &v), LC_OK);
  ck_assert(v == INT64_MAX);
  ck_assert_int_eq(lc_parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, &v), LC_OK);
  ck_assert(v == INT64_MIN);
  v = 7;
  ck_assert_int_eq(lc_parse_i64("9223372036854775808", INT64_MIN, INT64_MAX, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("-9223372036854775809", INT64_MIN, INT64_MAX, &v),
                   LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("99999999999999999999999", INT64_MIN, INT64_MAX, &v),
                   LC_ERR_PARAM);
  ck_assert_int_eq(v, 7);
  ck_assert_int_eq(lc_parse_i64("12abc", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("12 ", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64(" 12", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("+12", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("-", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("0x10", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("1.5", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("101", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64("-1", 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(lc_parse_i64(NULL, 0, 100, &v), LC_ERR_PARAM);
  ck_assert_int_eq(v, 7);
}
END_TEST

START_TEST(ct_eq_cases) {
  ck_assert(lc_ct_eq("abcdef", "abcdef", 6));
  ck_assert(!lc_ct_eq("abcdef", "abcdeg", 6));
  ck_assert(!lc_ct_eq("xbcdef", "abcdef", 6));
  ck_assert(lc_ct_eq("a", "b", 0));
}
END_TEST

START_TEST(hash_vectors) {
  uint8_t out[32];
  char hex[65];
  lc_sha256("abc", 3, out);
  lc_hex_encode(out, 32, hex);
  ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  lc_sha256(NULL, 0, out);
  lc_hex_encode(out, 32, hex);
  ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  /* RFC 4231 test case 2 */
  lc_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, out);
  lc_hex_encode(out, 32, hex);
  ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

START_TEST(strlcpy_and_misc) {
  char buf[4];
  char ts[32];
  ck_assert_int_eq(lc_strlcpy(buf, "abc", sizeof buf), LC_OK);
  ck_assert_str_eq(buf, "abc");
  ck_assert_int_eq(lc_strlcpy(buf, "abcd", sizeof buf), LC_ERR_TOO_LARGE);
  ck_assert_str_eq(buf, "abc");
  lc_rfc3339_now(ts);
  ck_assert_uint_eq(strlen(ts), 24);
  ck_assert_int_eq(ts[10], 'T');
  ck_assert_int_eq(ts[23], 'Z');
  ck_assert(lc_now_ms() > 1700000000000LL);
  ck_assert(lc_mono_ms() >= 0);
  ck_assert_int_eq(lc_err_http_status(LC_ERR_FUNDS), 402);
  ck_assert_int_eq(lc_err_http_status(LC_ERR_TOO_LARGE), 413);
  ck_assert_int_eq(lc_err_http_status(LC_ERR_DB), 500);
  ck_assert_int_eq(lc_err_http_status(12345), 500);
  ck_assert_str_eq(lc_err_name(LC_ERR_NOTFOUND), "not_found");
  ck_assert_ptr_nonnull(lc_err_name(-5));
  {
    char err[LC_ERR_LEN];
    ck_assert_int_eq(lc_err_set(err, LC_ERR_PARAM, "x=%d", 5), LC_ERR_PARAM);
    ck_assert_str_eq(err, "x=5");
    ck_assert_int_eq(lc_err_set(NULL, LC_ERR_IO, "ignored"), LC_ERR_IO);
  }
}
END_TEST

START_TEST(log_rid_and_levels) {
  char big[200];
  ck_assert_int_eq(lc_log_init("lctest", "bogus"), LC_ERR_PARAM);
  ck_assert_int_eq(lc_log_init("lctest", "error"), LC_OK);
  ck_assert(lc_log_enabled(Y_LOG_LEVEL_ERROR));
  ck_assert(!lc_log_enabled(Y_LOG_LEVEL_INFO));
  ck_assert_int_eq(lc_log_init("lctest", "debug"), LC_OK);
  ck_assert(lc_log_enabled(Y_LOG_LEVEL_DEBUG));
  ck_assert_str_eq(lc_log_rid(), "-");
  lc_log_set_rid("abc");
  ck_assert_str_eq(lc_log_rid(), "abc");
  memset(big, 'r', sizeof big - 1);
  big[sizeof big - 1] = 0;
  lc_log_set_rid(big);
  ck_assert_uint_eq(strlen(lc_log_rid()), 63);
  {
    char *huge = malloc(5000);
    memset(huge, 'x', 4999);
    huge[4999] = 0;
    lc_log_debug("long message %s", huge); /* truncated, must not overflow */
    free(huge);
  }
  lc_log_set_rid(NULL);
  ck_assert_str_eq(lc_log_rid(), "-");
  lc_log_close();
  ck_assert(!lc_log_enabled(Y_LOG_LEVEL_INFO));
  ck_assert(lc_log_enabled(Y_LOG_LEVEL_ERROR));
}
END_TEST

START_TEST(log_json_lines) {
  char out[64], buf[4096];
  FILE *tmp = tmpfile();
  int saved, nlines = 0;
  size_t n;
  char *line, *save = NULL;
  /* escaping */
  ck_assert_uint_eq(lc_log_json_escape(out, sizeof out, "a\"b\\c\n\t\x01"), 17);
  ck_assert_str_eq(out, "a\\\"b\\\\c\\n\\t\\u0001");
  lc_log_json_escape(out, sizeof out, "\xc3\xa9 \xff \xed\xa0\x80");
  ck_assert_str_eq(out, "\xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  ck_assert_uint_eq(lc_log_json_escape(out, 4, "\"\"\""), 2); /* never a half escape */
  ck_assert_str_eq(out, "\\\"");
  /* one JSON object per line on stderr */
  ck_assert_ptr_nonnull(tmp);
  fflush(stderr);
  saved = dup(fileno(stderr));
  ck_assert_int_ge(saved, 0);
  ck_assert_int_ge(dup2(fileno(tmp), fileno(stderr)), 0);
  ck_assert_int_eq(lc_log_init("lc\"test", "debug"), LC_OK);
  lc_log_set_rid("rid-1");
  lc_log_info("quote \" backslash \\ newline \n tab \t bell \a bad \xff end");
  lc_log_set_rid(NULL);
  lc_log_error("second %d", 2);
  y_log_message(Y_LOG_LEVEL_WARNING, "from yder %s", "too");
  lc_log_close();
  fflush(stderr);
  dup2(saved, fileno(stderr));
  close(saved);
  rewind(tmp);
  n = fread(buf, 1, sizeof buf - 1, tmp);
  fclose(tmp);
  buf[n] = '\0';
  for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    ck_assert_msg(o != NULL, "not JSON: %s", line);
    ck_assert_str_eq(json_string_value(json_object_get(o, "app")), "lc\"test");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "ts")));
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(o, "ts"))), 24);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "level")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "rid")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "msg")));
    if (nlines == 1) {
      ck_assert_str_eq(json_string_value(json_object_get(o, "rid")), "rid-1");
      ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "info");
      ck_assert_str_eq(json_string_value(json_object_get(o, "msg")),
                       "quote \" backslash \\ newline \n tab \t bell \a bad \xef\xbf\xbd end");
    }
    if (nlines == 2) {
      ck_assert_str_eq(json_string_value(json_object_get(o, "rid")), "-");
      ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "error");
      ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), "second 2");
    }
    if (nlines == 3) {
      ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "warning");
      ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), "from yder too");
    }
    json_decref(o);
    nlines++;
  }
  ck_assert_int_eq(nlines, 4); /* "logging started" + 3 */
}
END_TEST

Suite *util_suite(void) {
  Suite *s = suite_create("util");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, hex_round_trip);
  tcase_add_test(tc, hex_rejects_bad);
  tcase_add_test(tc, b64url_round_trip);
  tcase_add_test(tc, b64url_rejects);
  tcase_add_test(tc, uuid_v4_format);
  tcase_add_test(tc, uuid_validity);
  tcase_add_test(tc, parse_i64_cases);
  tcase_add_test(tc, ct_eq_cases);
  tcase_add_test(tc, hash_vectors);
  tcase_add_test(tc, strlcpy_and_misc);
  tcase_add_test(tc, log_rid_and_levels);
  tcase_add_test(tc, log_json_lines);
  suite_add_tcase(s, tc);
  return s;
}
