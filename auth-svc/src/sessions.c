/* sessions.c - token issue and refresh rotation (see sessions.h). */
#include "sessions.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/db.h"
#include "lc/jwt.h"
#include "lc/log.h"
#include "lc/util.h"
#include "events.h"
#include "policy.h"

void auth_tokens_free(auth_tokens *t) {
  if (t == NULL)
    return;
  free(t->access_token);
  sodium_memzero(t, sizeof(*t));
}

int auth_sessions_access(const auth_sessions_cfg *cfg, const char *user_id, const char *role,
                         int64_t now_s, char **out, char err[LC_ERR_LEN]) {
  lc_jwt_claims c;

  *out = NULL;
  memset(&c, 0, sizeof(c));
  if (lc_strlcpy(c.iss, cfg->iss, sizeof(c.iss)) != LC_OK ||
      lc_strlcpy(c.aud, cfg->aud, sizeof(c.aud)) != LC_OK ||
      lc_strlcpy(c.sub, user_id, sizeof(c.sub)) != LC_OK ||
      lc_strlcpy(c.role, role, sizeof(c.role)) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "access token claim too long");
  lc_strlcpy(c.typ, "access", sizeof(c.typ));
  lc_uuid_v4(c.jti);
  c.iat = now_s;
  c.exp = now_s + cfg->access_ttl;
  return lc_jwt_sign(cfg->sk, &c, out, err);
}

void auth_sessions_token_hash(const char *token, char hex[65]) {
  uint8_t h[32];
  lc_sha256(token, strlen(token), h);
  lc_hex_encode(h, sizeof(h), hex);
}

int auth_sessions_token_wellformed(const char *token) {
  size_t plen = strlen(AUTH_RT_PREFIX);
  if (token == NULL || strlen(token) != AUTH_RT_LEN || strncmp(token, AUTH_RT_PREFIX, plen) != 0)
    return 0;
  for (const char *p = token + plen; *p; p++) {
    char c = *p;
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_';
    if (!ok)
      return 0;
  }
  return 1;
}

/* Makes a fresh refresh token and its hash. */
static void new_refresh_token(char tok[AUTH_RT_LEN + 1], char hex[65]) {
  uint8_t rnd[32];
  char *b64;

  lc_random(rnd, sizeof(rnd));
  b64 = lc_b64url_encode(rnd, sizeof(rnd));
  snprintf(tok, AUTH_RT_LEN + 1, "%s%s", AUTH_RT_PREFIX, b64);
  sodium_memzero(b64, strlen(b64));
  free(b64);
  sodium_memzero(rnd, sizeof(rnd));
  auth_sessions_token_hash(tok, hex);
}

/* Inserts the first token of a new family (expires refresh_ttl from now). */
static int insert_family_start(PGconn *conn, const auth_sessions_cfg *cfg, const char *family_id,
                               const char *user_id, const char *hex, char err[LC_ERR_LEN]) {
  char ttl[32];
  const char *p[4];

  snprintf(ttl, sizeof(ttl), "%lld", (long long)cfg->refresh_ttl);
  p[0] = family_id;
  p[1] = user_id;
  p[2] = hex;
  p[3] = ttl;
  return lc_db_exec(conn,
                    "INSERT INTO refresh_tokens (family_id, user_id, token_hash, "
                    "family_expires_at) VALUES ($1::uuid, $2::uuid, $3, "
                    "now() + make_interval(secs => $4::bigint))",
                    4, p, NULL, err);
}

int auth_sessions_start(PGconn *conn, const auth_sessions_cfg *cfg, const auth_user *u,
                        auth_tokens *out, char err[LC_ERR_LEN]) {
  char hex[65];
  int rc;

  memset(out, 0, sizeof(*out));
  if (u->disabled)
    return lc_err_set(err, LC_ERR_UNAUTH, "account disabled");
  lc_uuid_v4(out->family_id);
  new_refresh_token(out->refresh_token, hex);
  rc = insert_family_start(conn, cfg, out->family_id, u->id, hex, err);
  if (rc != LC_OK)
    goto out;
  rc = auth_sessions_access_for(cfg, u, &out->access_token, err);
  out->expires_in = cfg->access_ttl;
out:
  if (rc != LC_OK)
    auth_tokens_free(out);
  return rc;
}

int auth_sessions_revoke_family(PGconn *conn, const char *family_id, int *n,
                                char err[LC_ERR_LEN]) {
  const char *p[1] = {family_id};
  PGresult *res = NULL;
  int64_t cnt = 0;
  int rc;

  if (n != NULL)
    *n = 0;
  if (family_id == NULL || !lc_uuid_valid(family_id))
    return lc_err_set(err, LC_ERR_PARAM, "invalid family id");
  rc = lc_db_exec(conn,
                  "UPDATE refresh_tokens SET revoked_at = now(), successor_enc = NULL "
                  "WHERE family_id = $1::uuid AND revoked_at IS NULL",
                  1, p, &res, err);
  if (rc == LC_OK && n != NULL && lc_parse_i64(PQcmdTuples(res), 0, 1 << 30, &cnt) == LC_OK)
    *n = (int)cnt;
  PQclear(res);
  return rc;
}

/* State of the presented token, read under FOR UPDATE. */
typedef struct {
  char id[37];
  char family_id[37];
  char user_id[37];
  auth_rt_state st;
  uint8_t sealed[AUTH_SEAL_MAX];
  size_t sealed_len;
} rt_row;

static int load_token(PGconn *conn, const char *hex, rt_row *r, char err[LC_ERR_LEN]) {
  const char *p[1] = {hex};
  PGresult *res = NULL;
  size_t hlen = 0;
  int rc;

  memset(r, 0, sizeof(*r));
  /* A family counts as revoked when any of its rows is (revocation marks all
   * rows, but a child committed concurrently with a revocation may escape the
   * UPDATE's snapshot; this check still catches it). */
  rc = lc_db_exec(conn,
                  "SELECT t.id::text, t.family_id::text, t.user_id::text, "
                  "t.rotated_at IS NOT NULL, "
                  "t.revoked_at IS NOT NULL OR EXISTS (SELECT 1 FROM refresh_tokens f "
                  "  WHERE f.family_id = t.family_id AND f.revoked_at IS NOT NULL), "
                  "t.family_expires_at <= now(), "
                  "COALESCE((extract(epoch FROM clock_timestamp() - t.rotated_at) * 1000)"
                  "::bigint, -1), "
                  "COALESCE(encode(t.successor_enc, 'hex'), '') "
                  "FROM refresh_tokens t WHERE t.token_hash = $1 FOR UPDATE OF t",
                  1, p, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "unknown refresh token");
    goto out;
  }
  lc_strlcpy(r->id, PQgetvalue(res, 0, 0), sizeof(r->id));
  lc_strlcpy(r->family_id, PQgetvalue(res, 0, 1), sizeof(r->family_id));
  lc_strlcpy(r->user_id, PQgetvalue(res, 0, 2), sizeof(r->user_id));
  r->st.rotated = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
  r->st.revoked = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
  r->st.expired = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
  if (lc_parse_i64(PQgetvalue(res, 0, 6), -1, INT64_MAX, &r->st.rotated_age_ms) != LC_OK)
    r->st.rotated_age_ms = -1;
  if (PQgetvalue(res, 0, 7)[0] != '\0' &&
      lc_hex_decode(PQgetvalue(res, 0, 7), r->sealed, sizeof(r->sealed), &hlen) == LC_OK) {
    r->sealed_len = hlen;
    r->st.has_successor = 1;
  }
out:
  PQclear(res);
  return rc;
}

/* Reads the successor's liveness (a new statement: in READ COMMITTED it sees
 * the child committed by the transaction that rotated the row). */
static int load_successor_live(PGconn *conn, rt_row *r, char err[LC_ERR_LEN]) {
  const char *p[1] = {r->id};
  PGresult *res = NULL;
  int rc = lc_db_exec(conn,
                      "SELECT rotated_at IS NULL AND revoked_at IS NULL FROM refresh_tokens "
                      "WHERE parent_id = $1::uuid",
                      1, p, &res, err);
  if (rc != LC_OK)
    return rc;
  r->st.successor_live = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  return LC_OK;
}

/* Marks the parent rotated (keeping the sealed successor for the grace
 * window) and inserts its child (same family and absolute expiry). */
static int rotate(PGconn *conn, const auth_sessions_cfg *cfg, const char *parent_id,
                  const char *parent_token, const char *child_token, const char *child_hex,
                  char err[LC_ERR_LEN]) {
  uint8_t sealed[AUTH_SEAL_MAX];
  char sealed_hex[2 * AUTH_SEAL_MAX + 1] = "";
  size_t slen = 0;
  const char *p[3];
  int rc;

  if (cfg->grace_ms > 0 &&
      auth_seal_successor(cfg->enc_key, parent_token, child_token, sealed, &slen) == LC_OK)
    lc_hex_encode(sealed, slen, sealed_hex);
  p[0] = parent_id;
  p[1] = child_hex;
  p[2] = slen > 0 ? sealed_hex : NULL;
  rc = lc_db_exec(conn,
                  "UPDATE refresh_tokens SET rotated_at = clock_timestamp(), "
                  "successor_enc = decode($2, 'hex') WHERE id = $1::uuid",
                  2, (const char *const[]){p[0], p[2]}, NULL, err);
  sodium_memzero(sealed_hex, sizeof(sealed_hex));
  if (rc != LC_OK)
    return rc;
  return lc_db_exec(conn,
                    "INSERT INTO refresh_tokens (family_id, user_id, token_hash, parent_id, "
                    "family_expires_at) SELECT family_id, user_id, $2, id, family_expires_at "
                    "FROM refresh_tokens WHERE id = $1::uuid",
                    2, p, NULL, err);
}

/* Revokes the family (+ optional audit action) and commits. */
static int revoke_and_commit(PGconn *conn, const rt_row *r, const char *audit_action,
                             char err[LC_ERR_LEN]) {
  int rc = auth_sessions_revoke_family(conn, r->family_id, NULL, err);
  if (rc == LC_OK && audit_action != NULL)
    rc = auth_audit(conn, r->user_id, "system", audit_action, "denied",
                    json_pack("{s:s}", "family_id", r->family_id), err);
  if (rc == LC_OK)
    rc = lc_db_commit(conn, err);
  if (rc != LC_OK)
    lc_db_rollback(conn);
  return rc;
}

int auth_sessions_access_for(const auth_sessions_cfg *cfg, const auth_user *u, char **out,
                             char err[LC_ERR_LEN]) {
  int64_t now = lc_now_ms() / 1000;
  if (u->not_before > now)
    now = u->not_before;
  return auth_sessions_access(cfg, u->id, u->role, now, out, err);
}

int auth_sessions_refresh(PGconn *conn, const auth_sessions_cfg *cfg, const char *token,
                          auth_user *user_out, auth_tokens *out, int *reuse,
                          char err[LC_ERR_LEN]) {
  char hex[65];
  rt_row r;
  auth_rt_decision d;
  int in_tx = 0;
  int rc;

  memset(out, 0, sizeof(*out));
  if (reuse != NULL)
    *reuse = 0;
  if (!auth_sessions_token_wellformed(token))
    return lc_err_set(err, LC_ERR_UNAUTH, "malformed refresh token");
  auth_sessions_token_hash(token, hex);

  rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    goto out;
  in_tx = 1;
  rc = load_token(conn, hex, &r, err);
  if (rc != LC_OK)
    goto out;
  if (r.st.rotated && r.st.has_successor) {
    rc = load_successor_live(conn, &r, err);
    if (rc != LC_OK)
      goto out;
  }
  d = auth_rt_decide(&r.st, cfg->grace_ms);
  if (d == AUTH_RT_REJECT) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, r.st.revoked ? "refresh token revoked"
                                                     : "refresh token expired");
    goto out;
  }
  if (d == AUTH_RT_REUSE) {
    /* Reuse of a rotated token: assume theft, kill the whole family. */
    if (reuse != NULL)
      *reuse = 1;
    lc_log_warn("Security - refresh token reuse: family %s revoked (user %s)", r.family_id,
                r.user_id);
    rc = revoke_and_commit(conn, &r, "refresh_reuse_detected", err);
    in_tx = 0;
    if (rc == LC_OK)
      rc = lc_err_set(err, LC_ERR_UNAUTH, "refresh token reused");
    goto out;
  }
  rc = auth_users_by_id(conn, r.user_id, user_out, err);
  if (rc == LC_ERR_NOTFOUND || (rc == LC_OK && user_out->disabled)) {
    rc = revoke_and_commit(conn, &r, NULL, err);
    in_tx = 0;
    if (rc == LC_OK)
      rc = lc_err_set(err, LC_ERR_UNAUTH, "account disabled");
    goto out;
  }
  if (rc != LC_OK)
    goto out;
  if (d == AUTH_RT_GRACE) {
    /* Concurrent refresh: hand out the successor already issued. */
    rc = auth_open_successor(cfg->enc_key, token, r.sealed, r.sealed_len, out->refresh_token,
                             sizeof(out->refresh_token));
    if (rc != LC_OK) {
      rc = lc_err_set(err, LC_ERR_UNAUTH, "grace successor unavailable");
      goto out;
    }
    lc_db_rollback(conn); /* nothing written */
    in_tx = 0;
  } else {
    new_refresh_token(out->refresh_token, hex);
    rc = rotate(conn, cfg, r.id, token, out->refresh_token, hex, err);
    if (rc != LC_OK)
      goto out;
    rc = lc_db_commit(conn, err);
    in_tx = 0;
    if (rc != LC_OK)
      goto out;
  }
  lc_strlcpy(out->family_id, r.family_id, sizeof(out->family_id));
  rc = auth_sessions_access_for(cfg, user_out, &out->access_token, err);
  out->expires_in = cfg->access_ttl;
out:
  if (in_tx)
    lc_db_rollback(conn);
  if (rc != LC_OK)
    auth_tokens_free(out);
  sodium_memzero(&r, sizeof(r));
  return rc;
}

int auth_sessions_revoke_user(PGconn *conn, const char *user_id, int *n, char err[LC_ERR_LEN]) {
  const char *p[1] = {user_id};
  PGresult *res = NULL;
  int64_t cnt = 0;
  int rc;

  if (n != NULL)
    *n = 0;
  if (user_id == NULL || !lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "invalid user id");
  rc = lc_db_exec(conn,
                  "UPDATE refresh_tokens SET revoked_at = now(), successor_enc = NULL "
                  "WHERE user_id = $1::uuid AND revoked_at IS NULL",
                  1, p, &res, err);
  if (rc == LC_OK && n != NULL && lc_parse_i64(PQcmdTuples(res), 0, 1 << 30, &cnt) == LC_OK)
    *n = (int)cnt;
  PQclear(res);
  return rc;
}

int auth_sessions_family_of(PGconn *conn, const char *token, const char *user_id,
                            char family_id[37], char err[LC_ERR_LEN]) {
  char hex[65];
  const char *p[2];
  PGresult *res = NULL;
  int rc;

  family_id[0] = '\0';
  if (!auth_sessions_token_wellformed(token) || user_id == NULL || !lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "no such refresh token");
  auth_sessions_token_hash(token, hex);
  p[0] = hex;
  p[1] = user_id;
  rc = lc_db_exec(conn,
                  "SELECT family_id::text FROM refresh_tokens "
                  "WHERE token_hash = $1 AND user_id = $2::uuid",
                  2, p, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1)
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "no such refresh token");
  else
    lc_strlcpy(family_id, PQgetvalue(res, 0, 0), 37);
  PQclear(res);
  return rc;
}

int auth_sessions_wipe_successors(PGconn *conn, int64_t grace_ms, int *n, char err[LC_ERR_LEN]) {
  char ms[32];
  const char *p[1] = {ms};
  PGresult *res = NULL;
  int64_t cnt = 0;
  int rc;

  if (n != NULL)
    *n = 0;
  snprintf(ms, sizeof(ms), "%lld", (long long)(grace_ms > 0 ? grace_ms : 0));
  rc = lc_db_exec(conn,
                  "UPDATE refresh_tokens SET successor_enc = NULL WHERE successor_enc IS NOT NULL "
                  "AND (rotated_at IS NULL OR rotated_at < clock_timestamp() - "
                  "make_interval(secs => $1::bigint / 1000.0) OR revoked_at IS NOT NULL)",
                  1, p, &res, err);
  if (rc == LC_OK && n != NULL && lc_parse_i64(PQcmdTuples(res), 0, 1 << 30, &cnt) == LC_OK)
    *n = (int)cnt;
  PQclear(res);
  return rc;
}
