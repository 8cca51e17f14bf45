/* admin.c - see admin.h. */
#include "admin.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikeys.h"
#include "events.h"
#include "lc/db.h"
#include "lc/http.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/util.h"
#include "sessions.h"
#include "users.h"

#define DEP_TIMEOUT_MS 1500

static int acquire(const auth_ctx *ctx, PGconn **c, char err[LC_ERR_LEN]) {
  int rc = lc_db_acquire(ctx->pool, c, err);
  return rc == LC_ERR_TIMEOUT ? LC_ERR_UNAVAIL : rc;
}

static json_t *user_view(const auth_user *u) {
  return json_pack("{s:s,s:s,s:s,s:b,s:s,s:n,s:n,s:n}", "id", u->id, "email", u->email, "role",
                   u->role, "disabled", u->disabled, "created_at", u->created_at, "balance",
                   "available", "custodial_address");
}

static void system_identity(lc_identity *id) {
  memset(id, 0, sizeof(*id));
  lc_strlcpy(id->role, "system", sizeof(id->role));
  if (lc_strlcpy(id->request_id, lc_log_rid(), sizeof(id->request_id)) != LC_OK ||
      strcmp(id->request_id, "-") == 0)
    lc_uuid_v4(id->request_id);
}

/* Signed GET to a dependency; *out is the parsed JSON object on 200. */
static int dep_get(const auth_ctx *ctx, const char *base, const char *path, json_t **out) {
  lc_identity id;
  lc_http_resp resp;
  char err[LC_ERR_LEN] = "";
  int rc;

  *out = NULL;
  if (base == NULL || base[0] == '\0')
    return LC_ERR_UNAVAIL;
  system_identity(&id);
  memset(&resp, 0, sizeof(resp));
  rc = lc_iauth_call(ctx->secret, ctx->secret_len, base, "GET", path, &id, NULL, NULL, 0,
                     DEP_TIMEOUT_MS, &resp, err);
  if (rc == LC_OK && resp.status == 200 && resp.body != NULL) {
    *out = json_loadb(resp.body, resp.len, 0, NULL);
    if (*out != NULL && !json_is_object(*out)) {
      json_decref(*out);
      *out = NULL;
    }
  }
  if (*out == NULL) {
    lc_log_warn("admin - %s%s unavailable (%s, status %ld): fields left null", base, path,
                rc == LC_OK ? "answer" : err, resp.status);
    rc = LC_ERR_UNAVAIL;
  }
  lc_http_resp_free(&resp);
  return rc;
}

/* Fills balance/available/custodial_address of each view in items (array of
 * user views). Missing data stays null. */
static void enrich(const auth_ctx *ctx, json_t *items) {
  size_t i, n = json_array_size(items);
  char path[64 + AUTH_PAGE_MAX * 37];
  size_t len;
  json_t *v, *bal = NULL;
  int chain_ok = 1;

  if (n == 0)
    return;
  len = (size_t)snprintf(path, sizeof(path), "/internal/balances?user_ids=");
  json_array_foreach(items, i, v) {
    if (i >= AUTH_PAGE_MAX)
      break;
    len += (size_t)snprintf(path + len, sizeof(path) - len, "%s%s", i ? "," : "",
                            json_string_value(json_object_get(v, "id")));
  }
  if (dep_get(ctx, ctx->credit_url, path, &bal) == LC_OK) {
    json_t *arr = json_object_get(bal, "items"), *b;
    size_t j;
    json_array_foreach(arr, j, b) {
      const char *uid = json_string_value(json_object_get(b, "user_id"));
      json_array_foreach(items, i, v) {
        if (uid != NULL && strcmp(uid, json_string_value(json_object_get(v, "id"))) == 0) {
          json_t *x = json_object_get(b, "balance"), *y = json_object_get(b, "available");
          if (json_is_integer(x))
            json_object_set(v, "balance", x);
          if (json_is_integer(y))
            json_object_set(v, "available", y);
        }
      }
    }
  }
  json_decref(bal);
  json_array_foreach(items, i, v) {
    json_t *w = NULL;
    if (!chain_ok)
      break;
    snprintf(path, sizeof(path), "/internal/wallets/%s",
             json_string_value(json_object_get(v, "id")));
    if (dep_get(ctx, ctx->chain_url, path, &w) != LC_OK) {
      chain_ok = 0; /* one failure: do not wait on the rest */
      continue;
    }
    if (json_is_string(json_object_get(w, "address")))
      json_object_set(v, "custodial_address", json_object_get(w, "address"));
    json_decref(w);
  }
}

int auth_admin_list_users(const auth_ctx *ctx, const char *cursor, int limit, json_t **out,
                          char err[LC_ERR_LEN]) {
  auth_user *rows;
  char next[37];
  PGconn *c = NULL;
  json_t *items;
  int n = 0, rc;

  *out = NULL;
  if (limit < 1 || limit > AUTH_PAGE_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "limit must be 1..%d", AUTH_PAGE_MAX);
  if (cursor != NULL && !lc_uuid_valid(cursor))
    return lc_err_set(err, LC_ERR_PARAM, "cursor is invalid");
  rc = acquire(ctx, &c, err);
  if (rc != LC_OK)
    return rc;
  rows = lc_xcalloc((size_t)limit, sizeof(*rows));
  rc = auth_users_list(c, cursor, limit, rows, &n, next, err);
  lc_db_release(ctx->pool, c);
  if (rc != LC_OK) {
    free(rows);
    return rc;
  }
  items = json_array();
  for (int i = 0; i < n; i++)
    json_array_append_new(items, user_view(&rows[i]));
  free(rows);
  enrich(ctx, items);
  *out = json_pack("{s:o,s:o}", "items", items, "next_cursor",
                   next[0] ? json_string(next) : json_null());
  return *out != NULL ? LC_OK : lc_err_set(err, LC_ERR_NOMEM, "json");
}

int auth_admin_get_user(const auth_ctx *ctx, const char *id, json_t **out, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  auth_user u;
  json_t *items;
  int rc;

  *out = NULL;
  rc = acquire(ctx, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = auth_users_by_id(c, id, &u, err);
  lc_db_release(ctx->pool, c);
  if (rc != LC_OK)
    return rc;
  items = json_array();
  json_array_append_new(items, user_view(&u));
  enrich(ctx, items);
  *out = json_incref(json_array_get(items, 0));
  json_decref(items);
  return LC_OK;
}

/* Revokes every refresh family and API key of user id and bumps not_before,
 * with events; in the caller's transaction. *nb / *nfam / *nkeys out. */
static int end_all_access(PGconn *c, const char *id, int keys_too, int64_t *nb, int *nfam,
                          int *nkeys, char err[LC_ERR_LEN]) {
  json_t *keys = NULL, *k;
  size_t i;
  int rc;

  *nkeys = 0;
  rc = auth_users_bump_not_before(c, id, nb, err);
  if (rc == LC_OK)
    rc = auth_sessions_revoke_user(c, id, nfam, err);
  if (rc == LC_OK)
    rc = auth_event_user_revoked(c, id, *nb, err);
  if (rc != LC_OK || !keys_too)
    return rc;
  rc = auth_keys_revoke_owner(c, id, &keys, err);
  json_array_foreach(keys, i, k) {
    if (rc != LC_OK)
      break;
    rc = auth_event_key_revoked(c, json_string_value(json_object_get(k, "key_id")),
                                json_string_value(json_object_get(k, "prefix")), id, err);
    (*nkeys)++;
  }
  json_decref(keys);
  return rc;
}

int auth_admin_patch_user(const auth_ctx *ctx, const char *actor_id, const char *id,
                          const char *role, int disabled, json_t **out, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  auth_user before, after;
  char actor[64];
  int rc;

  *out = NULL;
  if (role != NULL && !auth_role_valid(role))
    return lc_err_set(err, LC_ERR_PARAM, "role must be admin, user or service");
  if (id == NULL || !lc_uuid_valid(id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "user not found");
  auth_actor(actor, "admin", actor_id);
  rc = acquire(ctx, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    goto out;
  rc = lc_db_exec(c, "SELECT 1 FROM users WHERE id = $1::uuid FOR UPDATE", 1,
                  (const char *const[]){id}, NULL, err);
  if (rc == LC_OK)
    rc = auth_users_by_id(c, id, &before, err);
  if (rc != LC_OK)
    goto out;
  if (actor_id != NULL && strcmp(actor_id, id) == 0 &&
      ((role != NULL && strcmp(role, before.role) != 0) || disabled == 1)) {
    rc = lc_err_set(err, LC_ERR_FORBIDDEN, "an admin cannot change his own role or disable himself");
    char e2[LC_ERR_LEN];
    if (auth_audit(c, id, actor, role != NULL ? "role_changed" : "user_disabled", "denied",
                   json_pack("{s:s}", "reason", "self"), e2) != LC_OK ||
        lc_db_commit(c, e2) != LC_OK) {
      lc_log_warn("patch_user - audit of a denied self-change: %s", e2);
      lc_db_rollback(c);
    }
    goto out;
  }
  if (role != NULL && strcmp(role, before.role) != 0) {
    int64_t nb = 0;
    rc = auth_users_set_role(c, id, role, err);
    /* Access tokens carry the role: end them; refreshing issues the new role. */
    if (rc == LC_OK)
      rc = auth_users_bump_not_before(c, id, &nb, err);
    if (rc == LC_OK)
      rc = auth_event_user_revoked(c, id, nb, err);
    if (rc == LC_OK)
      rc = auth_audit(c, id, actor, "role_changed", "ok",
                      json_pack("{s:s,s:s}", "from", before.role, "to", role), err);
    if (rc != LC_OK)
      goto out;
  }
  if (disabled == 1 && !before.disabled) {
    int64_t nb = 0;
    int nfam = 0, nkeys = 0;
    rc = auth_users_set_disabled(c, id, 1, err);
    if (rc == LC_OK)
      rc = end_all_access(c, id, 1, &nb, &nfam, &nkeys, err);
    if (rc == LC_OK)
      rc = auth_audit(c, id, actor, "user_disabled", "ok",
                      json_pack("{s:i,s:i}", "refresh_families_revoked", nfam,
                                "api_keys_revoked", nkeys),
                      err);
  } else if (disabled == 0 && before.disabled) {
    rc = auth_users_set_disabled(c, id, 0, err);
    if (rc == LC_OK)
      rc = auth_audit(c, id, actor, "user_enabled", "ok", NULL, err);
  }
  if (rc != LC_OK)
    goto out;
  rc = auth_users_by_id(c, id, &after, err);
  if (rc == LC_OK)
    rc = lc_db_commit(c, err);
out:
  lc_db_release(ctx->pool, c);
  if (rc != LC_OK)
    return rc;
  {
    json_t *items = json_array();
    json_array_append_new(items, user_view(&after));
    enrich(ctx, items);
    *out = json_incref(json_array_get(items, 0));
    json_decref(items);
  }
  return LC_OK;
}

int auth_admin_revoke_tokens(const auth_ctx *ctx, const char *actor_id, const char *id,
                             json_t **out, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  auth_user u;
  char actor[64];
  int64_t nb = 0;
  int nfam = 0, nkeys = 0, rc;

  *out = NULL;
  auth_actor(actor, "admin", actor_id);
  rc = acquire(ctx, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_begin(c, err);
  if (rc == LC_OK)
    rc = auth_users_by_id(c, id, &u, err);
  if (rc == LC_OK)
    rc = end_all_access(c, u.id, 0, &nb, &nfam, &nkeys, err);
  if (rc == LC_OK)
    rc = auth_audit(c, u.id, actor, "tokens_revoked", "ok",
                    json_pack("{s:i}", "refresh_families_revoked", nfam), err);
  if (rc == LC_OK)
    rc = lc_db_commit(c, err);
  lc_db_release(ctx->pool, c);
  if (rc != LC_OK)
    return rc;
  *out = json_pack("{s:s,s:I,s:i}", "user_id", u.id, "not_before", (json_int_t)nb,
                   "refresh_tokens_revoked", nfam);
  return LC_OK;
}

int auth_admin_key_create(const auth_ctx *ctx, const char *actor_id, const char *owner_id,
                          const char *scope, const char *name, json_t **out,
                          char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  auth_apikey k;
  char key[AUTH_KEY_LEN + 1], actor[64];
  int rc;

  *out = NULL;
  auth_actor(actor, "admin", actor_id);
  rc = acquire(ctx, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_begin(c, err);
  if (rc == LC_OK)
    rc = auth_keys_create(c, owner_id, scope, name, actor_id, &k, key, err);
  if (rc == LC_OK)
    rc = auth_audit(c, owner_id, actor, "key_issued", "ok",
                    json_pack("{s:s,s:s,s:s}", "key_id", k.id, "prefix", k.prefix, "scope",
                              k.scope),
                    err);
  if (rc == LC_OK)
    rc = lc_db_commit(c, err);
  lc_db_release(ctx->pool, c);
  if (rc == LC_OK)
    *out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id", k.id, "key", key, "prefix", k.prefix,
                     "scope", k.scope, "name", k.name, "owner_id", k.owner_id, "created_at",
                     k.created_at);
  sodium_memzero(key, sizeof(key));
  return rc;
}

int auth_admin_key_list(const auth_ctx *ctx, const char *owner_id, const char *cursor, int limit,
                        json_t **out, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  json_t *items = NULL;
  char next[37];
  int rc;

  *out = NULL;
  if (limit < 1 || limit > AUTH_PAGE_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "limit must be 1..%d", AUTH_PAGE_MAX);
  if ((cursor != NULL && !lc_uuid_valid(cursor)) || (owner_id != NULL && !lc_uuid_valid(owner_id)))
    return lc_err_set(err, LC_ERR_PARAM, "cursor and owner_id must be UUIDs");
  rc = acquire(ctx, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = auth_keys_list(c, owner_id, cursor, limit, &items, next, err);
  lc_db_release(ctx->pool, c);
  if (rc != LC_OK)
    return rc;
  *out = json_pack("{s:o,s:o}", "items", items, "next_cursor",
                   next[0] ? json_string(next) : json_null());
  return LC_OK;
}

int auth_admin_key_revoke(const auth_ctx *ctx, const char *actor_id, const char *id,
                          char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  auth_apikey k;
  char actor[64];
  int was = 0, rc;

  auth_actor(actor, "admin", actor_id);
  rc = acquire(ctx, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_begin(c, err);
  if (rc == LC_OK)
    rc = auth_keys_revoke(c, id, &k, &was, err);
  if (rc == LC_OK && was)
    rc = auth_event_key_revoked(c, k.id, k.prefix, k.owner_id, err);
  if (rc == LC_OK && was)
    rc = auth_audit(c, k.owner_id, actor, "key_revoked", "ok",
                    json_pack("{s:s,s:s}", "key_id", k.id, "prefix", k.prefix), err);
  if (rc == LC_OK)
    rc = lc_db_commit(c, err);
  lc_db_release(ctx->pool, c);
  return rc;
}

int auth_internal_key_verify(const auth_ctx *ctx, const char *key, json_t **out,
                             char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  auth_apikey k;
  char role[16];
  int rc;

  *out = NULL;
  rc = acquire(ctx, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = auth_keys_verify(c, key, &k, role, err);
  lc_db_release(ctx->pool, c);
  if (rc != LC_OK)
    return rc;
  *out = json_pack("{s:s,s:s,s:s,s:s,s:s}", "key_id", k.id, "owner_id", k.owner_id, "owner_role",
                   role, "scope", k.scope, "prefix", k.prefix);
  return LC_OK;
}

int auth_internal_revocations(const auth_ctx *ctx, json_t **out, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  PGresult *r1 = NULL, *r2 = NULL;
  char ttl[32];
  const char *p[1] = {ttl};
  json_t *tokens, *users;
  int rc;

  *out = NULL;
  snprintf(ttl, sizeof(ttl), "%lld", (long long)ctx->tok.access_ttl);
  rc = acquire(ctx, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(c,
                  "SELECT jti::text, exp FROM revoked_tokens "
                  "WHERE exp > extract(epoch FROM now())::bigint - 60 ORDER BY exp",
                  0, NULL, &r1, err);
  if (rc == LC_OK)
    rc = lc_db_exec(c,
                    "SELECT id::text, not_before FROM users WHERE not_before IS NOT NULL AND "
                    "not_before > extract(epoch FROM now())::bigint - $1::bigint - 60",
                    1, p, &r2, err);
  lc_db_release(ctx->pool, c);
  if (rc != LC_OK)
    goto out;
  tokens = json_array();
  users = json_array();
  for (int i = 0; i < PQntuples(r1); i++) {
    int64_t exp = 0;
    lc_parse_i64(PQgetvalue(r1, i, 1), 0, INT64_MAX, &exp);
    json_array_append_new(tokens, json_pack("{s:s,s:I}", "jti", PQgetvalue(r1, i, 0), "exp",
                                            (json_int_t)exp));
  }
  for (int i = 0; i < PQntuples(r2); i++) {
    int64_t nb = 0;
    lc_parse_i64(PQgetvalue(r2, i, 1), 0, INT64_MAX, &nb);
    json_array_append_new(users, json_pack("{s:s,s:I}", "user_id", PQgetvalue(r2, i, 0),
                                           "not_before", (json_int_t)nb));
  }
  *out = json_pack("{s:o,s:o}", "tokens", tokens, "users", users);
out:
  PQclear(r1);
  PQclear(r2);
  return rc;
}
