/* test_stream.c - stream routes (lc_svc_stream_route) beside ordinary ulfius
 * routes on one instance, lc_http_do_stream, and the unsigned-payload
 * internal signature. */
#include <check.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lc/http.h"
#include "lc/iauth.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "lc_tests.h"

#define UID "7a1c0f0e-3b7d-4c55-9a43-2f1e0b6c9d11"
#define MAXB 65536

static atomic_int g_begins, g_dones, g_completed, g_plain_calls;

typedef struct {
  size_t bytes, chunks;
  uint32_t sum;
} st_state;

static int st_begin(const struct _u_request *req, struct _u_response *resp, void **state,
                    void *ud) {
  (void)ud;
  atomic_fetch_add(&g_begins, 1);
  if (u_map_get_case(req->map_header, "X-Refuse") != NULL)
    return lc_problem(resp, 403, NULL, "refused on headers");
  *state = lc_xcalloc(1, sizeof(st_state));
  return U_CALLBACK_CONTINUE;
}

static int st_data(void *state, const char *buf, size_t len, struct _u_response *resp) {
  st_state *s = state;
  s->bytes += len;
  s->chunks++;
  for (size_t i = 0; i < len; i++)
    s->sum = s->sum * 31 + (uint8_t)buf[i];
  if (s->bytes > 40000 && s->bytes - len <= 40000 && memmem(buf, len, "STOP", 4) != NULL)
    return lc_problem(resp, 422, NULL, "stopped by data"), LC_ERR;
  return LC_OK;
}

static int st_end(void *state, const struct _u_request *req, struct _u_response *resp) {
  st_state *s = state;
  char body[128];
  int n = snprintf(body, sizeof body, "{\"bytes\":%zu,\"sum\":%u,\"q\":\"%s\"}", s->bytes, s->sum,
                   u_map_get(req->map_url, "q") ? u_map_get(req->map_url, "q") : "");
  ulfius_set_binary_body_response(resp, 201, body, (size_t)n);
  u_map_put(resp->map_header, "Content-Type", "application/json");
  return U_CALLBACK_COMPLETE;
}

static void st_done(void *state, int completed) {
  free(state);
  atomic_fetch_add(&g_dones, 1);
  if (completed)
    atomic_fetch_add(&g_completed, 1);
}

static int cb_plain(const struct _u_request *req, struct _u_response *resp, void *ud) {
  char body[64];
  int n = snprintf(body, sizeof body, "plain %zu", req->binary_body_length);
  (void)ud;
  atomic_fetch_add(&g_plain_calls, 1);
  ulfius_set_binary_body_response(resp, 200, body, (size_t)n);
  return U_CALLBACK_COMPLETE;
}

static struct _u_instance g_inst;
static char g_base[64];
static int g_port;

static int decorate(const struct _u_request *req, struct _u_response *resp, void *ud) {
  (void)req;
  (void)ud;
  u_map_put(resp->map_header, "X-Guarded", "1");
  return U_CALLBACK_CONTINUE;
}

static void up(void) {
  static const lc_stream_ops ops = {st_begin, st_data, st_end, st_done};
  char err[LC_ERR_LEN] = "";
  int rc = LC_ERR;
  for (int attempt = 0; attempt < 20 && rc != LC_OK; attempt++) {
    int port = 23000 + (int)randombytes_uniform(1000);
    ck_assert_int_eq(lc_svc_instance_init(&g_inst, "127.0.0.1", port, MAXB, err), LC_OK);
    ck_assert_int_eq(lc_svc_add_ops(&g_inst, "sttest", NULL, NULL), LC_OK);
    ck_assert_int_eq(lc_svc_route(&g_inst, "POST", "/plain", LC_PRIO_APP, cb_plain, NULL), LC_OK);
    ck_assert_int_eq(lc_svc_stream_route(&g_inst, "POST", "/up", &ops, NULL), LC_OK);
    static const char *const strict[] = {"Idempotency-Key", NULL};
    const lc_svc_guard_cfg guard = {strict, 20, decorate, NULL};
    ck_assert_int_eq(lc_svc_guard(&g_inst, &guard), LC_OK);
    g_port = port;
    rc = lc_svc_start(&g_inst, NULL, NULL, 16, 5, err);
    if (rc != LC_OK)
      ulfius_clean_instance(&g_inst);
    else
      snprintf(g_base, sizeof g_base, "http://127.0.0.1:%d", port);
  }
  ck_assert_msg(rc == LC_OK, "start: %s", err);
}

static void down(void) {
  lc_http_thread_cleanup();
  ulfius_stop_framework(&g_inst);
  ulfius_clean_instance(&g_inst);
}

typedef struct {
  const char *p;
  size_t left, step;
} src;

static size_t rd(char *dst, size_t size, size_t nitems, void *ud) {
  src *s = ud;
  size_t n = size * nitems;
  if (n > s->left)
    n = s->left;
  if (n > s->step)
    n = s->step;
  memcpy(dst, s->p, n);
  s->p += n;
  s->left -= n;
  return n;
}

static long post(const char *path, const char *body, size_t len, int chunked, size_t step,
                 const char *extra, char *out, size_t outsz) {
  char url[128], err[LC_ERR_LEN] = "";
  const char *h[] = {extra, NULL};
  lc_http_req rq = {.method = "POST", .url = url, .headers = extra ? h : NULL, .timeout_ms = 5000};
  lc_http_resp rs;
  src s = {body, len, step};
  long st;
  snprintf(url, sizeof url, "%s%s", g_base, path);
  ck_assert_msg(lc_http_do_stream(&rq, rd, &s, chunked ? -1 : (int64_t)len, &rs, err) == LC_OK,
                "%s %zu chunked %d: %s", path, len, chunked, err);
  st = rs.status;
  if (out != NULL)
    snprintf(out, outsz, "%.*s", (int)rs.len, rs.body ? rs.body : "");
  lc_http_resp_free(&rs);
  return st;
}

static uint32_t sum_of(const char *p, size_t n) {
  uint32_t s = 0;
  for (size_t i = 0; i < n; i++)
    s = s * 31 + (uint8_t)p[i];
  return s;
}

START_TEST(stream_route_chunks) {
  static char body[60000];
  char out[256], want[128];
  int begins0 = atomic_load(&g_begins); /* counters span tests when CK_FORK=no */
  for (size_t i = 0; i < sizeof body; i++)
    body[i] = (char)('a' + i % 23);
  snprintf(want, sizeof want, "{\"bytes\":%zu,\"sum\":%u,\"q\":\"x y\"}", sizeof body,
           sum_of(body, sizeof body));
  /* with Content-Length, sent in small pieces */
  ck_assert_int_eq(post("/up?q=x%20y", body, sizeof body, 0, 1000, NULL, out, sizeof out), 201);
  ck_assert_str_eq(out, want);
  /* chunked (no length) */
  ck_assert_int_eq(post("/up?q=x%20y", body, sizeof body, 1, 7000, NULL, out, sizeof out), 201);
  ck_assert_str_eq(out, want);
  /* an empty body still ends */
  ck_assert_int_eq(post("/up", "", 0, 0, 1, NULL, out, sizeof out), 201);
  ck_assert_str_eq(out, "{\"bytes\":0,\"sum\":0,\"q\":\"\"}");
  /* the ordinary ulfius route on the same instance still gets its body */
  ck_assert_int_eq(post("/plain", body, 1234, 0, 100, NULL, out, sizeof out), 200);
  ck_assert_str_eq(out, "plain 1234");
  ck_assert_int_eq(post("/nowhere", body, 10, 0, 100, NULL, out, sizeof out), 404);
  ck_assert_int_eq(atomic_load(&g_begins) - begins0, 3);
}
END_TEST

START_TEST(stream_route_limits_and_refusals) {
  static char body[MAXB + 10];
  char out[256];
  int begins0 = atomic_load(&g_begins);
  memset(body, 'z', sizeof body);
  /* refused on headers: the body is read and discarded, the answer arrives */
  ck_assert_int_eq(post("/up", body, 50000, 0, 4096, "X-Refuse: 1", out, sizeof out), 403);
  ck_assert_ptr_nonnull(strstr(out, "refused on headers"));
  /* Content-Length over the limit: 413 before begin */
  ck_assert_int_eq(post("/up", body, MAXB + 1, 0, 65536, NULL, out, sizeof out), 413);
  /* chunked past the limit: cut with 413 */
  ck_assert_int_eq(post("/up", body, MAXB + 10, 1, 8192, NULL, out, sizeof out), 413);
  /* data refuses mid-body */
  memcpy(body + 40500, "STOP", 4);
  ck_assert_int_eq(post("/up", body, 60000, 0, 1024, NULL, out, sizeof out), 422);
  /* a request that is not a number */
  ck_assert_int_eq(post("/up", body, 100, 0, 100, NULL, out, sizeof out), 201);
  ck_assert_int_eq(atomic_load(&g_begins) - begins0, 4); /* the Content-Length 413 never began */
}
END_TEST

START_TEST(stream_route_done_once) {
  char out[256];
  int dones0, completed0;
  /* earlier requests (CK_FORK=no) are all done once their answers were read */
  usleep(100000);
  dones0 = atomic_load(&g_dones);
  completed0 = atomic_load(&g_completed);
  /* done runs once per begun request, completed only for answered ends */
  ck_assert_int_eq(post("/up", "abc", 3, 0, 1, NULL, out, sizeof out), 201);
  ck_assert_int_eq(post("/up", "abc", 3, 0, 1, "X-Refuse: 1", out, sizeof out), 403);
  for (int i = 0; i < 100 && atomic_load(&g_dones) - dones0 < 2; i++)
    usleep(10000);
  ck_assert_int_eq(atomic_load(&g_dones) - dones0, 2);
  ck_assert_int_eq(atomic_load(&g_completed) - completed0, 1);
}
END_TEST

/* Sends len raw bytes on a new connection (no body unless in raw), reads
 * the answer for up to 2 s; returns its status (0 = none) and copies the
 * head into out. */
static int raw_request(const char *raw, size_t len, char *out, size_t outsz) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
  struct timeval tv = {2, 0};
  size_t got = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0;
  ck_assert_int_ge(fd, 0);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ck_assert_int_eq((int)send(fd, raw, len, MSG_NOSIGNAL), (int)len);
  while (got + 1 < outsz) {
    ssize_t n = recv(fd, out + got, outsz - 1 - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
    out[got] = '\0';
    if (strstr(out, "\r\n\r\n") != NULL && strstr(out, "Content-Length: ") != NULL) {
      const char *cl = strstr(out, "Content-Length: ") + 16, *end = strstr(out, "\r\n\r\n") + 4;
      char num[16];
      int64_t want = 0;
      (void)lc_strlcpy(num, cl, strcspn(cl, "\r") + 1 < sizeof num ? strcspn(cl, "\r") + 1
                                                                    : sizeof num);
      ck_assert_int_eq(lc_parse_i64(num, 0, (int64_t)outsz, &want), LC_OK);
      if ((int64_t)(out + got - end) >= want) break;
    }
  }
  out[got] = '\0';
  close(fd);
  if (got > 12 && strncmp(out, "HTTP/1.1 ", 9) == 0) {
    char code[4];
    int64_t v = 0;
    (void)lc_strlcpy(code, out + 9, sizeof code);
    if (lc_parse_i64(code, 100, 599, &v) == LC_OK) status = (int)v;
  }
  return status;
}

static int raw_post(const char *target, const char *extra, size_t extra_len, const char *clen,
                    char *out, size_t outsz) {
  char req[512];
  size_t n = (size_t)snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: x\r\n", target);
  memcpy(req + n, extra, extra_len);
  n += extra_len;
  n += (size_t)snprintf(req + n, sizeof req - n, "Content-Length: %s\r\n\r\n%s", clen,
                        strcmp(clen, "2") == 0 ? "{}" : "");
  return raw_request(req, n, out, outsz);
}

/* lc_svc_guard: refused on the raw request, before ulfius sees it. */
START_TEST(guard_raw_request) {
  static char out[4096];
  int plain0 = atomic_load(&g_plain_calls);
  /* a valid key reaches the route */
  ck_assert_int_eq(raw_post("/plain", "Idempotency-Key: ok-key\r\n", 25, "2", out, sizeof out),
                   200);
  ck_assert_ptr_nonnull(strstr(out, "plain 2"));
  ck_assert_ptr_null(strstr(out, "X-Guarded"));
  /* a non-ASCII byte, a space, a control byte, an empty value, one byte
   * over ascii_max (20), a bad second occurrence. (A NUL inside a value is
   * cut by libmicrohttpd 0.9.75 itself before any callback: "k\0x" arrives
   * as "k" - see lc/svc.h.) */
  static const struct { const char *h; size_t n; } bad[] = {
      {"Idempotency-Key: \xff\xfe\r\n", 21},
      {"Idempotency-Key: k x\r\n", 22},       {"Idempotency-Key: k\x01x\r\n", 22},
      {"Idempotency-Key: \r\n", 19},          {"idempotency-key: 123456789012345678901\r\n", 40},
      {"Idempotency-Key: ok\r\nIdempotency-Key: k\x7f\r\n", 42},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(raw_post("/plain", bad[i].h, bad[i].n, "2", out, sizeof out) == 400,
                  "case %zu: %.80s", i, out);
    ck_assert_msg(strstr(out, "Idempotency-Key must be 1..20 visible ASCII") != NULL, "case %zu",
                  i);
    ck_assert_ptr_nonnull(strstr(out, "application/problem+json"));
    ck_assert_ptr_nonnull(strstr(out, "X-Guarded: 1")); /* decorate ran */
  }
  /* exactly ascii_max bytes is fine */
  ck_assert_int_eq(
      raw_post("/plain", "Idempotency-Key: 12345678901234567890\r\n", 39, "2", out, sizeof out),
      200);
  /* an encoded NUL anywhere in the target, also on stream routes */
  ck_assert_int_eq(raw_post("/plain?c=%00", "", 0, "2", out, sizeof out), 400);
  ck_assert_ptr_nonnull(strstr(out, "encoded NUL"));
  ck_assert_int_eq(raw_post("/up%00x", "", 0, "2", out, sizeof out), 400);
  /* Content-Length over max_body on an ordinary (buffered) route: 413 on the
   * headers alone - the body is never sent here, the answer still comes */
  ck_assert_int_eq(raw_post("/plain", "", 0, "65537", out, sizeof out), 413);
  ck_assert_ptr_nonnull(strstr(out, "request body too large"));
  ck_assert_int_eq(raw_post("/plain", "", 0, "12x", out, sizeof out), 400);
  ck_assert_int_eq(atomic_load(&g_plain_calls) - plain0, 2);
  /* bad arguments */
  ck_assert_int_eq(lc_svc_guard(NULL, NULL), LC_ERR_PARAM);
  struct _u_instance other;
  memset(&other, 0, sizeof other);
  const lc_svc_guard_cfg none = {NULL, 0, NULL, NULL};
  ck_assert_int_eq(lc_svc_guard(&other, &none), LC_ERR_PARAM); /* not an lc_svc instance */
}
END_TEST

/* A ulfius request as the server would build it from signed lines. */
static void fake(struct _u_request *rq, const char *path, const lc_iauth_headers *h,
                 const char *cl) {
  ck_assert_int_eq(ulfius_init_request(rq), U_OK);
  o_free(rq->http_verb);
  rq->http_verb = o_strdup("POST");
  rq->http_url = o_strdup(path);
  for (int i = 0; i < h->count; i++) {
    char name[64];
    const char *c = strpbrk(h->line[i], ":;");
    snprintf(name, sizeof name, "%.*s", (int)(c - h->line[i]), h->line[i]);
    u_map_put(rq->map_header, name, *c == ';' ? "" : c + 2);
  }
  if (cl != NULL)
    u_map_put(rq->map_header, "Content-Length", cl);
  if (strcmp(path, "/v1/files") == 0 && cl != NULL && strcmp(cl, "0") != 0)
    u_map_put(rq->map_header, "Content-Type", "text/plain");
}

START_TEST(iauth_unsigned_payload) {
  static const uint8_t secret[] = "0123456789abcdef0123456789abcdef";
  lc_iauth_ctx c = {secret, 32, 30, NULL};
  lc_identity id, got;
  lc_iauth_headers h;
  struct _u_request q;
  char err[LC_ERR_LEN] = "";
  const int64_t T = 1800000000;
  c.replay = lc_iauth_replay_new(100);
  memset(&id, 0, sizeof id);
  snprintf(id.user_id, sizeof id.user_id, "%s", UID);
  snprintf(id.role, sizeof id.role, "user");
  snprintf(id.scope, sizeof id.scope, "full");
  /* signed with the length: verified with the length */
  ck_assert_int_eq(lc_iauth_sign_unsigned(secret, 32, "POST", "/v1/files", &id, 1234,
                                          "text/plain", NULL, T, &h), LC_OK);
  fake(&q, "/v1/files", &h, "1234");
  ck_assert_int_eq(lc_iauth_verify_unsigned(&q, &c, T, &got, err), LC_OK);
  ck_assert_str_eq(got.user_id, UID);
  ulfius_clean_request(&q);
  /* another length, or the body-hash verifier: refused */
  ck_assert_int_eq(lc_iauth_sign_unsigned(secret, 32, "POST", "/v1/files", &id, 1234,
                                          "text/plain", NULL, T, &h), LC_OK);
  fake(&q, "/v1/files", &h, "1235");
  ck_assert_int_eq(lc_iauth_verify_unsigned(&q, &c, T, &got, err), LC_ERR_UNAUTH);
  ulfius_clean_request(&q);
  fake(&q, "/v1/files", &h, "1234");
  ck_assert_int_eq(lc_iauth_verify(&q, &c, T, &got, err), LC_ERR_UNAUTH);
  ulfius_clean_request(&q);
  /* chunked (-1): no Content-Length on either side */
  ck_assert_int_eq(lc_iauth_sign_unsigned(secret, 32, "POST", "/v1/files", &id, -1, NULL, NULL,
                                          T, &h), LC_OK);
  fake(&q, "/v1/files", &h, NULL);
  ck_assert_msg(lc_iauth_verify_unsigned(&q, &c, T, &got, err) == LC_OK, "%s", err);
  ulfius_clean_request(&q);
  /* a body-signed request does not pass the unsigned verifier */
  ck_assert_int_eq(lc_iauth_sign(secret, 32, "POST", "/v1/files", &id, "", 0, NULL, NULL, T, &h),
                   LC_OK);
  fake(&q, "/v1/files", &h, "0");
  ck_assert_int_eq(lc_iauth_verify_unsigned(&q, &c, T, &got, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(lc_iauth_verify(&q, &c, T, &got, err), LC_OK);
  ulfius_clean_request(&q);
  lc_iauth_replay_free(c.replay);
}
END_TEST

Suite *stream_suite(void) {
  Suite *s = suite_create("stream");
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, up, down);
  tcase_add_test(tc, stream_route_chunks);
  tcase_add_test(tc, stream_route_limits_and_refusals);
  tcase_add_test(tc, stream_route_done_once);
  tcase_add_test(tc, guard_raw_request);
  suite_add_tcase(s, tc);
  TCase *tu = tcase_create("iauth");
  tcase_add_test(tu, iauth_unsigned_payload);
  suite_add_tcase(s, tu);
  return s;
}
