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

/* Maps a use-case status to a problem response. Client-facing text only for
 * input errors; internal failures are logged here, once, without details on
 * the wire. */
static int send_error(struct _u_response *resp, const char *what, int rc, const char *err) {
  switch (rc) {
  case LC_ERR_PARAM:
  case LC_ERR_MEDIA:
  case LC_ERR_TOO_LARGE:
    return lc_problem_from_err(resp, rc, err);
  case LC_ERR_CONFLICT:
    return lc_problem_from_err(resp, rc, "email already registered");
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
    return send_error(resp, "send_tokens", LC_ERR_NOMEM, "json_pack failed");
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
    return send_error(resp, "signup", rc, err);
  rc = auth_account_signup(ctx, email, password, pwlen, id != NULL ? id->request_id : NULL, &u,
                           &t, err);
  json_decref(body);
  if (rc != LC_OK)
    return send_error(resp, "signup", rc, err);
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
    return send_error(resp, "login", rc, err);
  rc = auth_account_login(ctx, email, password, pwlen, &u, &t, err);
  json_decref(body);
  if (rc != LC_OK) {
    if (rc == LC_ERR_UNAUTH)
      lc_metric_add("auth_login_failures_total", 1);
    return send_error(resp, "login", rc, err);
  }
  lc_metric_add("auth_logins_total", 1);
  set_refresh_cookie(resp, t.refresh_token, ctx->tok.refresh_ttl);
  r = send_tokens(resp, 200, &u, &t);
  auth_tokens_free(&t);
  return r;
}

/* Takes the refresh token from the JSON body when there is one, else from
 * the cookie. Copies it into tok. */
static int refresh_token_from(const struct _u_request *req, char tok[AUTH_RT_LEN + 1],
                              char err[LC_ERR_LEN]) {
  static const char *const allowed[] = {"refresh_token", NULL};
  json_t *body = NULL, *v;
  const char *c;
  int rc;

  tok[0] = '\0';
  if (req->binary_body_length == 0) {
    c = u_map_get(req->map_cookie, AUTH_REFRESH_COOKIE);
    if (c == NULL || c[0] == '\0')
      return lc_err_set(err, LC_ERR_UNAUTH, "no refresh token");
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
  int rc, r;

  memset(&t, 0, sizeof(t));
  rc = refresh_token_from(req, tok, err);
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
    return send_error(resp, "refresh", rc, err);
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
                               : send_error(resp, "me", rc, err);
  j = json_pack("{s:s,s:s,s:s,s:s}", "id", u.id, "email", u.email, "role", u.role,
                "created_at", u.created_at);
  if (j == NULL)
    return send_error(resp, "me", LC_ERR_NOMEM, "json_pack failed");
  no_store(resp);
  r = lc_json_send(resp, 200, j);
  json_decref(j);
  return r;
}

typedef struct {
  const char *method;
  const char *path;
  int (*cb)(const struct _u_request *, struct _u_response *, void *);
} route;

static const route ROUTES[] = {
  {"POST", "/v1/auth/signup", auth_h_signup},
  {"POST", "/v1/auth/login", auth_h_login},
  {"POST", "/v1/auth/refresh", auth_h_refresh},
  {"GET", "/v1/me", auth_h_me},
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
