/* test_integration.c - storage-svc against the running dev infrastructure:
 * s3rver (STORAGE_TEST_S3_ENDPOINT, default http://127.0.0.1:24568) and
 * PostgreSQL (STORAGE_TEST_PG_URL, default postgresql://postgres@127.0.0.1:25432/saas).
 * Every test creates its own bucket / rows with random ids, so order does
 * not matter. The first flow tests point the credit client at a closed
 * port and check that nothing is stored or listed. The settlement tests
 * (exactly-once, settle.h) use the stack's real credit-svc
 * (STORAGE_CREDIT_URL + INTERNAL_SECRET, exported by tests/run.sh) behind a
 * fault-injecting TCP proxy in this file: per request it forwards, drops the
 * answer after credit-svc processed the request, or swallows the request and
 * never answers. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "creditc.h"
#include "files.h"
#include "idem.h"
#include "lc/db.h"
#include "lc/http.h"
#include "lc/util.h"
#include "names.h"
#include "reports.h"
#include "s3.h"
#include "settle.h"
#include "sniff.h"

#define CLOSED_URL "http://127.0.0.1:1"

static const char *env_or(const char *name, const char *def)
{
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0' ? v : def;
}

static void random_bucket(char out[40])
{
  uint8_t r[8];
  char hex[17];

  lc_random(r, sizeof(r));
  lc_hex_encode(r, sizeof(r), hex);
  snprintf(out, 40, "storage-itest-%s", hex);
}

static void s3_open(storage_s3 *s3, const char *endpoint, const char *bucket)
{
  char err[LC_ERR_LEN];

  ck_assert_int_eq(storage_s3_init(s3, endpoint, "us-east-1", bucket, "S3RVER", "S3RVER", 3000,
                                   err), LC_OK);
}

START_TEST(s3_round_trip)
{
  storage_s3 s3;
  char bucket[40], err[LC_ERR_LEN], *body = NULL;
  const char *doc = "{\"report_id\":\"x\",\"entries\":[1,2,3],\"t\":\"\xc3\xa9\"}";
  const char *key = "reports/0b7a2b8e-1111-4222-8333-944455556666/a-b_c.d.json";
  size_t len = 0;

  random_bucket(bucket);
  s3_open(&s3, env_or("STORAGE_TEST_S3_ENDPOINT", "http://127.0.0.1:24568"), bucket);
  ck_assert_int_eq(storage_s3_ensure_bucket(&s3, err), LC_OK);
  /* a second call must also succeed (already exists / owned by us) */
  ck_assert_int_eq(storage_s3_ensure_bucket(&s3, err), LC_OK);
  ck_assert_int_eq(storage_s3_ping(&s3), 1);

  ck_assert_int_eq(storage_s3_put_object(&s3, key, doc, strlen(doc), "application/json", err),
                   LC_OK);
  ck_assert_int_eq(storage_s3_get_object(&s3, key, 1 << 20, &body, &len, err), LC_OK);
  ck_assert_uint_eq(len, strlen(doc));
  ck_assert_mem_eq(body, doc, len);
  free(body);
  body = NULL;

  /* over the cap: an error, not a truncated body */
  ck_assert_int_eq(storage_s3_get_object(&s3, key, 4, &body, &len, err), LC_ERR_TOO_LARGE);
  ck_assert_ptr_null(body);

  /* overwrite with an empty body */
  ck_assert_int_eq(storage_s3_put_object(&s3, key, "", 0, "application/json", err), LC_OK);
  ck_assert_int_eq(storage_s3_get_object(&s3, key, 1 << 20, &body, &len, err), LC_OK);
  ck_assert_uint_eq(len, 0);
  free(body);
  body = NULL;

  ck_assert_int_eq(storage_s3_delete_object(&s3, key, err), LC_OK);
  ck_assert_int_eq(storage_s3_get_object(&s3, key, 1 << 20, &body, &len, err), LC_ERR_NOTFOUND);
  ck_assert_int_eq(storage_s3_get_object(&s3, "reports/none.json", 1 << 20, &body, &len, err),
                   LC_ERR_NOTFOUND);
  /* invalid keys never reach the store */
  ck_assert_int_eq(storage_s3_put_object(&s3, "../etc/passwd", "x", 1, "text/plain", err),
                   LC_ERR_PARAM);
  storage_s3_clear(&s3);
}
END_TEST

typedef struct {
  char *buf;
  size_t len, cap;
  int nheaders, ncalls;
  long status;
  int64_t clen;
  int stop_after_first;  /* data returns 1 after the first call */
  int abort_always;      /* aborted() is 1 from the start */
} gs_sink;

static void gs_reset(gs_sink *g, size_t cap, int stop, int abrt)
{
  memset(g, 0, sizeof(*g));
  g->buf = malloc(cap);
  g->cap = cap;
  g->stop_after_first = stop;
  g->abort_always = abrt;
}

static void gs_free(gs_sink *g)
{
  free(g->buf);
  g->buf = NULL;
}

static int gs_headers(void *ud, long status, int64_t clen)
{
  gs_sink *g = ud;

  g->nheaders++;
  g->status = status;
  g->clen = clen;
  return 0;
}

static int gs_data(void *ud, const char *buf, size_t n)
{
  gs_sink *g = ud;

  g->ncalls++;
  if (g->len + n > g->cap)
    return 1;
  memcpy(g->buf + g->len, buf, n);
  g->len += n;
  return g->stop_after_first && g->ncalls >= 1 ? 1 : 0;
}

static int gs_aborted(void *ud)
{
  gs_sink *g = ud;

  return g->abort_always;
}

START_TEST(s3_get_stream)
{
  storage_s3 s3;
  char bucket[40], err[LC_ERR_LEN] = "";
  const char *key = "files/0b7a2b8e-1111-4222-8333-944455556666/stream.bin";
  size_t n = 300 * 1024 + 7;
  char *doc = malloc(n);
  gs_sink g;
  storage_s3_sink sink = {gs_headers, gs_data, gs_aborted, &g};

  for (size_t i = 0; i < n; i++)
    doc[i] = (char)('a' + (i * 7) % 26);
  random_bucket(bucket);
  s3_open(&s3, env_or("STORAGE_TEST_S3_ENDPOINT", "http://127.0.0.1:24568"), bucket);
  ck_assert_int_eq(storage_s3_ensure_bucket(&s3, err), LC_OK);
  ck_assert_int_eq(storage_s3_put_object(&s3, key, doc, n, "text/plain", err), LC_OK);

  /* whole body, in order, after one headers call */
  gs_reset(&g, n, 0, 0);
  ck_assert_int_eq(storage_s3_get_stream(&s3, key, 0, &sink, err), LC_OK);
  ck_assert_int_eq(g.nheaders, 1);
  ck_assert_int_eq(g.status, 200);
  ck_assert_int_eq(g.clen, (int64_t)n);
  ck_assert_uint_eq(g.len, n);
  ck_assert_mem_eq(g.buf, doc, n);
  ck_assert_int_gt(g.ncalls, 1);
  gs_free(&g);

  /* the reader stops after the first chunk / goes away: the transfer ends */
  gs_reset(&g, n, 1, 0);
  ck_assert_int_eq(storage_s3_get_stream(&s3, key, 0, &sink, err), LC_ERR_UNAVAIL);
  ck_assert_int_eq(g.ncalls, 1);
  gs_free(&g);
  /* (the reader is gone from the start: how many bytes came first depends
   * on when libcurl polls; the transfer still fails) */
  gs_reset(&g, n, 0, 1);
  ck_assert_int_eq(storage_s3_get_stream(&s3, key, 0, &sink, err), LC_ERR_UNAVAIL);
  gs_free(&g);

  /* missing key: no headers call, no data, NOTFOUND */
  gs_reset(&g, n, 0, 0);
  ck_assert_int_eq(storage_s3_get_stream(&s3, "files/none/none", 0, &sink, err), LC_ERR_NOTFOUND);
  ck_assert_int_eq(g.nheaders, 0);
  ck_assert_uint_eq(g.len, 0);
  gs_free(&g);
  /* bad key never reaches the store */
  gs_reset(&g, n, 0, 0);
  ck_assert_int_eq(storage_s3_get_stream(&s3, "../x", 0, &sink, err), LC_ERR_PARAM);
  gs_free(&g);
  ck_assert_int_eq(storage_s3_delete_object(&s3, key, err), LC_OK);
  storage_s3_clear(&s3);

  /* store down */
  s3_open(&s3, CLOSED_URL, "storage-down");
  gs_reset(&g, n, 0, 0);
  ck_assert_int_eq(storage_s3_get_stream(&s3, key, 0, &sink, err), LC_ERR_UNAVAIL);
  ck_assert_ptr_null(strstr(err, "S3RVER"));
  ck_assert_int_eq(g.nheaders, 0);
  gs_free(&g);
  free(doc);
}
END_TEST

START_TEST(s3_store_down)
{
  storage_s3 s3;
  char err[LC_ERR_LEN] = "", *body = NULL;
  size_t len = 0;

  s3_open(&s3, CLOSED_URL, "storage-down");
  ck_assert_int_eq(storage_s3_put_object(&s3, "reports/x.json", "{}", 2, "application/json", err),
                   LC_ERR_UNAVAIL);
  ck_assert_ptr_null(strstr(err, "S3RVER")); /* no credentials in errors */
  ck_assert_int_eq(storage_s3_get_object(&s3, "reports/x.json", 100, &body, &len, err),
                   LC_ERR_UNAVAIL);
  ck_assert_ptr_null(body);
  ck_assert_int_eq(storage_s3_ensure_bucket(&s3, err), LC_ERR_UNAVAIL);
  ck_assert_int_eq(storage_s3_delete_object(&s3, "reports/x.json", err), LC_ERR_UNAVAIL);
  ck_assert_int_eq(storage_s3_ping(&s3), 0);
}
END_TEST

START_TEST(s3_missing_bucket)
{
  storage_s3 s3;
  char bucket[40], err[LC_ERR_LEN] = "";

  random_bucket(bucket);
  s3_open(&s3, env_or("STORAGE_TEST_S3_ENDPOINT", "http://127.0.0.1:24568"), bucket);
  /* bucket never created: the store answers 404 NoSuchBucket -> an error, no crash */
  ck_assert_int_eq(storage_s3_put_object(&s3, "k.json", "{}", 2, "application/json", err),
                   LC_ERR_IO);
  ck_assert_ptr_nonnull(strstr(err, "NoSuchBucket"));
}
END_TEST

/* ---- PostgreSQL: schema, listing, ownership ----------------------------- */

static lc_db_pool *g_pool;

static void db_setup(void)
{
  char err[LC_ERR_LEN];

  ck_assert_int_eq(lc_db_pool_new(env_or("STORAGE_TEST_PG_URL",
                                         "postgresql://postgres@127.0.0.1:25432/saas"),
                                  4, 5000, &g_pool, err), LC_OK);
  ck_assert_msg(lc_db_migrate(g_pool, "storage", STORAGE_SQL_DIR_DEFAULT, err) == LC_OK, "%s", err);
}

static void db_teardown(void)
{
  lc_db_pool_free(g_pool);
  g_pool = NULL;
}

/* Inserts a committed (debit_id set) or pending row, created `age_s` seconds ago. */
static void insert_row(const char *user, const char *id, int age_s, int committed)
{
  char age[16], key[120], err[LC_ERR_LEN];
  const char *p[5];
  PGconn *c = NULL;

  snprintf(age, sizeof(age), "%d", age_s);
  snprintf(key, sizeof(key), "reports/%s/%s.json", user, id);
  p[0] = id;
  p[1] = user;
  p[2] = key;
  p[3] = age;
  p[4] = committed ? "debit-1" : NULL;
  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  ck_assert_msg(lc_db_exec(c,
                           "INSERT INTO storage.reports (id, user_id, kind, format, object_key, "
                           "size_bytes, sha256, created_at, reservation_id, debit_id, status, "
                           "settle_after) VALUES "
                           "($1::uuid, $2::uuid, 'usage', 'json', $3, 42, repeat('a', 64), "
                           "now() - $4::int * interval '1 second', 'res-1', $5, "
                           "CASE WHEN $5::text IS NULL THEN 'pending' ELSE 'committed' END, "
                           "'infinity')",
                           5, p, NULL, err) == LC_OK, "%s", err);
  lc_db_release(g_pool, c);
}

START_TEST(db_list_get_ownership)
{
  char user[37], other[37], ids[5][37], err[LC_ERR_LEN], next[128], pending[37];
  storage_report items[100], r;
  size_t n = 0;

  lc_uuid_v4(user);
  lc_uuid_v4(other);
  for (int i = 0; i < 5; i++) {
    lc_uuid_v4(ids[i]);
    insert_row(user, ids[i], 100 - i, 1); /* ids[4] is the newest */
  }
  lc_uuid_v4(pending);
  insert_row(user, pending, 0, 0); /* not committed: invisible */

  ck_assert_int_eq(storage_reports_list(g_pool, user, 2, NULL, items, &n, next, err), LC_OK);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(items[0].id, ids[4]);
  ck_assert_str_eq(items[1].id, ids[3]);
  ck_assert_int_eq(items[0].size_bytes, 42);
  ck_assert_uint_eq(strlen(items[0].created_at), 24);
  ck_assert_str_ne(next, "");
  ck_assert_int_eq(storage_reports_list(g_pool, user, 2, next, items, &n, next, err), LC_OK);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(items[0].id, ids[2]);
  ck_assert_str_eq(items[1].id, ids[1]);
  ck_assert_int_eq(storage_reports_list(g_pool, user, 2, next, items, &n, next, err), LC_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(items[0].id, ids[0]);
  ck_assert_str_eq(next, "");

  ck_assert_int_eq(storage_reports_list(g_pool, user, 100, "", items, &n, next, err), LC_OK);
  ck_assert_uint_eq(n, 5);
  ck_assert_int_eq(storage_reports_list(g_pool, other, 100, NULL, items, &n, next, err), LC_OK);
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(storage_reports_list(g_pool, user, 0, NULL, items, &n, next, err), LC_ERR_PARAM);
  ck_assert_int_eq(storage_reports_list(g_pool, user, 101, NULL, items, &n, next, err), LC_ERR_PARAM);
  ck_assert_int_eq(storage_reports_list(g_pool, user, 5, "garbage!", items, &n, next, err),
                   LC_ERR_PARAM);

  ck_assert_int_eq(storage_reports_get(g_pool, user, ids[2], &r, err), LC_OK);
  ck_assert_str_eq(r.id, ids[2]);
  ck_assert_str_eq(r.kind, "usage");
  ck_assert_int_eq(storage_reports_get(g_pool, other, ids[2], &r, err), LC_ERR_NOTFOUND);
  ck_assert_int_eq(storage_reports_get(g_pool, user, pending, &r, err), LC_ERR_NOTFOUND);
  ck_assert_int_eq(storage_reports_get(g_pool, user, "not-a-uuid", &r, err), LC_ERR_NOTFOUND);
}
END_TEST

/* credit-svc down: the paid flow fails with UNAVAIL before anything is stored. */
START_TEST(flow_credit_down)
{
  static const uint8_t secret[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  storage_creditc credit;
  storage_s3 s3;
  storage_reports_ctx ctx;
  storage_report_req req;
  storage_report r, items[10];
  lc_identity id;
  json_t *body = json_loads("{\"kind\":\"usage\",\"format\":\"json\"}", 0, NULL);
  char err[LC_ERR_LEN], next[128];
  size_t n = 9;
  int replayed = 1;

  ck_assert_int_eq(storage_reports_parse_req(body, &req, err), LC_OK);
  json_decref(body);
  ck_assert_int_eq(storage_creditc_init(&credit, CLOSED_URL, secret, sizeof(secret) - 1, 2000, err),
                   LC_OK);
  s3_open(&s3, CLOSED_URL, "storage-down");
  memset(&id, 0, sizeof(id));
  lc_uuid_v4(id.user_id);
  lc_strlcpy(id.role, "user", sizeof(id.role));
  lc_strlcpy(id.scope, "full", sizeof(id.scope));
  lc_strlcpy(id.request_id, "itest", sizeof(id.request_id));
  ctx = (storage_reports_ctx){g_pool, &s3, &credit, 0, 0};

  ck_assert_int_eq(storage_reports_create(&ctx, &id, &req, "idem-1", &r, &replayed, err),
                   LC_ERR_UNAVAIL);
  ck_assert_int_eq(replayed, 0);
  ck_assert_ptr_nonnull(strstr(err, "unavailable"));
  ck_assert_int_eq(storage_reports_list(g_pool, id.user_id, 10, NULL, items, &n, next, err), LC_OK);
  ck_assert_uint_eq(n, 0);

  /* no user identity -> forbidden, nothing called */
  id.user_id[0] = '\0';
  ck_assert_int_eq(storage_reports_create(&ctx, &id, &req, NULL, &r, &replayed, err),
                   LC_ERR_FORBIDDEN);
}
END_TEST

/* Idempotency: a committed row with the same key and request is replayed
 * without any credit-svc call (the credit URL is a closed port, so a call
 * would fail), a different request -> 422, a pending row -> 409. */
static void set_claim(const char *user, const char *key, const char *hash, const char *rid)
{
  const char *p[4] = {user, key, hash, rid};
  char err[LC_ERR_LEN];
  PGconn *c = NULL;

  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  ck_assert_int_eq(lc_db_exec(c, "INSERT INTO storage.idempotency_keys (user_id, key, "
                              "request_hash, report_id) VALUES ($1::uuid, $2, $3, $4::uuid)",
                              4, p, NULL, err), LC_OK);
  lc_db_release(g_pool, c);
}

static int claim_exists(const char *user, const char *key)
{
  const char *p[2] = {user, key};
  char err[LC_ERR_LEN];
  PGresult *res = NULL;
  PGconn *c = NULL;
  int n;

  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  ck_assert_int_eq(lc_db_exec(c, "SELECT 1 FROM storage.idempotency_keys WHERE user_id = "
                              "$1::uuid AND key = $2", 2, p, &res, err), LC_OK);
  n = PQntuples(res);
  PQclear(res);
  lc_db_release(g_pool, c);
  return n;
}

START_TEST(flow_idempotency_replay)
{
  static const uint8_t secret[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  storage_creditc credit;
  storage_s3 s3;
  storage_reports_ctx ctx;
  storage_report_req req, req2;
  storage_report r;
  lc_identity id;
  char err[LC_ERR_LEN], rid[37], rid2[37], hash[65];
  int replayed = 0;
  json_t *b1 = json_loads("{\"kind\":\"usage\",\"format\":\"json\"}", 0, NULL);
  json_t *b2 = json_loads("{\"kind\":\"usage\",\"format\":\"json\",\"from\":\"2026-01-01\"}", 0, NULL);

  ck_assert_int_eq(storage_reports_parse_req(b1, &req, err), LC_OK);
  ck_assert_int_eq(storage_reports_parse_req(b2, &req2, err), LC_OK);
  json_decref(b1);
  json_decref(b2);
  ck_assert_int_eq(storage_creditc_init(&credit, CLOSED_URL, secret, sizeof(secret) - 1, 2000, err),
                   LC_OK);
  s3_open(&s3, CLOSED_URL, "storage-down");
  memset(&id, 0, sizeof(id));
  lc_uuid_v4(id.user_id);
  lc_strlcpy(id.role, "user", sizeof(id.role));
  lc_strlcpy(id.scope, "full", sizeof(id.scope));
  ctx = (storage_reports_ctx){g_pool, &s3, &credit, 0, 0};
  storage_reports_request_hash(&req, hash);

  lc_uuid_v4(rid);
  insert_row(id.user_id, rid, 0, 1);
  set_claim(id.user_id, "k1", hash, rid);
  ck_assert_int_eq(storage_reports_create(&ctx, &id, &req, "k1", &r, &replayed, err), LC_OK);
  ck_assert_int_eq(replayed, 1);
  ck_assert_str_eq(r.id, rid);
  ck_assert_int_eq(r.size_bytes, 42);

  ck_assert_int_eq(storage_reports_create(&ctx, &id, &req2, "k1", &r, &replayed, err),
                   LC_ERR_UNPROCESSABLE);

  (void)rid2;
  set_claim(id.user_id, "k2", hash, NULL); /* still running */
  ck_assert_int_eq(storage_reports_create(&ctx, &id, &req, "k2", &r, &replayed, err),
                   LC_ERR_CONFLICT);

  /* a new key goes to credit-svc, which is down: the claim is dropped again */
  ck_assert_int_eq(storage_reports_create(&ctx, &id, &req, "k3", &r, &replayed, err),
                   LC_ERR_UNAVAIL);
  ck_assert_int_eq(claim_exists(id.user_id, "k3"), 0);
  ck_assert_int_eq(claim_exists(id.user_id, "k1"), 1);
}
END_TEST

/* ---- exactly-once settlement against the real credit-svc ----------------- */

/* Fault-injecting TCP proxy in front of credit-svc. Per request (commit or
 * release, by path): forward; DROP = forward, wait for credit-svc's answer,
 * then close without answering (processed, answer lost); HOLE = read the
 * request and never answer (credit-svc never sees it; the client times out). */
enum { PX_FORWARD, PX_DROP, PX_HOLE };
static atomic_int px_commit_mode, px_release_mode, px_commits, px_releases, px_stop;
static int px_fd = -1, px_port, up_port;
static pthread_t px_thread;
static int px_running;
static char up_url[256], px_url[64];
static const char *g_secret;
static storage_s3 g_s3;

/* Reads one HTTP message (headers + Content-Length body, or until close). */
static ssize_t px_read_msg(int fd, char *buf, size_t cap, int timeout_ms)
{
  size_t len = 0, need = 0;
  char *hend;

  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;

    if (poll(&p, 1, timeout_ms) <= 0)
      return len > 0 && need == 0 ? (ssize_t)len : -1;
    n = recv(fd, buf + len, cap - 1 - len, 0);
    if (n <= 0)
      return len > 0 ? (ssize_t)len : -1;
    len += (size_t)n;
    buf[len] = '\0';
    hend = strstr(buf, "\r\n\r\n");
    if (hend != NULL) {
      const char *cl = strcasestr(buf, "\r\ncontent-length:");
      int64_t v = 0;
      size_t hl = (size_t)(hend + 4 - buf);
      if (cl != NULL && cl < hend) {
        char num[24] = "";
        size_t k = 0;
        cl += 17;
        while (*cl == ' ')
          cl++;
        while (k < sizeof(num) - 1 && cl[k] >= '0' && cl[k] <= '9') {
          num[k] = cl[k];
          k++;
        }
        lc_parse_i64(num, 0, 1 << 20, &v);
      }
      need = hl + (size_t)v;
      if (len >= need)
        return (ssize_t)len;
    }
    if (len + 1 >= cap)
      return -1;
  }
}

static void px_forward(int cfd, const char *req, size_t reqlen, int answer)
{
  static char resp[1 << 16];
  struct sockaddr_in a;
  ssize_t n;
  int ufd = socket(AF_INET, SOCK_STREAM, 0);

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)up_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (ufd < 0 || connect(ufd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      send(ufd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
    if (ufd >= 0)
      close(ufd);
    return;
  }
  n = px_read_msg(ufd, resp, sizeof(resp), 10000);
  close(ufd);
  if (n > 0 && answer)
    send(cfd, resp, (size_t)n, MSG_NOSIGNAL);
}

static void *px_main(void *arg)
{
  static char req[1 << 16];
  (void)arg;
  while (!atomic_load(&px_stop)) {
    struct pollfd p = {px_fd, POLLIN, 0};
    ssize_t n;
    int cfd, mode = PX_FORWARD;

    if (poll(&p, 1, 100) <= 0)
      continue;
    cfd = accept(px_fd, NULL, NULL);
    if (cfd < 0)
      continue;
    n = px_read_msg(cfd, req, sizeof(req), 5000);
    if (n > 0) {
      char *eol = strstr(req, "\r\n");
      if (eol != NULL && memmem(req, (size_t)(eol - req), "/commit", 7) != NULL) {
        atomic_fetch_add(&px_commits, 1);
        mode = atomic_load(&px_commit_mode);
      } else if (eol != NULL && memmem(req, (size_t)(eol - req), "/release", 8) != NULL) {
        atomic_fetch_add(&px_releases, 1);
        mode = atomic_load(&px_release_mode);
      }
      if (mode == PX_HOLE) {
        char sink[256];
        struct pollfd q = {cfd, POLLIN, 0};
        /* never answer: wait until the client gives up and closes */
        while (!atomic_load(&px_stop) && poll(&q, 1, 100) >= 0) {
          if ((q.revents & (POLLIN | POLLHUP)) != 0 && recv(cfd, sink, sizeof(sink), 0) <= 0)
            break;
        }
      } else {
        px_forward(cfd, req, (size_t)n, mode == PX_FORWARD);
      }
    }
    close(cfd);
  }
  return NULL;
}

static int g_settle_skip;

static void settle_setup(void)
{
  struct sockaddr_in a;
  socklen_t alen = sizeof(a);
  const char *url = getenv("STORAGE_CREDIT_URL");
  const char *colon;
  char bucket[40], err[LC_ERR_LEN];
  int64_t port = 0;

  db_setup();
  g_secret = getenv("INTERNAL_SECRET");
  g_settle_skip = url == NULL || g_secret == NULL || strncmp(url, "http://127.0.0.1:", 17) != 0;
  if (g_settle_skip) {
    fprintf(stderr, "settle tests: STORAGE_CREDIT_URL/INTERNAL_SECRET not set (run through "
                    "tests/run.sh with the stack up); skipped\n");
    return;
  }
  lc_strlcpy(up_url, url, sizeof(up_url));
  colon = strrchr(url, ':');
  ck_assert_int_eq(lc_parse_i64(colon + 1, 1, 65535, &port), LC_OK);
  up_port = (int)port;
  px_fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0; /* ephemeral: no clash with other stacks */
  ck_assert_int_eq(bind(px_fd, (struct sockaddr *)&a, sizeof(a)), 0);
  ck_assert_int_eq(listen(px_fd, 16), 0);
  ck_assert_int_eq(getsockname(px_fd, (struct sockaddr *)&a, &alen), 0);
  px_port = ntohs(a.sin_port);
  snprintf(px_url, sizeof(px_url), "http://127.0.0.1:%d", px_port);
  atomic_store(&px_stop, 0);
  atomic_store(&px_commit_mode, PX_FORWARD);
  atomic_store(&px_release_mode, PX_FORWARD);
  ck_assert_int_eq(pthread_create(&px_thread, NULL, px_main, NULL), 0);
  px_running = 1;
  random_bucket(bucket);
  s3_open(&g_s3, env_or("STORAGE_TEST_S3_ENDPOINT", "http://127.0.0.1:24568"), bucket);
  ck_assert_int_eq(storage_s3_ensure_bucket(&g_s3, err), LC_OK);
}

static void settle_teardown(void)
{
  if (px_running) {
    atomic_store(&px_stop, 1);
    pthread_join(px_thread, NULL);
    px_running = 0;
  }
  if (px_fd >= 0)
    close(px_fd);
  px_fd = -1;
  db_teardown();
}

static void new_user(lc_identity *id)
{
  memset(id, 0, sizeof(*id));
  lc_uuid_v4(id->user_id);
  lc_strlcpy(id->role, "user", sizeof(id->role));
  lc_strlcpy(id->scope, "full", sizeof(id->scope));
  lc_uuid_v4(id->request_id);
}

static void credit_open(storage_creditc *c, const char *url)
{
  char err[LC_ERR_LEN];

  ck_assert_int_eq(storage_creditc_init(c, url, (const uint8_t *)g_secret, strlen(g_secret), 1500,
                                        err), LC_OK);
}

/* Committed balance and available (balance - reserved) of user at credit-svc. */
static void balance_of(const char *user, int64_t *bal, int64_t *avail)
{
  char path[128], err[LC_ERR_LEN];
  lc_identity sys;
  lc_http_resp resp;
  json_t *j, *it;

  memset(&sys, 0, sizeof(sys));
  lc_strlcpy(sys.role, "system", sizeof(sys.role));
  memset(&resp, 0, sizeof(resp));
  snprintf(path, sizeof(path), "/internal/balances?user_ids=%s", user);
  ck_assert_int_eq(lc_iauth_call((const uint8_t *)g_secret, strlen(g_secret), up_url, "GET", path,
                                 &sys, NULL, NULL, 0, 5000, &resp, err), LC_OK);
  ck_assert_int_eq(resp.status, 200);
  j = json_loadb(resp.body, resp.len, 0, NULL);
  it = json_array_get(json_object_get(j, "items"), 0);
  *bal = json_integer_value(json_object_get(it, "balance"));
  *avail = json_integer_value(json_object_get(it, "available"));
  json_decref(j);
  lc_http_resp_free(&resp);
}

/* status of row id in table ("reports"|"files"); "" when the row is gone. */
static void row_status(const char *table, const char *id, char status[16], int *has_debit)
{
  const char *p[1] = {id};
  char err[LC_ERR_LEN];
  PGresult *res = NULL;

  status[0] = '\0';
  *has_debit = 0;
  ck_assert_int_eq(storage_db_run(g_pool,
                                  strcmp(table, "files") == 0
                                      ? "SELECT status, debit_id IS NOT NULL FROM storage.files "
                                        "WHERE id = $1::uuid"
                                      : "SELECT status, debit_id IS NOT NULL FROM storage.reports "
                                        "WHERE id = $1::uuid",
                                  1, p, &res, err), LC_OK);
  if (PQntuples(res) == 1) {
    lc_strlcpy(status, PQgetvalue(res, 0, 0), 16);
    *has_debit = PQgetvalue(res, 0, 1)[0] == 't';
  }
  PQclear(res);
}

/* Moves settle_after of the unsettled rows of user: delta_s from now. */
static void set_due(const char *user, int delta_s)
{
  char d[16], err[LC_ERR_LEN];
  const char *p[2] = {user, d};

  snprintf(d, sizeof(d), "%d", delta_s);
  ck_assert_int_eq(storage_db_run(g_pool, "UPDATE storage.files SET settle_after = now() + "
                                  "$2::int * interval '1 second' WHERE user_id = $1::uuid AND "
                                  "debit_id IS NULL", 2, p, NULL, err), LC_OK);
  ck_assert_int_eq(storage_db_run(g_pool, "UPDATE storage.reports SET settle_after = now() + "
                                  "$2::int * interval '1 second' WHERE user_id = $1::uuid AND "
                                  "debit_id IS NULL", 2, p, NULL, err), LC_OK);
}

/* The only unsettled/settled file row of user (id), 0 when none. */
static int file_row_of(const char *user, char id[37])
{
  const char *p[1] = {user};
  char err[LC_ERR_LEN];
  PGresult *res = NULL;
  int n;

  ck_assert_int_eq(storage_db_run(g_pool, "SELECT id::text FROM storage.files WHERE user_id = "
                                  "$1::uuid", 1, p, &res, err), LC_OK);
  n = PQntuples(res);
  if (n == 1)
    lc_strlcpy(id, PQgetvalue(res, 0, 0), 37);
  PQclear(res);
  return n;
}

static int object_exists(const char *key)
{
  char err[LC_ERR_LEN], *body = NULL;
  size_t len = 0;
  int rc = storage_s3_get_object(&g_s3, key, 1 << 20, &body, &len, err);

  free(body);
  ck_assert_msg(rc == LC_OK || rc == LC_ERR_NOTFOUND, "object read: %s", err);
  return rc == LC_OK;
}

static void run_settler(void)
{
  storage_creditc real;
  storage_settle_ctx sctx;
  storage_settle_counts counts;
  char err[LC_ERR_LEN];

  credit_open(&real, up_url);
  sctx = (storage_settle_ctx){g_pool, &g_s3, &real};
  ck_assert_msg(storage_settle_once(&sctx, &counts, err) == LC_OK, "%s", err);
}

static const char UPLOAD_BYTES[] = "exactly once, or not at all\n";

static int do_upload(const storage_files_ctx *ctx, const lc_identity *id, const char *key,
                     storage_file *f, int *replayed, char err[LC_ERR_LEN])
{
  storage_upload up;

  memset(&up, 0, sizeof(up));
  up.data = (const uint8_t *)UPLOAD_BYTES;
  up.len = sizeof(UPLOAD_BYTES) - 1;
  up.declared_type = "text/plain";
  return storage_files_upload(ctx, id, &up, key, f, replayed, err);
}

static void object_key_of(const char *user, const char *fid, char key[160])
{
  snprintf(key, 160, "files/%s/%s", user, fid);
}

/* Commit processed by credit-svc but its answer lost, release unanswered:
 * the upload is kept (503 "being settled", invisible, replay 409), then the
 * settler makes it visible with the same debit; charged exactly once. */
START_TEST(settle_commit_answer_lost)
{
  storage_creditc viaproxy;
  storage_files_ctx ctx;
  storage_file f, tmp;
  lc_identity id;
  char err[LC_ERR_LEN], fid[37], st[16], okey[160];
  int replayed = 0, hd = 0;
  int64_t bal = 0, avail = 0;

  if (g_settle_skip)
    return;
  credit_open(&viaproxy, px_url);
  ctx = (storage_files_ctx){g_pool, &g_s3, &viaproxy, 1 << 20, 0, NULL};
  new_user(&id);
  atomic_store(&px_commit_mode, PX_DROP);
  atomic_store(&px_release_mode, PX_HOLE);
  ck_assert_int_eq(do_upload(&ctx, &id, "k-lost", &f, &replayed, err), LC_ERR_UNAVAIL);
  ck_assert_msg(strstr(err, "settled") != NULL && strstr(err, "nothing was charged") == NULL,
                "detail: %s", err);
  set_due(id.user_id, 86400); /* keep the stack's own settler away until we ask */
  ck_assert_int_eq(file_row_of(id.user_id, fid), 1);
  row_status("files", fid, st, &hd);
  ck_assert_str_eq(st, "settling");
  ck_assert_int_eq(hd, 0);
  object_key_of(id.user_id, fid, okey);
  ck_assert_int_eq(object_exists(okey), 1);
  ck_assert_int_eq(storage_files_get(g_pool, id.user_id, fid, &tmp, err), LC_ERR_NOTFOUND);
  balance_of(id.user_id, &bal, &avail);
  ck_assert_int_eq(bal, 40); /* credit-svc did commit */
  /* a replay while unsettled: 409, no new reservation */
  atomic_store(&px_commit_mode, PX_FORWARD);
  atomic_store(&px_release_mode, PX_FORWARD);
  ck_assert_int_eq(do_upload(&ctx, &id, "k-lost", &f, &replayed, err), LC_ERR_CONFLICT);
  balance_of(id.user_id, &bal, &avail);
  ck_assert_int_eq(avail, 40);

  set_due(id.user_id, -1);
  run_settler();
  row_status("files", fid, st, &hd);
  ck_assert_str_eq(st, "committed");
  ck_assert_int_eq(hd, 1);
  ck_assert_int_eq(storage_files_get(g_pool, id.user_id, fid, &tmp, err), LC_OK);
  ck_assert_int_eq(do_upload(&ctx, &id, "k-lost", &f, &replayed, err), LC_OK);
  ck_assert_int_eq(replayed, 1);
  ck_assert_str_eq(f.id, fid);
  balance_of(id.user_id, &bal, &avail);
  ck_assert_int_eq(bal, 40);
  ck_assert_int_eq(avail, 40);
}
END_TEST

/* Neither commit nor release reached credit-svc (the reservation is still
 * reserved): the settler rolls forward - charged and visible. */
START_TEST(settle_unknown_rolls_forward)
{
  storage_creditc viaproxy;
  storage_files_ctx ctx;
  storage_file f, tmp;
  lc_identity id;
  char err[LC_ERR_LEN], fid[37], st[16];
  int replayed = 0, hd = 0;
  int64_t bal = 0, avail = 0;

  if (g_settle_skip)
    return;
  credit_open(&viaproxy, px_url);
  ctx = (storage_files_ctx){g_pool, &g_s3, &viaproxy, 1 << 20, 0, NULL};
  new_user(&id);
  atomic_store(&px_commit_mode, PX_HOLE);
  atomic_store(&px_release_mode, PX_HOLE);
  ck_assert_int_eq(do_upload(&ctx, &id, NULL, &f, &replayed, err), LC_ERR_UNAVAIL);
  set_due(id.user_id, 86400);
  ck_assert_int_eq(file_row_of(id.user_id, fid), 1);
  balance_of(id.user_id, &bal, &avail);
  ck_assert_int_eq(bal, 50);   /* not charged yet */
  ck_assert_int_eq(avail, 40); /* still reserved */
  set_due(id.user_id, -1);
  run_settler();
  row_status("files", fid, st, &hd);
  ck_assert_str_eq(st, "committed");
  ck_assert_int_eq(storage_files_get(g_pool, id.user_id, fid, &tmp, err), LC_OK);
  balance_of(id.user_id, &bal, &avail);
  ck_assert_int_eq(bal, 40);
  ck_assert_int_eq(avail, 40);
}
END_TEST

/* Outcome unknown, then the reservation is released at credit-svc (as its
 * TTL expiry does): the settler deletes row and object and frees the key;
 * nothing charged, nothing visible. */
START_TEST(settle_unknown_released_elsewhere)
{
  storage_creditc viaproxy, real;
  storage_files_ctx ctx;
  storage_file f;
  lc_identity id;
  char err[LC_ERR_LEN], fid[37], st[16], okey[160], rid[64];
  const char *p[1];
  PGresult *res = NULL;
  int replayed = 0, hd = 0;
  int64_t bal = 0, avail = 0;

  if (g_settle_skip)
    return;
  credit_open(&viaproxy, px_url);
  credit_open(&real, up_url);
  ctx = (storage_files_ctx){g_pool, &g_s3, &viaproxy, 1 << 20, 0, NULL};
  new_user(&id);
  atomic_store(&px_commit_mode, PX_HOLE);
  atomic_store(&px_release_mode, PX_HOLE);
  ck_assert_int_eq(do_upload(&ctx, &id, "k-rel", &f, &replayed, err), LC_ERR_UNAVAIL);
  set_due(id.user_id, 86400);
  ck_assert_int_eq(file_row_of(id.user_id, fid), 1);
  p[0] = fid;
  ck_assert_int_eq(storage_db_run(g_pool, "SELECT reservation_id FROM storage.files WHERE id = "
                                  "$1::uuid", 1, p, &res, err), LC_OK);
  lc_strlcpy(rid, PQgetvalue(res, 0, 0), sizeof(rid));
  PQclear(res);
  ck_assert_int_eq(storage_creditc_release(&real, &id, rid, err), LC_OK);
  set_due(id.user_id, -1);
  run_settler();
  row_status("files", fid, st, &hd);
  ck_assert_str_eq(st, ""); /* row gone */
  object_key_of(id.user_id, fid, okey);
  ck_assert_int_eq(object_exists(okey), 0);
  ck_assert_int_eq(claim_exists(id.user_id, "k-rel"), 0);
  balance_of(id.user_id, &bal, &avail);
  ck_assert_int_eq(bal, 50);
  ck_assert_int_eq(avail, 50);
}
END_TEST

/* A crash between commit and storing debit_id (the state is built step by
 * step as the flow leaves it): retries with the key answer 409 - also
 * after the claim's 10-minute takeover age - and never reserve again; once
 * the grace period passed the settler makes the file visible and the
 * replay returns it; charged once. */
START_TEST(settle_crash_after_commit)
{
  storage_creditc real;
  storage_files_ctx ctx;
  storage_reservation resv;
  storage_file f, tmp;
  lc_identity id;
  char err[LC_ERR_LEN], fid[37], st[16], okey[160], ct[STORAGE_CT_MAX], name[STORAGE_NAME_BUF];
  char sha[65], hash[65], done[37], debit[64];
  uint8_t d[32];
  const char *p[7];
  int replayed = 0, hd = 0;
  int64_t bal = 0, avail = 0;

  if (g_settle_skip)
    return;
  credit_open(&real, up_url);
  ctx = (storage_files_ctx){g_pool, &g_s3, &real, 1 << 20, 0, NULL};
  new_user(&id);
  /* the flow's steps up to the commit, then "crash" */
  ck_assert_int_eq(storage_sniff_decide((const uint8_t *)UPLOAD_BYTES, sizeof(UPLOAD_BYTES) - 1,
                                        "text/plain", ct, err), LC_OK);
  storage_name_sanitize(NULL, 0, "file", name);
  lc_sha256(UPLOAD_BYTES, sizeof(UPLOAD_BYTES) - 1, d);
  lc_hex_encode(d, 32, sha);
  storage_files_request_hash(sha, name, ct, hash);
  ck_assert_int_eq(storage_idem_claim(g_pool, id.user_id, "k-crash", hash, done, err), LC_OK);
  ck_assert_int_eq(storage_creditc_reserve(&real, &id, "file.upload", "k-crash", &resv, err),
                   LC_OK);
  lc_uuid_v4(fid);
  object_key_of(id.user_id, fid, okey);
  ck_assert_int_eq(storage_s3_put_object(&g_s3, okey, UPLOAD_BYTES, sizeof(UPLOAD_BYTES) - 1, ct,
                                         err), LC_OK);
  p[0] = fid; p[1] = id.user_id; p[2] = name; p[3] = ct; p[4] = okey; p[5] = sha;
  p[6] = resv.reservation_id;
  ck_assert_msg(storage_db_run(g_pool, "INSERT INTO storage.files (id, user_id, name, "
                               "content_type, object_key, size_bytes, sha256, reservation_id, "
                               "idempotency_key, status, settle_after) VALUES ($1::uuid, "
                               "$2::uuid, $3, $4, $5, 28, $6, $7, 'k-crash', 'pending', now() + "
                               "interval '60 seconds')", 7, p, NULL, err) == LC_OK, "%s", err);
  ck_assert_int_eq(storage_creditc_commit(&real, &id, resv.reservation_id, debit, err), LC_OK);
  balance_of(id.user_id, &bal, &avail);
  ck_assert_int_eq(bal, 40);

  /* after restart: the retry is told it is in flight, not "nothing charged" */
  ck_assert_int_eq(do_upload(&ctx, &id, "k-crash", &f, &replayed, err), LC_ERR_CONFLICT);
  p[0] = id.user_id;
  ck_assert_int_eq(storage_db_run(g_pool, "UPDATE storage.idempotency_keys SET created_at = "
                                  "now() - interval '11 minutes' WHERE user_id = $1::uuid", 1, p,
                                  NULL, err), LC_OK);
  ck_assert_int_eq(do_upload(&ctx, &id, "k-crash", &f, &replayed, err), LC_ERR_CONFLICT);
  /* within the grace period the settler leaves the row alone */
  run_settler();
  row_status("files", fid, st, &hd);
  ck_assert_str_eq(st, "pending");
  ck_assert_int_eq(storage_files_get(g_pool, id.user_id, fid, &tmp, err), LC_ERR_NOTFOUND);
  /* grace period over */
  set_due(id.user_id, -1);
  run_settler();
  row_status("files", fid, st, &hd);
  ck_assert_str_eq(st, "committed");
  ck_assert_int_eq(storage_files_get(g_pool, id.user_id, fid, &tmp, err), LC_OK);
  ck_assert_int_eq(do_upload(&ctx, &id, "k-crash", &f, &replayed, err), LC_OK);
  ck_assert_int_eq(replayed, 1);
  ck_assert_str_eq(f.id, fid);
  balance_of(id.user_id, &bal, &avail);
  ck_assert_int_eq(bal, 40);
  ck_assert_int_eq(avail, 40);
}
END_TEST

/* The same for a report: commit answer lost -> 503 settling, invisible,
 * replay 409; settled -> visible, replay returns it, 5 credits once. */
START_TEST(settle_report_commit_answer_lost)
{
  storage_creditc viaproxy;
  storage_reports_ctx ctx;
  storage_report_req req;
  storage_report r, tmp;
  lc_identity id;
  json_t *b = json_loads("{\"kind\":\"files\",\"format\":\"json\"}", 0, NULL);
  char err[LC_ERR_LEN], rid[37], st[16];
  const char *p[1];
  PGresult *res = NULL;
  int replayed = 0, hd = 0;
  int64_t bal = 0, avail = 0;

  if (g_settle_skip) {
    json_decref(b);
    return;
  }
  ck_assert_int_eq(storage_reports_parse_req(b, &req, err), LC_OK);
  json_decref(b);
  credit_open(&viaproxy, px_url);
  ctx = (storage_reports_ctx){g_pool, &g_s3, &viaproxy, 0, 0};
  new_user(&id);
  atomic_store(&px_commit_mode, PX_DROP);
  atomic_store(&px_release_mode, PX_HOLE);
  ck_assert_int_eq(storage_reports_create(&ctx, &id, &req, "rk", &r, &replayed, err),
                   LC_ERR_UNAVAIL);
  ck_assert_ptr_nonnull(strstr(err, "settled"));
  set_due(id.user_id, 86400);
  p[0] = id.user_id;
  ck_assert_int_eq(storage_db_run(g_pool, "SELECT id::text FROM storage.reports WHERE user_id = "
                                  "$1::uuid", 1, p, &res, err), LC_OK);
  ck_assert_int_eq(PQntuples(res), 1);
  lc_strlcpy(rid, PQgetvalue(res, 0, 0), sizeof(rid));
  PQclear(res);
  ck_assert_int_eq(storage_reports_get(g_pool, id.user_id, rid, &tmp, err), LC_ERR_NOTFOUND);
  atomic_store(&px_commit_mode, PX_FORWARD);
  atomic_store(&px_release_mode, PX_FORWARD);
  ck_assert_int_eq(storage_reports_create(&ctx, &id, &req, "rk", &r, &replayed, err),
                   LC_ERR_CONFLICT);
  set_due(id.user_id, -1);
  run_settler();
  row_status("reports", rid, st, &hd);
  ck_assert_str_eq(st, "committed");
  ck_assert_int_eq(storage_reports_get(g_pool, id.user_id, rid, &tmp, err), LC_OK);
  ck_assert_int_eq(storage_reports_create(&ctx, &id, &req, "rk", &r, &replayed, err), LC_OK);
  ck_assert_int_eq(replayed, 1);
  ck_assert_str_eq(r.id, rid);
  balance_of(id.user_id, &bal, &avail);
  ck_assert_int_eq(bal, 45);
  ck_assert_int_eq(avail, 45);
}
END_TEST

static Suite *integration_suite(void)
{
  Suite *s = suite_create("storage-integration");
  TCase *t = tcase_create("s3");

  tcase_add_test(t, s3_round_trip);
  tcase_add_test(t, s3_get_stream);
  tcase_add_test(t, s3_store_down);
  tcase_add_test(t, s3_missing_bucket);
  tcase_set_timeout(t, 60);
  suite_add_tcase(s, t);
  t = tcase_create("db");
  tcase_add_checked_fixture(t, db_setup, db_teardown);
  tcase_add_test(t, db_list_get_ownership);
  tcase_add_test(t, flow_credit_down);
  tcase_add_test(t, flow_idempotency_replay);
  tcase_set_timeout(t, 60);
  suite_add_tcase(s, t);
  t = tcase_create("settle");
  tcase_add_checked_fixture(t, settle_setup, settle_teardown);
  tcase_add_test(t, settle_commit_answer_lost);
  tcase_add_test(t, settle_unknown_rolls_forward);
  tcase_add_test(t, settle_unknown_released_elsewhere);
  tcase_add_test(t, settle_crash_after_commit);
  tcase_add_test(t, settle_report_commit_answer_lost);
  tcase_set_timeout(t, 120);
  suite_add_tcase(s, t);
  return s;
}

int main(void)
{
  SRunner *sr;
  int failed;

  if (lc_global_init() != 0)
    return EXIT_FAILURE;
  sr = srunner_create(integration_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
