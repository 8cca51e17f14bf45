/* idem.c - Idempotency-Key claims (idem.h). */
#include "idem.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "lc/log.h"
#include "lc/util.h"

int storage_db_run_named(lc_db_pool *pool, const char *name, const char *sql, int n,
                         const char *const *params, PGresult **res, char err[LC_ERR_LEN])
{
  PGconn *conn = NULL;
  int rc;

  rc = lc_db_acquire(pool, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = name != NULL ? lc_db_exec_prepared(conn, name, sql, n, params, res, err)
                    : lc_db_exec(conn, sql, n, params, res, err);
  lc_db_release(pool, conn);
  return rc;
}

int storage_db_run(lc_db_pool *pool, const char *sql, int n, const char *const *params,
                   PGresult **res, char err[LC_ERR_LEN])
{
  return storage_db_run_named(pool, NULL, sql, n, params, res, err);
}

/* Set once at start (before any request thread) by storage_live_start. */
static char g_owner[37];
static atomic_int g_stale_s = 10;

void storage_idem_set_owner(const char *instance_id)
{
  lc_strlcpy(g_owner, instance_id != NULL ? instance_id : "", sizeof(g_owner));
}

void storage_idem_set_stale_s(int seconds)
{
  if (seconds > 0)
    atomic_store(&g_stale_s, seconds);
}

int storage_idem_claim(lc_db_pool *pool, const char *user_id, const char *key, const char *hash,
                       char result_id[37], char err[LC_ERR_LEN])
{
  char stale[16];
  const char *params[5] = {user_id, key, hash, g_owner[0] != '\0' ? g_owner : NULL, stale};
  PGresult *res = NULL;
  int rc;

  result_id[0] = '\0';
  snprintf(stale, sizeof(stale), "%d", atomic_load(&g_stale_s));
  rc = storage_db_run(pool,
                      "INSERT INTO storage.idempotency_keys (user_id, key, request_hash, owner) "
                      "VALUES ($1::uuid, $2, $3, $4) ON CONFLICT (user_id, key) DO UPDATE "
                      "SET request_hash = EXCLUDED.request_hash, created_at = now(), "
                      "owner = EXCLUDED.owner "
                      "WHERE storage.idempotency_keys.report_id IS NULL "
                      "AND storage.idempotency_keys.file_id IS NULL "
                      /* abandoned: its process is gone (no heartbeat for the stale
                         period, liveness.h), or the 10-minute fallback */
                      "AND (storage.idempotency_keys.created_at < now() - interval '10 minutes' "
                      "OR (storage.idempotency_keys.owner IS NOT NULL AND NOT EXISTS ("
                      "SELECT 1 FROM storage.instances i WHERE i.id = "
                      "storage.idempotency_keys.owner AND i.seen_at > now() - "
                      "make_interval(secs => $5::int)))) "
                      /* never while its work exists (unsettled: the settler completes it) */
                      "AND NOT EXISTS (SELECT 1 FROM storage.reports r WHERE "
                      "r.user_id = $1::uuid AND r.idempotency_key = $2) "
                      "AND NOT EXISTS (SELECT 1 FROM storage.files f WHERE "
                      "f.user_id = $1::uuid AND f.idempotency_key = $2) "
                      "RETURNING 1",
                      5, params, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) == 1) {
    PQclear(res);
    return LC_OK;
  }
  PQclear(res);
  rc = storage_db_run(pool,
                      /* a committed row with the key completes the claim even when
                         storing its id failed */
                      "SELECT request_hash, coalesce(report_id::text, file_id::text, "
                      "(SELECT r.id::text FROM storage.reports r WHERE r.user_id = $1::uuid "
                      "AND r.idempotency_key = $2 AND r.debit_id IS NOT NULL), "
                      "(SELECT f.id::text FROM storage.files f WHERE f.user_id = $1::uuid "
                      "AND f.idempotency_key = $2 AND f.debit_id IS NOT NULL LIMIT 1), '') "
                      "FROM storage.idempotency_keys WHERE user_id = $1::uuid AND key = $2",
                      2, params, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1) {
    PQclear(res);
    return lc_err_set(err, LC_ERR_CONFLICT, "idempotency claim vanished; retry");
  }
  if (strcmp(PQgetvalue(res, 0, 0), hash) != 0)
    rc = LC_ERR_UNPROCESSABLE;
  else if (PQgetvalue(res, 0, 1)[0] == '\0')
    rc = LC_ERR_CONFLICT;
  else
    rc = LC_ERR_NOTFOUND;
  lc_strlcpy(result_id, PQgetvalue(res, 0, 1), 37);
  PQclear(res);
  return rc;
}

void storage_idem_finish(lc_db_pool *pool, const char *user_id, const char *key,
                         storage_idem_kind kind, const char *result_id)
{
  const char *params[3] = {user_id, key, result_id};
  char err[LC_ERR_LEN] = "";
  int rc;

  if (result_id != NULL && kind == STORAGE_IDEM_REPORT)
    rc = storage_db_run(pool,
                        "UPDATE storage.idempotency_keys SET report_id = $3::uuid "
                        "WHERE user_id = $1::uuid AND key = $2",
                        3, params, NULL, err);
  else if (result_id != NULL)
    rc = storage_db_run(pool,
                        "UPDATE storage.idempotency_keys SET file_id = $3::uuid "
                        "WHERE user_id = $1::uuid AND key = $2",
                        3, params, NULL, err);
  else
    rc = storage_db_run(pool,
                        "DELETE FROM storage.idempotency_keys WHERE user_id = $1::uuid "
                        "AND key = $2 AND report_id IS NULL AND file_id IS NULL",
                        2, params, NULL, err);
  if (rc != LC_OK)
    lc_log_error("storage_idem_finish - idempotency key not %s: %s",
                 result_id != NULL ? "completed" : "released", err);
}
