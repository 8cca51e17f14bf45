/* settle.c - settlement of unsettled paid rows (settle.h). */
#include "settle.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lc/log.h"
#include "lc/failpoint.h"
#include "lc/util.h"

#define SETTLE_STR2(x) #x
#define SETTLE_STR(x) SETTLE_STR2(x)
#define SETTLE_DELAY "interval '" SETTLE_STR(STORAGE_SETTLE_DELAY_S) " seconds'"
#define SETTLE_BATCH "100"
#define SETTLE_LEASE_S "30"

static void pause_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

int storage_settle_set_debit(lc_db_pool *pool, storage_idem_kind kind, const char *row_id,
                             const char *debit_id, char err[LC_ERR_LEN])
{
  static const long waits[] = {0, 100, 400, 1000};
  const char *params[2] = {row_id, debit_id};
  int rc = LC_ERR;

  for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
    if (waits[i] > 0)
      pause_ms(waits[i]);
    rc = storage_db_run(pool,
                        kind == STORAGE_IDEM_REPORT
                            ? "UPDATE storage.reports SET debit_id = $2, status = 'committed' "
                              "WHERE id = $1::uuid AND debit_id IS NULL"
                            : "UPDATE storage.files SET debit_id = $2, status = 'committed' "
                              "WHERE id = $1::uuid AND debit_id IS NULL",
                        2, params, NULL, err);
    if (rc == LC_OK)
      return LC_OK;
  }
  return rc;
}

void storage_settle_mark(lc_db_pool *pool, storage_idem_kind kind, const char *row_id)
{
  const char *params[1] = {row_id};
  char err[LC_ERR_LEN] = "";
  int rc;

  rc = storage_db_run(pool,
                      kind == STORAGE_IDEM_REPORT
                          ? "UPDATE storage.reports SET status = 'settling', settle_after = "
                            "now() + " SETTLE_DELAY " WHERE id = $1::uuid AND debit_id IS NULL"
                          : "UPDATE storage.files SET status = 'settling', settle_after = "
                            "now() + " SETTLE_DELAY " WHERE id = $1::uuid AND debit_id IS NULL",
                      1, params, NULL, err);
  if (rc != LC_OK)
    lc_log_error("storage_settle_mark - row %s stays pending (settled after the grace period): "
                 "%s", row_id, err);
}

/* Leases a due row for this pass; 0 when another settler (or the request
 * itself) got there first. */
static int lease(lc_db_pool *pool, storage_idem_kind kind, const char *row_id, int *attempts,
                 char err[LC_ERR_LEN])
{
  const char *params[1] = {row_id};
  PGresult *res = NULL;
  int64_t n = 0;
  int ok;

  if (storage_db_run(pool,
                     kind == STORAGE_IDEM_REPORT
                         ? "UPDATE storage.reports SET settle_attempts = settle_attempts + 1, "
                           "settle_after = now() + interval '" SETTLE_LEASE_S " seconds' "
                           "WHERE id = $1::uuid AND debit_id IS NULL AND settle_after <= now() "
                           "RETURNING settle_attempts::text"
                         : "UPDATE storage.files SET settle_attempts = settle_attempts + 1, "
                           "settle_after = now() + interval '" SETTLE_LEASE_S " seconds' "
                           "WHERE id = $1::uuid AND debit_id IS NULL AND settle_after <= now() "
                           "RETURNING settle_attempts::text",
                     1, params, &res, err) != LC_OK)
    return 0;
  ok = PQntuples(res) == 1;
  if (ok)
    lc_parse_i64(PQgetvalue(res, 0, 0), 0, INT32_MAX, &n);
  *attempts = (int)n;
  PQclear(res);
  return ok;
}

/* Still unknown: ask again after 2, 4, 8 ... 300 s. */
static void backoff(lc_db_pool *pool, storage_idem_kind kind, const char *row_id, int attempts)
{
  char delay[16], err[LC_ERR_LEN] = "";
  const char *params[2] = {row_id, delay};
  int64_t d = 2;

  for (int i = 1; i < attempts && d < 300; i++)
    d *= 2;
  if (d > 300)
    d = 300;
  snprintf(delay, sizeof(delay), "%d", (int)d);
  if (storage_db_run(pool,
                     kind == STORAGE_IDEM_REPORT
                         ? "UPDATE storage.reports SET status = 'settling', settle_after = now() "
                           "+ $2::int * interval '1 second' WHERE id = $1::uuid AND debit_id IS NULL"
                         : "UPDATE storage.files SET status = 'settling', settle_after = now() "
                           "+ $2::int * interval '1 second' WHERE id = $1::uuid AND debit_id IS NULL",
                     2, params, NULL, err) != LC_OK)
    lc_log_error("storage_settle - backoff of %s: %s (lease expires instead)", row_id, err);
}

/* Definitely not charged: row first (it can never become visible now), then
 * the object, then the claim (the key is free again). */
static int undo(const storage_settle_ctx *ctx, storage_idem_kind kind, const char *row_id,
                const char *user_id, const char *object_key, const char *idem_key,
                char err[LC_ERR_LEN])
{
  const char *params[1] = {row_id};
  char oerr[LC_ERR_LEN] = "";
  int rc;

  rc = storage_db_run(ctx->pool,
                      kind == STORAGE_IDEM_REPORT
                          ? "DELETE FROM storage.reports WHERE id = $1::uuid AND debit_id IS NULL"
                          : "DELETE FROM storage.files WHERE id = $1::uuid AND debit_id IS NULL",
                      1, params, NULL, err);
  if (rc != LC_OK)
    return rc;
  if (storage_s3_delete_object(ctx->s3, object_key, oerr) != LC_OK)
    lc_log_warn("storage_settle - orphan object %s not deleted: %s", object_key, oerr);
  if (idem_key[0] != '\0')
    storage_idem_finish(ctx->pool, user_id, idem_key, kind, NULL);
  return LC_OK;
}

static void settle_row(const storage_settle_ctx *ctx, storage_idem_kind kind, const char *row_id,
                       const char *user_id, const char *reservation_id, const char *object_key,
                       const char *idem_key, storage_settle_counts *counts)
{
  const char *what = kind == STORAGE_IDEM_REPORT ? "report" : "file";
  char debit_id[64] = "", err[LC_ERR_LEN] = "";
  int attempts = 0, rc;

  if (!lease(ctx->pool, kind, row_id, &attempts, err))
    return;
  rc = storage_creditc_settle(ctx->credit, user_id, reservation_id, debit_id, err);
  if (rc == LC_OK) {
    rc = storage_settle_set_debit(ctx->pool, kind, row_id, debit_id, err);
    if (rc != LC_OK) {
      lc_log_error("storage_settle - %s %s charged by debit %s, not stored yet: %s", what,
                   row_id, debit_id, err);
      counts->unknown++;
      return; /* the lease expires; the next pass re-commits (same debit) */
    }
    if (idem_key[0] != '\0')
      storage_idem_finish(ctx->pool, user_id, idem_key, kind, row_id);
    lc_log_info("Event - %s %s settled: charged by debit %s (attempt %d)", what, row_id,
                debit_id, attempts);
    counts->committed++;
    return;
  }
  if (rc == LC_ERR_CONFLICT) {
    rc = undo(ctx, kind, row_id, user_id, object_key, idem_key, err);
    if (rc != LC_OK) {
      lc_log_error("storage_settle - %s %s released but not deleted yet: %s", what, row_id, err);
      counts->unknown++;
      return;
    }
    lc_log_info("Event - %s %s settled: reservation %s released, work deleted (attempt %d)",
                what, row_id, reservation_id, attempts);
    counts->released++;
    return;
  }
  lc_log_warn("storage_settle - %s %s still unsettled (attempt %d): %s", what, row_id, attempts,
              err);
  backoff(ctx->pool, kind, row_id, attempts);
  counts->unknown++;
}

int storage_settle_once(const storage_settle_ctx *ctx, storage_settle_counts *counts,
                        char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  int rc, rows;

  memset(counts, 0, sizeof(*counts));
  rc = storage_db_run(ctx->pool,
                      "SELECT 'r', id::text, user_id::text, reservation_id, object_key, "
                      "coalesce(idempotency_key, ''), settle_after FROM storage.reports "
                      "WHERE debit_id IS NULL AND settle_after <= now() "
                      "UNION ALL "
                      "SELECT 'f', id::text, user_id::text, reservation_id, object_key, "
                      "coalesce(idempotency_key, ''), settle_after FROM storage.files "
                      "WHERE debit_id IS NULL AND settle_after <= now() "
                      "ORDER BY 7 LIMIT " SETTLE_BATCH,
                      0, NULL, &res, err);
  if (rc != LC_OK)
    return rc;
  rows = PQntuples(res);
  for (int i = 0; i < rows; i++)
    settle_row(ctx, PQgetvalue(res, i, 0)[0] == 'r' ? STORAGE_IDEM_REPORT : STORAGE_IDEM_FILE,
               PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
               PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), counts);
  PQclear(res);
  return LC_OK;
}

static void *settler_main(void *arg)
{
  storage_settler *s = arg;
  storage_settle_counts counts;
  char err[LC_ERR_LEN] = "";

  while (!atomic_load(&s->stop)) {
    if (storage_settle_once(&s->ctx, &counts, err) != LC_OK)
      lc_log_warn("storage_settle - scan failed: %s", err);
    else if (counts.committed + counts.released + counts.unknown > 0)
      lc_log_info("storage_settle - pass: %d charged, %d released, %d unknown", counts.committed,
                  counts.released, counts.unknown);
    for (int t = 0; t < s->interval_ms && !atomic_load(&s->stop); t += 100)
      pause_ms(100);
  }
  return NULL;
}

int storage_settler_start(storage_settler *s, const storage_settle_ctx *ctx, int interval_ms,
                          char err[LC_ERR_LEN])
{
  s->ctx = *ctx;
  s->interval_ms = interval_ms > 0 ? interval_ms : 2000;
  atomic_init(&s->stop, 0);
  s->running = 0;
  if (pthread_create(&s->thread, NULL, settler_main, s) != 0)
    return lc_err_set(err, LC_ERR, "cannot start the settler thread");
  s->running = 1;
  return LC_OK;
}

void storage_settler_stop(storage_settler *s)
{
  if (!s->running)
    return;
  atomic_store(&s->stop, 1);
  pthread_join(s->thread, NULL);
  s->running = 0;
}

int storage_settle_commit(lc_db_pool *pool, const storage_creditc *credit, const lc_identity *id,
                          storage_idem_kind kind, const char *row_id, const char *reservation_id,
                          const char *label, const char *where, char debit_id[64],
                          char err[LC_ERR_LEN])
{
  char ierr[LC_ERR_LEN] = "";
  int rc = storage_creditc_commit_or_recover(credit, id, reservation_id, debit_id, where);

  if (rc == LC_ERR_UNAVAIL)
    return lc_err_set(err, LC_ERR_UNAVAIL,
                      "credits service is temporarily unavailable; nothing was charged");
  if (rc != LC_OK) {
    /* outcome unknown: the settler decides; the claim stays open */
    storage_settle_mark(pool, kind, row_id);
    lc_log_warn("Event - %s %s: charge outcome unknown, left to the settler", label, row_id);
    return lc_err_set(err, LC_ERR_TIMEOUT, "%s", STORAGE_SETTLING_DETAIL);
  }
  LC_FAILPOINT("storage.after_charge");
  rc = storage_settle_set_debit(pool, kind, row_id, debit_id, ierr);
  if (rc != LC_OK) {
    /* charged, not yet visible: the settler stores the debit after the grace period */
    lc_log_error("Event - %s %s charged by debit %s but debit_id not stored yet: %s", label,
                 row_id, debit_id, ierr);
    return lc_err_set(err, LC_ERR_TIMEOUT, "%s", STORAGE_SETTLING_DETAIL);
  }
  return LC_OK;
}
