/* handlers.c - storage-svc routes: parse, validate, call reports.c, map the
 * status, send JSON or problem+json (see handlers.h). */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "multipart.h"
#include "names.h"

#define BODY_MAX 16384

enum { NEED_READ, NEED_WRITE, NEED_KEY_READ };

/* Identity checks shared by the routes: a real user identity whose API-key
 * scope allows the operation (gateway checks too; this is defence in depth). */
static int need_identity(const struct _u_response *resp, int need, const lc_identity **out,
                         const char **detail)
{
  const lc_identity *id = lc_iauth_identity(resp);
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

/* Sends buf (new; ownership passes to the response, no copy) as an
 * attachment named name with content type ctype. */
static int send_attachment(struct _u_response *resp, char *buf, size_t len, const char *ctype,
                           const char *name)
{
  char cd[STORAGE_CD_MAX], ct[STORAGE_CT_MAX + 32];
  body_stream *b;

  if (storage_content_disposition(name, cd, sizeof(cd)) != LC_OK)
    lc_strlcpy(cd, "attachment", sizeof(cd));
  snprintf(ct, sizeof(ct), "%s%s", ctype,
           strncmp(ctype, "text/", 5) == 0 || strcmp(ctype, "application/json") == 0
               ? "; charset=utf-8" : "");
  b = lc_xmalloc(sizeof(*b));
  b->buf = buf;
  b->len = len;
  if (ulfius_set_stream_response(resp, 200, body_stream_cb, body_stream_free, len, 65536, b) !=
      U_OK) {
    body_stream_free(b);
    return lc_problem(resp, 500, NULL, "cannot send the content");
  }
  u_map_put(resp->map_header, "Content-Type", ct);
  u_map_put(resp->map_header, "Content-Disposition", cd);
  u_map_put(resp->map_header, "X-Content-Type-Options", "nosniff");
  u_map_put(resp->map_header, "Cache-Control", "private, no-store");
  return U_CALLBACK_COMPLETE;
}

static int send_file(struct _u_response *resp, int status, const storage_file *f)
{
  json_t *j = storage_file_to_json(f);
  int ret = lc_json_send(resp, status, j);

  json_decref(j);
  return ret;
}

/* ---- files ----------------------------------------------------------------- */

static int cb_file_upload(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  storage_app *app = ud;
  const lc_identity *id;
  const char *detail = NULL, *idem, *ct, *cl, *hname, *qname;
  char err[LC_ERR_LEN] = "", rawname[STORAGE_NAME_RAW_MAX + 1];
  storage_mp_part *part = NULL;
  storage_upload up;
  storage_file f;
  int64_t clen = -1;
  int rc, replayed = 0, ret, multipart;

  rc = need_identity(resp, NEED_WRITE, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  if (atomic_load(&lc_svc_stopping))
    return lc_problem(resp, 503, NULL, "the service is shutting down; retry");
  idem = u_map_get_case(req->map_header, "Idempotency-Key");
  if (idem != NULL && !storage_idem_key_valid(idem))
    return lc_problem(resp, 400, NULL,
                      "Idempotency-Key must be 1..128 printable ASCII characters without ','");
  ct = u_map_get_case(req->map_header, "Content-Type");
  multipart = storage_mp_is_multipart(ct);
  /* size limit from Content-Length, before the body is used or anything reserved */
  cl = u_map_get_case(req->map_header, "Content-Length");
  if (cl != NULL && lc_parse_i64(cl, 0, INT64_MAX, &clen) != LC_OK)
    return lc_problem(resp, 400, NULL, "invalid Content-Length");
  if (clen < 0)
    clen = (int64_t)req->binary_body_length;
  if ((uint64_t)clen > (uint64_t)app->files.max_upload + (multipart ? STORAGE_MP_OVERHEAD : 0) ||
      req->binary_body_length != (size_t)clen)
    return lc_problem(resp, 413, NULL, "the file is larger than the upload limit");

  memset(&up, 0, sizeof(up));
  if (multipart) {
    part = lc_xmalloc(sizeof(*part));
    rc = storage_mp_parse(ct, req->binary_body, req->binary_body_length, part, err);
    if (rc != LC_OK) {
      ret = lc_problem(resp, 400, NULL, err);
      goto out;
    }
    /* the one part must be the form field "file" (the API contract) */
    if (strcmp(part->field_name, "file") != 0) {
      ret = lc_problem(resp, 400, NULL, "the multipart body must carry its file in the field \"file\"");
      goto out;
    }
    up.data = part->data;
    up.len = part->len;
    up.declared_type = part->content_type[0] != '\0' ? part->content_type : NULL;
    if (part->has_filename) {
      up.raw_name = part->filename;
      up.raw_name_len = part->filename_len;
    }
  } else {
    up.data = req->binary_body;
    up.len = req->binary_body_length;
    up.declared_type = ct;
  }
  if (up.raw_name == NULL) {
    hname = u_map_get_case(req->map_header, "X-File-Name");
    qname = u_map_get(req->map_url, "name");
    if (hname != NULL) {
      size_t n = 0;
      if (strlen(hname) > STORAGE_NAME_RAW_MAX ||
          storage_name_pct_decode(hname, strlen(hname), rawname, sizeof(rawname), &n) != LC_OK) {
        ret = lc_problem(resp, 400, NULL,
                         "X-File-Name must be percent-encoded UTF-8 of at most 4096 bytes");
        goto out;
      }
      up.raw_name = rawname;
      up.raw_name_len = n;
    } else if (qname != NULL) {
      if (strlen(qname) > STORAGE_NAME_RAW_MAX) {
        ret = lc_problem(resp, 400, NULL, "name is longer than 4096 bytes");
        goto out;
      }
      up.raw_name = qname;
      up.raw_name_len = strlen(qname);
    }
  }

  atomic_fetch_add(&app->inflight, 1);
  rc = storage_files_upload(&app->files, id, &up, idem, &f, &replayed, err);
  atomic_fetch_sub(&app->inflight, 1);
  if (rc != LC_OK) {
    lc_metric_add("storage_uploads_failed_total", 1);
    ret = paid_problem(resp, rc, err, "the file could not be stored; nothing was charged");
    goto out;
  }
  lc_metric_add(replayed ? "storage_uploads_replayed_total" : "storage_uploads_total", 1);
  ret = send_file(resp, 201, &f);
  if (replayed)
    ulfius_add_header_to_response(resp, "Idempotent-Replayed", "true");
out:
  free(part);
  return ret;
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
  char err[LC_ERR_LEN] = "", *body = NULL;
  size_t len = 0;
  int rc;

  rc = need_identity(resp, NEED_READ, &id, &detail);
  if (rc != LC_OK)
    return lc_problem_from_err(resp, rc, detail);
  rc = storage_files_read(&app->files, id->user_id, u_map_get(req->map_url, "id"), &f, &body,
                          &len, err);
  if (rc == LC_ERR_NOTFOUND)
    return lc_problem(resp, 404, NULL, "file not found");
  if (rc != LC_OK)
    return lc_problem(resp, 503, NULL, "file storage is temporarily unavailable");
  return send_attachment(resp, body, len, f.content_type, f.name);
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
      {"POST", "/v1/files", LC_PRIO_APP, cb_file_upload},
      {"GET", "/v1/files", LC_PRIO_APP, cb_file_list},
      {"GET", "/v1/files/:id", LC_PRIO_APP, cb_file_get},
      {"GET", "/v1/files/:id/content", LC_PRIO_APP, cb_file_content},
      {"DELETE", "/v1/files/:id", LC_PRIO_APP, cb_file_delete},
      {"GET", "/v1/service/metadata/:file_id", LC_PRIO_APP, cb_service_metadata},
      {"*", "/v1/*", LC_PRIO_POST, cb_not_found},
  };

  if (lc_svc_route(inst, "*", "*", LC_PRIO_AUTH, lc_iauth_callback, iauth) != LC_OK)
    return lc_err_set(err, LC_ERR, "cannot register the auth middleware");
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
    if (lc_svc_route(inst, routes[i].method, routes[i].path, routes[i].prio, routes[i].cb, app) !=
        LC_OK)
      return lc_err_set(err, LC_ERR, "cannot register %s %s", routes[i].method, routes[i].path);
  }
  return LC_OK;
}
