/* accounts.h - the auth use cases (signup, login, refresh, me, bootstrap),
 * independent of HTTP so they can be tested directly against the database.
 *
 * Connection discipline: a pooled connection is never held while Argon2id
 * runs (hashing is slow and the pool is small). Thread-safe: every call uses
 * its own connection; the context is read-only after setup. */
#ifndef AUTH_ACCOUNTS_H
#define AUTH_ACCOUNTS_H

#include <stddef.h>
#include <stdint.h>
#include "lc/db.h"
#include "lc/err.h"
#include "passwords.h"
#include "sessions.h"
#include "users.h"

typedef struct {
  lc_db_pool *pool;               /* borrowed */
  auth_pw *pw;                    /* borrowed */
  auth_sessions_cfg tok;
  const uint8_t *secret;          /* INTERNAL_SECRET bytes (borrowed), for credit-svc calls */
  size_t secret_len;
  const char *credit_url;         /* AUTH_CREDIT_URL or NULL (then no account call) */
  const char *chain_url;          /* AUTH_CHAIN_URL or NULL (admin views: custodial_address) */
  const char *allowed_origins;    /* AUTH_ALLOWED_ORIGINS (CSRF check of cookie refresh) */
} auth_ctx;

/* Signs a user up with role "user". email/password are raw client input
 * (validated here). On LC_OK *u and *t are filled (auth_tokens_free).
 * Errors: LC_ERR_PARAM (err is the client-facing reason), LC_ERR_CONFLICT
 * (email taken), LC_ERR_UNAVAIL (hash slots busy / DB down), LC_ERR_DB.
 * Afterwards opens the credit account (failure logged, not returned);
 * request_id may be NULL. */
int auth_account_signup(const auth_ctx *ctx, const char *email, const char *password,
                        size_t pwlen, const char *request_id, auth_user *u, auth_tokens *t,
                        char err[LC_ERR_LEN]);

/* Logs in. Unknown email, wrong password, OAuth-only account and disabled
 * account all return LC_ERR_UNAUTH after one Argon2id verification each (the
 * unknown email verifies against the dummy hash). Malformed email or an
 * over-long password -> LC_ERR_PARAM. */
int auth_account_login(const auth_ctx *ctx, const char *email, const char *password,
                       size_t pwlen, auth_user *u, auth_tokens *t, char err[LC_ERR_LEN]);

/* Rotates a refresh token (sessions.h semantics). */
int auth_account_refresh(const auth_ctx *ctx, const char *token, auth_user *u, auth_tokens *t,
                         char err[LC_ERR_LEN]);

/* Loads the user for GET /v1/me. LC_ERR_UNAUTH when missing or disabled. */
int auth_account_me(const auth_ctx *ctx, const char *user_id, auth_user *u,
                    char err[LC_ERR_LEN]);

/* Creates the account (email, password, role) unless the email exists;
 * when created, opens its credit account. *created may be NULL. */
int auth_account_ensure(const auth_ctx *ctx, const char *email, const char *password,
                        const char *role, auth_user *u, int *created, char err[LC_ERR_LEN]);

/* Logout of the calling session: revokes the access token jti (until exp,
 * Unix s; jti may be NULL when the gateway did not forward it) and, when
 * refresh_token (may be NULL) belongs to user_id, its whole family. Emits
 * auth.token.revoked and auth.audit logout in the same commit. */
int auth_account_logout(const auth_ctx *ctx, const char *user_id, const char *jti, int64_t exp,
                        const char *refresh_token, char err[LC_ERR_LEN]);

/* Password change: verifies current (LC_ERR_FORBIDDEN when wrong, audited
 * as denied), validates and hashes next, then in one transaction stores
 * the hash, bumps not_before (every earlier access token dies), revokes
 * every refresh family, emits auth.user.revoked + audit password_changed
 * and starts a fresh session (*t) for the caller. */
int auth_account_change_password(const auth_ctx *ctx, const char *user_id, const char *current,
                                 size_t curlen, const char *next, size_t nextlen, auth_user *u,
                                 auth_tokens *t, char err[LC_ERR_LEN]);

/* POST {credit_url}/internal/accounts {user_id} signed as role "system".
 * LC_OK on 200/201; otherwise an error (callers log it). */
int auth_account_open_credit(const auth_ctx *ctx, const char *user_id, const char *request_id,
                             char err[LC_ERR_LEN]);

#endif
