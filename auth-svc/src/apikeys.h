/* apikeys.h - API keys for machine clients (contract B).
 *
 * Format: "sk_" + 8-char prefix [a-z0-9] + "_" + base64url(32 random bytes)
 * (55 chars, 256 random bits plus the public lookup prefix). Only the
 * SHA-256 hex of the whole key is stored; verification looks the row up by
 * prefix and compares hashes in constant time. A key acts as its owner with
 * its scope (read|write|admin) and never more than the owner's role: the
 * owner's live role is returned on every verify, and a disabled owner or a
 * revoked key verifies as LC_ERR_UNAUTH. DB functions use the caller's
 * connection (one thread at a time); the pure ones are thread-safe. */
#ifndef AUTH_APIKEYS_H
#define AUTH_APIKEYS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "lc/err.h"

#define AUTH_KEY_LEN 55
#define AUTH_KEY_PREFIX_LEN 8
#define AUTH_KEY_NAME_MAX 100

typedef struct {
  char id[37];
  char owner_id[37];
  char prefix[AUTH_KEY_PREFIX_LEN + 1];
  char scope[8];
  char name[4 * AUTH_KEY_NAME_MAX + 1];
  char created_at[40];
  char created_by[37];                /* "" when unknown */
  char revoked_at[40];                /* "" while active */
} auth_apikey;

/* Generates a new key: key (AUTH_KEY_LEN+1), its prefix and SHA-256 hex. */
void auth_key_generate(char key[AUTH_KEY_LEN + 1], char prefix[AUTH_KEY_PREFIX_LEN + 1],
                       char hash_hex[65]);

/* Parses a presented key: LC_OK with the prefix when it has the exact shape,
 * LC_ERR_PARAM otherwise (never touches the database for malformed keys). */
int auth_key_parse(const char *key, char prefix[AUTH_KEY_PREFIX_LEN + 1]);

/* SHA-256 hex of the whole key string. */
void auth_key_hash(const char *key, char hash_hex[65]);

/* 1 for read|write|admin. */
int auth_key_scope_valid(const char *scope);

/* 1 when name is 1..100 characters (UTF-8 code points) without control characters. */
int auth_key_name_valid(const char *name);

/* Inserts a key for owner_id (must exist and not be disabled: else
 * LC_ERR_NOTFOUND / LC_ERR_CONFLICT). Retries on a prefix collision.
 * key receives the plaintext (shown once). */
int auth_keys_create(PGconn *c, const char *owner_id, const char *scope, const char *name,
                     const char *created_by, auth_apikey *out, char key[AUTH_KEY_LEN + 1],
                     char err[LC_ERR_LEN]);

/* Verifies a presented key: LC_OK with the key row and the owner's role;
 * LC_ERR_UNAUTH when malformed, unknown, revoked or owner disabled. */
int auth_keys_verify(PGconn *c, const char *key, auth_apikey *out, char owner_role[16],
                     char err[LC_ERR_LEN]);

/* Revokes one key. *was_active = 1 when this call revoked it (0: already
 * revoked). LC_ERR_NOTFOUND when no such key. */
int auth_keys_revoke(PGconn *c, const char *id, auth_apikey *out, int *was_active,
                     char err[LC_ERR_LEN]);

/* Revokes every active key of owner_id; *out_arr (new JSON array of
 * {key_id, prefix, owner_id}) lists them. */
int auth_keys_revoke_owner(PGconn *c, const char *owner_id, json_t **out_arr,
                           char err[LC_ERR_LEN]);

/* Lists keys newest first (created_at DESC, id DESC), optional owner
 * filter (NULL = all), after cursor (a key id, NULL = start), at most
 * limit. *items is a new JSON array of public views (never key or hash);
 * next_cursor receives the last id when more may follow, else "". */
int auth_keys_list(PGconn *c, const char *owner_id, const char *cursor, int limit, json_t **items,
                   char next_cursor[37], char err[LC_ERR_LEN]);

/* New JSON object: the public view {id, prefix, scope, name, owner_id,
 * created_at, created_by, revoked_at|null}. */
json_t *auth_key_json(const auth_apikey *k);

#endif
