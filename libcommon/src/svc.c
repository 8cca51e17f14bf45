/* svc.c - daemon lifecycle: signal handling, ulfius instance with request
 * limits, server start with connection cap and idle timeout, ops endpoints
 * (/healthz, /readyz, /metrics) and a small process-wide counter table.
 *
 * ulfius notes (src/ulfius.c 2.7.x): every matching endpoint runs in
 * priority order; when the last matching callback returns CONTINUE/IGNORE
 * ulfius sends whatever the response holds (an empty 200). Because the
 * limits callback matches every route, lc_svc_instance_init also adds a
 * last-priority catch-all that turns an untouched response into a 404
 * problem. The instance keeps a borrowed pointer to its bind address, so
 * addresses live in a static slot table (LC_SVC_MAX_INSTANCES). */
#include "lc/svc.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <microhttpd.h>

#define LC_SVC_MAX_INSTANCES 64
#define LC_PRIO_CATCHALL (LC_PRIO_POST + 1)
#define METRIC_MAX 128
#define METRIC_NAME_MAX 160
#define DEF_MAX_BODY ((size_t)1024 * 1024)

atomic_bool lc_svc_stopping = false;

typedef struct {
  struct sockaddr_in addr;
  size_t max_body;
  char app[64];
  lc_ready_fn ready;
  void *ready_ud;
} svc_slot;

static svc_slot g_slots[LC_SVC_MAX_INSTANCES];
static atomic_int g_nslots = 0;

/* ---- signals ---- */

int lc_svc_block_signals(void) {
  sigset_t set;
  struct sigaction sa;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return LC_ERR;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGPIPE, &sa, NULL) != 0) return LC_ERR;
  return LC_OK;
}

int lc_svc_wait(void) {
  sigset_t set;
  int sig = 0;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  for (;;) {
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGINT || sig == SIGTERM) break;
    lc_log_info("Event - SIGHUP received (ignored)");
  }
  atomic_store(&lc_svc_stopping, true);
  lc_log_info("Event - signal %d received, stopping", sig);
  return sig;
}

/* ---- limits and catch-all ---- */

static int cb_limits(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const svc_slot *s = ud;
  const char *cl = u_map_get_case(req->map_header, "Content-Length");
  int64_t n;
  if (cl != NULL) {
    if (lc_parse_i64(cl, 0, INT64_MAX, &n) != LC_OK)
      return lc_problem(resp, 400, NULL, "invalid Content-Length");
    if ((uint64_t)n > (uint64_t)s->max_body)
      return lc_problem(resp, 413, NULL, "request body too large");
  } else if (req->binary_body_length >= s->max_body && req->binary_body_length > 0) {
    /* Chunked body that ulfius truncated at max_post_body_size. */
    return lc_problem(resp, 413, NULL, "request body too large");
  }
  return U_CALLBACK_CONTINUE;
}

static int cb_catchall(const struct _u_request *req, struct _u_response *resp, void *ud) {
  (void)req;
  (void)ud;
  if (resp->binary_body == NULL && resp->stream_callback == NULL && resp->status == 200)
    return lc_problem(resp, 404, NULL, NULL);
  return U_CALLBACK_COMPLETE;
}

int lc_svc_instance_init(struct _u_instance *inst, const char *bind_ip, int port,
                         size_t max_body, char err[LC_ERR_LEN]) {
  svc_slot *s;
  int idx;
  if (inst == NULL) return lc_err_set(err, LC_ERR_PARAM, "svc: no instance");
  if (port <= 0 || port > 65535) return lc_err_set(err, LC_ERR_PARAM, "svc: bad port %d", port);
  idx = atomic_fetch_add(&g_nslots, 1);
  if (idx >= LC_SVC_MAX_INSTANCES)
    return lc_err_set(err, LC_ERR, "svc: too many instances in this process");
  s = &g_slots[idx];
  memset(s, 0, sizeof *s);
  s->addr.sin_family = AF_INET;
  s->addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, bind_ip ? bind_ip : "127.0.0.1", &s->addr.sin_addr) != 1)
    return lc_err_set(err, LC_ERR_PARAM, "svc: bad bind address '%.64s'",
                      bind_ip ? bind_ip : "");
  s->max_body = max_body ? max_body : DEF_MAX_BODY;
  if (ulfius_init_instance(inst, (unsigned int)port, &s->addr, NULL) != U_OK)
    return lc_err_set(err, LC_ERR, "svc: ulfius_init_instance failed");
  inst->max_post_body_size = s->max_body;
  /* JSON APIs only: keep raw bodies, never parse forms into map_post_body. */
  inst->allowed_post_processor = U_POST_PROCESS_NONE;
  if (ulfius_add_endpoint_by_val(inst, "*", NULL, "*", LC_PRIO_LIMITS, cb_limits, s) != U_OK ||
      ulfius_add_endpoint_by_val(inst, "*", NULL, "*", LC_PRIO_CATCHALL, cb_catchall, NULL) !=
          U_OK) {
    ulfius_clean_instance(inst);
    return lc_err_set(err, LC_ERR, "svc: cannot register limit endpoints");
  }
  return LC_OK;
}

/* ---- metrics ---- */

typedef struct {
  char name[METRIC_NAME_MAX];
  uint64_t v;
} metric;

static metric g_metrics[METRIC_MAX];
static size_t g_nmetrics;
static pthread_mutex_t g_mlock = PTHREAD_MUTEX_INITIALIZER;

static int metric_name_ok(const char *s) {
  size_t i = 0, n = strlen(s);
  if (n == 0 || n >= METRIC_NAME_MAX) return 0;
  for (i = 0; i < n && s[i] != '{'; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
             (i > 0 && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  if (i == 0) return 0;
  if (i == n) return 1;
  if (s[n - 1] != '}') return 0;
  for (; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == '\\' || (unsigned char)s[i] >= 0x7f) return 0;
  return 1;
}

/* Adds v to a series (set = 0) or replaces its value (set = 1, a gauge). */
static void metric_update(const char *series, uint64_t v, int set) {
  size_t i;
  if (series == NULL || !metric_name_ok(series)) return;
  pthread_mutex_lock(&g_mlock);
  for (i = 0; i < g_nmetrics; i++) {
    if (strcmp(g_metrics[i].name, series) == 0) {
      g_metrics[i].v = set ? v : g_metrics[i].v + v;
      goto out;
    }
  }
  if (g_nmetrics < METRIC_MAX) {
    (void)lc_strlcpy(g_metrics[g_nmetrics].name, series, METRIC_NAME_MAX);
    g_metrics[g_nmetrics].v = v;
    g_nmetrics++;
  }
out:
  pthread_mutex_unlock(&g_mlock);
}

void lc_metric_add(const char *series, uint64_t v) { metric_update(series, v, 0); }

void lc_metric_set(const char *series, uint64_t v) { metric_update(series, v, 1); }

/* ---- ops endpoints ---- */

static int cb_healthz(const struct _u_request *req, struct _u_response *resp, void *ud) {
  static const char body[] = "{\"status\":\"ok\"}";
  (void)req;
  (void)ud;
  ulfius_set_binary_body_response(resp, 200, body, sizeof body - 1);
  u_map_put(resp->map_header, "Content-Type", "application/json");
  u_map_put(resp->map_header, "Cache-Control", "no-store");
  return U_CALLBACK_COMPLETE;
}

static int cb_readyz(const struct _u_request *req, struct _u_response *resp, void *ud) {
  static const char body[] = "{\"status\":\"ready\"}";
  const svc_slot *s = ud;
  (void)req;
  if (s->ready != NULL && !s->ready(s->ready_ud))
    return lc_problem(resp, 503, NULL, "not ready");
  ulfius_set_binary_body_response(resp, 200, body, sizeof body - 1);
  u_map_put(resp->map_header, "Content-Type", "application/json");
  u_map_put(resp->map_header, "Cache-Control", "no-store");
  return U_CALLBACK_COMPLETE;
}

static int cb_metrics(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const svc_slot *s = ud;
  size_t cap = (size_t)METRIC_MAX * (METRIC_NAME_MAX + 24) + 256, len = 0, i;
  char *buf = lc_xmalloc(cap);
  int n;
  (void)req;
  n = snprintf(buf, cap, "# TYPE %s_up gauge\n%s_up 1\n", s->app, s->app);
  len = n > 0 ? (size_t)n : 0;
  pthread_mutex_lock(&g_mlock);
  for (i = 0; i < g_nmetrics && len < cap; i++) {
    n = snprintf(buf + len, cap - len, "%s %" PRIu64 "\n", g_metrics[i].name, g_metrics[i].v);
    if (n < 0 || (size_t)n >= cap - len) break;
    len += (size_t)n;
  }
  pthread_mutex_unlock(&g_mlock);
  ulfius_set_binary_body_response(resp, 200, buf, len);
  free(buf);
  u_map_put(resp->map_header, "Content-Type", "text/plain; version=0.0.4");
  u_map_put(resp->map_header, "Cache-Control", "no-store");
  return U_CALLBACK_COMPLETE;
}

int lc_svc_add_ops(struct _u_instance *inst, const char *app, lc_ready_fn ready, void *ud) {
  svc_slot *s = NULL;
  int i, nslots = atomic_load(&g_nslots);
  size_t k;
  if (inst == NULL || app == NULL) return LC_ERR_PARAM;
  for (i = 0; i < nslots && i < LC_SVC_MAX_INSTANCES; i++) {
    if (inst->bind_address == &g_slots[i].addr) {
      s = &g_slots[i];
      break;
    }
  }
  if (s == NULL) return LC_ERR_PARAM; /* instance not from lc_svc_instance_init */
  (void)lc_strlcpy(s->app, app, sizeof s->app);
  /* Metric names allow [a-zA-Z0-9_:] only. */
  for (k = 0; s->app[k] != '\0'; k++) {
    char c = s->app[k];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == ':'))
      s->app[k] = '_';
  }
  s->ready = ready;
  s->ready_ud = ud;
  if (lc_svc_route(inst, "GET", "/healthz", LC_PRIO_APP, cb_healthz, s) != LC_OK ||
      lc_svc_route(inst, "GET", "/readyz", LC_PRIO_APP, cb_readyz, s) != LC_OK ||
      lc_svc_route(inst, "GET", "/metrics", LC_PRIO_APP, cb_metrics, s) != LC_OK)
    return LC_ERR;
  return LC_OK;
}

int lc_svc_start(struct _u_instance *inst, const char *key_pem, const char *cert_pem,
                 unsigned int max_conns, unsigned int idle_timeout_s, char err[LC_ERR_LEN]) {
  struct MHD_OptionItem ops[10];
  unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                       MHD_USE_ERROR_LOG;
  int i = 0;
  if (inst == NULL) return lc_err_set(err, LC_ERR_PARAM, "svc: no instance");
  if ((key_pem == NULL) != (cert_pem == NULL))
    return lc_err_set(err, LC_ERR_PARAM, "svc: TLS needs both key and certificate");
  if (max_conns == 0) max_conns = 512;
  if (idle_timeout_s == 0) idle_timeout_s = 30;
  /* The two options ulfius' API.md marks mandatory. */
  ops[i++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)mhd_request_completed,
                                     NULL};
  ops[i++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)ulfius_uri_logger,
                                     NULL};
  ops[i++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)inst->bind_address};
  ops[i++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)max_conns, NULL};
  ops[i++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)idle_timeout_s,
                                     NULL};
  if (key_pem != NULL) {
    flags |= MHD_USE_TLS;
    ops[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key_pem};
    ops[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert_pem};
    ops[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                       (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
  }
  ops[i++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  if (ulfius_start_framework_with_mhd_options(inst, flags, ops) != U_OK)
    return lc_err_set(err, LC_ERR_IO, "svc: cannot start HTTP server on port %u", inst->port);
  return LC_OK;
}

int lc_svc_route(struct _u_instance *inst, const char *method, const char *path,
                 unsigned int priority,
                 int (*cb)(const struct _u_request *, struct _u_response *, void *), void *ud) {
  if (inst == NULL || method == NULL || path == NULL || cb == NULL) return LC_ERR_PARAM;
  if (ulfius_add_endpoint_by_val(inst, method, NULL, path, priority, cb, ud) != U_OK) {
    lc_log_error("lc_svc_route - cannot register %s %s", method, path);
    return LC_ERR;
  }
  return LC_OK;
}

int lc_read_file(const char *path, size_t max, char **out, size_t *len, char err[LC_ERR_LEN]) {
  FILE *f;
  char *buf;
  size_t n;
  if (out != NULL) *out = NULL;
  if (len != NULL) *len = 0;
  if (path == NULL || out == NULL) return lc_err_set(err, LC_ERR_PARAM, "read_file: no path");
  f = fopen(path, "rb");
  if (f == NULL)
    return lc_err_set(err, LC_ERR_IO, "read_file: cannot open '%.128s': %s", path,
                      strerror(errno));
  buf = lc_xmalloc(max + 2);
  n = fread(buf, 1, max + 1, f);
  if (ferror(f)) {
    fclose(f);
    free(buf);
    return lc_err_set(err, LC_ERR_IO, "read_file: cannot read '%.128s'", path);
  }
  fclose(f);
  if (n > max) {
    free(buf);
    return lc_err_set(err, LC_ERR_TOO_LARGE, "read_file: '%.128s' is larger than %zu bytes",
                      path, max);
  }
  buf[n] = '\0';
  *out = buf;
  if (len != NULL) *len = n;
  return LC_OK;
}
