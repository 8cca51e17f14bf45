/* gw_sync.c - see gw_sync.h. */
#include "gw_sync.h"
#include "gw_upstream.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "lc/amqp.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"

#define LOAD_RETRY_MS 500
#define PURGE_EVERY_MS 30000
#define LIST_MAX_BYTES (64u * 1024 * 1024)

static const char *const BINDINGS[] = {"auth.token.*", "auth.user.*", "auth.key.*"};

int gw_sync_handle(void *ud, const char *routing_key, const char *msg_id, const char *body,
                   size_t len) {
  gw_sync *s = ud;
  (void)msg_id;
  int64_t now = lc_now_ms() / 1000;
  int rc = gw_revoke_apply_event(s->rv, routing_key, body, len, now);
  int rk = s->keys != NULL ? gw_keys_apply_event(s->keys, routing_key, body, len) : LC_OK;
  if (rc != LC_OK || rk != LC_OK) {
    lc_log_warn("gw_sync - malformed %s event dropped", routing_key);
    return LC_ERR_PARAM;
  }
  lc_metric_add("gateway_auth_events_total", 1);
  lc_log_debug("gw_sync - applied %s", routing_key);
  return LC_OK;
}

static void on_bound(void *ud) {
  gw_sync *s = ud;
  pthread_mutex_lock(&s->mu);
  atomic_fetch_add(&s->bound_gen, 1);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  lc_log_info("Event - gateway subscribed to auth.events; (re)loading the revocation list");
}

static void *consumer_main(void *ud) {
  gw_sync *s = ud;
  lc_amqp_consume_bound(s->amqp_url, "auth.events", BINDINGS,
                        sizeof(BINDINGS) / sizeof(BINDINGS[0]), 64, on_bound, gw_sync_handle, s,
                        &s->stop);
  return NULL;
}

/* One GET /internal/revocations; LC_OK when applied. */
static int load_once(gw_sync *s, char err[LC_ERR_LEN]) {
  lc_identity sys;
  memset(&sys, 0, sizeof(sys));
  lc_strlcpy(sys.role, "system", sizeof(sys.role));
  lc_uuid_v4(sys.request_id);
  lc_http_resp resp = {0};
  int rc = s->auth_pool != NULL
               ? gw_upstream_iauth_call(s->auth_pool, 1, s->secret, s->secret_len, "GET",
                                        "/internal/revocations", &sys, NULL, NULL, 0, 5000, &resp,
                                        err)
               : lc_iauth_call(s->secret, s->secret_len, s->auth_url, "GET",
                               "/internal/revocations", &sys, NULL, NULL, 0, 5000, &resp, err);
  if (rc == LC_OK && resp.status != 200)
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "auth-svc answered %ld", resp.status);
  if (rc == LC_OK &&
      gw_revoke_apply_list(s->rv, resp.body ? resp.body : "", resp.len, lc_now_ms() / 1000) !=
          LC_OK)
    rc = lc_err_set(err, LC_ERR_PARAM, "malformed revocation list");
  lc_http_resp_free(&resp);
  return rc;
}

static void wait_ms(gw_sync *s, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->mu);
  if (!atomic_load(&s->stop) &&
      atomic_load(&s->bound_gen) == atomic_load(&s->loaded_gen))
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  pthread_mutex_unlock(&s->mu);
}

static void *loader_main(void *ud) {
  gw_sync *s = ud;
  int64_t next_purge = lc_mono_ms() + PURGE_EVERY_MS;
  int64_t last_warn = 0;
  while (!atomic_load(&s->stop)) {
    uint64_t gen = atomic_load(&s->bound_gen);
    if (gen != 0 && gen != atomic_load(&s->loaded_gen)) {
      char err[LC_ERR_LEN] = "";
      if (load_once(s, err) == LC_OK) {
        atomic_store(&s->loaded_gen, gen);
        size_t nj = 0, nu = 0;
        gw_revoke_counts(s->rv, &nj, &nu);
        lc_log_info("Event - revocation list loaded (%zu tokens, %zu users)", nj, nu);
        lc_metric_add("gateway_revocation_loads_total", 1);
        continue;
      }
      if (lc_mono_ms() - last_warn > 10000) {
        lc_log_warn("gw_sync - revocation list not loaded yet: %s (retrying)", err);
        last_warn = lc_mono_ms();
      }
      wait_ms(s, LOAD_RETRY_MS);
      continue;
    }
    if (lc_mono_ms() >= next_purge) {
      gw_revoke_purge(s->rv, lc_now_ms() / 1000);
      next_purge = lc_mono_ms() + PURGE_EVERY_MS;
    }
    wait_ms(s, 1000);
  }
  return NULL;
}

int gw_sync_start(gw_sync *s, char err[LC_ERR_LEN]) {
  if (s == NULL || s->amqp_url == NULL || s->auth_url == NULL || s->rv == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "gw_sync: incomplete configuration");
  atomic_store(&s->stop, false);
  atomic_store(&s->bound_gen, 0);
  atomic_store(&s->loaded_gen, 0);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (pthread_create(&s->consumer, NULL, consumer_main, s) != 0)
    return lc_err_set(err, LC_ERR, "gw_sync: cannot start the consumer thread");
  if (pthread_create(&s->loader, NULL, loader_main, s) != 0) {
    atomic_store(&s->stop, true);
    pthread_join(s->consumer, NULL);
    return lc_err_set(err, LC_ERR, "gw_sync: cannot start the loader thread");
  }
  s->started = 1;
  return LC_OK;
}

void gw_sync_stop(gw_sync *s) {
  if (s == NULL || !s->started)
    return;
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->stop, true);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->loader, NULL);
  pthread_join(s->consumer, NULL);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  s->started = 0;
}

int gw_sync_loaded(gw_sync *s) {
  uint64_t b = atomic_load(&s->bound_gen);
  return b != 0 && atomic_load(&s->loaded_gen) == b;
}
