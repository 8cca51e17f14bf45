/* test_cfg.c - environment configuration: defaults, required, ranges,
 * integer/bool parsing, NAME_FILE variants and secret masking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lc/cfg.h"
#include "lc_tests.h"

static const lc_cfg_spec SPECS[] = {
    {"LCT_PORT", LC_CFG_INT, 1, 65535, "8080", 1, "port"},
    {"LCT_POOL", LC_CFG_INT, 1, 64, "4", 0, "pool size"},
    {"LCT_NAME", LC_CFG_STR, 1, 16, NULL, 0, "optional name"},
    {"LCT_FLAG", LC_CFG_BOOL, 0, 1, "false", 0, "flag"},
    {"LCT_SECRET", LC_CFG_SECRET, 8, 128, NULL, 1, "secret"},
};
#define NSPECS (sizeof SPECS / sizeof SPECS[0])

static void clear_env(void) {
  size_t i;
  char buf[64];
  for (i = 0; i < NSPECS; i++) {
    unsetenv(SPECS[i].name);
    snprintf(buf, sizeof buf, "%s_FILE", SPECS[i].name);
    unsetenv(buf);
  }
}

static void setup(void) {
  clear_env();
  setenv("LCT_SECRET", "s3cr3t-value", 1);
}

START_TEST(defaults_apply) {
  lc_cfg *c = NULL;
  char err[LC_ERR_LEN] = "";
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_OK);
  ck_assert_int_eq(lc_cfg_int(c, "LCT_PORT"), 8080);
  ck_assert_int_eq(lc_cfg_int(c, "LCT_POOL"), 4);
  ck_assert_ptr_null(lc_cfg_str(c, "LCT_NAME"));
  ck_assert_int_eq(lc_cfg_bool(c, "LCT_FLAG"), 0);
  ck_assert_str_eq(lc_cfg_str(c, "LCT_SECRET"), "s3cr3t-value");
  lc_cfg_free(c);
}
END_TEST

START_TEST(env_overrides) {
  lc_cfg *c = NULL;
  char err[LC_ERR_LEN] = "";
  setenv("LCT_PORT", "21001", 1);
  setenv("LCT_NAME", "auth", 1);
  setenv("LCT_FLAG", "YES", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_OK);
  ck_assert_int_eq(lc_cfg_int(c, "LCT_PORT"), 21001);
  ck_assert_str_eq(lc_cfg_str(c, "LCT_NAME"), "auth");
  ck_assert_int_eq(lc_cfg_bool(c, "LCT_FLAG"), 1);
  lc_cfg_free(c);
}
END_TEST

START_TEST(required_missing) {
  lc_cfg *c = (lc_cfg *)1;
  char err[LC_ERR_LEN] = "";
  unsetenv("LCT_SECRET");
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  ck_assert_ptr_null(c);
  ck_assert_str_eq(err, "LCT_SECRET: required but not set");
}
END_TEST

START_TEST(int_range) {
  lc_cfg *c = NULL;
  char err[LC_ERR_LEN] = "";
  setenv("LCT_POOL", "0", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  ck_assert_str_eq(err, "LCT_POOL: 0 is below the minimum 1");
  setenv("LCT_POOL", "65", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  ck_assert_str_eq(err, "LCT_POOL: 65 is above the maximum 64");
  setenv("LCT_POOL", "64", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_OK);
  ck_assert_int_eq(lc_cfg_int(c, "LCT_POOL"), 64);
  lc_cfg_free(c);
}
END_TEST

START_TEST(bad_int_and_bool) {
  lc_cfg *c = NULL;
  char err[LC_ERR_LEN] = "";
  setenv("LCT_PORT", "abc", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  ck_assert_str_eq(err, "LCT_PORT: 'abc' is not an integer");
  setenv("LCT_PORT", "80 ", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  setenv("LCT_PORT", "99999999999999999999", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  setenv("LCT_PORT", "80", 1);
  setenv("LCT_FLAG", "maybe", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  ck_assert_str_eq(err, "LCT_FLAG: 'maybe' is not a boolean");
  setenv("LCT_FLAG", "on", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_OK);
  ck_assert_int_eq(lc_cfg_bool(c, "LCT_FLAG"), 1);
  lc_cfg_free(c);
}
END_TEST

START_TEST(str_length) {
  lc_cfg *c = NULL;
  char err[LC_ERR_LEN] = "";
  setenv("LCT_SECRET", "short", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  ck_assert_ptr_nonnull(strstr(err, "LCT_SECRET"));
  ck_assert_ptr_null(strstr(err, "short")); /* secret value never echoed */
  setenv("LCT_SECRET", "long-enough", 1);
  setenv("LCT_NAME", "this-name-is-far-too-long", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  ck_assert_ptr_nonnull(strstr(err, "LCT_NAME"));
}
END_TEST

static char *write_tmp(const char *content) {
  char *path = strdup("/tmp/lct-cfg-XXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, content, strlen(content)), (int)strlen(content));
  close(fd);
  return path;
}

START_TEST(file_variant) {
  lc_cfg *c = NULL;
  char err[LC_ERR_LEN] = "";
  char *p = write_tmp("from-file-secret\r\n");
  unsetenv("LCT_SECRET");
  setenv("LCT_SECRET_FILE", p, 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_OK);
  ck_assert_str_eq(lc_cfg_str(c, "LCT_SECRET"), "from-file-secret");
  lc_cfg_free(c);
  c = NULL;
  /* both set -> error */
  setenv("LCT_SECRET", "s3cr3t-value", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  ck_assert_ptr_nonnull(strstr(err, "LCT_SECRET"));
  unsetenv("LCT_SECRET");
  /* missing file -> error naming the variable */
  setenv("LCT_SECRET_FILE", "/nonexistent/lct-secret", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_ERR_PARAM);
  ck_assert_ptr_nonnull(strstr(err, "LCT_SECRET_FILE"));
  /* file variant also works for INT */
  unlink(p);
  free(p);
  p = write_tmp("12\n");
  setenv("LCT_SECRET", "s3cr3t-value", 1);
  unsetenv("LCT_SECRET_FILE");
  setenv("LCT_POOL_FILE", p, 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_OK);
  ck_assert_int_eq(lc_cfg_int(c, "LCT_POOL"), 12);
  lc_cfg_free(c);
  unlink(p);
  free(p);
}
END_TEST

START_TEST(secret_masked) {
  lc_cfg *c = NULL;
  char err[LC_ERR_LEN] = "", out[64];
  setenv("LCT_NAME", "visible", 1);
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_OK);
  lc_cfg_display(c, "LCT_SECRET", out, sizeof out);
  ck_assert_str_eq(out, "********");
  lc_cfg_display(c, "LCT_NAME", out, sizeof out);
  ck_assert_str_eq(out, "visible");
  lc_cfg_display(c, "LCT_PORT", out, sizeof out);
  ck_assert_str_eq(out, "8080");
  lc_cfg_dump(c); /* must not crash (log may be uninitialised) */
  lc_cfg_free(c);
}
END_TEST

static void unknown_name_aborts_impl(void) {
  lc_cfg *c = NULL;
  char err[LC_ERR_LEN] = "";
  setup();
  ck_assert_int_eq(lc_cfg_load(SPECS, NSPECS, &c, err), LC_OK);
  (void)lc_cfg_int(c, "LCT_NOPE");
}

START_TEST(unknown_name_aborts) { unknown_name_aborts_impl(); }
END_TEST

Suite *cfg_suite(void) {
  Suite *s = suite_create("cfg");
  TCase *tc = tcase_create("load");
  tcase_set_timeout(tc, 10);
  tcase_add_checked_fixture(tc, setup, clear_env);
  tcase_add_test(tc, defaults_apply);
  tcase_add_test(tc, env_overrides);
  tcase_add_test(tc, required_missing);
  tcase_add_test(tc, int_range);
  tcase_add_test(tc, bad_int_and_bool);
  tcase_add_test(tc, str_length);
  tcase_add_test(tc, file_variant);
  tcase_add_test(tc, secret_masked);
  suite_add_tcase(s, tc);
  /* abort() can only be observed in fork mode (skipped under CK_FORK=no). */
  {
    const char *f = getenv("CK_FORK");
    if (f == NULL || strcmp(f, "no") != 0) {
      TCase *ta = tcase_create("abort");
      tcase_set_timeout(ta, 10);
      tcase_add_test_raise_signal(ta, unknown_name_aborts, 6);
      suite_add_tcase(s, ta);
    }
  }
  return s;
}
