/* liveness.h - this storage-svc process's heartbeat in storage.instances.
 *
 * Each process picks a random instance id at start and upserts
 * (id, seen_at = now()) every interval from a thread of its own. An
 * Idempotency-Key claim records the id of the process that made it
 * (idem.h); another instance may take over a claim whose owner has not been
 * seen for STORAGE_CLAIM_STALE_S, so a request killed with its process (kill
 * -9, crash, lost host) frees its key within seconds instead of after the
 * 10-minute fallback. A live owner whose heartbeat merely lags keeps its
 * claim for the whole stale period (several missed beats). Rows of processes
 * gone for an hour are deleted by the heartbeat itself. */
#ifndef STORAGE_LIVENESS_H
#define STORAGE_LIVENESS_H

#include <pthread.h>
#include <stdatomic.h>

#include "lc/db.h"
#include "lc/err.h"

typedef struct {
  lc_db_pool *pool;
  int interval_ms;
  char id[37];
  atomic_int stop;
  int running;
  pthread_t thread;
} storage_live;

/* Picks the instance id, writes the first beat synchronously (so claims made
 * right after start are already backed by a live row) and starts the thread.
 * Returns LC_OK, a DB status of the first beat, or LC_ERR. */
int storage_live_start(storage_live *l, lc_db_pool *pool, int interval_ms, char err[LC_ERR_LEN]);

/* Stops and joins the thread and deletes this instance's row (a clean stop
 * frees its unfinished claims at once). Safe on a never-started struct. */
void storage_live_stop(storage_live *l);

/* One beat (upsert + purge of rows older than an hour). Returns LC_OK or a DB status. */
int storage_live_beat(lc_db_pool *pool, const char *id, char err[LC_ERR_LEN]);

#endif
