/* svc.h - daemon lifecycle: signals, HTTP server start with limits, ops
 * endpoints (/healthz, /readyz, /metrics), route priorities, counters.
 *
 * main() order: lc_global_init, lc_svc_block_signals (before any thread),
 * lc_cfg_load, lc_log_init, pools, lc_svc_instance_init, routes,
 * lc_svc_start, lc_svc_wait (returns on SIGINT/SIGTERM), stop workers, drain,
 * ulfius_stop_framework, free. */
#ifndef LC_SVC_H
#define LC_SVC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <ulfius.h>
#include "lc/err.h"

/* Route priorities (lower runs first). */
enum { LC_PRIO_LIMITS = 0, LC_PRIO_AUTH = 1, LC_PRIO_PRE_APP = 2, LC_PRIO_APP = 3, LC_PRIO_POST = 4 };

/* Set once a stop signal arrived; worker threads poll it. */
extern atomic_bool lc_svc_stopping;

/* Blocks SIGINT, SIGTERM, SIGHUP and ignores SIGPIPE in the calling thread
 * (inherited by threads created afterwards). Call first in main(). */
int lc_svc_block_signals(void);
/* Waits (sigwait) for SIGINT/SIGTERM, sets lc_svc_stopping, returns the signal. */
int lc_svc_wait(void);

/* Initialises inst on bind_ip:port with max_body bytes (0 = 1 MiB) and adds a
 * priority-LC_PRIO_LIMITS callback on every route answering 413 when
 * Content-Length exceeds max_body (before the body is used), and a catch-all
 * "*" endpoint at priority LC_PRIO_POST + 1 answering 404 problem+json: ulfius
 * runs every matching endpoint, so without it an unknown path would get an
 * empty 200 (handlers must return U_CALLBACK_COMPLETE once they answered).
 * The catch-all only answers when the response is untouched (status 200, no
 * body). A Content-Length that is not a number gets 400. Form bodies are not
 * parsed into map_post_body (allowed_post_processor = U_POST_PROCESS_NONE):
 * use request->binary_body. Free with ulfius_clean_instance(). */
int lc_svc_instance_init(struct _u_instance *inst, const char *bind_ip, int port,
                         size_t max_body, char err[LC_ERR_LEN]);

typedef int (*lc_ready_fn)(void *ud); /* 1 = ready */
/* Adds GET /healthz (always 200 while running), GET /readyz (200 when
 * ready(ud), else 503; ready may be NULL = always ready) and GET /metrics
 * (Prometheus text format 0.0.4, each family with # HELP and # TYPE:
 * "<app>_up 1", the request series below, the lc_metric_* series and the
 * SQL gauges, refreshed on scrape). inst must come from
 * lc_svc_instance_init (else LC_ERR_PARAM).
 *
 * Request series (every endpoint registered through lc_svc_route, the
 * 400/413 limits answers as route "limits", the catch-all 404 as route
 * "unmatched"):
 *   http_requests_total{route,method,status}              counter
 *   http_request_duration_seconds{route,method,status}    histogram
 * route is the registered template (never the raw path), so the series
 * count is bounded (at most 192 route/method/status keys; beyond that one
 * route="other" series). Each answered request also logs one line
 * "http <METHOD> <route> -> <status> (<ms> ms)" at info (ops routes at
 * debug) carrying the request id. */
int lc_svc_add_ops(struct _u_instance *inst, const char *app, lc_ready_fn ready, void *ud);

/* Starts the framework (HTTPS when key_pem and cert_pem are PEM contents, not
 * paths; TLS 1.2+), with a connection limit (0 = 512) and an idle timeout in
 * seconds (0 = 30); one thread per connection, as ulfius does by default. */
int lc_svc_start(struct _u_instance *inst, const char *key_pem, const char *cert_pem,
                 unsigned int max_conns, unsigned int idle_timeout_s, char err[LC_ERR_LEN]);

/* Registers an endpoint and checks the result (LC_ERR on failure). The
 * callback is wrapped for the request series: the callback that ends the
 * request (returns anything but U_CALLBACK_CONTINUE / U_CALLBACK_IGNORE)
 * records path (the template), the method, the final status and the time
 * since the request's first callback. Middleware that returns CONTINUE
 * records nothing. At most 512 wrapped registrations per process (more are
 * registered unwrapped, with a warning). */
int lc_svc_route(struct _u_instance *inst, const char *method, const char *path,
                 unsigned int priority,
                 int (*cb)(const struct _u_request *, struct _u_response *, void *), void *ud);

/* Reads a whole (small, <= max) file into a new NUL-terminated buffer. */
int lc_read_file(const char *path, size_t max, char **out, size_t *len, char err[LC_ERR_LEN]);

/* Process-wide counters for /metrics (name must be a valid Prometheus metric
 * name with optional {labels}; at most 128 distinct series). Thread-safe. */
void lc_metric_add(const char *series, uint64_t v);
/* Sets a series to v (a gauge: the last value wins); same naming rules and
 * series limit as lc_metric_add. Thread-safe. */
void lc_metric_set(const char *series, uint64_t v);

/* Sets a float gauge (e.g. a balance in ETH); same rules as lc_metric_set. */
void lc_metric_setf(const char *series, double v);

/* Declares # HELP / # TYPE of a family (name without labels; type counter,
 * gauge or histogram). Families without a declaration get their own name as
 * help and type counter when the name ends in _total, else gauge. */
void lc_metric_help(const char *family, const char *type, const char *help);

/* Registers a gauge refreshed from the database on every /metrics scrape:
 * sql (no parameters) returns rows whose last column is the value. With
 * label NULL the first row sets family; else each row (at most 16) sets
 * family{label="<first column>"}. A failing query keeps the last values.
 * At most 16 registrations. Returns LC_OK or LC_ERR_PARAM / LC_ERR. */
struct lc_db_pool;
int lc_metric_sql(struct lc_db_pool *pool, const char *family, const char *label,
                  const char *help, const char *sql);

/* Records one answered request into the request series (used by the route
 * wrapper; exposed for tests and for handlers outside lc_svc_route). */
void lc_svc_observe(const char *route, const char *method, int status, double seconds);

/* ---- streaming routes ----
 * ulfius reads every request body whole into memory before any callback
 * runs. A stream route is served outside ulfius instead: lc_svc_start hooks
 * the access handler libulfius hands to libmicrohttpd (svc.c interposes
 * MHD_start_daemon for the instances that have stream routes) and serves the
 * stream routes itself, chunk by chunk as the body arrives; every other
 * request goes to ulfius' own dispatcher unchanged.
 *
 * Request flow (all calls in the connection's thread, one request at a time):
 *   begin  once the headers are in, before any body byte is read. req has
 *          http_verb, http_url (raw path+query), url_path, map_header
 *          (repeats joined with ','), map_url (query arguments) and
 *          client_address; no body. Return U_CALLBACK_CONTINUE to read the
 *          body (*state is then handed to the other calls), or fill resp and
 *          return U_CALLBACK_COMPLETE to answer without using the body.
 *   data   each chunk as it arrives (bounded by MHD's read buffer). Return
 *          LC_OK to go on; anything else = resp is filled with the answer.
 *          A blocking data call applies backpressure to the client.
 *   end    the whole body arrived (data always returned LC_OK): fill resp.
 *   done   always, once, when the request is over (answered, client gone,
 *          server stopping): completed = 1 only when end ran and the answer
 *          was handed to the connection. Frees *state.
 * Limits: a Content-Length that is not a number -> 400, above the instance's
 * max_body -> 413, both before begin; a body without Content-Length
 * (chunked) is cut at max_body with 413. When begin or data answered early,
 * the rest of the body (at most max_body bytes) is read and discarded
 * before the answer is sent (libmicrohttpd 0.9.x queues answers only before
 * or after the body), so the client can read it; a chunked body is drained
 * for at most another max_body bytes, then the connection is closed. A
 * client that sent "Expect: 100-continue" gets begin's refusal at once. Answers carry
 * resp->status, resp->map_header and resp->binary_body (no cookies, no
 * stream_callback). Every request is recorded in the request series under
 * path and logged like lc_svc_route's. */
typedef struct {
  int (*begin)(const struct _u_request *req, struct _u_response *resp, void **state, void *ud);
  int (*data)(void *state, const char *buf, size_t len, struct _u_response *resp);
  int (*end)(void *state, const struct _u_request *req, struct _u_response *resp);
  void (*done)(void *state, int completed);
} lc_stream_ops;

/* Request guards of an instance: checks of the raw request that run before
 * ulfius reads its body or copies its headers (ulfius drops header values
 * with bytes it does not like, so they cannot be
 * checked later), each answered at once with a problem (the rest of the body
 * is read and discarded, never buffered):
 *   - Content-Length not a number -> 400; above the instance's max_body ->
 *     413 (without the guard, ulfius buffers the body up to max_body first);
 *   - a request target containing %00 -> 400;
 *   - each ascii_headers name (case-insensitive, every occurrence) present
 *     with a value that is not 1..ascii_max (0 = 255) bytes of visible ASCII
 *     0x21..0x7e - a space, control or non-ASCII byte -> 400. Not a NUL:
 *     libmicrohttpd 0.9.75 cuts a header value at an embedded NUL while
 *     parsing ("k\0x" reaches every callback as "k"); no API shows it.
 * decorate (may be NULL) runs on each guard answer first (e.g. security
 * headers, request id). Answers are recorded under route "limits". Call
 * before lc_svc_start, at most once per instance (again: replaces);
 * ascii_headers strings are borrowed. LC_ERR_PARAM / LC_ERR. */
#define LC_SVC_GUARD_HEADERS_MAX 8
typedef struct {
  const char *const *ascii_headers; /* NULL-terminated, may be NULL */
  size_t ascii_max;
  int (*decorate)(const struct _u_request *req, struct _u_response *resp, void *ud);
  void *decorate_ud;
} lc_svc_guard_cfg;
int lc_svc_guard(struct _u_instance *inst, const lc_svc_guard_cfg *cfg);

/* Registers method + path (exact match of the path without the query) as a
 * stream route of inst (from lc_svc_instance_init), before lc_svc_start. At
 * most 8 per process. ops is copied; ud is borrowed. LC_ERR_PARAM / LC_ERR. */
int lc_svc_stream_route(struct _u_instance *inst, const char *method, const char *path,
                        const lc_stream_ops *ops, void *ud);

#endif
