/* oauth_store.h - the oauth_states and oauth_identities tables
 * (sql/0010_oauth.sql) and the sign-in / link / create decision.
 *
 * Functions take a PGconn checked out by the caller (one thread at a time)
 * and use parameterised SQL only. No provider token is ever stored. */
#ifndef AUTH_OAUTH_STORE_H
#define AUTH_OAUTH_STORE_H

#include <stdint.h>

#include <libpq-fe.h>

#include "lc/err.h"
#include "oauth_crypto.h"
#include "sessions.h"
#include "users.h"

/* A started login as stored (state itself only as its hash). */
typedef struct {
  char provider[8];
  char binding_hash[65];
  char verifier[129];
  char nonce[129];         /* "" for GitHub */
  int expired;             /* 1 when expires_at <= now() at consumption */
} oauth_state_row;

/* Who the provider says the user is (after all checks). */
typedef struct {
  const char *provider;    /* "google" | "github" */
  char subject[OAUTH_SUB_MAX + 1];
  char email[OAUTH_EMAIL_MAX + 1];
  int email_verified;
} oauth_identity;

/* How oauth_store_signin resolved the identity. */
enum { OAUTH_SIGNIN_EXISTING = 1, OAUTH_SIGNIN_LINKED = 2, OAUTH_SIGNIN_CREATED = 3 };

/* Inserts a state row valid for ttl_s seconds (nonce may be NULL) and
 * deletes rows that expired more than an hour ago. LC_OK or a DB error. */
int oauth_store_state_put(PGconn *conn, const char *provider, const char *state_hash,
                          const char *binding_hash, const char *verifier, const char *nonce,
                          int64_t ttl_s, char err[LC_ERR_LEN]);

/* Consumes a state atomically (marks it used in the same statement that
 * reads it), so a state works at most once even under concurrency.
 * LC_ERR_NOTFOUND when unknown or already used; expired rows are still
 * returned (and consumed) with out->expired = 1. */
int oauth_store_state_take(PGconn *conn, const char *state_hash, oauth_state_row *out,
                           char err[LC_ERR_LEN]);

/* Resolves the identity to a user and starts a session, in one transaction:
 * 1. (provider, subject) already linked -> that user (disabled -> UNAUTH);
 * 2. else the email must be verified by the provider (else LC_ERR_UNAUTH,
 *    nothing written); an existing user with that email is linked
 *    (disabled -> UNAUTH);
 * 3. else a user (role "user", no password) is created and linked.
 * On LC_OK *u and *t are filled (auth_tokens_free) and *outcome is one of
 * OAUTH_SIGNIN_*. Concurrent first logins retry once on a unique conflict.
 * Errors: LC_ERR_UNAUTH (err says why), LC_ERR_PARAM (email unusable), DB. */
int oauth_store_signin(PGconn *conn, const auth_sessions_cfg *tok, const oauth_identity *id,
                       auth_user *u, auth_tokens *t, int *outcome, char err[LC_ERR_LEN]);

#endif
