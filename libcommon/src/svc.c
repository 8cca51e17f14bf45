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
 * addresses live in a static slot table (LC_SVC_MAX_INSTANCES).
 *
 * Request metrics: lc_svc_route registers a wrapper (static table, no
 * allocation) around each callback. ulfius runs the matching callbacks of a
 * request one after the other in the connection's thread, so a thread-local
 * request record (start time, last route template) spans them: the
 * limits callback (priority 0, matches everything) starts it, every wrapped
 * callback notes its route, and the callback that ends the request (returns
 * anything but U_CALLBACK_CONTINUE/IGNORE; the catch-all always does) records
 * route template, method, final status and duration into a bounded table
 * (HTTP_SERIES_MAX; beyond it, route="other"). */
#include "lc/svc.h"
#include "lc/db.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <microhttpd.h>

#define LC_SVC_MAX_INSTANCES 64
#define LC_PRIO_CATCHALL (LC_PRIO_POST + 1)
#define METRIC_MAX 128
#define METRIC_NAME_MAX 160
#define DEF_MAX_BODY ((size_t)1024 * 1024)
#define HTTP_SERIES_MAX 192
#define HTTP_ROUTE_MAX 96
#define ROUTE_WRAP_MAX 512
#define HELP_MAX 64
#define SQL_GAUGE_MAX 16
#define SQL_GAUGE_ROWS 16

static const double k_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof k_buckets / sizeof k_buckets[0])

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

/* streaming routes (end of file) */
typedef struct {
  struct _u_instance *inst;
  MHD_AccessHandlerCallback dh; /* ulfius' dispatcher */
  void *dh_cls;
  int hooked;
} svc_hook;
static int has_stream_routes(const struct _u_instance *inst);
static int has_guard(const struct _u_instance *inst);
static void svc_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
static void *svc_uri_log(void *cls, const char *uri, struct MHD_Connection *c);
static void svc_notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                            enum MHD_ConnectionNotificationCode code);
static svc_hook g_hooks[LC_SVC_MAX_INSTANCES];
static int g_nhooks;
static pthread_mutex_t g_hook_lock = PTHREAD_MUTEX_INITIALIZER;
static svc_hook *g_hook_pending; /* set by lc_svc_start around the ulfius start */

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

/* ---- request metrics ---- */

typedef struct {
  char route[HTTP_ROUTE_MAX];
  char method[8];
  int status;
  uint64_t count;
  uint64_t buckets[NBUCKETS]; /* cumulative at render time; per-bucket here */
  double sum;
} http_series;

static http_series g_http[HTTP_SERIES_MAX];
static size_t g_nhttp;
static pthread_mutex_t g_hlock = PTHREAD_MUTEX_INITIALIZER;

/* The request the connection thread is processing. */
static _Thread_local struct {
  int64_t start_ns;
  const char *route; /* template of the last wrapped callback that ran */
} t_req;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void req_begin(void) {
  t_req.start_ns = mono_ns();
  t_req.route = NULL;
}

static int ops_route(const char *route) {
  return strcmp(route, "/healthz") == 0 || strcmp(route, "/readyz") == 0 ||
         strcmp(route, "/metrics") == 0;
}

void lc_svc_observe(const char *route, const char *method, int status, double seconds) {
  http_series *h = NULL;
  size_t i, b;
  char m[8];
  if (route == NULL || method == NULL) return;
  /* Unknown verbs collapse into one label value (bounded series). */
  if (strlen(method) >= sizeof m || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method))
    method = "OTHER";
  (void)lc_strlcpy(m, method, sizeof m);
  if (status < 100 || status > 599) status = 0;
  if (seconds < 0) seconds = 0;
  pthread_mutex_lock(&g_hlock);
  for (i = 0; i < g_nhttp; i++) {
    if (g_http[i].status == status && strcmp(g_http[i].method, m) == 0 &&
        strcmp(g_http[i].route, route) == 0) {
      h = &g_http[i];
      break;
    }
  }
  if (h == NULL && g_nhttp < HTTP_SERIES_MAX - 1) {
    h = &g_http[g_nhttp++];
    (void)lc_strlcpy(h->route, route, sizeof h->route);
    (void)lc_strlcpy(h->method, m, sizeof h->method);
    h->status = status;
  }
  if (h == NULL) { /* table full: one overflow series */
    h = &g_http[HTTP_SERIES_MAX - 1];
    if (h->route[0] == '\0') { /* status 0: the overflow mixes every status */
      (void)lc_strlcpy(h->route, "other", sizeof h->route);
      (void)lc_strlcpy(h->method, "OTHER", sizeof h->method);
      h->status = 0;
      g_nhttp = HTTP_SERIES_MAX;
    }
  }
  h->count++;
  h->sum += seconds;
  for (b = 0; b < NBUCKETS; b++) {
    if (seconds <= k_buckets[b]) {
      h->buckets[b]++;
      break;
    }
  }
  pthread_mutex_unlock(&g_hlock);
}

/* Records the request this thread is processing (once) and logs it. */
static void req_end(const struct _u_request *req, const struct _u_response *resp,
                    const char *route, int cb_ret) {
  int status = resp->status;
  double secs;
  if (t_req.start_ns == 0) t_req.start_ns = mono_ns();
  secs = (double)(mono_ns() - t_req.start_ns) / 1e9;
  if (cb_ret == U_CALLBACK_ERROR) status = 500;
  else if (cb_ret == U_CALLBACK_UNAUTHORIZED) status = 401;
  lc_svc_observe(route, req->http_verb ? req->http_verb : "OTHER", status, secs);
  if (ops_route(route))
    lc_log_debug("http %s %s -> %d (%.1f ms)", req->http_verb ? req->http_verb : "-", route,
                 status, secs * 1e3);
  else
    lc_log_info("http %s %s -> %d (%.1f ms)", req->http_verb ? req->http_verb : "-", route,
                status, secs * 1e3);
  t_req.start_ns = 0;
  t_req.route = NULL;
  lc_log_set_rid(NULL); /* the connection thread's next request starts without an id */
}

typedef int (*route_cb)(const struct _u_request *, struct _u_response *, void *);
typedef struct {
  route_cb cb;
  void *ud;
  char route[HTTP_ROUTE_MAX];
} route_wrap;

static route_wrap g_wraps[ROUTE_WRAP_MAX];
static atomic_int g_nwraps = 0;

static int cb_wrapped(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const route_wrap *w = ud;
  int ret;
  if (t_req.start_ns == 0) req_begin();
  t_req.route = w->route;
  ret = w->cb(req, resp, w->ud);
  if (ret != U_CALLBACK_CONTINUE && ret != U_CALLBACK_IGNORE) req_end(req, resp, w->route, ret);
  return ret;
}

/* ---- limits and catch-all ---- */

static int cb_limits(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const svc_slot *s = ud;
  const char *cl = u_map_get_case(req->map_header, "Content-Length");
  int64_t n;
  int ret = U_CALLBACK_CONTINUE;
  /* First callback of every request (priority 0): a new request record. */
  req_begin();
  if (cl != NULL) {
    if (lc_parse_i64(cl, 0, INT64_MAX, &n) != LC_OK)
      ret = lc_problem(resp, 400, NULL, "invalid Content-Length");
    else if ((uint64_t)n > (uint64_t)s->max_body)
      ret = lc_problem(resp, 413, NULL, "request body too large");
  } else if (req->binary_body_length >= s->max_body && req->binary_body_length > 0) {
    /* Chunked body that ulfius truncated at max_post_body_size. */
    ret = lc_problem(resp, 413, NULL, "request body too large");
  }
  if (ret != U_CALLBACK_CONTINUE) req_end(req, resp, "limits", ret);
  return ret;
}

static int cb_catchall(const struct _u_request *req, struct _u_response *resp, void *ud) {
  int ret = U_CALLBACK_COMPLETE;
  const char *route = t_req.route;
  (void)ud;
  if (resp->binary_body == NULL && resp->stream_callback == NULL && resp->status == 200) {
    ret = lc_problem(resp, 404, NULL, NULL);
    route = NULL;
  }
  /* A 404 no route answered is "unmatched" (the raw path would be unbounded). */
  req_end(req, resp, route ? route : "unmatched", ret);
  return ret;
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
  double fv;
  int is_float;
} metric;

typedef struct {
  char family[METRIC_NAME_MAX];
  char type[12];
  char help[160];
} metric_help;

typedef struct {
  lc_db_pool *pool;
  char family[METRIC_NAME_MAX];
  char label[32];
  char sql[512];
} sql_gauge;

static metric g_metrics[METRIC_MAX];
static size_t g_nmetrics;
static metric_help g_help[HELP_MAX];
static size_t g_nhelp;
static sql_gauge g_sqlg[SQL_GAUGE_MAX];
static size_t g_nsqlg;
static pthread_mutex_t g_mlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_scrape_lock = PTHREAD_MUTEX_INITIALIZER;

static int name_char_ok(char c, size_t i) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (i > 0 && c >= '0' && c <= '9');
}

static int metric_name_ok(const char *s) {
  size_t i = 0, n = strlen(s);
  if (n == 0 || n >= METRIC_NAME_MAX) return 0;
  for (i = 0; i < n && s[i] != '{'; i++)
    if (!name_char_ok(s[i], i)) return 0;
  if (i == 0) return 0;
  if (i == n) return 1;
  if (s[n - 1] != '}') return 0;
  for (; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == '\\' || (unsigned char)s[i] >= 0x7f) return 0;
  return 1;
}

/* Adds v to a series (set = 0) or replaces its value (set = 1, a gauge);
 * isf: the value is fv (a float gauge). */
static void metric_update(const char *series, uint64_t v, double fv, int set, int isf) {
  size_t i;
  metric *m = NULL;
  if (series == NULL || !metric_name_ok(series)) return;
  pthread_mutex_lock(&g_mlock);
  for (i = 0; i < g_nmetrics; i++) {
    if (strcmp(g_metrics[i].name, series) == 0) {
      m = &g_metrics[i];
      break;
    }
  }
  if (m == NULL && g_nmetrics < METRIC_MAX) {
    m = &g_metrics[g_nmetrics++];
    (void)lc_strlcpy(m->name, series, METRIC_NAME_MAX);
    m->v = 0;
    m->fv = 0;
  }
  if (m != NULL) {
    m->is_float = isf;
    if (isf)
      m->fv = fv;
    else
      m->v = set ? v : m->v + v;
  }
  pthread_mutex_unlock(&g_mlock);
}

void lc_metric_add(const char *series, uint64_t v) { metric_update(series, v, 0, 0, 0); }

void lc_metric_set(const char *series, uint64_t v) { metric_update(series, v, 0, 1, 0); }

void lc_metric_setf(const char *series, double v) { metric_update(series, 0, v, 1, 1); }

void lc_metric_help(const char *family, const char *type, const char *help) {
  size_t i;
  if (family == NULL || type == NULL || !metric_name_ok(family) || strchr(family, '{')) return;
  if (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0 &&
      strcmp(type, "histogram") != 0)
    return;
  pthread_mutex_lock(&g_mlock);
  for (i = 0; i < g_nhelp; i++)
    if (strcmp(g_help[i].family, family) == 0) break;
  if (i < HELP_MAX) {
    metric_help *h = &g_help[i];
    (void)lc_strlcpy(h->family, family, sizeof h->family);
    (void)lc_strlcpy(h->type, type, sizeof h->type);
    (void)lc_strlcpy(h->help, help ? help : family, sizeof h->help);
    for (char *p = h->help; *p; p++)
      if (*p == '\n' || *p == '\\') *p = ' ';
    if (i == g_nhelp) g_nhelp++;
  }
  pthread_mutex_unlock(&g_mlock);
}

int lc_metric_sql(lc_db_pool *pool, const char *family, const char *label, const char *help,
                  const char *sql) {
  sql_gauge *g;
  if (pool == NULL || family == NULL || sql == NULL || !metric_name_ok(family) ||
      strchr(family, '{') || strlen(sql) >= sizeof g->sql)
    return LC_ERR_PARAM;
  if (label != NULL && (strlen(label) >= sizeof g->label || !metric_name_ok(label)))
    return LC_ERR_PARAM;
  pthread_mutex_lock(&g_scrape_lock);
  if (g_nsqlg >= SQL_GAUGE_MAX) {
    pthread_mutex_unlock(&g_scrape_lock);
    return LC_ERR;
  }
  g = &g_sqlg[g_nsqlg++];
  g->pool = pool;
  (void)lc_strlcpy(g->family, family, sizeof g->family);
  (void)lc_strlcpy(g->label, label ? label : "", sizeof g->label);
  (void)lc_strlcpy(g->sql, sql, sizeof g->sql);
  pthread_mutex_unlock(&g_scrape_lock);
  lc_metric_help(family, "gauge", help);
  return LC_OK;
}

/* Runs the SQL gauges (on scrape). A failing query keeps the last values. */
static void refresh_sql_gauges(void) {
  size_t i;
  int r;
  pthread_mutex_lock(&g_scrape_lock);
  for (i = 0; i < g_nsqlg; i++) {
    sql_gauge *g = &g_sqlg[i];
    PGconn *c = NULL;
    PGresult *res = NULL;
    char err[LC_ERR_LEN];
    if (lc_db_acquire(g->pool, &c, err) != LC_OK) continue;
    if (lc_db_exec(c, g->sql, 0, NULL, &res, err) == LC_OK) {
      int cols = PQnfields(res);
      for (r = 0; r < PQntuples(res) && r < SQL_GAUGE_ROWS && cols >= 1; r++) {
        char series[METRIC_NAME_MAX], lv[48];
        const char *val = PQgetvalue(res, r, cols - 1);
        if (g->label[0] != '\0' && cols >= 2) {
          (void)lc_strlcpy(lv, PQgetvalue(res, r, 0), sizeof lv);
          for (char *p = lv; *p; p++)
            if (!name_char_ok(*p, 1) && *p != '-' && *p != '.') *p = '_';
          snprintf(series, sizeof series, "%s{%s=\"%s\"}", g->family, g->label, lv);
        } else {
          (void)lc_strlcpy(series, g->family, sizeof series);
        }
        lc_metric_setf(series, PQgetisnull(res, r, cols - 1) ? 0 : strtod(val, NULL));
      }
      PQclear(res);
    }
    lc_db_release(g->pool, c);
  }
  pthread_mutex_unlock(&g_scrape_lock);
}

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

/* Growable text buffer for the exposition. */
typedef struct {
  char *p;
  size_t len, cap;
} tbuf;

static void tb_printf(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tbuf *b, const char *fmt, ...) {
  va_list ap;
  int n;
  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    b->cap = b->cap * 2 + (size_t)n;
    b->p = lc_xrealloc(b->p, b->cap);
  }
}

static size_t family_len(const char *name) {
  const char *b = strchr(name, '{');
  return b ? (size_t)(b - name) : strlen(name);
}

static int cmp_metric(const void *a, const void *b) {
  const metric *x = *(const metric *const *)a, *y = *(const metric *const *)b;
  size_t lx = family_len(x->name), ly = family_len(y->name);
  int c = strncmp(x->name, y->name, lx < ly ? lx : ly);
  if (c != 0) return c;
  if (lx != ly) return lx < ly ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* # HELP / # TYPE of a family (registered, else derived from the name). */
static void family_header(tbuf *b, const char *fam, size_t flen, const char *deftype) {
  size_t i;
  for (i = 0; i < g_nhelp; i++) {
    if (strlen(g_help[i].family) == flen && strncmp(g_help[i].family, fam, flen) == 0) {
      tb_printf(b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)flen, fam, g_help[i].help,
                (int)flen, fam, g_help[i].type);
      return;
    }
  }
  tb_printf(b, "# HELP %.*s %.*s\n# TYPE %.*s %s\n", (int)flen, fam, (int)flen, fam, (int)flen,
            fam, deftype);
}

static void render_http(tbuf *b, const char *app) {
  size_t i, k;
  tb_printf(b, "# HELP http_requests_total Requests answered by %s, by route template, method "
               "and status.\n# TYPE http_requests_total counter\n", app);
  for (i = 0; i < g_nhttp; i++)
    tb_printf(b, "http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %" PRIu64 "\n",
              g_http[i].route, g_http[i].method, g_http[i].status, g_http[i].count);
  tb_printf(b, "# HELP http_request_duration_seconds Request latency (first to last callback), "
               "by route template, method and status.\n"
               "# TYPE http_request_duration_seconds histogram\n");
  for (i = 0; i < g_nhttp; i++) {
    const http_series *h = &g_http[i];
    uint64_t cum = 0;
    for (k = 0; k < NBUCKETS; k++) {
      cum += h->buckets[k];
      tb_printf(b,
                "http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",status=\"%d\","
                "le=\"%g\"} %" PRIu64 "\n",
                h->route, h->method, h->status, k_buckets[k], cum);
    }
    tb_printf(b,
              "http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",status=\"%d\","
              "le=\"+Inf\"} %" PRIu64 "\n"
              "http_request_duration_seconds_sum{route=\"%s\",method=\"%s\",status=\"%d\"} %.6f\n"
              "http_request_duration_seconds_count{route=\"%s\",method=\"%s\",status=\"%d\"} "
              "%" PRIu64 "\n",
              h->route, h->method, h->status, h->count, h->route, h->method, h->status, h->sum,
              h->route, h->method, h->status, h->count);
  }
}

static int cb_metrics(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const svc_slot *s = ud;
  tbuf b = {lc_xmalloc(16384), 0, 16384};
  const metric *sorted[METRIC_MAX];
  size_t i, n;
  (void)req;
  refresh_sql_gauges();
  tb_printf(&b, "# HELP %s_up 1 while the daemon runs.\n# TYPE %s_up gauge\n%s_up 1\n", s->app,
            s->app, s->app);
  pthread_mutex_lock(&g_hlock);
  render_http(&b, s->app);
  pthread_mutex_unlock(&g_hlock);
  pthread_mutex_lock(&g_mlock);
  n = g_nmetrics;
  for (i = 0; i < n; i++) sorted[i] = &g_metrics[i];
  qsort(sorted, n, sizeof sorted[0], cmp_metric);
  for (i = 0; i < n; i++) {
    const metric *m = sorted[i];
    size_t fl = family_len(m->name);
    if (i == 0 || fl != family_len(sorted[i - 1]->name) ||
        strncmp(m->name, sorted[i - 1]->name, fl) != 0) {
      int total = fl > 6 && strncmp(m->name + fl - 6, "_total", 6) == 0;
      family_header(&b, m->name, fl, total && !m->is_float ? "counter" : "gauge");
    }
    if (m->is_float)
      tb_printf(&b, "%s %.15g\n", m->name, m->fv);
    else
      tb_printf(&b, "%s %" PRIu64 "\n", m->name, m->v);
  }
  pthread_mutex_unlock(&g_mlock);
  ulfius_set_binary_body_response(resp, 200, b.p, b.len);
  free(b.p);
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

/* Memory flatness (issue 8): in thread-per-connection mode every
 * connection's TLS records, MHD pool and libcurl state are malloc'd in its
 * thread and freed when it closes, but glibc keeps freed chunks inside its
 * heaps, so RSS stays at the peak of the largest burst of connections
 * (gateway: 13 MiB idle -> 36 MiB after 400 connections, 18 MiB after a
 * trim). When a connection closes and either no connection is left or the
 * last trim is SVC_TRIM_EVERY_MS old, malloc_trim(0) hands the free pages
 * back. Steady keep-alive load closes nothing, so it costs nothing there. */
#define SVC_TRIM_EVERY_MS 10000
static atomic_int g_open_conns;
static _Atomic int64_t g_last_trim_ms;

static void mhd_connection_notify(void *cls, struct MHD_Connection *c, void **sock_ctx,
                                  enum MHD_ConnectionNotificationCode toe) {
  (void)cls;
  (void)c;
  (void)sock_ctx;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    atomic_fetch_add(&g_open_conns, 1);
    return;
  }
  int left = atomic_fetch_sub(&g_open_conns, 1) - 1;
  int64_t now = lc_mono_ms(), last = atomic_load(&g_last_trim_ms);
  if ((left <= 0 || now - last >= SVC_TRIM_EVERY_MS) &&
      atomic_compare_exchange_strong(&g_last_trim_ms, &last, now))
    malloc_trim(0);
}

int lc_svc_start(struct _u_instance *inst, const char *key_pem, const char *cert_pem,
                 unsigned int max_conns, unsigned int idle_timeout_s, char err[LC_ERR_LEN]) {
  struct MHD_OptionItem ops[12];
  unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                       MHD_USE_ERROR_LOG;
  int i = 0, streams, rc;
  svc_hook *h;
  if (inst == NULL) return lc_err_set(err, LC_ERR_PARAM, "svc: no instance");
  if ((key_pem == NULL) != (cert_pem == NULL))
    return lc_err_set(err, LC_ERR_PARAM, "svc: TLS needs both key and certificate");
  if (max_conns == 0) max_conns = 512;
  if (idle_timeout_s == 0) idle_timeout_s = 30;
  /* stream routes and request guards both need our handler in front */
  streams = has_stream_routes(inst) || has_guard(inst);
  /* The two options ulfius' API.md marks mandatory (with stream routes, our
   * wrappers, which call ulfius' own; see "streaming routes" below). */
  if (streams) {
    ops[i++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)svc_completed, NULL};
    ops[i++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)svc_uri_log, NULL};
    ops[i++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)svc_notify_conn,
                                       NULL};
  } else {
    ops[i++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                       (intptr_t)mhd_request_completed, NULL};
    ops[i++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)ulfius_uri_logger,
                                       NULL};
    ops[i++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
                                       (intptr_t)mhd_connection_notify, NULL};
  }
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
  if (!streams) {
    if (ulfius_start_framework_with_mhd_options(inst, flags, ops) != U_OK)
      return lc_err_set(err, LC_ERR_IO, "svc: cannot start HTTP server on port %u", inst->port);
    return LC_OK;
  }
  pthread_mutex_lock(&g_hook_lock);
  if (g_nhooks >= LC_SVC_MAX_INSTANCES) {
    pthread_mutex_unlock(&g_hook_lock);
    return lc_err_set(err, LC_ERR, "svc: too many instances");
  }
  h = &g_hooks[g_nhooks++];
  memset(h, 0, sizeof *h);
  h->inst = inst;
  g_hook_pending = h;
  rc = ulfius_start_framework_with_mhd_options(inst, flags, ops);
  g_hook_pending = NULL;
  pthread_mutex_unlock(&g_hook_lock);
  if (rc != U_OK)
    return lc_err_set(err, LC_ERR_IO, "svc: cannot start HTTP server on port %u", inst->port);
  if (!h->hooked) {
    ulfius_stop_framework(inst);
    return lc_err_set(err, LC_ERR, "svc: the streaming hook did not run (MHD_start_daemon is "
                                   "not interposed); stream routes unavailable");
  }
  return LC_OK;
}

int lc_svc_route(struct _u_instance *inst, const char *method, const char *path,
                 unsigned int priority,
                 int (*cb)(const struct _u_request *, struct _u_response *, void *), void *ud) {
  int idx;
  if (inst == NULL || method == NULL || path == NULL || cb == NULL) return LC_ERR_PARAM;
  idx = atomic_fetch_add(&g_nwraps, 1);
  if (idx < ROUTE_WRAP_MAX) {
    route_wrap *w = &g_wraps[idx];
    w->cb = cb;
    w->ud = ud;
    (void)lc_strlcpy(w->route, path, sizeof w->route);
    /* The label value must stay valid in the exposition: no quote/backslash. */
    for (char *p = w->route; *p; p++)
      if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = '_';
    cb = cb_wrapped;
    ud = w;
  } else {
    lc_log_warn("lc_svc_route - %s %s registered without request metrics (table full)", method,
                path);
  }
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

/* ---- streaming routes ----
 *
 * libulfius starts libmicrohttpd with its own static access handler, which
 * buffers every body. MHD_start_daemon below is defined in the executable
 * (libcommon is a static library linked into each daemon), so it interposes
 * the symbol libulfius calls: for an instance with stream routes it records
 * ulfius' handler and starts MHD through MHD_start_daemon_va with
 * svc_access in front of it. svc_access serves the stream routes itself and
 * passes every other call, unchanged, to ulfius' handler. lc_svc_start checks
 * that the hook ran (else it fails: stream routes would silently be lost).
 * Per connection state lives in MHD's socket context (NOTIFY_CONNECTION);
 * the raw request target is taken from the URI log callback, which then
 * calls ulfius' own. */

#define STREAM_ROUTE_MAX 8
#define STREAM_URI_MAX 8192

typedef struct {
  struct _u_instance *inst;
  const svc_slot *slot;
  char method[16];
  char path[HTTP_ROUTE_MAX];
  lc_stream_ops ops;
  void *ud;
} stream_route;

static stream_route g_sroutes[STREAM_ROUTE_MAX];
static int g_nsroutes;


enum { SR_READING = 0, SR_DRAINING, SR_ANSWERED };

typedef struct {
  const stream_route *r;
  struct MHD_Connection *conn;
  struct _u_request req;
  struct _u_response resp;
  void *state;
  int phase;
  int began;     /* begin ran: done() is owed */
  int ended;     /* end ran */
  int queued;    /* the answer was handed to MHD */
  int64_t clen;  /* -1 = no Content-Length */
  uint64_t received;
  int64_t start_ns;
} stream_req;

typedef struct {
  char *uri;     /* raw target of the current request (URI log callback) */
  stream_req *s; /* the current request when it is a stream route */
  int fresh;     /* set by the URI log callback: the next access call is a request's first */
} svc_conn;

static void stream_free(stream_req *s, int completed) {
  if (s == NULL) return;
  if (s->began && s->r->ops.done != NULL) s->r->ops.done(s->state, completed);
  ulfius_clean_request(&s->req);
  ulfius_clean_response(&s->resp);
  free(s);
}

static svc_conn *conn_ctx(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci != NULL ? ci->socket_context : NULL;
}

static void svc_notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                            enum MHD_ConnectionNotificationCode code) {
  /* the connection count and memory give-back of every instance */
  mhd_connection_notify(cls, c, NULL, code);
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    *socket_context = calloc(1, sizeof(svc_conn));
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
    svc_conn *sc = *socket_context;
    stream_free(sc->s, 0);
    free(sc->uri);
    free(sc);
    *socket_context = NULL;
  }
}

static void *svc_uri_log(void *cls, const char *uri, struct MHD_Connection *c) {
  svc_conn *sc = conn_ctx(c);
  if (sc != NULL) {
    free(sc->uri);
    sc->uri = (uri != NULL && strlen(uri) < STREAM_URI_MAX) ? strdup(uri) : NULL;
    sc->fresh = 1;
  }
  return ulfius_uri_logger(cls, uri);
}

static void svc_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe) {
  svc_conn *sc = conn_ctx(c);
  if (sc != NULL && sc->s != NULL) {
    stream_req *s = sc->s;
    sc->s = NULL;
    stream_free(s, s->ended && s->queued && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
  }
  mhd_request_completed(cls, c, con_cls, toe);
}

int lc_svc_stream_route(struct _u_instance *inst, const char *method, const char *path,
                        const lc_stream_ops *ops, void *ud) {
  const svc_slot *slot = NULL;
  stream_route *r;
  int i, nslots = atomic_load(&g_nslots);
  if (inst == NULL || method == NULL || path == NULL || ops == NULL || ops->begin == NULL ||
      ops->data == NULL || ops->end == NULL || strlen(method) >= sizeof r->method ||
      strlen(path) >= sizeof r->path || path[0] != '/')
    return LC_ERR_PARAM;
  for (i = 0; i < nslots && i < LC_SVC_MAX_INSTANCES; i++)
    if (inst->bind_address == &g_slots[i].addr) slot = &g_slots[i];
  if (slot == NULL) return LC_ERR_PARAM;
  pthread_mutex_lock(&g_hook_lock);
  /* the same instance, method and path again (an instance struct reused
   * after ulfius_clean_instance): the new registration replaces the old */
  for (r = NULL, i = 0; i < g_nsroutes && r == NULL; i++)
    if (g_sroutes[i].inst == inst && strcmp(g_sroutes[i].method, method) == 0 &&
        strcmp(g_sroutes[i].path, path) == 0)
      r = &g_sroutes[i];
  if (r == NULL && g_nsroutes >= STREAM_ROUTE_MAX) {
    pthread_mutex_unlock(&g_hook_lock);
    return LC_ERR;
  }
  if (r == NULL) r = &g_sroutes[g_nsroutes++];
  r->inst = inst;
  r->slot = slot;
  (void)lc_strlcpy(r->method, method, sizeof r->method);
  (void)lc_strlcpy(r->path, path, sizeof r->path);
  r->ops = *ops;
  r->ud = ud;
  pthread_mutex_unlock(&g_hook_lock);
  return LC_OK;
}

static int has_stream_routes(const struct _u_instance *inst) {
  int i;
  for (i = 0; i < g_nsroutes; i++)
    if (g_sroutes[i].inst == inst) return 1;
  return 0;
}

static const stream_route *stream_match(const struct _u_instance *inst, const char *method,
                                        const char *uri) {
  size_t plen;
  int i;
  if (uri == NULL || method == NULL) return NULL;
  plen = strcspn(uri, "?");
  for (i = 0; i < g_nsroutes; i++) {
    const stream_route *r = &g_sroutes[i];
    if (r->inst == inst && strcmp(r->method, method) == 0 && strlen(r->path) == plen &&
        strncmp(r->path, uri, plen) == 0)
      return r;
  }
  return NULL;
}

/* ulfius' map filling: a repeated key's values are joined with ','. */
static enum MHD_Result fill_map(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value) {
  struct _u_map *m = cls;
  const char *old;
  (void)kind;
  if (key == NULL) return MHD_YES;
  old = u_map_get(m, key);
  if (old != NULL) {
    size_t n = strlen(old) + strlen(value ? value : "") + 2;
    char *j = malloc(n);
    if (j == NULL) return MHD_NO;
    snprintf(j, n, "%s,%s", old, value ? value : "");
    u_map_put(m, key, j);
    free(j);
  } else {
    u_map_put(m, key, value ? value : "");
  }
  return MHD_YES;
}

static int stream_init_req(stream_req *s, struct MHD_Connection *c, const char *method,
                           const char *uri) {
  const union MHD_ConnectionInfo *ci;
  if (ulfius_init_request(&s->req) != U_OK) return LC_ERR;
  if (ulfius_init_response(&s->resp) != U_OK) return LC_ERR;
  s->req.http_verb = o_strdup(method);
  s->req.http_url = o_strdup(uri);
  s->req.url_path = o_strndup(uri, strcspn(uri, "?"));
  if (s->req.http_verb == NULL || s->req.http_url == NULL || s->req.url_path == NULL)
    return LC_ERR;
  MHD_get_connection_values(c, MHD_HEADER_KIND, fill_map, s->req.map_header);
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, fill_map, s->req.map_url);
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (ci != NULL && ci->client_addr != NULL) {
    size_t n = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                      : sizeof(struct sockaddr_in);
    s->req.client_address = o_malloc(sizeof(struct sockaddr_storage));
    if (s->req.client_address == NULL) return LC_ERR;
    memset(s->req.client_address, 0, sizeof(struct sockaddr_storage));
    memcpy(s->req.client_address, ci->client_addr, n);
  }
  return LC_OK;
}

/* Hands s->resp to the connection, records and logs the request. */
static enum MHD_Result stream_queue(stream_req *s) {
  struct MHD_Response *m;
  const char **keys;
  enum MHD_Result ret;
  unsigned int status = (unsigned int)s->resp.status;
  size_t i;
  double secs = (double)(mono_ns() - s->start_ns) / 1e9;
  if (status < 100 || status > 599) status = 500;
  m = MHD_create_response_from_buffer(s->resp.binary_body_length,
                                      s->resp.binary_body ? s->resp.binary_body : (void *)"",
                                      MHD_RESPMEM_MUST_COPY);
  if (m == NULL) return MHD_NO;
  keys = u_map_enum_keys(s->resp.map_header);
  for (i = 0; keys != NULL && keys[i] != NULL; i++) {
    const char *v = u_map_get(s->resp.map_header, keys[i]);
    if (v != NULL && strpbrk(v, "\r\n") == NULL) MHD_add_response_header(m, keys[i], v);
  }
  ret = MHD_queue_response(s->conn, status, m);
  MHD_destroy_response(m);
  s->phase = SR_ANSWERED;
  s->queued = ret == MHD_YES;
  lc_svc_observe(s->r->path, s->r->method, (int)status, secs);
  lc_log_info("http %s %s -> %u (%.1f ms)", s->r->method, s->r->path, status, secs * 1e3);
  lc_log_set_rid(NULL);
  return ret;
}

/* An early answer (begin or data refused, or a chunked body past the
 * limit): libmicrohttpd 0.9.x queues answers only before the body or after
 * all of it, so the rest of the body is read and discarded (never stored)
 * and the answer is sent at its end. A Content-Length body is bounded by
 * max_body already; a chunked one may be drained for another max_body bytes,
 * then the connection is closed without an answer. */
static enum MHD_Result stream_answer_early(stream_req *s) {
  s->phase = SR_DRAINING;
  return MHD_YES;
}

/* ---- request guards (lc_svc_guard) ---- */

typedef struct {
  struct _u_instance *inst;
  const char *ascii[LC_SVC_GUARD_HEADERS_MAX + 1];
  size_t ascii_max;
  int (*decorate)(const struct _u_request *req, struct _u_response *resp, void *ud);
  void *decorate_ud;
  stream_route route; /* "limits": the series and log line of a guard answer */
} svc_guard;

static svc_guard g_guards[LC_SVC_MAX_INSTANCES];
static int g_nguards;

int lc_svc_guard(struct _u_instance *inst, const lc_svc_guard_cfg *cfg) {
  const svc_slot *slot = NULL;
  svc_guard *g = NULL;
  int i, n = 0, nslots = atomic_load(&g_nslots);
  if (inst == NULL || cfg == NULL) return LC_ERR_PARAM;
  for (i = 0; i < nslots && i < LC_SVC_MAX_INSTANCES; i++)
    if (inst->bind_address == &g_slots[i].addr) slot = &g_slots[i];
  if (slot == NULL) return LC_ERR_PARAM;
  while (cfg->ascii_headers != NULL && cfg->ascii_headers[n] != NULL) n++;
  if (n > LC_SVC_GUARD_HEADERS_MAX) return LC_ERR_PARAM;
  pthread_mutex_lock(&g_hook_lock);
  for (i = 0; i < g_nguards && g == NULL; i++)
    if (g_guards[i].inst == inst) g = &g_guards[i];
  if (g == NULL && g_nguards >= LC_SVC_MAX_INSTANCES) {
    pthread_mutex_unlock(&g_hook_lock);
    return LC_ERR;
  }
  if (g == NULL) g = &g_guards[g_nguards++];
  memset(g, 0, sizeof *g);
  g->inst = inst;
  for (i = 0; i < n; i++) g->ascii[i] = cfg->ascii_headers[i];
  g->ascii_max = cfg->ascii_max > 0 ? cfg->ascii_max : 255;
  g->decorate = cfg->decorate;
  g->decorate_ud = cfg->decorate_ud;
  g->route.inst = inst;
  g->route.slot = slot;
  (void)lc_strlcpy(g->route.method, "*", sizeof g->route.method);
  (void)lc_strlcpy(g->route.path, "limits", sizeof g->route.path);
  pthread_mutex_unlock(&g_hook_lock);
  return LC_OK;
}

static const svc_guard *guard_of(const struct _u_instance *inst) {
  int i;
  for (i = 0; i < g_nguards; i++)
    if (g_guards[i].inst == inst) return &g_guards[i];
  return NULL;
}

static int has_guard(const struct _u_instance *inst) { return guard_of(inst) != NULL; }

typedef struct {
  const svc_guard *g;
  const char *bad; /* the first header name refused */
} guard_scan;

/* Every occurrence of every strict header, with its raw length (a NUL inside
 * a value shows as a length longer than the C string). */
static enum MHD_Result guard_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size) {
  guard_scan *gs = cls;
  (void)kind;
  (void)key_size;
  for (int i = 0; key != NULL && gs->g->ascii[i] != NULL; i++) {
    if (strcasecmp(key, gs->g->ascii[i]) != 0) continue;
    int ok = value != NULL && value_size >= 1 && value_size <= gs->g->ascii_max;
    for (size_t j = 0; ok && j < value_size; j++)
      ok = (unsigned char)value[j] >= 0x21 && (unsigned char)value[j] <= 0x7e;
    if (!ok) {
      gs->bad = gs->g->ascii[i];
      return MHD_NO;
    }
  }
  return MHD_YES;
}

/* The raw request, before ulfius reads its body or copies its headers:
 * 0 = pass it on, else the status to answer with and why. */
static int guard_refuse(const svc_guard *g, struct MHD_Connection *c, const char *uri,
                        char *why, size_t whylen) {
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
  guard_scan gs = {g, NULL};
  int64_t n;
  if (cl != NULL && lc_parse_i64(cl, 0, INT64_MAX, &n) != LC_OK) {
    snprintf(why, whylen, "invalid Content-Length");
    return 400;
  }
  if (cl != NULL && (uint64_t)n > (uint64_t)g->route.slot->max_body) {
    snprintf(why, whylen, "request body too large");
    return 413;
  }
  /* A percent-encoded NUL would be decoded into C strings and cut an id,
   * cursor or name short. */
  if (uri != NULL && strcasestr(uri, "%00") != NULL) {
    snprintf(why, whylen, "the request target contains an encoded NUL");
    return 400;
  }
  MHD_get_connection_values_n(c, MHD_HEADER_KIND, guard_header, &gs);
  if (gs.bad != NULL) {
    snprintf(why, whylen, "%s must be 1..%zu visible ASCII characters", gs.bad, g->ascii_max);
    return 400;
  }
  return 0;
}

/* Answers a refused request at once (before its body); the rest of the body
 * is read and discarded by the stream machinery. */
static enum MHD_Result guard_answer(const svc_guard *g, svc_conn *sc, struct MHD_Connection *c,
                                    const char *method, int status, const char *why) {
  stream_req *s = calloc(1, sizeof *s);
  if (s == NULL) return MHD_NO;
  s->r = &g->route;
  s->conn = c;
  s->clen = -1;
  s->start_ns = mono_ns();
  sc->s = s;
  if (stream_init_req(s, c, method, sc->uri) != LC_OK) return MHD_NO;
  if (g->decorate != NULL) (void)g->decorate(&s->req, &s->resp, g->decorate_ud);
  lc_problem(&s->resp, status, NULL, why);
  lc_log_info("http %s - refused before the body: %s", method, why);
  return stream_queue(s);
}

static enum MHD_Result svc_access(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  svc_hook *h = cls;
  svc_conn *sc = conn_ctx(c);
  stream_req *s = sc != NULL ? sc->s : NULL;
  if (s == NULL) {
    const stream_route *r;
    const char *cl;
    int ret;
    if (sc != NULL && sc->fresh) { /* first call of a request (*con_cls is ulfius') */
      const svc_guard *g = guard_of(h->inst);
      sc->fresh = 0;
      char why[128];
      int st = g != NULL ? guard_refuse(g, c, sc->uri, why, sizeof why) : 0;
      if (st != 0) return guard_answer(g, sc, c, method, st, why);
    }
    if (sc == NULL || sc->uri == NULL || (r = stream_match(h->inst, method, sc->uri)) == NULL)
      return h->dh(h->dh_cls, c, url, method, version, upload_data, upload_data_size, con_cls);
    s = calloc(1, sizeof *s);
    if (s == NULL) return MHD_NO;
    s->r = r;
    s->conn = c;
    s->clen = -1;
    s->start_ns = mono_ns();
    sc->s = s;
    if (stream_init_req(s, c, method, sc->uri) != LC_OK) return MHD_NO;
    cl = u_map_get_case(s->req.map_header, "Content-Length");
    if (cl != NULL && lc_parse_i64(cl, 0, INT64_MAX, &s->clen) != LC_OK) {
      lc_problem(&s->resp, 400, NULL, "invalid Content-Length");
      return stream_queue(s);
    }
    if (s->clen >= 0 && (uint64_t)s->clen > (uint64_t)r->slot->max_body) {
      lc_problem(&s->resp, 413, NULL, "request body too large");
      return stream_queue(s);
    }
    s->began = 1;
    ret = r->ops.begin(&s->req, &s->resp, &s->state, r->ud);
    if (ret != U_CALLBACK_CONTINUE) {
      /* A client waiting for "100 Continue" has sent no body: answer now. */
      const char *ex = u_map_get_case(s->req.map_header, "Expect");
      if (ex != NULL && strcasestr(ex, "100-continue") != NULL) return stream_queue(s);
      return stream_answer_early(s);
    }
    return MHD_YES;
  }
  if (s->phase == SR_ANSWERED) { /* answered at once: ignore what still comes */
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    s->received += n;
    if (s->phase == SR_DRAINING) {
      if (s->clen < 0 && s->received / 2 > s->r->slot->max_body) {
        lc_log_warn("http %s %s - chunked body far over the limit, connection closed",
                    s->r->method, s->r->path);
        lc_svc_observe(s->r->path, s->r->method, 413, (double)(mono_ns() - s->start_ns) / 1e9);
        s->phase = SR_ANSWERED;
        return MHD_NO;
      }
      return MHD_YES;
    }
    if (s->clen < 0 && s->received > s->r->slot->max_body) {
      ulfius_clean_response(&s->resp);
      ulfius_init_response(&s->resp);
      lc_problem(&s->resp, 413, NULL, "request body too large");
      return stream_answer_early(s);
    }
    if (s->r->ops.data(s->state, upload_data, n, &s->resp) != LC_OK)
      return stream_answer_early(s);
    return MHD_YES;
  }
  /* the whole body is in */
  if (s->phase == SR_READING) {
    s->ended = 1;
    (void)s->r->ops.end(s->state, &s->req, &s->resp);
  }
  return stream_queue(s);
}

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port,
                                    MHD_AcceptPolicyCallback apc, void *apc_cls,
                                    MHD_AccessHandlerCallback dh, void *dh_cls, ...) {
  struct MHD_Daemon *d;
  svc_hook *h = g_hook_pending;
  va_list ap;
  va_start(ap, dh_cls);
  if (h != NULL && dh_cls == (void *)h->inst && dh != svc_access) {
    h->dh = dh;
    h->dh_cls = dh_cls;
    h->hooked = 1;
    dh = svc_access;
    dh_cls = h;
  }
  d = MHD_start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
  va_end(ap);
  return d;
}
