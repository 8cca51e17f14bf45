/* gw_upstream.h - the instances of one daemon and which one gets a request.
 *
 * A pool holds the base URLs of every instance of one daemon (GW_AUTH_URL
 * etc. are comma-separated lists; one URL = a pool of one). Selection is
 * least in-flight among the usable instances, ties broken round-robin. An
 * instance is usable when the last active check passed and no passive
 * back-off is running:
 *   passive - a transport failure (refused, reset, timeout) marks the
 *             instance down for backoff_ms;
 *   active  - a background thread (gw_health) GETs <base>/readyz of every
 *             instance every interval (/healthz when the pool has one
 *             instance: no choice to make); 200 = up (and ends a back-off); a
 *             refused connection = down at once; another answer or a
 *             timeout = down after two checks in a row (a busy instance
 *             does not flap).
 * When no instance is usable the pool is still tried, round-robin, an
 * instance that answered its last check and is not backed off first (a stale
 * "down" must never turn into a self-inflicted outage).
 *
 * Retry rule (gw_upstream_do / gw_upstream_iauth_call): a request that failed
 * before one byte was sent (lc_http_resp.connect_failed) is retried once on
 * another instance; after that only requests the caller calls idempotent
 * (gw_upstream_retry_safe for client requests) are retried once, and only
 * after a transport error, never a timeout: a POST may have been delivered.
 *
 * All functions are thread-safe (atomics; the pool itself is immutable after
 * gw_pool_init). Metrics: gateway_upstream_up{service,instance} (1/0),
 * gateway_upstream_retries_total, gateway_upstream_marked_down_total. */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lc/err.h"
#include "lc/http.h"
#include "lc/iauth.h"

#define GW_POOL_MAX 8
#define GW_URL_MAX 256

typedef struct {
  char base_url[GW_URL_MAX];  /* no trailing slash */
  char series[160];           /* gateway_upstream_up{...} */
  atomic_int checked_up;      /* last active check: 1 up (/readyz 200), 0 down */
  atomic_int alive;           /* last active check connected (any answer, or slow) */
  atomic_int check_fails;     /* consecutive failed checks that did connect */
  _Atomic int64_t down_until; /* passive back-off end (lc_mono_ms), 0 = none */
  atomic_int inflight;
  _Atomic uint64_t picks;
} gw_instance;

typedef struct gw_pool {
  char name[32];              /* "auth-svc", for logs and metrics */
  gw_instance inst[GW_POOL_MAX];
  int n;
  int64_t backoff_ms;
  atomic_uint rr;
} gw_pool;

/* Parses url_list ("http://a:1,http://b:2", spaces around commas allowed,
 * trailing slashes dropped) into p. Every instance starts up. LC_ERR_PARAM
 * when the list is empty, too long, has more than GW_POOL_MAX entries or an
 * entry that is not http(s)://... */
int gw_pool_init(gw_pool *p, const char *name, const char *url_list, int64_t backoff_ms,
                 char err[LC_ERR_LEN]);

/* 1 when instance i may get traffic at now_ms. */
int gw_upstream_usable(const gw_pool *p, int i, int64_t now_ms);
/* Number of usable instances. */
int gw_upstream_nusable(const gw_pool *p, int64_t now_ms);

/* Chooses an instance other than exclude (-1 = none) and counts it in
 * flight; the caller must call gw_upstream_release with the same index.
 * Returns -1 only when there is no other instance at all. */
int gw_upstream_pick(gw_pool *p, int exclude, int64_t now_ms);
/* Ends a pick. failed = 1: transport failure (no answer) -> back-off. */
void gw_upstream_release(gw_pool *p, int i, int failed, int64_t now_ms);
/* Records the result of an active check of instance i. */
void gw_upstream_set_checked(gw_pool *p, int i, int up);
/* Records whether the last check of instance i connected at all, and counts
 * the instances that did: an instance that answers "not ready" (its database
 * or broker is down) or too slowly is alive, and the gateway stays ready
 * while every daemon has one alive instance (the daemon's routes still
 * answer, with 503 problems at worst). */
void gw_upstream_set_alive(gw_pool *p, int i, int alive);
int gw_upstream_nalive(const gw_pool *p);
/* Base URL of instance i (borrowed). */
const char *gw_upstream_url(const gw_pool *p, int i);
/* Publishes gateway_upstream_up for every instance at now_ms. */
void gw_upstream_publish(const gw_pool *p, int64_t now_ms);

/* 1 when repeating method+path is harmless: GET/HEAD except the paid GETs
 * (report download, service metadata), which charge per delivery. */
int gw_upstream_retry_safe(const char *method, const char *path);

/* Performs hr against the pool: hr->url is ignored and replaced by
 * <instance><path>. Retry rule above (idempotent: hr is safe to repeat even
 * when it may have been delivered).
 * Returns what lc_http_do returned for the last attempt. */
int gw_upstream_do(gw_pool *p, const char *path, int idempotent, lc_http_req *hr,
                   lc_http_resp *resp, char err[LC_ERR_LEN]);

/* lc_iauth_call against the pool with the same retry rule. */
int gw_upstream_iauth_call(gw_pool *p, int idempotent, const uint8_t *secret, size_t secret_len,
                           const char *method, const char *path_query, const lc_identity *id,
                           const char *const *extra_headers, const char *body, size_t body_len,
                           long timeout_ms, lc_http_resp *resp, char err[LC_ERR_LEN]);

/* Active health checks: one thread checks every instance of every pool
 * each interval_ms (GET /readyz, timeout_ms each), then publishes metrics. */
typedef struct {
  gw_pool **pools;
  int npools;
  int64_t interval_ms;
  long timeout_ms;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  int started;
} gw_health;

/* Checks every instance of p once, synchronously; returns how many are up. */
int gw_health_check_pool(gw_pool *p, long timeout_ms);
int gw_health_start(gw_health *h, gw_pool **pools, int npools, int64_t interval_ms,
                    long timeout_ms, char err[LC_ERR_LEN]);
void gw_health_stop(gw_health *h);

#endif
