/* idem.h - Idempotency-Key claims for storage-svc's paid POSTs (reports and
 * uploads) in storage.idempotency_keys, and a one-statement DB helper.
 *
 * A request claims (user_id, key) with the hash of its normalised request
 * before reserving credits. A concurrent request with the same key gets
 * LC_ERR_CONFLICT (409), a later one with a different request
 * LC_ERR_UNPROCESSABLE (422), a later identical one the id of the result to
 * replay. Request hashes start with the action name, so a key used for an
 * upload and then for a report is a different request (422). A claim is
 * completed only once its report/file is charged and visible (debit_id
 * stored, by the request or by the settler, settle.h); while that work is
 * unsettled the key answers 409. A claim that never completed may be taken
 * over once the process that made it has been gone for the stale period
 * (no heartbeat, liveness.h) or after 10 minutes - but never while a row with
 * the key exists.
 * Thread-safe: each call checks out its own pooled connection. */
#ifndef STORAGE_IDEM_H
#define STORAGE_IDEM_H

#include "lc/db.h"
#include "lc/err.h"

typedef enum { STORAGE_IDEM_REPORT, STORAGE_IDEM_FILE } storage_idem_kind;

/* Runs one parameterised statement on its own pooled connection (see lc_db_exec). */
int storage_db_run(lc_db_pool *pool, const char *sql, int n, const char *const *params,
                   PGresult **res, char err[LC_ERR_LEN]);
/* The same as the named prepared statement `name` (lc_db_exec_prepared; NULL:
 * unprepared) - for the hot reads. */
int storage_db_run_named(lc_db_pool *pool, const char *name, const char *sql, int n,
                         const char *const *params, PGresult **res, char err[LC_ERR_LEN]);

/* Records instance_id as the owner of the claims this process makes (called
 * by storage_live_start before the HTTP server starts). */
void storage_idem_set_owner(const char *instance_id);

/* Seconds without a heartbeat after which an owner counts as gone (default 10). */
void storage_idem_set_stale_s(int seconds);

/* LC_OK = claimed by this request; LC_ERR_CONFLICT (in progress),
 * LC_ERR_UNPROCESSABLE (different request), LC_ERR_NOTFOUND with result_id
 * filled (completed: replay that report/file), or a DB status. */
int storage_idem_claim(lc_db_pool *pool, const char *user_id, const char *key, const char *hash,
                       char result_id[37], char err[LC_ERR_LEN]);

/* Marks the claim completed with result_id (a report or file id, by kind) or,
 * with result_id NULL, drops the claim (failed request: the key is free again).
 * Errors are logged. */
void storage_idem_finish(lc_db_pool *pool, const char *user_id, const char *key,
                         storage_idem_kind kind, const char *result_id);

#endif
