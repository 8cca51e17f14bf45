/* accounts.c - auth use cases over users, passwords and sessions (see accounts.h). */
#include "accounts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "lc/http.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/util.h"
#include "events.h"

int auth_account_open_credit(const auth_ctx *ctx, const char *user_id, const char *request_id,
                             char err[LC_ERR_LEN]) {
  lc_identity id;
  lc_http_resp resp;
  json_t *body = NULL;
  char *text = NULL;
  int rc;

  if (ctx->credit_url == NULL || ctx->credit_url[0] == '\0')
    return lc_err_set(err, LC_ERR_UNAVAIL, "AUTH_CREDIT_URL not set");
  memset(&id, 0, sizeof(id));
  memset(&resp, 0, sizeof(resp));
  lc_strlcpy(id.role, "system", sizeof(id.role));
  if (request_id != NULL && request_id[0] != '\0')
    lc_strlcpy(id.request_id, request_id, sizeof(id.request_id));
  else
    lc_uuid_v4(id.request_id);
  body = json_pack("{s:s}", "user_id", user_id);
  if (body == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "json_pack failed");
  text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (text == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "json_dumps failed");
  rc = lc_iauth_call(ctx->secret, ctx->secret_len, ctx->credit_url, "POST",
                     "/internal/accounts", &id, NULL, text, strlen(text), 3000, &resp, err);
  if (rc == LC_OK && resp.status != 200 && resp.status != 201)
    rc = lc_err_set(err, LC_ERR_IO, "credit-svc answered %ld", resp.status);
  lc_http_resp_free(&resp);
  free(text);
  return rc;
}

/* Opens the credit account, logging (not returning) a failure. */
static void open_credit_logged(const auth_ctx *ctx, const char *user_id, const char *rid) {
  char err[LC_ERR_LEN] = "";
  if (ctx->credit_url == NULL || ctx->credit_url[0] == '\0')
    return;
  if (auth_account_open_credit(ctx, user_id, rid, err) != LC_OK)
    lc_log_warn("open_credit - user %s: %s (credit-svc opens lazily)", user_id, err);
}

/* Inserts the user and starts its first session in one transaction. */
static int create_with_session(const auth_ctx *ctx, const char *email, const char *hash,
                               auth_user *u, auth_tokens *t, char err[LC_ERR_LEN]) {
  PGconn *conn = NULL;
  int rc;

  rc = lc_db_acquire(ctx->pool, &conn, err);
  if (rc != LC_OK)
    return rc == LC_ERR_TIMEOUT ? LC_ERR_UNAVAIL : rc;
  rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    goto out;
  rc = auth_users_create(conn, email, hash, "user", u, err);
  if (rc == LC_OK)
    rc = auth_sessions_start(conn, &ctx->tok, u, t, err);
  if (rc == LC_OK) {
    char actor[64];
    auth_actor(actor, "user", u->id);
    rc = auth_audit(conn, u->id, actor, "signup", "ok", NULL, err);
  }
  if (rc == LC_OK)
    rc = lc_db_commit(conn, err);
  if (rc != LC_OK) {
    lc_db_rollback(conn);
    auth_tokens_free(t);
  }
out:
  lc_db_release(ctx->pool, conn);
  return rc;
}

/* Looks a user up by (normalised) email on a short-lived connection. */
static int find_by_email(const auth_ctx *ctx, const char *email, auth_user *u,
                         char err[LC_ERR_LEN]) {
  PGconn *conn = NULL;
  int rc = lc_db_acquire(ctx->pool, &conn, err);
  if (rc != LC_OK)
    return rc == LC_ERR_TIMEOUT ? LC_ERR_UNAVAIL : rc;
  rc = auth_users_by_email(conn, email, u, err);
  lc_db_release(ctx->pool, conn);
  return rc;
}

int auth_account_signup(const auth_ctx *ctx, const char *email, const char *password,
                        size_t pwlen, const char *request_id, auth_user *u, auth_tokens *t,
                        char err[LC_ERR_LEN]) {
  char norm[AUTH_EMAIL_MAX + 1];
  char hash[AUTH_PW_HASH_MAX];
  auth_user existing;
  int rc;

  memset(t, 0, sizeof(*t));
  rc = auth_email_normalize(email, norm, err);
  if (rc != LC_OK)
    return rc;
  rc = auth_password_validate(password, pwlen, err);
  if (rc != LC_OK)
    return rc;
  /* Cheap pre-check so a duplicate does not cost an Argon2id run. */
  rc = find_by_email(ctx, norm, &existing, err);
  if (rc == LC_OK)
    return lc_err_set(err, LC_ERR_CONFLICT, "email already registered");
  if (rc != LC_ERR_NOTFOUND)
    return rc;
  rc = auth_pw_hash(ctx->pw, password, pwlen, hash, err);
  if (rc != LC_OK)
    return rc;
  rc = create_with_session(ctx, norm, hash, u, t, err);
  sodium_memzero(hash, sizeof(hash));
  if (rc != LC_OK)
    return rc;
  lc_log_info("Event - signup user %s", u->id);
  open_credit_logged(ctx, u->id, request_id);
  return LC_OK;
}

/* Audits a failed login (same statement on every path, so an unknown email
 * costs what a wrong password costs). Only a hash of the email and the user
 * id when known; never the password. Failures are logged, not returned. */
static void login_failed_audit(const auth_ctx *ctx, const char *norm_email, const char *user_id) {
  char err[LC_ERR_LEN] = "", hex[65];
  uint8_t h[32];
  PGconn *conn = NULL;

  lc_sha256(norm_email, strlen(norm_email), h);
  lc_hex_encode(h, sizeof(h), hex);
  if (lc_db_acquire(ctx->pool, &conn, err) != LC_OK) {
    lc_log_warn("login_failed_audit - %s", err);
    return;
  }
  if (auth_audit(conn, user_id, "anonymous", "login_failed", "failed",
                 json_pack("{s:s}", "email_sha256", hex), err) != LC_OK)
    lc_log_warn("login_failed_audit - %s", err);
  lc_db_release(ctx->pool, conn);
}

int auth_account_login(const auth_ctx *ctx, const char *email, const char *password,
                       size_t pwlen, auth_user *u, auth_tokens *t, char err[LC_ERR_LEN]) {
  char norm[AUTH_EMAIL_MAX + 1];
  PGconn *conn = NULL;
  int exists, found, rc;

  memset(t, 0, sizeof(*t));
  memset(u, 0, sizeof(*u));
  rc = auth_email_normalize(email, norm, err);
  if (rc != LC_OK)
    return rc;
  if (password == NULL || pwlen == 0 || pwlen > AUTH_PW_MAX_LEN)
    return lc_err_set(err, LC_ERR_PARAM, "password must be 1..%d bytes", AUTH_PW_MAX_LEN);
  /* shed a login burst before the user lookup (same answer for every email) */
  if (auth_pw_saturated(ctx->pw))
    return lc_err_set(err, LC_ERR_UNAVAIL, "password hashing busy");
  rc = find_by_email(ctx, norm, u, err);
  if (rc != LC_OK && rc != LC_ERR_NOTFOUND)
    return rc;
  exists = rc == LC_OK;
  found = exists && u->has_password;
  /* Exactly one verification on every path: the dummy hash when no usable
   * hash exists, so unknown emails cost the same as wrong passwords. */
  rc = auth_pw_verify(ctx->pw, found ? u->password_hash : NULL, password, pwlen, err);
  if (rc == LC_ERR_UNAVAIL)
    return rc;
  if (rc != LC_OK || u->disabled) {
    const char *why = !found ? "unknown account or no password"
                      : u->disabled ? "account disabled"
                                    : "wrong password";
    lc_log_warn("Security - login failed: %s", why);
    login_failed_audit(ctx, norm, exists ? u->id : NULL);
    memset(u, 0, sizeof(*u));
    return lc_err_set(err, LC_ERR_UNAUTH, "invalid credentials");
  }
  rc = lc_db_acquire(ctx->pool, &conn, err);
  if (rc != LC_OK)
    return rc == LC_ERR_TIMEOUT ? LC_ERR_UNAVAIL : rc;
  rc = lc_db_begin(conn, err);
  if (rc == LC_OK)
    rc = auth_sessions_start(conn, &ctx->tok, u, t, err);
  if (rc == LC_OK) {
    char actor[64];
    auth_actor(actor, "user", u->id);
    rc = auth_audit(conn, u->id, actor, "login", "ok", NULL, err);
  }
  if (rc == LC_OK)
    rc = lc_db_commit(conn, err);
  if (rc != LC_OK) {
    lc_db_rollback(conn);
    auth_tokens_free(t);
  }
  lc_db_release(ctx->pool, conn);
  if (rc == LC_OK)
    lc_log_info("Event - login user %s", u->id);
  return rc;
}

int auth_account_refresh(const auth_ctx *ctx, const char *token, auth_user *u, auth_tokens *t,
                         char err[LC_ERR_LEN]) {
  PGconn *conn = NULL;
  int reuse = 0;
  int rc;

  memset(t, 0, sizeof(*t));
  if (!auth_sessions_token_wellformed(token))
    return lc_err_set(err, LC_ERR_UNAUTH, "malformed refresh token");
  rc = lc_db_acquire(ctx->pool, &conn, err);
  if (rc != LC_OK)
    return rc == LC_ERR_TIMEOUT ? LC_ERR_UNAVAIL : rc;
  rc = auth_sessions_refresh(conn, &ctx->tok, token, u, t, &reuse, err);
  lc_db_release(ctx->pool, conn);
  if (rc == LC_OK)
    lc_log_info("Event - refresh user %s family %s", u->id, t->family_id);
  else if (rc == LC_ERR_UNAUTH && !reuse)
    lc_log_info("Security - refresh rejected: %s", err);
  return rc;
}

int auth_account_me(const auth_ctx *ctx, const char *user_id, auth_user *u,
                    char err[LC_ERR_LEN]) {
  PGconn *conn = NULL;
  int rc = lc_db_acquire(ctx->pool, &conn, err);

  if (rc != LC_OK)
    return rc == LC_ERR_TIMEOUT ? LC_ERR_UNAVAIL : rc;
  rc = auth_users_by_id(conn, user_id, u, err);
  lc_db_release(ctx->pool, conn);
  if (rc == LC_ERR_NOTFOUND || (rc == LC_OK && u->disabled))
    return lc_err_set(err, LC_ERR_UNAUTH, "unknown or disabled account");
  return rc;
}

int auth_account_ensure(const auth_ctx *ctx, const char *email, const char *password,
                        const char *role, auth_user *u, int *created, char err[LC_ERR_LEN]) {
  char norm[AUTH_EMAIL_MAX + 1];
  char hash[AUTH_PW_HASH_MAX];
  PGconn *conn = NULL;
  int made = 0;
  int rc;

  if (created != NULL)
    *created = 0;
  rc = auth_email_normalize(email, norm, err);
  if (rc != LC_OK)
    return rc;
  rc = auth_password_validate(password, password != NULL ? strlen(password) : 0, err);
  if (rc != LC_OK)
    return rc;
  rc = find_by_email(ctx, norm, u, err);
  if (rc != LC_ERR_NOTFOUND)
    return rc; /* exists (LC_OK) or DB error: never touch an existing account */
  rc = auth_pw_hash(ctx->pw, password, strlen(password), hash, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_acquire(ctx->pool, &conn, err);
  if (rc != LC_OK)
    goto out;
  rc = auth_users_create_if_absent(conn, norm, hash, role, u, &made, err);
  lc_db_release(ctx->pool, conn);
  if (rc != LC_OK)
    goto out;
  if (created != NULL)
    *created = made;
  if (made) {
    lc_log_info("Event - bootstrap account %s created with role %s", u->id, role);
    open_credit_logged(ctx, u->id, NULL);
  }
out:
  sodium_memzero(hash, sizeof(hash));
  return rc;
}

int auth_account_logout(const auth_ctx *ctx, const char *user_id, const char *jti, int64_t exp,
                        const char *refresh_token, char err[LC_ERR_LEN]) {
  PGconn *conn = NULL;
  char family[37] = "", actor[64];
  json_t *detail;
  int rc;

  if (user_id == NULL || !lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_UNAUTH, "no user");
  if (jti != NULL && !lc_uuid_valid(jti))
    return lc_err_set(err, LC_ERR_PARAM, "malformed token id");
  rc = lc_db_acquire(ctx->pool, &conn, err);
  if (rc != LC_OK)
    return rc == LC_ERR_TIMEOUT ? LC_ERR_UNAVAIL : rc;
  rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    goto out;
  detail = json_object();
  if (jti != NULL) {
    char expt[32];
    const char *p[3] = {jti, user_id, expt};
    PGresult *res = NULL;
    snprintf(expt, sizeof(expt), "%lld", (long long)exp);
    rc = lc_db_exec(conn,
                    "INSERT INTO revoked_tokens (jti, user_id, exp) VALUES ($1::uuid, $2::uuid, "
                    "$3::bigint) ON CONFLICT (jti) DO NOTHING",
                    3, p, &res, err);
    if (rc == LC_OK && strcmp(PQcmdTuples(res), "1") == 0)
      rc = auth_event_token_revoked(conn, jti, user_id, exp, err);
    PQclear(res);
    json_object_set_new(detail, "jti", json_string(jti));
  }
  if (rc == LC_OK && refresh_token != NULL && refresh_token[0] != '\0') {
    int f = auth_sessions_family_of(conn, refresh_token, user_id, family, err);
    if (f == LC_OK) {
      rc = auth_sessions_revoke_family(conn, family, NULL, err);
      json_object_set_new(detail, "family_id", json_string(family));
    } else if (f != LC_ERR_NOTFOUND) {
      rc = f;
    }
  }
  auth_actor(actor, "user", user_id);
  if (rc == LC_OK)
    rc = auth_audit(conn, user_id, actor, "logout", "ok", detail, err);
  else
    json_decref(detail);
  if (rc == LC_OK)
    rc = lc_db_commit(conn, err);
  if (rc != LC_OK)
    lc_db_rollback(conn);
out:
  lc_db_release(ctx->pool, conn);
  return rc;
}

int auth_account_change_password(const auth_ctx *ctx, const char *user_id, const char *current,
                                 size_t curlen, const char *next, size_t nextlen, auth_user *u,
                                 auth_tokens *t, char err[LC_ERR_LEN]) {
  char hash[AUTH_PW_HASH_MAX], actor[64];
  PGconn *conn = NULL;
  int64_t nb = 0;
  int rc;

  memset(t, 0, sizeof(*t));
  rc = auth_account_me(ctx, user_id, u, err);
  if (rc != LC_OK)
    return rc;
  if (current == NULL || curlen == 0 || curlen > AUTH_PW_MAX_LEN)
    return lc_err_set(err, LC_ERR_PARAM, "current_password must be 1..%d bytes", AUTH_PW_MAX_LEN);
  rc = auth_password_validate(next, nextlen, err);
  if (rc != LC_OK)
    return rc;
  /* One verification even without a password (OAuth-only): same cost. */
  rc = auth_pw_verify(ctx->pw, u->has_password ? u->password_hash : NULL, current, curlen, err);
  if (rc == LC_ERR_UNAVAIL)
    return rc;
  auth_actor(actor, "user", u->id);
  if (rc != LC_OK) {
    if (lc_db_acquire(ctx->pool, &conn, err) == LC_OK) {
      if (auth_audit(conn, u->id, actor, "password_changed", "denied",
                     json_pack("{s:s}", "reason", "wrong current password"), err) != LC_OK)
        lc_log_warn("password - audit: %s", err);
      lc_db_release(ctx->pool, conn);
    }
    return lc_err_set(err, LC_ERR_FORBIDDEN, "current password is wrong");
  }
  rc = auth_pw_hash(ctx->pw, next, nextlen, hash, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_acquire(ctx->pool, &conn, err);
  if (rc != LC_OK) {
    sodium_memzero(hash, sizeof(hash));
    return rc == LC_ERR_TIMEOUT ? LC_ERR_UNAVAIL : rc;
  }
  rc = lc_db_begin(conn, err);
  if (rc == LC_OK)
    rc = auth_users_set_password(conn, u->id, hash, err);
  if (rc == LC_OK)
    rc = auth_users_bump_not_before(conn, u->id, &nb, err);
  if (rc == LC_OK)
    rc = auth_sessions_revoke_user(conn, u->id, NULL, err);
  if (rc == LC_OK)
    rc = auth_event_user_revoked(conn, u->id, nb, err);
  if (rc == LC_OK)
    rc = auth_audit(conn, u->id, actor, "password_changed", "ok", NULL, err);
  if (rc == LC_OK) {
    u->not_before = nb;
    rc = auth_sessions_start(conn, &ctx->tok, u, t, err);
  }
  if (rc == LC_OK)
    rc = lc_db_commit(conn, err);
  if (rc != LC_OK) {
    lc_db_rollback(conn);
    auth_tokens_free(t);
  }
  lc_db_release(ctx->pool, conn);
  sodium_memzero(hash, sizeof(hash));
  memset(u->password_hash, 0, sizeof(u->password_hash));
  return rc;
}
