/* test_integration.c - storage-svc against the running dev infrastructure:
 * s3rver (STORAGE_TEST_S3_ENDPOINT, default http://127.0.0.1:24568) and
 * PostgreSQL (STORAGE_TEST_PG_URL, default postgresql://postgres@127.0.0.1:25432/saas).
 * Every test creates its own bucket / rows with random ids, so order does
 * not matter. credit-svc is not needed: the flow test points the credit
 * client at a closed port and checks that nothing is stored or listed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "creditc.h"
#include "lc/db.h"
#include "lc/util.h"
#include "reports.h"
#include "s3.h"

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
                           "size_bytes, sha256, created_at, reservation_id, debit_id) VALUES "
                           "($1::uuid, $2::uuid, 'usage', 'json', $3, 42, repeat('a', 64), "
                           "now() - $4::int * interval '1 second', 'res-1', $5)",
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
  ctx = (storage_reports_ctx){g_pool, &s3, &credit, 0};

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
  ctx = (storage_reports_ctx){g_pool, &s3, &credit, 0};
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

static Suite *integration_suite(void)
{
  Suite *s = suite_create("storage-integration");
  TCase *t = tcase_create("s3");

  tcase_add_test(t, s3_round_trip);
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
