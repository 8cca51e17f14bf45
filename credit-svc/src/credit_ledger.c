/* credit_ledger.c - accounts, reservations, debits, ledger/audit queries.
 * See credit_ledger.h for the contract. Lock order everywhere:
 * reservation row -> account row (reserve only touches the account row). */
#include "credit_ledger.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
      " led AS (INSERT INTO ledger (user_id, delta, kind, request_id, balance_after)"
      "  SELECT user_id, $2::bigint, 'signup_bonus', $3, balance FROM ins RETURNING id)"
      " SELECT count(*) FROM led";
  char bonus[24];
  fmt_i64(bonus, CREDIT_SIGNUP_BONUS);
  const char *p[3] = {user_id, bonus, (request_id && request_id[0]) ? request_id : NULL};
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

int credit_ledger_balance(lc_db_pool *pool, const char *user_id, int64_t *balance,
                          int64_t *reserved, char err[LC_ERR_LEN]) {
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  open_args a = {user_id, NULL, 0, 0, 0};
  int rc = with_conn(pool, open_unit, &a, err);
  if (rc != LC_OK)
    return rc;
  if (balance)
    *balance = a.balance;
  if (reserved)
    *reserved = a.reserved;
  return LC_OK;
}

/* ---- reserve ---- */

typedef struct {
  const char *user_id, *action, *idem_key, *request_id;
  int64_t cost, ttl_s, available;
  credit_reservation *out;
} reserve_args;

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

/* Looks up the reservation of (user, idem_key); LC_ERR_NOTFOUND when none. */
static int find_idem(PGconn *c, reserve_args *a, char err[LC_ERR_LEN]) {
  const char *p[2] = {a->user_id, a->idem_key};
  PGresult *r = NULL;
  int rc = lc_db_exec(c,
                      "SELECT " RES_COLS " FROM reservations"
                      " WHERE user_id = $1::uuid AND idempotency_key = $2",
                      2, p, &r, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) != 1) {
    PQclear(r);
    return LC_ERR_NOTFOUND;
  }
  rc = fill_reservation(r, a->out);
  PQclear(r);
  if (rc != LC_OK)
    return lc_err_set(err, rc, "bad reservation row");
  if (strcmp(a->out->action, a->action) != 0)
    return lc_err_set(err, LC_ERR_UNPROCESSABLE,
                      "idempotency key already used for another action");
  a->out->replayed = 1;
  return LC_OK;
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
  rc = open_in_tx(c, a->user_id, a->request_id, NULL, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  if (a->idem_key) {
    rc = find_idem(c, a, err);
    if (rc == LC_OK)
      return lc_db_commit(c, err);
    if (rc != LC_ERR_NOTFOUND)
      return tx_rollback(c, rc);
  }
  /* The atomic guard: concurrent reservers serialise on the account row and
   * re-check the predicate against the latest committed version. */
  const char *pu[2] = {a->user_id, cost};
  rc = lc_db_exec(c,
                  "UPDATE accounts SET reserved = reserved + $2::bigint, updated_at = now()"
                  " WHERE user_id = $1::uuid AND balance - reserved >= $2::bigint"
                  " RETURNING balance - reserved",
                  2, pu, &r, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  int got = PQntuples(r);
  PQclear(r);
  r = NULL;
  if (got != 1) {
    rc = lc_db_exec(c, "SELECT balance - reserved FROM accounts WHERE user_id = $1::uuid", 1, pu,
                    &r, err);
    if (rc == LC_OK && PQntuples(r) == 1)
      cell_i64(r, 0, 0, &a->available);
    PQclear(r);
    lc_db_rollback(c);
    return lc_err_set(err, LC_ERR_FUNDS, "insufficient credits: available %lld, cost %lld",
                      (long long)a->available, (long long)a->cost);
  }
  const char *pi[6] = {a->user_id, a->action, cost, a->idem_key,
                       (a->request_id && a->request_id[0]) ? a->request_id : NULL, ttl};
  rc = lc_db_exec(c,
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

typedef struct {
  char user_id[37];
  char action[CREDIT_ACTION_MAX + 1];
  char status[16];
  char debit_id[37];
  char request_id[64];
  int64_t cost;
  int overdue;
} res_row;

/* SELECT ... FOR UPDATE of one reservation; LC_ERR_NOTFOUND if absent or not
 * owner's. Must run inside a transaction. */
static int lock_reservation(PGconn *c, const char *id, const char *owner, res_row *row,
                            char err[LC_ERR_LEN]) {
  const char *p[1] = {id};
  PGresult *r = NULL;
  int rc = lc_db_exec(c,
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

/* Gives the reserved amount back and sets the final status (released|expired). */
static int unreserve(PGconn *c, const char *id, const res_row *row, const char *status,
                     char err[LC_ERR_LEN]) {
  char cost[24];
  fmt_i64(cost, row->cost);
  const char *pa[2] = {row->user_id, cost};
  int rc = lc_db_exec(c,
                      "UPDATE accounts SET reserved = reserved - $2::bigint, updated_at = now()"
                      " WHERE user_id = $1::uuid",
                      2, pa, NULL, err);
  if (rc != LC_OK)
    return rc;
  const char *pr[2] = {id, status};
  return lc_db_exec(c,
                    "UPDATE reservations SET status = $2, updated_at = now() WHERE id = $1::uuid",
                    2, pr, NULL, err);
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

/* Ledger entry, reservation status, audit row, outbox row (all in the open tx). */
static int write_debit(PGconn *c, const char *res_id, const res_row *row, const char *actor,
                       const char *debit_id, int64_t balance_after, char err[LC_ERR_LEN]) {
  char cost[24], neg[24], bal[24];
  fmt_i64(cost, row->cost);
  fmt_i64(neg, -row->cost);
  fmt_i64(bal, balance_after);
  const char *rid = row->request_id[0] ? row->request_id : debit_id;
  const char *pl[6] = {row->user_id, neg, row->action, debit_id, rid, bal};
  int rc = lc_db_exec(c,
                      "INSERT INTO ledger (user_id, delta, kind, action, debit_id, request_id,"
                      " balance_after) VALUES ($1::uuid, $2::bigint, 'debit', $3, $4::uuid, $5,"
                      " $6::bigint)",
                      6, pl, NULL, err);
  if (rc != LC_OK)
    return rc;
  const char *pr[2] = {res_id, debit_id};
  rc = lc_db_exec(c,
                  "UPDATE reservations SET status = 'committed', debit_id = $2::uuid,"
                  " updated_at = now() WHERE id = $1::uuid",
                  2, pr, NULL, err);
  if (rc != LC_OK)
    return rc;
  const char *pa[6] = {row->user_id, (actor && actor[0]) ? actor : "system", row->action,
                       cost, debit_id, rid};
  rc = lc_db_exec(c,
                  "INSERT INTO audit (user_id, actor, action, cost, status, debit_id, request_id,"
                  " chain_status) VALUES ($1::uuid, $2, $3, $4::bigint, 'committed', $5::uuid, $6,"
                  " 'pending')",
                  6, pa, NULL, err);
  if (rc != LC_OK)
    return rc;
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
  const char *po[3] = {msg_id, "credit.debit.committed", env};
  rc = lc_db_exec(c, "INSERT INTO outbox (id, routing_key, payload) VALUES ($1::uuid, $2, $3)", 3,
                  po, NULL, err);
  free(env);
  if (rc != LC_OK)
    return rc;
  return lc_db_exec(c, "SELECT pg_notify('" CREDIT_OUTBOX_CHANNEL "', '')", 0, NULL, NULL, err);
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
  char cost[24];
  fmt_i64(cost, row.cost);
  const char *pu[2] = {row.user_id, cost};
  PGresult *r = NULL;
  rc = lc_db_exec(c,
                  "UPDATE accounts SET balance = balance - $2::bigint, reserved = reserved - "
                  "$2::bigint, updated_at = now() WHERE user_id = $1::uuid RETURNING balance",
                  2, pu, &r, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  int64_t bal = 0;
  if (PQntuples(r) != 1 || cell_i64(r, 0, 0, &bal) != LC_OK) {
    PQclear(r);
    return tx_rollback(c, lc_err_set(err, LC_ERR_DB, "account row missing"));
  }
  PQclear(r);
  char debit_id[37];
  lc_uuid_v4(debit_id);
  rc = write_debit(c, a->id, &row, a->actor, debit_id, bal, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  rc = lc_db_commit(c, err);
  if (rc != LC_OK)
    return rc;
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
      "  RETURNING user_id, cost),"
      " agg AS (SELECT user_id, sum(cost)::bigint AS c, count(*) AS k FROM exp GROUP BY user_id),"
      " upd AS (UPDATE accounts a SET reserved = a.reserved - agg.c, updated_at = now()"
      "  FROM agg WHERE a.user_id = agg.user_id RETURNING agg.k)"
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
                  " balance_after FROM ledger WHERE user_id = $1::uuid"
                  " AND ($2::timestamptz IS NULL OR (ts, id) < ($2::timestamptz, $3::uuid))"
                  " ORDER BY ts DESC, id DESC LIMIT $4::int",
                  4, p, &r, err);
  if (rc != LC_OK)
    return tx_rollback(c, rc);
  int total = PQntuples(r), shown = total > a->limit ? a->limit : total;
  a->items = json_array();
  for (int i = 0; i < shown; i++) {
    json_array_append_new(a->items,
                          json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", cell_json(r, i, 0),
                                    "ts", cell_json(r, i, 1), "delta", cell_json_i64(r, i, 2),
                                    "kind", cell_json(r, i, 3), "action", cell_json(r, i, 4),
                                    "debit_id", cell_json(r, i, 5), "balance_after",
                                    cell_json_i64(r, i, 6)));
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
      " chain_status, block_number, to_address, debit_id::text, request_id FROM audit"
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

typedef struct {
  const char *const *p;
  int applied;
} chain_args;

static int chain_unit(PGconn *c, void *arg, char err[LC_ERR_LEN]) {
  chain_args *a = arg;
  PGresult *r = NULL;
  int rc = lc_db_exec(
      c,
      "UPDATE audit SET chain_status = $2, tx_hash = coalesce($3, tx_hash),"
      " block_number = coalesce($4::bigint, block_number),"
      " to_address = coalesce($5, to_address)"
      " WHERE debit_id = $1::uuid AND"
      " array_position(ARRAY['pending','submitted','failed','confirmed'], coalesce(chain_status,"
      " 'pending')) <= array_position(ARRAY['pending','submitted','failed','confirmed'], $2)"
      " RETURNING id",
      5, a->p, &r, err);
  if (rc != LC_OK)
    return rc;
  a->applied = PQntuples(r) > 0;
  PQclear(r);
  if (a->applied)
    return LC_OK;
  rc = lc_db_exec(c, "SELECT 1 FROM audit WHERE debit_id = $1::uuid", 1, a->p, &r, err);
  if (rc != LC_OK)
    return rc;
  int found = PQntuples(r) > 0;
  PQclear(r);
  return found ? LC_OK : lc_err_set(err, LC_ERR_NOTFOUND, "unknown debit_id");
}

int credit_ledger_chain_update(lc_db_pool *pool, const char *debit_id, const char *chain_status,
                               const char *tx_hash, int64_t block_number,
                               const char *to_address, int *applied, char err[LC_ERR_LEN]) {
  static const char *const statuses[] = {"pending", "submitted", "failed", "confirmed"};
  int ok = 0;
  for (size_t i = 0; i < 4; i++)
    ok |= (chain_status && strcmp(chain_status, statuses[i]) == 0);
  if (!lc_uuid_valid(debit_id) || !ok)
    return lc_err_set(err, LC_ERR_PARAM, "bad debit_id or status");
  char bn[24];
  fmt_i64(bn, block_number);
  const char *p[5] = {debit_id, chain_status, tx_hash, block_number >= 0 ? bn : NULL, to_address};
  chain_args a = {p, 0};
  int rc = with_conn(pool, chain_unit, &a, err);
  if (applied)
    *applied = a.applied;
  return rc;
}
