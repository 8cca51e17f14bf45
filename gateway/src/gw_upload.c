/* gw_upload.c - see gw_upload.h. */
#include "gw_upload.h"
#include "gw_upstream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lc/http.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"

#define UP_MAX_HDR 16
#define UP_HDR_LINE 1024
/* The forward may last as long as the client takes to send (the connection
 * idle timeout cuts a stalled client): the upstream timeout times this. */
#define UP_TIMEOUT_FACTOR 4

/* Client headers forwarded besides the signed Content-Type / Idempotency-Key. */
static const char *const UP_REQ_HEADERS[] = {"Origin", "X-Requested-With", "Accept",
                                             "X-File-Name", NULL};
static const char *const UP_RESP_HEADERS[] = {"Content-Type", "Location", "Retry-After",
                                              "WWW-Authenticate", "Idempotent-Replayed",
                                              "Cache-Control", NULL};

typedef struct {
  const gw_route *route;
  const gw_ctx *ctx;
} up_binding;

static up_binding g_binding;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;        /* data or space or state changed */
  char *ring;
  size_t head, len;         /* ring content: [head, head+len) mod GW_UPLOAD_RING */
  int eof;                  /* the whole body was handed over */
  int aborted;              /* the client went away: abort the forward */
  int reader_done;          /* the forward is over (answer or failure) */
  pthread_t th;
  int started;
  /* the forward */
  char url[2048];
  char lines[UP_MAX_HDR][UP_HDR_LINE];
  const char *hdrs[LC_IAUTH_NHDR + UP_MAX_HDR + 1];
  lc_iauth_headers ih;
  lc_http_req hr;
  int64_t clen;
  lc_http_resp hres;
  int rc;
  char err[LC_ERR_LEN];
  const gw_upstream *up;
  int inst;                 /* instance picked in up->pool, -1 = base_url */
} up_state;

/* libcurl read callback (forwarding thread): waits for body bytes. */
static size_t up_read(char *dst, size_t size, size_t nitems, void *ud) {
  up_state *u = ud;
  size_t max = size * nitems, n = 0;
  pthread_mutex_lock(&u->mu);
  while (u->len == 0 && !u->eof && !u->aborted)
    pthread_cond_wait(&u->cv, &u->mu);
  if (u->aborted) {
    pthread_mutex_unlock(&u->mu);
    return LC_HTTP_READ_ABORT;
  }
  while (n < max && u->len > 0) {
    size_t run = GW_UPLOAD_RING - u->head;
    if (run > u->len)
      run = u->len;
    if (run > max - n)
      run = max - n;
    memcpy(dst + n, u->ring + u->head, run);
    u->head = (u->head + run) % GW_UPLOAD_RING;
    u->len -= run;
    n += run;
  }
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
  return n; /* 0 only at eof */
}

static void *up_thread(void *arg) {
  up_state *u = arg;
  u->rc = lc_http_do_stream(&u->hr, up_read, u, u->clen, &u->hres, u->err);
  pthread_mutex_lock(&u->mu);
  u->reader_done = 1;
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
  lc_http_thread_cleanup();
  return NULL;
}

static void up_free(up_state *u) {
  if (u == NULL)
    return;
  if (u->started) {
    pthread_mutex_lock(&u->mu);
    u->aborted = !u->eof || u->aborted;
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->th, NULL);
  }
  /* The body cannot be replayed: no retry on another instance; a transport
   * failure only backs this instance off (gw_upstream.h). */
  if (u->inst >= 0)
    gw_upstream_release(u->up->pool, u->inst, u->rc == LC_ERR_IO || u->rc == LC_ERR_TIMEOUT,
                        lc_mono_ms());
  lc_http_resp_free(&u->hres);
  pthread_mutex_destroy(&u->mu);
  pthread_cond_destroy(&u->cv);
  free(u->ring);
  free(u);
}

static int add_header(const struct _u_request *req, const char *name, up_state *u, int n) {
  const char *v = u_map_get_case(req->map_header, name);
  if (n >= UP_MAX_HDR - 1 || v == NULL || strpbrk(v, "\r\n") != NULL ||
      strlen(v) > UP_HDR_LINE - 64)
    return n;
  snprintf(u->lines[n], UP_HDR_LINE, "%s: %s", name, v);
  return n + 1;
}

static int up_begin(const struct _u_request *req, struct _u_response *resp, void **state,
                    void *ud) {
  const up_binding *b = ud;
  gw_principal p;
  char ip[64];
  int ret = gw_routes_security_headers(req, resp);
  if (ret != U_CALLBACK_CONTINUE)
    return ret;
  ret = gw_routes_admit(b->route, b->ctx, req, resp, &p, ip, sizeof(ip));
  if (ret != U_CALLBACK_CONTINUE)
    return ret;

  const gw_upstream *up = &b->ctx->up[b->route->up];
  const char *path = req->http_url;
  up_state *u = lc_xcalloc(1, sizeof(*u));
  pthread_mutex_init(&u->mu, NULL);
  pthread_cond_init(&u->cv, NULL);
  u->up = up;
  u->inst = -1;
  u->clen = -1;
  const char *cl = u_map_get_case(req->map_header, "Content-Length");
  if (cl != NULL && lc_parse_i64(cl, 0, INT64_MAX, &u->clen) != LC_OK)
    u->clen = -1; /* svc.c refused it already */
  const char *base = up->base_url;
  if (up->pool != NULL) {
    u->inst = gw_upstream_pick(up->pool, -1, lc_mono_ms());
    if (u->inst >= 0)
      base = gw_upstream_url(up->pool, u->inst);
  }
  int ul = snprintf(u->url, sizeof(u->url), "%s%s", base, path ? path : "");
  if (path == NULL || path[0] != '/' || ul < 0 || (size_t)ul >= sizeof(u->url)) {
    up_free(u);
    return lc_problem(resp, 400, "bad-request", "malformed request target");
  }
  lc_identity sid = p.id;
  lc_strlcpy(sid.client_ip, ip, sizeof(sid.client_ip));
  const char *ct = u_map_get_case(req->map_header, "Content-Type");
  const char *idem = u_map_get_case(req->map_header, "Idempotency-Key");
  if (ct != NULL && ct[0] == '\0')
    ct = NULL;
  if (idem != NULL && idem[0] == '\0')
    idem = NULL;
  if (lc_iauth_sign_unsigned(up->secret, up->secret_len, req->http_verb, path, &sid, u->clen,
                             ct, idem, (int64_t)time(NULL), &u->ih) != LC_OK) {
    up_free(u);
    return lc_problem(resp, 400, "bad-request",
                      "malformed request target, Content-Type or Idempotency-Key");
  }
  int n = 0;
  if (ct != NULL)
    snprintf(u->lines[n++], UP_HDR_LINE, "Content-Type: %s", ct);
  else
    snprintf(u->lines[n++], UP_HDR_LINE, "Content-Type:");
  if (idem != NULL)
    snprintf(u->lines[n++], UP_HDR_LINE, "Idempotency-Key: %s", idem);
  for (int i = 0; UP_REQ_HEADERS[i] != NULL; i++)
    n = add_header(req, UP_REQ_HEADERS[i], u, n);
  int h = 0;
  for (int i = 0; u->ih.ptr[i] != NULL; i++)
    u->hdrs[h++] = u->ih.ptr[i];
  for (int i = 0; i < n; i++)
    u->hdrs[h++] = u->lines[i];
  u->hdrs[h] = NULL;
  u->hr = (lc_http_req){
      .method = "POST",
      .url = u->url,
      .headers = u->hdrs,
      .timeout_ms = up->timeout_ms * UP_TIMEOUT_FACTOR,
      .max_resp = up->max_resp,
      .keep_headers = 1,
  };
  u->ring = lc_xmalloc(GW_UPLOAD_RING);
  if (pthread_create(&u->th, NULL, up_thread, u) != 0) {
    up_free(u);
    return lc_problem(resp, 503, "upstream-unavailable", "the service is temporarily unavailable");
  }
  u->started = 1;
  *state = u;
  return U_CALLBACK_CONTINUE;
}

/* Connection thread: hands the chunk to the forwarding thread, waiting for
 * room (backpressure). Once the forward is over, the rest is discarded. */
static int up_data(void *state, const char *buf, size_t len, struct _u_response *resp) {
  up_state *u = state;
  size_t off = 0;
  (void)resp;
  pthread_mutex_lock(&u->mu);
  while (off < len && !u->reader_done) {
    while (u->len == GW_UPLOAD_RING && !u->reader_done)
      pthread_cond_wait(&u->cv, &u->mu);
    if (u->reader_done)
      break;
    size_t tail = (u->head + u->len) % GW_UPLOAD_RING;
    size_t room = GW_UPLOAD_RING - u->len, run = GW_UPLOAD_RING - tail;
    if (run > room)
      run = room;
    if (run > len - off)
      run = len - off;
    memcpy(u->ring + tail, buf + off, run);
    u->len += run;
    off += run;
    pthread_cond_broadcast(&u->cv);
  }
  pthread_mutex_unlock(&u->mu);
  return LC_OK;
}

static int up_end(void *state, const struct _u_request *req, struct _u_response *resp) {
  up_state *u = state;
  (void)req;
  pthread_mutex_lock(&u->mu);
  u->eof = 1;
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
  pthread_join(u->th, NULL);
  u->started = 0;
  if (u->rc != LC_OK) {
    lc_log_error("gw_upload - %s unavailable: %s", u->up->name, u->err);
    lc_metric_add("gateway_upstream_errors_total", 1);
    if (u->rc == LC_ERR_TIMEOUT)
      return lc_problem(resp, 504, "upstream-timeout", "the service did not answer in time");
    if (u->rc == LC_ERR_TOO_LARGE)
      return lc_problem(resp, 502, "bad-gateway",
                        "the service answered more than the gateway relays");
    return lc_problem(resp, 503, "upstream-unavailable",
                      "the service is temporarily unavailable");
  }
  lc_metric_add("gateway_forwarded_total", 1);
  if (u->hres.body != NULL && u->hres.len > 0)
    ulfius_set_binary_body_response(resp, (unsigned int)u->hres.status, u->hres.body,
                                    u->hres.len);
  resp->status = u->hres.status;
  char val[UP_HDR_LINE];
  for (int i = 0; UP_RESP_HEADERS[i] != NULL; i++) {
    if (lc_http_resp_header(&u->hres, UP_RESP_HEADERS[i], val, sizeof(val)) == LC_OK)
      u_map_put(resp->map_header, UP_RESP_HEADERS[i], val);
  }
  return U_CALLBACK_COMPLETE;
}

static void up_done(void *state, int completed) {
  (void)completed;
  up_free(state);
}

int gw_upload_register(struct _u_instance *inst, const gw_route *r, const gw_ctx *ctx,
                       char err[LC_ERR_LEN]) {
  static const lc_stream_ops ops = {up_begin, up_data, up_end, up_done};
  g_binding.route = r;
  g_binding.ctx = ctx;
  if (lc_svc_stream_route(inst, r->method, r->path, &ops, &g_binding) != LC_OK)
    return lc_err_set(err, LC_ERR, "cannot register the upload stream route %s %s", r->method,
                      r->path);
  return LC_OK;
}
