/* oauth_store.c - see oauth_store.h. */
#include "oauth_store.h"

#include <stdio.h>
#include <string.h>

#include "events.h"
#include "lc/db.h"
#include "lc/log.h"
#include "lc/util.h"

int oauth_store_state_put(PGconn *conn, const char *provider, const char *state_hash,
                          const char *binding_hash, const char *verifier, const char *nonce,
                          int64_t ttl_s, char err[LC_ERR_LEN]) {
  char ttl[24];
  const char *p[6];
  int rc;

  snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_s);
  p[0] = state_hash;
  p[1] = binding_hash;
  p[2] = provider;
  p[3] = verifier;
  p[4] = nonce;
  p[5] = ttl;
  rc = lc_db_exec(conn, "DELETE FROM oauth_states WHERE expires_at < now() - interval '1 hour'",
                  0, NULL, NULL, err);
  if (rc != LC_OK)
    return rc;
  return lc_db_exec(conn,
                    "INSERT INTO oauth_states (state_hash, binding_hash, provider, code_verifier, "
                    "nonce, expires_at) VALUES ($1, $2, $3, $4, $5, "
                    "now() + make_interval(secs => $6::int))",
                    6, p, NULL, err);
}

int oauth_store_state_take(PGconn *conn, const char *state_hash, oauth_state_row *out,
                           char err[LC_ERR_LEN]) {
  const char *p[1] = {state_hash};
  PGresult *res = NULL;
  int rc;

  memset(out, 0, sizeof(*out));
  rc = lc_db_exec(conn,
                  "UPDATE oauth_states SET used_at = now() "
                  "WHERE state_hash = $1 AND used_at IS NULL "
                  "RETURNING provider, binding_hash, code_verifier, coalesce(nonce, ''), "
                  "(expires_at <= now())::int",
                  1, p, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1) {
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "unknown or already used state");
    goto out;
  }
  if (lc_strlcpy(out->provider, PQgetvalue(res, 0, 0), sizeof(out->provider)) != LC_OK ||
      lc_strlcpy(out->binding_hash, PQgetvalue(res, 0, 1), sizeof(out->binding_hash)) != LC_OK ||
      lc_strlcpy(out->verifier, PQgetvalue(res, 0, 2), sizeof(out->verifier)) != LC_OK ||
      lc_strlcpy(out->nonce, PQgetvalue(res, 0, 3), sizeof(out->nonce)) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_DB, "state row malformed");
    goto out;
  }
  out->expired = strcmp(PQgetvalue(res, 0, 4), "1") == 0;
out:
  PQclear(res);
  return rc;
}

static int link_identity(PGconn *conn, const oauth_identity *id, const char *user_id,
                         const char *email, char err[LC_ERR_LEN]) {
  const char *p[4] = {id->provider, id->subject, user_id, email};
  return lc_db_exec(conn,
                    "INSERT INTO oauth_identities (provider, subject, user_id, email) "
                    "VALUES ($1, $2, $3, $4)",
                    4, p, NULL, err);
}

/* The user already linked to (provider, subject): LC_OK, LC_ERR_NOTFOUND. */
static int linked_user(PGconn *conn, const oauth_identity *id, auth_user *u,
                       char err[LC_ERR_LEN]) {
  const char *p[2] = {id->provider, id->subject};
  PGresult *res = NULL;
  char uid[37];
  int rc;

  rc = lc_db_exec(conn,
                  "UPDATE oauth_identities SET last_login_at = now() "
                  "WHERE provider = $1 AND subject = $2 RETURNING user_id::text",
                  2, p, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1) {
    PQclear(res);
    return LC_ERR_NOTFOUND;
  }
  lc_strlcpy(uid, PQgetvalue(res, 0, 0), sizeof(uid));
  PQclear(res);
  rc = auth_users_by_id(conn, uid, u, err);
  if (rc == LC_ERR_NOTFOUND)
    return lc_err_set(err, LC_ERR_DB, "identity points to a missing user");
  return rc;
}

/* One attempt inside an open transaction. */
static int resolve(PGconn *conn, const oauth_identity *id, auth_user *u, int *outcome,
                   char err[LC_ERR_LEN]) {
  char norm[AUTH_EMAIL_MAX + 1];
  int rc;

  rc = linked_user(conn, id, u, err);
  if (rc == LC_OK) {
    *outcome = OAUTH_SIGNIN_EXISTING;
    return u->disabled ? lc_err_set(err, LC_ERR_UNAUTH, "account disabled") : LC_OK;
  }
  if (rc != LC_ERR_NOTFOUND)
    return rc;
  /* A new link is made only on a provider-verified email. */
  if (!id->email_verified || id->email[0] == '\0')
    return lc_err_set(err, LC_ERR_UNAUTH, "provider did not verify the email");
  if (auth_email_normalize(id->email, norm, err) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "provider email not usable");
  rc = auth_users_by_email(conn, norm, u, err);
  if (rc == LC_OK) {
    if (u->disabled)
      return lc_err_set(err, LC_ERR_UNAUTH, "account disabled");
    *outcome = OAUTH_SIGNIN_LINKED;
    return link_identity(conn, id, u->id, norm, err);
  }
  if (rc != LC_ERR_NOTFOUND)
    return rc;
  rc = auth_users_create(conn, norm, NULL, "user", u, err);
  if (rc != LC_OK)
    return rc;
  *outcome = OAUTH_SIGNIN_CREATED;
  return link_identity(conn, id, u->id, norm, err);
}

/* auth.audit rows in the sign-in transaction (contract A): "signup" for a
 * created account, "oauth_linked" for a new link, "oauth_login" always. */
static int audit(PGconn *conn, const oauth_identity *id, const auth_user *u, int outcome,
                 char err[LC_ERR_LEN]) {
  static const char *const names[] = {"", "existing", "linked", "created"};
  char actor[64];
  int rc = LC_OK;

  auth_actor(actor, "user", u->id);
  if (outcome == OAUTH_SIGNIN_CREATED)
    rc = auth_audit(conn, u->id, actor, "signup", "ok", json_pack("{s:s}", "via", id->provider),
                    err);
  if (rc == LC_OK && outcome != OAUTH_SIGNIN_EXISTING)
    rc = auth_audit(conn, u->id, actor, "oauth_linked", "ok",
                    json_pack("{s:s}", "provider", id->provider), err);
  if (rc == LC_OK)
    rc = auth_audit(conn, u->id, actor, "oauth_login", "ok",
                    json_pack("{s:s,s:s}", "provider", id->provider, "outcome",
                              names[outcome >= 1 && outcome <= 3 ? outcome : 0]),
                    err);
  return rc;
}

int oauth_store_signin(PGconn *conn, const auth_sessions_cfg *tok, const oauth_identity *id,
                       auth_user *u, auth_tokens *t, int *outcome, char err[LC_ERR_LEN]) {
  int rc = LC_ERR;

  memset(t, 0, sizeof(*t));
  for (int attempt = 0; attempt < 2; attempt++) {
    memset(u, 0, sizeof(*u));
    *outcome = 0;
    rc = lc_db_begin(conn, err);
    if (rc != LC_OK)
      return rc;
    rc = resolve(conn, id, u, outcome, err);
    if (rc == LC_OK)
      rc = audit(conn, id, u, *outcome, err);
    if (rc == LC_OK)
      rc = auth_sessions_start(conn, tok, u, t, err);
    if (rc == LC_OK)
      rc = lc_db_commit(conn, err);
    if (rc == LC_OK)
      return LC_OK;
    lc_db_rollback(conn);
    auth_tokens_free(t);
    /* A concurrent first login of the same identity or email won the
     * insert: the second attempt finds its row. */
    if (rc != LC_ERR_CONFLICT && rc != LC_ERR_RETRY)
      break;
  }
  memset(u, 0, sizeof(*u));
  if (rc == LC_ERR_CONFLICT || rc == LC_ERR_RETRY)
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "concurrent sign-in, retry");
  return rc;
}
