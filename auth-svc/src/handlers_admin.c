/* handlers_admin.c - HTTP adapters for admin.h: admin users and API keys
 * (role admin) and the gateway's internal routes (role system). */
#include "handlers.h"

#include <string.h>

#include <jansson.h>

#include "admin.h"
#include "apikeys.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"

enum { NEED_READ, NEED_WRITE, NEED_SESSION };

/* Admin identity check (defence in depth: the gateway already enforces
 * roles and key scopes). Returns the identity or NULL after answering. */
static const lc_identity *admin_identity(struct _u_response *resp, int need) {
  const lc_identity *id = lc_iauth_identity(resp);
  if (id == NULL || !lc_uuid_valid(id->user_id)) {
    lc_problem(resp, 401, "unauthorized", "authentication required");
    return NULL;
  }
  if (strcmp(id->role, "admin") != 0) {
    lc_problem(resp, 403, "forbidden", "admin role required");
    return NULL;
  }
  if ((need == NEED_SESSION && strcmp(id->scope, "full") != 0) ||
      (need == NEED_WRITE && strcmp(id->scope, "read") == 0)) {
    lc_problem(resp, 403, "forbidden", "this action needs another scope");
    return NULL;
  }
  return id;
}

static int system_only(struct _u_response *resp) {
  const lc_identity *id = lc_iauth_identity(resp);
  if (id == NULL || strcmp(id->role, "system") != 0) {
    lc_problem(resp, 403, "forbidden", "internal route");
    return 0;
  }
  return 1;
}

static int send_json(struct _u_response *resp, int status, json_t *j) {
  int r;
  if (j == NULL)
    return auth_http_error(resp, "admin", LC_ERR_NOMEM, "json");
  u_map_put(resp->map_header, "Cache-Control", "no-store");
  r = lc_json_send(resp, status, j);
  json_decref(j);
  return r;
}

/* limit/cursor query parameters; answers 400 itself (returns 0). */
static int page_params(const struct _u_request *req, struct _u_response *resp, int *limit,
                       const char **cursor) {
  const char *l = u_map_get(req->map_url, "limit");
  const char *c = u_map_get(req->map_url, "cursor");
  int64_t v = AUTH_PAGE_DEFAULT;

  if (l != NULL && lc_parse_i64(l, 1, AUTH_PAGE_MAX, &v) != LC_OK) {
    lc_problem(resp, 400, NULL, "limit must be an integer 1..100");
    return 0;
  }
  if (c != NULL && !lc_uuid_valid(c)) {
    lc_problem(resp, 400, NULL, "cursor is invalid");
    return 0;
  }
  *limit = (int)v;
  *cursor = c;
  return 1;
}

int auth_h_admin_users(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  const char *cursor = NULL;
  json_t *out = NULL;
  int limit = 0, rc;

  if (admin_identity(resp, NEED_READ) == NULL || !page_params(req, resp, &limit, &cursor))
    return U_CALLBACK_COMPLETE;
  rc = auth_admin_list_users(ctx, cursor, limit, &out, err);
  if (rc != LC_OK)
    return auth_http_error(resp, "admin_users", rc, err);
  return send_json(resp, 200, out);
}

int auth_h_admin_user(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  json_t *out = NULL;
  int rc;

  if (admin_identity(resp, NEED_READ) == NULL)
    return U_CALLBACK_COMPLETE;
  rc = auth_admin_get_user(ctx, u_map_get(req->map_url, "id"), &out, err);
  if (rc != LC_OK)
    return auth_http_error(resp, "admin_user", rc, err);
  return send_json(resp, 200, out);
}

int auth_h_admin_patch_user(const struct _u_request *req, struct _u_response *resp, void *ud) {
  static const char *const allowed[] = {"role", "disabled", NULL};
  const auth_ctx *ctx = ud;
  const lc_identity *id;
  char err[LC_ERR_LEN] = "";
  json_t *body = NULL, *role, *dis, *out = NULL;
  int rc;

  id = admin_identity(resp, NEED_WRITE);
  if (id == NULL)
    return U_CALLBACK_COMPLETE;
  rc = lc_json_body(req, AUTH_MAX_JSON, &body, err);
  if (rc == LC_OK)
    rc = lc_json_only_fields(body, allowed, err);
  if (rc != LC_OK)
    goto out;
  role = json_object_get(body, "role");
  dis = json_object_get(body, "disabled");
  if ((role != NULL && !json_is_string(role)) || (dis != NULL && !json_is_boolean(dis))) {
    rc = lc_err_set(err, LC_ERR_PARAM, "role must be a string and disabled a boolean");
    goto out;
  }
  if (role == NULL && dis == NULL) {
    rc = lc_err_set(err, LC_ERR_PARAM, "nothing to change: give role and/or disabled");
    goto out;
  }
  rc = auth_admin_patch_user(ctx, id->user_id, u_map_get(req->map_url, "id"),
                             role != NULL ? json_string_value(role) : NULL,
                             dis == NULL ? -1 : json_is_true(dis) ? 1 : 0, &out, err);
out:
  json_decref(body);
  if (rc != LC_OK)
    return auth_http_error(resp, "admin_patch_user", rc, err);
  return send_json(resp, 200, out);
}

int auth_h_admin_revoke_tokens(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  const lc_identity *id;
  char err[LC_ERR_LEN] = "";
  json_t *out = NULL;
  int rc;

  id = admin_identity(resp, NEED_WRITE);
  if (id == NULL)
    return U_CALLBACK_COMPLETE;
  if (req->binary_body_length > 0 && !(req->binary_body_length == 2 &&
                                       memcmp(req->binary_body, "{}", 2) == 0))
    return lc_problem(resp, 400, NULL, "no request body expected");
  rc = auth_admin_revoke_tokens(ctx, id->user_id, u_map_get(req->map_url, "id"), &out, err);
  if (rc != LC_OK)
    return auth_http_error(resp, "admin_revoke_tokens", rc, err);
  return send_json(resp, 200, out);
}

int auth_h_admin_key_create(const struct _u_request *req, struct _u_response *resp, void *ud) {
  static const char *const allowed[] = {"owner_id", "scope", "name", NULL};
  const auth_ctx *ctx = ud;
  const lc_identity *id;
  char err[LC_ERR_LEN] = "";
  json_t *body = NULL, *o, *s, *n, *out = NULL;
  int rc;

  /* A key can never mint keys: sessions only. */
  id = admin_identity(resp, NEED_SESSION);
  if (id == NULL)
    return U_CALLBACK_COMPLETE;
  rc = lc_json_body(req, AUTH_MAX_JSON, &body, err);
  if (rc == LC_OK)
    rc = lc_json_only_fields(body, allowed, err);
  if (rc != LC_OK)
    goto out;
  o = json_object_get(body, "owner_id");
  s = json_object_get(body, "scope");
  n = json_object_get(body, "name");
  if (!json_is_string(o) || !lc_uuid_valid(json_string_value(o))) {
    rc = lc_err_set(err, LC_ERR_PARAM, "owner_id must be a user id");
    goto out;
  }
  if (!json_is_string(s) || !auth_key_scope_valid(json_string_value(s))) {
    rc = lc_err_set(err, LC_ERR_PARAM, "scope must be read, write or admin");
    goto out;
  }
  if (!json_is_string(n) || strlen(json_string_value(n)) != json_string_length(n)) {
    rc = lc_err_set(err, LC_ERR_PARAM, "name must be a string");
    goto out;
  }
  rc = auth_admin_key_create(ctx, id->user_id, json_string_value(o), json_string_value(s),
                             json_string_value(n), &out, err);
  if (rc == LC_ERR_NOTFOUND)
    rc = lc_err_set(err, LC_ERR_PARAM, "owner_id: no such user");
out:
  json_decref(body);
  if (rc != LC_OK)
    return auth_http_error(resp, "admin_key_create", rc, err);
  lc_metric_add("auth_api_keys_issued_total", 1);
  return send_json(resp, 201, out);
}

int auth_h_admin_key_list(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  const char *cursor = NULL, *owner = u_map_get(req->map_url, "owner_id");
  json_t *out = NULL;
  int limit = 0, rc;

  if (admin_identity(resp, NEED_READ) == NULL || !page_params(req, resp, &limit, &cursor))
    return U_CALLBACK_COMPLETE;
  if (owner != NULL && !lc_uuid_valid(owner))
    return lc_problem(resp, 400, NULL, "owner_id must be a user id");
  rc = auth_admin_key_list(ctx, owner, cursor, limit, &out, err);
  if (rc != LC_OK)
    return auth_http_error(resp, "admin_key_list", rc, err);
  return send_json(resp, 200, out);
}

int auth_h_admin_key_revoke(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  const lc_identity *id;
  char err[LC_ERR_LEN] = "";
  int rc;

  id = admin_identity(resp, NEED_SESSION);
  if (id == NULL)
    return U_CALLBACK_COMPLETE;
  rc = auth_admin_key_revoke(ctx, id->user_id, u_map_get(req->map_url, "id"), err);
  if (rc != LC_OK)
    return auth_http_error(resp, "admin_key_revoke", rc, err);
  lc_metric_add("auth_api_keys_revoked_total", 1);
  resp->status = 204;
  return U_CALLBACK_COMPLETE;
}

int auth_h_internal_key_verify(const struct _u_request *req, struct _u_response *resp, void *ud) {
  static const char *const allowed[] = {"key", NULL};
  const auth_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  json_t *body = NULL, *k, *out = NULL;
  int rc;

  if (!system_only(resp))
    return U_CALLBACK_COMPLETE;
  rc = lc_json_body(req, AUTH_MAX_JSON, &body, err);
  if (rc == LC_OK)
    rc = lc_json_only_fields(body, allowed, err);
  if (rc == LC_OK) {
    k = json_object_get(body, "key");
    if (!json_is_string(k))
      rc = lc_err_set(err, LC_ERR_PARAM, "key must be a string");
    else
      rc = auth_internal_key_verify(ctx, json_string_value(k), &out, err);
  }
  json_decref(body);
  if (rc == LC_ERR_UNAUTH) {
    lc_log_info("Security - API key refused: %s", err);
    return lc_problem(resp, 401, "unauthorized", "invalid API key");
  }
  if (rc != LC_OK)
    return auth_http_error(resp, "key_verify", rc, err);
  return send_json(resp, 200, out);
}

int auth_h_internal_revocations(const struct _u_request *req, struct _u_response *resp,
                                void *ud) {
  const auth_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  json_t *out = NULL;
  int rc;

  (void)req;
  if (!system_only(resp))
    return U_CALLBACK_COMPLETE;
  rc = auth_internal_revocations(ctx, &out, err);
  if (rc != LC_OK)
    return auth_http_error(resp, "revocations", rc, err);
  return send_json(resp, 200, out);
}
