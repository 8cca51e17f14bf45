/* handlers.c - storage-svc routes: parse, validate, call reports.c, map the
 * status, send JSON or problem+json (see handlers.h). */
#include "handlers.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "multipart.h"
#include "names.h"
#include "sniff.h"

#define BODY_MAX 16384

enum { NEED_READ, NEED_WRITE, NEED_KEY_READ };

/* Identity checks shared by the routes: a real user identity whose API-key
 * scope allows the operation (gateway checks too; this is defence in depth). */
static int check_identity(const lc_identity *id, int need, const lc_identity **out,
                          const char **detail)
{
  const char *s;

  *out = NULL;
  if (id == NULL) {
    *detail = "missing identity";
    return LC_ERR_UNAUTH;
  }
  if (!lc_uuid_valid(id->user_id) ||
      (strcmp(id->role, "user") != 0 && strcmp(id->role, "admin") != 0 &&
       strcmp(id->role, "service") != 0)) {
    *detail = "this operation needs a user account";
    return LC_ERR_FORBIDDEN;
  }
  s = id->scope;
  if (need == NEED_KEY_READ) {
    /* the service API: API keys only (scope read or admin), never a session */
    if (strcmp(s, "read") != 0 && strcmp(s, "admin") != 0) {
      *detail = strcmp(s, "full") == 0 ? "this endpoint is for API keys (scope read or admin)"
                                       : "this API key lacks the read scope";
      return LC_ERR_FORBIDDEN;
    }
    *out = id;
    return LC_OK;
  }
  if (strcmp(s, "full") != 0 && strcmp(s, "admin") != 0 &&
      strcmp(s, need == NEED_WRITE ? "write" : "read") != 0) {
    *detail = need == NEED_WRITE ? "this API key lacks the write scope"
                                 : "this API key lacks the read scope";
    return LC_ERR_FORBIDDEN;
  }
  *out = id;
  return LC_OK;
}

static int need_identity(const struct _u_response *resp, int need, const lc_identity **out,
                         const char **detail);

int storage_idem_key_valid(const char *key)
{
  size_t n = key != NULL ? strlen(key) : 0;

  if (n < 1 || n > STORAGE_IDEM_KEY_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)key[i];
    if (c < 0x21 || c > 0x7e || c == ',')
      return 0;
  }
  return 1;
}

static int send_report(struct _u_response *resp, int status, const storage_report *r)
{
  json_t *j = storage_report_to_json(r);
  int ret = lc_json_send(resp, status, j);

  json_decref(j);
  return ret;
}

static int cb_create(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  const lc_identity *id;
  const char *detail = NULL, *idem;
  storage_report_req rreq;
  storage_report r;
  json_t *body = NULL;
  char err[LC_ERR_LEN] = "";
  int rc, replayed = 0, ret;

  rc = need_identity(resp, NEED_WRITE, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  if (atomic_load(&lc_svc_stopping))
    return lc_problem(resp, 503, NULL, "the service is shutting down; retry");
  idem = u_map_get_case(req->map_header, "Idempotency-Key");
  if (idem != NULL && !storage_idem_key_valid(idem))
    return lc_problem(resp, 400, NULL,
                      "Idempotency-Key must be 1..128 printable ASCII characters without ','");
  rc = lc_json_body(req, BODY_MAX, &body, err);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, err);
  rc = storage_reports_parse_req(body, &rreq, err);
  json_decref(body);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, err);

  atomic_fetch_add(&app->inflight, 1);
  rc = storage_reports_create(&app->reports, id, &rreq, idem, &r, &replayed, err);
  atomic_fetch_sub(&app->inflight, 1);
  if (rc != LC_OK) {
    lc_metric_add("storage_reports_failed_total", 1);
    if (rc == LC_ERR_FUNDS)
      return lc_problem(resp, 402, "insufficient-credits",
                        err[0] != '\0' ? err : "insufficient credits");
    if (rc == LC_ERR_DB || rc == LC_ERR)
      return lc_problem(resp, 500, NULL, "the report could not be created; nothing was charged");
    return lc_problem_from_err(resp, rc, err);
  }
  lc_metric_add(replayed ? "storage_reports_replayed_total" : "storage_reports_created_total", 1);
  ret = send_report(resp, 201, &r);
  if (replayed)
    ulfius_add_header_to_response(resp, "Idempotent-Replayed", "true");
  return ret;
}

static int cb_list(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  storage_report items[100];
  const lc_identity *id;
  const char *detail = NULL, *lim_s, *cursor;
  char err[LC_ERR_LEN] = "", next[128];
  int64_t lim = 20;
  size_t n = 0;
  json_t *arr, *j;
  int rc, ret;

  rc = need_identity(resp, NEED_READ, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  lim_s = u_map_get(req->map_url, "limit");
  if (lim_s != NULL && lc_parse_i64(lim_s, 1, 100, &lim) != LC_OK)
    return lc_problem(resp, 400, NULL, "limit must be an integer between 1 and 100");
  cursor = u_map_get(req->map_url, "cursor");
  rc = storage_reports_list(app->reports.pool, id->user_id, (int)lim, cursor, items, &n, next,
                            err);
  if (rc == LC_ERR_PARAM)
    return lc_problem(resp, 400, NULL, err);
  if (rc != LC_OK) {
    lc_log_error("cb_list - %s", err);
    return lc_problem(resp, rc == LC_ERR_DB ? 500 : 503, NULL, "reports are temporarily unavailable");
  }
  arr = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, storage_report_to_json(&items[i]));
  j = json_pack("{s:o, s:o}", "items", arr, "next_cursor",
                next[0] != '\0' ? json_string(next) : json_null());
  ret = lc_json_send(resp, 200, j);
  json_decref(j);
  return ret;
}

static int cb_get(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  const lc_identity *id;
  const char *detail = NULL, *rid;
  storage_report r;
  char err[LC_ERR_LEN] = "";
  int rc;

  rc = need_identity(resp, NEED_READ, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  rid = u_map_get(req->map_url, "id");
  rc = storage_reports_get(app->reports.pool, id->user_id, rid != NULL ? rid : "", &r, err);
  if (rc == LC_ERR_NOTFOUND)
    return lc_problem(resp, 404, NULL, "report not found");
  if (rc != LC_OK) {
    lc_log_error("cb_get - %s", err);
    return lc_problem(resp, rc == LC_ERR_DB ? 500 : 503, NULL, "reports are temporarily unavailable");
  }
  return send_report(resp, 200, &r);
}

/* ---- shared ------------------------------------------------------------ */

/* Maps a paid-flow status to its problem answer. */
static int paid_problem(struct _u_response *resp, int rc, const char *err, const char *what)
{
  if (rc == LC_ERR_FUNDS)
    return lc_problem(resp, 402, "insufficient-credits", err[0] != '\0' ? err : "insufficient credits");
  if (rc == LC_ERR_DB || rc == LC_ERR || rc == LC_ERR_NOMEM)
    return lc_problem(resp, 500, NULL, what);
  return lc_problem_from_err(resp, rc, err);
}

typedef struct {
  char *buf;
  size_t len;
} body_stream;

static ssize_t body_stream_cb(void *ud, uint64_t off, char *out, size_t max)
{
  body_stream *b = ud;
  size_t n;

  if (off >= b->len)
    return U_STREAM_END;
  n = b->len - (size_t)off;
  if (n > max)
    n = max;
  memcpy(out, b->buf + off, n);
  return (ssize_t)n;
}

static void body_stream_free(void *ud)
{
  body_stream *b = ud;

  if (b != NULL)
    free(b->buf);
  free(b);
}

/* Content-Type (with a charset for text), Content-Disposition: attachment
 * (sanitised name), nosniff and no caching, for a download answer. */
static void attachment_headers(struct _u_response *resp, const char *ctype, const char *name)
{
  char cd[STORAGE_CD_MAX], ct[STORAGE_CT_MAX + 32];

  if (storage_content_disposition(name, cd, sizeof(cd)) != LC_OK)
    lc_strlcpy(cd, "attachment", sizeof(cd));
  snprintf(ct, sizeof(ct), "%s%s", ctype,
           strncmp(ctype, "text/", 5) == 0 || strcmp(ctype, "application/json") == 0
               ? "; charset=utf-8" : "");
  u_map_put(resp->map_header, "Content-Type", ct);
  u_map_put(resp->map_header, "Content-Disposition", cd);
  u_map_put(resp->map_header, "X-Content-Type-Options", "nosniff");
  u_map_put(resp->map_header, "Cache-Control", "private, no-store");
}

/* Sends buf (new; ownership passes to the response, no copy) as an
 * attachment named name with content type ctype (bounded report bodies). */
static int send_attachment(struct _u_response *resp, char *buf, size_t len, const char *ctype,
                           const char *name)
{
  body_stream *b;

  b = lc_xmalloc(sizeof(*b));
  b->buf = buf;
  b->len = len;
  if (ulfius_set_stream_response(resp, 200, body_stream_cb, body_stream_free, len, 65536, b) !=
      U_OK) {
    body_stream_free(b);
    return lc_problem(resp, 500, NULL, "cannot send the content");
  }
  attachment_headers(resp, ctype, name);
  return U_CALLBACK_COMPLETE;
}

/* File content: drained from the S3 transfer as the client reads
 * (storage_file_stream_read); an error mid-body ends the stream with
 * U_STREAM_ERROR, MHD closes the connection and the client sees a short
 * body (Content-Length is the stored size). */
static ssize_t file_stream_cb(void *ud, uint64_t off, char *out, size_t max)
{
  long n = storage_file_stream_read(ud, out, max);

  (void)off;
  if (n > 0)
    return (ssize_t)n;
  if (n == 0)
    return U_STREAM_END;
  lc_metric_add("storage_download_errors_total", 1);
  return U_STREAM_ERROR;
}

static void file_stream_free(void *ud)
{
  storage_file_stream_close(ud);
}

static int send_file(struct _u_response *resp, int status, const storage_file *f)
{
  json_t *j = storage_file_to_json(f);
  int ret = lc_json_send(resp, status, j);

  json_decref(j);
  return ret;
}

static int need_identity(const struct _u_response *resp, int need, const lc_identity **out,
                         const char **detail)
{
  return check_identity(lc_iauth_identity(resp), need, out, detail);
}

/* ---- files ----------------------------------------------------------------- */

/* POST /v1/files is a stream route (lc_svc_stream_route): the body is never
 * held whole. begin checks the signed identity (unsigned-payload variant,
 * lc/iauth.h), the Idempotency-Key, the size announced by Content-Length
 * and the name, and opens an unlinked spool file; data runs the multipart
 * parser (multipart bodies) and counts, hashes (SHA-256), sniffs and spools
 * the file's bytes; end runs the paid upload (files.h) with the spool file
 * as the S3 PUT's source. Refusals answer after the body was read and
 * discarded (svc.c), nothing reserved. */

typedef struct {
  storage_app *app;
  lc_iauth_ctx *iauth;
} upload_binding;

static upload_binding g_upload;

typedef struct {
  storage_app *app;
  lc_identity id;
  int fd;
  uint64_t len;
  int multipart;
  storage_mp_stream *mp;
  crypto_hash_sha256_state sha;
  storage_sniff_stream sniff;
  char idem[STORAGE_IDEM_KEY_MAX + 1];
  int has_idem;
  char declared[STORAGE_CT_MAX * 4];
  int has_declared;
  char rawname[STORAGE_NAME_RAW_MAX + 1];
  size_t rawname_len;
  int has_name;
  int counted;               /* app->inflight was incremented */
} upload_state;

static int spool_open(const char *dir, char err[LC_ERR_LEN])
{
  char path[512];
  int fd;

#ifdef O_TMPFILE
  fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
#endif
  /* no O_TMPFILE on that file system: create, then unlink at once */
  snprintf(path, sizeof(path), "%s/storage-upload-XXXXXX", dir);
  fd = mkstemp(path);
  if (fd < 0) {
    lc_err_set(err, LC_ERR_IO, "cannot create a spool file in %s: %s", dir, strerror(errno));
    return -1;
  }
  unlink(path);
  return fd;
}

/* The spooled bytes again, for the S3 PUT. */
typedef struct {
  int fd;
  uint64_t off;
} spool_src;

static size_t spool_read(void *ud, char *dst, size_t n)
{
  spool_src *src = ud;
  ssize_t r;

  do {
    r = pread(src->fd, dst, n, (off_t)src->off);
  } while (r < 0 && errno == EINTR);
  if (r <= 0)
    return 0;
  src->off += (uint64_t)r;
  return (size_t)r;
}

static void upload_free(upload_state *u)
{
  if (u == NULL)
    return;
  if (u->fd >= 0)
    close(u->fd);
  if (u->counted)
    atomic_fetch_sub(&u->app->inflight, 1);
  free(u->mp);
  free(u);
}

static int up_begin(const struct _u_request *req, struct _u_response *resp, void **state,
                    void *ud)
{
  const upload_binding *b = ud;
  storage_app *app = b->app;
  const lc_identity *idp;
  lc_identity id;
  const char *detail = NULL, *idem, *ct, *cl, *hname, *qname;
  char err[LC_ERR_LEN] = "";
  int64_t clen = -1;
  upload_state *u;
  int rc;

  rc = lc_iauth_verify_unsigned(req, b->iauth, (int64_t)time(NULL), &id, err);
  if (rc != LC_OK) {
    lc_log_warn("Security - internal auth rejected %s %.128s: %s", req->http_verb,
                req->url_path, err);
    if (rc == LC_ERR_UNAVAIL) {
      u_map_put(resp->map_header, "Retry-After", "1");
      return lc_problem(resp, 503, NULL, "internal replay cache full, retry later");
    }
    return lc_problem(resp, 401, NULL, "invalid internal credentials");
  }
  lc_log_set_rid(id.request_id);
  rc = check_identity(&id, NEED_WRITE, &idp, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  if (atomic_load(&lc_svc_stopping))
    return lc_problem(resp, 503, NULL, "the service is shutting down; retry");
  idem = u_map_get_case(req->map_header, "Idempotency-Key");
  if (idem != NULL && !storage_idem_key_valid(idem))
    return lc_problem(resp, 400, NULL,
                      "Idempotency-Key must be 1..128 printable ASCII characters without ','");
  ct = u_map_get_case(req->map_header, "Content-Type");
  /* size limit from Content-Length, before the body is used or anything reserved */
  cl = u_map_get_case(req->map_header, "Content-Length");
  if (cl != NULL && lc_parse_i64(cl, 0, INT64_MAX, &clen) != LC_OK)
    return lc_problem(resp, 400, NULL, "invalid Content-Length");
  u = lc_xcalloc(1, sizeof(*u));
  u->app = app;
  u->id = id;
  u->fd = -1;
  u->multipart = storage_mp_is_multipart(ct);
  if (clen >= 0 &&
      (uint64_t)clen > (uint64_t)app->files.max_upload + (u->multipart ? STORAGE_MP_OVERHEAD : 0)) {
    upload_free(u);
    return lc_problem(resp, 413, NULL, "the file is larger than the upload limit");
  }
  if (idem != NULL) {
    lc_strlcpy(u->idem, idem, sizeof(u->idem));
    u->has_idem = 1;
  }
  if (u->multipart) {
    u->mp = lc_xmalloc(sizeof(*u->mp));
    if (storage_mp_stream_init(u->mp, ct, err) != LC_OK) {
      upload_free(u);
      return lc_problem(resp, 400, NULL, err);
    }
  } else if (ct != NULL) {
    if (lc_strlcpy(u->declared, ct, sizeof(u->declared)) != LC_OK) {
      upload_free(u);
      return lc_problem(resp, 415, NULL, "the declared content type is not allowed");
    }
    u->has_declared = 1;
  }
  if (!u->multipart) {
    hname = u_map_get_case(req->map_header, "X-File-Name");
    qname = u_map_get(req->map_url, "name");
    if (hname != NULL) {
      size_t n = 0;
      if (strlen(hname) > STORAGE_NAME_RAW_MAX ||
          storage_name_pct_decode(hname, strlen(hname), u->rawname, sizeof(u->rawname), &n) !=
              LC_OK) {
        upload_free(u);
        return lc_problem(resp, 400, NULL,
                          "X-File-Name must be percent-encoded UTF-8 of at most 4096 bytes");
      }
      u->rawname_len = n;
      u->has_name = 1;
    } else if (qname != NULL) {
      if (strlen(qname) > STORAGE_NAME_RAW_MAX) {
        upload_free(u);
        return lc_problem(resp, 400, NULL, "name is longer than 4096 bytes");
      }
      memcpy(u->rawname, qname, strlen(qname) + 1);
      u->rawname_len = strlen(qname);
      u->has_name = 1;
    }
  }
  u->fd = spool_open(app->files.spool_dir != NULL ? app->files.spool_dir : "/tmp", err);
  if (u->fd < 0) {
    lc_log_error("up_begin - %s", err);
    upload_free(u);
    return lc_problem(resp, 503, NULL, "the service cannot take uploads right now; retry");
  }
  crypto_hash_sha256_init(&u->sha);
  storage_sniff_stream_init(&u->sniff);
  atomic_fetch_add(&app->inflight, 1);
  u->counted = 1;
  *state = u;
  return U_CALLBACK_CONTINUE;
}

/* The file's bytes: count, hash, sniff, spool. */
static int up_sink(void *ud, const uint8_t *p, size_t n)
{
  upload_state *u = ud;
  size_t done = 0;

  u->len += n;
  if (u->len > u->app->files.max_upload)
    return LC_ERR_TOO_LARGE;
  crypto_hash_sha256_update(&u->sha, p, n);
  storage_sniff_stream_feed(&u->sniff, p, n);
  while (done < n) {
    ssize_t w = write(u->fd, p + done, n - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      lc_log_error("up_sink - spool write: %s", strerror(errno));
      return LC_ERR_IO;
    }
    done += (size_t)w;
  }
  return LC_OK;
}

static int up_data(void *state, const char *buf, size_t len, struct _u_response *resp)
{
  upload_state *u = state;
  char err[LC_ERR_LEN] = "";
  int rc;

  if (u->multipart)
    rc = storage_mp_stream_feed(u->mp, (const uint8_t *)buf, len, up_sink, u, err);
  else
    rc = up_sink(u, (const uint8_t *)buf, len);
  if (rc == LC_OK && u->multipart && storage_mp_stream_has_part(u->mp) &&
      strcmp(u->mp->part.field_name, "file") != 0) {
    lc_problem(resp, 400, NULL, "the multipart body must carry its file in the field \"file\"");
    return LC_ERR_PARAM;
  }
  if (rc == LC_OK)
    return LC_OK;
  if (rc == LC_ERR_TOO_LARGE)
    lc_problem(resp, 413, NULL, "the file is larger than the upload limit");
  else if (rc == LC_ERR_PARAM)
    lc_problem(resp, 400, NULL, err);
  else
    lc_problem(resp, 503, NULL, "the upload could not be stored; nothing was charged");
  return rc;
}

static int up_end(void *state, const struct _u_request *req, struct _u_response *resp)
{
  upload_state *u = state;
  storage_app *app = u->app;
  char err[LC_ERR_LEN] = "", sha[65];
  uint8_t digest[32];
  storage_upload up;
  storage_file f;
  spool_src src = {u->fd, 0};
  int rc, replayed = 0;

  (void)req;
  memset(&up, 0, sizeof(up));
  if (u->multipart) {
    if (storage_mp_stream_finish(u->mp, err) != LC_OK)
      return lc_problem(resp, 400, NULL, err);
    if (strcmp(u->mp->part.field_name, "file") != 0)
      return lc_problem(resp, 400, NULL,
                        "the multipart body must carry its file in the field \"file\"");
    up.declared_type = u->mp->part.content_type[0] != '\0' ? u->mp->part.content_type : NULL;
    if (u->mp->part.has_filename) {
      up.raw_name = u->mp->part.filename;
      up.raw_name_len = u->mp->part.filename_len;
    }
  } else {
    up.declared_type = u->has_declared ? u->declared : NULL;
  }
  if (up.raw_name == NULL && u->has_name) {
    up.raw_name = u->rawname;
    up.raw_name_len = u->rawname_len;
  }
  crypto_hash_sha256_final(&u->sha, digest);
  lc_hex_encode(digest, 32, sha);
  up.len = (size_t)u->len;
  up.read = spool_read;
  up.read_ud = &src;
  up.sha256 = sha;
  up.sniffed = storage_sniff_stream_type(&u->sniff);
  rc = storage_files_upload(&app->files, &u->id, &up, u->has_idem ? u->idem : NULL, &f,
                            &replayed, err);
  if (rc != LC_OK) {
    lc_metric_add("storage_uploads_failed_total", 1);
    return paid_problem(resp, rc, err, "the file could not be stored; nothing was charged");
  }
  lc_metric_add(replayed ? "storage_uploads_replayed_total" : "storage_uploads_total", 1);
  rc = send_file(resp, 201, &f);
  if (replayed)
    ulfius_add_header_to_response(resp, "Idempotent-Replayed", "true");
  return rc;
}

static void up_done(void *state, int completed)
{
  (void)completed;
  upload_free(state);
}

static int cb_file_list(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  storage_file *items = NULL;
  const lc_identity *id;
  const char *detail = NULL, *lim_s;
  char err[LC_ERR_LEN] = "", next[128];
  int64_t lim = 20;
  size_t n = 0;
  json_t *arr, *j;
  int rc, ret;

  rc = need_identity(resp, NEED_READ, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  lim_s = u_map_get(req->map_url, "limit");
  if (lim_s != NULL && lc_parse_i64(lim_s, 1, 100, &lim) != LC_OK)
    return lc_problem(resp, 400, NULL, "limit must be an integer between 1 and 100");
  items = lc_xcalloc((size_t)lim, sizeof(*items));
  rc = storage_files_list(app->files.pool, id->user_id, (int)lim, u_map_get(req->map_url, "cursor"),
                          items, &n, next, err);
  if (rc != LC_OK) {
    free(items);
    if (rc == LC_ERR_PARAM)
      return lc_problem(resp, 400, NULL, err);
    lc_log_error("cb_file_list - %s", err);
    return lc_problem(resp, rc == LC_ERR_DB ? 500 : 503, NULL, "files are temporarily unavailable");
  }
  arr = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, storage_file_to_json(&items[i]));
  free(items);
  j = json_pack("{s:o, s:o}", "items", arr, "next_cursor",
                next[0] != '\0' ? json_string(next) : json_null());
  ret = lc_json_send(resp, 200, j);
  json_decref(j);
  return ret;
}

static int cb_file_get(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  const lc_identity *id;
  const char *detail = NULL;
  storage_file f;
  char err[LC_ERR_LEN] = "";
  int rc;

  rc = need_identity(resp, NEED_READ, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  rc = storage_files_get(app->files.pool, id->user_id, u_map_get(req->map_url, "id"), &f, err);
  if (rc == LC_ERR_NOTFOUND)
    return lc_problem(resp, 404, NULL, "file not found");
  if (rc != LC_OK) {
    lc_log_error("cb_file_get - %s", err);
    return lc_problem(resp, rc == LC_ERR_DB ? 500 : 503, NULL, "files are temporarily unavailable");
  }
  return send_file(resp, 200, &f);
}

static int cb_file_content(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  const lc_identity *id;
  const char *detail = NULL;
  storage_file f;
  storage_file_stream *st = NULL;
  char err[LC_ERR_LEN] = "";
  int rc;

  rc = need_identity(resp, NEED_READ, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  rc = storage_files_open(&app->files, id->user_id, u_map_get(req->map_url, "id"), &f, &st, err);
  if (rc == LC_ERR_NOTFOUND)
    return lc_problem(resp, 404, NULL, "file not found");
  if (rc != LC_OK)
    return lc_problem(resp, 503, NULL, "file storage is temporarily unavailable");
  if (ulfius_set_stream_response(resp, 200, file_stream_cb, file_stream_free,
                                 (uint64_t)f.size_bytes, 65536, st) != U_OK) {
    storage_file_stream_close(st);
    return lc_problem(resp, 500, NULL, "cannot send the content");
  }
  attachment_headers(resp, f.content_type, f.name);
  lc_metric_add("storage_downloads_total", 1);
  return U_CALLBACK_COMPLETE;
}

static int cb_file_delete(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  const lc_identity *id;
  const char *detail = NULL;
  char err[LC_ERR_LEN] = "";
  int rc;

  rc = need_identity(resp, NEED_WRITE, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  rc = storage_files_delete(&app->files, id->user_id, u_map_get(req->map_url, "id"), err);
  if (rc == LC_ERR_NOTFOUND)
    return lc_problem(resp, 404, NULL, "file not found");
  if (rc != LC_OK) {
    lc_log_error("cb_file_delete - %s", err);
    return lc_problem(resp, rc == LC_ERR_DB ? 500 : 503, NULL, "files are temporarily unavailable");
  }
  {
    /* 200 with a body rather than 204: an empty upstream body must not depend
     * on how a proxy copies it */
    json_t *j = json_pack("{s:s, s:b}", "id", u_map_get(req->map_url, "id"), "deleted", 1);
    int ret = lc_json_send(resp, 200, j);
    json_decref(j);
    return ret;
  }
}

/* ---- paid reads --------------------------------------------------------------- */

static int cb_report_download(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  const lc_identity *id;
  const char *detail = NULL;
  storage_report r;
  char err[LC_ERR_LEN] = "", *body = NULL, name[64];
  size_t len = 0;
  int rc;

  rc = need_identity(resp, NEED_READ, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  if (atomic_load(&lc_svc_stopping))
    return lc_problem(resp, 503, NULL, "the service is shutting down; retry");
  atomic_fetch_add(&app->inflight, 1);
  rc = storage_reports_download(&app->reports, id, u_map_get(req->map_url, "id"), &r, &body, &len,
                                err);
  atomic_fetch_sub(&app->inflight, 1);
  if (rc != LC_OK)
    return paid_problem(resp, rc, err, "the report could not be read; nothing was charged");
  lc_metric_add("storage_report_downloads_total", 1);
  snprintf(name, sizeof(name), "report-%s.%s", r.id, r.format);
  return send_attachment(resp, body, len,
                         strcmp(r.format, "csv") == 0 ? "text/csv" : "application/json", name);
}

static int cb_service_metadata(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  const lc_identity *id;
  const char *detail = NULL;
  storage_file f;
  char err[LC_ERR_LEN] = "";
  int rc;

  rc = need_identity(resp, NEED_KEY_READ, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  if (atomic_load(&lc_svc_stopping))
    return lc_problem(resp, 503, NULL, "the service is shutting down; retry");
  atomic_fetch_add(&app->inflight, 1);
  rc = storage_files_metadata_paid(&app->files, id, u_map_get(req->map_url, "file_id"), &f, err);
  atomic_fetch_sub(&app->inflight, 1);
  if (rc != LC_OK)
    return paid_problem(resp, rc, err, "metadata could not be read; nothing was charged");
  lc_metric_add("storage_metadata_fetches_total", 1);
  return send_file(resp, 200, &f);
}

/* Runs only when no route completed the request (unknown /v1 path or method). */
static int cb_not_found(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  return lc_problem(resp, 404, NULL, "no such resource");
}

int storage_handlers_register(struct _u_instance *inst, storage_app *app, lc_iauth_ctx *iauth,
                              char err[LC_ERR_LEN])
{
  static const struct {
    const char *method, *path;
    unsigned int prio;
    int (*cb)(const struct _u_request *, struct _u_response *, void *);
  } routes[] = {
      {"POST", "/v1/reports", LC_PRIO_APP, cb_create},
      {"GET", "/v1/reports", LC_PRIO_APP, cb_list},
      {"GET", "/v1/reports/:id", LC_PRIO_APP, cb_get},
      {"GET", "/v1/reports/:id/download", LC_PRIO_APP, cb_report_download},
      {"GET", "/v1/files", LC_PRIO_APP, cb_file_list},
      {"GET", "/v1/files/:id", LC_PRIO_APP, cb_file_get},
      {"GET", "/v1/files/:id/content", LC_PRIO_APP, cb_file_content},
      {"DELETE", "/v1/files/:id", LC_PRIO_APP, cb_file_delete},
      {"GET", "/v1/service/metadata/:file_id", LC_PRIO_APP, cb_service_metadata},
      {"*", "/v1/*", LC_PRIO_POST, cb_not_found},
  };

  static const lc_stream_ops upload_ops = {up_begin, up_data, up_end, up_done};

  g_upload.app = app;
  g_upload.iauth = iauth;
  if (lc_svc_stream_route(inst, "POST", "/v1/files", &upload_ops, &g_upload) != LC_OK)
    return lc_err_set(err, LC_ERR, "cannot register the upload stream route");
  if (lc_svc_route(inst, "*", "*", LC_PRIO_AUTH, lc_iauth_callback, iauth) != LC_OK)
    return lc_err_set(err, LC_ERR, "cannot register the auth middleware");
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
    if (lc_svc_route(inst, routes[i].method, routes[i].path, routes[i].prio, routes[i].cb, app) !=
        LC_OK)
      return lc_err_set(err, LC_ERR, "cannot register %s %s", routes[i].method, routes[i].path);
  }
  return LC_OK;
}
