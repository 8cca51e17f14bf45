/* settle.h - exactly-once settlement of paid work (reports and uploads).
 *
 * Invariant: charged <=> work visible; not charged <=> work deleted.
 * A paid create writes the object and an invisible row (status 'pending',
 * debit_id NULL), then commits at credit-svc. When the commit's outcome is
 * unknown (credit-svc slow, restarting, answer lost) the row and object are
 * kept with status 'settling' and the request answers 503; a crash between
 * commit and storing debit_id leaves a 'pending' row. The settler thread
 * (every STORAGE_SETTLE_INTERVAL_MS) finishes both kinds:
 *   policy = roll forward: it commits the reservation again (idempotent at
 *   credit-svc: a committed one returns the same debit, a still reserved one
 *   is committed now - the work exists, so it becomes visible and charged);
 *   credit-svc answering 409 (released, or expired by its TTL) is the only
 *   way work is deleted. Then the row's Idempotency-Key claim is completed
 *   (charged) or dropped (released), never earlier.
 * Rows are leased (settle_after moved forward) before credit-svc is asked,
 * so several storage-svc instances may run settlers; every race ends in the
 * same terminal state because commit/release are idempotent and terminal.
 * Thread-safe: each call checks out its own pooled connections. */
#ifndef STORAGE_SETTLE_H
#define STORAGE_SETTLE_H

#include <pthread.h>
#include <stdatomic.h>
#include "creditc.h"
#include "idem.h"
#include "lc/db.h"
#include "lc/err.h"
#include "s3.h"

#define STORAGE_SETTLE_GRACE_DEFAULT 60   /* s before a 'pending' row counts as abandoned */
#define STORAGE_SETTLE_DELAY_S 3          /* s before a 'settling' row is first asked about */

/* The 503 detail when a charge's outcome is unknown (settle.h). */
#define STORAGE_SETTLING_DETAIL                                                            \
  "the credits service did not confirm the charge; the outcome is being settled: the "     \
  "result becomes visible if it was charged, otherwise nothing is charged - retry with the " \
  "same Idempotency-Key to get it"

/* Stores debit_id on an unsettled row (status 'committed', visible), a few
 * attempts with short pauses. Returns LC_OK or the last DB status (the row
 * then stays unsettled and the settler stores it later). */
int storage_settle_set_debit(lc_db_pool *pool, storage_idem_kind kind, const char *row_id,
                             const char *debit_id, char err[LC_ERR_LEN]);

/* Hands an unsettled row to the settler: status 'settling', first question
 * after STORAGE_SETTLE_DELAY_S. Errors are logged (a 'pending' row is still
 * found after the grace period). */
void storage_settle_mark(lc_db_pool *pool, storage_idem_kind kind, const char *row_id);

/* Commits the reservation of freshly stored paid work (row_id of kind) and
 * makes it visible, handing every unknown outcome to the settler. Returns
 *   LC_OK           charged; debit_id filled; the row is committed and visible;
 *   LC_ERR_UNAVAIL  definitely released: nothing charged, the caller deletes
 *                   the row and the object (err says so);
 *   LC_ERR_TIMEOUT  outcome unknown or debit not stored yet: the row and the
 *                   object must be kept and the idempotency claim left open
 *                   (err = STORAGE_SETTLING_DETAIL).
 * label ("file" / "report") and where name the work in logs. */
int storage_settle_commit(lc_db_pool *pool, const storage_creditc *credit, const lc_identity *id,
                          storage_idem_kind kind, const char *row_id, const char *reservation_id,
                          const char *label, const char *where, char debit_id[64],
                          char err[LC_ERR_LEN]);

typedef struct {
  lc_db_pool *pool;
  const storage_s3 *s3;
  const storage_creditc *credit;
} storage_settle_ctx;

typedef struct {
  int committed;  /* rows made visible (charged) */
  int released;   /* rows and objects deleted (not charged) */
  int unknown;    /* rows still unsettled (asked again later, with backoff) */
} storage_settle_counts;

/* One pass: up to 100 due rows of both tables, each leased, settled and
 * finished as above. Returns LC_OK or the DB status of the row scan. */
int storage_settle_once(const storage_settle_ctx *ctx, storage_settle_counts *counts,
                        char err[LC_ERR_LEN]);

typedef struct {
  storage_settle_ctx ctx;
  int interval_ms;
  atomic_int stop;
  pthread_t thread;
  int running;
} storage_settler;

/* Starts the settler thread (one pass every interval_ms). s must outlive
 * storage_settler_stop. Returns LC_OK or LC_ERR. */
int storage_settler_start(storage_settler *s, const storage_settle_ctx *ctx, int interval_ms,
                          char err[LC_ERR_LEN]);
/* Stops and joins the thread (no-op when not running). */
void storage_settler_stop(storage_settler *s);

#endif
