/* oauth_handlers.c - HTTP adapters of the OAuth login (see oauth_handlers.h). */
#include "oauth_handlers.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "handlers.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "oauth_store.h"

#define LOCATION_MAX 4096
#define CODE_MAX 1024

/* A landing page: an absolute path ("/x", not "//x") or an allowed URL. */
static int landing_ok(const char *u) {
  if (u == NULL || u[0] == '\0')
    return 0;
  if (u[0] == '/') {
    if (u[1] == '/' || u[1] == '\\')
      return 0;
    for (const char *p = u; *p != '\0'; p++)
      if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
        return 0;
    return 1;
  }
  return oauth_url_allowed(u);
}

int oauth_ctx_init(oauth_ctx *o, const lc_cfg *cfg, const auth_ctx *auth, char err[LC_ERR_LEN]) {
  const char *succ = lc_cfg_str(cfg, "AUTH_OAUTH_SUCCESS_URL");
  const char *fail = lc_cfg_str(cfg, "AUTH_OAUTH_ERROR_URL");
  int rc;

  memset(o, 0, sizeof(*o));
  o->auth = auth;
  o->state_ttl = lc_cfg_int(cfg, "AUTH_OAUTH_STATE_TTL");
  rc = oauth_provider_init(&o->google, "google", lc_cfg_str(cfg, "AUTH_GOOGLE_CLIENT_ID"),
                           lc_cfg_str(cfg, "AUTH_GOOGLE_CLIENT_SECRET"),
                           lc_cfg_str(cfg, "AUTH_GOOGLE_REDIRECT_URI"),
                           lc_cfg_str(cfg, "AUTH_GOOGLE_DISCOVERY_URL"), NULL, NULL, NULL, err);
  if (rc != LC_OK)
    return rc;
  rc = oauth_provider_init(&o->github, "github", lc_cfg_str(cfg, "AUTH_GITHUB_CLIENT_ID"),
                           lc_cfg_str(cfg, "AUTH_GITHUB_CLIENT_SECRET"),
                           lc_cfg_str(cfg, "AUTH_GITHUB_REDIRECT_URI"), NULL,
                           lc_cfg_str(cfg, "AUTH_GITHUB_AUTHORIZE_URL"),
                           lc_cfg_str(cfg, "AUTH_GITHUB_TOKEN_URL"),
                           lc_cfg_str(cfg, "AUTH_GITHUB_API_URL"), err);
  if (rc != LC_OK)
    return rc;
  if (!landing_ok(succ) || lc_strlcpy(o->success_url, succ, sizeof(o->success_url)) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM,
                      "AUTH_OAUTH_SUCCESS_URL must be a path or an https URL");
  if (fail != NULL &&
      (!landing_ok(fail) || strchr(fail, '?') != NULL || strchr(fail, '#') != NULL ||
       lc_strlcpy(o->error_url, fail, sizeof(o->error_url)) != LC_OK))
    return lc_err_set(err, LC_ERR_PARAM,
                      "AUTH_OAUTH_ERROR_URL must be a path or an https URL without query");
  lc_log_info("oauth - google %s, github %s", o->google.configured ? "configured" : "off",
              o->github.configured ? "configured" : "off");
  return LC_OK;
}

void oauth_ctx_free(oauth_ctx *o) {
  if (o == NULL)
    return;
  oauth_provider_free(&o->google);
  oauth_provider_free(&o->github);
}

static oauth_provider *provider_of(oauth_ctx *o, const struct _u_request *req) {
  const char *name = u_map_get(req->map_url, "provider");
  oauth_provider *p = NULL;

  if (name == NULL)
    return NULL;
  if (strcmp(name, "google") == 0)
    p = &o->google;
  else if (strcmp(name, "github") == 0)
    p = &o->github;
  return p != NULL && p->configured ? p : NULL;
}

static void no_store(struct _u_response *resp) {
  u_map_put(resp->map_header, "Cache-Control", "no-store");
  u_map_put(resp->map_header, "Pragma", "no-cache");
}

/* 302 with a short body: a proxy that copies status only together with a
 * non-empty body (ulfius_set_binary_body_response refuses length 0) would
 * otherwise turn the redirect into a 200. */
static int redirect(struct _u_response *resp, const char *location) {
  ulfius_set_string_body_response(resp, 302, "Found\n");
  u_map_put(resp->map_header, "Content-Type", "text/plain; charset=utf-8");
  u_map_put(resp->map_header, "Location", location);
  no_store(resp);
  return U_CALLBACK_COMPLETE;
}

static int unavailable(struct _u_response *resp, const char *what, const char *err) {
  lc_log_warn("%s - unavailable: %s", what, err);
  u_map_put(resp->map_header, "Retry-After", "1");
  return lc_problem(resp, 503, NULL, "temporarily unavailable, retry shortly");
}

int oauth_h_start(const struct _u_request *req, struct _u_response *resp, void *ud) {
  oauth_ctx *o = ud;
  oauth_provider *p = provider_of(o, req);
  char err[LC_ERR_LEN] = "";
  char state[OAUTH_RAND_LEN + 1], verifier[OAUTH_RAND_LEN + 1], nonce[OAUTH_RAND_LEN + 1];
  char binding[OAUTH_RAND_LEN + 1], challenge[OAUTH_RAND_LEN + 1];
  char state_hash[65], binding_hash[65];
  char loc[LOCATION_MAX], cookie[160];
  PGconn *conn = NULL;
  int rc, r;

  if (p == NULL)
    return lc_problem(resp, 404, "not_found", "unknown or unconfigured provider");
  oauth_random_b64(state);
  oauth_random_b64(verifier);
  oauth_random_b64(binding);
  if (p->oidc)
    oauth_random_b64(nonce);
  else
    nonce[0] = '\0';
  if (oauth_pkce_challenge(verifier, challenge) != LC_OK)
    return lc_problem(resp, 500, NULL, NULL);
  rc = oauth_provider_authorize_url(p, loc, err);
  if (rc != LC_OK) {
    r = unavailable(resp, "oauth_start", err);
    goto out;
  }
  if (strchr(loc, '?') == NULL && lc_strlcpy(loc + strlen(loc), "?", 2) != LC_OK)
    rc = LC_ERR_TOO_LARGE;
  if (rc == LC_OK)
    rc = oauth_query_add(loc, sizeof(loc), "response_type", "code");
  if (rc == LC_OK)
    rc = oauth_query_add(loc, sizeof(loc), "client_id", p->client_id);
  if (rc == LC_OK)
    rc = oauth_query_add(loc, sizeof(loc), "redirect_uri", p->redirect_uri);
  if (rc == LC_OK)
    rc = oauth_query_add(loc, sizeof(loc), "scope", p->scope);
  if (rc == LC_OK)
    rc = oauth_query_add(loc, sizeof(loc), "state", state);
  if (rc == LC_OK)
    rc = oauth_query_add(loc, sizeof(loc), "code_challenge", challenge);
  if (rc == LC_OK)
    rc = oauth_query_add(loc, sizeof(loc), "code_challenge_method", "S256");
  if (rc == LC_OK && p->oidc)
    rc = oauth_query_add(loc, sizeof(loc), "nonce", nonce);
  if (rc != LC_OK) {
    lc_log_error("oauth_start - authorization URL too long");
    r = lc_problem(resp, 500, NULL, NULL);
    goto out;
  }
  oauth_hash_hex(state, state_hash);
  oauth_hash_hex(binding, binding_hash);
  rc = lc_db_acquire(o->auth->pool, &conn, err);
  if (rc != LC_OK) {
    r = unavailable(resp, "oauth_start", err);
    goto out;
  }
  rc = oauth_store_state_put(conn, p->name, state_hash, binding_hash, verifier,
                             p->oidc ? nonce : NULL, o->state_ttl, err);
  lc_db_release(o->auth->pool, conn);
  if (rc != LC_OK) {
    r = rc == LC_ERR_UNAVAIL ? unavailable(resp, "oauth_start", err)
                             : lc_problem(resp, 500, NULL, NULL);
    if (rc != LC_ERR_UNAVAIL)
      lc_log_error("oauth_start - %s: %s", lc_err_name(rc), err);
    goto out;
  }
  snprintf(cookie, sizeof(cookie),
           AUTH_OAUTH_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=%lld", binding,
           (long long)o->state_ttl);
  u_map_put(resp->map_header, "Set-Cookie", cookie);
  lc_metric_add("auth_oauth_starts_total", 1);
  r = redirect(resp, loc);
out:
  sodium_memzero(verifier, sizeof(verifier));
  sodium_memzero(binding, sizeof(binding));
  sodium_memzero(cookie, sizeof(cookie));
  return r;
}

#define CLEAR_OAUTH_COOKIE AUTH_OAUTH_COOKIE "=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"

/* A refused callback: clears the binding cookie, then either redirects to
 * the error page with the code only, or answers a problem. */
static int refuse(const oauth_ctx *o, struct _u_response *resp, int status, const char *code,
                  const char *why) {
  char loc[OAUTH_URL_MAX + 64];

  lc_log_warn("Security - oauth callback refused (%s): %s", code, why);
  lc_metric_add("auth_oauth_failures_total", 1);
  u_map_put(resp->map_header, "Set-Cookie", CLEAR_OAUTH_COOKIE);
  if (o->error_url[0] != '\0') {
    snprintf(loc, sizeof(loc), "%s?error=%s", o->error_url, code);
    return redirect(resp, loc);
  }
  no_store(resp);
  if (status == 503)
    u_map_put(resp->map_header, "Retry-After", "1");
  return lc_problem(resp, status, code,
                    status == 400   ? "the sign-in request is invalid or expired; start again"
                    : status == 503 ? "temporarily unavailable, retry shortly"
                                    : "the identity provider's answer was not accepted");
}

static int code_ok(const char *c) {
  size_t n;
  if (c == NULL)
    return 0;
  n = strnlen(c, CODE_MAX + 1);
  if (n == 0 || n > CODE_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)c[i] <= 0x20 || (unsigned char)c[i] >= 0x7f)
      return 0;
  return 1;
}

static int status_of(int rc) {
  switch (rc) {
  case LC_ERR_UNAVAIL:
  case LC_ERR_TIMEOUT:
  case LC_ERR_IO:
    return 503;
  case LC_ERR_UNAUTH:
  case LC_ERR_PARAM:
    return 401;
  default:
    return 500;
  }
}

/* Consumes the state and checks provider, expiry and browser binding. */
static int take_state(oauth_ctx *o, const oauth_provider *p, const char *state,
                      const char *cookie, oauth_state_row *row, char err[LC_ERR_LEN]) {
  char state_hash[65];
  PGconn *conn = NULL;
  int rc;

  if (!oauth_is_rand_b64(state))
    return lc_err_set(err, LC_ERR_PARAM, "state missing or malformed");
  oauth_hash_hex(state, state_hash);
  rc = lc_db_acquire(o->auth->pool, &conn, err);
  if (rc != LC_OK)
    return LC_ERR_UNAVAIL;
  rc = oauth_store_state_take(conn, state_hash, row, err);
  lc_db_release(o->auth->pool, conn);
  if (rc == LC_ERR_NOTFOUND)
    return lc_err_set(err, LC_ERR_PARAM, "unknown or reused state");
  if (rc != LC_OK)
    return rc;
  if (strcmp(row->provider, p->name) != 0)
    return lc_err_set(err, LC_ERR_PARAM, "state belongs to another provider");
  if (row->expired)
    return lc_err_set(err, LC_ERR_PARAM, "state expired");
  if (!oauth_binding_ok(row->binding_hash, cookie))
    return lc_err_set(err, LC_ERR_PARAM, "state not bound to this browser");
  return LC_OK;
}

int oauth_h_callback(const struct _u_request *req, struct _u_response *resp, void *ud) {
  oauth_ctx *o = ud;
  oauth_provider *p = provider_of(o, req);
  const lc_identity *who = lc_iauth_identity(resp);
  const char *code = u_map_get(req->map_url, "code");
  const char *state = u_map_get(req->map_url, "state");
  const char *cookie = u_map_get(req->map_cookie, AUTH_OAUTH_COOKIE);
  char err[LC_ERR_LEN] = "";
  char line[256];
  oauth_state_row row;
  oauth_identity id;
  auth_user u;
  auth_tokens t;
  PGconn *conn = NULL;
  int outcome = 0, rc, r;

  memset(&t, 0, sizeof(t));
  memset(&row, 0, sizeof(row));
  if (p == NULL)
    return lc_problem(resp, 404, "not_found", "unknown or unconfigured provider");
  rc = take_state(o, p, state, cookie, &row, err);
  if (rc != LC_OK) {
    r = refuse(o, resp, rc == LC_ERR_PARAM ? 400 : status_of(rc), "invalid_state", err);
    goto out;
  }
  if (u_map_get(req->map_url, "error") != NULL) {
    r = refuse(o, resp, 401, "access_denied", "provider returned an error");
    goto out;
  }
  if (!code_ok(code)) {
    r = refuse(o, resp, 400, "invalid_request", "code missing or malformed");
    goto out;
  }
  rc = oauth_provider_identify(p, code, row.verifier, row.nonce, &id, err);
  if (rc != LC_OK) {
    r = refuse(o, resp, status_of(rc), rc == LC_ERR_UNAUTH ? "provider_rejected" : "unavailable",
               err);
    goto out;
  }
  rc = lc_db_acquire(o->auth->pool, &conn, err);
  if (rc != LC_OK) {
    r = refuse(o, resp, 503, "unavailable", err);
    goto out;
  }
  rc = oauth_store_signin(conn, &o->auth->tok, &id, &u, &t, &outcome, err);
  lc_db_release(o->auth->pool, conn);
  if (rc != LC_OK) {
    r = refuse(o, resp, status_of(rc), rc == LC_ERR_UNAUTH || rc == LC_ERR_PARAM
                                           ? "account_not_linkable"
                                           : "unavailable",
               err);
    goto out;
  }
  if (outcome == OAUTH_SIGNIN_CREATED) {
    lc_log_info("Event - signup user %s via %s", u.id, p->name);
    if (o->auth->credit_url != NULL && o->auth->credit_url[0] != '\0' &&
        auth_account_open_credit(o->auth, u.id, who != NULL ? who->request_id : NULL, err) !=
            LC_OK)
      lc_log_warn("open_credit - user %s: %s (credit-svc opens lazily)", u.id, err);
  }
  if (outcome == OAUTH_SIGNIN_LINKED || outcome == OAUTH_SIGNIN_CREATED)
    lc_log_info("Event - oauth_linked user %s provider %s", u.id, p->name);
  lc_log_info("Event - oauth_login user %s provider %s", u.id, p->name);
  lc_metric_add("auth_oauth_logins_total", 1);
  /* Same refresh cookie as POST /v1/auth/login; the refresh cookie goes
   * first (it is the one header a single-Set-Cookie proxy must keep). */
  snprintf(line, sizeof(line),
           AUTH_REFRESH_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=%lld",
           t.refresh_token, (long long)o->auth->tok.refresh_ttl);
  u_map_put(resp->map_header, "Set-Cookie", line);
  sodium_memzero(line, sizeof(line));
  ulfius_add_same_site_cookie_to_response(resp, AUTH_OAUTH_COOKIE, "",
                                          "Thu, 01 Jan 1970 00:00:00 GMT", 0, NULL, "/", 1, 1,
                                          U_COOKIE_SAME_SITE_LAX);
  r = redirect(resp, o->success_url);
out:
  auth_tokens_free(&t);
  sodium_memzero(&row, sizeof(row));
  return r;
}

int oauth_handlers_register(struct _u_instance *inst, oauth_ctx *o) {
  if (lc_svc_route(inst, "GET", "/v1/auth/oauth/:provider/start", LC_PRIO_APP, oauth_h_start,
                   o) != LC_OK ||
      lc_svc_route(inst, "GET", "/v1/auth/oauth/:provider/callback", LC_PRIO_APP,
                   oauth_h_callback, o) != LC_OK) {
    lc_log_error("oauth_handlers_register - route registration failed");
    return LC_ERR;
  }
  return LC_OK;
}
