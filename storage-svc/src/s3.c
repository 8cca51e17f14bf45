/* s3.c - minimal S3 client over lc_http_do with our SigV4 signer (see s3.h). */
#include "s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc/http.h"
#include "lc/log.h"
#include "lc/util.h"
#include "sigv4.h"

#define S3_PATH_MAX 1024
#define S3_URL_MAX 2048
#define S3_SMALL_RESP 65536

typedef struct {
  const char *method;
  const char *key;            /* NULL = bucket itself */
  const void *body;
  size_t len;
  const char *content_type;   /* NULL = none */
  size_t max_resp;
} s3_op;

int storage_s3_key_valid(const char *key)
{
  size_t n;

  if (key == NULL)
    return 0;
  n = strlen(key);
  if (n == 0 || n > 512 || key[0] == '/' || strstr(key, "..") != NULL ||
      strstr(key, "//") != NULL)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = key[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '/' || c == '.' || c == '_' || c == '-';
    if (!ok)
      return 0;
  }
  return 1;
}

static int bucket_valid(const char *b)
{
  size_t n = b != NULL ? strlen(b) : 0;

  if (n < 3 || n > 63 || b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-')
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = b[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
      return 0;
  }
  return 1;
}

int storage_s3_init(storage_s3 *s3, const char *endpoint, const char *region,
                    const char *bucket, const char *access_key, const char *secret_key,
                    long timeout_ms, char err[LC_ERR_LEN])
{
  const char *h;
  size_t elen;

  if (s3 == NULL || endpoint == NULL || region == NULL || access_key == NULL ||
      secret_key == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "s3: missing configuration");
  memset(s3, 0, sizeof(*s3));
  if (strncmp(endpoint, "http://", 7) == 0)
    h = endpoint + 7;
  else if (strncmp(endpoint, "https://", 8) == 0)
    h = endpoint + 8;
  else
    return lc_err_set(err, LC_ERR_PARAM, "S3_ENDPOINT: must start with http:// or https://");
  if (lc_strlcpy(s3->endpoint, endpoint, sizeof(s3->endpoint)) != LC_OK ||
      lc_strlcpy(s3->host, h, sizeof(s3->host)) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "S3_ENDPOINT: too long");
  elen = strlen(s3->endpoint);
  if (elen > 0 && s3->endpoint[elen - 1] == '/')
    s3->endpoint[elen - 1] = '\0';
  {
    size_t hl = strlen(s3->host);
    if (hl > 0 && s3->host[hl - 1] == '/')
      s3->host[--hl] = '\0';
    if (hl == 0 || strpbrk(s3->host, "/?#@ ") != NULL)
      return lc_err_set(err, LC_ERR_PARAM, "S3_ENDPOINT: must be scheme://host[:port] without a path");
  }
  if (!bucket_valid(bucket))
    return lc_err_set(err, LC_ERR_PARAM, "S3_BUCKET: not a valid bucket name");
  if (region[0] == '\0' || lc_strlcpy(s3->region, region, sizeof(s3->region)) != LC_OK ||
      lc_strlcpy(s3->bucket, bucket, sizeof(s3->bucket)) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "S3_REGION: empty or too long");
  if (access_key[0] == '\0' ||
      lc_strlcpy(s3->access_key, access_key, sizeof(s3->access_key)) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "S3_ACCESS_KEY: empty or too long");
  if (secret_key[0] == '\0' ||
      lc_strlcpy(s3->secret_key, secret_key, sizeof(s3->secret_key)) != LC_OK) {
    storage_s3_clear(s3);
    return lc_err_set(err, LC_ERR_PARAM, "S3_SECRET_KEY: empty or too long");
  }
  lc_strlcpy(s3->scheme, strncmp(endpoint, "https://", 8) == 0 ? "https" : "http",
             sizeof(s3->scheme));
  lc_strlcpy(s3->ep_host, s3->host, sizeof(s3->ep_host));
  s3->virtual_host = 0;
  s3->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
  return LC_OK;
}

int storage_s3_set_addressing(storage_s3 *s3, const char *mode, char err[LC_ERR_LEN])
{
  int n;

  if (mode == NULL || strcmp(mode, "path") == 0) {
    s3->virtual_host = 0;
    lc_strlcpy(s3->host, s3->ep_host, sizeof(s3->host));
    return LC_OK;
  }
  if (strcmp(mode, "virtual") != 0)
    return lc_err_set(err, LC_ERR_PARAM, "S3_ADDRESSING: must be path or virtual");
  if (strchr(s3->bucket, '.') != NULL)
    return lc_err_set(err, LC_ERR_PARAM,
                      "S3_ADDRESSING: virtual needs a bucket name without '.'; use path");
  n = snprintf(s3->host, sizeof(s3->host), "%s.%s", s3->bucket, s3->ep_host);
  if (n < 0 || (size_t)n >= sizeof(s3->host))
    return lc_err_set(err, LC_ERR_PARAM, "S3_ENDPOINT: host too long for virtual addressing");
  s3->virtual_host = 1;
  return LC_OK;
}

int storage_s3_url(const storage_s3 *s3, const char *key, char *url, size_t urlsz,
                   char *signed_path, size_t pathsz, char err[LC_ERR_LEN])
{
  char epath[S3_PATH_MAX * 3];
  int n;

  if (key != NULL && !storage_s3_key_valid(key))
    return lc_err_set(err, LC_ERR_PARAM, "s3: invalid object key");
  if (s3->virtual_host)
    n = snprintf(signed_path, pathsz, "/%s", key != NULL ? key : "");
  else if (key != NULL)
    n = snprintf(signed_path, pathsz, "/%s/%s", s3->bucket, key);
  else
    n = snprintf(signed_path, pathsz, "/%s", s3->bucket);
  if (n < 0 || (size_t)n >= pathsz)
    return lc_err_set(err, LC_ERR_TOO_LARGE, "s3: object key too long");
  if (storage_sigv4_uri_encode(signed_path, 0, epath, sizeof(epath)) != LC_OK)
    return lc_err_set(err, LC_ERR_TOO_LARGE, "s3: object key too long");
  n = snprintf(url, urlsz, "%s://%s%s", s3->scheme, s3->host, epath);
  if (n < 0 || (size_t)n >= urlsz)
    return lc_err_set(err, LC_ERR_TOO_LARGE, "s3: url too long");
  return LC_OK;
}

void storage_s3_clear(storage_s3 *s3)
{
  if (s3 != NULL)
    explicit_bzero(s3->secret_key, sizeof(s3->secret_key));
}

/* Signed request headers for one operation. */
typedef struct {
  char url[S3_URL_MAX];
  char h_host[300], h_date[40], h_sha[100], h_auth[STORAGE_SIGV4_AUTH_LEN + 32], h_ct[160];
  const char *hdrs[7];
} s3_prep;

static int s3_prepare(const storage_s3 *s3, const char *method, const char *key,
                      const char *content_type, const char *payload_sha, s3_prep *p,
                      char err[LC_ERR_LEN])
{
  char path[S3_PATH_MAX];
  storage_sigv4_kv extra[1];
  storage_sigv4_req sreq;
  storage_sigv4_out sout;
  size_t nh = 0;
  int n, rc;

  rc = storage_s3_url(s3, key, p->url, sizeof(p->url), path, sizeof(path), err);
  if (rc != LC_OK)
    return rc == LC_ERR_TOO_LARGE ? LC_ERR_PARAM : rc;
  memset(&sreq, 0, sizeof(sreq));
  sreq.method = method;
  sreq.path = path;
  sreq.host = s3->host;
  if (content_type != NULL) {
    extra[0].name = "content-type";
    extra[0].value = content_type;
    sreq.headers = extra;
    sreq.nheaders = 1;
  }
  sreq.payload_sha256 = payload_sha;
  sreq.access_key = s3->access_key;
  sreq.secret_key = s3->secret_key;
  sreq.region = s3->region;
  sreq.service = "s3";
  sreq.now = time(NULL);
  rc = storage_sigv4_sign(&sreq, &sout, NULL, 0, err);
  if (rc != LC_OK)
    return rc;
  snprintf(p->h_host, sizeof(p->h_host), "Host: %s", s3->host);
  snprintf(p->h_date, sizeof(p->h_date), "x-amz-date: %s", sout.amz_date);
  snprintf(p->h_sha, sizeof(p->h_sha), "x-amz-content-sha256: %s", payload_sha);
  snprintf(p->h_auth, sizeof(p->h_auth), "Authorization: %s", sout.authorization);
  p->hdrs[nh++] = p->h_host;
  p->hdrs[nh++] = p->h_date;
  p->hdrs[nh++] = p->h_sha;
  p->hdrs[nh++] = p->h_auth;
  if (content_type != NULL) {
    n = snprintf(p->h_ct, sizeof(p->h_ct), "Content-Type: %s", content_type);
    if (n < 0 || (size_t)n >= sizeof(p->h_ct))
      return lc_err_set(err, LC_ERR_PARAM, "s3: content type too long");
    p->hdrs[nh++] = p->h_ct;
  }
  p->hdrs[nh] = NULL;
  return LC_OK;
}

/* Signs and performs one request; *resp is filled (caller frees) on LC_OK. */
static int s3_do(const storage_s3 *s3, const s3_op *op, lc_http_resp *resp,
                 char err[LC_ERR_LEN])
{
  s3_prep p;
  uint8_t digest[32];
  char body_sha[65];
  lc_http_req hreq;
  int rc;

  lc_sha256(op->body != NULL ? op->body : "", op->body != NULL ? op->len : 0, digest);
  lc_hex_encode(digest, 32, body_sha);
  rc = s3_prepare(s3, op->method, op->key, op->content_type, body_sha, &p, err);
  if (rc != LC_OK) {
    explicit_bzero(p.h_auth, sizeof(p.h_auth));
    return rc;
  }
  memset(&hreq, 0, sizeof(hreq));
  hreq.method = op->method;
  hreq.url = p.url;
  hreq.headers = p.hdrs;
  hreq.body = op->body;
  hreq.body_len = op->body != NULL ? op->len : 0;
  hreq.timeout_ms = s3->timeout_ms;
  hreq.max_resp = op->max_resp > 0 ? op->max_resp : S3_SMALL_RESP;
  memset(resp, 0, sizeof(*resp));
  rc = lc_http_do(&hreq, resp, err);
  explicit_bzero(p.h_auth, sizeof(p.h_auth));
  if (rc == LC_ERR_TOO_LARGE) {
    lc_http_resp_free(resp);
    return lc_err_set(err, LC_ERR_TOO_LARGE, "s3: %s response over %zu bytes", op->method,
                      hreq.max_resp);
  }
  if (rc != LC_OK) {
    lc_http_resp_free(resp);
    return lc_err_set(err, LC_ERR_UNAVAIL, "s3: %s failed: store unreachable", op->method);
  }
  return LC_OK;
}

/* Maps a non-success S3 status to an lc status and error text (S3 error code included). */
static int s3_status_err(const char *what, const lc_http_resp *resp, char err[LC_ERR_LEN])
{
  char code[64] = "";
  const char *b = resp->body, *s, *e;

  if (b != NULL) {
    s = strstr(b, "<Code>");
    e = s != NULL ? strstr(s, "</Code>") : NULL;
    if (s != NULL && e != NULL && (size_t)(e - s - 6) < sizeof(code)) {
      memcpy(code, s + 6, (size_t)(e - s - 6));
      code[e - s - 6] = '\0';
    }
  }
  if (resp->status >= 500)
    return lc_err_set(err, LC_ERR_UNAVAIL, "s3: %s: status %ld %s", what, resp->status, code);
  return lc_err_set(err, LC_ERR_IO, "s3: %s: status %ld %s", what, resp->status, code);
}

int storage_s3_ping(const storage_s3 *s3)
{
  s3_op op = {"HEAD", NULL, NULL, 0, NULL, 0};
  lc_http_resp resp;
  char err[LC_ERR_LEN];
  int ok;

  if (s3_do(s3, &op, &resp, err) != LC_OK)
    return 0;
  ok = resp.status == 200;
  lc_http_resp_free(&resp);
  return ok;
}

int storage_s3_ensure_bucket(const storage_s3 *s3, char err[LC_ERR_LEN])
{
  s3_op op = {"PUT", NULL, NULL, 0, NULL, 0};
  lc_http_resp resp;
  int rc;

  rc = s3_do(s3, &op, &resp, err);
  if (rc != LC_OK)
    return rc;
  if (resp.status == 200 ||
      (resp.status == 409 && resp.body != NULL &&
       strstr(resp.body, "BucketAlreadyOwnedByYou") != NULL)) {
    rc = LC_OK;
  } else if (resp.status == 409 && storage_s3_ping(s3)) {
    rc = LC_OK; /* exists and our credentials can use it */
  } else {
    rc = s3_status_err("create bucket", &resp, err);
  }
  lc_http_resp_free(&resp);
  return rc;
}

int storage_s3_put_object(const storage_s3 *s3, const char *key, const void *body, size_t len,
                          const char *content_type, char err[LC_ERR_LEN])
{
  s3_op op = {"PUT", key, body, len, content_type, 0};
  lc_http_resp resp;
  int rc;

  if (key == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "s3: missing key");
  rc = s3_do(s3, &op, &resp, err);
  if (rc != LC_OK)
    return rc;
  rc = resp.status == 200 ? LC_OK : s3_status_err("put object", &resp, err);
  lc_http_resp_free(&resp);
  return rc;
}

int storage_s3_get_object(const storage_s3 *s3, const char *key, size_t max, char **body,
                          size_t *len, char err[LC_ERR_LEN])
{
  s3_op op = {"GET", key, NULL, 0, NULL, max};
  lc_http_resp resp;
  int rc;

  if (key == NULL || body == NULL || len == NULL || max == 0)
    return lc_err_set(err, LC_ERR_PARAM, "s3: bad get arguments");
  *body = NULL;
  *len = 0;
  rc = s3_do(s3, &op, &resp, err);
  if (rc != LC_OK)
    return rc;
  if (resp.status == 200) {
    *len = resp.len;
    *body = resp.body != NULL ? resp.body : lc_xstrdup("");
    resp.body = NULL;
    rc = LC_OK;
  } else if (resp.status == 404) {
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "s3: no such key");
  } else {
    rc = s3_status_err("get object", &resp, err);
  }
  lc_http_resp_free(&resp);
  return rc;
}

int storage_s3_delete_object(const storage_s3 *s3, const char *key, char err[LC_ERR_LEN])
{
  s3_op op = {"DELETE", key, NULL, 0, NULL, 0};
  lc_http_resp resp;
  int rc;

  if (key == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "s3: missing key");
  rc = s3_do(s3, &op, &resp, err);
  if (rc != LC_OK)
    return rc;
  rc = (resp.status == 204 || resp.status == 200) ? LC_OK
                                                    : s3_status_err("delete object", &resp, err);
  lc_http_resp_free(&resp);
  return rc;
}

/* ---- streaming upload ---------------------------------------------------- */

typedef struct {
  storage_s3_read_fn read;
  void *ud;
  size_t left;
} up_src;

static size_t up_read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
  up_src *u = ud;
  size_t want = size * nitems, got;

  if (want > u->left)
    want = u->left;
  if (want == 0)
    return 0;
  got = u->read(u->ud, buf, want);
  if (got > want)
    return CURL_READFUNC_ABORT;
  u->left -= got;
  return got;
}

typedef struct {
  char buf[S3_SMALL_RESP];
  size_t len;
} up_sink;

static size_t up_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
  up_sink *s = ud;
  size_t n = size * nmemb, take = n;

  if (take > sizeof(s->buf) - 1 - s->len)
    take = sizeof(s->buf) - 1 - s->len; /* error bodies are small; keep the start */
  memcpy(s->buf + s->len, ptr, take);
  s->len += take;
  s->buf[s->len] = '\0';
  return n;
}

int storage_s3_put_stream(const storage_s3 *s3, const char *key, storage_s3_read_fn read,
                          void *ud, size_t len, const char *payload_sha256,
                          const char *content_type, char err[LC_ERR_LEN])
{
  s3_prep p;
  up_src src = {read, ud, len};
  up_sink *sink = NULL;
  struct curl_slist *hl = NULL, *t;
  lc_http_resp fake;
  CURL *h = NULL;
  CURLcode cc;
  long status = 0;
  int rc;

  if (key == NULL || read == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "s3: missing key or reader");
  rc = s3_prepare(s3, "PUT", key, content_type,
                  payload_sha256 != NULL ? payload_sha256 : "UNSIGNED-PAYLOAD", &p, err);
  if (rc != LC_OK)
    goto out;
  for (size_t i = 0; p.hdrs[i] != NULL; i++) {
    t = curl_slist_append(hl, p.hdrs[i]);
    if (t == NULL) {
      rc = lc_err_set(err, LC_ERR_NOMEM, "s3: header list");
      goto out;
    }
    hl = t;
  }
  t = curl_slist_append(hl, "Expect:");
  if (t == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "s3: header list");
    goto out;
  }
  hl = t;
  h = curl_easy_init();
  if (h == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "s3: curl_easy_init failed");
    goto out;
  }
  sink = lc_xcalloc(1, sizeof(*sink));
  curl_easy_setopt(h, CURLOPT_URL, p.url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s3->timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, s3->timeout_ms < 5000 ? s3->timeout_ms : 5000L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, up_read_cb);
  curl_easy_setopt(h, CURLOPT_READDATA, &src);
  curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, up_write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
  cc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (cc != CURLE_OK) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "s3: PUT failed: %s",
                    cc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "store unreachable");
    goto out;
  }
  if (status == 200) {
    rc = LC_OK;
    goto out;
  }
  memset(&fake, 0, sizeof(fake));
  fake.status = status;
  fake.body = sink->buf;
  fake.len = sink->len;
  rc = s3_status_err("put object", &fake, err);
out:
  explicit_bzero(p.h_auth, sizeof(p.h_auth));
  if (h != NULL)
    curl_easy_cleanup(h);
  curl_slist_free_all(hl);
  free(sink);
  return rc;
}

/* ---- streaming download -------------------------------------------------- */

typedef struct {
  const storage_s3_sink *sink;
  CURL *h;
  long status;         /* final status once the headers are in, else 0 */
  int stopped;         /* a callback asked to stop */
  int hdr_late;        /* no answer headers within s3->timeout_ms */
  int64_t hdr_deadline;/* lc_mono_ms() by which the headers must be in */
  up_sink *errbody;    /* body of a non-200 answer (bounded) */
} dl_ctx;

static size_t dl_header_cb(char *ptr, size_t size, size_t nitems, void *ud)
{
  dl_ctx *d = ud;
  size_t n = size * nitems;
  long status = 0;
  curl_off_t clen = -1;

  if (n > 2 || (n == 2 && ptr[0] != '\r') || (n == 1 && ptr[0] != '\n'))
    return n; /* not the blank line that ends a header block */
  curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200)
    return n; /* 1xx: the final answer is still to come */
  d->status = status;
  if (status != 200)
    return n;
  curl_easy_getinfo(d->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
  if (d->sink->headers != NULL && d->sink->headers(d->sink->ud, status, (int64_t)clen) != 0) {
    d->stopped = 1;
    return 0; /* aborts the transfer */
  }
  return n;
}

static size_t dl_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
  dl_ctx *d = ud;
  size_t n = size * nmemb;

  if (d->status != 200)
    return up_write_cb(ptr, size, nmemb, d->errbody);
  if (d->sink->data(d->sink->ud, ptr, n) != 0) {
    d->stopped = 1;
    return 0;
  }
  return n;
}

static int dl_progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
  dl_ctx *d = ud;

  (void)dt;
  (void)dn;
  (void)ut;
  (void)un;
  if (d->sink->aborted != NULL && d->sink->aborted(d->sink->ud)) {
    d->stopped = 1;
    return 1;
  }
  if (d->status == 0 && lc_mono_ms() > d->hdr_deadline) {
    d->hdr_late = 1; /* the usual timeout applies until the answer starts */
    return 1;
  }
  return 0;
}

int storage_s3_get_stream(const storage_s3 *s3, const char *key, long timeout_ms,
                          const storage_s3_sink *sink, char err[LC_ERR_LEN])
{
  s3_prep p;
  uint8_t digest[32];
  char empty_sha[65];
  struct curl_slist *hl = NULL, *t;
  dl_ctx d;
  lc_http_resp fake;
  CURLcode cc;
  int rc;

  if (key == NULL || sink == NULL || sink->data == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "s3: missing key or sink");
  memset(&d, 0, sizeof(d));
  d.sink = sink;
  lc_sha256("", 0, digest);
  lc_hex_encode(digest, 32, empty_sha);
  rc = s3_prepare(s3, "GET", key, NULL, empty_sha, &p, err);
  if (rc != LC_OK)
    goto out;
  for (size_t i = 0; p.hdrs[i] != NULL; i++) {
    t = curl_slist_append(hl, p.hdrs[i]);
    if (t == NULL) {
      rc = lc_err_set(err, LC_ERR_NOMEM, "s3: header list");
      goto out;
    }
    hl = t;
  }
  d.h = curl_easy_init();
  if (d.h == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "s3: curl_easy_init failed");
    goto out;
  }
  d.errbody = lc_xcalloc(1, sizeof(*d.errbody));
  if (timeout_ms <= 0)
    timeout_ms = 4 * s3->timeout_ms;
  d.hdr_deadline = lc_mono_ms() + s3->timeout_ms;
  curl_easy_setopt(d.h, CURLOPT_URL, p.url);
  curl_easy_setopt(d.h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(d.h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(d.h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(d.h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(d.h, CURLOPT_CONNECTTIMEOUT_MS,
                   s3->timeout_ms < 5000 ? s3->timeout_ms : 5000L);
  curl_easy_setopt(d.h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(d.h, CURLOPT_HEADERFUNCTION, dl_header_cb);
  curl_easy_setopt(d.h, CURLOPT_HEADERDATA, &d);
  curl_easy_setopt(d.h, CURLOPT_WRITEFUNCTION, dl_write_cb);
  curl_easy_setopt(d.h, CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(d.h, CURLOPT_XFERINFOFUNCTION, dl_progress_cb);
  curl_easy_setopt(d.h, CURLOPT_XFERINFODATA, &d);
  curl_easy_setopt(d.h, CURLOPT_NOPROGRESS, 0L);
  cc = curl_easy_perform(d.h);
  if (cc != CURLE_OK) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "s3: GET failed: %s",
                    d.stopped ? "stopped by the reader"
                    : cc == CURLE_OPERATION_TIMEDOUT || d.hdr_late ? "timeout"
                    : d.status == 200 ? "body cut" : "store unreachable");
    goto out;
  }
  if (d.status == 200) {
    rc = LC_OK;
    goto out;
  }
  if (d.status == 404) {
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "s3: no such key");
    goto out;
  }
  memset(&fake, 0, sizeof(fake));
  fake.status = d.status;
  fake.body = d.errbody->buf;
  fake.len = d.errbody->len;
  rc = s3_status_err("get object", &fake, err);
out:
  explicit_bzero(p.h_auth, sizeof(p.h_auth));
  if (d.h != NULL)
    curl_easy_cleanup(d.h);
  curl_slist_free_all(hl);
  free(d.errbody);
  return rc;
}
