/* test_integration.c - credit-svc against the real PostgreSQL and RabbitMQ.
 *
 * Each test runs in its own schema (random name, created by lc_db_migrate
 * from credit-svc/sql, dropped afterwards), with its own random users, so
 * tests are independent of order and of other runs. The outbox test publishes
 * to a private, auto-deleted topic exchange bound to a private queue so the
 * real chain-svc.debits queue never receives test debits.
 *
 * Env: CREDIT_TEST_PG_URL (or LC_TEST_PG_URL), CREDIT_TEST_AMQP_URL (or
 * LC_TEST_AMQP_URL); defaults are the local stack's ports. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "credit_chainres.h"
#include "credit_handlers.h"
#include "credit_ledger.h"
#include "lc/outbox.h"
#include "lc/amqp.h"
#include "lc/db.h"
#include "lc/http.h"
#include "lc/iauth.h"
#include "lc/svc.h"
#include "lc/msg.h"
#include "lc/util.h"

static char g_schema[64];
static char g_url[1024];
static lc_db_pool *g_pool;

static const char *env_or(const char *a, const char *b, const char *def) {
  const char *v = getenv(a);
  if (v && v[0])
    return v;
  v = getenv(b);
  return (v && v[0]) ? v : def;
}

static const char *pg_base(void) {
  return env_or("CREDIT_TEST_PG_URL", "LC_TEST_PG_URL",
                "postgresql://postgres@127.0.0.1:25432/saas");
}

static const char *amqp_url(void) {
  return env_or("CREDIT_TEST_AMQP_URL", "LC_TEST_AMQP_URL",
                "amqp://guest:guest@127.0.0.1:26672/%2f");
}

static void setup(void) {
  uint8_t rnd[6];
  char hex[13], err[LC_ERR_LEN] = "";
  lc_random(rnd, sizeof(rnd));
  lc_hex_encode(rnd, sizeof(rnd), hex);
  snprintf(g_schema, sizeof(g_schema), "credit_t_%s", hex);
  const char *base = pg_base();
  snprintf(g_url, sizeof(g_url), "%s%soptions=-csearch_path%%3D%s", base,
           strchr(base, '?') ? "&" : "?", g_schema);
  ck_assert_int_eq(lc_db_pool_new(g_url, 16, 5000, &g_pool, err), LC_OK);
  int rc = lc_db_migrate(g_pool, g_schema, CREDIT_SQL_DIR_DEFAULT, err);
  ck_assert_msg(rc == LC_OK, "migrate: %s", err);
}

static void teardown(void) {
  PGconn *c = NULL;
  char err[LC_ERR_LEN], sql[128];
  if (g_pool && lc_db_acquire(g_pool, &c, err) == LC_OK) {
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", g_schema); /* our own name */
    lc_db_exec(c, sql, 0, NULL, NULL, err);
    lc_db_release(g_pool, c);
  }
  lc_db_pool_free(g_pool);
  g_pool = NULL;
}

/* First column of the first row of a query with up to 2 params, as int64. */
static int64_t q_i64(const char *sql, const char *p1, const char *p2) {
  PGconn *c = NULL;
  PGresult *r = NULL;
  char err[LC_ERR_LEN];
  const char *p[2] = {p1, p2};
  int n = p2 ? 2 : (p1 ? 1 : 0);
  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  int rc = lc_db_exec(c, sql, n, p, &r, err);
  lc_db_release(g_pool, c);
  ck_assert_msg(rc == LC_OK, "%s: %s", sql, err);
  ck_assert_int_eq(PQntuples(r), 1);
  int64_t v = 0;
  ck_assert_int_eq(lc_parse_i64(PQgetvalue(r, 0, 0), INT64_MIN, INT64_MAX, &v), LC_OK);
  PQclear(r);
  return v;
}

static char *q_str(const char *sql, const char *p1) {
  PGconn *c = NULL;
  PGresult *r = NULL;
  char err[LC_ERR_LEN];
  const char *p[1] = {p1};
  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  int rc = lc_db_exec(c, sql, 1, p, &r, err);
  lc_db_release(g_pool, c);
  ck_assert_msg(rc == LC_OK, "%s: %s", sql, err);
  ck_assert_int_eq(PQntuples(r), 1);
  char *s = PQgetisnull(r, 0, 0) ? NULL : lc_xstrdup(PQgetvalue(r, 0, 0));
  PQclear(r);
  return s;
}

static void new_user(char id[37]) { lc_uuid_v4(id); }

/* SPEC §7: balance = 50 + credits - debits, also equal to the ledger sum. */
static void check_invariant(const char *uid) {
  int64_t bal = q_i64("SELECT balance FROM accounts WHERE user_id = $1::uuid", uid, NULL);
  int64_t sum = q_i64("SELECT coalesce(sum(delta),0)::bigint FROM ledger WHERE user_id = $1::uuid",
                      uid, NULL);
  int64_t credits = q_i64("SELECT coalesce(sum(delta),0)::bigint FROM ledger WHERE user_id ="
                          " $1::uuid AND kind NOT IN ('debit','signup_bonus')",
                          uid, NULL);
  int64_t debits = q_i64("SELECT coalesce(-sum(delta),0)::bigint FROM ledger WHERE user_id ="
                         " $1::uuid AND kind = 'debit'",
                         uid, NULL);
  ck_assert_int_eq(bal, sum);
  ck_assert_int_eq(bal, 50 + credits - debits);
  ck_assert_int_ge(bal, 0);
  int64_t last = q_i64("SELECT balance_after FROM ledger WHERE user_id = $1::uuid"
                       " ORDER BY ts DESC, id DESC LIMIT 1",
                       uid, NULL);
  ck_assert_int_eq(last, bal);
}

/* ---- accounts ---- */

typedef struct {
  const char *uid;
  int created, rc;
} open_job;

static void *open_worker(void *arg) {
  open_job *j = arg;
  char err[LC_ERR_LEN];
  int64_t bal = 0;
  j->rc = credit_ledger_open_account(g_pool, j->uid, "rid-open", &j->created, &bal, err);
  return NULL;
}

START_TEST(test_open_concurrent_single_bonus) {
  char uid[37];
  new_user(uid);
  pthread_t t[8];
  open_job jobs[8];
  for (int i = 0; i < 8; i++) {
    jobs[i] = (open_job){uid, 0, -1};
    ck_assert_int_eq(pthread_create(&t[i], NULL, open_worker, &jobs[i]), 0);
  }
  int created = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(jobs[i].rc, LC_OK);
    created += jobs[i].created;
  }
  ck_assert_int_eq(created, 1);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid", uid, NULL), 1);
  ck_assert_int_eq(q_i64("SELECT delta FROM ledger WHERE user_id = $1::uuid AND kind ="
                         " 'signup_bonus'", uid, NULL),
                   50);
  int64_t bal = 0, res = -1;
  char err[LC_ERR_LEN];
  ck_assert_int_eq(credit_ledger_balance(g_pool, uid, &bal, &res, err), LC_OK);
  ck_assert_int_eq(bal, 50);
  ck_assert_int_eq(res, 0);
  /* Reopening is a no-op. */
  int again = 1;
  ck_assert_int_eq(credit_ledger_open_account(g_pool, uid, NULL, &again, &bal, err), LC_OK);
  ck_assert_int_eq(again, 0);
  ck_assert_int_eq(bal, 50);
  check_invariant(uid);
}
END_TEST

START_TEST(test_lazy_open_and_bad_input) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  int64_t bal = 0, res = 0;
  ck_assert_int_eq(credit_ledger_balance(g_pool, uid, &bal, &res, err), LC_OK);
  ck_assert_int_eq(bal, 50);
  ck_assert_int_eq(credit_ledger_balance(g_pool, "not-a-uuid", &bal, &res, err), LC_ERR_PARAM);
  credit_reservation r;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "file.delete", NULL, "rid", 60, &r, NULL,
                                         err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 0);
}
END_TEST

/* ---- reserve / commit / release ---- */

START_TEST(test_reserve_commit_release_arithmetic) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  credit_reservation r1, r2;
  credit_debit d;
  int64_t bal = 0, res = 0;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "report.generate", NULL, "rid-1", 60, &r1,
                                         NULL, err),
                   LC_OK);
  ck_assert_int_eq(r1.cost, 5);
  ck_assert_str_eq(r1.status, "reserved");
  ck_assert_int_eq(credit_ledger_balance(g_pool, uid, &bal, &res, err), LC_OK);
  ck_assert_int_eq(bal, 50);
  ck_assert_int_eq(res, 5);
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "file.upload", NULL, "rid-2", 60, &r2, NULL,
                                         err),
                   LC_OK);
  ck_assert_int_eq(credit_ledger_balance(g_pool, uid, &bal, &res, err), LC_OK);
  ck_assert_int_eq(res, 15);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r1.id, uid, uid, &d, err), LC_OK);
  ck_assert_int_eq(d.balance, 45);
  ck_assert_int_eq(d.replayed, 0);
  ck_assert_int_eq(credit_ledger_release(g_pool, r2.id, uid, err), LC_OK);
  ck_assert_int_eq(credit_ledger_balance(g_pool, uid, &bal, &res, err), LC_OK);
  ck_assert_int_eq(bal, 45);
  ck_assert_int_eq(res, 0);
  /* Release is idempotent; a released reservation cannot be committed. */
  ck_assert_int_eq(credit_ledger_release(g_pool, r2.id, uid, err), LC_OK);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r2.id, uid, uid, &d, err), LC_ERR_CONFLICT);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 0);
  /* The debit entry: -5, kind debit, action, the debit id, balance_after 45. */
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid AND kind = 'debit'"
                         " AND delta = -5 AND action = 'report.generate' AND balance_after = 45"
                         " AND request_id = 'rid-1'",
                         uid, NULL),
                   1);
  check_invariant(uid);
}
END_TEST

START_TEST(test_other_users_reservation_is_not_found) {
  char uid[37], other[37], err[LC_ERR_LEN];
  new_user(uid);
  new_user(other);
  credit_reservation r;
  credit_debit d;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "report.download", NULL, "rid", 60, &r,
                                         NULL, err),
                   LC_OK);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, other, other, &d, err), LC_ERR_NOTFOUND);
  ck_assert_int_eq(credit_ledger_release(g_pool, r.id, other, err), LC_ERR_NOTFOUND);
  char missing[37];
  lc_uuid_v4(missing);
  ck_assert_int_eq(credit_ledger_commit(g_pool, missing, NULL, "x", &d, err), LC_ERR_NOTFOUND);
  ck_assert_int_eq(credit_ledger_commit(g_pool, "junk", NULL, "x", &d, err), LC_ERR_NOTFOUND);
  /* owner NULL (system/admin) may commit it. */
  ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, NULL, "system", &d, err), LC_OK);
  ck_assert_int_eq(d.balance, 48);
}
END_TEST

typedef struct {
  const char *uid;
  credit_reservation r;
  int rc;
} reserve_job;

static void *reserve_worker(void *arg) {
  reserve_job *j = arg;
  char err[LC_ERR_LEN];
  j->rc = credit_ledger_reserve(g_pool, j->uid, "report.generate", NULL, "rid-conc", 60, &j->r,
                                NULL, err);
  return NULL;
}

START_TEST(test_concurrent_reservations_never_overdraw) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  int64_t bal = 0;
  int created = 0;
  ck_assert_int_eq(credit_ledger_open_account(g_pool, uid, NULL, &created, &bal, err), LC_OK);
  pthread_t t[11];
  reserve_job jobs[11];
  for (int i = 0; i < 11; i++) {
    memset(&jobs[i], 0, sizeof(jobs[i]));
    jobs[i].uid = uid;
    ck_assert_int_eq(pthread_create(&t[i], NULL, reserve_worker, &jobs[i]), 0);
  }
  int ok = 0, funds = 0;
  for (int i = 0; i < 11; i++) {
    pthread_join(t[i], NULL);
    ok += jobs[i].rc == LC_OK;
    funds += jobs[i].rc == LC_ERR_FUNDS;
  }
  ck_assert_int_eq(ok, 10);
  ck_assert_int_eq(funds, 1);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 50);
  for (int i = 0; i < 11; i++) {
    if (jobs[i].rc != LC_OK)
      continue;
    credit_debit d;
    ck_assert_int_eq(credit_ledger_commit(g_pool, jobs[i].r.id, uid, uid, &d, err), LC_OK);
  }
  ck_assert_int_eq(q_i64("SELECT balance FROM accounts WHERE user_id = $1::uuid", uid, NULL), 0);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 0);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid AND kind = 'debit'",
                         uid, NULL),
                   10);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE user_id = $1::uuid AND status ="
                         " 'committed' AND chain_status = 'pending'",
                         uid, NULL),
                   10);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox WHERE routing_key ="
                         " 'credit.debit.committed' AND sent_at IS NULL AND payload::jsonb #>>"
                         " '{body,user_id}' = $1",
                         uid, NULL),
                   10);
  /* Every debit id appears once in each of ledger, audit and outbox. */
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger l JOIN audit a USING (debit_id) JOIN outbox o"
                         " ON o.payload::jsonb #>> '{body,debit_id}' = l.debit_id::text"
                         " WHERE l.user_id = $1::uuid",
                         uid, NULL),
                   10);
  /* Nothing left to reserve. */
  credit_reservation r;
  int64_t avail = -1;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "report.download", NULL, "rid", 60, &r,
                                         &avail, err),
                   LC_ERR_FUNDS);
  ck_assert_int_eq(avail, 0);
  check_invariant(uid);
}
END_TEST

START_TEST(test_commit_twice_same_debit) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  credit_reservation r;
  credit_debit d1, d2;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "file.upload", NULL, "rid", 60, &r, NULL,
                                         err),
                   LC_OK);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d1, err), LC_OK);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d2, err), LC_OK);
  ck_assert_str_eq(d1.debit_id, d2.debit_id);
  ck_assert_int_eq(d2.replayed, 1);
  ck_assert_int_eq(d2.balance, 40);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid AND kind = 'debit'",
                         uid, NULL),
                   1);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox", NULL, NULL), 1);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE debit_id IS NOT NULL", NULL, NULL), 1);
  check_invariant(uid);
}
END_TEST

START_TEST(test_release_after_commit_conflicts) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  credit_reservation r;
  credit_debit d;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "service.metadata", NULL, "rid", 60, &r,
                                         NULL, err),
                   LC_OK);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d, err), LC_OK);
  ck_assert_int_eq(credit_ledger_release(g_pool, r.id, uid, err), LC_ERR_CONFLICT);
  ck_assert_int_eq(q_i64("SELECT balance FROM accounts WHERE user_id = $1::uuid", uid, NULL), 47);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 0);
  check_invariant(uid);
}
END_TEST

START_TEST(test_expired_reservation_cannot_commit) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  credit_reservation r1, r2;
  credit_debit d;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "file.upload", NULL, "rid", 1, &r1, NULL,
                                         err),
                   LC_OK);
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "report.generate", NULL, "rid", 1, &r2,
                                         NULL, err),
                   LC_OK);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 15);
  usleep(1300 * 1000);
  /* Commit of an overdue reservation expires it and refuses. */
  ck_assert_int_eq(credit_ledger_commit(g_pool, r1.id, uid, uid, &d, err), LC_ERR_CONFLICT);
  char *st = q_str("SELECT status FROM reservations WHERE id = $1::uuid", r1.id);
  ck_assert_str_eq(st, "expired");
  free(st);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 5);
  /* The sweeper path releases the other one. */
  int n = 0;
  ck_assert_int_eq(credit_ledger_expire(g_pool, &n, err), LC_OK);
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r2.id, uid, uid, &d, err), LC_ERR_CONFLICT);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 0);
  ck_assert_int_eq(q_i64("SELECT balance FROM accounts WHERE user_id = $1::uuid", uid, NULL), 50);
  ck_assert_int_eq(credit_ledger_expire(g_pool, &n, err), LC_OK);
  ck_assert_int_eq(n, 0);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox", NULL, NULL), 0);
  check_invariant(uid);
}
END_TEST

START_TEST(test_idempotency_key) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  credit_reservation a, b, c;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "file.upload", "k-1", "rid", 60, &a, NULL,
                                         err),
                   LC_OK);
  ck_assert_int_eq(a.replayed, 0);
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "file.upload", "k-1", "rid", 60, &b, NULL,
                                         err),
                   LC_OK);
  ck_assert_int_eq(b.replayed, 1);
  ck_assert_str_eq(a.id, b.id);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 10);
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "report.generate", "k-1", "rid", 60, &c,
                                         NULL, err),
                   LC_ERR_UNPROCESSABLE);
  /* Same key for another user is independent. */
  char other[37];
  new_user(other);
  ck_assert_int_eq(credit_ledger_reserve(g_pool, other, "file.upload", "k-1", "rid", 60, &c, NULL,
                                         err),
                   LC_OK);
  ck_assert_str_ne(c.id, a.id);
}
END_TEST

/* ---- queries ---- */

START_TEST(test_ledger_pagination) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  for (int i = 0; i < 4; i++) {
    credit_reservation r;
    credit_debit d;
    ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "report.download", NULL, "rid", 60, &r,
                                           NULL, err),
                     LC_OK);
    ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d, err), LC_OK);
  }
  /* 9 entries: bonus + 4 x (reservation, debit); pages of 2 -> 2, 2, 2, 2, 1. */
  json_t *items = NULL;
  char *next = NULL, *cur = NULL;
  int seen = 0, pages = 0;
  char ids[9][37];
  do {
    ck_assert_int_eq(credit_ledger_list(g_pool, uid, 2, cur, &items, &next, err), LC_OK);
    free(cur);
    cur = next;
    pages++;
    for (size_t i = 0; i < json_array_size(items); i++) {
      json_t *it = json_array_get(items, i);
      ck_assert_int_lt(seen, 9);
      lc_strlcpy(ids[seen], json_string_value(json_object_get(it, "id")), 37);
      for (int k = 0; k < seen; k++)
        ck_assert_str_ne(ids[k], ids[seen]);
      seen++;
    }
    if (seen == 9) {
      json_t *last = json_array_get(items, json_array_size(items) - 1);
      ck_assert_str_eq(json_string_value(json_object_get(last, "kind")), "signup_bonus");
      ck_assert_int_eq(json_integer_value(json_object_get(last, "balance_after")), 50);
    }
    if (pages == 1) { /* newest first */
      json_t *first = json_array_get(items, 0);
      ck_assert_int_eq(json_integer_value(json_object_get(first, "delta")), -2);
      ck_assert_int_eq(json_integer_value(json_object_get(first, "balance_after")), 42);
      ck_assert(json_is_string(json_object_get(first, "debit_id")));
    }
    json_decref(items);
  } while (cur != NULL && pages < 10);
  ck_assert_int_eq(seen, 9);
  ck_assert_int_eq(pages, 5);
  ck_assert_int_eq(credit_ledger_list(g_pool, uid, 2, "garbage", &items, &next, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(credit_ledger_list(g_pool, uid, 0, NULL, &items, &next, err), LC_ERR_PARAM);
  ck_assert_int_eq(credit_ledger_list(g_pool, uid, 101, NULL, &items, &next, err), LC_ERR_PARAM);
}
END_TEST

START_TEST(test_audit_query) {
  char u1[37], u2[37], err[LC_ERR_LEN];
  new_user(u1);
  new_user(u2);
  const char *users[2] = {u1, u2};
  for (int i = 0; i < 3; i++) {
    credit_reservation r;
    credit_debit d;
    const char *u = users[i % 2];
    ck_assert_int_eq(credit_ledger_reserve(g_pool, u, i == 2 ? "file.upload" : "report.generate",
                                           NULL, "rid-a", 60, &r, NULL, err),
                     LC_OK);
    ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, NULL, "actor-x", &d, err), LC_OK);
  }
  credit_audit_query q = {u1, NULL, NULL, NULL, NULL, 100};
  json_t *items = NULL;
  char *next = NULL;
  ck_assert_int_eq(credit_ledger_audit(g_pool, &q, &items, &next, err), LC_OK);
  ck_assert_int_eq(json_array_size(items), 4); /* 2 x (reservation, debit) */
  ck_assert_ptr_null(next);
  json_t *it = json_array_get(items, 0);
  ck_assert_str_eq(json_string_value(json_object_get(it, "user_id")), u1);
  ck_assert_str_eq(json_string_value(json_object_get(it, "actor")), "actor-x");
  ck_assert_str_eq(json_string_value(json_object_get(it, "chain_status")), "pending");
  ck_assert(json_is_null(json_object_get(it, "tx_hash")));
  json_decref(items);
  q = (credit_audit_query){NULL, "file.upload", "2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z",
                           NULL, 1};
  ck_assert_int_eq(credit_ledger_audit(g_pool, &q, &items, &next, err), LC_OK);
  ck_assert_int_eq(json_array_size(items), 1);
  ck_assert_ptr_null(next);
  json_decref(items);
  q = (credit_audit_query){NULL, NULL, NULL, NULL, NULL, 4};
  ck_assert_int_eq(credit_ledger_audit(g_pool, &q, &items, &next, err), LC_OK);
  ck_assert_int_eq(json_array_size(items), 4);
  ck_assert_ptr_nonnull(next);
  json_decref(items);
  q.cursor = next;
  char *next2 = NULL;
  ck_assert_int_eq(credit_ledger_audit(g_pool, &q, &items, &next2, err), LC_OK);
  ck_assert_int_eq(json_array_size(items), 2);
  ck_assert_ptr_null(next2);
  json_decref(items);
  free(next);
  q = (credit_audit_query){NULL, NULL, "yesterday", NULL, NULL, 2};
  ck_assert_int_eq(credit_ledger_audit(g_pool, &q, &items, &next, err), LC_ERR_PARAM);
}
END_TEST

/* ---- chain results ---- */

static char *result_env(const char *type, const char *debit_id, const char *tx, json_t *block) {
  const char *status = strrchr(type, '.') + 1;
  json_t *b = json_pack("{s:s, s:s?, s:i, s:s, s:o, s:s}", "debit_id", debit_id, "tx_hash", tx,
                        "nonce", 7, "to_address", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                        "block_number", block, "status", status);
  char *env = lc_msg_build(type, NULL, "rid-chain", b, NULL);
  json_decref(b);
  return env;
}

static int send_result(const char *type, const char *debit_id, const char *tx, json_t *block) {
  char *env = result_env(type, debit_id, tx, block);
  int rc = credit_chainres_handle(g_pool, type, "m", env, strlen(env));
  free(env);
  return rc;
}

START_TEST(test_chain_status_order) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  credit_reservation r;
  credit_debit d;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "file.upload", NULL, "rid", 60, &r, NULL,
                                         err),
                   LC_OK);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d, err), LC_OK);
  const char *tx1 = "0x1111111111111111111111111111111111111111111111111111111111111111";
  const char *tx2 = "0x2222222222222222222222222222222222222222222222222222222222222222";
  ck_assert_int_eq(send_result("chain.transfer.submitted", d.debit_id, tx1, json_null()), LC_OK);
  char *s = q_str("SELECT chain_status || ' ' || tx_hash FROM audit WHERE debit_id = $1::uuid",
                  d.debit_id);
  ck_assert_str_eq(s, "submitted 0x1111111111111111111111111111111111111111111111111111111111111111");
  free(s);
  ck_assert_int_eq(send_result("chain.transfer.confirmed", d.debit_id, tx2, json_integer(12)),
                   LC_OK);
  /* Late submitted (redelivery) after confirmed: still confirmed, same hash and block. */
  ck_assert_int_eq(send_result("chain.transfer.submitted", d.debit_id, tx1, json_null()), LC_OK);
  s = q_str("SELECT chain_status || ' ' || tx_hash || ' ' || block_number || ' ' || to_address"
            " FROM audit WHERE debit_id = $1::uuid",
            d.debit_id);
  ck_assert_str_eq(s, "confirmed 0x2222222222222222222222222222222222222222222222222222222222222222"
                      " 12 0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
  free(s);
  /* A duplicate confirmed is acked without change. */
  ck_assert_int_eq(send_result("chain.transfer.confirmed", d.debit_id, tx2, json_integer(12)),
                   LC_OK);
  /* Unknown debit -> dead-letter (LC_ERR_PARAM). */
  char unknown[37];
  lc_uuid_v4(unknown);
  ck_assert_int_eq(send_result("chain.transfer.confirmed", unknown, tx2, json_integer(3)),
                   LC_ERR_PARAM);
  /* Malformed messages -> dead-letter. */
  ck_assert_int_eq(credit_chainres_handle(g_pool, "chain.transfer.confirmed", "m", "{", 1),
                   LC_ERR_PARAM);
  ck_assert_int_eq(send_result("chain.transfer.confirmed", d.debit_id, "0x12", json_integer(1)),
                   LC_ERR_PARAM);
  ck_assert_int_eq(send_result("chain.transfer.confirmed", d.debit_id, NULL, json_integer(1)),
                   LC_ERR_PARAM);
  ck_assert_int_eq(send_result("chain.transfer.exploded", d.debit_id, tx1, json_integer(1)),
                   LC_ERR_PARAM);
  s = q_str("SELECT chain_status FROM audit WHERE debit_id = $1::uuid", d.debit_id);
  ck_assert_str_eq(s, "confirmed");
  free(s);
}
END_TEST

START_TEST(test_chain_failed_then_confirmed) {
  char uid[37], err[LC_ERR_LEN];
  new_user(uid);
  credit_reservation r;
  credit_debit d;
  int applied = -1;
  ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "file.upload", NULL, "rid", 60, &r, NULL,
                                         err),
                   LC_OK);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d, err), LC_OK);
  ck_assert_int_eq(credit_ledger_chain_update(g_pool, d.debit_id, "failed", NULL, -1, NULL,
                                              &applied, err),
                   LC_OK);
  ck_assert_int_eq(applied, 1);
  ck_assert_int_eq(credit_ledger_chain_update(g_pool, d.debit_id, "submitted", "0xab", -1, NULL,
                                              &applied, err),
                   LC_OK);
  ck_assert_int_eq(applied, 0);
  ck_assert_int_eq(credit_ledger_chain_update(g_pool, d.debit_id, "confirmed", "0xab", 9, NULL,
                                              &applied, err),
                   LC_OK);
  ck_assert_int_eq(applied, 1);
  ck_assert_int_eq(credit_ledger_chain_update(g_pool, d.debit_id, "failed", NULL, -1, NULL,
                                              &applied, err),
                   LC_OK);
  ck_assert_int_eq(applied, 0);
  char *s = q_str("SELECT chain_status FROM audit WHERE debit_id = $1::uuid", d.debit_id);
  ck_assert_str_eq(s, "confirmed");
  free(s);
}
END_TEST

/* A delivered batch: one transaction, in order; per message the same
 * outcome as one by one (submitted then confirmed of one debit in the same
 * batch ends confirmed; unknown debit and malformed -> dead-letter). */
START_TEST(test_chain_results_batch) {
  char uid[37], err[LC_ERR_LEN], unknown[37];
  credit_debit d[2];
  new_user(uid);
  for (int i = 0; i < 2; i++) {
    credit_reservation r;
    ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "report.download", NULL, "rid", 60, &r,
                                           NULL, err),
                     LC_OK);
    ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d[i], err), LC_OK);
  }
  lc_uuid_v4(unknown);
  const char *tx1 = "0x1111111111111111111111111111111111111111111111111111111111111111";
  const char *tx2 = "0x2222222222222222222222222222222222222222222222222222222222222222";
  const char *types[6] = {"chain.transfer.submitted", "chain.transfer.confirmed",
                          "chain.transfer.confirmed", "chain.transfer.confirmed",
                          "chain.transfer.submitted", "chain.transfer.submitted"};
  char *env[6] = {result_env(types[0], d[0].debit_id, tx1, json_null()),
                  result_env(types[1], d[0].debit_id, tx1, json_integer(5)),
                  result_env(types[2], unknown, tx2, json_integer(6)),
                  lc_xstrdup("{\"not\":\"an envelope\"}"),
                  result_env(types[4], d[1].debit_id, tx2, json_null()),
                  /* late duplicate of #0 after its confirmed: acked, changes nothing */
                  result_env(types[5], d[0].debit_id, tx1, json_null())};
  lc_amqp_delivery dl[6];
  for (int i = 0; i < 6; i++)
    dl[i] = (lc_amqp_delivery){types[i], "m", env[i], strlen(env[i]), -99};
  credit_chainres_batch(g_pool, dl, 6);
  const int want[6] = {LC_OK, LC_OK, LC_ERR_PARAM, LC_ERR_PARAM, LC_OK, LC_OK};
  for (int i = 0; i < 6; i++) {
    ck_assert_msg(dl[i].rc == want[i], "delivery %d: rc %d, want %d", i, dl[i].rc, want[i]);
    free(env[i]);
  }
  char *s = q_str("SELECT chain_status || ' ' || tx_hash || ' ' || block_number FROM audit"
                  " WHERE debit_id = $1::uuid",
                  d[0].debit_id);
  ck_assert_str_eq(s, "confirmed 0x1111111111111111111111111111111111111111111111111111111111111111 5");
  free(s);
  s = q_str("SELECT chain_status || ' ' || tx_hash FROM audit WHERE debit_id = $1::uuid",
            d[1].debit_id);
  ck_assert_str_eq(s, "submitted 0x2222222222222222222222222222222222222222222222222222222222222222");
  free(s);
  /* the database gone: every valid result of the batch is requeued, nothing dead-lettered */
  lc_db_pool *dead = NULL;
  ck_assert_int_eq(lc_db_pool_new("postgresql://nobody@127.0.0.1:1/x?connect_timeout=1", 1, 200,
                                  &dead, err),
                   LC_OK);
  char *e2 = result_env("chain.transfer.confirmed", d[1].debit_id, tx2, json_integer(8));
  lc_amqp_delivery dd[2] = {{"chain.transfer.confirmed", "m", e2, strlen(e2), -99},
                            {"chain.transfer.confirmed", "m", e2, strlen(e2), -99}};
  credit_chainres_batch(dead, dd, 2);
  ck_assert_int_ne(dd[0].rc, LC_OK);
  ck_assert_int_ne(dd[0].rc, LC_ERR_PARAM);
  ck_assert_int_eq(dd[1].rc, dd[0].rc);
  free(e2);
  lc_db_pool_free(dead);
  s = q_str("SELECT chain_status FROM audit WHERE debit_id = $1::uuid", d[1].debit_id);
  ck_assert_str_eq(s, "submitted");
  free(s);
}
END_TEST

/* ---- outbox relay against the real broker ---- */

typedef struct {
  amqp_connection_state_t conn;
  char exchange[64], queue[64];
} test_broker;

static void broker_open(test_broker *b) {
  char url[512];
  struct amqp_connection_info ci;
  lc_strlcpy(url, amqp_url(), sizeof(url));
  ck_assert_int_eq(amqp_parse_url(url, &ci), AMQP_STATUS_OK);
  b->conn = amqp_new_connection();
  amqp_socket_t *sock = amqp_tcp_socket_new(b->conn);
  ck_assert_ptr_nonnull(sock);
  ck_assert_int_eq(amqp_socket_open(sock, ci.host, ci.port), AMQP_STATUS_OK);
  amqp_rpc_reply_t rep =
      amqp_login(b->conn, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
  ck_assert_int_eq(rep.reply_type, AMQP_RESPONSE_NORMAL);
  amqp_channel_open(b->conn, 1);
  ck_assert_int_eq(amqp_get_rpc_reply(b->conn).reply_type, AMQP_RESPONSE_NORMAL);
  uint8_t rnd[6];
  char hex[13];
  lc_random(rnd, sizeof(rnd));
  lc_hex_encode(rnd, sizeof(rnd), hex);
  snprintf(b->exchange, sizeof(b->exchange), "credit.events.test-%s", hex);
  snprintf(b->queue, sizeof(b->queue), "credit-svc.test-%s", hex);
  amqp_exchange_declare(b->conn, 1, amqp_cstring_bytes(b->exchange), amqp_cstring_bytes("topic"),
                        0, 0, 1, 0, amqp_empty_table);
  ck_assert_int_eq(amqp_get_rpc_reply(b->conn).reply_type, AMQP_RESPONSE_NORMAL);
  amqp_queue_declare(b->conn, 1, amqp_cstring_bytes(b->queue), 0, 0, 1, 1, amqp_empty_table);
  ck_assert_int_eq(amqp_get_rpc_reply(b->conn).reply_type, AMQP_RESPONSE_NORMAL);
  amqp_queue_bind(b->conn, 1, amqp_cstring_bytes(b->queue), amqp_cstring_bytes(b->exchange),
                  amqp_cstring_bytes("credit.debit.committed"), amqp_empty_table);
  ck_assert_int_eq(amqp_get_rpc_reply(b->conn).reply_type, AMQP_RESPONSE_NORMAL);
}

static void broker_close(test_broker *b) {
  amqp_exchange_delete(b->conn, 1, amqp_cstring_bytes(b->exchange), 0);
  amqp_channel_close(b->conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(b->conn);
}

/* Gets one message (waits up to ~5 s); body and message_id copied out. */
static int broker_get(test_broker *b, char *body, size_t bodysz, char msgid[64]) {
  for (int i = 0; i < 100; i++) {
    amqp_rpc_reply_t rep = amqp_basic_get(b->conn, 1, amqp_cstring_bytes(b->queue), 1);
    ck_assert_int_eq(rep.reply_type, AMQP_RESPONSE_NORMAL);
    if (rep.reply.id == AMQP_BASIC_GET_OK_METHOD) {
      amqp_message_t m;
      ck_assert_int_eq(amqp_read_message(b->conn, 1, &m, 0).reply_type, AMQP_RESPONSE_NORMAL);
      size_t n = m.body.len < bodysz - 1 ? m.body.len : bodysz - 1;
      memcpy(body, m.body.bytes, n);
      body[n] = '\0';
      msgid[0] = '\0';
      if (m.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
        size_t k = m.properties.message_id.len < 63 ? m.properties.message_id.len : 63;
        memcpy(msgid, m.properties.message_id.bytes, k);
        msgid[k] = '\0';
      }
      amqp_destroy_message(&m);
      return 1;
    }
    usleep(50 * 1000);
  }
  return 0;
}

START_TEST(test_outbox_relay_publishes_and_marks_sent) {
  char uid[37], err[LC_ERR_LEN] = "";
  new_user(uid);
  ck_assert_msg(lc_amqp_declare_topology(amqp_url(), err) == LC_OK, "topology: %s", err);
  test_broker b;
  broker_open(&b);
  credit_debit d[2];
  for (int i = 0; i < 2; i++) {
    credit_reservation r;
    ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "report.generate", NULL, "rid-out", 60,
                                           &r, NULL, err),
                     LC_OK);
    ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d[i], err), LC_OK);
  }
  lc_amqp_pub *pub = NULL;
  ck_assert_msg(lc_amqp_pub_open(amqp_url(), &pub, err) == LC_OK, "pub: %s", err);
  int sent = 0;
  ck_assert_msg(lc_outbox_drain(g_pool, pub, b.exchange, NULL, &sent, err) == LC_OK, "drain: %s",
                err);
  ck_assert_int_eq(sent, 2);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox WHERE sent_at IS NULL", NULL, NULL), 0);
  /* Nothing left: a second drain sends nothing. */
  ck_assert_int_eq(lc_outbox_drain(g_pool, pub, b.exchange, NULL, &sent, err), LC_OK);
  ck_assert_int_eq(sent, 0);
  lc_amqp_pub_close(pub);
  for (int i = 0; i < 2; i++) {
    char body[4096], msgid[64], type[64], id[37], rid[64];
    json_t *mb = NULL;
    ck_assert(broker_get(&b, body, sizeof(body), msgid));
    ck_assert_int_eq(lc_msg_parse(body, strlen(body), "credit.debit.committed", type, id, rid, &mb,
                                  err),
                     LC_OK);
    ck_assert_str_eq(msgid, id);
    ck_assert_str_eq(rid, "rid-out");
    const char *did = json_string_value(json_object_get(mb, "debit_id"));
    ck_assert(strcmp(did, d[i].debit_id) == 0 || strcmp(did, d[1 - i].debit_id) == 0);
    ck_assert_str_eq(json_string_value(json_object_get(mb, "user_id")), uid);
    ck_assert_str_eq(json_string_value(json_object_get(mb, "action")), "report.generate");
    ck_assert_int_eq(json_integer_value(json_object_get(mb, "cost")), 5);
    ck_assert(json_is_string(json_object_get(mb, "committed_at")));
    ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox WHERE id = $1::uuid AND sent_at IS NOT"
                           " NULL",
                           id, NULL),
                     1);
    json_decref(mb);
  }
  broker_close(&b);
}
END_TEST

/* One drain = one pipelined batch of the 100 oldest rows. In a batch of
 * bound, unroutable and droppable routing keys, each row gets its own fate:
 * bound and droppable rows are marked sent, unroutable ones stay unsent
 * with attempts + 1 (LC_ERR_NOTFOUND, publisher still usable); the next
 * drain takes the rest. */
START_TEST(test_outbox_drain_mixed_batch) {
  char err[LC_ERR_LEN] = "";
  const char *const drop[] = {"drop.", NULL};
  test_broker b;
  broker_open(&b);
  PGconn *c = NULL;
  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  /* 130 rows, oldest first: every 10th unroutable, every 10th (+5) droppable */
  ck_assert_msg(lc_db_exec(c,
                           "INSERT INTO outbox (id, routing_key, payload, created_at)"
                           " SELECT gen_random_uuid(), CASE WHEN i % 10 = 3 THEN 'x.unbound'"
                           " WHEN i % 10 = 8 THEN 'drop.me' ELSE 'credit.debit.committed' END,"
                           " '{\"i\":' || i || '}', now() - interval '1 hour' + i * interval '1 ms'"
                           " FROM generate_series(0, 129) AS i",
                           0, NULL, NULL, err) == LC_OK,
                "%s", err);
  lc_db_release(g_pool, c);
  lc_amqp_pub *pub = NULL;
  ck_assert_msg(lc_amqp_pub_open(amqp_url(), &pub, err) == LC_OK, "pub: %s", err);
  int sent = -1;
  ck_assert_int_eq(lc_outbox_drain(g_pool, pub, b.exchange, drop, &sent, err), LC_ERR_NOTFOUND);
  ck_assert_msg(strstr(err, "10 of 100 unroutable") != NULL, "err: %s", err);
  ck_assert_int_eq(sent, 90);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND attempts = 1"
                         " AND routing_key = 'x.unbound'", NULL, NULL), 10);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL"
                         " AND routing_key = 'x.unbound'", NULL, NULL), 0);
  /* the publisher is still usable: the second drain takes the 30 newest
   * plus the 10 unroutable again (40 rows: 27 + 3 sent, 13 stay) */
  ck_assert_int_eq(lc_outbox_drain(g_pool, pub, b.exchange, drop, &sent, err), LC_ERR_NOTFOUND);
  ck_assert_int_eq(sent, 27);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox WHERE sent_at IS NULL", NULL, NULL), 13);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND attempts = 2",
                         NULL, NULL), 10);
  lc_amqp_pub_close(pub);
  /* the bound ones all reached the queue, each once */
  int got = 0;
  char body[256], msgid[64];
  while (got < 200 && broker_get(&b, body, sizeof(body), msgid))
    got++;
  ck_assert_int_eq(got, 104);
  broker_close(&b);
}
END_TEST

/* The relay thread end to end: the commit rings the relay's bell (no
 * NOTIFY), publish, mark sent, stop. */
START_TEST(test_outbox_thread) {
  char uid[37], err[LC_ERR_LEN] = "";
  new_user(uid);
  test_broker b;
  broker_open(&b);
  atomic_bool stop = false;
  lc_outbox_bell *bell = NULL;
  ck_assert_int_eq(lc_outbox_bell_new(&bell, err), LC_OK);
  credit_ledger_set_outbox_bell(bell);
  lc_outbox_cfg cfg = {.pool = g_pool,
                       .bell = bell,
                       .amqp_url = amqp_url(),
                       .exchange = b.exchange,
                       .poll_ms = 1000,
                       .name = "credit-outbox-test",
                       .stop = &stop};
  /* a listener on the channel the debit used to NOTIFY: it must hear nothing */
  PGconn *lis = PQconnectdb(g_url);
  ck_assert_int_eq(PQstatus(lis), CONNECTION_OK);
  ck_assert_int_eq(lc_db_exec(lis, "LISTEN credit_outbox", 0, NULL, NULL, err), LC_OK);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, lc_outbox_thread, &cfg), 0);
  usleep(300 * 1000);
  for (int round = 0; round < 3; round++) {
    credit_reservation r;
    credit_debit d;
    ck_assert_int_eq(credit_ledger_reserve(g_pool, uid, "file.upload", NULL, "rid-t", 60, &r,
                                           NULL, err),
                     LC_OK);
    int64_t t0 = lc_mono_ms();
    ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d, err), LC_OK);
    char body[4096], msgid[64];
    ck_assert(broker_get(&b, body, sizeof(body), msgid));
    int64_t latency = lc_mono_ms() - t0;
    /* poll period is 1 s here: a fast delivery, every time, shows the bell works */
    ck_assert_msg(latency < 900, "relay latency %lld ms (round %d)", (long long)latency, round);
    ck_assert_ptr_nonnull(strstr(body, d.debit_id));
  }
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM outbox WHERE sent_at IS NULL", NULL, NULL), 0);
  ck_assert_int_eq(PQconsumeInput(lis), 1);
  PGnotify *nt = PQnotifies(lis);
  ck_assert_msg(nt == NULL, "a debit sent NOTIFY %s", nt != NULL ? nt->relname : "");
  PQfinish(lis);
  credit_ledger_set_outbox_bell(NULL);
  lc_outbox_bell_free(bell);
  broker_close(&b);
}
END_TEST

/* ---- HTTP routes (real ulfius instance, signed like the gateway) ---- */

static const char *SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static struct _u_instance g_inst;
static credit_ctx g_ctx;
static char g_base[64];

static void http_setup(void) {
  char err[LC_ERR_LEN] = "";
  setup();
  uint8_t rnd[2];
  lc_random(rnd, sizeof(rnd));
  int port = 22000 + ((rnd[0] << 8 | rnd[1]) % 4000);
  g_ctx = (credit_ctx){g_pool, 60, {(const uint8_t *)SECRET, strlen(SECRET), LC_IAUTH_SKEW_S, NULL},
                       NULL /* no auth-svc in this test: top-ups skip the user check */};
  ck_assert_int_eq(lc_svc_instance_init(&g_inst, "127.0.0.1", port, 0, err), LC_OK);
  ck_assert_int_eq(credit_handlers_register(&g_inst, &g_ctx, err), LC_OK);
  ck_assert_msg(lc_svc_start(&g_inst, NULL, NULL, 64, 10, err) == LC_OK, "start: %s", err);
  snprintf(g_base, sizeof(g_base), "http://127.0.0.1:%d", port);
}

static void http_teardown(void) {
  ulfius_stop_framework(&g_inst);
  ulfius_clean_instance(&g_inst);
  teardown();
}

/* Signed call; returns the status, *out (may be NULL) = parsed body (new). */
static long call(const char *user, const char *role, const char *scope, const char *method,
                 const char *path, const char *body, json_t **out) {
  lc_identity id;
  memset(&id, 0, sizeof(id));
  lc_strlcpy(id.user_id, user, sizeof(id.user_id));
  lc_strlcpy(id.role, role, sizeof(id.role));
  lc_strlcpy(id.scope, scope, sizeof(id.scope));
  lc_strlcpy(id.request_id, "rid-http", sizeof(id.request_id));
  lc_http_resp r;
  char err[LC_ERR_LEN] = "";
  int rc = lc_iauth_call((const uint8_t *)SECRET, strlen(SECRET), g_base, method, path, &id, NULL,
                         body, body ? strlen(body) : 0, 5000, &r, err);
  ck_assert_msg(rc == LC_OK, "call %s %s: %s", method, path, err);
  long st = r.status;
  if (out) {
    json_error_t je;
    *out = r.body ? json_loads(r.body, 0, &je) : NULL;
  }
  lc_http_resp_free(&r);
  return st;
}

START_TEST(test_http_flow) {
  char uid[37], other[37], body[256], path[160];
  new_user(uid);
  new_user(other);
  json_t *j = NULL;
  /* Unsigned -> 401. */
  lc_http_req hr = {0};
  lc_http_resp r;
  char err[LC_ERR_LEN];
  char url[128];
  snprintf(url, sizeof(url), "%s/v1/credits", g_base);
  hr.method = "GET";
  hr.url = url;
  ck_assert_int_eq(lc_http_do(&hr, &r, err), LC_OK);
  ck_assert_int_eq(r.status, 401);
  lc_http_resp_free(&r);
  /* Opening: system 201 then 200; a user may not open someone else's. */
  snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", uid);
  ck_assert_int_eq(call("", "system", "", "POST", "/internal/accounts", body, NULL), 201);
  ck_assert_int_eq(call("", "system", "", "POST", "/internal/accounts", body, NULL), 200);
  ck_assert_int_eq(call(other, "user", "full", "POST", "/internal/accounts", body, NULL), 403);
  ck_assert_int_eq(call("", "anon", "", "POST", "/internal/accounts", body, NULL), 403);
  /* Balance. */
  ck_assert_int_eq(call(uid, "user", "full", "GET", "/v1/credits", NULL, &j), 200);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "balance")), 50);
  json_decref(j);
  ck_assert_int_eq(call(uid, "service", "write", "GET", "/v1/credits", NULL, NULL), 403);
  ck_assert_int_eq(call("", "anon", "", "GET", "/v1/credits", NULL, NULL), 401);
  ck_assert_int_eq(call(uid, "user", "full", "GET", "/v1/credits?x=1", NULL, NULL), 400);
  /* Reserve: validation, then 201, then commit. */
  snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"action\":\"file.upload\",\"cost\":0}", uid);
  ck_assert_int_eq(call(uid, "user", "full", "POST", "/internal/reservations", body, NULL), 400);
  snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"action\":\"file.nope\"}", uid);
  ck_assert_int_eq(call(uid, "user", "full", "POST", "/internal/reservations", body, NULL), 400);
  snprintf(body, sizeof(body), "{\"user_id\":\"%s\",\"action\":\"file.upload\"}", uid);
  ck_assert_int_eq(call(other, "user", "full", "POST", "/internal/reservations", body, NULL), 403);
  ck_assert_int_eq(call(uid, "user", "full", "POST", "/internal/reservations", body, &j), 201);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "cost")), 10);
  char rid[37];
  lc_strlcpy(rid, json_string_value(json_object_get(j, "reservation_id")), sizeof(rid));
  json_decref(j);
  snprintf(path, sizeof(path), "/internal/reservations/%s/commit", rid);
  ck_assert_int_eq(call(other, "user", "full", "POST", path, NULL, NULL), 404);
  ck_assert_int_eq(call(uid, "user", "full", "POST", path, NULL, &j), 200);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "balance")), 40);
  char debit[37];
  lc_strlcpy(debit, json_string_value(json_object_get(j, "debit_id")), sizeof(debit));
  json_decref(j);
  ck_assert_int_eq(call(uid, "user", "full", "POST", path, NULL, &j), 200);
  ck_assert_str_eq(json_string_value(json_object_get(j, "debit_id")), debit);
  json_decref(j);
  snprintf(path, sizeof(path), "/internal/reservations/%s/release", rid);
  ck_assert_int_eq(call(uid, "user", "full", "POST", path, NULL, NULL), 409);
  /* Drain to 0 with 4 uploads, the 5th -> 402 problem. */
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(call(uid, "user", "full", "POST", "/internal/reservations", body, &j), 201);
    snprintf(path, sizeof(path), "/internal/reservations/%s/commit",
             json_string_value(json_object_get(j, "reservation_id")));
    json_decref(j);
    ck_assert_int_eq(call("", "system", "", "POST", path, NULL, NULL), 200);
  }
  ck_assert_int_eq(call(uid, "user", "full", "POST", "/internal/reservations", body, &j), 402);
  ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "urn:problem:insufficient-credits");
  json_decref(j);
  /* Ledger (public + internal) and audit (admin only). */
  ck_assert_int_eq(call(uid, "user", "full", "GET", "/v1/credits/ledger?limit=2", NULL, &j), 200);
  ck_assert_int_eq(json_array_size(json_object_get(j, "items")), 2);
  ck_assert(json_is_string(json_object_get(j, "next_cursor")));
  json_decref(j);
  ck_assert_int_eq(call(uid, "user", "full", "GET", "/v1/credits/ledger?limit=abc", NULL, NULL),
                   400);
  snprintf(path, sizeof(path), "/internal/ledger?user_id=%s&limit=100", uid);
  ck_assert_int_eq(call("", "system", "", "GET", path, NULL, &j), 200);
  ck_assert_int_eq(json_array_size(json_object_get(j, "items")), 11); /* bonus + 5 x 2 */
  ck_assert(json_is_null(json_object_get(j, "next_cursor")));
  json_decref(j);
  ck_assert_int_eq(call(other, "user", "full", "GET", path, NULL, NULL), 403);
  snprintf(path, sizeof(path), "/v1/admin/audit?user_id=%s", uid);
  ck_assert_int_eq(call(uid, "user", "full", "GET", path, NULL, NULL), 403);
  ck_assert_int_eq(call(other, "admin", "full", "GET", path, NULL, &j), 200);
  ck_assert_int_eq(json_array_size(json_object_get(j, "items")), 10); /* 5 x (reserve, debit) */
  json_decref(j);
  /* Admin top-up: admin only, strict body, 201 {entry_id, balance}. */
  snprintf(path, sizeof(path), "/v1/admin/users/%s/credits", uid);
  ck_assert_int_eq(call(uid, "user", "full", "POST", path, "{\"amount\":5,\"reason\":\"r\"}",
                        NULL), 403);
  ck_assert_int_eq(call(other, "admin", "full", "POST", path, "{\"amount\":1.5,\"reason\":\"r\"}",
                        NULL), 400);
  ck_assert_int_eq(call(other, "admin", "full", "POST", "/v1/admin/users/nope/credits",
                        "{\"amount\":5,\"reason\":\"r\"}", NULL), 400);
  ck_assert_int_eq(call(other, "admin", "full", "POST", path, "{\"amount\":5,\"reason\":\"r\"}",
                        &j), 201);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "balance")), 5);
  ck_assert(lc_uuid_valid(json_string_value(json_object_get(j, "entry_id"))));
  json_decref(j);
  /* Contract C: balances and debits for admin/system only. */
  snprintf(path, sizeof(path), "/internal/balances?user_ids=%s,%s", uid, other);
  ck_assert_int_eq(call(uid, "user", "full", "GET", path, NULL, NULL), 403);
  ck_assert_int_eq(call("", "system", "", "GET", path, NULL, &j), 200);
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(json_object_get(j, "items"),
                                                                     0), "balance")), 5);
  json_decref(j);
  ck_assert_int_eq(call("", "system", "", "GET", "/internal/balances?user_ids=x", NULL, NULL), 400);
  ck_assert_int_eq(call("", "system", "", "GET", "/internal/debits?limit=100", NULL, &j), 200);
  ck_assert_int_eq(json_array_size(json_object_get(j, "items")), 5);
  json_decref(j);
  ck_assert_int_eq(call("", "system", "", "GET", "/internal/debits?since=x", NULL, NULL), 400);
  ck_assert_int_eq(call(other, "admin", "full", "GET", "/v1/admin/audit?since=today", NULL, NULL),
                   400);
  /* request_id in the body (SPEC §4) is recorded; a malformed one is rejected. */
  snprintf(body, sizeof(body),
           "{\"user_id\":\"%s\",\"action\":\"report.generate\",\"request_id\":\"a b\"}", other);
  ck_assert_int_eq(call(other, "user", "full", "POST", "/internal/reservations", body, NULL), 400);
  snprintf(body, sizeof(body),
           "{\"user_id\":\"%s\",\"action\":\"report.generate\",\"request_id\":\"req-body-1\"}",
           other);
  ck_assert_int_eq(call(other, "user", "full", "POST", "/internal/reservations", body, &j), 201);
  snprintf(path, sizeof(path), "/internal/reservations/%s/commit",
           json_string_value(json_object_get(j, "reservation_id")));
  json_decref(j);
  ck_assert_int_eq(call(other, "service", "read", "POST", path, NULL, NULL), 200);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE request_id = 'req-body-1' AND user_id ="
                         " $1::uuid AND actor = $1::text AND debit_id IS NOT NULL",
                         other, NULL),
                   1);
  check_invariant(uid);
  check_invariant(other);
}
END_TEST

int main(void) {
  Suite *s = suite_create("credit-svc-integration");
  TCase *tc = tcase_create("ledger");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_open_concurrent_single_bonus);
  tcase_add_test(tc, test_lazy_open_and_bad_input);
  tcase_add_test(tc, test_reserve_commit_release_arithmetic);
  tcase_add_test(tc, test_other_users_reservation_is_not_found);
  tcase_add_test(tc, test_concurrent_reservations_never_overdraw);
  tcase_add_test(tc, test_commit_twice_same_debit);
  tcase_add_test(tc, test_release_after_commit_conflicts);
  tcase_add_test(tc, test_expired_reservation_cannot_commit);
  tcase_add_test(tc, test_idempotency_key);
  tcase_add_test(tc, test_ledger_pagination);
  tcase_add_test(tc, test_audit_query);
  tcase_add_test(tc, test_chain_status_order);
  tcase_add_test(tc, test_chain_failed_then_confirmed);
  tcase_add_test(tc, test_chain_results_batch);
  suite_add_tcase(s, tc);
  tc = tcase_create("outbox");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_outbox_relay_publishes_and_marks_sent);
  tcase_add_test(tc, test_outbox_drain_mixed_batch);
  tcase_add_test(tc, test_outbox_thread);
  suite_add_tcase(s, tc);
  tc = tcase_create("http");
  tcase_add_checked_fixture(tc, http_setup, http_teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_http_flow);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
