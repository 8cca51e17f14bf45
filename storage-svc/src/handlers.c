/* handlers.c - storage-svc routes: parse, validate, call reports.c, map the
 * status, send JSON or problem+json (see handlers.h). */
#include "handlers.h"

#include <string.h>

#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"

#define BODY_MAX 16384

enum { NEED_READ, NEED_WRITE };

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
