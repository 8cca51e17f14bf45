/* credit_ledger.c - accounts, reservations, debits, ledger/audit queries.
 * See credit_ledger.h for the contract. Lock order everywhere:
 * reservation row -> account row (reserve only touches the account row). */
#include "credit_ledger.h"

#include "credit_audit.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lc/failpoint.h"
#include "lc/log.h"
#include "lc/msg.h"
#include "lc/util.h"

#define TX_RETRIES 3
/* RFC 3339 UTC text of a timestamptz column with microseconds. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* ---- small helpers ---- */

static const char *cell(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int cell_i64(const PGresult *r, int row, int col, int64_t *out) {
  const char *v = cell(r, row, col);
  if (v == NULL)
    return LC_ERR_DB;
  return lc_parse_i64(v, INT64_MIN, INT64_MAX, out) == LC_OK ? LC_OK : LC_ERR_DB;
}

/* New JSON string of a cell, or JSON null. */
static json_t *cell_json(const PGresult *r, int row, int col) {
  const char *v = cell(r, row, col);
  return v ? json_string(v) : json_null();
}

static json_t *cell_json_i64(const PGresult *r, int row, int col) {
  int64_t v;
  if (cell_i64(r, row, col, &v) != LC_OK)
    return json_null();
  return json_integer((json_int_t)v);
}

static void fmt_i64(char out[24], int64_t v) { snprintf(out, 24, "%lld", (long long)v); }

/* request_id when usable as a ledger request id, else a generated one in buf. */
static const char *req_id_or_new(const char *request_id, char buf[64]) {
  if (request_id && request_id[0] && strlen(request_id) < 64)
    return request_id;
  char u[37];
  lc_uuid_v4(u);
  snprintf(buf, 64, "gen-%s", u);
  return buf;
}

static _Atomic int64_t g_low_threshold = 10;
static _Atomic(lc_outbox_bell *) g_outbox_bell = NULL;

void credit_ledger_set_outbox_bell(lc_outbox_bell *bell) {
  atomic_store(&g_outbox_bell, bell);
}

void credit_ledger_set_low_threshold(int64_t threshold) {
  atomic_store(&g_low_threshold, threshold < 0 ? 0 : threshold);
}

int credit_low_crossed(int64_t before, int64_t after, int64_t threshold) {
  return threshold > 0 && before >= threshold && after < threshold;
}

static int tx_rollback(PGconn *c, int rc) {
  lc_db_rollback(c);
  return rc;
}

/* Runs fn(conn, arg, err) on one pooled connection, retrying the whole unit
 * of work on serialization failure / deadlock. fn owns BEGIN/COMMIT. */
typedef int (*unit_fn)(PGconn *c, void *arg, char err[LC_ERR_LEN]);

static int with_conn(lc_db_pool *pool, unit_fn fn, void *arg, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  for (int i = 0; i < TX_RETRIES; i++) {
    rc = fn(c, arg, err);
    if (rc != LC_ERR_RETRY)
      break;
    lc_db_rollback(c);
  }
  lc_db_release(pool, c);
  if (rc == LC_ERR_RETRY)
    rc = LC_ERR_UNAVAIL;
  return rc;
}

int credit_ts_valid(const char *s) {
  /* YYYY-MM-DDTHH:MM:SS */
  static const char pat[] = "dddd-dd-ddTdd:dd:dd";
  if (s == NULL)
    return 0;
  size_t n = strlen(s);
  if (n < sizeof(pat) || n > 35)
    return 0;
  for (size_t i = 0; i < sizeof(pat) - 1; i++) {
    if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) : (toupper((unsigned char)s[i]) != pat[i]))
      return 0;
  }
  int mon = (s[5] - '0') * 10 + (s[6] - '0'), day = (s[8] - '0') * 10 + (s[9] - '0');
  int hh = (s[11] - '0') * 10 + (s[12] - '0'), mm = (s[14] - '0') * 10 + (s[15] - '0');
  int ss = (s[17] - '0') * 10 + (s[18] - '0');
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
    return 0;
  const char *p = s + sizeof(pat) - 1;
  if (*p == '.') {
    p++;
    size_t k = 0;
    while (isdigit((unsigned char)*p) && k < 9) {
      p++;
      k++;
    }
    if (k == 0 || isdigit((unsigned char)*p))
      return 0;
  }
  if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
    return 1;
  if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
      p[3] == ':' && isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) && p[6] == '\0')
    return ((p[1] - '0') * 10 + (p[2] - '0')) <= 23 && ((p[4] - '0') * 10 + (p[5] - '0')) <= 59;
  return 0;
}

char *credit_cursor_encode(const char *ts, const char *id) {
  char raw[96];
  int n = snprintf(raw, sizeof(raw), "%s|%s", ts, id);
  if (n < 0 || (size_t)n >= sizeof(raw))
    return NULL;
  return lc_b64url_encode((const uint8_t *)raw, (size_t)n);
}

int credit_cursor_decode(const char *cursor, char ts[40], char id[37]) {
  uint8_t *raw = NULL;
  size_t len = 0;
  int rc = LC_ERR_PARAM;
  if (cursor == NULL || strlen(cursor) > 160)
    return LC_ERR_PARAM;
  if (lc_b64url_decode(cursor, strlen(cursor), &raw, &len) != LC_OK)
    return LC_ERR_PARAM;
  char buf[96];
  if (len == 0 || len >= sizeof(buf) || memchr(raw, '\0', len) != NULL)
    goto out;
  memcpy(buf, raw, len);
  buf[len] = '\0';
  char *bar = strchr(buf, '|');
  if (bar == NULL)
    goto out;
  *bar = '\0';
  if (!credit_ts_valid(buf) || !lc_uuid_valid(bar + 1))
    goto out;
  lc_strlcpy(ts, buf, 40);
  lc_strlcpy(id, bar + 1, 37);
  rc = LC_OK;
out:
  free(raw);
  return rc;
}

/* ---- accounts ---- */

/* One statement: insert the account with its signup bonus entry, or nothing. */
static int open_in_tx(PGconn *c, const char *user_id, const char *request_id, int *created,
                      char err[LC_ERR_LEN]) {
  static const char *sql =
      "WITH ins AS (INSERT INTO accounts (user_id, balance, reserved) VALUES ($1::uuid, $2::bigint, 0)"
      "  ON CONFLICT (user_id) DO NOTHING RETURNING user_id, balance),"
      " led AS (INSERT INTO ledger (user_id, delta, kind, request_id, balance_after, actor,"
      "  reason) SELECT user_id, $2::bigint, 'signup_bonus', $3, balance, 'system',"
      "  'signup bonus' FROM ins RETURNING id)"
      " SELECT count(*) FROM led";
  char bonus[24], rid[64];
  fmt_i64(bonus, CREDIT_SIGNUP_BONUS);
  const char *p[3] = {user_id, bonus, req_id_or_new(request_id, rid)};
  PGresult *r = NULL;
  int rc = lc_db_exec(c, sql, 3, p, &r, err);
  if (rc != LC_OK)
    return rc;
  int64_t n = 0;
  rc = cell_i64(r, 0, 0, &n);
  PQclear(r);
  if (created)
    *created = (n == 1);
  if (rc == LC_OK && n == 1)
    lc_log_info("Event - account opened user=%s bonus=%d", user_id, CREDIT_SIGNUP_BONUS);
  return rc;
}

typedef struct {
  const char *user_id, *request_id;
  int created;
  int64_t balance, reserved;
} open_args;

static int open_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  open_args *a = arg;
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  rc = open_in_tx(c, a->user_id, a->request_id, &a->created, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  const char *p[1] = {a->user_id};
  PGresult *r = NULL;
  rc = lc_db_exec(c, "SELECT balance, reserved FROM accounts WHERE user_id = $1::uuid", 1, p, &r,
                  err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  if (PQntuples(r) != 1 || cell_i64(r, 0, 0, &a->balance) != LC_OK ||
      cell_i64(r, 0, 1, &a->reserved) != LC_OK) {
    PQclear(r);
    return tx_rollback(c, lc_err_set(err, LC_ERR_DB, "account row missing"));
  }
  PQclear(r);
  return lc_db_commit(c, err);
}

int credit_ledger_open_account(lc_db_pool *pool, const char *user_id, const char *request_id,
                               int *created, int64_t *balance, char err[LC_ERR_LEN]) {
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  open_args a = {user_id, request_id, 0, 0, 0};
  int rc = with_conn(pool, open_unit, &a, err);
  if (rc != LC_OK)
    return rc;
  if (created)
    *created = a.created;
  if (balance)
    *balance = a.balance;
  return LC_OK;
}

/* The read path of GET /v1/credits: one autocommit round trip, a prepared
 * statement (no BEGIN/COMMIT, no insert attempt, no parse/plan per call).
 * Returns LC_OK with the row, LC_ERR_NOTFOUND when the account does not
 * exist yet. A single SELECT sees one snapshot, so balance and reserved are
 * consistent with each other. */
static int balance_read(lc_db_pool *pool, const char *user_id, int64_t *bal, int64_t *res,
                        char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  const char *p[1] = {user_id};
  PGresult *r = NULL;
  rc = lc_db_exec_prepared(c, "credit_balance_read",
                           "SELECT balance, reserved FROM accounts WHERE user_id = $1::uuid", 1, p,
                           &r, err);
  lc_db_release(pool, c);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) != 1)
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "no account");
  else if (cell_i64(r, 0, 0, bal) != LC_OK || cell_i64(r, 0, 1, res) != LC_OK)
    rc = lc_err_set(err, LC_ERR_DB, "bad account row");
  PQclear(r);
  return rc;
}

int credit_ledger_balance(lc_db_pool *pool, const char *user_id, int64_t *balance,
                          int64_t *reserved, char err[LC_ERR_LEN]) {
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  open_args a = {user_id, NULL, 0, 0, 0};
  /* Steady state: the account exists, one read-only round trip. Only a
   * user's very first call opens the account (signup bonus) in a write
   * transaction, exactly as before. */
  int rc = balance_read(pool, user_id, &a.balance, &a.reserved, err);
  if (rc == LC_ERR_NOTFOUND)
    rc = with_conn(pool, open_unit, &a, err);
  if (rc != LC_OK)
    return rc;
  if (balance)
    *balance = a.balance;
  if (reserved)
    *reserved = a.reserved;
  return LC_OK;
}

/* ---- entries ---- */

typedef struct {
  const char *user_id;
  int64_t delta, hold;
  const char *kind, *action, *debit_id, *request_id;
  int64_t balance_after;
  const char *actor, *reason, *reservation_id, *ref_id;
} ledger_entry;

/* Appends one ledger entry (in the open transaction); id_out (37, may be
 * NULL) receives its id. With ref_id set, a duplicate (kind, ref_id) writes
 * nothing and returns LC_ERR_CONFLICT with id_out = the existing entry. */
static int append_entry(PGconn *c, const ledger_entry *e, char id_out[37], char err[LC_ERR_LEN]) {
  char delta[24], hold[24], bal[24];
  fmt_i64(delta, e->delta);
  fmt_i64(hold, e->hold);
  fmt_i64(bal, e->balance_after);
  const char *p[12] = {e->user_id, delta, hold, e->kind, e->action, e->debit_id,
                       e->request_id, bal, e->actor, e->reason, e->reservation_id, e->ref_id};
  PGresult *r = NULL;
  int rc = lc_db_exec_prepared(c, "credit_ledger_append",
                      "INSERT INTO ledger (user_id, delta, hold, kind, action, debit_id,"
                      " request_id, balance_after, actor, reason, reservation_id, ref_id)"
                      " VALUES ($1::uuid, $2::bigint, $3::bigint, $4, $5, $6::uuid, $7,"
                      " $8::bigint, $9, $10, $11::uuid, $12)"
                      " ON CONFLICT (kind, ref_id) WHERE ref_id IS NOT NULL DO NOTHING"
                      " RETURNING id::text",
                      12, p, &r, err);
  if (rc != LC_OK)
    return rc;
  int n = PQntuples(r);
  if (n == 1 && id_out)
    lc_strlcpy(id_out, PQgetvalue(r, 0, 0), 37);
  PQclear(r);
  if (n == 1)
    return LC_OK;
  const char *pk[2] = {e->kind, e->ref_id};
  rc = lc_db_exec(c, "SELECT id::text FROM ledger WHERE kind = $1 AND ref_id = $2", 2, pk, &r,
                  err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) == 1 && id_out)
    lc_strlcpy(id_out, PQgetvalue(r, 0, 0), 37);
  PQclear(r);
  return lc_err_set(err, LC_ERR_CONFLICT, "reference already credited");
}

/* Audit row of a credit event with detail {amount, action?, reservation_id?,
 * entry_id?} (in the open transaction). */
static int audit_credit_event(PGconn *c, const char *user_id, const char *actor,
                              const char *action, int64_t cost, const char *status,
                              const char *request_id, const char *paid_action, int64_t amount,
                              const char *reservation_id, const char *entry_id,
                              char err[LC_ERR_LEN]) {
  json_t *d = json_pack("{s:I}", "amount", (json_int_t)amount);
  if (d == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "cannot build audit detail");
  if (paid_action)
    json_object_set_new(d, "action", json_string(paid_action));
  if (reservation_id)
    json_object_set_new(d, "reservation_id", json_string(reservation_id));
  if (entry_id)
    json_object_set_new(d, "entry_id", json_string(entry_id));
  credit_audit_row row = {user_id, actor, action, cost, status, request_id, d, NULL, NULL};
  int rc = credit_audit_insert(c, &row, NULL, err);
  json_decref(d);
  return rc;
}

/* ---- reserve ---- */

typedef struct {
  const char *user_id, *action, *idem_key, *request_id;
  int64_t cost, ttl_s, available;
  credit_reservation *out;
} reserve_args;

typedef struct res_row {
  char user_id[37];
  char action[CREDIT_ACTION_MAX + 1];
  char status[16];
  char debit_id[37];
  char request_id[64];
  int64_t cost;
  int overdue;
} res_row;

#define RES_COLS "id::text, user_id::text, action, cost, status, " TS("expires_at")

static int fill_reservation(const PGresult *r, credit_reservation *out) {
  memset(out, 0, sizeof(*out));
  const char *id = cell(r, 0, 0), *uid = cell(r, 0, 1), *act = cell(r, 0, 2);
  const char *st = cell(r, 0, 4), *exp = cell(r, 0, 5);
  if (!id || !uid || !act || !st || !exp || cell_i64(r, 0, 3, &out->cost) != LC_OK)
    return LC_ERR_DB;
  lc_strlcpy(out->id, id, sizeof(out->id));
  lc_strlcpy(out->user_id, uid, sizeof(out->user_id));
  lc_strlcpy(out->action, act, sizeof(out->action));
  lc_strlcpy(out->status, st, sizeof(out->status));
  lc_strlcpy(out->expires_at, exp, sizeof(out->expires_at));
  return LC_OK;
}

static int unreserve(PGconn *c, const char *id, const struct res_row *row, const char *status,
                     char err[LC_ERR_LEN]);
static int lock_reservation(PGconn *c, const char *id, const char *owner, struct res_row *row,
                            char err[LC_ERR_LEN]);

/* Looks up (and locks) the reservation of (user, idem_key). Found and live
 * (reserved or committed) -> LC_OK with out filled, replayed = 1. A key
 * whose reservation was released or expired (or is overdue: expired here)
 * is taken over: the old row gives up the key (reservations are state rows,
 * not ledger rows) and LC_ERR_NOTFOUND lets the caller create a new one, so
 * a failed attempt never blocks the retry of the same request. */
static int find_idem(PGconn *c, reserve_args *a, char err[LC_ERR_LEN]) {
  const char *p[2] = {a->user_id, a->idem_key};
  PGresult *r = NULL;
  int rc = lc_db_exec(c,
                      "SELECT " RES_COLS ", expires_at <= now() FROM reservations"
                      " WHERE user_id = $1::uuid AND idempotency_key = $2 FOR UPDATE",
                      2, p, &r, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) != 1) {
    PQclear(r);
    return LC_ERR_NOTFOUND;
  }
  rc = fill_reservation(r, a->out);
  int overdue = cell(r, 0, 6) && cell(r, 0, 6)[0] == 't';
  PQclear(r);
  if (rc != LC_OK)
    return lc_err_set(err, rc, "bad reservation row");
  if (strcmp(a->out->action, a->action) != 0)
    return lc_err_set(err, LC_ERR_UNPROCESSABLE,
                      "idempotency key already used for another action");
  int reserved = strcmp(a->out->status, "reserved") == 0;
  if (strcmp(a->out->status, "committed") == 0 || (reserved && !overdue)) {
    a->out->replayed = 1;
    return LC_OK;
  }
  if (reserved) { /* overdue: expire it now, exactly as the sweeper would */
    struct res_row row;
    rc = lock_reservation(c, a->out->id, NULL, &row, err);
    if (rc == LC_OK)
      rc = unreserve(c, a->out->id, &row, "expired", err);
    if (rc != LC_OK)
      return rc;
  }
  const char *pt[1] = {a->out->id};
  rc = lc_db_exec(c, "UPDATE reservations SET idempotency_key = NULL, updated_at = now()"
                  " WHERE id = $1::uuid", 1, pt, NULL, err);
  if (rc != LC_OK)
    return rc;
  lc_log_info("Event - idempotency key of %s reservation %s taken over by a retry",
              a->out->status, a->out->id);
  memset(a->out, 0, sizeof(*a->out));
  return LC_ERR_NOTFOUND;
}

static int reserve_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  reserve_args *a = arg;
  PGresult *r = NULL;
  char cost[24], ttl[24];
  fmt_i64(cost, a->cost);
  fmt_i64(ttl, a->ttl_s);
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  if (a->idem_key) {
    rc = find_idem(c, a, err);
    if (rc == LC_OK)
      return lc_db_commit(c, err);
    if (rc != LC_ERR_NOTFOUND)
      return tx_rollback(c, rc);
  }
  /* The atomic guard: concurrent reservers serialise on the account row and
   * re-check the predicate against the latest committed version.
   *
   * Durability: the guard also makes this transaction's commit asynchronous
   * (set_config(..., true) = SET LOCAL synchronous_commit = off), so the
   * reserve does not wait for its own WAL flush. A reservation is a hold,
   * not a charge: the debit is written only by commit_unit, whose commit is
   * synchronous, and flushing the WAL up to that commit record flushes this
   * earlier one too (the WAL is one ordered stream). So a debit is never
   * durable without its reservation; a crash can only lose a reservation
   * that nothing has committed yet, together with its hold, ledger entry
   * and audit row (one atomic transaction), and its later commit then finds
   * no reservation and the caller's work is answered as released (nothing
   * charged), exactly as for a release. Halves the fsyncs of a paid action.
   *
   * The account is opened (signup bonus) only when the guard finds no row:
   * one statement less on every reserve of an existing account. */
  const char *pu[2] = {a->user_id, cost};
  int got = 0;
  int64_t bal = 0;
  for (int pass = 0; pass < 2; pass++) {
    rc = lc_db_exec_prepared(c, "credit_reserve_guard",
                    "UPDATE accounts SET reserved = reserved + $2::bigint, updated_at = now()"
                    " WHERE user_id = $1::uuid AND balance - reserved >= $2::bigint"
                    " RETURNING balance, set_config('synchronous_commit', 'off', true)",
                    2, pu, &r, err);
    if (rc != LC_OK)
      return tx_rollback(c, rc);
    got = PQntuples(r);
    if (got == 1 && cell_i64(r, 0, 0, &bal) != LC_OK)
      got = 0;
    PQclear(r);
    r = NULL;
    if (got == 1)
      break;
    rc = lc_db_exec(c, "SELECT balance - reserved FROM accounts WHERE user_id = $1::uuid", 1, pu,
                    &r, err);
    if (rc != LC_OK)
      return tx_rollback(c, rc);
    int exists = PQntuples(r) == 1;
    if (exists)
      cell_i64(r, 0, 0, &a->available);
    PQclear(r);
    r = NULL;
    if (exists || pass > 0)
      break;
    rc = open_in_tx(c, a->user_id, a->request_id, NULL, err); /* first use: open, retry */
    if (rc != LC_OK)
      return tx_rollback(c, rc);
  }
  if (got != 1) {
    lc_db_rollback(c);
    return lc_err_set(err, LC_ERR_FUNDS, "insufficient credits: available %lld, cost %lld",
                      (long long)a->available, (long long)a->cost);
  }
  const char *pi[6] = {a->user_id, a->action, cost, a->idem_key,
                       (a->request_id && a->request_id[0]) ? a->request_id : NULL, ttl};
  rc = lc_db_exec_prepared(c, "credit_reserve_insert",
                  "INSERT INTO reservations (id, user_id, action, cost, status, idempotency_key,"
                  " request_id, expires_at) VALUES (gen_random_uuid(), $1::uuid, $2, $3::bigint,"
                  " 'reserved', $4, $5, now() + make_interval(secs => $6::bigint))"
                  " RETURNING " RES_COLS,
                  6, pi, &r, err);
  if (rc == LC_ERR_CONFLICT) /* same idempotency key raced: retry, then find it */
    return tx_rollback(c, LC_ERR_RETRY);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  rc = fill_reservation(r, a->out);
  PQclear(r);
  if (rc != LC_OK)
    return tx_rollback(c, lc_err_set(err, rc, "bad reservation row"));
  char rid[64], reason[64];
  const char *req = req_id_or_new(a->request_id, rid);
  snprintf(reason, sizeof(reason), "reserve %s", a->action);
  ledger_entry e = {a->user_id, 0, a->cost, "reservation", a->action, NULL, req, bal,
                    a->user_id, reason, a->out->id, NULL};
  rc = append_entry(c, &e, NULL, err);
  if (rc == LC_OK)
    rc = audit_credit_event(c, a->user_id, a->user_id, "reservation", 0, "reserved", req,
                            a->action, a->cost, a->out->id, NULL, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  return lc_db_commit(c, err);
}

int credit_ledger_reserve(lc_db_pool *pool, const char *user_id, const char *action,
                          const char *idem_key, const char *request_id, int64_t ttl_s,
                          credit_reservation *out, int64_t *available, char err[LC_ERR_LEN]) {
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  reserve_args a = {user_id, action, idem_key, request_id, 0, ttl_s, 0, out};
  if (credit_costs_lookup(action, &a.cost) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "unknown action");
  if (idem_key && (idem_key[0] == '\0' || strlen(idem_key) > CREDIT_IDEM_KEY_MAX))
    return lc_err_set(err, LC_ERR_PARAM, "idempotency_key must be 1..%d bytes",
                      CREDIT_IDEM_KEY_MAX);
  if (ttl_s < 1 || ttl_s > 86400 * 7)
    return lc_err_set(err, LC_ERR_PARAM, "bad reservation ttl");
  int rc = with_conn(pool, reserve_unit, &a, err);
  if (rc == LC_ERR_FUNDS && available)
    *available = a.available;
  if (rc == LC_OK && !out->replayed)
    lc_log_debug("reserved %s cost=%lld user=%s", out->id, (long long)out->cost, user_id);
  return rc;
}

/* ---- commit / release ---- */


/* SELECT ... FOR UPDATE of one reservation; LC_ERR_NOTFOUND if absent or not
 * owner's. Must run inside a transaction. */
static int lock_reservation(PGconn *c, const char *id, const char *owner, res_row *row,
                            char err[LC_ERR_LEN]) {
  const char *p[1] = {id};
  PGresult *r = NULL;
  int rc = lc_db_exec_prepared(c, "credit_reservation_lock",
                      "SELECT user_id::text, action, cost, status, debit_id::text,"
                      " expires_at <= now(), request_id FROM reservations"
                      " WHERE id = $1::uuid FOR UPDATE",
                      1, p, &r, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) != 1) {
    PQclear(r);
    return lc_err_set(err, LC_ERR_NOTFOUND, "no such reservation");
  }
  memset(row, 0, sizeof(*row));
  const char *uid = cell(r, 0, 0), *act = cell(r, 0, 1), *st = cell(r, 0, 3);
  const char *deb = cell(r, 0, 4), *ov = cell(r, 0, 5), *rid = cell(r, 0, 6);
  if (!uid || !act || !st || !ov || cell_i64(r, 0, 2, &row->cost) != LC_OK) {
    PQclear(r);
    return lc_err_set(err, LC_ERR_DB, "bad reservation row");
  }
  lc_strlcpy(row->user_id, uid, sizeof(row->user_id));
  lc_strlcpy(row->action, act, sizeof(row->action));
  lc_strlcpy(row->status, st, sizeof(row->status));
  lc_strlcpy(row->debit_id, deb ? deb : "", sizeof(row->debit_id));
  lc_strlcpy(row->request_id, rid ? rid : "", sizeof(row->request_id));
  row->overdue = (ov[0] == 't');
  PQclear(r);
  if (owner && strcasecmp(owner, row->user_id) != 0)
    return lc_err_set(err, LC_ERR_NOTFOUND, "no such reservation");
  return LC_OK;
}

/* Gives the reserved amount back and sets the final status (released|expired):
 * reserved -= cost, a release ledger entry (hold -cost) and an audit row. */
static int unreserve(PGconn *c, const char *id, const res_row *row, const char *status,
                     char err[LC_ERR_LEN]) {
  char cost[24];
  fmt_i64(cost, row->cost);
  const char *pa[2] = {row->user_id, cost};
  PGresult *r = NULL;
  int rc = lc_db_exec(c,
                      "UPDATE accounts SET reserved = reserved - $2::bigint, updated_at = now()"
                      " WHERE user_id = $1::uuid RETURNING balance",
                      2, pa, &r, err);
  if (rc != LC_OK)
    return rc;
  int64_t bal = 0;
  if (PQntuples(r) != 1 || cell_i64(r, 0, 0, &bal) != LC_OK) {
    PQclear(r);
    return lc_err_set(err, LC_ERR_DB, "account row missing");
  }
  PQclear(r);
  const char *pr[2] = {id, status};
  rc = lc_db_exec(c,
                  "UPDATE reservations SET status = $2, updated_at = now() WHERE id = $1::uuid",
                  2, pr, NULL, err);
  if (rc != LC_OK)
    return rc;
  char rid[64];
  const char *req = req_id_or_new(row->request_id, rid);
  const char *actor = strcmp(status, "expired") == 0 ? "system" : row->user_id;
  ledger_entry e = {row->user_id, 0, -row->cost, "release", row->action, NULL, req, bal,
                    actor, status, id, NULL};
  rc = append_entry(c, &e, NULL, err);
  if (rc != LC_OK)
    return rc;
  return audit_credit_event(c, row->user_id, actor, "release", 0, status, req, row->action,
                            row->cost, id, NULL, err);
}

static int account_balance(PGconn *c, const char *user_id, int64_t *bal, char err[LC_ERR_LEN]) {
  const char *p[1] = {user_id};
  PGresult *r = NULL;
  int rc = lc_db_exec(c, "SELECT balance FROM accounts WHERE user_id = $1::uuid", 1, p, &r, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) != 1 || cell_i64(r, 0, 0, bal) != LC_OK)
    rc = lc_err_set(err, LC_ERR_DB, "account row missing");
  PQclear(r);
  return rc;
}

typedef struct {
  const char *id, *owner, *actor;
  credit_debit *out;
} commit_args;

/* The debit of a locked, live reservation (in the open tx), in ONE statement
 * (one round trip instead of six): balance and reserved −= cost, the debit
 * ledger entry (balance_after from the account update), the reservation
 * marked committed, the audit row and the outbox row (the relay is woken
 * after the commit: commit_unit). Data-modifying CTEs run on one snapshot; each step reads the previous one's
 * RETURNING, so none can happen without the others. *bal_out receives the
 * balance after. The low-balance notification (rare: a threshold crossing)
 * follows as its own statements. */
static int write_debit(PGconn *c, const char *res_id, const res_row *row, const char *actor,
                       const char *debit_id, int64_t *bal_out, char err[LC_ERR_LEN]) {
  char cost[24];
  fmt_i64(cost, row->cost);
  const char *rid = row->request_id[0] ? row->request_id : debit_id;
  const char *who = (actor && actor[0]) ? actor : "system";
  char committed_at[32], msg_id[37];
  lc_rfc3339_now(committed_at);
  json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:s}", "debit_id", debit_id, "user_id",
                           row->user_id, "action", row->action, "cost", (json_int_t)row->cost,
                           "committed_at", committed_at);
  if (body == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "cannot build message body");
  char *env = lc_msg_build("credit.debit.committed", NULL, rid, body, msg_id);
  json_decref(body);
  if (env == NULL)
    return lc_err_set(err, LC_ERR, "cannot build message envelope");
  const char *p[9] = {row->user_id, cost, row->action, debit_id, rid, who, res_id, msg_id, env};
  PGresult *r = NULL;
  int rc = lc_db_exec_prepared(c, "credit_debit_write",
      "WITH acc AS (UPDATE accounts SET balance = balance - $2::bigint,"
      "   reserved = reserved - $2::bigint, updated_at = now()"
      "   WHERE user_id = $1::uuid RETURNING balance),"
      " led AS (INSERT INTO ledger (user_id, delta, hold, kind, action, debit_id, request_id,"
      "   balance_after, actor, reason, reservation_id, ref_id)"
      "   SELECT $1::uuid, -($2::bigint), -($2::bigint), 'debit', $3, $4::uuid, $5, acc.balance,"
      "   $6, $3, $7::uuid, NULL FROM acc RETURNING id, balance_after),"
      " res AS (UPDATE reservations SET status = 'committed', debit_id = $4::uuid,"
      "   updated_at = now() WHERE id = $7::uuid AND EXISTS (SELECT 1 FROM led)),"
      " aud AS (INSERT INTO audit (user_id, actor, action, cost, status, debit_id, request_id,"
      "   chain_status, detail) SELECT $1::uuid, $6, $3, $2::bigint, 'committed', $4::uuid, $5,"
      "   'pending', jsonb_build_object('reservation_id', $7::text, 'entry_id', led.id::text)"
      "   FROM led),"
      " ob AS (INSERT INTO outbox (id, routing_key, payload)"
      "   SELECT $8::uuid, 'credit.debit.committed', $9 FROM led RETURNING id)"
      " SELECT led.balance_after, led.id::text, (SELECT count(*) FROM ob) FROM led",
      9, p, &r, err);
  free(env);
  if (rc != LC_OK)
    return rc;
  int64_t bal = 0, nob = 0;
  char entry_id[37] = "";
  if (PQntuples(r) != 1 || cell_i64(r, 0, 0, &bal) != LC_OK || cell_i64(r, 0, 2, &nob) != LC_OK ||
      nob != 1) {
    PQclear(r);
    return lc_err_set(err, LC_ERR_DB, "account row missing");
  }
  lc_strlcpy(entry_id, PQgetvalue(r, 0, 1), sizeof(entry_id));
  PQclear(r);
  *bal_out = bal;
  int64_t threshold = atomic_load(&g_low_threshold);
  if (credit_low_crossed(bal + row->cost, bal, threshold)) {
    char th[24], bs[24];
    fmt_i64(th, threshold);
    fmt_i64(bs, bal);
    const char *pn[4] = {row->user_id, entry_id, bs, th};
    rc = lc_db_exec(c,
                    "INSERT INTO notifications (user_id, kind, ledger_entry_id, balance, threshold)"
                    " VALUES ($1::uuid, 'low_balance', $2::uuid, $3::bigint, $4::bigint)"
                    " ON CONFLICT (user_id, ledger_entry_id) DO NOTHING",
                    4, pn, NULL, err);
    if (rc != LC_OK)
      return rc;
    rc = lc_db_exec(c, "SELECT pg_notify('" CREDIT_NOTIFY_CHANNEL "', '')", 0, NULL, NULL, err);
  }
  return rc;
}

static int commit_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  commit_args *a = arg;
  res_row row;
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  rc = lock_reservation(c, a->id, a->owner, &row, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  if (strcmp(row.status, "committed") == 0) {
    lc_strlcpy(a->out->debit_id, row.debit_id, sizeof(a->out->debit_id));
    a->out->replayed = 1;
    rc = account_balance(c, row.user_id, &a->out->balance, err);
    if (rc != LC_OK)
      return tx_rollback(c, rc);
    return lc_db_commit(c, err);
  }
  if (strcmp(row.status, "reserved") != 0)
    return tx_rollback(c, lc_err_set(err, LC_ERR_CONFLICT, "reservation is %s", row.status));
  if (row.overdue) {
    rc = unreserve(c, a->id, &row, "expired", err);
    if (rc != LC_OK)
      return tx_rollback(c, rc);
    rc = lc_db_commit(c, err);
    if (rc != LC_OK)
      return rc;
    return lc_err_set(err, LC_ERR_CONFLICT, "reservation is expired");
  }
  int64_t bal = 0;
  char debit_id[37];
  lc_uuid_v4(debit_id);
  rc = write_debit(c, a->id, &row, a->actor, debit_id, &bal, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  rc = lc_db_commit(c, err);
  if (rc != LC_OK)
    return rc;
  LC_FAILPOINT("credit.debit.after_commit");
  /* Wakes this process's relay for the outbox row. Not a NOTIFY inside the
   * transaction: that takes PostgreSQL's database-wide notify lock from
   * commit to flush and serialises every debit's commit (lc/outbox.h). */
  lc_outbox_ring(atomic_load(&g_outbox_bell));
  lc_strlcpy(a->out->debit_id, debit_id, sizeof(a->out->debit_id));
  a->out->balance = bal;
  a->out->replayed = 0;
  lc_log_info("Event - debit committed debit=%s user=%s action=%s cost=%lld", debit_id,
              row.user_id, row.action, (long long)row.cost);
  return LC_OK;
}

int credit_ledger_commit(lc_db_pool *pool, const char *reservation_id, const char *owner,
                         const char *actor, credit_debit *out, char err[LC_ERR_LEN]) {
  if (!lc_uuid_valid(reservation_id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "no such reservation");
  memset(out, 0, sizeof(*out));
  commit_args a = {reservation_id, owner, actor, out};
  return with_conn(pool, commit_unit, &a, err);
}

typedef struct {
  const char *id, *owner;
} release_args;

static int release_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  release_args *a = arg;
  res_row row;
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  rc = lock_reservation(c, a->id, a->owner, &row, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  if (strcmp(row.status, "committed") == 0)
    return tx_rollback(c, lc_err_set(err, LC_ERR_CONFLICT, "reservation is committed"));
  if (strcmp(row.status, "reserved") != 0) /* released or expired: nothing to do */
    return tx_rollback(c, LC_OK);
  rc = unreserve(c, a->id, &row, "released", err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  return lc_db_commit(c, err);
}

int credit_ledger_release(lc_db_pool *pool, const char *reservation_id, const char *owner,
                          char err[LC_ERR_LEN]) {
  if (!lc_uuid_valid(reservation_id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "no such reservation");
  release_args a = {reservation_id, owner};
  return with_conn(pool, release_unit, &a, err);
}

static int expire_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  int *n = arg;
  PGresult *r = NULL;
  /* One statement: lock overdue reservations (skipping rows a commit holds),
   * mark them expired and give each account its reserved credits back. */
  int rc = lc_db_exec(
      c,
      "WITH exp AS (UPDATE reservations SET status = 'expired', updated_at = now()"
      "  WHERE id IN (SELECT id FROM reservations WHERE status = 'reserved'"
      "   AND expires_at <= now() ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED)"
      "  RETURNING id, user_id, cost, action, coalesce(request_id, 'expire-' || id) AS rid),"
      " agg AS (SELECT user_id, sum(cost)::bigint AS c, count(*) AS k FROM exp GROUP BY user_id),"
      " upd AS (UPDATE accounts a SET reserved = a.reserved - agg.c, updated_at = now()"
      "  FROM agg WHERE a.user_id = agg.user_id RETURNING a.user_id, a.balance, agg.k),"
      " led AS (INSERT INTO ledger (user_id, delta, hold, kind, action, request_id,"
      "  balance_after, actor, reason, reservation_id)"
      "  SELECT e.user_id, 0, -e.cost, 'release', e.action, e.rid, u.balance, 'system',"
      "  'expired', e.id FROM exp e JOIN upd u ON u.user_id = e.user_id"
      "  RETURNING id, reservation_id),"
      " aud AS (INSERT INTO audit (user_id, actor, action, cost, status, request_id, detail)"
      "  SELECT e.user_id, 'system', 'release', 0, 'expired', e.rid,"
      "  jsonb_build_object('amount', e.cost, 'action', e.action, 'reservation_id', e.id::text,"
      "  'entry_id', l.id::text) FROM exp e JOIN led l ON l.reservation_id = e.id RETURNING 1)"
      " SELECT coalesce(sum(k), 0)::bigint FROM upd",
      0, NULL, &r, err);
  if (rc != LC_OK)
    return rc;
  int64_t k = 0;
  cell_i64(r, 0, 0, &k);
  PQclear(r);
  *n = (int)k;
  return LC_OK;
}

int credit_ledger_expire(lc_db_pool *pool, int *n, char err[LC_ERR_LEN]) {
  *n = 0;
  return with_conn(pool, expire_unit, n, err);
}

/* ---- queries ---- */

/* Builds next_cursor from the last row shown (ts/id columns) when more exist. */
static int page_cursor(const PGresult *r, int shown, int total, int ts_col, int id_col,
                       char **next_cursor, char err[LC_ERR_LEN]) {
  *next_cursor = NULL;
  if (total <= shown || shown == 0)
    return LC_OK;
  const char *ts = cell(r, shown - 1, ts_col), *id = cell(r, shown - 1, id_col);
  if (!ts || !id)
    return lc_err_set(err, LC_ERR_DB, "bad page row");
  *next_cursor = credit_cursor_encode(ts, id);
  return *next_cursor ? LC_OK : lc_err_set(err, LC_ERR, "cannot encode cursor");
}

typedef struct {
  const char *user_id, *cursor_ts, *cursor_id;
  int limit;
  json_t *items;
  char *next;
} list_args;

static int list_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  list_args *a = arg;
  char lim[24];
  fmt_i64(lim, (int64_t)a->limit + 1);
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  rc = open_in_tx(c, a->user_id, NULL, NULL, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  const char *p[4] = {a->user_id, a->cursor_ts, a->cursor_id, lim};
  PGresult *r = NULL;
  rc = lc_db_exec(c,
                  "SELECT id::text, " TS("ts") ", delta, kind, action, debit_id::text,"
                  " balance_after, hold, actor, reason, request_id, reservation_id::text, ref_id"
                  " FROM ledger WHERE user_id = $1::uuid"
                  " AND ($2::timestamptz IS NULL OR (ts, id) < ($2::timestamptz, $3::uuid))"
                  " ORDER BY ts DESC, id DESC LIMIT $4::int",
                  4, p, &r, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  int total = PQntuples(r), shown = total > a->limit ? a->limit : total;
  a->items = json_array();
  for (int i = 0; i < shown; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "id", cell_json(r, i, 0));
    json_object_set_new(o, "ts", cell_json(r, i, 1));
    json_object_set_new(o, "delta", cell_json_i64(r, i, 2));
    json_object_set_new(o, "hold", cell_json_i64(r, i, 7));
    json_object_set_new(o, "kind", cell_json(r, i, 3));
    json_object_set_new(o, "action", cell_json(r, i, 4));
    json_object_set_new(o, "debit_id", cell_json(r, i, 5));
    json_object_set_new(o, "balance_after", cell_json_i64(r, i, 6));
    json_object_set_new(o, "actor", cell_json(r, i, 8));
    json_object_set_new(o, "reason", cell_json(r, i, 9));
    json_object_set_new(o, "request_id", cell_json(r, i, 10));
    json_object_set_new(o, "reservation_id", cell_json(r, i, 11));
    json_object_set_new(o, "ref_id", cell_json(r, i, 12));
    json_array_append_new(a->items, o);
  }
  rc = page_cursor(r, shown, total, 1, 0, &a->next, err);
  PQclear(r);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  return lc_db_commit(c, err);
}

int credit_ledger_list(lc_db_pool *pool, const char *user_id, int limit, const char *cursor,
                       json_t **items, char **next_cursor, char err[LC_ERR_LEN]) {
  char ts[40], id[37];
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  if (limit < 1 || limit > 100)
    return lc_err_set(err, LC_ERR_PARAM, "limit must be 1..100");
  if (cursor && credit_cursor_decode(cursor, ts, id) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "malformed cursor");
  list_args a = {user_id, cursor ? ts : NULL, cursor ? id : NULL, limit, NULL, NULL};
  int rc = with_conn(pool, list_unit, &a, err);
  if (rc != LC_OK) {
    json_decref(a.items);
    free(a.next);
    return rc;
  }
  *items = a.items;
  *next_cursor = a.next;
  return LC_OK;
}

typedef struct {
  const credit_audit_query *q;
  const char *cursor_ts, *cursor_id;
  json_t *items;
  char *next;
} audit_args;

static int audit_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  audit_args *a = arg;
  char lim[24];
  fmt_i64(lim, (int64_t)a->q->limit + 1);
  const char *p[7] = {a->q->user_id, a->q->action, a->q->since, a->q->until,
                      a->cursor_ts,  a->cursor_id, lim};
  PGresult *r = NULL;
  int rc = lc_db_exec(
      c,
      "SELECT id::text, " TS("ts") ", user_id::text, actor, action, cost, status, tx_hash,"
      " chain_status, block_number, to_address, debit_id::text, request_id, detail::text"
      " FROM audit"
      " WHERE ($1::uuid IS NULL OR user_id = $1::uuid) AND ($2::text IS NULL OR action = $2)"
      " AND ($3::timestamptz IS NULL OR ts >= $3::timestamptz)"
      " AND ($4::timestamptz IS NULL OR ts < $4::timestamptz)"
      " AND ($5::timestamptz IS NULL OR (ts, id) < ($5::timestamptz, $6::uuid))"
      " ORDER BY ts DESC, id DESC LIMIT $7::int",
      7, p, &r, err);
  if (rc != LC_OK)
    return rc;
  int total = PQntuples(r), shown = total > a->q->limit ? a->q->limit : total;
  a->items = json_array();
  for (int i = 0; i < shown; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "id", cell_json(r, i, 0));
    json_object_set_new(o, "ts", cell_json(r, i, 1));
    json_object_set_new(o, "user_id", cell_json(r, i, 2));
    json_object_set_new(o, "actor", cell_json(r, i, 3));
    json_object_set_new(o, "action", cell_json(r, i, 4));
    json_object_set_new(o, "cost", cell_json_i64(r, i, 5));
    json_object_set_new(o, "status", cell_json(r, i, 6));
    json_object_set_new(o, "tx_hash", cell_json(r, i, 7));
    json_object_set_new(o, "chain_status", cell_json(r, i, 8));
    json_object_set_new(o, "block_number", cell_json_i64(r, i, 9));
    json_object_set_new(o, "to_address", cell_json(r, i, 10));
    json_object_set_new(o, "debit_id", cell_json(r, i, 11));
    json_object_set_new(o, "request_id", cell_json(r, i, 12));
    const char *dt = cell(r, i, 13);
    json_t *dj = dt ? json_loads(dt, 0, NULL) : NULL;
    json_object_set_new(o, "detail", dj ? dj : json_object());
    json_array_append_new(a->items, o);
  }
  rc = page_cursor(r, shown, total, 1, 0, &a->next, err);
  PQclear(r);
  return rc;
}

int credit_ledger_audit(lc_db_pool *pool, const credit_audit_query *q, json_t **items,
                        char **next_cursor, char err[LC_ERR_LEN]) {
  char ts[40], id[37];
  if (q->user_id && !lc_uuid_valid(q->user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  if (q->action && (q->action[0] == '\0' || strlen(q->action) > CREDIT_ACTION_MAX))
    return lc_err_set(err, LC_ERR_PARAM, "bad action filter");
  if ((q->since && !credit_ts_valid(q->since)) || (q->until && !credit_ts_valid(q->until)))
    return lc_err_set(err, LC_ERR_PARAM, "since/until must be RFC 3339 timestamps");
  if (q->limit < 1 || q->limit > 100)
    return lc_err_set(err, LC_ERR_PARAM, "limit must be 1..100");
  if (q->cursor && credit_cursor_decode(q->cursor, ts, id) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "malformed cursor");
  audit_args a = {q, q->cursor ? ts : NULL, q->cursor ? id : NULL, NULL, NULL};
  int rc = with_conn(pool, audit_unit, &a, err);
  if (rc != LC_OK) {
    json_decref(a.items);
    free(a.next);
    return rc;
  }
  *items = a.items;
  *next_cursor = a.next;
  return LC_OK;
}

/* ---- chain results ---- */

/* One result inside the caller's transaction (or autocommit): the audit row
 * moves forward only (pending < submitted < failed < confirmed); *applied = 1
 * when it changed; LC_ERR_NOTFOUND when no audit row has the debit. */
static int chain_apply(PGconn *c, const char *const p[5], int *applied, char err[LC_ERR_LEN]) {
  PGresult *r = NULL;
  int rc = lc_db_exec_prepared(c, "credit_chain_apply",
      "UPDATE audit SET chain_status = $2, tx_hash = coalesce($3, tx_hash),"
      " block_number = coalesce($4::bigint, block_number),"
      " to_address = coalesce($5, to_address)"
      " WHERE debit_id = $1::uuid AND"
      " array_position(ARRAY['pending','submitted','failed','confirmed'], coalesce(chain_status,"
      " 'pending')) <= array_position(ARRAY['pending','submitted','failed','confirmed'], $2)"
      " RETURNING id",
      5, p, &r, err);
  if (rc != LC_OK)
    return rc;
  *applied = PQntuples(r) > 0;
  PQclear(r);
  if (*applied)
    return LC_OK;
  rc = lc_db_exec(c, "SELECT 1 FROM audit WHERE debit_id = $1::uuid", 1, p, &r, err);
  if (rc != LC_OK)
    return rc;
  int found = PQntuples(r) > 0;
  PQclear(r);
  return found ? LC_OK : lc_err_set(err, LC_ERR_NOTFOUND, "unknown debit_id");
}

static int chain_status_valid(const char *s) {
  static const char *const statuses[] = {"pending", "submitted", "failed", "confirmed"};
  for (size_t i = 0; s != NULL && i < 4; i++)
    if (strcmp(s, statuses[i]) == 0)
      return 1;
  return 0;
}

/* Parameters of one result; bn (24 bytes) holds the block number's text. */
static void chain_params(const credit_chain_result *x, char bn[24], const char *p[5]) {
  fmt_i64(bn, x->block_number);
  p[0] = x->debit_id;
  p[1] = x->chain_status;
  p[2] = x->tx_hash;
  p[3] = x->block_number >= 0 ? bn : NULL;
  p[4] = x->to_address;
}

typedef struct {
  credit_chain_result *items;
  size_t n;
} chain_batch_args;

/* Every result of the batch in one transaction, in order. */
static int chain_batch_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  chain_batch_args *a = arg;
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  for (size_t i = 0; i < a->n; i++) {
    credit_chain_result *x = &a->items[i];
    char bn[24];
    const char *p[5];
    chain_params(x, bn, p);
    x->applied = 0;
    x->rc = chain_apply(c, p, &x->applied, err);
    if (x->rc == LC_ERR_NOTFOUND)
      continue; /* a statement that found nothing: the transaction is intact */
    if (x->rc != LC_OK)
      return tx_rollback(c, x->rc);
  }
  return lc_db_commit(c, err);
}

static int chain_one_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  credit_chain_result *x = arg;
  char bn[24];
  const char *p[5];
  chain_params(x, bn, p);
  x->applied = 0;
  return chain_apply(c, p, &x->applied, err);
}

int credit_ledger_chain_update(lc_db_pool *pool, const char *debit_id, const char *chain_status,
                               const char *tx_hash, int64_t block_number,
                               const char *to_address, int *applied, char err[LC_ERR_LEN]) {
  credit_chain_result x = {debit_id, chain_status, tx_hash, to_address, block_number, LC_ERR, 0};
  if (!lc_uuid_valid(debit_id) || !chain_status_valid(chain_status))
    return lc_err_set(err, LC_ERR_PARAM, "bad debit_id or status");
  int rc = with_conn(pool, chain_one_unit, &x, err);
  if (applied)
    *applied = x.applied;
  return rc;
}

int credit_ledger_chain_update_batch(lc_db_pool *pool, credit_chain_result *items, size_t n,
                                     char err[LC_ERR_LEN]) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    items[i].applied = 0;
    items[i].rc = LC_ERR;
    if (!lc_uuid_valid(items[i].debit_id) || !chain_status_valid(items[i].chain_status)) {
      items[i].rc = LC_ERR_PARAM;
      bad++;
    }
  }
  if (bad > 0)
    return lc_err_set(err, LC_ERR_PARAM, "bad debit_id or status in the batch");
  if (n == 0)
    return LC_OK;
  chain_batch_args a = {items, n};
  int rc = n > 1 ? with_conn(pool, chain_batch_unit, &a, err) : LC_ERR;
  if (rc == LC_OK || rc == LC_ERR_UNAVAIL || rc == LC_ERR_TIMEOUT)
    return rc;
  /* a statement failed: each result on its own, so one cannot hold back the others */
  int last = LC_OK;
  for (size_t i = 0; i < n; i++) {
    items[i].rc = with_conn(pool, chain_one_unit, &items[i], err);
    if (items[i].rc != LC_OK && items[i].rc != LC_ERR_NOTFOUND)
      last = items[i].rc;
  }
  return last;
}

/* ---- grants (inside the caller's transaction) ---- */

int credit_grant_kind_valid(const char *kind) {
  return kind && (strcmp(kind, CREDIT_KIND_GRANT) == 0 || strcmp(kind, CREDIT_KIND_PURCHASE) == 0 ||
                  strcmp(kind, CREDIT_KIND_TOPUP) == 0);
}

/* Number of UTF-8 code points of s (s is valid UTF-8 from jansson or the caller). */
static size_t utf8_len(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += (((unsigned char)*s & 0xC0) != 0x80);
  return n;
}

int credit_ledger_balance_conn(PGconn *conn, const char *user_id, int64_t *balance,
                               int64_t *reserved, char err[LC_ERR_LEN]) {
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  const char *p[1] = {user_id};
  PGresult *r = NULL;
  int rc = lc_db_exec(conn, "SELECT balance, reserved FROM accounts WHERE user_id = $1::uuid", 1,
                      p, &r, err);
  if (rc != LC_OK)
    return rc;
  int64_t b = 0, res = 0;
  if (PQntuples(r) != 1) {
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "no account");
  } else if (cell_i64(r, 0, 0, &b) != LC_OK || cell_i64(r, 0, 1, &res) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_DB, "bad account row");
  }
  PQclear(r);
  if (rc == LC_OK && balance)
    *balance = b;
  if (rc == LC_OK && reserved)
    *reserved = res;
  return rc;
}

int credit_ledger_grant(PGconn *conn, const char *user_id, int64_t amount, const char *kind,
                        const char *reason, const char *actor, const char *request_id,
                        const char *ref_id, char entry_id[37], int64_t *balance,
                        char err[LC_ERR_LEN]) {
  if (entry_id)
    entry_id[0] = '\0';
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  if (!credit_grant_kind_valid(kind))
    return lc_err_set(err, LC_ERR_PARAM, "kind must be grant|purchase|topup");
  if (amount < 1 || amount > CREDIT_GRANT_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "amount must be 1..%lld", (long long)CREDIT_GRANT_MAX);
  if (reason == NULL || reason[0] == '\0' || utf8_len(reason) > CREDIT_REASON_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "reason must be 1..%d characters", CREDIT_REASON_MAX);
  if (actor == NULL || actor[0] == '\0' || strlen(actor) > 64)
    return lc_err_set(err, LC_ERR_PARAM, "actor must be 1..64 bytes");
  if (ref_id && (ref_id[0] == '\0' || strlen(ref_id) > 255))
    return lc_err_set(err, LC_ERR_PARAM, "ref_id must be 1..255 bytes");
  char rid_buf[64], amt[24], eid[37] = "";
  const char *rid = req_id_or_new(request_id, rid_buf);
  int rc = open_in_tx(conn, user_id, rid, NULL, err);
  if (rc != LC_OK)
    return rc;
  /* Lock the account row first (the same order as commits). */
  fmt_i64(amt, amount);
  const char *pu[2] = {user_id, amt};
  PGresult *r = NULL;
  rc = lc_db_exec(conn, "SELECT balance FROM accounts WHERE user_id = $1::uuid FOR UPDATE", 1, pu,
                  &r, err);
  if (rc != LC_OK)
    return rc;
  int64_t bal = 0;
  if (PQntuples(r) != 1 || cell_i64(r, 0, 0, &bal) != LC_OK) {
    PQclear(r);
    return lc_err_set(err, LC_ERR_DB, "account row missing");
  }
  PQclear(r);
  ledger_entry e = {user_id, amount, 0,     kind, NULL, NULL, rid, bal + amount,
                    actor,   reason, NULL, ref_id};
  rc = append_entry(conn, &e, eid, err);
  if (rc == LC_ERR_CONFLICT) {
    if (entry_id)
      lc_strlcpy(entry_id, eid, 37);
    if (balance)
      *balance = bal;
    return rc;
  }
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(conn,
                  "UPDATE accounts SET balance = balance + $2::bigint, updated_at = now()"
                  " WHERE user_id = $1::uuid",
                  2, pu, NULL, err);
  if (rc != LC_OK)
    return rc;
  json_t *d = json_pack("{s:I, s:s, s:s}", "amount", (json_int_t)amount, "reason", reason,
                        "entry_id", eid);
  if (d == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "cannot build audit detail");
  if (ref_id)
    json_object_set_new(d, "ref_id", json_string(ref_id));
  credit_audit_row row = {user_id, actor, kind, 0, "ok", rid, d, NULL, NULL};
  rc = credit_audit_insert(conn, &row, NULL, err);
  json_decref(d);
  if (rc != LC_OK)
    return rc;
  if (entry_id)
    lc_strlcpy(entry_id, eid, 37);
  if (balance)
    *balance = bal + amount;
  lc_log_info("Event - %s +%lld user=%s actor=%s entry=%s", kind, (long long)amount, user_id,
              actor, eid);
  return LC_OK;
}

/* ---- internal queries ---- */

typedef struct {
  const char *const *ids;
  size_t n;
  json_t *items;
} balances_args;

static int balances_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  balances_args *a = arg;
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  a->items = json_array();
  for (size_t i = 0; i < a->n; i++) {
    int64_t bal = 0, res = 0;
    rc = open_in_tx(c, a->ids[i], NULL, NULL, err);
    if (rc == LC_OK)
      rc = credit_ledger_balance_conn(c, a->ids[i], &bal, &res, err);
    if (rc != LC_OK) {
      json_decref(a->items);
      a->items = NULL;
      return tx_rollback(c, rc);
    }
    json_array_append_new(a->items, json_pack("{s:s, s:I, s:I}", "user_id", a->ids[i], "balance",
                                              (json_int_t)bal, "available",
                                              (json_int_t)(bal - res)));
  }
  return lc_db_commit(c, err);
}

int credit_ledger_balances(lc_db_pool *pool, const char *const *user_ids, size_t n,
                           json_t **items, char err[LC_ERR_LEN]) {
  *items = NULL;
  if (n < 1 || n > CREDIT_BALANCES_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "1..%d user ids", CREDIT_BALANCES_MAX);
  for (size_t i = 0; i < n; i++)
    if (!lc_uuid_valid(user_ids[i]))
      return lc_err_set(err, LC_ERR_PARAM, "user_ids must be UUIDs");
  balances_args a = {user_ids, n, NULL};
  int rc = with_conn(pool, balances_unit, &a, err);
  if (rc != LC_OK) {
    json_decref(a.items);
    return rc;
  }
  *items = a.items;
  return LC_OK;
}

typedef struct {
  const char *since, *until, *cursor_ts, *cursor_id;
  int limit;
  json_t *items;
  char *next;
} debits_args;

static int debits_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  debits_args *a = arg;
  char lim[24];
  fmt_i64(lim, (int64_t)a->limit + 1);
  const char *p[5] = {a->since, a->until, a->cursor_ts, a->cursor_id, lim};
  PGresult *r = NULL;
  int rc = lc_db_exec(
      c,
      "SELECT id::text, " TS("ts") ", debit_id::text, user_id::text, action, cost, tx_hash,"
      " chain_status, block_number, to_address FROM audit WHERE debit_id IS NOT NULL"
      " AND ($1::timestamptz IS NULL OR ts >= $1::timestamptz)"
      " AND ($2::timestamptz IS NULL OR ts < $2::timestamptz)"
      " AND ($3::timestamptz IS NULL OR (ts, id) > ($3::timestamptz, $4::uuid))"
      " ORDER BY ts, id LIMIT $5::int",
      5, p, &r, err);
  if (rc != LC_OK)
    return rc;
  int total = PQntuples(r), shown = total > a->limit ? a->limit : total;
  a->items = json_array();
  for (int i = 0; i < shown; i++) {
    json_t *o = json_object();
    json_object_set_new(o, "debit_id", cell_json(r, i, 2));
    json_object_set_new(o, "user_id", cell_json(r, i, 3));
    json_object_set_new(o, "action", cell_json(r, i, 4));
    json_object_set_new(o, "cost", cell_json_i64(r, i, 5));
    json_object_set_new(o, "committed_at", cell_json(r, i, 1));
    json_object_set_new(o, "tx_hash", cell_json(r, i, 6));
    json_object_set_new(o, "chain_status", cell_json(r, i, 7));
    json_object_set_new(o, "block_number", cell_json_i64(r, i, 8));
    json_object_set_new(o, "to_address", cell_json(r, i, 9));
    json_array_append_new(a->items, o);
  }
  rc = page_cursor(r, shown, total, 1, 0, &a->next, err);
  PQclear(r);
  return rc;
}

int credit_ledger_debits(lc_db_pool *pool, const char *since, const char *until, int limit,
                         const char *cursor, json_t **items, char **next_cursor,
                         char err[LC_ERR_LEN]) {
  char ts[40], id[37];
  *items = NULL;
  *next_cursor = NULL;
  if ((since && !credit_ts_valid(since)) || (until && !credit_ts_valid(until)))
    return lc_err_set(err, LC_ERR_PARAM, "since/until must be RFC 3339 timestamps");
  if (limit < 1 || limit > 1000)
    return lc_err_set(err, LC_ERR_PARAM, "limit must be 1..1000");
  if (cursor && credit_cursor_decode(cursor, ts, id) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "malformed cursor");
  debits_args a = {since, until, cursor ? ts : NULL, cursor ? id : NULL, limit, NULL, NULL};
  int rc = with_conn(pool, debits_unit, &a, err);
  if (rc != LC_OK) {
    json_decref(a.items);
    free(a.next);
    return rc;
  }
  *items = a.items;
  *next_cursor = a.next;
  return LC_OK;
}
