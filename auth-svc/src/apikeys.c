/* apikeys.c - see apikeys.h. */
#include "apikeys.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/db.h"
#include "lc/log.h"
#include "lc/util.h"

#define KEY_COLS                                                                         \
  "k.id::text, k.owner_id::text, k.prefix, k.scope, k.name, "                           \
  "to_char(k.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "  \
  "COALESCE(k.created_by::text, ''), "                                                  \
  "COALESCE(to_char(k.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '')"

static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyz0123456789";

void auth_key_hash(const char *key, char hash_hex[65]) {
  uint8_t h[32];
  lc_sha256(key, strlen(key), h);
  lc_hex_encode(h, sizeof(h), hash_hex);
}

void auth_key_generate(char key[AUTH_KEY_LEN + 1], char prefix[AUTH_KEY_PREFIX_LEN + 1],
                       char hash_hex[65]) {
  uint8_t rnd[32];
  char *b64;

  for (int i = 0; i < AUTH_KEY_PREFIX_LEN; i++)
    prefix[i] = ALNUM[randombytes_uniform(sizeof(ALNUM) - 1)];
  prefix[AUTH_KEY_PREFIX_LEN] = '\0';
  lc_random(rnd, sizeof(rnd));
  b64 = lc_b64url_encode(rnd, sizeof(rnd));
  snprintf(key, AUTH_KEY_LEN + 1, "sk_%s_%s", prefix, b64);
  sodium_memzero(b64, strlen(b64));
  free(b64);
  sodium_memzero(rnd, sizeof(rnd));
  auth_key_hash(key, hash_hex);
}

int auth_key_parse(const char *key, char prefix[AUTH_KEY_PREFIX_LEN + 1]) {
  prefix[0] = '\0';
  if (key == NULL || strlen(key) != AUTH_KEY_LEN || strncmp(key, "sk_", 3) != 0 ||
      key[3 + AUTH_KEY_PREFIX_LEN] != '_')
    return LC_ERR_PARAM;
  for (int i = 0; i < AUTH_KEY_PREFIX_LEN; i++) {
    char c = key[3 + i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
      return LC_ERR_PARAM;
  }
  for (const char *p = key + 4 + AUTH_KEY_PREFIX_LEN; *p; p++) {
    char c = *p;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_'))
      return LC_ERR_PARAM;
  }
  memcpy(prefix, key + 3, AUTH_KEY_PREFIX_LEN);
  prefix[AUTH_KEY_PREFIX_LEN] = '\0';
  return LC_OK;
}

int auth_key_scope_valid(const char *scope) {
  return scope != NULL &&
         (strcmp(scope, "read") == 0 || strcmp(scope, "write") == 0 || strcmp(scope, "admin") == 0);
}

int auth_key_name_valid(const char *name) {
  size_t cps = 0;
  if (name == NULL)
    return 0;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    if (*p < 0x20 || *p == 0x7f)
      return 0;
    if ((*p & 0xc0) != 0x80)
      cps++;
  }
  return cps >= 1 && cps <= AUTH_KEY_NAME_MAX;
}

static int key_from_row(const PGresult *r, int i, auth_apikey *k) {
  memset(k, 0, sizeof(*k));
  if (lc_strlcpy(k->id, PQgetvalue(r, i, 0), sizeof(k->id)) != LC_OK ||
      lc_strlcpy(k->owner_id, PQgetvalue(r, i, 1), sizeof(k->owner_id)) != LC_OK ||
      lc_strlcpy(k->prefix, PQgetvalue(r, i, 2), sizeof(k->prefix)) != LC_OK ||
      lc_strlcpy(k->scope, PQgetvalue(r, i, 3), sizeof(k->scope)) != LC_OK ||
      lc_strlcpy(k->name, PQgetvalue(r, i, 4), sizeof(k->name)) != LC_OK ||
      lc_strlcpy(k->created_at, PQgetvalue(r, i, 5), sizeof(k->created_at)) != LC_OK ||
      lc_strlcpy(k->created_by, PQgetvalue(r, i, 6), sizeof(k->created_by)) != LC_OK ||
      lc_strlcpy(k->revoked_at, PQgetvalue(r, i, 7), sizeof(k->revoked_at)) != LC_OK)
    return LC_ERR_DB;
  return LC_OK;
}

json_t *auth_key_json(const auth_apikey *k) {
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o}", "id", k->id, "prefix", k->prefix, "scope",
                   k->scope, "name", k->name, "owner_id", k->owner_id, "created_at",
                   k->created_at, "created_by",
                   k->created_by[0] ? json_string(k->created_by) : json_null(), "revoked_at",
                   k->revoked_at[0] ? json_string(k->revoked_at) : json_null());
}

int auth_keys_create(PGconn *c, const char *owner_id, const char *scope, const char *name,
                     const char *created_by, auth_apikey *out, char key[AUTH_KEY_LEN + 1],
                     char err[LC_ERR_LEN]) {
  PGresult *r = NULL;
  const char *p[1] = {owner_id};
  int rc;

  key[0] = '\0';
  if (!lc_uuid_valid(owner_id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "owner not found");
  if (!auth_key_scope_valid(scope))
    return lc_err_set(err, LC_ERR_PARAM, "scope must be read, write or admin");
  if (!auth_key_name_valid(name))
    return lc_err_set(err, LC_ERR_PARAM, "name must be 1..%d printable characters",
                      AUTH_KEY_NAME_MAX);
  rc = lc_db_exec(c, "SELECT disabled FROM users WHERE id = $1::uuid FOR SHARE", 1, p, &r, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) != 1)
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "owner not found");
  else if (strcmp(PQgetvalue(r, 0, 0), "t") == 0)
    rc = lc_err_set(err, LC_ERR_CONFLICT, "owner account is disabled");
  PQclear(r);
  r = NULL;
  if (rc != LC_OK)
    return rc;
  for (int attempt = 0; attempt < 5; attempt++) {
    char prefix[AUTH_KEY_PREFIX_LEN + 1], hash[65];
    const char *q[6];
    auth_key_generate(key, prefix, hash);
    q[0] = owner_id;
    q[1] = prefix;
    q[2] = hash;
    q[3] = scope;
    q[4] = name;
    q[5] = created_by != NULL && lc_uuid_valid(created_by) ? created_by : NULL;
    /* A savepoint keeps the caller's transaction usable after a collision. */
    rc = lc_db_exec(c, "SAVEPOINT key_insert", 0, NULL, NULL, err);
    if (rc != LC_OK)
      break;
    rc = lc_db_exec(c,
                    "INSERT INTO api_keys AS k (owner_id, prefix, key_hash, scope, name, "
                    "created_by) VALUES ($1::uuid, $2, $3, $4, $5, $6::uuid) RETURNING " KEY_COLS,
                    6, q, &r, err);
    if (rc == LC_ERR_CONFLICT) {
      lc_db_exec(c, "ROLLBACK TO SAVEPOINT key_insert", 0, NULL, NULL, NULL);
      continue;
    }
    if (rc == LC_OK)
      rc = key_from_row(r, 0, out) == LC_OK ? LC_OK
                                            : lc_err_set(err, LC_ERR_DB, "api_keys: bad row");
    PQclear(r);
    break;
  }
  if (rc != LC_OK)
    sodium_memzero(key, AUTH_KEY_LEN + 1);
  return rc;
}

int auth_keys_verify(PGconn *c, const char *key, auth_apikey *out, char owner_role[16],
                     char err[LC_ERR_LEN]) {
  char prefix[AUTH_KEY_PREFIX_LEN + 1], hash[65];
  const char *p[1] = {prefix};
  PGresult *r = NULL;
  int rc;

  owner_role[0] = '\0';
  if (auth_key_parse(key, prefix) != LC_OK)
    return lc_err_set(err, LC_ERR_UNAUTH, "malformed key");
  auth_key_hash(key, hash);
  rc = lc_db_exec_prepared(c, "auth_key_verify",
                  "SELECT " KEY_COLS ", k.key_hash, u.role, u.disabled "
                  "FROM api_keys k JOIN users u ON u.id = k.owner_id WHERE k.prefix = $1",
                  1, p, &r, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) != 1 || PQgetlength(r, 0, 8) != 64 ||
      !lc_ct_eq(PQgetvalue(r, 0, 8), hash, 64)) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "unknown key");
    goto out;
  }
  if (key_from_row(r, 0, out) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_DB, "api_keys: bad row");
    goto out;
  }
  if (out->revoked_at[0] != '\0') {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "key revoked");
    goto out;
  }
  if (strcmp(PQgetvalue(r, 0, 10), "t") == 0) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "owner disabled");
    goto out;
  }
  lc_strlcpy(owner_role, PQgetvalue(r, 0, 9), 16);
out:
  PQclear(r);
  return rc;
}

int auth_keys_revoke(PGconn *c, const char *id, auth_apikey *out, int *was_active,
                     char err[LC_ERR_LEN]) {
  const char *p[1] = {id};
  PGresult *r = NULL;
  int rc;

  *was_active = 0;
  if (id == NULL || !lc_uuid_valid(id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "no such key");
  rc = lc_db_exec(c,
                  "UPDATE api_keys k SET revoked_at = now() WHERE id = $1::uuid "
                  "AND revoked_at IS NULL RETURNING " KEY_COLS,
                  1, p, &r, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) == 1) {
    *was_active = 1;
    rc = key_from_row(r, 0, out) == LC_OK ? LC_OK : lc_err_set(err, LC_ERR_DB, "bad row");
    PQclear(r);
    return rc;
  }
  PQclear(r);
  r = NULL;
  rc = lc_db_exec(c, "SELECT " KEY_COLS " FROM api_keys k WHERE id = $1::uuid", 1, p, &r, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) != 1)
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "no such key");
  else
    rc = key_from_row(r, 0, out) == LC_OK ? LC_OK : lc_err_set(err, LC_ERR_DB, "bad row");
  PQclear(r);
  return rc;
}

int auth_keys_revoke_owner(PGconn *c, const char *owner_id, json_t **out_arr,
                           char err[LC_ERR_LEN]) {
  const char *p[1] = {owner_id};
  PGresult *r = NULL;
  int rc;

  *out_arr = json_array();
  rc = lc_db_exec(c,
                  "UPDATE api_keys SET revoked_at = now() WHERE owner_id = $1::uuid "
                  "AND revoked_at IS NULL RETURNING id::text, prefix",
                  1, p, &r, err);
  if (rc != LC_OK)
    return rc;
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(*out_arr, json_pack("{s:s,s:s,s:s}", "key_id", PQgetvalue(r, i, 0),
                                              "prefix", PQgetvalue(r, i, 1), "owner_id",
                                              owner_id));
  PQclear(r);
  return LC_OK;
}

int auth_keys_list(PGconn *c, const char *owner_id, const char *cursor, int limit, json_t **items,
                   char next_cursor[37], char err[LC_ERR_LEN]) {
  char lim[16];
  const char *p[3];
  PGresult *r = NULL;
  int rc, n;

  *items = NULL;
  next_cursor[0] = '\0';
  snprintf(lim, sizeof(lim), "%d", limit + 1);
  p[0] = owner_id;
  p[1] = cursor;
  p[2] = lim;
  rc = lc_db_exec(c,
                  "SELECT " KEY_COLS " FROM api_keys k "
                  "WHERE ($1::uuid IS NULL OR k.owner_id = $1::uuid) AND ($2::uuid IS NULL OR "
                  "(k.created_at, k.id) < (SELECT created_at, id FROM api_keys WHERE id = "
                  "$2::uuid)) ORDER BY k.created_at DESC, k.id DESC LIMIT $3::int",
                  3, p, &r, err);
  if (rc != LC_OK)
    return rc;
  *items = json_array();
  n = PQntuples(r);
  for (int i = 0; i < n && i < limit; i++) {
    auth_apikey k;
    if (key_from_row(r, i, &k) != LC_OK)
      continue;
    json_array_append_new(*items, auth_key_json(&k));
    if (i == limit - 1 && n > limit)
      lc_strlcpy(next_cursor, k.id, 37);
  }
  PQclear(r);
  return LC_OK;
}
