/* gw_upstream.c - see gw_upstream.h. */
#include "gw_upstream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"

int gw_pool_init(gw_pool *p, const char *name, const char *url_list, int64_t backoff_ms,
                 char err[LC_ERR_LEN]) {
  memset(p, 0, sizeof(*p));
  if (name == NULL || url_list == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "upstream: missing name or URL list");
  lc_strlcpy(p->name, name, sizeof(p->name));
  p->backoff_ms = backoff_ms > 0 ? backoff_ms : 0;
  atomic_init(&p->rr, 0);
  const char *s = url_list;
  while (*s != '\0') {
    while (*s == ' ' || *s == '\t')
      s++;
    size_t len = strcspn(s, ",");
    size_t end = len;
    while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '/'))
      end--;
    if (end == 0)
      return lc_err_set(err, LC_ERR_PARAM, "%s: empty entry in the URL list", name);
    if (p->n >= GW_POOL_MAX)
      return lc_err_set(err, LC_ERR_PARAM, "%s: more than %d URLs", name, GW_POOL_MAX);
    if (end >= GW_URL_MAX)
      return lc_err_set(err, LC_ERR_PARAM, "%s: URL too long", name);
    gw_instance *in = &p->inst[p->n];
    memcpy(in->base_url, s, end);
    in->base_url[end] = '\0';
    if ((strncasecmp(in->base_url, "http://", 7) != 0 || end <= 7) &&
        (strncasecmp(in->base_url, "https://", 8) != 0 || end <= 8))
      return lc_err_set(err, LC_ERR_PARAM, "%s: entry %d is not an http(s):// URL", name,
                        p->n + 1);
    char host[96];
    lc_strlcpy(host, strstr(in->base_url, "://") + 3, sizeof(host));
    snprintf(in->series, sizeof(in->series),
             "gateway_upstream_up{service=\"%s\",instance=\"%s\"}", name, host);
    atomic_init(&in->checked_up, 1);
    atomic_init(&in->alive, 1);
    atomic_init(&in->check_fails, 0);
    atomic_init(&in->down_until, 0);
    atomic_init(&in->inflight, 0);
    atomic_init(&in->picks, 0);
    p->n++;
    s += len;
    if (*s == ',') {
      s++;
      if (*s == '\0')
        return lc_err_set(err, LC_ERR_PARAM, "%s: empty entry in the URL list", name);
    }
  }
  if (p->n == 0)
    return lc_err_set(err, LC_ERR_PARAM, "%s: empty URL list", name);
  return LC_OK;
}

int gw_upstream_usable(const gw_pool *p, int i, int64_t now_ms) {
  if (i < 0 || i >= p->n)
    return 0;
  const gw_instance *in = &p->inst[i];
  return atomic_load(&in->checked_up) && atomic_load(&in->down_until) <= now_ms;
}

int gw_upstream_nusable(const gw_pool *p, int64_t now_ms) {
  int k = 0;
  for (int i = 0; i < p->n; i++)
    k += gw_upstream_usable(p, i, now_ms);
  return k;
}

int gw_upstream_pick(gw_pool *p, int exclude, int64_t now_ms) {
  if (p->n == 0 || (p->n == 1 && exclude == 0))
    return -1;
  unsigned start = atomic_fetch_add(&p->rr, 1u) % (unsigned)p->n;
  int best = -1, best_load = 0, fallback = -1, alive = -1;
  for (int k = 0; k < p->n; k++) {
    int i = (int)((start + (unsigned)k) % (unsigned)p->n);
    if (i == exclude)
      continue;
    if (fallback < 0)
      fallback = i;
    if (alive < 0 && atomic_load(&p->inst[i].alive) &&
        atomic_load(&p->inst[i].down_until) <= now_ms)
      alive = i;
    if (!gw_upstream_usable(p, i, now_ms))
      continue;
    int load = atomic_load(&p->inst[i].inflight);
    if (best < 0 || load < best_load) {
      best = i;
      best_load = load;
    }
  }
  if (best < 0) /* nothing usable: still try, an answering instance first */
    best = alive >= 0 ? alive : fallback;
  if (best >= 0) {
    atomic_fetch_add(&p->inst[best].inflight, 1);
    atomic_fetch_add(&p->inst[best].picks, 1);
  }
  return best;
}

void gw_upstream_release(gw_pool *p, int i, int failed, int64_t now_ms) {
  if (i < 0 || i >= p->n)
    return;
  gw_instance *in = &p->inst[i];
  atomic_fetch_sub(&in->inflight, 1);
  if (!failed || p->backoff_ms <= 0)
    return;
  int64_t until = now_ms + p->backoff_ms;
  int64_t old = atomic_exchange(&in->down_until, until);
  if (old <= now_ms) {
    lc_metric_add("gateway_upstream_marked_down_total", 1);
    lc_metric_set(in->series, 0);
    lc_log_info("Event - %s instance %s marked down for %lld ms (transport failure)", p->name,
                in->base_url, (long long)p->backoff_ms);
  }
}

void gw_upstream_set_checked(gw_pool *p, int i, int up) {
  if (i < 0 || i >= p->n)
    return;
  gw_instance *in = &p->inst[i];
  int was = atomic_exchange(&in->checked_up, up ? 1 : 0);
  if (up)
    atomic_store(&in->down_until, 0); /* a passing check ends a back-off */
  if (was != (up ? 1 : 0))
    lc_log_info("Event - %s instance %s is %s (readiness check)", p->name, in->base_url,
                up ? "up" : "down");
}

void gw_upstream_set_alive(gw_pool *p, int i, int alive) {
  if (i >= 0 && i < p->n)
    atomic_store(&p->inst[i].alive, alive ? 1 : 0);
}

int gw_upstream_nalive(const gw_pool *p) {
  int k = 0;
  for (int i = 0; i < p->n; i++)
    k += atomic_load(&p->inst[i].alive);
  return k;
}

const char *gw_upstream_url(const gw_pool *p, int i) {
  return (i >= 0 && i < p->n) ? p->inst[i].base_url : "";
}

void gw_upstream_publish(const gw_pool *p, int64_t now_ms) {
  for (int i = 0; i < p->n; i++)
    lc_metric_set(p->inst[i].series, (uint64_t)gw_upstream_usable(p, i, now_ms));
}

int gw_upstream_retry_safe(const char *method, const char *path) {
  if (method == NULL || path == NULL ||
      (strcasecmp(method, "GET") != 0 && strcasecmp(method, "HEAD") != 0))
    return 0;
  /* The paid GETs (SPEC §2) charge per call and carry no Idempotency-Key:
   * a second delivery would be a second charge. */
  size_t len = strcspn(path, "?");
  static const char DL[] = "/download";
  if (strncmp(path, "/v1/service/metadata/", 21) == 0)
    return 0;
  if (strncmp(path, "/v1/reports/", 12) == 0 && len >= sizeof(DL) - 1 &&
      strncmp(path + len - (sizeof(DL) - 1), DL, sizeof(DL) - 1) == 0)
    return 0;
  return 1;
}

/* Whether a failed attempt may be repeated on another instance. */
static int may_retry(int rc, const lc_http_resp *resp, int idempotent) {
  if (rc == LC_OK)
    return 0;
  if (resp->connect_failed)
    return 1;
  /* An idempotent request may have been delivered but repeating it is
   * harmless; a timeout is not retried (it would double the wait). */
  return idempotent && rc == LC_ERR_IO;
}

static int transport_failed(int rc) { return rc == LC_ERR_IO || rc == LC_ERR_TIMEOUT; }

int gw_upstream_do(gw_pool *p, const char *path, int idempotent, lc_http_req *hr,
                   lc_http_resp *resp, char err[LC_ERR_LEN]) {
  int i = gw_upstream_pick(p, -1, lc_mono_ms());
  int rc = LC_ERR_UNAVAIL;
  for (int attempt = 0; attempt < 2 && i >= 0; attempt++) {
    char url[2048];
    int ul = snprintf(url, sizeof(url), "%s%s", p->inst[i].base_url, path);
    if (ul < 0 || (size_t)ul >= sizeof(url)) {
      gw_upstream_release(p, i, 0, lc_mono_ms());
      return lc_err_set(err, LC_ERR_TOO_LARGE, "request target too long");
    }
    hr->url = url;
    rc = lc_http_do(hr, resp, err);
    hr->url = NULL;
    gw_upstream_release(p, i, transport_failed(rc), lc_mono_ms());
    if (attempt > 0 || !may_retry(rc, resp, idempotent))
      break;
    lc_log_info("Event - %s: %s failed before an answer (%s); retrying on another instance",
                p->name, p->inst[i].base_url, err);
    lc_http_resp_free(resp);
    int next = gw_upstream_pick(p, i, lc_mono_ms());
    if (next < 0)
      break;
    lc_metric_add("gateway_upstream_retries_total", 1);
    i = next;
  }
  if (i < 0)
    return lc_err_set(err, LC_ERR_UNAVAIL, "%s: no instance configured", p->name);
  return rc;
}

int gw_upstream_iauth_call(gw_pool *p, int idempotent, const uint8_t *secret, size_t secret_len,
                           const char *method, const char *path_query, const lc_identity *id,
                           const char *const *extra_headers, const char *body, size_t body_len,
                           long timeout_ms, lc_http_resp *resp, char err[LC_ERR_LEN]) {
  int i = gw_upstream_pick(p, -1, lc_mono_ms());
  int rc = LC_ERR_UNAVAIL;
  if (i < 0)
    return lc_err_set(err, LC_ERR_UNAVAIL, "%s: no instance configured", p->name);
  for (int attempt = 0; attempt < 2; attempt++) {
    rc = lc_iauth_call(secret, secret_len, p->inst[i].base_url, method, path_query, id,
                       extra_headers, body, body_len, timeout_ms, resp, err);
    gw_upstream_release(p, i, transport_failed(rc), lc_mono_ms());
    if (attempt > 0 || !may_retry(rc, resp, idempotent))
      break;
    lc_http_resp_free(resp);
    int next = gw_upstream_pick(p, i, lc_mono_ms());
    if (next < 0)
      break;
    lc_metric_add("gateway_upstream_retries_total", 1);
    i = next;
  }
  return rc;
}

int gw_health_check_pool(gw_pool *p, long timeout_ms) {
  int up = 0;
  /* With one instance there is nothing to choose: liveness (/healthz, free
   * for the daemon) is all the gateway's readiness needs. /readyz can be
   * costly (storage-svc's asks its object store). */
  const char *probe = p->n > 1 ? "/readyz" : "/healthz";
  for (int i = 0; i < p->n; i++) {
    char url[GW_URL_MAX + 16], err[LC_ERR_LEN];
    snprintf(url, sizeof(url), "%s%s", p->inst[i].base_url, probe);
    lc_http_req hr = {.method = "GET", .url = url, .timeout_ms = timeout_ms, .max_resp = 4096};
    lc_http_resp hres = {0};
    int rc = lc_http_do(&hr, &hres, err);
    int ok = rc == LC_OK && hres.status == 200;
    int refused = rc != LC_OK && hres.connect_failed;
    lc_http_resp_free(&hres);
    gw_upstream_set_alive(p, i, !refused);
    /* refused: down now; a "not ready" answer or a timeout: down when it
     * happens twice in a row (one slow answer under load is no verdict) */
    int fails = ok ? 0 : atomic_fetch_add(&p->inst[i].check_fails, 1) + 1;
    if (ok)
      atomic_store(&p->inst[i].check_fails, 0);
    if (ok || refused || fails >= 2)
      gw_upstream_set_checked(p, i, ok);
    up += ok;
  }
  return up;
}

static void *health_main(void *arg) {
  gw_health *h = arg;
  pthread_mutex_lock(&h->mu);
  while (!h->stop) {
    pthread_mutex_unlock(&h->mu);
    for (int k = 0; k < h->npools; k++) {
      gw_health_check_pool(h->pools[k], h->timeout_ms);
      gw_upstream_publish(h->pools[k], lc_mono_ms());
    }
    pthread_mutex_lock(&h->mu);
    if (h->stop)
      break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(h->interval_ms / 1000);
    ts.tv_nsec += (long)(h->interval_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    while (!h->stop && pthread_cond_timedwait(&h->cv, &h->mu, &ts) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&h->mu);
  lc_http_thread_cleanup();
  return NULL;
}

int gw_health_start(gw_health *h, gw_pool **pools, int npools, int64_t interval_ms,
                    long timeout_ms, char err[LC_ERR_LEN]) {
  memset(h, 0, sizeof(*h));
  h->pools = pools;
  h->npools = npools;
  h->interval_ms = interval_ms > 0 ? interval_ms : 1000;
  h->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&h->thread, NULL, health_main, h) != 0) {
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    return lc_err_set(err, LC_ERR, "cannot start the upstream health thread");
  }
  h->started = 1;
  return LC_OK;
}

void gw_health_stop(gw_health *h) {
  if (h == NULL || !h->started)
    return;
  pthread_mutex_lock(&h->mu);
  h->stop = 1;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
  pthread_join(h->thread, NULL);
  pthread_cond_destroy(&h->cv);
  pthread_mutex_destroy(&h->mu);
  h->started = 0;
}
