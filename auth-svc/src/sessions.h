/* sessions.h - access JWTs and opaque, rotated refresh tokens.
 *
 * Access token: EdDSA JWT (lc/jwt.h) with iss, aud, sub, role, typ "access",
 * jti (UUID v4), iat, exp = iat + access_ttl.
 * Refresh token: "rt_" + base64url(32 random bytes) (46 chars). Only its
 * SHA-256 (hex) is stored, in refresh_tokens. Tokens form a family: login
 * starts one (family_expires_at = start + refresh_ttl, absolute); each use
 * marks the presented token rotated and issues a child in the same family.
 * Presenting an already rotated token revokes the whole family (reuse),
 * except within grace_ms of its rotation: concurrent refreshes of one token
 * then all receive the same successor (policy.h auth_rt_decide), which is
 * kept sealed in the parent row for the window only (wiped afterwards).
 * Access tokens get iat = max(now, user.not_before) so a token issued right
 * after a revocation is not itself revoked. */
#ifndef AUTH_SESSIONS_H
#define AUTH_SESSIONS_H

#include <stdint.h>
#include <libpq-fe.h>
#include "lc/err.h"
#include "users.h"

#define AUTH_RT_PREFIX "rt_"
#define AUTH_RT_LEN 46          /* "rt_" + 43 base64url chars */

typedef struct {
  uint8_t sk[64];               /* Ed25519 secret key (libsodium form) */
  char iss[128];
  char aud[128];
  int64_t access_ttl;           /* seconds */
  int64_t refresh_ttl;          /* seconds, absolute family lifetime */
  uint8_t enc_key[32];          /* AUTH_TOKEN_ENC_KEY: seals successors for the grace window */
  int64_t grace_ms;             /* AUTH_REFRESH_GRACE_MS; 0 disables the grace window */
} auth_sessions_cfg;

typedef struct {
  char *access_token;           /* new (auth_tokens_free) */
  int64_t expires_in;           /* = access_ttl */
  char refresh_token[AUTH_RT_LEN + 1];
  char family_id[37];
} auth_tokens;

/* Frees the access token and wipes the struct; NULL-safe. */
void auth_tokens_free(auth_tokens *t);

/* Signs an access JWT for (user_id, role) at time now_s. *out is new (free()). */
int auth_sessions_access(const auth_sessions_cfg *cfg, const char *user_id, const char *role,
                         int64_t now_s, char **out, char err[LC_ERR_LEN]);

/* SHA-256 hex of a refresh token string. */
void auth_sessions_token_hash(const char *token, char hex[65]);

/* 1 when token has the refresh token shape (prefix, length, alphabet). */
int auth_sessions_token_wellformed(const char *token);

/* Starts a new family for user u (not disabled): inserts the first refresh
 * token and signs an access token. On LC_OK *out is filled (auth_tokens_free). */
int auth_sessions_start(PGconn *conn, const auth_sessions_cfg *cfg, const auth_user *u,
                        auth_tokens *out, char err[LC_ERR_LEN]);

/* Rotates a refresh token in one transaction (row locked FOR UPDATE):
 * - unknown / malformed / revoked / family expired / user disabled or gone
 *   -> LC_ERR_UNAUTH;
 * - rotated less than grace_ms ago with its successor still live -> the same
 *   successor again (nothing written) and a new access token;
 * - already rotated otherwise (reuse) -> the family is revoked and an
 *   auth.audit refresh_reuse_detected event written in the same commit;
 *   LC_ERR_UNAUTH; *reuse set to 1;
 * - otherwise the token is marked rotated, a child is inserted and a new
 *   access token signed; *user_out is the (current) user row.
 * reuse may be NULL. */
int auth_sessions_refresh(PGconn *conn, const auth_sessions_cfg *cfg, const char *token,
                          auth_user *user_out, auth_tokens *out, int *reuse,
                          char err[LC_ERR_LEN]);

/* Revokes every live token of a family; *n receives the count (may be NULL). */
int auth_sessions_revoke_family(PGconn *conn, const char *family_id, int *n,
                                char err[LC_ERR_LEN]);

/* Revokes every live refresh token of a user; *n = rows (may be NULL). */
int auth_sessions_revoke_user(PGconn *conn, const char *user_id, int *n, char err[LC_ERR_LEN]);

/* Family of a refresh token owned by user_id (for logout). LC_ERR_NOTFOUND
 * when unknown, malformed or owned by someone else. */
int auth_sessions_family_of(PGconn *conn, const char *token, const char *user_id,
                            char family_id[37], char err[LC_ERR_LEN]);

/* Wipes sealed successors older than grace_ms (housekeeping); *n = rows. */
int auth_sessions_wipe_successors(PGconn *conn, int64_t grace_ms, int *n, char err[LC_ERR_LEN]);

/* Signs an access token for u with iat = max(now, u->not_before). */
int auth_sessions_access_for(const auth_sessions_cfg *cfg, const auth_user *u, char **out,
                             char err[LC_ERR_LEN]);

#endif
