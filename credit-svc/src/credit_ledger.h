/* credit_ledger.h - accounts, reservations (reserve -> commit | release),
 * ledger and audit queries of credit-svc. All state lives in PostgreSQL.
 *
 * Thread-safety: every function acquires its own pooled connection for the
 * whole unit of work, so all of them may be called concurrently from any
 * thread. Concurrency safety comes from single-statement guards and row locks
 * (e.g. reserve is one UPDATE ... WHERE balance - reserved >= cost), never
 * from process-local locks, so several daemon instances may share a database.
 *
 * Errors (lc_status): LC_ERR_PARAM bad input, LC_ERR_NOTFOUND, LC_ERR_CONFLICT,
 * LC_ERR_FUNDS, LC_ERR_UNPROCESSABLE, LC_ERR_TIMEOUT/LC_ERR_UNAVAIL (pool or
 * database down), LC_ERR_DB. err receives a short reason without SQL text. */
#ifndef CREDIT_LEDGER_H
#define CREDIT_LEDGER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "credit_costs.h"
#include "lc/db.h"
#include "lc/err.h"
#include "lc/outbox.h"

#define CREDIT_SIGNUP_BONUS 50
/* Channel notified by every commit that queued a low-credit notification. */
#define CREDIT_NOTIFY_CHANNEL "credit_notify"
#define CREDIT_IDEM_KEY_MAX 200

typedef struct {
  char id[37];
  char user_id[37];
  char action[CREDIT_ACTION_MAX + 1];
  int64_t cost;
  char status[16];     /* reserved | committed | released | expired */
  char expires_at[40]; /* RFC 3339 UTC */
  int replayed;        /* 1 = returned the existing reservation of an idempotency key */
} credit_reservation;

typedef struct {
  char debit_id[37];
  int64_t balance;  /* committed balance after the debit */
  int replayed;     /* 1 = the reservation was already committed (same debit returned) */
} credit_debit;

/* Opens the account of user_id (a UUID) if it does not exist yet: one
 * statement inserts the row and its +50 signup_bonus ledger entry; concurrent
 * callers wait on the row and see it as already open. *created = 1 only for
 * the inserting call; *balance (may be NULL) is the committed balance. */
int credit_ledger_open_account(lc_db_pool *pool, const char *user_id, const char *request_id,
                               int *created, int64_t *balance, char err[LC_ERR_LEN]);

/* Credit kinds accepted by credit_ledger_grant. */
#define CREDIT_KIND_GRANT "grant"
#define CREDIT_KIND_PURCHASE "purchase"
#define CREDIT_KIND_TOPUP "topup"
#define CREDIT_GRANT_MAX 1000000000LL /* largest single grant (credits) */
#define CREDIT_REASON_MAX 200         /* reason text, UTF-8 code points */

/* Adds amount credits to user_id INSIDE THE CALLER'S OPEN TRANSACTION on conn
 * (the caller owns BEGIN/COMMIT/ROLLBACK; e.g. a payment webhook marks its
 * event processed and grants in one transaction). In that transaction it:
 * opens the account lazily (+50 signup_bonus entry), locks the account row,
 * appends the ledger entry (kind grant|purchase|topup, delta +amount, actor,
 * reason, request_id, ref_id), updates the cached balance and writes the
 * audit row (action = kind, cost 0, status "ok", detail {amount, reason,
 * entry_id, ref_id}) - do NOT insert another audit row for it.
 *  - amount 1..CREDIT_GRANT_MAX; reason 1..CREDIT_REASON_MAX code points;
 *    actor 1..64 bytes (a user id, "system", "stripe", ...); request_id
 *    NULL/"" = generated; ref_id NULL or 1..255 bytes: the external
 *    reference (provider event id / checkout session id / admin request).
 *  - (kind, ref_id) credits at most once: a second grant with the same
 *    kind and ref_id writes nothing and returns LC_ERR_CONFLICT with
 *    entry_id set to the EXISTING entry (the transaction stays usable:
 *    ON CONFLICT DO NOTHING, no aborted statement).
 *  - entry_id (37 bytes, may be NULL) receives the ledger entry id;
 *    *balance (may be NULL) the committed balance after the grant.
 * Errors: LC_ERR_PARAM (bad input), LC_ERR_CONFLICT (see above), LC_ERR_DB /
 * LC_ERR_UNAVAIL / LC_ERR_RETRY (the caller rolls back; LC_ERR_RETRY =
 * serialization failure or deadlock, retry the whole transaction).
 * Thread-safety: uses only conn (one thread per connection). */
int credit_ledger_grant(PGconn *conn, const char *user_id, int64_t amount, const char *kind,
                        const char *reason, const char *actor, const char *request_id,
                        const char *ref_id, char entry_id[37], int64_t *balance,
                        char err[LC_ERR_LEN]);

/* 1 when kind is one of grant|purchase|topup. */
int credit_grant_kind_valid(const char *kind);

/* Committed balance and reserved amount of user_id read on conn (inside or
 * outside a transaction; does not open the account: LC_ERR_NOTFOUND). */
int credit_ledger_balance_conn(PGconn *conn, const char *user_id, int64_t *balance,
                               int64_t *reserved, char err[LC_ERR_LEN]);

/* The outbox relay's bell, rung after every commit that wrote an outbox row
 * (the debit); set once at start before any request (NULL: the relay finds
 * the rows by polling). Borrowed. */
void credit_ledger_set_outbox_bell(lc_outbox_bell *bell);

/* Low-credit threshold used by commits (CREDIT_LOW_BALANCE_THRESHOLD; set
 * once at start, default 10; 0 disables notifications). */
void credit_ledger_set_low_threshold(int64_t threshold);

/* Pure crossing rule (unit-tested): 1 when a debit took the balance from
 * before >= threshold to after < threshold (threshold > 0). */
int credit_low_crossed(int64_t before, int64_t after, int64_t threshold);

/* Committed balance and the amount currently reserved (opens the account lazily). */
int credit_ledger_balance(lc_db_pool *pool, const char *user_id, int64_t *balance,
                          int64_t *reserved, char err[LC_ERR_LEN]);

/* Reserves the cost of action for user_id (account opened lazily) for ttl_s
 * seconds. idem_key (NULL = none, else 1..200 bytes) makes the call
 * idempotent per user: the existing reservation is returned (replayed = 1),
 * or LC_ERR_UNPROCESSABLE if it was for another action. LC_ERR_FUNDS when
 * balance - reserved < cost (*available, may be NULL, then holds balance -
 * reserved); LC_ERR_PARAM for an unknown action. */
int credit_ledger_reserve(lc_db_pool *pool, const char *user_id, const char *action,
                          const char *idem_key, const char *request_id, int64_t ttl_s,
                          credit_reservation *out, int64_t *available, char err[LC_ERR_LEN]);

/* Commits reservation_id in one transaction: balance -= cost, reserved -=
 * cost, ledger debit entry, audit row (chain_status pending), outbox row with
 * the credit.debit.committed envelope, pg_notify. owner (NULL = any) must be
 * the reservation's user, else LC_ERR_NOTFOUND. actor is recorded in the
 * audit row. A committed reservation returns its debit again (replayed = 1);
 * released/expired -> LC_ERR_CONFLICT (an overdue reservation is expired
 * here and also answers LC_ERR_CONFLICT). */
int credit_ledger_commit(lc_db_pool *pool, const char *reservation_id, const char *owner,
                         const char *actor, credit_debit *out, char err[LC_ERR_LEN]);

/* Releases reservation_id (reserved -= cost). Idempotent for released or
 * expired reservations; committed -> LC_ERR_CONFLICT; owner as in commit. */
int credit_ledger_release(lc_db_pool *pool, const char *reservation_id, const char *owner,
                          char err[LC_ERR_LEN]);

/* Expires every overdue reservation (at most 500 per call); *n = count. */
int credit_ledger_expire(lc_db_pool *pool, int *n, char err[LC_ERR_LEN]);

/* Ledger entries of user_id, newest first. limit 1..100; cursor NULL or an
 * opaque value from a previous call (malformed -> LC_ERR_PARAM). *items is a
 * new array of {id, ts, delta, kind, action, debit_id, balance_after};
 * *next_cursor is new (free()) or NULL on the last page. */
int credit_ledger_list(lc_db_pool *pool, const char *user_id, int limit, const char *cursor,
                       json_t **items, char **next_cursor, char err[LC_ERR_LEN]);

typedef struct {
  const char *user_id; /* UUID or NULL */
  const char *action;  /* NULL = any */
  const char *since;   /* RFC 3339, inclusive, or NULL */
  const char *until;   /* RFC 3339, exclusive, or NULL */
  const char *cursor;  /* NULL = first page */
  int limit;           /* 1..100 */
} credit_audit_query;

/* Audit rows, newest first; items/next_cursor as in credit_ledger_list. */
int credit_ledger_audit(lc_db_pool *pool, const credit_audit_query *q, json_t **items,
                        char **next_cursor, char err[LC_ERR_LEN]);

/* Applies a chain result to the audit row of debit_id with the order guard
 * pending < submitted < failed < confirmed (never moves backwards; equal rank
 * updates, e.g. a replacement tx hash). tx_hash, to_address may be NULL;
 * block_number < 0 = unknown. *applied = 1 when the row changed.
 * LC_ERR_NOTFOUND when no audit row has that debit_id. */
int credit_ledger_chain_update(lc_db_pool *pool, const char *debit_id, const char *chain_status,
                               const char *tx_hash, int64_t block_number,
                               const char *to_address, int *applied, char err[LC_ERR_LEN]);

/* One chain result for credit_ledger_chain_update_batch; rc and applied are
 * set per item as credit_ledger_chain_update returns and reports them. */
typedef struct {
  const char *debit_id, *chain_status, *tx_hash, *to_address;
  int64_t block_number;
  int rc;
  int applied;
} credit_chain_result;

/* Applies items[0..n) in order in one transaction (one WAL flush for the
 * batch). When a statement of it fails, the transaction is rolled back and
 * each item is applied on its own. Returns LC_OK when every item has a
 * final rc (LC_OK or LC_ERR_NOTFOUND each); LC_ERR_PARAM (nothing applied)
 * when an item has a bad debit_id or status; LC_ERR_UNAVAIL / LC_ERR_TIMEOUT
 * when the database cannot be reached (nothing applied); otherwise the
 * error of the last item that failed. */
int credit_ledger_chain_update_batch(lc_db_pool *pool, credit_chain_result *items, size_t n,
                                     char err[LC_ERR_LEN]);

#define CREDIT_BALANCES_MAX 100

/* Balances of up to CREDIT_BALANCES_MAX users (accounts opened lazily, in
 * the given order): *items is a new array of {user_id, balance, available}. */
int credit_ledger_balances(lc_db_pool *pool, const char *const *user_ids, size_t n,
                           json_t **items, char err[LC_ERR_LEN]);

/* Committed debits (audit rows with a debit_id) in [since, until), oldest
 * first, limit 1..1000, with their chain result: *items is a new array of
 * {debit_id, user_id, action, cost, committed_at, tx_hash, chain_status,
 * block_number, to_address}; *next_cursor new or NULL on the last page. */
int credit_ledger_debits(lc_db_pool *pool, const char *since, const char *until, int limit,
                         const char *cursor, json_t **items, char **next_cursor,
                         char err[LC_ERR_LEN]);

/* Cursor helpers (exposed for tests): cursor = base64url("<ts>|<uuid>") with
 * ts an RFC 3339 UTC timestamp with microseconds. encode returns new text. */
char *credit_cursor_encode(const char *ts, const char *id);
int credit_cursor_decode(const char *cursor, char ts[40], char id[37]);

/* 1 when s is an RFC 3339 date-time ("2026-01-02T03:04:05[.ffffff](Z|+hh:mm)"). */
int credit_ts_valid(const char *s);

#endif
