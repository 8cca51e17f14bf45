/* credit_handlers.c - route table and thin HTTP adapters; see credit_handlers.h. */
#include "credit_handlers.h"
#include "credit_notify.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "credit_costs.h"
#include "credit_idem.h"
#include "credit_ledger.h"
#include "credit_topup.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"

#define BODY_MAX 4096
#define DEFAULT_LIMIT 20

/* ---- helpers ---- */

/* Identity set by lc_iauth_callback; an anonymous one if it is missing. */
static const lc_identity *caller(const struct _u_response *resp) {
  static const lc_identity anon = {.role = "anon"};
  const lc_identity *id = lc_iauth_identity(resp);
  return id ? id : &anon;
}

/* Sends a problem for rc; 5xx details are generic (the reason is logged). */
static int send_err(struct _u_response *resp, const char *where, int rc, const char *err) {
  if (rc == LC_ERR_FUNDS)
    return lc_problem(resp, 402, "insufficient-credits", err);
  if (lc_err_http_status(rc) >= 500) {
    lc_log_error("%s - %s: %s", where, lc_err_name(rc), err);
    return lc_problem_from_err(resp, rc, "the request could not be completed, try again later");
  }
  return lc_problem_from_err(resp, rc, err && err[0] ? err : NULL);
}

static int is_role(const lc_identity *id, const char *role) {
  return strcmp(id->role, role) == 0;
}

static int privileged(const lc_identity *id) {
  return is_role(id, "admin") || is_role(id, "system");
}

/* The caller may act on user_id's account (internal routes). */
static int may_act_for(const lc_identity *id, const char *user_id, char err[LC_ERR_LEN]) {
  if (privileged(id))
    return LC_OK;
  if (!is_role(id, "user") && !is_role(id, "service"))
    return lc_err_set(err, LC_ERR_FORBIDDEN, "role not allowed");
  if (id->user_id[0] == '\0' || strcasecmp(id->user_id, user_id) != 0)
    return lc_err_set(err, LC_ERR_FORBIDDEN, "user_id must be the caller's own");
  return LC_OK;
}

/* The caller reads its own account through the public API. */
static int own_reader(const lc_identity *id, char err[LC_ERR_LEN]) {
  if (id->user_id[0] == '\0' || !lc_uuid_valid(id->user_id))
    return lc_err_set(err, LC_ERR_UNAUTH, "authentication required");
  if (!is_role(id, "user") && !is_role(id, "admin") && !is_role(id, "service"))
    return lc_err_set(err, LC_ERR_FORBIDDEN, "role not allowed");
  if (strcmp(id->scope, "write") == 0)
    return lc_err_set(err, LC_ERR_FORBIDDEN, "this key's scope does not allow reads");
  return LC_OK;
}

/* Rejects query parameters outside allowed (NULL-terminated). */
static int only_params(const struct _u_request *req, const char *const *allowed,
                       char err[LC_ERR_LEN]) {
  const char **keys = u_map_enum_keys(req->map_url);
  for (size_t i = 0; keys && keys[i]; i++) {
    int ok = 0;
    for (size_t j = 0; allowed[j] && !ok; j++)
      ok = strcmp(keys[i], allowed[j]) == 0;
    if (!ok)
      return lc_err_set(err, LC_ERR_PARAM, "unknown query parameter '%.40s'", keys[i]);
  }
  return LC_OK;
}

/* Optional query parameter: NULL when absent; present but empty -> error. */
static int opt_param(const struct _u_request *req, const char *name, const char **out,
                     char err[LC_ERR_LEN]) {
  *out = u_map_get(req->map_url, name);
  if (*out != NULL && (*out)[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "%s must not be empty", name);
  return LC_OK;
}

static int limit_param(const struct _u_request *req, int *limit, char err[LC_ERR_LEN]) {
  const char *s = NULL;
  int rc = opt_param(req, "limit", &s, err);
  if (rc != LC_OK)
    return rc;
  *limit = DEFAULT_LIMIT;
  if (s == NULL)
    return LC_OK;
  int64_t v = 0;
  if (lc_parse_i64(s, 1, 100, &v) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "limit must be an integer 1..100");
  *limit = (int)v;
  return LC_OK;
}

static int send_page(struct _u_response *resp, json_t *items, char *next) {
  json_t *o = json_pack("{s:o, s:o}", "items", items, "next_cursor",
                        next ? json_string(next) : json_null());
  free(next);
  int r = lc_json_send(resp, 200, o);
  json_decref(o);
  return r;
}

/* Parses a JSON object body with only the allowed fields. */
static int body_obj(const struct _u_request *req, const char *const *allowed, json_t **out,
                    char err[LC_ERR_LEN]) {
  int rc = lc_json_body(req, BODY_MAX, out, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_json_only_fields(*out, allowed, err);
  if (rc != LC_OK) {
    json_decref(*out);
    *out = NULL;
  }
  return rc;
}

/* Request ids use the X-Request-Id alphabet of lc/iauth.h. */
static int rid_valid(const char *s) {
  size_t n = strlen(s);
  if (n > 63)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!isalnum((unsigned char)c) && c != '-' && c != '_' && c != '.' && c != ':')
      return 0;
  }
  return 1;
}

static const char *str_field(const json_t *o, const char *name) {
  const json_t *v = json_object_get(o, name);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- /internal ---- */

static int cb_open_account(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  static const char *const allowed[] = {"user_id", NULL};
  char err[LC_ERR_LEN] = "";
  json_t *b = NULL;
  int rc = body_obj(req, allowed, &b, err);
  if (rc != LC_OK)
    return send_err(resp, "open_account", rc, err);
  const char *uid = str_field(b, "user_id");
  int created = 0;
  int64_t bal = 0;
  if (uid == NULL || !lc_uuid_valid(uid))
    rc = lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  if (rc == LC_OK)
    rc = may_act_for(id, uid, err);
  if (rc == LC_OK)
    rc = credit_ledger_open_account(ctx->pool, uid, id->request_id, &created, &bal, err);
  if (rc != LC_OK) {
    json_decref(b);
    return send_err(resp, "open_account", rc, err);
  }
  json_t *o = json_pack("{s:s, s:I}", "user_id", uid, "balance", (json_int_t)bal);
  json_decref(b);
  int r = lc_json_send(resp, created ? 201 : 200, o);
  json_decref(o);
  return r;
}

static int cb_reserve(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  /* request_id is accepted in the body too (SPEC §4 lists it there); the
   * signed X-Request-Id is used when it is absent. */
  static const char *const allowed[] = {"user_id", "action", "idempotency_key", "request_id",
                                        NULL};
  char err[LC_ERR_LEN] = "";
  json_t *b = NULL;
  int rc = body_obj(req, allowed, &b, err);
  if (rc != LC_OK)
    return send_err(resp, "reserve", rc, err);
  const char *uid = str_field(b, "user_id"), *action = str_field(b, "action");
  const json_t *jk = json_object_get(b, "idempotency_key");
  const char *key = json_is_string(jk) ? json_string_value(jk) : NULL;
  const char *hkey = u_map_get_case(req->map_header, "Idempotency-Key");
  const json_t *jr = json_object_get(b, "request_id");
  const char *req_id = json_is_string(jr) ? json_string_value(jr) : NULL;
  if (req_id == NULL || req_id[0] == '\0')
    req_id = id->request_id;
  if (uid == NULL || !lc_uuid_valid(uid))
    rc = lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  else if ((jr != NULL && !json_is_null(jr) && !json_is_string(jr)) || !rid_valid(req_id))
    rc = lc_err_set(err, LC_ERR_PARAM, "request_id must be 1..63 of [A-Za-z0-9._:-]");
  else if (action == NULL)
    rc = lc_err_set(err, LC_ERR_PARAM, "action must be a string");
  else if (jk != NULL && !json_is_null(jk) && key == NULL)
    rc = lc_err_set(err, LC_ERR_PARAM, "idempotency_key must be a string");
  else if (key && hkey && strcmp(key, hkey) != 0)
    rc = lc_err_set(err, LC_ERR_PARAM, "idempotency_key differs from the Idempotency-Key header");
  if (rc == LC_OK)
    rc = may_act_for(id, uid, err);
  credit_reservation res;
  int64_t avail = 0;
  if (rc == LC_OK)
    rc = credit_ledger_reserve(ctx->pool, uid, action, key ? key : hkey, req_id,
                               ctx->ttl_s, &res, &avail, err);
  json_decref(b);
  if (rc != LC_OK) {
    if (rc == LC_ERR_FUNDS)
      lc_metric_add("credit_reservations_rejected_total", 1);
    return send_err(resp, "reserve", rc, err);
  }
  lc_metric_add("credit_reservations_total", 1);
  json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "reservation_id", res.id, "action",
                        res.action, "cost", (json_int_t)res.cost, "expires_at", res.expires_at,
                        "status", res.status);
  int r = lc_json_send(resp, 201, o);
  json_decref(o);
  return r;
}

/* owner filter for reservation ids: NULL for admin/system, else the caller. */
static int reservation_owner(const lc_identity *id, const char **owner, char err[LC_ERR_LEN]) {
  *owner = NULL;
  if (privileged(id))
    return LC_OK;
  if ((!is_role(id, "user") && !is_role(id, "service")) || id->user_id[0] == '\0')
    return lc_err_set(err, LC_ERR_FORBIDDEN, "role not allowed");
  *owner = id->user_id;
  return LC_OK;
}

static int no_body(const struct _u_request *req, char err[LC_ERR_LEN]) {
  if (req->binary_body_length == 0)
    return LC_OK;
  json_t *b = NULL;
  static const char *const none[] = {NULL};
  int rc = body_obj(req, none, &b, err);
  json_decref(b);
  return rc;
}

static int cb_commit(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  char err[LC_ERR_LEN] = "";
  const char *owner = NULL;
  credit_debit d;
  int rc = no_body(req, err);
  if (rc == LC_OK)
    rc = reservation_owner(id, &owner, err);
  if (rc == LC_OK)
    rc = credit_ledger_commit(ctx->pool, u_map_get(req->map_url, "id"), owner,
                              id->user_id[0] ? id->user_id : id->role, &d, err);
  if (rc != LC_OK)
    return send_err(resp, "commit", rc, err);
  if (!d.replayed)
    lc_metric_add("credit_debits_committed_total", 1);
  json_t *o = json_pack("{s:s, s:I}", "debit_id", d.debit_id, "balance", (json_int_t)d.balance);
  int r = lc_json_send(resp, 200, o);
  json_decref(o);
  return r;
}

static int cb_release(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  char err[LC_ERR_LEN] = "";
  const char *owner = NULL;
  int rc = no_body(req, err);
  if (rc == LC_OK)
    rc = reservation_owner(id, &owner, err);
  if (rc == LC_OK)
    rc = credit_ledger_release(ctx->pool, u_map_get(req->map_url, "id"), owner, err);
  if (rc != LC_OK)
    return send_err(resp, "release", rc, err);
  json_t *o = json_pack("{s:b}", "released", 1);
  int r = lc_json_send(resp, 200, o);
  json_decref(o);
  return r;
}

/* Shared by GET /internal/ledger and GET /v1/credits/ledger. */
static int ledger_page(const struct _u_request *req, struct _u_response *resp, credit_ctx *ctx,
                       const char *uid, char err[LC_ERR_LEN]) {
  int limit = 0;
  const char *cursor = NULL;
  json_t *items = NULL;
  char *next = NULL;
  int rc = limit_param(req, &limit, err);
  if (rc == LC_OK)
    rc = opt_param(req, "cursor", &cursor, err);
  if (rc == LC_OK)
    rc = credit_ledger_list(ctx->pool, uid, limit, cursor, &items, &next, err);
  if (rc != LC_OK)
    return send_err(resp, "ledger", rc, err);
  return send_page(resp, items, next);
}

static int cb_internal_ledger(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  static const char *const allowed[] = {"user_id", "limit", "cursor", NULL};
  char err[LC_ERR_LEN] = "";
  int rc = only_params(req, allowed, err);
  const char *uid = u_map_get(req->map_url, "user_id");
  if (rc == LC_OK && (uid == NULL || !lc_uuid_valid(uid)))
    rc = lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID");
  if (rc == LC_OK)
    rc = may_act_for(id, uid, err);
  if (rc != LC_OK)
    return send_err(resp, "internal_ledger", rc, err);
  return ledger_page(req, resp, ctx, uid, err);
}

/* ---- /v1 ---- */

static int cb_credits(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  static const char *const allowed[] = {NULL};
  char err[LC_ERR_LEN] = "";
  int64_t bal = 0, reserved = 0;
  int rc = own_reader(id, err);
  if (rc == LC_OK)
    rc = only_params(req, allowed, err);
  if (rc == LC_OK)
    rc = credit_ledger_balance(ctx->pool, id->user_id, &bal, &reserved, err);
  if (rc != LC_OK)
    return send_err(resp, "credits", rc, err);
  /* balance = committed balance; available = what can still be reserved. */
  json_t *o = json_pack("{s:I, s:I}", "balance", (json_int_t)bal, "available",
                        (json_int_t)(bal - reserved));
  int r = lc_json_send(resp, 200, o);
  json_decref(o);
  return r;
}

static int cb_credits_ledger(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  static const char *const allowed[] = {"limit", "cursor", NULL};
  char err[LC_ERR_LEN] = "";
  int rc = own_reader(id, err);
  if (rc == LC_OK)
    rc = only_params(req, allowed, err);
  if (rc != LC_OK)
    return send_err(resp, "credits_ledger", rc, err);
  return ledger_page(req, resp, ctx, id->user_id, err);
}

static int cb_audit(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  static const char *const allowed[] = {"user_id", "action", "since", "until",
                                        "limit",   "cursor", NULL};
  char err[LC_ERR_LEN] = "";
  credit_audit_query q;
  memset(&q, 0, sizeof(q));
  int rc = LC_OK;
  if (id->user_id[0] == '\0')
    rc = lc_err_set(err, LC_ERR_UNAUTH, "authentication required");
  else if (!is_role(id, "admin"))
    rc = lc_err_set(err, LC_ERR_FORBIDDEN, "admin role required");
  if (rc == LC_OK)
    rc = only_params(req, allowed, err);
  if (rc == LC_OK)
    rc = opt_param(req, "user_id", &q.user_id, err);
  if (rc == LC_OK)
    rc = opt_param(req, "action", &q.action, err);
  if (rc == LC_OK)
    rc = opt_param(req, "since", &q.since, err);
  if (rc == LC_OK)
    rc = opt_param(req, "until", &q.until, err);
  if (rc == LC_OK)
    rc = opt_param(req, "cursor", &q.cursor, err);
  if (rc == LC_OK)
    rc = limit_param(req, &q.limit, err);
  json_t *items = NULL;
  char *next = NULL;
  if (rc == LC_OK)
    rc = credit_ledger_audit(ctx->pool, &q, &items, &next, err);
  if (rc != LC_OK)
    return send_err(resp, "audit", rc, err);
  return send_page(resp, items, next);
}

/* ---- admin top-up ---- */

/* Sends a stored JSON text body with status. */
static int send_text(struct _u_response *resp, int status, const char *text, int replayed) {
  ulfius_set_string_body_response(resp, (unsigned int)status, text);
  u_map_put(resp->map_header, "Content-Type", "application/json");
  if (replayed)
    u_map_put(resp->map_header, "Idempotent-Replayed", "true");
  return U_CALLBACK_COMPLETE;
}

static int cb_topup(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  char err[LC_ERR_LEN] = "", hash[65];
  const char *uid = u_map_get(req->map_url, "id");
  const char *key = u_map_get_case(req->map_header, "Idempotency-Key");
  json_t *b = NULL;
  int64_t amount = 0;
  const char *reason = NULL;
  int rc = LC_OK;
  if (id->user_id[0] == '\0')
    rc = lc_err_set(err, LC_ERR_UNAUTH, "authentication required");
  else if (!is_role(id, "admin"))
    rc = lc_err_set(err, LC_ERR_FORBIDDEN, "admin role required");
  else if (strcmp(id->scope, "read") == 0)
    rc = lc_err_set(err, LC_ERR_FORBIDDEN, "this key's scope does not allow writes");
  else if (uid == NULL || !lc_uuid_valid(uid))
    rc = lc_err_set(err, LC_ERR_PARAM, "user id must be a UUID");
  else if (key != NULL && !credit_idem_key_valid(key))
    rc = lc_err_set(err, LC_ERR_PARAM, "Idempotency-Key must be 1..255 printable ASCII characters");
  if (rc == LC_OK)
    rc = lc_json_body(req, BODY_MAX, &b, err);
  if (rc == LC_OK)
    rc = credit_topup_validate(b, &amount, &reason, err);
  if (rc != LC_OK) {
    json_decref(b);
    return send_err(resp, "topup", rc, err);
  }
  /* credit-svc does not own users: ask auth-svc that the target exists, so a
   * top-up can never open an account for an id nobody has. */
  if (ctx->auth_url != NULL) {
    rc = credit_auth_user_lookup(ctx->iauth.secret, ctx->iauth.secret_len, ctx->auth_url, uid,
                                 NULL, 0, err);
    if (rc == LC_ERR_NOTFOUND) {
      json_decref(b);
      return lc_problem(resp, 404, "not-found", "no such user");
    }
    if (rc != LC_OK) {
      json_decref(b);
      return send_err(resp, "topup", LC_ERR_UNAVAIL, err);
    }
  }
  credit_topup_idem idem = {NULL, NULL, NULL};
  if (key != NULL) {
    credit_idem_hash(req->http_verb, req->http_url, req->binary_body, req->binary_body_length,
                     hash);
    credit_idem_result res;
    rc = credit_idem_claim(ctx->pool, id->user_id, key, hash, &res, err);
    if (rc != LC_OK) {
      json_decref(b);
      return send_err(resp, "topup", rc, err);
    }
    if (res.decision != CREDIT_IDEM_NEW) {
      json_decref(b);
      int r;
      if (res.decision == CREDIT_IDEM_REPLAY) {
        lc_metric_add("credit_idempotent_replays_total", 1);
        r = send_text(resp, res.status, res.body, 1);
      } else if (res.decision == CREDIT_IDEM_MISMATCH) {
        r = lc_problem(resp, 422, "idempotency-key-reused",
                       "this Idempotency-Key was used for a different request");
      } else {
        r = lc_problem(resp, 409, "idempotency-key-in-use",
                       "a request with this Idempotency-Key is still being processed");
      }
      credit_idem_result_free(&res);
      return r;
    }
    idem = (credit_topup_idem){id->user_id, key, hash};
  }
  char *text = NULL;
  rc = credit_topup_run(ctx->pool, uid, amount, reason, id->user_id, id->request_id,
                        key ? &idem : NULL, &text, err);
  json_decref(b);
  if (rc != LC_OK) {
    char err2[LC_ERR_LEN];
    if (key != NULL && rc != LC_ERR_CONFLICT)
      credit_idem_abandon(ctx->pool, id->user_id, key, hash, err2);
    return send_err(resp, "topup", rc, err);
  }
  lc_metric_add("credit_topups_total", 1);
  int r = send_text(resp, 201, text, 0);
  free(text);
  return r;
}

/* ---- internal: balances, debits (admin / system callers) ---- */

static int cb_balances(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  static const char *const allowed[] = {"user_ids", NULL};
  char err[LC_ERR_LEN] = "";
  int rc = privileged(id) ? LC_OK : lc_err_set(err, LC_ERR_FORBIDDEN, "admin or system only");
  if (rc == LC_OK)
    rc = only_params(req, allowed, err);
  const char *list = u_map_get(req->map_url, "user_ids");
  if (rc == LC_OK && (list == NULL || list[0] == '\0' ||
                      strlen(list) > (size_t)CREDIT_BALANCES_MAX * 37))
    rc = lc_err_set(err, LC_ERR_PARAM, "user_ids must list 1..%d UUIDs", CREDIT_BALANCES_MAX);
  if (rc != LC_OK)
    return send_err(resp, "balances", rc, err);
  char buf[CREDIT_BALANCES_MAX * 37 + 1];
  const char *ids[CREDIT_BALANCES_MAX];
  size_t n = 0;
  lc_strlcpy(buf, list, sizeof(buf));
  for (char *p = buf; p != NULL && rc == LC_OK;) {
    char *comma = strchr(p, ',');
    if (comma)
      *comma = '\0';
    if (n >= CREDIT_BALANCES_MAX || !lc_uuid_valid(p))
      rc = lc_err_set(err, LC_ERR_PARAM, "user_ids must list 1..%d UUIDs", CREDIT_BALANCES_MAX);
    else
      ids[n++] = p;
    p = comma ? comma + 1 : NULL;
  }
  json_t *items = NULL;
  if (rc == LC_OK)
    rc = credit_ledger_balances(ctx->pool, ids, n, &items, err);
  if (rc != LC_OK)
    return send_err(resp, "balances", rc, err);
  json_t *o = json_pack("{s:o}", "items", items);
  int r = lc_json_send(resp, 200, o);
  json_decref(o);
  return r;
}

static int cb_debits(const struct _u_request *req, struct _u_response *resp, void *ud) {
  credit_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  static const char *const allowed[] = {"since", "until", "limit", "cursor", NULL};
  char err[LC_ERR_LEN] = "";
  const char *since = NULL, *until = NULL, *cursor = NULL, *ls = NULL;
  int64_t limit = 100;
  int rc = privileged(id) ? LC_OK : lc_err_set(err, LC_ERR_FORBIDDEN, "admin or system only");
  if (rc == LC_OK)
    rc = only_params(req, allowed, err);
  if (rc == LC_OK)
    rc = opt_param(req, "since", &since, err);
  if (rc == LC_OK)
    rc = opt_param(req, "until", &until, err);
  if (rc == LC_OK)
    rc = opt_param(req, "cursor", &cursor, err);
  if (rc == LC_OK)
    rc = opt_param(req, "limit", &ls, err);
  if (rc == LC_OK && ls && lc_parse_i64(ls, 1, 1000, &limit) != LC_OK)
    rc = lc_err_set(err, LC_ERR_PARAM, "limit must be an integer 1..1000");
  json_t *items = NULL;
  char *next = NULL;
  if (rc == LC_OK)
    rc = credit_ledger_debits(ctx->pool, since, until, (int)limit, cursor, &items, &next, err);
  if (rc != LC_OK)
    return send_err(resp, "debits", rc, err);
  return send_page(resp, items, next);
}

/* ---- route table ---- */

static const struct {
  const char *method, *path;
  int (*cb)(const struct _u_request *, struct _u_response *, void *);
} ROUTES[] = {
    {"POST", "/internal/accounts", cb_open_account},
    {"POST", "/internal/reservations", cb_reserve},
    {"POST", "/internal/reservations/:id/commit", cb_commit},
    {"POST", "/internal/reservations/:id/release", cb_release},
    {"GET", "/internal/ledger", cb_internal_ledger},
    {"GET", "/v1/credits", cb_credits},
    {"GET", "/v1/credits/ledger", cb_credits_ledger},
    {"GET", "/v1/admin/audit", cb_audit},
    {"POST", "/v1/admin/users/:id/credits", cb_topup},
    {"GET", "/internal/balances", cb_balances},
    {"GET", "/internal/debits", cb_debits},
};

int credit_handlers_register(struct _u_instance *inst, credit_ctx *ctx, char err[LC_ERR_LEN]) {
  /* Every request but the ops routes must carry a valid internal signature,
   * also on paths this daemon does not serve (401 before 404). */
  if (lc_svc_route(inst, "*", "*", LC_PRIO_AUTH, lc_iauth_callback, &ctx->iauth) != LC_OK)
    return lc_err_set(err, LC_ERR, "cannot register the internal auth middleware");
  for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
    if (lc_svc_route(inst, ROUTES[i].method, ROUTES[i].path, LC_PRIO_APP, ROUTES[i].cb, ctx) !=
        LC_OK)
      return lc_err_set(err, LC_ERR, "cannot register %s %s", ROUTES[i].method, ROUTES[i].path);
  }
  return LC_OK;
}
