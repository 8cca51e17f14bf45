/* gw_download.c - see gw_download.h. */
#include "gw_download.h"
#include "gw_upstream.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"

#define DL_HDR_LINE 1024
#define DL_MAX_REQ_HDR 8
#define DL_TIMEOUT_FACTOR 4

static const char *const DL_REQ_HEADERS[] = {"Origin", "X-Requested-With", "Accept", NULL};
/* Relayed from the upstream answer (Content-Length becomes the stream size). */
static const char *const DL_RESP_HEADERS[] = {"Content-Type", "Content-Disposition",
                                              "X-Content-Type-Options", "Cache-Control",
                                              "Retry-After", "WWW-Authenticate", NULL};
#define DL_NRESP 6

typedef struct {
  const gw_route *route;
  const gw_ctx *ctx;
} dl_binding;

static dl_binding g_binding;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;         /* bytes, room or state changed */
  char *ring;
  size_t head, len;          /* ring content: [head, head+len) mod GW_DOWNLOAD_RING */
  int hdr;                   /* 0 waiting for the upstream headers, 1 in, -1 none came */
  long status;
  int64_t clen;              /* upstream Content-Length, -1 = none */
  char hval[DL_NRESP][DL_HDR_LINE];
  char *ebody;               /* body of a non-200 answer */
  size_t elen;
  int done;                  /* the transfer is over */
  CURLcode cc;
  int aborted;               /* the client went away */
  int hdr_late;              /* no upstream headers within up->timeout_ms */
  int64_t hdr_deadline;      /* lc_mono_ms() by which the headers must be in */
  int64_t delivered;
  pthread_t th;
  int started;
  CURL *h;
  char path[2048];
  char url[2048 + GW_URL_MAX];
  char lines[DL_MAX_REQ_HDR][DL_HDR_LINE];
  lc_iauth_headers ih;
  struct curl_slist *hl;
  const gw_upstream *up;
  int inst;                  /* instance picked in up->pool, -1 = base_url */
  char rid[64];              /* the request's id, for the thread's log lines */
} dl_state;

/* Keeps an allow-listed header of the final answer; at the blank line that
 * ends it, publishes status and length (1xx blocks are skipped). */
static size_t dl_header_cb(char *ptr, size_t size, size_t nitems, void *ud) {
  dl_state *d = ud;
  size_t n = size * nitems;
  if (n <= 2 && (n == 0 || ptr[0] == '\r' || ptr[0] == '\n')) {
    long status = 0;
    curl_off_t clen = -1;
    curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200) {
      for (int i = 0; i < DL_NRESP; i++)
        d->hval[i][0] = '\0';
      return n;
    }
    curl_easy_getinfo(d->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
    pthread_mutex_lock(&d->mu);
    d->status = status;
    d->clen = clen;
    d->hdr = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return n;
  }
  const char *colon = memchr(ptr, ':', n);
  if (colon == NULL)
    return n;
  size_t nl = (size_t)(colon - ptr);
  for (int i = 0; i < DL_NRESP; i++) {
    if (strlen(DL_RESP_HEADERS[i]) != nl || strncasecmp(ptr, DL_RESP_HEADERS[i], nl) != 0)
      continue;
    const char *v = colon + 1, *end = ptr + n;
    while (v < end && (*v == ' ' || *v == '\t'))
      v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
      end--;
    size_t vl = (size_t)(end - v);
    if (vl > 0 && vl < DL_HDR_LINE && memchr(v, '\r', vl) == NULL && memchr(v, '\n', vl) == NULL) {
      memcpy(d->hval[i], v, vl);
      d->hval[i][vl] = '\0';
    }
  }
  return n;
}

/* Body bytes: a 200 body into the ring (waits for room), anything else
 * buffered (bounded). Returning less than n aborts the transfer. */
static size_t dl_write_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
  dl_state *d = ud;
  size_t n = size * nmemb, off = 0;
  pthread_mutex_lock(&d->mu);
  if (d->status != 200) {
    if (d->elen + n > GW_DOWNLOAD_ERR_MAX) {
      pthread_mutex_unlock(&d->mu);
      return 0;
    }
    if (d->ebody == NULL)
      d->ebody = lc_xmalloc(GW_DOWNLOAD_ERR_MAX + 1);
    memcpy(d->ebody + d->elen, ptr, n);
    d->elen += n;
    pthread_mutex_unlock(&d->mu);
    return n;
  }
  while (off < n) {
    while (d->len == GW_DOWNLOAD_RING && !d->aborted)
      pthread_cond_wait(&d->cv, &d->mu);
    if (d->aborted)
      break;
    size_t tail = (d->head + d->len) % GW_DOWNLOAD_RING;
    size_t run = GW_DOWNLOAD_RING - tail, room = GW_DOWNLOAD_RING - d->len;
    if (run > room)
      run = room;
    if (run > n - off)
      run = n - off;
    memcpy(d->ring + tail, ptr + off, run);
    d->len += run;
    off += run;
    pthread_cond_broadcast(&d->cv);
  }
  pthread_mutex_unlock(&d->mu);
  return off;
}

static int dl_progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  dl_state *d = ud;
  (void)dt;
  (void)dn;
  (void)ut;
  (void)un;
  pthread_mutex_lock(&d->mu);
  int a = d->aborted;
  /* the usual upstream timeout applies until the answer starts */
  if (!a && d->hdr == 0 && lc_mono_ms() > d->hdr_deadline)
    a = d->hdr_late = 1;
  pthread_mutex_unlock(&d->mu);
  return a;
}

static CURLcode dl_perform(dl_state *d) {
  const char *base = d->up->base_url;
  if (d->inst >= 0)
    base = gw_upstream_url(d->up->pool, d->inst);
  snprintf(d->url, sizeof(d->url), "%s%s", base, d->path);
  d->hdr_deadline = lc_mono_ms() + d->up->timeout_ms;
  curl_easy_reset(d->h);
  curl_easy_setopt(d->h, CURLOPT_URL, d->url);
  curl_easy_setopt(d->h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(d->h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(d->h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(d->h, CURLOPT_TIMEOUT_MS, d->up->timeout_ms * DL_TIMEOUT_FACTOR);
  curl_easy_setopt(d->h, CURLOPT_CONNECTTIMEOUT_MS,
                   d->up->timeout_ms < 5000 ? d->up->timeout_ms : 5000L);
  curl_easy_setopt(d->h, CURLOPT_HTTPHEADER, d->hl);
  curl_easy_setopt(d->h, CURLOPT_HEADERFUNCTION, dl_header_cb);
  curl_easy_setopt(d->h, CURLOPT_HEADERDATA, d);
  curl_easy_setopt(d->h, CURLOPT_WRITEFUNCTION, dl_write_cb);
  curl_easy_setopt(d->h, CURLOPT_WRITEDATA, d);
  curl_easy_setopt(d->h, CURLOPT_XFERINFOFUNCTION, dl_progress_cb);
  curl_easy_setopt(d->h, CURLOPT_XFERINFODATA, d);
  curl_easy_setopt(d->h, CURLOPT_NOPROGRESS, 0L);
  return curl_easy_perform(d->h);
}

static int dl_connect_failed(CURLcode cc) {
  return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST;
}

static void *dl_thread(void *arg) {
  dl_state *d = arg;
  lc_log_set_rid(d->rid);
  CURLcode cc = dl_perform(d);
  /* Nothing was sent: one more try on another instance (a GET is harmless). */
  if (dl_connect_failed(cc) && d->inst >= 0 && d->up->pool->n > 1) {
    gw_upstream_release(d->up->pool, d->inst, 1, lc_mono_ms());
    d->inst = gw_upstream_pick(d->up->pool, d->inst, lc_mono_ms());
    lc_metric_add("gateway_upstream_retries_total", 1);
    cc = dl_perform(d);
  }
  pthread_mutex_lock(&d->mu);
  if (d->inst >= 0) {
    gw_upstream_release(d->up->pool, d->inst,
                        d->hdr == 0 && !d->aborted && cc != CURLE_OK, lc_mono_ms());
    d->inst = -1;
  }
  d->cc = cc;
  if (d->hdr == 0)
    d->hdr = -1;
  d->done = 1;
  pthread_cond_broadcast(&d->cv);
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

static void dl_free(dl_state *d) {
  if (d == NULL)
    return;
  if (d->started) {
    pthread_mutex_lock(&d->mu);
    d->aborted = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->th, NULL);
  }
  if (d->inst >= 0)
    gw_upstream_release(d->up->pool, d->inst, 0, lc_mono_ms());
  if (d->h != NULL)
    curl_easy_cleanup(d->h);
  curl_slist_free_all(d->hl);
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->cv);
  free(d->ebody);
  free(d->ring);
  free(d);
}

/* Client side: the next bytes as they arrive; an upstream that ended early
 * or failed ends the stream with an error (MHD closes the connection). */
static ssize_t dl_stream_cb(void *ud, uint64_t off, char *out, size_t max) {
  dl_state *d = ud;
  (void)off;
  pthread_mutex_lock(&d->mu);
  while (d->len == 0 && !d->done)
    pthread_cond_wait(&d->cv, &d->mu);
  size_t n = d->len < max ? d->len : max;
  if (n == 0) {
    int ok = d->cc == CURLE_OK && (d->clen < 0 || d->delivered == d->clen);
    pthread_mutex_unlock(&d->mu);
    if (!ok)
      lc_metric_add("gateway_download_cut_total", 1);
    return ok ? U_STREAM_END : U_STREAM_ERROR;
  }
  for (size_t o = 0; o < n;) {
    size_t run = GW_DOWNLOAD_RING - d->head;
    if (run > n - o)
      run = n - o;
    memcpy(out + o, d->ring + d->head, run);
    d->head = (d->head + run) % GW_DOWNLOAD_RING;
    d->len -= run;
    o += run;
  }
  d->delivered += (int64_t)n;
  pthread_cond_broadcast(&d->cv);
  pthread_mutex_unlock(&d->mu);
  return (ssize_t)n;
}

static void dl_stream_free(void *ud) {
  dl_free(ud);
}

static void relay_headers(const dl_state *d, struct _u_response *resp) {
  for (int i = 0; i < DL_NRESP; i++)
    if (d->hval[i][0] != '\0')
      u_map_put(resp->map_header, DL_RESP_HEADERS[i], d->hval[i]);
}

static int dl_unavailable(dl_state *d, struct _u_response *resp) {
  CURLcode cc = d->cc;
  int late = d->hdr_late;
  lc_log_error("gw_download - %s unavailable: %s", d->up->name,
               late ? "no answer in time" : curl_easy_strerror(cc));
  lc_metric_add("gateway_upstream_errors_total", 1);
  dl_free(d);
  if (cc == CURLE_OPERATION_TIMEDOUT || late)
    return lc_problem(resp, 504, "upstream-timeout", "the service did not answer in time");
  if (cc == CURLE_WRITE_ERROR)
    return lc_problem(resp, 502, "bad-gateway", "the service answered more than the gateway relays");
  return lc_problem(resp, 503, "upstream-unavailable", "the service is temporarily unavailable");
}

static int cb_download(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const dl_binding *b = ud;
  gw_principal p;
  char ip[64];
  int ret = gw_routes_admit(b->route, b->ctx, req, resp, &p, ip, sizeof(ip));
  if (ret != U_CALLBACK_CONTINUE)
    return ret;

  const gw_upstream *up = &b->ctx->up[b->route->up];
  const char *path = req->http_url;
  if (path == NULL || path[0] != '/' || strlen(path) >= sizeof(((dl_state *)0)->path))
    return lc_problem(resp, 414, "uri-too-long", "the request target is too long");
  lc_identity sid = p.id;
  lc_strlcpy(sid.client_ip, ip, sizeof(sid.client_ip));
  dl_state *d = lc_xcalloc(1, sizeof(*d));
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->cv, NULL);
  d->up = up;
  d->inst = -1;
  d->clen = -1;
  lc_strlcpy(d->path, path, sizeof(d->path));
  lc_strlcpy(d->rid, lc_log_rid(), sizeof(d->rid));
  /* A GET carries no body: Content-Type / Idempotency-Key are not forwarded. */
  if (lc_iauth_sign(up->secret, up->secret_len, req->http_verb, path, &sid, NULL, 0, NULL, NULL,
                    (int64_t)time(NULL), &d->ih) != LC_OK) {
    dl_free(d);
    return lc_problem(resp, 400, "bad-request", "malformed request target");
  }
  int n = 0;
  snprintf(d->lines[n++], DL_HDR_LINE, "Content-Type:");
  for (int i = 0; DL_REQ_HEADERS[i] != NULL && n < DL_MAX_REQ_HDR; i++) {
    const char *v = u_map_get_case(req->map_header, DL_REQ_HEADERS[i]);
    if (v != NULL && strpbrk(v, "\r\n") == NULL && strlen(v) <= DL_HDR_LINE - 64)
      snprintf(d->lines[n++], DL_HDR_LINE, "%s: %s", DL_REQ_HEADERS[i], v);
  }
  int bad = 0;
  for (int i = 0; d->ih.ptr[i] != NULL && !bad; i++) {
    struct curl_slist *t = curl_slist_append(d->hl, d->ih.ptr[i]);
    bad = t == NULL;
    d->hl = t != NULL ? t : d->hl;
  }
  for (int i = 0; i < n && !bad; i++) {
    struct curl_slist *t = curl_slist_append(d->hl, d->lines[i]);
    bad = t == NULL;
    d->hl = t != NULL ? t : d->hl;
  }
  d->h = bad ? NULL : curl_easy_init();
  if (d->h == NULL) {
    dl_free(d);
    return lc_problem(resp, 503, "upstream-unavailable", "the service is temporarily unavailable");
  }
  d->ring = lc_xmalloc(GW_DOWNLOAD_RING);
  if (up->pool != NULL)
    d->inst = gw_upstream_pick(up->pool, -1, lc_mono_ms());
  if (pthread_create(&d->th, NULL, dl_thread, d) != 0) {
    dl_free(d);
    return lc_problem(resp, 503, "upstream-unavailable", "the service is temporarily unavailable");
  }
  d->started = 1;

  pthread_mutex_lock(&d->mu);
  while (d->hdr == 0)
    pthread_cond_wait(&d->cv, &d->mu);
  int hdr = d->hdr;
  long status = d->status;
  pthread_mutex_unlock(&d->mu);
  if (hdr != 1) {
    pthread_join(d->th, NULL);
    d->started = 0;
    return dl_unavailable(d, resp);
  }
  if (status != 200) {
    /* problem+json and other small answers: buffered whole, relayed as gw_proxy does */
    pthread_join(d->th, NULL);
    d->started = 0;
    if (d->cc != CURLE_OK)
      return dl_unavailable(d, resp);
    if (d->ebody != NULL && d->elen > 0)
      ulfius_set_binary_body_response(resp, (unsigned int)status, d->ebody, d->elen);
    resp->status = status;
    relay_headers(d, resp);
    lc_metric_add("gateway_forwarded_total", 1);
    dl_free(d);
    return U_CALLBACK_COMPLETE;
  }
  relay_headers(d, resp);
  uint64_t size = d->clen >= 0 ? (uint64_t)d->clen : U_STREAM_SIZE_UNKNOWN;
  if (ulfius_set_stream_response(resp, 200, dl_stream_cb, dl_stream_free, size, 65536, d) !=
      U_OK) {
    dl_free(d);
    return lc_problem(resp, 500, "internal", "cannot relay the content");
  }
  lc_metric_add("gateway_forwarded_total", 1);
  return U_CALLBACK_COMPLETE;
}

int gw_download_register(struct _u_instance *inst, const gw_route *r, const gw_ctx *ctx,
                         char err[LC_ERR_LEN]) {
  g_binding.route = r;
  g_binding.ctx = ctx;
  if (lc_svc_route(inst, r->method, r->path, LC_PRIO_APP, cb_download, &g_binding) != LC_OK)
    return lc_err_set(err, LC_ERR, "cannot register the download route %s %s", r->method,
                      r->path);
  return LC_OK;
}
