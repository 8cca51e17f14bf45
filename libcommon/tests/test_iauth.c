/* test_iauth.c - internal request signing, verified through a real ulfius
 * server (lc_svc_instance_init + lc_svc_start on 127.0.0.1:23xxx) using
 * lc_iauth_callback, plus the svc limits/ops/catch-all behaviour. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "lc/http.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "lc_tests.h"

static struct _u_instance g_inst;
static int g_port;
static char g_base[64];
static uint8_t g_secret[32];
static lc_iauth_ctx g_ctx;
static const char *UID = "5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11";

static int cb_echo(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const lc_identity *id = lc_iauth_identity(resp);
  json_t *o;
  (void)ud;
  if (id == NULL) return lc_problem(resp, 500, NULL, "no identity");
  o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:s}", "user", id->user_id,
                "role", id->role, "scope", id->scope, "rid", id->request_id, "log_rid",
                lc_log_rid(), "body_len", (json_int_t)req->binary_body_length, "path",
                req->http_url, "jti", id->jti, "exp", (json_int_t)id->exp, "client_ip",
                id->client_ip);
  lc_json_send(resp, 200, o);
  json_decref(o);
  return U_CALLBACK_COMPLETE;
}

/* Strict JSON body parsing behind the same server (no auth on /json). */
static int cb_json(const struct _u_request *req, struct _u_response *resp, void *ud) {
  static const char *const allowed[] = {"email", "password", NULL};
  json_t *j = NULL;
  char err[256] = "";
  int rc = lc_json_body(req, 64, &j, err);
  (void)ud;
  if (rc == LC_OK) rc = lc_json_only_fields(j, allowed, err);
  if (rc != LC_OK) {
    json_decref(j);
    return lc_problem_from_err(resp, rc, err);
  }
  lc_json_send(resp, 201, j);
  json_decref(j);
  return U_CALLBACK_COMPLETE;
}

static int ready_flag = 1;
static int is_ready(void *ud) { return *(int *)ud; }

static void server_up(void) {
  char err[LC_ERR_LEN] = "";
  int attempt, rc = LC_ERR;
  randombytes_buf(g_secret, sizeof g_secret);
  g_ctx.secret = g_secret;
  g_ctx.secret_len = sizeof g_secret;
  g_ctx.max_skew_s = 0;   /* default: LC_IAUTH_SKEW_S */
  g_ctx.replay = NULL;    /* the process-wide cache (each test runs in its own fork) */
  for (attempt = 0; attempt < 20 && rc != LC_OK; attempt++) {
    g_port = 23000 + (int)randombytes_uniform(1000);
    ck_assert_int_eq(lc_svc_instance_init(&g_inst, "127.0.0.1", g_port, 4096, err), LC_OK);
    ck_assert_int_eq(lc_svc_add_ops(&g_inst, "lctest", is_ready, &ready_flag), LC_OK);
    ck_assert_int_eq(lc_svc_route(&g_inst, "*", "/echo/*", LC_PRIO_AUTH, lc_iauth_callback,
                                  &g_ctx),
                     LC_OK);
    ck_assert_int_eq(lc_svc_route(&g_inst, "*", "/nope", LC_PRIO_AUTH, lc_iauth_callback, &g_ctx),
                     LC_OK);
    /* registered twice on /echo/h: the second pass must not see a replay */
    ck_assert_int_eq(lc_svc_route(&g_inst, "*", "/echo/h", LC_PRIO_AUTH, lc_iauth_callback,
                                  &g_ctx),
                     LC_OK);
    ck_assert_int_eq(lc_svc_route(&g_inst, "*", "/echo/*", LC_PRIO_APP, cb_echo, NULL), LC_OK);
    ck_assert_int_eq(lc_svc_route(&g_inst, "POST", "/json", LC_PRIO_APP, cb_json, NULL), LC_OK);
    rc = lc_svc_start(&g_inst, NULL, NULL, 32, 10, err);
    if (rc != LC_OK) ulfius_clean_instance(&g_inst);
  }
  ck_assert_msg(rc == LC_OK, "server start: %s", err);
  snprintf(g_base, sizeof g_base, "http://127.0.0.1:%d", g_port);
}

static void server_down(void) {
  lc_http_thread_cleanup();
  ulfius_stop_framework(&g_inst);
  ulfius_clean_instance(&g_inst);
}

static void ident(lc_identity *id, const char *user, const char *role, const char *scope) {
  memset(id, 0, sizeof *id);
  snprintf(id->user_id, sizeof id->user_id, "%s", user);
  snprintf(id->role, sizeof id->role, "%s", role);
  snprintf(id->scope, sizeof id->scope, "%s", scope);
  snprintf(id->request_id, sizeof id->request_id, "%s", "rid-abc.123");
}

static json_t *body_json(const lc_http_resp *r) {
  ck_assert_ptr_nonnull(r->body);
  return json_loadb(r->body, r->len, 0, NULL);
}

/* Sends a pre-signed request (headers h) with lc_http_do. */
static long send_raw(const char *method, const char *path, const char *const *h,
                     const char *body) {
  char url[256];
  lc_http_req rq;
  lc_http_resp rs;
  char err[LC_ERR_LEN] = "";
  long st;
  snprintf(url, sizeof url, "%s%s", g_base, path);
  memset(&rq, 0, sizeof rq);
  rq.method = method;
  rq.url = url;
  rq.headers = h;
  rq.body = body;
  rq.body_len = body ? strlen(body) : 0;
  ck_assert_int_eq(lc_http_do(&rq, &rs, err), LC_OK);
  st = rs.status;
  lc_http_resp_free(&rs);
  return st;
}

START_TEST(round_trip_ok) {
  lc_identity id;
  lc_http_resp r;
  char err[LC_ERR_LEN] = "";
  json_t *j;
  const char *body = "{\"user_id\":\"x\"}";
  const char *extra[] = {"Idempotency-Key: k-1", NULL};
  ident(&id, UID, "user", "full");
  ck_assert_int_eq(lc_iauth_call(g_secret, sizeof g_secret, g_base, "POST", "/echo/a?x=1&y=%20z",
                                 &id, extra, body, strlen(body), 5000, &r, err),
                   LC_OK);
  ck_assert_int_eq(r.status, 200);
  j = body_json(&r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "user")), UID);
  ck_assert_str_eq(json_string_value(json_object_get(j, "role")), "user");
  ck_assert_str_eq(json_string_value(json_object_get(j, "scope")), "full");
  ck_assert_str_eq(json_string_value(json_object_get(j, "rid")), "rid-abc.123");
  ck_assert_str_eq(json_string_value(json_object_get(j, "log_rid")), "rid-abc.123");
  ck_assert_str_eq(json_string_value(json_object_get(j, "path")), "/echo/a?x=1&y=%20z");
  ck_assert_int_eq(json_integer_value(json_object_get(j, "body_len")), (int)strlen(body));
  json_decref(j);
  lc_http_resp_free(&r);
  /* GET without body, base URL with trailing slash */
  {
    char b2[80];
    snprintf(b2, sizeof b2, "%s/", g_base);
    ck_assert_int_eq(lc_iauth_call(g_secret, sizeof g_secret, b2, "GET", "/echo/b", &id, NULL,
                                   NULL, 0, 5000, &r, err),
                     LC_OK);
    ck_assert_int_eq(r.status, 200);
    lc_http_resp_free(&r);
  }
}
END_TEST

START_TEST(anonymous_ok) {
  lc_identity id;
  lc_http_resp r;
  char err[LC_ERR_LEN] = "";
  json_t *j;
  ident(&id, "", "anon", "");
  ck_assert_int_eq(lc_iauth_call(g_secret, sizeof g_secret, g_base, "POST", "/echo/signup", &id,
                                 NULL, "{}", 2, 5000, &r, err),
                   LC_OK);
  ck_assert_int_eq(r.status, 200);
  j = body_json(&r);
  ck_assert_str_eq(json_string_value(json_object_get(j, "user")), "");
  ck_assert_str_eq(json_string_value(json_object_get(j, "role")), "anon");
  ck_assert_str_eq(json_string_value(json_object_get(j, "scope")), "");
  json_decref(j);
  lc_http_resp_free(&r);
}
END_TEST

START_TEST(wrong_secret) {
  lc_identity id;
  lc_http_resp r;
  char err[LC_ERR_LEN] = "", ct[64] = "";
  uint8_t other[32];
  json_t *j;
  memset(other, 0x42, sizeof other);
  ident(&id, UID, "user", "full");
  ck_assert_int_eq(lc_iauth_call(other, sizeof other, g_base, "GET", "/echo/a", &id, NULL, NULL,
                                 0, 5000, &r, err),
                   LC_OK);
  ck_assert_int_eq(r.status, 401);
  j = body_json(&r);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 401);
  ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "urn:problem:unauthorized");
  json_decref(j);
  lc_http_resp_free(&r);
  /* headers are kept when asked: problem content type */
  {
    lc_http_req rq;
    lc_iauth_headers h;
    char url[128];
    ck_assert_int_eq(lc_iauth_sign(other, sizeof other, "GET", "/echo/a", &id, NULL, 0, NULL,
                                   NULL, (int64_t)time(NULL), &h),
                     LC_OK);
    snprintf(url, sizeof url, "%s/echo/a", g_base);
    memset(&rq, 0, sizeof rq);
    rq.method = "GET";
    rq.url = url;
    rq.headers = h.ptr;
    rq.keep_headers = 1;
    ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
    ck_assert_int_eq(r.status, 401);
    ck_assert_int_eq(lc_http_resp_header(&r, "content-type", ct, sizeof ct), LC_OK);
    ck_assert_str_eq(ct, "application/problem+json");
    ck_assert_int_eq(lc_http_resp_header(&r, "X-Nope", ct, sizeof ct), LC_ERR_NOTFOUND);
    lc_http_resp_free(&r);
  }
}
END_TEST

START_TEST(tampered_body_path) {
  lc_identity id;
  lc_iauth_headers h;
  const char *hdrs[LC_IAUTH_NHDR + 2];
  int i;
  ident(&id, UID, "admin", "full");
  ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "POST", "/echo/a", &id, "{\"a\":1}",
                                 7, "application/json", NULL, (int64_t)time(NULL), &h),
                   LC_OK);
  for (i = 0; i < h.count; i++) hdrs[i] = h.ptr[i];
  hdrs[h.count] = "Content-Type: application/json";
  hdrs[h.count + 1] = NULL;
  /* tampered copies first: they must not use up the nonce */
  ck_assert_int_eq(send_raw("POST", "/echo/a", hdrs, "{\"a\":2}"), 401);
  ck_assert_int_eq(send_raw("POST", "/echo/b", hdrs, "{\"a\":1}"), 401);
  ck_assert_int_eq(send_raw("POST", "/echo/a?x=1", hdrs, "{\"a\":1}"), 401);
  ck_assert_int_eq(send_raw("PUT", "/echo/a", hdrs, "{\"a\":1}"), 401);
  ck_assert_int_eq(send_raw("POST", "/echo/a", hdrs, "{\"a\":1}"), 200);
  /* the identical request again: replayed */
  ck_assert_int_eq(send_raw("POST", "/echo/a", hdrs, "{\"a\":1}"), 401);
}
END_TEST

/* Signs POST /echo/h with every optional covered field set; hdrs gets the
 * signed lines plus the Content-Type / Idempotency-Key sent. */
static void sign_full(lc_iauth_headers *h, const char *hdrs[LC_IAUTH_NHDR + 3]) {
  lc_identity id;
  int i;
  ident(&id, UID, "user", "full");
  snprintf(id.jti, sizeof id.jti, "%s", "0f8e2a52-3d55-4b0e-9d7b-1c2f3a4b5c6d");
  id.exp = 1900000000;
  snprintf(id.client_ip, sizeof id.client_ip, "%s", "203.0.113.7");
  ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "POST", "/echo/h", &id, "{}", 2,
                                 "application/json", "idem-1", (int64_t)time(NULL), h),
                   LC_OK);
  ck_assert_int_eq(h->count, 10);
  for (i = 0; i < h->count; i++) hdrs[i] = h->ptr[i];
  hdrs[h->count] = "Content-Type: application/json";
  hdrs[h->count + 1] = "Idempotency-Key: idem-1";
  hdrs[h->count + 2] = NULL;
}

/* hdrs with the line starting with name replaced by repl (NULL = removed). */
static void swap_line(const char *const *in, const char *name, const char *repl,
                      const char **out) {
  int i, n = 0;
  for (i = 0; in[i] != NULL; i++) {
    if (strncasecmp(in[i], name, strlen(name)) == 0 && in[i][strlen(name)] == ':') {
      if (repl != NULL) out[n++] = repl;
    } else {
      out[n++] = in[i];
    }
  }
  out[n] = NULL;
}

START_TEST(tampered_covered_headers) {
  lc_iauth_headers h;
  const char *hdrs[LC_IAUTH_NHDR + 3], *t[LC_IAUTH_NHDR + 4];
  static const char *const changes[][2] = {
      {"Content-Type", "Content-Type: text/plain"},
      {"Content-Type", NULL},
      {"Idempotency-Key", "Idempotency-Key: idem-2"},
      {"Idempotency-Key", NULL},
      {"X-Client-IP", "X-Client-IP: 198.51.100.1"},
      {"X-Client-IP", NULL},
      {"X-Auth-Jti", "X-Auth-Jti: 11111111-2222-4333-8444-555555555555"},
      {"X-Auth-Jti", NULL},
      {"X-Auth-Exp", "X-Auth-Exp: 1900000001"},
      {"X-Auth-Exp", NULL},
      {"X-Auth-Nonce", "X-Auth-Nonce: 00000000000000000000000000000000"},
      {"X-Auth-Nonce", NULL},
  };
  size_t k;
  lc_http_resp r;
  json_t *j;
  sign_full(&h, hdrs);
  for (k = 0; k < sizeof changes / sizeof changes[0]; k++) {
    swap_line(hdrs, changes[k][0], changes[k][1], t);
    ck_assert_msg(send_raw("POST", "/echo/h", t, "{}") == 401, "change %zu accepted", k);
  }
  /* an added empty or extra Idempotency-Key on a request signed without one */
  {
    lc_identity id;
    lc_iauth_headers h2;
    const char *x[LC_IAUTH_NHDR + 3];
    int i;
    ident(&id, UID, "user", "full");
    ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "POST", "/echo/h", &id, "{}", 2,
                                   "application/json", NULL, (int64_t)time(NULL), &h2),
                     LC_OK);
    for (i = 0; i < h2.count; i++) x[i] = h2.ptr[i];
    x[h2.count] = "Content-Type: application/json";
    x[h2.count + 1] = "Idempotency-Key: sneaked";
    x[h2.count + 2] = NULL;
    ck_assert_int_eq(send_raw("POST", "/echo/h", x, "{}"), 401);
    x[h2.count + 1] = "Idempotency-Key;";
    ck_assert_int_eq(send_raw("POST", "/echo/h", x, "{}"), 401);
    x[h2.count + 1] = NULL;
    ck_assert_int_eq(send_raw("POST", "/echo/h", x, "{}"), 200);
  }
  /* the untouched request passes and the verified fields reach the handler */
  {
    lc_http_req rq;
    char url[128], err[LC_ERR_LEN] = "";
    snprintf(url, sizeof url, "%s/echo/h", g_base);
    memset(&rq, 0, sizeof rq);
    rq.method = "POST";
    rq.url = url;
    rq.headers = hdrs;
    rq.body = "{}";
    rq.body_len = 2;
    ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
    ck_assert_int_eq(r.status, 200);
    j = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "jti")),
                     "0f8e2a52-3d55-4b0e-9d7b-1c2f3a4b5c6d");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "exp")), 1900000000);
    ck_assert_str_eq(json_string_value(json_object_get(j, "client_ip")), "203.0.113.7");
    json_decref(j);
    lc_http_resp_free(&r);
  }
  ck_assert_int_eq(send_raw("POST", "/echo/h", hdrs, "{}"), 401); /* replay */
}
END_TEST

/* Value of header name among signed lines (after "Name: "). */
static const char *hval(const lc_iauth_headers *h, const char *name) {
  int i;
  for (i = 0; i < h->count; i++)
    if (strncmp(h->line[i], name, strlen(name)) == 0 && h->line[i][strlen(name)] == ':')
      return h->line[i] + strlen(name) + 2;
  return NULL;
}

START_TEST(replay_and_nonces) {
  lc_identity id;
  lc_iauth_headers a, b;
  int64_t now = (int64_t)time(NULL);
  ident(&id, UID, "user", "full");
  ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "GET", "/echo/r", &id, NULL, 0, NULL,
                                 NULL, now, &a),
                   LC_OK);
  ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "GET", "/echo/r", &id, NULL, 0, NULL,
                                 NULL, now, &b),
                   LC_OK);
  ck_assert_ptr_nonnull(hval(&a, "X-Auth-Nonce"));
  ck_assert_uint_eq(strlen(hval(&a, "X-Auth-Nonce")), 32);
  ck_assert_str_ne(hval(&a, "X-Auth-Nonce"), hval(&b, "X-Auth-Nonce"));
  ck_assert_str_ne(hval(&a, "X-Auth-Sig"), hval(&b, "X-Auth-Sig"));
  ck_assert_ptr_null(hval(&a, "X-Auth-Jti"));
  ck_assert_ptr_null(hval(&a, "X-Client-IP"));
  ck_assert_int_eq(send_raw("GET", "/echo/r", a.ptr, NULL), 200);
  ck_assert_int_eq(send_raw("GET", "/echo/r", a.ptr, NULL), 401);
  ck_assert_int_eq(send_raw("GET", "/echo/r", b.ptr, NULL), 200);
  ck_assert_int_eq(send_raw("GET", "/echo/r", b.ptr, NULL), 401);
  ck_assert_int_eq(send_raw("GET", "/echo/r", a.ptr, NULL), 401);
}
END_TEST

/* The ring hands pages behind its head back to the kernel (memory
 * flatness): across many wraps with entries expiring, live nonces are still
 * found, expired ones forgotten, and the count stays the live window. */
START_TEST(replay_ring_release_keeps_semantics) {
  lc_iauth_replay *r = lc_iauth_replay_new(5000);
  uint8_t n[16];
  ck_assert_ptr_nonnull(r);
  memset(n, 0, sizeof n);
  for (uint32_t i = 0; i < 60000; i++) {
    int64_t now = i / 1000; /* 1000 nonces per "second", each kept 2 s */
    memcpy(n, &i, sizeof i);
    ck_assert_int_eq(lc_iauth_replay_check(r, n, now + 2, now), LC_OK);
    ck_assert_int_eq(lc_iauth_replay_check(r, n, now + 2, now), LC_ERR_CONFLICT);
    if (i >= 1500) { /* one still live 1.5 s back: a replay */
      uint32_t j = i - 1500;
      memcpy(n, &j, sizeof j);
      ck_assert_int_eq(lc_iauth_replay_check(r, n, now + 2, now), LC_ERR_CONFLICT);
    }
  }
  ck_assert_uint_le(lc_iauth_replay_count(r), 3000);
  /* long gone: accepted as new */
  uint32_t old = 100;
  memcpy(n, &old, sizeof old);
  ck_assert_int_eq(lc_iauth_replay_check(r, n, 62, 60), LC_OK);
  lc_iauth_replay_free(r);
}
END_TEST

/* A ulfius request as the server would build it from signed lines. */
static void fake_request(struct _u_request *rq, const char *method, const char *path,
                         const lc_iauth_headers *h) {
  int i;
  ck_assert_int_eq(ulfius_init_request(rq), U_OK);
  o_free(rq->http_verb);
  rq->http_verb = o_strdup(method);
  rq->http_url = o_strdup(path);
  for (i = 0; i < h->count; i++) {
    char name[64];
    const char *c = strpbrk(h->line[i], ":;");
    ck_assert_ptr_nonnull(c);
    snprintf(name, sizeof name, "%.*s", (int)(c - h->line[i]), h->line[i]);
    u_map_put(rq->map_header, name, *c == ';' ? "" : c + 2);
  }
}

START_TEST(verify_replay_window_and_full_cache) {
  lc_identity id, got;
  lc_iauth_headers h1, h2, h3, h4;
  struct _u_request q1, q2, q3, q4;
  lc_iauth_ctx c;
  char err[LC_ERR_LEN] = "";
  const int64_t T = 1800000000;
  memset(&c, 0, sizeof c);
  c.secret = g_secret;
  c.secret_len = sizeof g_secret;
  c.max_skew_s = 30;
  c.replay = lc_iauth_replay_new(2);
  ck_assert_ptr_nonnull(c.replay);
  ident(&id, UID, "user", "full");
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/v", &id, NULL, 0, NULL, NULL, T, &h1),
                   LC_OK);
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/v", &id, NULL, 0, NULL, NULL, T, &h2),
                   LC_OK);
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/v", &id, NULL, 0, NULL, NULL, T, &h3),
                   LC_OK);
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/v", &id, NULL, 0, NULL, NULL, T + 31,
                                 &h4),
                   LC_OK);
  fake_request(&q1, "GET", "/v", &h1);
  fake_request(&q2, "GET", "/v", &h2);
  fake_request(&q3, "GET", "/v", &h3);
  fake_request(&q4, "GET", "/v", &h4);
  ck_assert_int_eq(lc_iauth_verify(&q1, &c, T, &got, err), LC_OK);
  ck_assert_str_eq(got.user_id, UID);
  ck_assert_int_eq(lc_iauth_verify(&q1, &c, T + 1, &got, err), LC_ERR_UNAUTH);
  ck_assert_ptr_nonnull(strstr(err, "replayed"));
  ck_assert_str_eq(got.user_id, ""); /* nothing filled on failure */
  ck_assert_int_eq(lc_iauth_verify(&q2, &c, T + 1, &got, err), LC_OK);
  /* full of entries still inside the window: fail closed */
  ck_assert_int_eq(lc_iauth_verify(&q3, &c, T + 2, &got, err), LC_ERR_UNAVAIL);
  ck_assert_uint_eq(lc_iauth_replay_count(c.replay), 2);
  /* q3 did not use up its nonce: accepted once room exists (here never: window) */
  /* after the window (ts T + skew 30 < now) the old nonces are evicted */
  ck_assert_int_eq(lc_iauth_verify(&q4, &c, T + 31, &got, err), LC_OK);
  ck_assert_uint_eq(lc_iauth_replay_count(c.replay), 1);
  /* and their requests are refused by the timestamp check, not accepted again */
  ck_assert_int_eq(lc_iauth_verify(&q1, &c, T + 31, &got, err), LC_ERR_UNAUTH);
  ck_assert_ptr_nonnull(strstr(err, "skew"));
  ck_assert_int_eq(lc_iauth_verify(&q4, &c, T + 32, &got, err), LC_ERR_UNAUTH);
  ck_assert_ptr_nonnull(strstr(err, "replayed"));
  ulfius_clean_request(&q1);
  ulfius_clean_request(&q2);
  ulfius_clean_request(&q3);
  ulfius_clean_request(&q4);
  lc_iauth_replay_free(c.replay);
}
END_TEST

START_TEST(replay_cache_unit) {
  lc_iauth_replay *r;
  uint8_t n[16];
  uint32_t i;
  ck_assert_ptr_null(lc_iauth_replay_new(0));
  r = lc_iauth_replay_new(1000);
  ck_assert_ptr_nonnull(r);
  /* 1000 nonces, expiring 100..1099 in arrival order */
  for (i = 0; i < 1000; i++) {
    memset(n, 0, sizeof n);
    memcpy(n, &i, sizeof i);
    ck_assert_int_eq(lc_iauth_replay_check(r, n, 100 + i, 50), LC_OK);
  }
  ck_assert_uint_eq(lc_iauth_replay_count(r), 1000);
  for (i = 0; i < 1000; i += 7) {
    memset(n, 0, sizeof n);
    memcpy(n, &i, sizeof i);
    ck_assert_int_eq(lc_iauth_replay_check(r, n, 2000, 50), LC_ERR_CONFLICT);
  }
  memset(n, 0xee, sizeof n);
  ck_assert_int_eq(lc_iauth_replay_check(r, n, 2000, 50), LC_ERR_UNAVAIL);
  /* at 600 the 500 entries expiring before 600 are evicted, oldest first */
  ck_assert_int_eq(lc_iauth_replay_check(r, n, 2000, 600), LC_OK);
  ck_assert_uint_eq(lc_iauth_replay_count(r), 501);
  for (i = 0; i < 1000; i++) {
    int want = i >= 500 ? LC_ERR_CONFLICT : i < 499 ? LC_OK : LC_ERR_UNAVAIL;
    memset(n, 0, sizeof n);
    memcpy(n, &i, sizeof i);
    ck_assert_int_eq(lc_iauth_replay_check(r, n, 2000, 600), want);
  }
  ck_assert_uint_eq(lc_iauth_replay_count(r), 1000);
  /* everything expires: the ring wraps around cleanly */
  for (i = 5000; i < 7000; i++) {
    memset(n, 0, sizeof n);
    memcpy(n, &i, sizeof i);
    ck_assert_int_eq(lc_iauth_replay_check(r, n, i + 1, i), LC_OK);
  }
  ck_assert_uint_le(lc_iauth_replay_count(r), 2);
  lc_iauth_replay_free(r);
  /* the process-wide cache exists and is shared */
  ck_assert_ptr_nonnull(lc_iauth_replay_default());
  ck_assert_ptr_eq(lc_iauth_replay_default(), lc_iauth_replay_default());
  ck_assert_int_eq(lc_iauth_replay_default_init(10), LC_ERR);
}
END_TEST

START_TEST(full_cache_503) {
  lc_identity id;
  lc_iauth_headers a, b;
  ident(&id, UID, "user", "full");
  g_ctx.replay = lc_iauth_replay_new(1);
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/echo/f", &id, NULL, 0, NULL, NULL,
                                 (int64_t)time(NULL), &a),
                   LC_OK);
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/echo/f", &id, NULL, 0, NULL, NULL,
                                 (int64_t)time(NULL), &b),
                   LC_OK);
  ck_assert_int_eq(send_raw("GET", "/echo/f", a.ptr, NULL), 200);
  ck_assert_int_eq(send_raw("GET", "/echo/f", b.ptr, NULL), 503);
  ck_assert_int_eq(send_raw("GET", "/echo/f", a.ptr, NULL), 401);
  lc_iauth_replay *r = g_ctx.replay; /* every request above has completed */
  g_ctx.replay = NULL;
  lc_iauth_replay_free(r);
}
END_TEST

START_TEST(stale_timestamp) {
  lc_identity id;
  lc_iauth_headers h;
  ident(&id, UID, "user", "read");
  ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "GET", "/echo/a", &id, NULL, 0, NULL,
                                 NULL, (int64_t)time(NULL) - 600, &h),
                   LC_OK);
  ck_assert_int_eq(send_raw("GET", "/echo/a", h.ptr, NULL), 401);
  ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "GET", "/echo/a", &id, NULL, 0, NULL,
                                 NULL, (int64_t)time(NULL) + 600, &h),
                   LC_OK);
  ck_assert_int_eq(send_raw("GET", "/echo/a", h.ptr, NULL), 401);
  /* the default skew is 30 s: 45 s old is refused, 20 s old accepted */
  ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "GET", "/echo/a", &id, NULL, 0, NULL,
                                 NULL, (int64_t)time(NULL) - 45, &h),
                   LC_OK);
  ck_assert_int_eq(send_raw("GET", "/echo/a", h.ptr, NULL), 401);
  ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "GET", "/echo/a", &id, NULL, 0, NULL,
                                 NULL, (int64_t)time(NULL) - 20, &h),
                   LC_OK);
  ck_assert_int_eq(send_raw("GET", "/echo/a", h.ptr, NULL), 200);
}
END_TEST

START_TEST(missing_or_repeated_header) {
  lc_identity id;
  lc_iauth_headers h;
  const char *hdrs[LC_IAUTH_NHDR + 2];
  int skip, i, n;
  ident(&id, UID, "user", "full");
  ck_assert_int_eq(lc_iauth_sign(g_secret, sizeof g_secret, "GET", "/echo/a", &id, NULL, 0, NULL,
                                 NULL, (int64_t)time(NULL), &h),
                   LC_OK);
  ck_assert_int_eq(h.count, 7); /* no jti / exp / client ip set */
  for (skip = 0; skip < h.count; skip++) {
    for (i = 0, n = 0; i < h.count; i++)
      if (i != skip) hdrs[n++] = h.ptr[i];
    hdrs[n] = NULL;
    ck_assert_int_eq(send_raw("GET", "/echo/a", hdrs, NULL), 401);
  }
  for (i = 0; i < h.count; i++) hdrs[i] = h.ptr[i];
  hdrs[h.count] = "X-Auth-Role: admin";
  hdrs[h.count + 1] = NULL;
  ck_assert_int_eq(send_raw("GET", "/echo/a", hdrs, NULL), 401);
  hdrs[h.count] = "X-Auth-Nonce: 0123456789abcdef0123456789abcdef";
  ck_assert_int_eq(send_raw("GET", "/echo/a", hdrs, NULL), 401);
  hdrs[h.count] = NULL;
  ck_assert_int_eq(send_raw("GET", "/echo/a", hdrs, NULL), 200);
  ck_assert_int_eq(send_raw("GET", "/echo/a", NULL, NULL), 401);
}
END_TEST

START_TEST(sign_rejects_bad_identity) {
  lc_identity id;
  lc_iauth_headers h;
  ident(&id, "not-a-uuid", "user", "full");
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/x", &id, NULL, 0, NULL, NULL, 1, &h), LC_ERR_PARAM);
  ident(&id, UID, "root", "full");
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/x", &id, NULL, 0, NULL, NULL, 1, &h), LC_ERR_PARAM);
  ident(&id, UID, "user", "full");
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "x", &id, NULL, 0, NULL, NULL, 1, &h), LC_ERR_PARAM);
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/x y", &id, NULL, 0, NULL, NULL, 1, &h),
                   LC_ERR_PARAM);
  snprintf(id.request_id, sizeof id.request_id, "bad\nrid");
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/x", &id, NULL, 0, NULL, NULL, 1, &h), LC_ERR_PARAM);
  ident(&id, UID, "user", "full");
  {
    static const char *const bad_vals[] = {"a\r\nX-Auth-Role: admin", "a\nb", "", " lead",
                                           "trail ", "caf\xc3\xa9", "tab\there"};
    char big[LC_IAUTH_HVAL_MAX + 2];
    size_t k;
    for (k = 0; k < sizeof bad_vals / sizeof bad_vals[0]; k++) {
      ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "POST", "/x", &id, NULL, 0, bad_vals[k], NULL,
                                     1, &h),
                       LC_ERR_PARAM);
      ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "POST", "/x", &id, NULL, 0, NULL, bad_vals[k],
                                     1, &h),
                       LC_ERR_PARAM);
    }
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "POST", "/x", &id, NULL, 0, NULL, big, 1, &h),
                     LC_ERR_PARAM);
    big[LC_IAUTH_HVAL_MAX] = '\0';
    ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "POST", "/x", &id, NULL, 0, NULL, big, 1, &h),
                     LC_OK);
    ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "POST", "/x", &id, NULL, 0,
                                   "multipart/form-data; boundary=a,b", "k 1", 1, &h),
                     LC_OK);
  }
  snprintf(id.jti, sizeof id.jti, "%s", "bad jti");
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/x", &id, NULL, 0, NULL, NULL, 1, &h),
                   LC_ERR_PARAM);
  id.jti[0] = '\0';
  snprintf(id.client_ip, sizeof id.client_ip, "%s", "1.2.3.4\r\nX: y");
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/x", &id, NULL, 0, NULL, NULL, 1, &h),
                   LC_ERR_PARAM);
  snprintf(id.client_ip, sizeof id.client_ip, "%s", "2001:db8::1");
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/x", &id, NULL, 0, NULL, NULL, 1, &h),
                   LC_OK);
  id.exp = -1;
  ck_assert_int_eq(lc_iauth_sign(g_secret, 32, "GET", "/x", &id, NULL, 0, NULL, NULL, 1, &h),
                   LC_ERR_PARAM);
}
END_TEST

START_TEST(ops_limits_catchall) {
  lc_http_req rq;
  lc_http_resp r;
  char url[128], err[LC_ERR_LEN] = "", big[5000];
  lc_identity id;
  memset(&rq, 0, sizeof rq);
  rq.url = url;
  snprintf(url, sizeof url, "%s/healthz", g_base);
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
  lc_http_resp_free(&r);
  snprintf(url, sizeof url, "%s/readyz", g_base);
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  ck_assert_int_eq(r.status, 200);
  lc_http_resp_free(&r);
  ready_flag = 0;
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  ready_flag = 1;
  ck_assert_int_eq(r.status, 503);
  lc_http_resp_free(&r);
  lc_metric_add("lctest_things_total{kind=\"a\"}", 3);
  lc_metric_add("lctest_things_total{kind=\"a\"}", 2);
  lc_metric_add("bad name", 1);
  snprintf(url, sizeof url, "%s/metrics", g_base);
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "lctest_up 1\n"));
  ck_assert_ptr_nonnull(strstr(r.body, "lctest_things_total{kind=\"a\"} 5\n"));
  ck_assert_ptr_null(strstr(r.body, "bad name"));
  lc_http_resp_free(&r);
  /* unknown route: 401 unsigned, 404 signed */
  snprintf(url, sizeof url, "%s/nope", g_base);
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  ck_assert_int_eq(r.status, 401);
  lc_http_resp_free(&r);
  ident(&id, UID, "user", "full");
  ck_assert_int_eq(lc_iauth_call(g_secret, sizeof g_secret, g_base, "GET", "/nope", &id, NULL,
                                 NULL, 0, 5000, &r, err),
                   LC_OK);
  ck_assert_int_eq(r.status, 404);
  ck_assert_ptr_nonnull(strstr(r.body, "urn:problem:not-found"));
  lc_http_resp_free(&r);
  /* body over max_body (4096) -> 413 before auth */
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  snprintf(url, sizeof url, "%s/echo/a", g_base);
  rq.method = "POST";
  rq.body = big;
  rq.body_len = strlen(big);
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  ck_assert_int_eq(r.status, 413);
  lc_http_resp_free(&r);
}
END_TEST

/* Request series of /metrics: route template, method, final status,
 * histogram; limits and catch-all; bounded label set; HELP/TYPE lines. */
/* Value of one Prometheus series line "<series> <n>" in body, 0 when absent. */
static long series_val(const char *body, const char *series) {
  char pat[256];
  snprintf(pat, sizeof pat, "%s ", series);
  const char *p = body ? strstr(body, pat) : NULL;
  if (p == NULL)
    return 0;
  int64_t v = 0;
  char num[32];
  size_t n = strcspn(p + strlen(pat), "\n");
  if (n == 0 || n >= sizeof num)
    return -1;
  memcpy(num, p + strlen(pat), n);
  num[n] = '\0';
  return lc_parse_i64(num, 0, INT64_MAX, &v) == LC_OK ? (long)v : -1;
}

static char *fetch_metrics(void) {
  lc_http_req rq;
  lc_http_resp r;
  char url[128], err[LC_ERR_LEN] = "";
  memset(&rq, 0, sizeof rq);
  snprintf(url, sizeof url, "%s/metrics", g_base);
  rq.url = url;
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  char *body = r.body;
  r.body = NULL;
  lc_http_resp_free(&r);
  return body;
}

#define S_OK200 "http_requests_total{route=\"/echo/*\",method=\"GET\",status=\"200\"}"
#define S_BUCKET "http_request_duration_seconds_bucket{route=\"/echo/*\",method=\"GET\",status=\"200\",le=\"+Inf\"}"
#define S_COUNT "http_request_duration_seconds_count{route=\"/echo/*\",method=\"GET\",status=\"200\"}"
#define S_404 "http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
#define S_413 "http_requests_total{route=\"limits\",method=\"POST\",status=\"413\"}"

START_TEST(ops_request_metrics) {
  lc_http_req rq;
  lc_http_resp r;
  char url[128], err[LC_ERR_LEN] = "", big[5000], route[32];
  lc_identity id;
  int i, lines = 0;
  const char *p;
  ident(&id, UID, "user", "full");
  /* counters are process-wide: compare with their values before (CK_FORK=no
   * runs every test in one process) */
  char *before = fetch_metrics();
  long b200 = series_val(before, S_OK200), bbk = series_val(before, S_BUCKET),
       bcnt = series_val(before, S_COUNT), b404 = series_val(before, S_404),
       b413 = series_val(before, S_413);
  free(before);
  ck_assert_int_eq(lc_iauth_call(g_secret, sizeof g_secret, g_base, "GET", "/echo/a", &id, NULL,
                                 NULL, 0, 5000, &r, err),
                   LC_OK);
  ck_assert_int_eq(r.status, 200);
  lc_http_resp_free(&r);
  ck_assert_int_eq(lc_iauth_call(g_secret, sizeof g_secret, g_base, "GET", "/echo/b", &id, NULL,
                                 NULL, 0, 5000, &r, err),
                   LC_OK);
  lc_http_resp_free(&r);
  ck_assert_int_eq(lc_iauth_call(g_secret, sizeof g_secret, g_base, "GET", "/zzz", &id, NULL,
                                 NULL, 0, 5000, &r, err),
                   LC_OK);
  ck_assert_int_eq(r.status, 404);
  lc_http_resp_free(&r);
  memset(&rq, 0, sizeof rq);
  rq.url = url;
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  snprintf(url, sizeof url, "%s/echo/a", g_base);
  rq.method = "POST";
  rq.body = big;
  rq.body_len = strlen(big);
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  ck_assert_int_eq(r.status, 413);
  lc_http_resp_free(&r);
  lc_metric_help("lctest_widgets_total", "counter", "Widgets made.");
  lc_metric_add("lctest_widgets_total", 2);
  lc_metric_setf("lctest_ratio", 0.5);
  memset(&rq, 0, sizeof rq);
  rq.url = url;
  snprintf(url, sizeof url, "%s/metrics", g_base);
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "# TYPE http_requests_total counter\n"));
  ck_assert_ptr_nonnull(strstr(r.body, "# TYPE http_request_duration_seconds histogram\n"));
  ck_assert_int_eq(series_val(r.body, S_OK200) - b200, 2);
  ck_assert_int_eq(series_val(r.body, S_BUCKET) - bbk, 2);
  ck_assert_int_eq(series_val(r.body, S_COUNT) - bcnt, 2);
  ck_assert_int_eq(series_val(r.body, S_404) - b404, 1);
  ck_assert_int_eq(series_val(r.body, S_413) - b413, 1);
  ck_assert_ptr_null(strstr(r.body, "/zzz"));
  ck_assert_ptr_nonnull(strstr(r.body, "# HELP lctest_widgets_total Widgets made.\n"
                                       "# TYPE lctest_widgets_total counter\n"
                                       "lctest_widgets_total 2\n"));
  ck_assert_ptr_nonnull(strstr(r.body, "# TYPE lctest_ratio gauge\nlctest_ratio 0.5\n"));
  lc_http_resp_free(&r);
  /* Bounded: 300 distinct routes give at most 192 keys, the rest "other". */
  for (i = 0; i < 300; i++) {
    snprintf(route, sizeof route, "/r/%d", i);
    lc_svc_observe(route, "GET", 200, 0.001);
  }
  lc_svc_observe("/x", "NOT-A-VERB", 999, -1);
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  for (p = r.body; (p = strstr(p, "\nhttp_requests_total{")) != NULL; p++) lines++;
  ck_assert_int_le(lines, 192);
  ck_assert_msg(strstr(r.body, "http_requests_total{route=\"other\",method=\"OTHER\"") != NULL, "%d lines; %.300s", lines, strstr(r.body, "# HELP http_request_duration"));
  lc_http_resp_free(&r);
}
END_TEST

/* POSTs body with content type ct to /json; returns status, copies body. */
static long post_json(const char *ct, const char *body, char *out, size_t outsz, char *rct,
                      size_t rctsz) {
  char url[128], hdr[128], err[LC_ERR_LEN] = "";
  const char *h[2] = {hdr, NULL};
  lc_http_req rq;
  lc_http_resp r;
  long st;
  snprintf(url, sizeof url, "%s/json", g_base);
  snprintf(hdr, sizeof hdr, "Content-Type: %s", ct);
  memset(&rq, 0, sizeof rq);
  rq.method = "POST";
  rq.url = url;
  rq.headers = h;
  rq.body = body;
  rq.body_len = strlen(body);
  rq.keep_headers = 1;
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_OK);
  st = r.status;
  snprintf(out, outsz, "%s", r.body ? r.body : "");
  if (rct != NULL && lc_http_resp_header(&r, "Content-Type", rct, rctsz) != LC_OK) rct[0] = 0;
  lc_http_resp_free(&r);
  return st;
}

START_TEST(json_body_rules) {
  char b[512], ct[64];
  ck_assert_int_eq(post_json("application/json", "{\"email\":\"a@b.c\"}", b, sizeof b, ct,
                             sizeof ct),
                   201);
  ck_assert_str_eq(b, "{\"email\":\"a@b.c\"}");
  ck_assert_str_eq(ct, "application/json");
  ck_assert_int_eq(post_json("Application/JSON; charset=utf-8", "{}", b, sizeof b, NULL, 0), 201);
  ck_assert_int_eq(post_json("text/plain", "{}", b, sizeof b, ct, sizeof ct), 415);
  ck_assert_str_eq(ct, "application/problem+json");
  ck_assert_ptr_nonnull(strstr(b, "\"title\":\"Unsupported Media Type\""));
  ck_assert_ptr_nonnull(strstr(b, "\"status\":415"));
  ck_assert_int_eq(post_json("application/jsonx", "{}", b, sizeof b, NULL, 0), 415);
  ck_assert_int_eq(post_json("application/json", "[1]", b, sizeof b, NULL, 0), 400);
  ck_assert_int_eq(post_json("application/json", "5", b, sizeof b, NULL, 0), 400);
  ck_assert_int_eq(post_json("application/json", "{\"email\":", b, sizeof b, NULL, 0), 400);
  ck_assert_int_eq(post_json("application/json", "{\"a\":1,\"a\":2}", b, sizeof b, NULL, 0),
                   400);
  ck_assert_int_eq(post_json("application/json", "{\"role\":\"admin\"}", b, sizeof b, NULL, 0),
                   400);
  ck_assert_ptr_nonnull(strstr(b, "unknown field 'role'"));
  ck_assert_ptr_nonnull(strstr(b, "urn:problem:bad-request"));
  ck_assert_int_eq(post_json("application/json",
                             "{\"email\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                             b, sizeof b, NULL, 0),
                   413);
}
END_TEST

START_TEST(http_client_caps) {
  lc_http_req rq;
  lc_http_resp r;
  char url[128], err[LC_ERR_LEN] = "";
  memset(&rq, 0, sizeof rq);
  snprintf(url, sizeof url, "%s/metrics", g_base);
  rq.url = url;
  rq.max_resp = 5;
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_ERR_TOO_LARGE);
  ck_assert_ptr_null(r.body);
  lc_http_resp_free(&r);
  /* nothing listens on port 1 */
  rq.url = "http://127.0.0.1:1/";
  rq.max_resp = 0;
  ck_assert_int_eq(lc_http_do(&rq, &r, err), LC_ERR_IO);
  lc_http_resp_free(&r);
  rq.url = "file:///etc/passwd";
  ck_assert_int_ne(lc_http_do(&rq, &r, err), LC_OK);
  lc_http_resp_free(&r);
}
END_TEST

/* Self-signed P-256 test certificate for 127.0.0.1 (test-only key). */
static const char TEST_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgK0Favr4HNE2YRw3Z\n"
    "irk4GI7MPUiJRfEKWuUcPBNhIVihRANCAAQ8ZNPc3acAroFdDqs5OeUOpt8yrTkA\n"
    "uHT3ERVo95NfK2w5+ME33ZckHYg8u6FLIAfS14UzSnEYEnspDyq0FzNx\n"
    "-----END PRIVATE KEY-----\n";
static const char TEST_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBkDCCATagAwIBAgIUKR7UPHa9xJViKEJfCBbGpRhHbu0wCgYIKoZIzj0EAwIw\n"
    "FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyODEyMjcxNFoYDzIxMjYxMTA0\n"
    "MTIyNzE0WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO\n"
    "PQMBBwNCAAQ8ZNPc3acAroFdDqs5OeUOpt8yrTkAuHT3ERVo95NfK2w5+ME33Zck\n"
    "HYg8u6FLIAfS14UzSnEYEnspDyq0FzNxo2QwYjAdBgNVHQ4EFgQUbKtgQv5xZh4u\n"
    "f/gK1f5jjSR7XOowHwYDVR0jBBgwFoAUbKtgQv5xZh4uf/gK1f5jjSR7XOowDwYD\n"
    "VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0gAMEUC\n"
    "IQCreuFtZ/rNA2QI1qlDYY95qfEZpFdIE1leQwSrUxnZcwIgRwGeUjv30fpnuKrS\n"
    "m1y9HSwyJhrkHfmzFDvt6q/jzvI=\n"
    "-----END CERTIFICATE-----\n";

static size_t discard(char *p, size_t sz, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return sz * n;
}

START_TEST(tls_server) {
  struct _u_instance inst;
  char err[LC_ERR_LEN] = "", url[96];
  int port = 0, attempt, rc = LC_ERR;
  long code = 0;
  CURL *c;
  for (attempt = 0; attempt < 20 && rc != LC_OK; attempt++) {
    port = 24000 + (int)randombytes_uniform(1000);
    ck_assert_int_eq(lc_svc_instance_init(&inst, "127.0.0.1", port, 0, err), LC_OK);
    ck_assert_int_eq(lc_svc_add_ops(&inst, "lctls", NULL, NULL), LC_OK);
    rc = lc_svc_start(&inst, TEST_KEY, TEST_CERT, 8, 5, err);
    if (rc != LC_OK) ulfius_clean_instance(&inst);
  }
  ck_assert_msg(rc == LC_OK, "tls start: %s", err);
  snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", port);
  c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  ck_assert_int_eq(code, 200);
  curl_easy_cleanup(c);
  /* plain HTTP to the TLS port gets no HTTP answer */
  {
    lc_http_req rq;
    lc_http_resp r;
    memset(&rq, 0, sizeof rq);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    rq.url = url;
    rq.timeout_ms = 3000;
    if (lc_http_do(&rq, &r, err) == LC_OK) ck_assert_int_ne(r.status, 200);
    lc_http_resp_free(&r);
    lc_http_thread_cleanup();
  }
  ulfius_stop_framework(&inst);
  ulfius_clean_instance(&inst);
  /* key without certificate is refused */
  ck_assert_int_eq(lc_svc_instance_init(&inst, "127.0.0.1", port, 0, err), LC_OK);
  ck_assert_int_eq(lc_svc_start(&inst, TEST_KEY, NULL, 8, 5, err), LC_ERR_PARAM);
  ulfius_clean_instance(&inst);
  ck_assert_int_eq(lc_svc_instance_init(&inst, "not-an-ip", port, 0, err), LC_ERR_PARAM);
}
END_TEST

Suite *iauth_suite(void) {
  Suite *s = suite_create("iauth");
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, server_up, server_down);
  tcase_add_test(tc, round_trip_ok);
  tcase_add_test(tc, replay_ring_release_keeps_semantics);
  tcase_add_test(tc, anonymous_ok);
  tcase_add_test(tc, wrong_secret);
  tcase_add_test(tc, tampered_body_path);
  tcase_add_test(tc, tampered_covered_headers);
  tcase_add_test(tc, replay_and_nonces);
  tcase_add_test(tc, verify_replay_window_and_full_cache);
  tcase_add_test(tc, replay_cache_unit);
  tcase_add_test(tc, full_cache_503);
  tcase_add_test(tc, stale_timestamp);
  tcase_add_test(tc, missing_or_repeated_header);
  tcase_add_test(tc, sign_rejects_bad_identity);
  tcase_add_test(tc, ops_limits_catchall);
  tcase_add_test(tc, ops_request_metrics);
  tcase_add_test(tc, http_client_caps);
  tcase_add_test(tc, json_body_rules);
  suite_add_tcase(s, tc);
  {
    TCase *tt = tcase_create("tls");
    tcase_set_timeout(tt, 60);
    tcase_add_test(tt, tls_server);
    suite_add_tcase(s, tt);
  }
  return s;
}
