/* users.h - the auth.users table and email validation.
 *
 * All functions take a PGconn checked out of the pool by the caller (one
 * thread at a time) and use parameterised SQL only. Emails are stored
 * lowercased; callers normalise with auth_email_normalize first. */
#ifndef AUTH_USERS_H
#define AUTH_USERS_H

#include <libpq-fe.h>
#include <stdint.h>
#include "lc/err.h"
#include "passwords.h"

#define AUTH_EMAIL_MAX 254

typedef struct {
  char id[37];
  char email[AUTH_EMAIL_MAX + 1];
  char role[16];                       /* admin | user | service */
  int disabled;
  char created_at[40];                 /* RFC 3339 UTC, millisecond precision */
  int has_password;                    /* 0 for OAuth-only accounts */
  char password_hash[AUTH_PW_HASH_MAX];/* "" when !has_password */
  int64_t not_before;                  /* Unix s; access tokens with iat < it are dead; 0 = none */
} auth_user;

/* Validates and lowercases an email address: at most 254 bytes, exactly one
 * '@', local part 1..64 of [A-Za-z0-9.!#$%&'*+/=?^_`{|}~-] without leading,
 * trailing or doubled dots, domain of >= 2 dot-separated labels of
 * [A-Za-z0-9-] (1..63, no leading/trailing '-'), last label not numeric-only.
 * Writes the lowercased address to out. LC_OK or LC_ERR_PARAM. */
int auth_email_normalize(const char *in, char out[AUTH_EMAIL_MAX + 1], char err[LC_ERR_LEN]);

/* 1 if role is one of admin, user, service. */
int auth_role_valid(const char *role);

/* Inserts a user (email already normalised, pwhash may be NULL, role valid).
 * Returns LC_OK with *out filled, LC_ERR_CONFLICT when the email exists,
 * LC_ERR_DB/LC_ERR_UNAVAIL otherwise. */
int auth_users_create(PGconn *conn, const char *email, const char *pwhash, const char *role,
                      auth_user *out, char err[LC_ERR_LEN]);

/* Inserts unless the email exists (ON CONFLICT DO NOTHING). *created is 1 when
 * this call inserted; *out is the row either way. */
int auth_users_create_if_absent(PGconn *conn, const char *email, const char *pwhash,
                                const char *role, auth_user *out, int *created,
                                char err[LC_ERR_LEN]);

/* Lookups: LC_OK, LC_ERR_NOTFOUND, or a DB error. id must be a UUID
 * (otherwise LC_ERR_NOTFOUND without querying). */
int auth_users_by_email(PGconn *conn, const char *email, auth_user *out, char err[LC_ERR_LEN]);
int auth_users_by_id(PGconn *conn, const char *id, auth_user *out, char err[LC_ERR_LEN]);

/* Sets the disabled flag (used by admin work and tests). LC_ERR_NOTFOUND if no such user. */
int auth_users_set_disabled(PGconn *conn, const char *id, int disabled, char err[LC_ERR_LEN]);

/* Sets the role (valid role, else LC_ERR_PARAM). LC_ERR_NOTFOUND if no such user. */
int auth_users_set_role(PGconn *conn, const char *id, const char *role, char err[LC_ERR_LEN]);

/* Replaces the password hash. LC_ERR_NOTFOUND if no such user. */
int auth_users_set_password(PGconn *conn, const char *id, const char *pwhash,
                            char err[LC_ERR_LEN]);

/* Revokes every access token issued so far: not_before = max(old + 1,
 * floor(now) + 1) (Unix seconds; a token with iat < not_before is dead, and
 * tokens issued afterwards get iat = max(now, not_before), so the value must
 * grow strictly: a token issued at the old not_before dies too). *not_before receives the
 * new value. LC_ERR_NOTFOUND if no such user. */
int auth_users_bump_not_before(PGconn *conn, const char *id, int64_t *not_before,
                               char err[LC_ERR_LEN]);

/* Lists users newest first (created_at DESC, id DESC) after cursor (a user
 * id or NULL), at most limit (<= cap of out). *n = rows written;
 * next_cursor = last id when more follow, else "". */
int auth_users_list(PGconn *conn, const char *cursor, int limit, auth_user *out, int *n,
                    char next_cursor[37], char err[LC_ERR_LEN]);

#endif
