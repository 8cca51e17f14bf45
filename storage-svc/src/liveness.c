/* liveness.c - instance heartbeat (liveness.h). */
#include "liveness.h"

#include <string.h>
#include <time.h>

#include "idem.h"
#include "lc/log.h"
#include "lc/util.h"

int storage_live_beat(lc_db_pool *pool, const char *id, char err[LC_ERR_LEN])
{
  const char *p[1] = {id};
  int rc = storage_db_run(pool,
                          "INSERT INTO storage.instances (id, seen_at) VALUES ($1, now()) "
                          "ON CONFLICT (id) DO UPDATE SET seen_at = now()",
                          1, p, NULL, err);
  if (rc != LC_OK)
    return rc;
  return storage_db_run(pool,
                        "DELETE FROM storage.instances WHERE seen_at < now() - interval '1 hour'",
                        0, NULL, NULL, err);
}

static void *live_main(void *arg)
{
  storage_live *l = arg;
  char err[LC_ERR_LEN];
  int failing = 0;

  while (!atomic_load(&l->stop)) {
    /* sleep in 50 ms steps so a stop is quick */
    int64_t until = lc_mono_ms() + l->interval_ms;
    while (!atomic_load(&l->stop) && lc_mono_ms() < until) {
      struct timespec ts = {0, 50 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    if (atomic_load(&l->stop))
      break;
    err[0] = '\0';
    if (storage_live_beat(l->pool, l->id, err) != LC_OK) {
      if (!failing)
        lc_log_warn("liveness - heartbeat failed: %s", err);
      failing = 1;
    } else if (failing) {
      lc_log_info("liveness - heartbeat back");
      failing = 0;
    }
  }
  return NULL;
}

int storage_live_start(storage_live *l, lc_db_pool *pool, int interval_ms, char err[LC_ERR_LEN])
{
  int rc;

  memset(l, 0, sizeof(*l));
  if (pool == NULL || interval_ms <= 0)
    return lc_err_set(err, LC_ERR_PARAM, "liveness: bad arguments");
  l->pool = pool;
  l->interval_ms = interval_ms;
  lc_uuid_v4(l->id);
  atomic_init(&l->stop, 0);
  rc = storage_live_beat(pool, l->id, err);
  if (rc != LC_OK)
    return rc;
  storage_idem_set_owner(l->id);
  if (pthread_create(&l->thread, NULL, live_main, l) != 0)
    return lc_err_set(err, LC_ERR, "liveness: cannot start the heartbeat thread");
  l->running = 1;
  lc_log_info("liveness - instance %s, heartbeat every %d ms", l->id, interval_ms);
  return LC_OK;
}

void storage_live_stop(storage_live *l)
{
  char err[LC_ERR_LEN] = "";
  const char *p[1];

  if (l == NULL || !l->running)
    return;
  atomic_store(&l->stop, 1);
  pthread_join(l->thread, NULL);
  l->running = 0;
  p[0] = l->id;
  if (storage_db_run(l->pool, "DELETE FROM storage.instances WHERE id = $1", 1, p, NULL, err) !=
      LC_OK)
    lc_log_warn("liveness - cannot remove the instance row: %s", err);
}
