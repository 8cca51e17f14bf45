/* admin.h - admin use cases (users, sessions, API keys) and the internal
 * routes for the gateway (key verification, revocation list).
 *
 * Every mutating call runs in one transaction together with its auth.events
 * (revocations) and auth.audit rows, so an event exists exactly when the
 * change committed. Admin views of a user are enriched with balance and
 * available credits (credit-svc GET /internal/balances) and
 * custodial_address (chain-svc GET /internal/wallets/:id); when a
 * dependency is down those fields are null, never an error. JSON results
 * are new references. Thread-safe (each call uses its own connection). */
#ifndef AUTH_ADMIN_H
#define AUTH_ADMIN_H

#include <jansson.h>

#include "accounts.h"

#define AUTH_PAGE_MAX 100
#define AUTH_PAGE_DEFAULT 50

/* GET /v1/admin/users: *out = {items:[user view], next_cursor|null}.
 * cursor: a user id from a previous page (NULL = first page). */
int auth_admin_list_users(const auth_ctx *ctx, const char *cursor, int limit, json_t **out,
                          char err[LC_ERR_LEN]);

/* GET /v1/admin/users/:id: *out = user view; LC_ERR_NOTFOUND. */
int auth_admin_get_user(const auth_ctx *ctx, const char *id, json_t **out, char err[LC_ERR_LEN]);

/* PATCH /v1/admin/users/:id: role (NULL = unchanged), disabled (-1 =
 * unchanged, 0/1). The acting admin cannot change his own role or disable
 * himself (LC_ERR_FORBIDDEN). A role change bumps not_before (tokens carry
 * the role); disabling also revokes every refresh family and API key of the
 * user (auth.key.revoked each). *out = user view after the change. */
int auth_admin_patch_user(const auth_ctx *ctx, const char *actor_id, const char *id,
                          const char *role, int disabled, json_t **out, char err[LC_ERR_LEN]);

/* POST /v1/admin/users/:id/revoke-tokens: not_before + every family;
 * *out = {user_id, not_before, refresh_tokens_revoked}. */
int auth_admin_revoke_tokens(const auth_ctx *ctx, const char *actor_id, const char *id,
                             json_t **out, char err[LC_ERR_LEN]);

/* POST /v1/admin/api-keys: *out = {id, key, prefix, scope, name, owner_id,
 * created_at} (the only time the key is shown). */
int auth_admin_key_create(const auth_ctx *ctx, const char *actor_id, const char *owner_id,
                          const char *scope, const char *name, json_t **out,
                          char err[LC_ERR_LEN]);

/* GET /v1/admin/api-keys: *out = {items, next_cursor|null}. */
int auth_admin_key_list(const auth_ctx *ctx, const char *owner_id, const char *cursor, int limit,
                        json_t **out, char err[LC_ERR_LEN]);

/* DELETE /v1/admin/api-keys/:id (idempotent; events only on the first). */
int auth_admin_key_revoke(const auth_ctx *ctx, const char *actor_id, const char *id,
                          char err[LC_ERR_LEN]);

/* POST /internal/api-keys/verify: *out = {key_id, owner_id, owner_role,
 * scope, prefix}; LC_ERR_UNAUTH for unknown, revoked or owner disabled. */
int auth_internal_key_verify(const auth_ctx *ctx, const char *key, json_t **out,
                             char err[LC_ERR_LEN]);

/* GET /internal/revocations: *out = {tokens:[{jti, exp}],
 * users:[{user_id, not_before}]} - tokens not yet expired, users whose
 * not_before is still relevant (newer than now - access_ttl). */
int auth_internal_revocations(const auth_ctx *ctx, json_t **out, char err[LC_ERR_LEN]);

#endif
