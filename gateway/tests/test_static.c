/* Unit tests of gw_static (the web front end served by the gateway): the
 * allow-list loads from a directory (missing or non-regular files refused,
 * nothing leaked), only listed paths resolve (traversal shapes, other case,
 * unlisted names do not), and over HTTP: the right bytes and Content-Type,
 * the page's CSP on pages while the API keeps default-src 'none', ETag /
 * If-None-Match -> 304, unlisted and traversal paths -> 404. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw_routes.h"
#include "gw_static.h"
#include "lc/http.h"
#include "lc/svc.h"
#include "lc/util.h"

static char g_dir[64];

static void write_file(const char *dir, const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static void rm_dir(const char *dir) {
  const char *names[] = {"index.html", "app.js", "app.css", "icon.svg", "secret.txt"};
  char path[256];
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    if (unlink(path) != 0)
      rmdir(path);
  }
  rmdir(dir);
}

static void setup(void) {
  ck_assert_int_eq(lc_global_init(), LC_OK);
  snprintf(g_dir, sizeof(g_dir), "/tmp/gw-static-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(g_dir));
  write_file(g_dir, "index.html", "<!doctype html><title>t</title>");
  write_file(g_dir, "app.js", "'use strict';");
  write_file(g_dir, "app.css", "body{margin:0}");
  write_file(g_dir, "icon.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
  write_file(g_dir, "secret.txt", "not served");
}

static void teardown(void) { rm_dir(g_dir); }

START_TEST(loads_allow_list) {
  gw_static st;
  char err[LC_ERR_LEN] = "";
  ck_assert_int_eq(gw_static_load(&st, g_dir, err), LC_OK);
  const gw_static_file *f = gw_static_find(&st, "/");
  ck_assert_ptr_nonnull(f);
  ck_assert_str_eq(f->name, "index.html");
  ck_assert_str_eq(f->ctype, "text/html; charset=utf-8");
  ck_assert_uint_eq(f->len, strlen("<!doctype html><title>t</title>"));
  ck_assert_int_eq(memcmp(f->body, "<!doctype", 9), 0);
  ck_assert_uint_eq(strlen(f->etag), 34);
  ck_assert_int_eq(f->etag[0], '"');
  /* the pages the browser returns to answer the same page */
  ck_assert_ptr_eq(gw_static_find(&st, "/signed-in"), f);
  ck_assert_ptr_eq(gw_static_find(&st, "/payments/success"), f);
  ck_assert_ptr_eq(gw_static_find(&st, "/payments/cancel"), f);
  ck_assert_str_eq(gw_static_find(&st, "/app/app.js")->ctype, "text/javascript; charset=utf-8");
  ck_assert_str_eq(gw_static_find(&st, "/app/app.css")->ctype, "text/css; charset=utf-8");
  ck_assert_str_eq(gw_static_find(&st, "/app/icon.svg")->ctype, "image/svg+xml");
  /* nothing else resolves */
  const char *bad[] = {"",          "/index.html",        "/app/",         "/app/secret.txt",
                       "/APP/app.js", "/app/../index.html", "/app/app.js/", "/app//app.js",
                       "/app/%2e%2e/secret.txt", "/../secret.txt", "/app/app.js?x", NULL};
  for (int i = 0; bad[i] != NULL; i++)
    ck_assert_msg(gw_static_find(&st, bad[i]) == NULL, "%s resolved", bad[i]);
  ck_assert_ptr_null(gw_static_find(&st, NULL));
  /* every listed route points at a loaded file */
  size_t n = 0;
  const gw_static_route *r = gw_static_routes(&n);
  ck_assert_uint_ge(n, 7);
  for (size_t i = 0; i < n; i++)
    ck_assert_ptr_nonnull(gw_static_find(&st, r[i].path));
  /* different content, different ETag */
  ck_assert_str_ne(gw_static_find(&st, "/app/app.js")->etag, f->etag);
  gw_static_free(&st);
  ck_assert_ptr_null(gw_static_find(&st, "/"));
  gw_static_free(&st); /* twice is harmless */
}
END_TEST

START_TEST(refuses_missing_or_odd_files) {
  gw_static st;
  char err[LC_ERR_LEN] = "";
  ck_assert_int_ne(gw_static_load(&st, "", err), LC_OK);
  ck_assert_int_ne(gw_static_load(&st, NULL, err), LC_OK);
  ck_assert_int_ne(gw_static_load(&st, "/nonexistent-gw-static", err), LC_OK);
  ck_assert_ptr_nonnull(strstr(err, "index.html"));
  /* a missing later file: the earlier ones are freed (ASan checks leaks) */
  char path[256];
  snprintf(path, sizeof(path), "%s/icon.svg", g_dir);
  ck_assert_int_eq(unlink(path), 0);
  ck_assert_int_ne(gw_static_load(&st, g_dir, err), LC_OK);
  ck_assert_ptr_nonnull(strstr(err, "icon.svg"));
  ck_assert_ptr_null(gw_static_find(&st, "/"));
  /* a directory where a file is expected */
  ck_assert_int_eq(mkdir(path, 0700), 0);
  ck_assert_int_ne(gw_static_load(&st, g_dir, err), LC_OK);
  ck_assert_int_ne(gw_static_register(NULL, &st, err), LC_OK);
}
END_TEST

/* ------------------------------------------------------------------ HTTP -- */

static struct _u_instance g_inst;
static char g_base[64];
static gw_static g_st;
static gw_ctx g_ctx;

static void server_up(void) {
  char err[LC_ERR_LEN] = "";
  int rc = LC_ERR;
  ck_assert_int_eq(gw_static_load(&g_st, g_dir, err), LC_OK);
  memset(&g_ctx, 0, sizeof(g_ctx));
  for (int attempt = 0; attempt < 20 && rc != LC_OK; attempt++) {
    uint8_t b[2];
    lc_random(b, sizeof(b));
    int port = 23400 + (b[0] << 8 | b[1]) % 100;
    ck_assert_int_eq(lc_svc_instance_init(&g_inst, "127.0.0.1", port, 4096, err), LC_OK);
    ck_assert_int_eq(gw_routes_register(&g_inst, &g_ctx, err), LC_OK);
    ck_assert_int_eq(gw_static_register(&g_inst, &g_st, err), LC_OK);
    rc = lc_svc_start(&g_inst, NULL, NULL, 16, 5, err);
    if (rc != LC_OK)
      ulfius_clean_instance(&g_inst);
    else
      snprintf(g_base, sizeof(g_base), "http://127.0.0.1:%d", port);
  }
  ck_assert_msg(rc == LC_OK, "server start: %s", err);
}

static void server_down(void) {
  lc_http_thread_cleanup();
  ulfius_stop_framework(&g_inst);
  ulfius_clean_instance(&g_inst);
  gw_static_free(&g_st);
}

static long get(const char *path, const char *const *headers, lc_http_resp *r) {
  char url[256], err[LC_ERR_LEN] = "";
  snprintf(url, sizeof(url), "%s%s", g_base, path);
  lc_http_req q = {.method = "GET", .url = url, .headers = headers, .timeout_ms = 5000,
                   .keep_headers = 1};
  memset(r, 0, sizeof(*r));
  ck_assert_msg(lc_http_do(&q, r, err) == LC_OK, "GET %s: %s", path, err);
  return r->status;
}

static void header_is(const lc_http_resp *r, const char *name, const char *want) {
  char v[512];
  ck_assert_msg(lc_http_resp_header(r, name, v, sizeof(v)) == LC_OK, "no %s", name);
  ck_assert_str_eq(v, want);
}

START_TEST(serves_pages_with_csp) {
  server_up();
  lc_http_resp r;
  char etag[64];
  const char *pages[] = {"/", "/signed-in", "/payments/success", "/payments/cancel", NULL};
  for (int i = 0; pages[i] != NULL; i++) {
    ck_assert_int_eq(get(pages[i], NULL, &r), 200);
    ck_assert_ptr_nonnull(r.body);
    ck_assert_str_eq(r.body, "<!doctype html><title>t</title>");
    header_is(&r, "Content-Type", "text/html; charset=utf-8");
    header_is(&r, "Content-Security-Policy", GW_STATIC_CSP);
    header_is(&r, "X-Frame-Options", "DENY");
    header_is(&r, "X-Content-Type-Options", "nosniff");
    header_is(&r, "Cache-Control", "no-cache");
    lc_http_resp_free(&r);
  }
  ck_assert_int_eq(get("/app/app.js", NULL, &r), 200);
  ck_assert_str_eq(r.body, "'use strict';");
  header_is(&r, "Content-Type", "text/javascript; charset=utf-8");
  ck_assert_int_eq(lc_http_resp_header(&r, "ETag", etag, sizeof(etag)), LC_OK);
  lc_http_resp_free(&r);
  ck_assert_int_eq(get("/app/app.css", NULL, &r), 200);
  header_is(&r, "Content-Type", "text/css; charset=utf-8");
  lc_http_resp_free(&r);

  /* conditional GET */
  char inm[96];
  snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
  const char *h304[] = {inm, NULL};
  ck_assert_int_eq(get("/app/app.js", h304, &r), 304);
  ck_assert_uint_eq(r.len, 0);
  lc_http_resp_free(&r);
  const char *hother[] = {"If-None-Match: \"0000\"", NULL};
  ck_assert_int_eq(get("/app/app.js", hother, &r), 200);
  lc_http_resp_free(&r);

  /* unlisted names and traversal shapes: the catch-all 404, API policy */
  const char *bad[] = {"/secret.txt",        "/app/secret.txt",          "/index.html",
                       "/app/../secret.txt", "/app/%2e%2e/secret.txt",   "/app/..%2fsecret.txt",
                       "/app/",              "/APP/app.js",              NULL};
  for (int i = 0; bad[i] != NULL; i++) {
    ck_assert_msg(get(bad[i], NULL, &r) == 404, "%s answered %ld", bad[i], r.status);
    ck_assert(r.body == NULL || strstr(r.body, "not served") == NULL);
    header_is(&r, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
    lc_http_resp_free(&r);
  }
  /* the API keeps default-src 'none' */
  ck_assert_int_eq(get("/v1/me", NULL, &r), 401);
  header_is(&r, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  lc_http_resp_free(&r);
  server_down();
}
END_TEST

int main(void) {
  Suite *s = suite_create("gateway-static");
  TCase *tc = tcase_create("static");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, loads_allow_list);
  tcase_add_test(tc, refuses_missing_or_odd_files);
  tcase_add_test(tc, serves_pages_with_csp);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
