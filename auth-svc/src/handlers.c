/* handlers.c - HTTP adapters for accounts.h (see handlers.h). */
#include "handlers.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "policy.h"

/* Maps a use-case status to a problem response. Client-facing text only for
 * input errors; internal failures are logged here, once, without details on
 * the wire. */
int auth_http_error(struct _u_response *resp, const char *what, int rc, const char *err) {
  switch (rc) {
  case LC_ERR_PARAM:
  case LC_ERR_MEDIA:
  case LC_ERR_TOO_LARGE:
  case LC_ERR_CONFLICT:
  case LC_ERR_FORBIDDEN:
    return lc_problem_from_err(resp, rc, err);
  case LC_ERR_NOTFOUND:
    return lc_problem(resp, 404, NULL, "not found");
  case LC_ERR_UNAUTH:
    return lc_problem(resp, 401, "unauthorized", "invalid credentials");
  case LC_ERR_UNAVAIL:
  case LC_ERR_TIMEOUT:
    lc_log_warn("%s - busy: %s", what, err);
    u_map_put(resp->map_header, "Retry-After", "1");
    return lc_problem(resp, 503, NULL, "temporarily unavailable, retry shortly");
  default:
    lc_log_error("%s - %s: %s", what, lc_err_name(rc), err);
    return lc_problem(resp, 500, NULL, NULL);
  }
}

/* Parses {email,password} with no other members. *body is new on LC_OK;
 * email/password borrow from it. */
static int parse_credentials(const struct _u_request *req, json_t **body, const char **email,
                             const char **password, size_t *pwlen, char err[LC_ERR_LEN]) {
  static const char *const allowed[] = {"email", "password", NULL};
  json_t *e, *p;
  int rc;

  *body = NULL;
  rc = lc_json_body(req, AUTH_MAX_JSON, body, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_json_only_fields(*body, allowed, err);
  if (rc != LC_OK)
    goto fail;
  e = json_object_get(*body, "email");
  p = json_object_get(*body, "password");
  if (!json_is_string(e)) {
    rc = lc_err_set(err, LC_ERR_PARAM, "email must be a string");
    goto fail;
  }
  if (!json_is_string(p)) {
    rc = lc_err_set(err, LC_ERR_PARAM, "password must be a string");
    goto fail;
  }
  *email = json_string_value(e);
  if (strlen(*email) != json_string_length(e)) {
    rc = lc_err_set(err, LC_ERR_PARAM, "email must not contain NUL");
    goto fail;
  }
  *password = json_string_value(p);
  *pwlen = json_string_length(p);
  return LC_OK;
fail:
  json_decref(*body);
  *body = NULL;
  return rc;
}

static void no_store(struct _u_response *resp) {
  u_map_put(resp->map_header, "Cache-Control", "no-store");
  u_map_put(resp->map_header, "Pragma", "no-cache");
}

static void set_refresh_cookie(struct _u_response *resp, const char *token, int64_t max_age) {
  char line[256];
  snprintf(line, sizeof(line),
           AUTH_REFRESH_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=%lld",
           token, (long long)max_age);
  u_map_put(resp->map_header, "Set-Cookie", line);
}

/* Sends the token body {user, access_token, token_type, expires_in, refresh_token}. */
static int send_tokens(struct _u_response *resp, int status, const auth_user *u,
                       const auth_tokens *t) {
  json_t *j = json_pack("{s:{s:s,s:s,s:s},s:s,s:s,s:I,s:s}", "user", "id", u->id, "email",
                        u->email, "role", u->role, "access_token", t->access_token,
                        "token_type", "Bearer", "expires_in", (json_int_t)t->expires_in,
                        "refresh_token", t->refresh_token);
  int r;

  if (j == NULL)
    return auth_http_error(resp, "send_tokens", LC_ERR_NOMEM, "json_pack failed");
  no_store(resp);
  r = lc_json_send(resp, status, j);
  json_decref(j);
  return r;
}

int auth_h_signup(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  const lc_identity *id = lc_iauth_identity(resp);
  char err[LC_ERR_LEN] = "";
  const char *email = NULL, *password = NULL;
  size_t pwlen = 0;
  json_t *body = NULL;
  auth_user u;
  auth_tokens t;
  int rc, r;

  memset(&t, 0, sizeof(t));
  rc = parse_credentials(req, &body, &email, &password, &pwlen, err);
  if (rc != LC_OK)
    return auth_http_error(resp, "signup", rc, err);
  rc = auth_account_signup(ctx, email, password, pwlen, id != NULL ? id->request_id : NULL, &u,
                           &t, err);
  json_decref(body);
  if (rc != LC_OK)
    return auth_http_error(resp, "signup", rc, err);
  lc_metric_add("auth_signups_total", 1);
  r = send_tokens(resp, 201, &u, &t);
  auth_tokens_free(&t);
  return r;
}

int auth_h_login(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  const char *email = NULL, *password = NULL;
  size_t pwlen = 0;
  json_t *body = NULL;
  auth_user u;
  auth_tokens t;
  int rc, r;

  memset(&t, 0, sizeof(t));
  rc = parse_credentials(req, &body, &email, &password, &pwlen, err);
  if (rc != LC_OK)
    return auth_http_error(resp, "login", rc, err);
  rc = auth_account_login(ctx, email, password, pwlen, &u, &t, err);
  json_decref(body);
  if (rc != LC_OK) {
    if (rc == LC_ERR_UNAUTH)
      lc_metric_add("auth_login_failures_total", 1);
    return auth_http_error(resp, "login", rc, err);
  }
  lc_metric_add("auth_logins_total", 1);
  set_refresh_cookie(resp, t.refresh_token, ctx->tok.refresh_ttl);
  r = send_tokens(resp, 200, &u, &t);
  auth_tokens_free(&t);
  return r;
}

/* Takes the refresh token from the JSON body when there is one, else from
 * the cookie (*from_cookie = 1). Copies it into tok. required = 0 makes a
 * missing token LC_OK with tok "" (logout). */
static int refresh_token_from(const struct _u_request *req, char tok[AUTH_RT_LEN + 1],
                              int *from_cookie, int required, char err[LC_ERR_LEN]) {
  static const char *const allowed[] = {"refresh_token", NULL};
  json_t *body = NULL, *v;
  const char *c;
  int rc;

  tok[0] = '\0';
  *from_cookie = 0;
  if (req->binary_body_length == 0) {
    c = u_map_get(req->map_cookie, AUTH_REFRESH_COOKIE);
    if (c == NULL || c[0] == '\0')
      return required ? lc_err_set(err, LC_ERR_UNAUTH, "no refresh token") : LC_OK;
    *from_cookie = 1;
    if (lc_strlcpy(tok, c, AUTH_RT_LEN + 1) != LC_OK)
      return lc_err_set(err, LC_ERR_UNAUTH, "malformed refresh token");
    return LC_OK;
  }
  rc = lc_json_body(req, AUTH_MAX_JSON, &body, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_json_only_fields(body, allowed, err);
  if (rc != LC_OK)
    goto out;
  v = json_object_get(body, "refresh_token");
  if (v == NULL && !required)
    goto out;
  if (!json_is_string(v)) {
    rc = lc_err_set(err, LC_ERR_PARAM, "refresh_token must be a string");
    goto out;
  }
  if (lc_strlcpy(tok, json_string_value(v), AUTH_RT_LEN + 1) != LC_OK)
    rc = lc_err_set(err, LC_ERR_UNAUTH, "malformed refresh token");
out:
  json_decref(body);
  return rc;
}

int auth_h_refresh(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  char tok[AUTH_RT_LEN + 1];
  auth_user u;
  auth_tokens t;
  int from_cookie = 0;
  int rc, r;

  memset(&t, 0, sizeof(t));
  rc = refresh_token_from(req, tok, &from_cookie, 1, err);
  if (rc == LC_OK && from_cookie &&
      !auth_csrf_allowed(u_map_get_case(req->map_header, "Origin"),
                         u_map_get_case(req->map_header, "X-Requested-With"),
                         ctx->allowed_origins)) {
    /* Cookie-authenticated: a cross-site form or fetch cannot set these. */
    memset(tok, 0, sizeof(tok));
    lc_log_warn("Security - cookie refresh without an allowed Origin or X-Requested-With");
    lc_metric_add("auth_refresh_csrf_denied_total", 1);
    return lc_problem(resp, 403, "forbidden",
                      "cookie refresh needs an allowed Origin or X-Requested-With: fetch");
  }
  if (rc == LC_OK)
    rc = auth_account_refresh(ctx, tok, &u, &t, err);
  memset(tok, 0, sizeof(tok));
  if (rc != LC_OK) {
    if (rc == LC_ERR_UNAUTH) {
      /* Drop a dead cookie so the browser stops presenting it. */
      u_map_put(resp->map_header, "Set-Cookie",
                AUTH_REFRESH_COOKIE "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
      lc_metric_add("auth_refresh_failures_total", 1);
    }
    return auth_http_error(resp, "refresh", rc, err);
  }
  lc_metric_add("auth_refreshes_total", 1);
  set_refresh_cookie(resp, t.refresh_token, ctx->tok.refresh_ttl);
  r = send_tokens(resp, 200, &u, &t);
  auth_tokens_free(&t);
  return r;
}

int auth_h_me(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  const lc_identity *id = lc_iauth_identity(resp);
  char err[LC_ERR_LEN] = "";
  auth_user u;
  json_t *j;
  int rc, r;

  (void)req;
  if (id == NULL || !lc_uuid_valid(id->user_id) || !auth_role_valid(id->role))
    return lc_problem(resp, 401, "unauthorized", "authentication required");
  rc = auth_account_me(ctx, id->user_id, &u, err);
  if (rc != LC_OK)
    return rc == LC_ERR_UNAUTH ? lc_problem(resp, 401, "unauthorized", "authentication required")
                               : auth_http_error(resp, "me", rc, err);
  j = json_pack("{s:s,s:s,s:s,s:s}", "id", u.id, "email", u.email, "role", u.role,
                "created_at", u.created_at);
  if (j == NULL)
    return auth_http_error(resp, "me", LC_ERR_NOMEM, "json_pack failed");
  no_store(resp);
  r = lc_json_send(resp, 200, j);
  json_decref(j);
  return r;
}

/* Session routes need a user identity authenticated by a JWT (scope
 * "full"): API keys never log out or change passwords. */
static int session_identity(struct _u_response *resp, const lc_identity **out) {
  const lc_identity *id = lc_iauth_identity(resp);
  *out = NULL;
  if (id == NULL || !lc_uuid_valid(id->user_id) || !auth_role_valid(id->role)) {
    lc_problem(resp, 401, "unauthorized", "authentication required");
    return 0;
  }
  if (strcmp(id->scope, "full") != 0) {
    lc_problem(resp, 403, "forbidden", "this action needs a session, not an API key");
    return 0;
  }
  *out = id;
  return 1;
}

int auth_h_logout(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const auth_ctx *ctx = ud;
  const lc_identity *id;
  const char *jti = NULL;
  char err[LC_ERR_LEN] = "", tok[AUTH_RT_LEN + 1];
  int64_t exp = 0;
  int from_cookie = 0, rc;

  if (!session_identity(resp, &id))
    return U_CALLBACK_COMPLETE;
  /* The session's jti / exp are part of the identity the gateway signed
   * (lc/iauth.h v2) after verifying the JWT. */
  if (id->jti[0] != '\0') {
    if (!lc_uuid_valid(id->jti) || id->exp <= 0)
      return lc_problem(resp, 400, NULL, "malformed X-Auth-Jti / X-Auth-Exp");
    jti = id->jti;
    exp = id->exp;
  }
  if (jti == NULL)
    lc_log_warn("logout - no X-Auth-Jti from the gateway: only the refresh family is revoked");
  rc = refresh_token_from(req, tok, &from_cookie, 0, err);
  if (rc == LC_ERR_UNAUTH) {
    tok[0] = '\0';
    rc = LC_OK; /* a malformed refresh token does not block the logout */
  }
  if (rc == LC_OK)
    rc = auth_account_logout(ctx, id->user_id, jti, exp, tok[0] ? tok : NULL, err);
  memset(tok, 0, sizeof(tok));
  if (rc != LC_OK)
    return auth_http_error(resp, "logout", rc, err);
  lc_metric_add("auth_logouts_total", 1);
  u_map_put(resp->map_header, "Set-Cookie",
            AUTH_REFRESH_COOKIE "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
  no_store(resp);
  resp->status = 204;
  return U_CALLBACK_COMPLETE;
}

int auth_h_password(const struct _u_request *req, struct _u_response *resp, void *ud) {
  static const char *const allowed[] = {"current_password", "new_password", NULL};
  const auth_ctx *ctx = ud;
  const lc_identity *id;
  char err[LC_ERR_LEN] = "";
  json_t *body = NULL, *cur, *nxt;
  auth_user u;
  auth_tokens t;
  int rc, r;

  memset(&t, 0, sizeof(t));
  if (!session_identity(resp, &id))
    return U_CALLBACK_COMPLETE;
  rc = lc_json_body(req, AUTH_MAX_JSON, &body, err);
  if (rc == LC_OK)
    rc = lc_json_only_fields(body, allowed, err);
  if (rc != LC_OK)
    goto fail;
  cur = json_object_get(body, "current_password");
  nxt = json_object_get(body, "new_password");
  if (!json_is_string(cur) || !json_is_string(nxt)) {
    rc = lc_err_set(err, LC_ERR_PARAM, "current_password and new_password must be strings");
    goto fail;
  }
  rc = auth_account_change_password(ctx, id->user_id, json_string_value(cur),
                                    json_string_length(cur), json_string_value(nxt),
                                    json_string_length(nxt), &u, &t, err);
  if (rc != LC_OK)
    goto fail;
  json_decref(body);
  set_refresh_cookie(resp, t.refresh_token, ctx->tok.refresh_ttl);
  r = send_tokens(resp, 200, &u, &t);
  auth_tokens_free(&t);
  return r;
fail:
  json_decref(body);
  if (rc == LC_ERR_UNAUTH)
    return lc_problem(resp, 401, "unauthorized", "authentication required");
  return auth_http_error(resp, "password", rc, err);
}

typedef struct {
  const char *method;
  const char *path;
  int (*cb)(const struct _u_request *, struct _u_response *, void *);
} route;

/* GET /internal/users/{id} (role system only) -> {id, email, role, disabled}:
 * credit-svc's low-credit notifier looks up the address here (credit-svc
 * stores no emails). Unknown id -> 404. */
static int auth_h_internal_user(const struct _u_request *req, struct _u_response *resp,
                                void *ud) {
  const auth_ctx *ctx = ud;
  const lc_identity *id = lc_iauth_identity(resp);
  char err[LC_ERR_LEN] = "";
  PGconn *conn = NULL;
  auth_user u;
  if (id == NULL || strcmp(id->role, "system") != 0)
    return lc_problem(resp, 403, "forbidden", "internal route");
  int rc = lc_db_acquire(ctx->pool, &conn, err);
  if (rc == LC_OK) {
    rc = auth_users_by_id(conn, u_map_get(req->map_url, "id"), &u, err);
    lc_db_release(ctx->pool, conn);
  }
  if (rc != LC_OK)
    return auth_http_error(resp, "internal_user", rc, err);
  json_t *j = json_pack("{s:s,s:s,s:s,s:b}", "id", u.id, "email", u.email, "role", u.role,
                        "disabled", u.disabled);
  int r = lc_json_send(resp, 200, j);
  json_decref(j);
  return r;
}

static const route ROUTES[] = {
  {"POST", "/v1/auth/signup", auth_h_signup},
  {"POST", "/v1/auth/login", auth_h_login},
  {"POST", "/v1/auth/refresh", auth_h_refresh},
  {"GET", "/v1/me", auth_h_me},
  {"POST", "/v1/auth/logout", auth_h_logout},
  {"POST", "/v1/auth/password", auth_h_password},
  {"GET", "/v1/admin/users", auth_h_admin_users},
  {"GET", "/v1/admin/users/:id", auth_h_admin_user},
  {"PATCH", "/v1/admin/users/:id", auth_h_admin_patch_user},
  {"POST", "/v1/admin/users/:id/revoke-tokens", auth_h_admin_revoke_tokens},
  {"POST", "/v1/admin/api-keys", auth_h_admin_key_create},
  {"GET", "/v1/admin/api-keys", auth_h_admin_key_list},
  {"DELETE", "/v1/admin/api-keys/:id", auth_h_admin_key_revoke},
  {"POST", "/internal/api-keys/verify", auth_h_internal_key_verify},
  {"GET", "/internal/revocations", auth_h_internal_revocations},
  {"GET", "/internal/users/:id", auth_h_internal_user},
};

int auth_handlers_register(struct _u_instance *inst, auth_ctx *ctx, lc_iauth_ctx *ictx) {
  /* Every request but the ops routes must carry a valid internal signature,
   * also on paths this daemon does not serve (401 before 404). */
  if (lc_svc_route(inst, "*", "*", LC_PRIO_AUTH, lc_iauth_callback, ictx) != LC_OK) {
    lc_log_error("auth_handlers_register - internal auth middleware failed");
    return LC_ERR;
  }
  for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
    int rc = lc_svc_route(inst, ROUTES[i].method, ROUTES[i].path, LC_PRIO_APP, ROUTES[i].cb, ctx);
    if (rc != LC_OK) {
      lc_log_error("auth_handlers_register - %s %s failed", ROUTES[i].method, ROUTES[i].path);
      return LC_ERR;
    }
  }
  return LC_OK;
}
