/* test_ledger_integration.c - issue-4 ledger behaviour against the real
 * PostgreSQL: append-only triggers, entries for reservation / commit /
 * release / expiry with balance = sum(delta) and reserved = sum(hold), grants
 * inside a caller's transaction (exactly once per reference), Idempotency-Key
 * records, the admin top-up, reservation key takeover, low-credit crossings
 * and auth.audit events.
 *
 * Each test runs in its own random schema (migrated from credit-svc/sql,
 * dropped afterwards) with its own random users.
 * Env: CREDIT_TEST_PG_URL (or LC_TEST_PG_URL). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "credit_audit.h"
#include "credit_idem.h"
#include "credit_ledger.h"
#include "credit_topup.h"
#include "lc/db.h"
#include "lc/msg.h"
#include "lc/util.h"

static char g_schema[64];
static lc_db_pool *g_pool;

static const char *pg_base(void) {
  const char *v = getenv("CREDIT_TEST_PG_URL");
  if (v && v[0])
    return v;
  v = getenv("LC_TEST_PG_URL");
  return (v && v[0]) ? v : "postgresql://postgres@127.0.0.1:25432/saas";
}

static void setup(void) {
  uint8_t rnd[6];
  char hex[13], url[1024], err[LC_ERR_LEN] = "";
  lc_random(rnd, sizeof(rnd));
  lc_hex_encode(rnd, sizeof(rnd), hex);
  snprintf(g_schema, sizeof(g_schema), "credit_l_%s", hex);
  const char *base = pg_base();
  snprintf(url, sizeof(url), "%s%soptions=-csearch_path%%3D%s", base,
           strchr(base, '?') ? "&" : "?", g_schema);
  ck_assert_int_eq(lc_db_pool_new(url, 8, 5000, &g_pool, err), LC_OK);
  int rc = lc_db_migrate(g_pool, g_schema, CREDIT_SQL_DIR_DEFAULT, err);
  ck_assert_msg(rc == LC_OK, "migrate: %s", err);
  credit_ledger_set_low_threshold(10);
}

static void teardown(void) {
  PGconn *c = NULL;
  char err[LC_ERR_LEN], sql[128];
  if (g_pool && lc_db_acquire(g_pool, &c, err) == LC_OK) {
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", g_schema);
    lc_db_exec(c, sql, 0, NULL, NULL, err);
    lc_db_release(g_pool, c);
  }
  lc_db_pool_free(g_pool);
  g_pool = NULL;
}

/* Runs sql with up to 2 params; returns the lc status. */
static int q_exec(const char *sql, const char *p1, const char *p2) {
  PGconn *c = NULL;
  char err[LC_ERR_LEN];
  const char *p[2] = {p1, p2};
  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  int rc = lc_db_exec(c, sql, p2 ? 2 : (p1 ? 1 : 0), p, NULL, err);
  lc_db_release(g_pool, c);
  return rc;
}

static int64_t q_i64(const char *sql, const char *p1, const char *p2) {
  PGconn *c = NULL;
  PGresult *r = NULL;
  char err[LC_ERR_LEN];
  const char *p[2] = {p1, p2};
  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  int rc = lc_db_exec(c, sql, p2 ? 2 : (p1 ? 1 : 0), p, &r, err);
  lc_db_release(g_pool, c);
  ck_assert_msg(rc == LC_OK, "%s: %s", sql, err);
  ck_assert_int_eq(PQntuples(r), 1);
  int64_t v = 0;
  ck_assert_int_eq(lc_parse_i64(PQgetvalue(r, 0, 0), INT64_MIN, INT64_MAX, &v), LC_OK);
  PQclear(r);
  return v;
}

/* The ledger invariant: cached balance/reserved equal the entry sums, the
 * newest entry's balance_after equals the balance, nothing negative. */
static void check_invariant(const char *uid) {
  int64_t bal = q_i64("SELECT balance FROM accounts WHERE user_id = $1::uuid", uid, NULL);
  int64_t res = q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL);
  ck_assert_int_eq(bal, q_i64("SELECT coalesce(sum(delta),0)::bigint FROM ledger WHERE user_id ="
                              " $1::uuid", uid, NULL));
  ck_assert_int_eq(res, q_i64("SELECT coalesce(sum(hold),0)::bigint FROM ledger WHERE user_id ="
                              " $1::uuid", uid, NULL));
  ck_assert_int_eq(res, q_i64("SELECT coalesce(sum(cost),0)::bigint FROM reservations WHERE"
                              " user_id = $1::uuid AND status = 'reserved'", uid, NULL));
  ck_assert_int_ge(bal, 0);
  ck_assert_int_ge(bal, res);
  ck_assert_int_eq(bal, q_i64("SELECT balance_after FROM ledger WHERE user_id = $1::uuid"
                              " ORDER BY ts DESC, id DESC LIMIT 1", uid, NULL));
}

static void reserve_ok(const char *uid, const char *action, const char *key, credit_reservation *r) {
  char err[LC_ERR_LEN];
  int rc = credit_ledger_reserve(g_pool, uid, action, key, "rid-t", 60, r, NULL, err);
  ck_assert_msg(rc == LC_OK, "reserve: %s", err);
}

START_TEST(test_append_only_triggers) {
  char uid[37], err[LC_ERR_LEN];
  credit_reservation r;
  credit_debit d;
  lc_uuid_v4(uid);
  reserve_ok(uid, "file.upload", NULL, &r);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d, err), LC_OK);
  ck_assert_int_ne(q_exec("UPDATE ledger SET delta = delta + 1 WHERE user_id = $1::uuid", uid,
                          NULL), LC_OK);
  ck_assert_int_ne(q_exec("DELETE FROM ledger WHERE user_id = $1::uuid", uid, NULL), LC_OK);
  ck_assert_int_ne(q_exec("TRUNCATE ledger CASCADE", NULL, NULL), LC_OK);
  ck_assert_int_ne(q_exec("DELETE FROM audit WHERE user_id = $1::uuid", uid, NULL), LC_OK);
  ck_assert_int_ne(q_exec("UPDATE audit SET cost = 0 WHERE user_id = $1::uuid", uid, NULL), LC_OK);
  ck_assert_int_ne(q_exec("UPDATE audit SET actor = 'x' WHERE user_id = $1::uuid", uid, NULL),
                   LC_OK);
  /* The chain result may be attached. */
  ck_assert_int_eq(q_exec("UPDATE audit SET tx_hash = '0xab', chain_status = 'submitted',"
                          " block_number = 7, to_address = '0xcd' WHERE debit_id = $1::uuid",
                          d.debit_id, NULL), LC_OK);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid", uid, NULL), 3);
  check_invariant(uid);
}
END_TEST

START_TEST(test_entries_for_reserve_commit_release_expire) {
  char uid[37], err[LC_ERR_LEN];
  credit_reservation r1, r2, r3;
  credit_debit d;
  lc_uuid_v4(uid);
  reserve_ok(uid, "file.upload", NULL, &r1);     /* 10 */
  reserve_ok(uid, "report.generate", NULL, &r2); /* 5 */
  reserve_ok(uid, "report.download", NULL, &r3); /* 2 */
  check_invariant(uid);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r1.id, uid, uid, &d, err), LC_OK);
  ck_assert_int_eq(credit_ledger_release(g_pool, r2.id, uid, err), LC_OK);
  check_invariant(uid);
  ck_assert_int_eq(q_exec("UPDATE reservations SET expires_at = now() - interval '1 s'"
                          " WHERE id = $1::uuid", r3.id, NULL), LC_OK);
  int n = 0;
  ck_assert_int_eq(credit_ledger_expire(g_pool, &n, err), LC_OK);
  ck_assert_int_eq(n, 1);
  check_invariant(uid);
  ck_assert_int_eq(q_i64("SELECT balance FROM accounts WHERE user_id = $1::uuid", uid, NULL), 40);
  ck_assert_int_eq(q_i64("SELECT reserved FROM accounts WHERE user_id = $1::uuid", uid, NULL), 0);
  /* signup + 3 reservations + debit + release + expiry */
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid", uid, NULL), 7);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid AND kind ="
                         " 'reservation' AND hold > 0 AND delta = 0", uid, NULL), 3);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid AND kind ="
                         " 'release' AND reason = 'expired' AND actor = 'system'", uid, NULL), 1);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid AND"
                         " (actor IS NULL OR reason IS NULL OR request_id IS NULL)", uid, NULL), 0);
  /* Audit: reservation x3, debit, release x2. */
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE user_id = $1::uuid AND action ="
                         " 'reservation'", uid, NULL), 3);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE user_id = $1::uuid AND action ="
                         " 'release'", uid, NULL), 2);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE user_id = $1::uuid AND cost = 10"
                         " AND debit_id IS NOT NULL", uid, NULL), 1);
  /* A second commit / release of a finished reservation writes nothing. */
  ck_assert_int_eq(credit_ledger_commit(g_pool, r1.id, uid, uid, &d, err), LC_OK);
  ck_assert_int_eq(d.replayed, 1);
  ck_assert_int_eq(credit_ledger_release(g_pool, r2.id, uid, err), LC_OK);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid", uid, NULL), 7);
}
END_TEST

START_TEST(test_grant_in_caller_tx_once_per_ref) {
  char uid[37], err[LC_ERR_LEN], e1[37], e2[37];
  int64_t bal = 0;
  lc_uuid_v4(uid);
  PGconn *c = NULL;
  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  ck_assert_int_eq(credit_ledger_grant(c, uid, 100, CREDIT_KIND_PURCHASE, "pack small", "stripe",
                                       "rid-p", "stripe:cs_1", e1, &bal, err), LC_OK);
  ck_assert_int_eq(bal, 150);
  /* Same reference again in the same transaction: conflict, nothing added,
   * the transaction is still usable. */
  ck_assert_int_eq(credit_ledger_grant(c, uid, 100, CREDIT_KIND_PURCHASE, "pack small", "stripe",
                                       "rid-p", "stripe:cs_1", e2, &bal, err), LC_ERR_CONFLICT);
  ck_assert_str_eq(e1, e2);
  ck_assert_int_eq(lc_db_commit(c, err), LC_OK);
  /* A rolled-back grant leaves no trace. */
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  ck_assert_int_eq(credit_ledger_grant(c, uid, 7, CREDIT_KIND_GRANT, "promo", "system", NULL,
                                       NULL, e2, &bal, err), LC_OK);
  ck_assert_int_eq(lc_db_rollback(c), LC_OK);
  ck_assert_int_eq(credit_ledger_grant(c, uid, 0, CREDIT_KIND_GRANT, "x", "a", NULL, NULL, e2,
                                       NULL, err), LC_ERR_PARAM);
  ck_assert_int_eq(credit_ledger_grant(c, uid, 5, "debit", "x", "a", NULL, NULL, e2, NULL, err),
                   LC_ERR_PARAM);
  lc_db_release(g_pool, c);
  ck_assert_int_eq(q_i64("SELECT balance FROM accounts WHERE user_id = $1::uuid", uid, NULL), 150);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE user_id = $1::uuid AND action ="
                         " 'purchase' AND actor = 'stripe'", uid, NULL), 1);
  check_invariant(uid);
}
END_TEST

START_TEST(test_idempotency_records) {
  char err[LC_ERR_LEN];
  const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
  const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
  credit_idem_result r;
  ck_assert_int_eq(credit_idem_claim(g_pool, "admin-1", "k1", h1, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_NEW);
  ck_assert_int_eq(credit_idem_claim(g_pool, "admin-1", "k1", h1, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_IN_FLIGHT);
  ck_assert_int_eq(credit_idem_claim(g_pool, "admin-1", "k1", h2, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_MISMATCH);
  /* Keys are per caller. */
  ck_assert_int_eq(credit_idem_claim(g_pool, "admin-2", "k1", h2, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_NEW);
  PGconn *c = NULL;
  ck_assert_int_eq(lc_db_acquire(g_pool, &c, err), LC_OK);
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  ck_assert_int_eq(credit_idem_finish(c, "admin-1", "k1", h1, 201, "{\"x\":1}", err), LC_OK);
  ck_assert_int_eq(lc_db_commit(c, err), LC_OK);
  /* Finishing twice: the claim is no longer in flight. */
  ck_assert_int_eq(credit_idem_finish(c, "admin-1", "k1", h1, 201, "{}", err), LC_ERR_CONFLICT);
  lc_db_release(g_pool, c);
  ck_assert_int_eq(credit_idem_claim(g_pool, "admin-1", "k1", h1, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_REPLAY);
  ck_assert_int_eq(r.status, 201);
  ck_assert_str_eq(r.body, "{\"x\":1}");
  credit_idem_result_free(&r);
  ck_assert_int_eq(credit_idem_claim(g_pool, "admin-1", "k1", h2, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_MISMATCH);
  /* Abandoned claim: the retry runs. */
  ck_assert_int_eq(credit_idem_abandon(g_pool, "admin-2", "k1", h2, err), LC_OK);
  ck_assert_int_eq(credit_idem_claim(g_pool, "admin-2", "k1", h2, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_NEW);
  /* Stale in-flight claim (crashed worker) is taken over. */
  ck_assert_int_eq(q_exec("UPDATE idempotency_keys SET locked_at = now() - interval '2 min'"
                          " WHERE owner = 'admin-2'", NULL, NULL), LC_OK);
  ck_assert_int_eq(credit_idem_claim(g_pool, "admin-2", "k1", h2, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_NEW);
  /* Kept 24 h; the sweeper deletes expired keys only. */
  ck_assert_int_eq(q_i64("SELECT count(*) FROM idempotency_keys WHERE expires_at >="
                         " now() + interval '23 hours 59 minutes'", NULL, NULL), 2);
  int n = 0;
  ck_assert_int_eq(credit_idem_sweep(g_pool, &n, err), LC_OK);
  ck_assert_int_eq(n, 0);
  ck_assert_int_eq(q_exec("UPDATE idempotency_keys SET expires_at = now() - interval '1 s'"
                          " WHERE owner = 'admin-1'", NULL, NULL), LC_OK);
  ck_assert_int_eq(credit_idem_sweep(g_pool, &n, err), LC_OK);
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(credit_idem_claim(g_pool, "admin-1", "k1", h2, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_NEW);
}
END_TEST

START_TEST(test_topup_with_key_once) {
  char uid[37], admin[37], err[LC_ERR_LEN], hash[65];
  lc_uuid_v4(uid);
  lc_uuid_v4(admin);
  credit_idem_hash("POST", "/v1/admin/users/x/credits", "{}", 2, hash);
  credit_idem_result r;
  ck_assert_int_eq(credit_idem_claim(g_pool, admin, "top-1", hash, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_NEW);
  credit_topup_idem idem = {admin, "top-1", hash};
  char *body = NULL;
  ck_assert_int_eq(credit_topup_run(g_pool, uid, 25, "support", admin, "rid-top", &idem, &body,
                                    err), LC_OK);
  json_t *j = json_loads(body, 0, NULL);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "balance")), 75);
  ck_assert(lc_uuid_valid(json_string_value(json_object_get(j, "entry_id"))));
  json_decref(j);
  /* The same claim cannot be finished twice: a second run rolls back. */
  char *body2 = NULL;
  ck_assert_int_eq(credit_topup_run(g_pool, uid, 25, "support", admin, "rid-top", &idem, &body2,
                                    err), LC_ERR_CONFLICT);
  ck_assert_ptr_null(body2);
  ck_assert_int_eq(credit_idem_claim(g_pool, admin, "top-1", hash, &r, err), LC_OK);
  ck_assert_int_eq(r.decision, CREDIT_IDEM_REPLAY);
  ck_assert_str_eq(r.body, body);
  credit_idem_result_free(&r);
  free(body);
  ck_assert_int_eq(q_i64("SELECT balance FROM accounts WHERE user_id = $1::uuid", uid, NULL), 75);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE user_id = $1::uuid AND action ="
                         " 'topup' AND actor = $2 AND request_id = 'rid-top'", uid, admin), 1);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM ledger WHERE user_id = $1::uuid AND kind ="
                         " 'topup' AND actor = $2 AND reason = 'support'", uid, admin), 1);
  check_invariant(uid);
}
END_TEST

START_TEST(test_reservation_key_takeover) {
  char uid[37], err[LC_ERR_LEN];
  credit_reservation a, b, c2, d;
  credit_debit deb;
  lc_uuid_v4(uid);
  reserve_ok(uid, "report.generate", "idem-1", &a);
  reserve_ok(uid, "report.generate", "idem-1", &b);
  ck_assert_str_eq(a.id, b.id);
  ck_assert_int_eq(b.replayed, 1);
  /* Released: the retry with the same key gets a NEW reservation. */
  ck_assert_int_eq(credit_ledger_release(g_pool, a.id, uid, err), LC_OK);
  reserve_ok(uid, "report.generate", "idem-1", &c2);
  ck_assert_str_ne(c2.id, a.id);
  ck_assert_int_eq(c2.replayed, 0);
  ck_assert_str_eq(c2.status, "reserved");
  /* Overdue (not yet swept): expired on the spot and taken over. */
  ck_assert_int_eq(q_exec("UPDATE reservations SET expires_at = now() - interval '1 s'"
                          " WHERE id = $1::uuid", c2.id, NULL), LC_OK);
  reserve_ok(uid, "report.generate", "idem-1", &d);
  ck_assert_str_ne(d.id, c2.id);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM reservations WHERE id = $1::uuid AND status ="
                         " 'expired'", c2.id, NULL), 1);
  /* Committed: replayed forever (never charged twice). */
  ck_assert_int_eq(credit_ledger_commit(g_pool, d.id, uid, uid, &deb, err), LC_OK);
  reserve_ok(uid, "report.generate", "idem-1", &b);
  ck_assert_str_eq(b.id, d.id);
  ck_assert_str_eq(b.status, "committed");
  ck_assert_int_eq(q_i64("SELECT balance FROM accounts WHERE user_id = $1::uuid", uid, NULL), 45);
  check_invariant(uid);
}
END_TEST

/* Commits one report.generate (5) for uid. */
static void spend5(const char *uid) {
  char err[LC_ERR_LEN];
  credit_reservation r;
  credit_debit d;
  reserve_ok(uid, "report.generate", NULL, &r);
  ck_assert_int_eq(credit_ledger_commit(g_pool, r.id, uid, uid, &d, err), LC_OK);
}

START_TEST(test_low_balance_once_per_crossing) {
  char uid[37], err[LC_ERR_LEN];
  lc_uuid_v4(uid);
  for (int i = 0; i < 8; i++) /* 50 -> 10: not below yet */
    spend5(uid);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM notifications WHERE user_id = $1::uuid", uid, NULL),
                   0);
  spend5(uid); /* 10 -> 5: crossing */
  ck_assert_int_eq(q_i64("SELECT count(*) FROM notifications WHERE user_id = $1::uuid", uid, NULL),
                   1);
  ck_assert_int_eq(q_i64("SELECT balance FROM notifications WHERE user_id = $1::uuid", uid, NULL),
                   5);
  spend5(uid); /* 5 -> 0: still below, no new one */
  ck_assert_int_eq(q_i64("SELECT count(*) FROM notifications WHERE user_id = $1::uuid", uid, NULL),
                   1);
  char *body = NULL;
  ck_assert_int_eq(credit_topup_run(g_pool, uid, 12, "refill", "admin", NULL, NULL, &body, err),
                   LC_OK);
  free(body);
  spend5(uid); /* 12 -> 7: crossing again */
  ck_assert_int_eq(q_i64("SELECT count(*) FROM notifications WHERE user_id = $1::uuid AND"
                         " status = 'pending' AND threshold = 10", uid, NULL), 2);
  ck_assert_int_eq(q_i64("SELECT count(DISTINCT ledger_entry_id) FROM notifications WHERE"
                         " user_id = $1::uuid", uid, NULL), 2);
  check_invariant(uid);
}
END_TEST

START_TEST(test_auth_audit_events_once) {
  char uid[37], eid[37], msg_id[37];
  lc_uuid_v4(uid);
  lc_uuid_v4(eid);
  json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "event_id", eid, "ts",
                        "2026-01-02T03:04:05.123Z", "user_id", uid, "actor", uid, "action",
                        "login", "status", "ok", "request_id", "rid-login", "detail", "method",
                        "password");
  char *env = lc_msg_build("auth.audit", NULL, "rid-login", b, msg_id);
  for (int i = 0; i < 3; i++) /* redelivery is normal */
    ck_assert_int_eq(credit_audit_handle(g_pool, "auth.audit", msg_id, env, strlen(env)), LC_OK);
  free(env);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE event_id = $1::uuid AND user_id ="
                         " $2::uuid AND action = 'login' AND cost = 0 AND status = 'ok'"
                         " AND detail->>'method' = 'password'", eid, uid), 1);
  /* login_failed for an unknown email: no user id. */
  lc_uuid_v4(eid);
  json_object_set_new(b, "event_id", json_string(eid));
  json_object_set_new(b, "user_id", json_null());
  json_object_set_new(b, "action", json_string("login_failed"));
  json_object_set_new(b, "status", json_string("failed"));
  env = lc_msg_build("auth.audit", NULL, "rid-login", b, msg_id);
  ck_assert_int_eq(credit_audit_handle(g_pool, "auth.audit", msg_id, env, strlen(env)), LC_OK);
  free(env);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE event_id = $1::uuid AND user_id IS"
                         " NULL", eid, NULL), 1);
  /* Malformed -> DLQ (LC_ERR_PARAM), nothing written. */
  json_object_set_new(b, "status", json_string("weird"));
  lc_uuid_v4(eid);
  json_object_set_new(b, "event_id", json_string(eid));
  env = lc_msg_build("auth.audit", NULL, "rid-login", b, msg_id);
  ck_assert_int_eq(credit_audit_handle(g_pool, "auth.audit", msg_id, env, strlen(env)),
                   LC_ERR_PARAM);
  free(env);
  ck_assert_int_eq(q_i64("SELECT count(*) FROM audit WHERE event_id = $1::uuid", eid, NULL), 0);
  ck_assert_int_eq(credit_audit_handle(g_pool, "auth.audit", "x", "not json", 8), LC_ERR_PARAM);
  json_decref(b);
}
END_TEST

START_TEST(test_balances_and_debits) {
  char u1[37], u2[37], err[LC_ERR_LEN];
  lc_uuid_v4(u1);
  lc_uuid_v4(u2);
  spend5(u1);
  spend5(u1);
  const char *ids[2] = {u1, u2};
  json_t *items = NULL;
  ck_assert_int_eq(credit_ledger_balances(g_pool, ids, 2, &items, err), LC_OK);
  ck_assert_int_eq(json_array_size(items), 2);
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 0), "balance")), 40);
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 1), "available")), 50);
  json_decref(items);
  const char *bad[1] = {"nope"};
  ck_assert_int_eq(credit_ledger_balances(g_pool, bad, 1, &items, err), LC_ERR_PARAM);
  char *next = NULL;
  ck_assert_int_eq(credit_ledger_debits(g_pool, NULL, NULL, 1, NULL, &items, &next, err), LC_OK);
  ck_assert_int_eq(json_array_size(items), 1);
  ck_assert_ptr_nonnull(next);
  json_t *first = json_incref(json_array_get(items, 0));
  json_decref(items);
  char *next2 = NULL;
  ck_assert_int_eq(credit_ledger_debits(g_pool, NULL, NULL, 10, next, &items, &next2, err),
                   LC_OK);
  free(next);
  ck_assert_int_eq(json_array_size(items), 1);
  ck_assert_ptr_null(next2);
  json_t *second = json_array_get(items, 0);
  ck_assert_str_ne(json_string_value(json_object_get(first, "debit_id")),
                   json_string_value(json_object_get(second, "debit_id")));
  ck_assert_int_eq(json_integer_value(json_object_get(second, "cost")), 5);
  ck_assert_str_eq(json_string_value(json_object_get(second, "chain_status")), "pending");
  json_decref(first);
  json_decref(items);
  ck_assert_int_eq(credit_ledger_debits(g_pool, "2999-01-01T00:00:00Z", NULL, 10, NULL, &items,
                                        &next, err), LC_OK);
  ck_assert_int_eq(json_array_size(items), 0);
  json_decref(items);
}
END_TEST

int main(void) {
  Suite *s = suite_create("credit-svc-ledger-integration");
  TCase *tc = tcase_create("ledger-v2");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_append_only_triggers);
  tcase_add_test(tc, test_entries_for_reserve_commit_release_expire);
  tcase_add_test(tc, test_grant_in_caller_tx_once_per_ref);
  tcase_add_test(tc, test_idempotency_records);
  tcase_add_test(tc, test_topup_with_key_once);
  tcase_add_test(tc, test_reservation_key_takeover);
  tcase_add_test(tc, test_low_balance_once_per_crossing);
  tcase_add_test(tc, test_auth_audit_events_once);
  tcase_add_test(tc, test_balances_and_debits);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
