/* Unit tests for gw_upstream: list parsing, selection (least in-flight,
 * round-robin, exclusion, fallback when nothing is usable), passive back-off,
 * active checks and the retry rule, against real sockets: two tiny ulfius
 * servers, a port nobody listens on, and a raw server that reads a request
 * and closes without answering (the request was delivered). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ulfius.h>

#include "gw_upstream.h"
#include "lc/svc.h"
#include "lc/util.h"

/* Ports are picked by the kernel (a socket bound to port 0, then closed), so
 * parallel stacks never collide. */
static int PORT_A, PORT_B, PORT_DEAD, PORT_DROP;

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

typedef struct {
  struct _u_instance inst;
  atomic_int ready; /* /readyz answers 200 when 1 */
  atomic_int hits;  /* requests to /work */
  int port;
} srv;

static srv A, B;

static int cb_readyz(const struct _u_request *req, struct _u_response *resp, void *ud) {
  (void)req;
  srv *s = ud;
  ulfius_set_string_body_response(resp, atomic_load(&s->ready) ? 200 : 503, "r");
  return U_CALLBACK_COMPLETE;
}

static int cb_healthz(const struct _u_request *req, struct _u_response *resp, void *ud) {
  (void)req;
  (void)ud;
  ulfius_set_string_body_response(resp, 200, "h");
  return U_CALLBACK_COMPLETE;
}

static int cb_work(const struct _u_request *req, struct _u_response *resp, void *ud) {
  (void)req;
  srv *s = ud;
  atomic_fetch_add(&s->hits, 1);
  char body[16];
  snprintf(body, sizeof(body), "%d", s->port);
  ulfius_set_string_body_response(resp, 200, body);
  return U_CALLBACK_COMPLETE;
}

static void srv_start(srv *s, int port) {
  memset(s, 0, sizeof(*s));
  s->port = port;
  atomic_store(&s->ready, 1);
  ck_assert_int_eq(ulfius_init_instance(&s->inst, (unsigned)port, NULL, NULL), U_OK);
  ulfius_add_endpoint_by_val(&s->inst, "GET", "/readyz", NULL, 0, cb_readyz, s);
  ulfius_add_endpoint_by_val(&s->inst, "GET", "/healthz", NULL, 0, cb_healthz, s);
  ulfius_add_endpoint_by_val(&s->inst, "*", "/work", NULL, 0, cb_work, s);
  ck_assert_int_eq(ulfius_start_framework(&s->inst), U_OK);
}

static void srv_stop(srv *s) {
  ulfius_stop_framework(&s->inst);
  ulfius_clean_instance(&s->inst);
}

/* Raw server: accepts, reads one request, closes without an answer. */
typedef struct {
  int fd;
  atomic_int got;
  pthread_t th;
} dropper;

static void *drop_main(void *arg) {
  dropper *d = arg;
  for (;;) {
    int c = accept(d->fd, NULL, NULL);
    if (c < 0)
      return NULL;
    char buf[4096];
    ssize_t n = read(c, buf, sizeof(buf));
    if (n > 0)
      atomic_fetch_add(&d->got, 1);
    close(c);
  }
}

static void drop_start(dropper *d, int port) {
  memset(d, 0, sizeof(*d));
  d->fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(d->fd, 0);
  int one = 1;
  setsockopt(d->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(d->fd, (struct sockaddr *)&a, sizeof(a)), 0);
  ck_assert_int_eq(listen(d->fd, 8), 0);
  ck_assert_int_eq(pthread_create(&d->th, NULL, drop_main, d), 0);
}

static void drop_stop(dropper *d) {
  shutdown(d->fd, SHUT_RDWR);
  close(d->fd);
  pthread_join(d->th, NULL);
}

static void setup(void) {
  ck_assert_int_eq(lc_global_init(), LC_OK);
  PORT_A = free_port();
  PORT_B = free_port();
  PORT_DEAD = free_port();
  PORT_DROP = free_port();
  srv_start(&A, PORT_A);
  srv_start(&B, PORT_B);
}

static void teardown(void) {
  srv_stop(&A);
  srv_stop(&B);
  lc_http_thread_cleanup();
  lc_global_cleanup();
}

START_TEST(parses_lists) {
  gw_pool p;
  char err[LC_ERR_LEN];
  ck_assert_int_eq(gw_pool_init(&p, "x", "http://127.0.0.1:1/", 100, err), LC_OK);
  ck_assert_int_eq(p.n, 1);
  ck_assert_str_eq(gw_upstream_url(&p, 0), "http://127.0.0.1:1");
  ck_assert_int_eq(gw_pool_init(&p, "x", " http://a:1 , https://b:2/,http://c:3", 100, err), LC_OK);
  ck_assert_int_eq(p.n, 3);
  ck_assert_str_eq(gw_upstream_url(&p, 0), "http://a:1");
  ck_assert_str_eq(gw_upstream_url(&p, 1), "https://b:2");
  ck_assert_str_eq(gw_upstream_url(&p, 2), "http://c:3");
  ck_assert_str_eq(p.inst[1].series, "gateway_upstream_up{service=\"x\",instance=\"b:2\"}");
  ck_assert_int_eq(gw_pool_init(&p, "x", "", 100, err), LC_ERR_PARAM);
  ck_assert_int_eq(gw_pool_init(&p, "x", "http://a:1,", 100, err), LC_ERR_PARAM);
  ck_assert_int_eq(gw_pool_init(&p, "x", "http://a:1,,http://b:1", 100, err), LC_ERR_PARAM);
  ck_assert_int_eq(gw_pool_init(&p, "x", "ftp://a:1", 100, err), LC_ERR_PARAM);
  ck_assert_int_eq(gw_pool_init(&p, "x", "http://", 100, err), LC_ERR_PARAM);
  ck_assert_int_eq(gw_pool_init(&p, "x", "http://1,http://2,http://3,http://4,http://5,"
                                        "http://6,http://7,http://8,http://9", 100, err),
                   LC_ERR_PARAM);
}
END_TEST

START_TEST(retry_safe_methods) {
  ck_assert(gw_upstream_retry_safe("GET", "/v1/credits"));
  ck_assert(gw_upstream_retry_safe("HEAD", "/v1/files/x/content"));
  ck_assert(gw_upstream_retry_safe("GET", "/v1/reports/abc?x=/download"));
  ck_assert(!gw_upstream_retry_safe("GET", "/v1/reports/abc/download"));
  ck_assert(!gw_upstream_retry_safe("GET", "/v1/reports/abc/download?x=1"));
  ck_assert(!gw_upstream_retry_safe("GET", "/v1/service/metadata/abc"));
  ck_assert(!gw_upstream_retry_safe("POST", "/v1/files"));
  ck_assert(!gw_upstream_retry_safe("DELETE", "/v1/files/x"));
  ck_assert(!gw_upstream_retry_safe(NULL, "/v1/files"));
}
END_TEST

START_TEST(round_robin_and_least_inflight) {
  gw_pool p;
  char err[LC_ERR_LEN];
  ck_assert_int_eq(gw_pool_init(&p, "x", "http://a:1,http://b:1,http://c:1", 100, err), LC_OK);
  int count[3] = {0, 0, 0};
  for (int k = 0; k < 300; k++) {
    int i = gw_upstream_pick(&p, -1, 1000);
    ck_assert_int_ge(i, 0);
    count[i]++;
    gw_upstream_release(&p, i, 0, 1000);
  }
  ck_assert_int_eq(count[0], 100);
  ck_assert_int_eq(count[1], 100);
  ck_assert_int_eq(count[2], 100);
  /* two held on a and b: the next picks go to c until it is as loaded */
  int a = gw_upstream_pick(&p, -1, 1000);
  int b = gw_upstream_pick(&p, -1, 1000);
  ck_assert_int_ne(a, b);
  int c = 3 - a - b;
  for (int k = 0; k < 5; k++) {
    int i = gw_upstream_pick(&p, -1, 1000);
    ck_assert_int_eq(i, c);
    gw_upstream_release(&p, i, 0, 1000);
  }
  /* exclusion */
  for (int k = 0; k < 6; k++) {
    int i = gw_upstream_pick(&p, c, 1000);
    ck_assert_int_ne(i, c);
    gw_upstream_release(&p, i, 0, 1000);
  }
  gw_upstream_release(&p, a, 0, 1000);
  gw_upstream_release(&p, b, 0, 1000);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(atomic_load(&p.inst[i].inflight), 0);
  /* a pool of one: no other instance */
  ck_assert_int_eq(gw_pool_init(&p, "x", "http://a:1", 100, err), LC_OK);
  ck_assert_int_eq(gw_upstream_pick(&p, 0, 1000), -1);
}
END_TEST

START_TEST(passive_backoff_and_active_recovery) {
  gw_pool p;
  char err[LC_ERR_LEN];
  ck_assert_int_eq(gw_pool_init(&p, "x", "http://a:1,http://b:1", 500, err), LC_OK);
  int i = gw_upstream_pick(&p, -1, 1000);
  gw_upstream_release(&p, i, 1, 1000); /* transport failure at t=1000 */
  ck_assert(!gw_upstream_usable(&p, i, 1000));
  ck_assert(!gw_upstream_usable(&p, i, 1499));
  ck_assert(gw_upstream_usable(&p, i, 1500));
  ck_assert_int_eq(gw_upstream_nusable(&p, 1200), 1);
  for (int k = 0; k < 10; k++) {
    int j = gw_upstream_pick(&p, -1, 1200);
    ck_assert_int_ne(j, i);
    gw_upstream_release(&p, j, 0, 1200);
  }
  /* a passing readiness check ends the back-off early */
  gw_upstream_set_checked(&p, i, 1);
  ck_assert(gw_upstream_usable(&p, i, 1200));
  /* a failing check takes it out until a check passes */
  gw_upstream_set_checked(&p, i, 0);
  ck_assert(!gw_upstream_usable(&p, i, 99999));
  /* nothing usable: still tried, round-robin over all */
  gw_upstream_set_checked(&p, 1 - i, 0);
  ck_assert_int_eq(gw_upstream_nusable(&p, 1200), 0);
  int seen[2] = {0, 0};
  for (int k = 0; k < 4; k++) {
    int j = gw_upstream_pick(&p, -1, 1200);
    ck_assert_int_ge(j, 0);
    seen[j]++;
    gw_upstream_release(&p, j, 0, 1200);
  }
  ck_assert_int_eq(seen[0], 2);
  ck_assert_int_eq(seen[1], 2);
  /* ... an instance that answered its check ("not ready") before a silent one */
  gw_upstream_set_alive(&p, 0, 0);
  for (int k = 0; k < 4; k++) {
    int j = gw_upstream_pick(&p, -1, 1200);
    ck_assert_int_eq(j, 1);
    gw_upstream_release(&p, j, 0, 1200);
  }
  ck_assert_int_eq(gw_upstream_nalive(&p), 1);
}
END_TEST

static char *do_get(gw_pool *p, const char *method, int *rc_out, int *status) {
  char err[LC_ERR_LEN];
  lc_http_req hr = {.method = method, .timeout_ms = 2000, .body = method[0] == 'P' ? "{}" : NULL,
                    .body_len = method[0] == 'P' ? 2 : 0};
  lc_http_resp resp = {0};
  *rc_out = gw_upstream_do(p, "/work", gw_upstream_retry_safe(method, "/work"), &hr, &resp, err);
  *status = (int)resp.status;
  char *body = resp.body != NULL ? strdup(resp.body) : NULL;
  lc_http_resp_free(&resp);
  return body;
}

START_TEST(connect_failure_is_retried_on_another_instance) {
  gw_pool p;
  char err[LC_ERR_LEN];
  char list[128];
  snprintf(list, sizeof(list), "http://127.0.0.1:%d,http://127.0.0.1:%d", PORT_DEAD, PORT_A);
  ck_assert_int_eq(gw_pool_init(&p, "x", list, 60000, err), LC_OK);
  /* a POST whose first pick is the dead port: nothing was sent, so it is
   * retried once on A, exactly one delivery */
  for (int k = 0; k < 2; k++) {
    int rc = 0, st = 0;
    char *body = do_get(&p, "POST", &rc, &st);
    ck_assert_int_eq(rc, LC_OK);
    ck_assert_int_eq(st, 200);
    char want[16];
    snprintf(want, sizeof(want), "%d", PORT_A);
    ck_assert_str_eq(body, want);
    free(body);
  }
  ck_assert_int_eq(atomic_load(&A.hits), 2);
  /* the dead instance is backed off: later picks avoid it */
  ck_assert(!gw_upstream_usable(&p, 0, lc_mono_ms()));
  ck_assert_int_eq(atomic_load(&p.inst[0].inflight), 0);
  ck_assert_int_eq(atomic_load(&p.inst[1].inflight), 0);
  /* the active check sees it closed and A ready */
  ck_assert_int_eq(gw_health_check_pool(&p, 500), 1);
  ck_assert_int_eq(gw_upstream_nalive(&p), 1);
  /* A not ready -> none usable -> requests are still tried (A answers);
   * A answered the check, so it still counts as alive */
  atomic_store(&A.ready, 0);
  ck_assert_int_eq(gw_health_check_pool(&p, 500), 0);
  ck_assert(gw_upstream_usable(&p, 1, lc_mono_ms())); /* one "not ready" is no verdict */
  ck_assert_int_eq(gw_health_check_pool(&p, 500), 0);
  ck_assert(!gw_upstream_usable(&p, 1, lc_mono_ms())); /* two in a row are */
  ck_assert_int_eq(gw_upstream_nalive(&p), 1);
  int rc = 0, st = 0;
  free(do_get(&p, "GET", &rc, &st));
  ck_assert_int_eq(rc, LC_OK);
}
END_TEST

START_TEST(delivered_post_is_not_retried_get_is) {
  dropper d;
  drop_start(&d, PORT_DROP);
  gw_pool p;
  char err[LC_ERR_LEN];
  char list[128];
  snprintf(list, sizeof(list), "http://127.0.0.1:%d,http://127.0.0.1:%d", PORT_DROP, PORT_B);
  ck_assert_int_eq(gw_pool_init(&p, "x", list, 0, err), LC_OK);
  int post_ok = 0, post_fail = 0, get_ok = 0;
  for (int k = 0; k < 4; k++) {
    int rc = 0, st = 0;
    free(do_get(&p, "POST", &rc, &st));
    if (rc == LC_OK)
      post_ok++;
    else
      post_fail++;
  }
  /* round-robin: two POSTs went to the dropper and failed (delivered, no
   * answer: never repeated), two reached B */
  ck_assert_int_eq(post_fail, 2);
  ck_assert_int_eq(post_ok, 2);
  ck_assert_int_eq(atomic_load(&B.hits), 2);
  ck_assert_int_ge(atomic_load(&d.got), 2);
  for (int k = 0; k < 4; k++) {
    int rc = 0, st = 0;
    free(do_get(&p, "GET", &rc, &st));
    get_ok += rc == LC_OK;
  }
  ck_assert_int_eq(get_ok, 4); /* idempotent: retried on B */
  ck_assert_int_eq(atomic_load(&B.hits), 6);
  drop_stop(&d);
}
END_TEST

START_TEST(health_thread_detects_changes) {
  gw_pool p;
  char err[LC_ERR_LEN];
  char list[128];
  snprintf(list, sizeof(list), "http://127.0.0.1:%d,http://127.0.0.1:%d", PORT_A, PORT_B);
  ck_assert_int_eq(gw_pool_init(&p, "x", list, 60000, err), LC_OK);
  gw_pool *pools[1] = {&p};
  gw_health h;
  ck_assert_int_eq(gw_health_start(&h, pools, 1, 100, 500, err), LC_OK);
  atomic_store(&B.ready, 0);
  int64_t t0 = lc_mono_ms();
  while (gw_upstream_usable(&p, 1, lc_mono_ms()) && lc_mono_ms() - t0 < 3000)
    usleep(10000);
  int64_t detect = lc_mono_ms() - t0;
  ck_assert(!gw_upstream_usable(&p, 1, lc_mono_ms()));
  ck_assert_int_lt(detect, 1000);
  /* back: recovered by the next check */
  atomic_store(&B.ready, 1);
  t0 = lc_mono_ms();
  while (!gw_upstream_usable(&p, 1, lc_mono_ms()) && lc_mono_ms() - t0 < 3000)
    usleep(10000);
  ck_assert(gw_upstream_usable(&p, 1, lc_mono_ms()));
  gw_health_stop(&h);
  gw_health_stop(&h); /* idempotent */
  /* a pool of one is probed for liveness only (/healthz): "not ready" does
   * not matter when there is no other instance to choose */
  snprintf(list, sizeof(list), "http://127.0.0.1:%d", PORT_B);
  ck_assert_int_eq(gw_pool_init(&p, "x", list, 60000, err), LC_OK);
  atomic_store(&B.ready, 0);
  ck_assert_int_eq(gw_health_check_pool(&p, 500), 1);
  ck_assert_int_eq(gw_health_check_pool(&p, 500), 1);
  ck_assert(gw_upstream_usable(&p, 0, lc_mono_ms()));
}
END_TEST

/* Concurrent picks/releases/back-offs/checks: counters stay consistent
 * (and TSan sees the pool's shared state). */
static gw_pool g_cp;
static void *hammer(void *arg) {
  long id = (long)arg;
  for (int k = 0; k < 20000; k++) {
    int64_t now = lc_mono_ms();
    int i = gw_upstream_pick(&g_cp, (int)(k % 4) - 1, now);
    if (i >= 0)
      gw_upstream_release(&g_cp, i, (k + id) % 97 == 0, now);
    if (k % 1000 == 0) {
      gw_upstream_set_checked(&g_cp, (int)(id % 3), k % 2000 == 0);
      gw_upstream_publish(&g_cp, now);
    }
  }
  return NULL;
}

START_TEST(concurrent_picks_are_consistent) {
  char err[LC_ERR_LEN];
  ck_assert_int_eq(gw_pool_init(&g_cp, "x", "http://a:1,http://b:1,http://c:1", 5, err), LC_OK);
  pthread_t th[4];
  for (long t = 0; t < 4; t++)
    ck_assert_int_eq(pthread_create(&th[t], NULL, hammer, (void *)t), 0);
  for (int t = 0; t < 4; t++)
    pthread_join(th[t], NULL);
  uint64_t picks = 0;
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(atomic_load(&g_cp.inst[i].inflight), 0);
    picks += atomic_load(&g_cp.inst[i].picks);
  }
  ck_assert_uint_eq(picks, 4u * 20000u);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("gw_upstream");
  TCase *pure = tcase_create("selection");
  tcase_add_test(pure, parses_lists);
  tcase_add_test(pure, retry_safe_methods);
  tcase_add_test(pure, round_robin_and_least_inflight);
  tcase_add_test(pure, passive_backoff_and_active_recovery);
  tcase_add_test(pure, concurrent_picks_are_consistent);
  suite_add_tcase(s, pure);
  TCase *net = tcase_create("sockets");
  tcase_add_checked_fixture(net, setup, teardown);
  tcase_set_timeout(net, 30);
  tcase_add_test(net, connect_failure_is_retried_on_another_instance);
  tcase_add_test(net, delivered_post_is_not_retried_get_is);
  tcase_add_test(net, health_thread_detects_changes);
  suite_add_tcase(s, net);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
