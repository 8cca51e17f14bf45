/* http.c - libcurl client with one easy handle per thread.
 *
 * The handle lives in thread-specific storage (destroyed when the thread
 * exits, or by lc_http_thread_cleanup), is curl_easy_reset between requests
 * (the connection cache survives, so keep-alive works), never follows
 * redirects, speaks only http/https and caps the response body. */
#include "lc/http.h"
#include "lc/util.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_DEF_TIMEOUT_MS 10000L
#define HTTP_DEF_MAX_RESP ((size_t)16 * 1024 * 1024)
#define HTTP_MAX_HDR_LINES 200

static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void handle_destroy(void *p) {
  if (p != NULL) curl_easy_cleanup((CURL *)p);
}

static void key_init(void) { (void)pthread_key_create(&g_key, handle_destroy); }

static CURL *thread_handle(void) {
  CURL *h;
  pthread_once(&g_once, key_init);
  h = pthread_getspecific(g_key);
  if (h != NULL) {
    curl_easy_reset(h);
    return h;
  }
  h = curl_easy_init();
  if (h != NULL && pthread_setspecific(g_key, h) != 0) {
    curl_easy_cleanup(h);
    h = NULL;
  }
  return h;
}

void lc_http_thread_cleanup(void) {
  CURL *h;
  pthread_once(&g_once, key_init);
  h = pthread_getspecific(g_key);
  if (h != NULL) {
    pthread_setspecific(g_key, NULL);
    curl_easy_cleanup(h);
  }
}

typedef struct {
  char *buf;
  size_t len, cap, max;
  int too_large;
  int keep_headers;
  size_t nhdr;
  struct curl_slist *headers;
} sink;

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
  sink *s = ud;
  size_t n = size * nmemb;
  if (n == 0) return 0;
  if (s->len + n > s->max) {
    s->too_large = 1;
    return 0;
  }
  if (s->len + n + 1 > s->cap) {
    size_t nc = s->cap ? s->cap : 4096;
    while (nc < s->len + n + 1) nc *= 2;
    if (nc > s->max + 1) nc = s->max + 1;
    s->buf = lc_xrealloc(s->buf, nc);
    s->cap = nc;
  }
  memcpy(s->buf + s->len, ptr, n);
  s->len += n;
  s->buf[s->len] = '\0';
  return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nitems, void *ud) {
  sink *s = ud;
  size_t n = size * nitems, l = n;
  char *line;
  if (!s->keep_headers) return n;
  while (l > 0 && (ptr[l - 1] == '\n' || ptr[l - 1] == '\r')) l--;
  if (l >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
    /* A new response (e.g. after 100 Continue): start over. */
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    s->nhdr = 0;
    return n;
  }
  if (l == 0 || memchr(ptr, ':', l) == NULL || s->nhdr >= HTTP_MAX_HDR_LINES) return n;
  line = lc_xstrndup(ptr, l);
  {
    struct curl_slist *t = curl_slist_append(s->headers, line);
    free(line);
    if (t == NULL) return 0;
    s->headers = t;
    s->nhdr++;
  }
  return n;
}

int lc_http_do(const lc_http_req *req, lc_http_resp *resp, char err[LC_ERR_LEN]) {
  CURL *h;
  CURLcode cc;
  struct curl_slist *hdrs = NULL, *t;
  sink s;
  long timeout;
  const char *method;
  size_t i;
  int rc = LC_OK;

  if (resp != NULL) memset(resp, 0, sizeof *resp);
  if (req == NULL || resp == NULL || req->url == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "http: missing request/url");
  if (req->body == NULL && req->body_len > 0)
    return lc_err_set(err, LC_ERR_PARAM, "http: body_len without body");
  memset(&s, 0, sizeof s);
  s.max = req->max_resp ? req->max_resp : HTTP_DEF_MAX_RESP;
  s.keep_headers = req->keep_headers;
  timeout = req->timeout_ms > 0 ? req->timeout_ms : HTTP_DEF_TIMEOUT_MS;
  method = req->method ? req->method : "GET";

  h = thread_handle();
  if (h == NULL) return lc_err_set(err, LC_ERR_NOMEM, "http: curl_easy_init failed");

  for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
    t = curl_slist_append(hdrs, req->headers[i]);
    if (t == NULL) {
      rc = lc_err_set(err, LC_ERR_NOMEM, "http: header list");
      goto out;
    }
    hdrs = t;
  }
  /* Never wait for 100-continue. */
  t = curl_slist_append(hdrs, "Expect:");
  if (t == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "http: header list");
    goto out;
  }
  hdrs = t;

  curl_easy_setopt(h, CURLOPT_URL, req->url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout < 5000 ? timeout : 5000L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
  /* A HEAD answer carries the Content-Length of a body that is never sent
   * (s3rver's HEAD bucket announces its whole listing): cap bodies only. */
  if (strcasecmp(method, "HEAD") != 0)
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s.max);
  if (req->aws_sigv4 != NULL) curl_easy_setopt(h, CURLOPT_AWS_SIGV4, req->aws_sigv4);
  if (req->userpwd != NULL) curl_easy_setopt(h, CURLOPT_USERPWD, req->userpwd);

  if (strcasecmp(method, "GET") == 0 && req->body == NULL) {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (strcasecmp(method, "HEAD") == 0) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else {
    if (strcasecmp(method, "POST") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (req->body != NULL || strcasecmp(method, "POST") == 0 ||
        strcasecmp(method, "PUT") == 0) {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    }
  }

  cc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
  if (cc != CURLE_OK) {
    /* No connection and not one request byte sent (REQUEST_SIZE sums
     * libcurl's own retries on a dead kept-alive connection): the caller
     * may safely try another server. */
    long sent = 0;
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
    resp->connect_failed = sent == 0 && (cc == CURLE_COULDNT_CONNECT ||
                                         cc == CURLE_COULDNT_RESOLVE_HOST ||
                                         cc == CURLE_OPERATION_TIMEDOUT);
    if (s.too_large || cc == CURLE_FILESIZE_EXCEEDED)
      rc = lc_err_set(err, LC_ERR_TOO_LARGE, "http: response larger than %zu bytes", s.max);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
      rc = lc_err_set(err, LC_ERR_TIMEOUT, "http: timeout after %ld ms", timeout);
    else
      rc = lc_err_set(err, LC_ERR_IO, "http: %s", curl_easy_strerror(cc));
    goto out;
  }
  resp->body = s.buf;
  resp->len = s.len;
  resp->headers = s.headers;
  s.buf = NULL;
  s.headers = NULL;
out:
  /* Drop pointers to our stack before the handle is reused. */
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hdrs);
  free(s.buf);
  curl_slist_free_all(s.headers);
  if (rc != LC_OK) {
    resp->status = rc == LC_ERR_TOO_LARGE ? resp->status : 0;
  }
  return rc;
}

void lc_http_resp_free(lc_http_resp *resp) {
  if (resp == NULL) return;
  free(resp->body);
  curl_slist_free_all(resp->headers);
  memset(resp, 0, sizeof *resp);
}

int lc_http_resp_header(const lc_http_resp *resp, const char *name, char *out, size_t outsz) {
  const struct curl_slist *l;
  size_t nl;
  if (resp == NULL || name == NULL) return LC_ERR_NOTFOUND;
  nl = strlen(name);
  for (l = resp->headers; l != NULL; l = l->next) {
    const char *v, *e;
    if (strncasecmp(l->data, name, nl) != 0 || l->data[nl] != ':') continue;
    v = l->data + nl + 1;
    while (*v == ' ' || *v == '\t') v++;
    e = v + strlen(v);
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (out != NULL && outsz > 0) {
      size_t n = (size_t)(e - v);
      if (n >= outsz) {
        out[0] = '\0';
        return LC_ERR_TOO_LARGE;
      }
      memcpy(out, v, n);
      out[n] = '\0';
    }
    return LC_OK;
  }
  return LC_ERR_NOTFOUND;
}
