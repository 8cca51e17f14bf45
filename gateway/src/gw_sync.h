/* gw_sync.h - keeps one gateway instance's revocation state and API-key
 * cache in step with auth-svc (contracts A and B).
 *
 * Two threads:
 *  - consumer: lc_amqp_consume_bound on auth.events with its own exclusive,
 *    auto-delete, server-named queue bound to auth.token.*, auth.user.*,
 *    auth.key.*; every event goes to gw_revoke and gw_keycache.
 *  - loader: after each (re)subscription, GET /internal/revocations from
 *    auth-svc (signed as role "system"), retried every 500 ms until it
 *    answers; then applied. It also purges expired revocations every 30 s.
 * Subscribing first and loading second leaves no gap: an event published
 * while the list is being read is in the queue already, and both are
 * unions. The state is "loaded" when the list was loaded after the current
 * subscription; a broker reconnect makes it unloaded until reloaded. */
#ifndef GW_SYNC_H
#define GW_SYNC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "gw_keys.h"
#include "gw_revoke.h"
#include "lc/err.h"

typedef struct {
  /* set by the caller before gw_sync_start (borrowed) */
  const char *amqp_url;
  const char *auth_url;
  struct gw_pool *auth_pool; /* auth-svc instances (gw_upstream.h); NULL = auth_url */
  const uint8_t *secret;
  size_t secret_len;
  gw_revoke *rv;
  gw_keycache *keys;
  /* internal */
  atomic_bool stop;
  atomic_uint_fast64_t bound_gen;  /* subscriptions so far */
  atomic_uint_fast64_t loaded_gen; /* subscription the list was loaded for */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t consumer, loader;
  int started;
} gw_sync;

/* Starts both threads (call after lc_svc_block_signals). */
int gw_sync_start(gw_sync *s, char err[LC_ERR_LEN]);
/* Stops and joins both threads (NULL-safe, idempotent). */
void gw_sync_stop(gw_sync *s);
/* 1 when subscribed and the list was loaded for that subscription. */
int gw_sync_loaded(gw_sync *s);

/* Handler of one auth.events message (exposed for tests): applies it to
 * rv and keys. LC_ERR_PARAM for malformed revocation events. */
int gw_sync_handle(void *ud, const char *routing_key, const char *msg_id, const char *body,
                   size_t len);

#endif
