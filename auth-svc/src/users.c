/* users.c - users table access and email validation (see users.h). */
#include "users.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/db.h"
#include "lc/util.h"

#define USER_COLS                                                                    \
  "id::text, email, role, disabled, "                                                \
  "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), " \
  "password_hash, COALESCE(not_before, 0)"

static int is_local_char(unsigned char c) {
  if (isalnum(c))
    return 1;
  return c != '\0' && strchr(".!#$%&'*+/=?^_`{|}~-", c) != NULL;
}

static int check_local(const char *s, size_t n) {
  if (n < 1 || n > 64 || s[0] == '.' || s[n - 1] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_local_char((unsigned char)s[i]))
      return 0;
    if (s[i] == '.' && i + 1 < n && s[i + 1] == '.')
      return 0;
  }
  return 1;
}

static int check_domain(const char *s, size_t n) {
  size_t start = 0, labels = 0, last_start = 0;
  int last_all_digits = 1;

  if (n < 3 || n > 253)
    return 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && s[i] != '.') {
      unsigned char c = (unsigned char)s[i];
      if (!isalnum(c) && c != '-')
        return 0;
      continue;
    }
    size_t len = i - start;
    if (len < 1 || len > 63 || s[start] == '-' || s[i - 1] == '-')
      return 0;
    labels++;
    last_start = start;
    start = i + 1;
  }
  for (size_t i = last_start; i < n; i++)
    if (!isdigit((unsigned char)s[i]))
      last_all_digits = 0;
  return labels >= 2 && !last_all_digits;
}

int auth_email_normalize(const char *in, char out[AUTH_EMAIL_MAX + 1], char err[LC_ERR_LEN]) {
  const char *at;
  size_t n;

  out[0] = '\0';
  if (in == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "email is required");
  n = strlen(in);
  if (n == 0 || n > AUTH_EMAIL_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "email must be 1..%d characters", AUTH_EMAIL_MAX);
  at = strchr(in, '@');
  if (at == NULL || strchr(at + 1, '@') != NULL)
    return lc_err_set(err, LC_ERR_PARAM, "email must contain exactly one '@'");
  if (!check_local(in, (size_t)(at - in)))
    return lc_err_set(err, LC_ERR_PARAM, "email local part is invalid");
  if (!check_domain(at + 1, n - (size_t)(at - in) - 1))
    return lc_err_set(err, LC_ERR_PARAM, "email domain is invalid");
  for (size_t i = 0; i < n; i++)
    out[i] = (char)tolower((unsigned char)in[i]);
  out[n] = '\0';
  return LC_OK;
}

int auth_role_valid(const char *role) {
  return role != NULL &&
         (strcmp(role, "admin") == 0 || strcmp(role, "user") == 0 || strcmp(role, "service") == 0);
}

/* Copies row 0 of res (columns in USER_COLS order) into *u. */
static int user_from_row(const PGresult *res, int row, auth_user *u, char err[LC_ERR_LEN]) {
  memset(u, 0, sizeof(*u));
  if (lc_strlcpy(u->id, PQgetvalue(res, row, 0), sizeof(u->id)) != LC_OK ||
      lc_strlcpy(u->email, PQgetvalue(res, row, 1), sizeof(u->email)) != LC_OK ||
      lc_strlcpy(u->role, PQgetvalue(res, row, 2), sizeof(u->role)) != LC_OK ||
      lc_strlcpy(u->created_at, PQgetvalue(res, row, 4), sizeof(u->created_at)) != LC_OK)
    return lc_err_set(err, LC_ERR_DB, "users: unexpected column size");
  u->disabled = strcmp(PQgetvalue(res, row, 3), "t") == 0;
  if (lc_parse_i64(PQgetvalue(res, row, 6), 0, INT64_MAX, &u->not_before) != LC_OK)
    return lc_err_set(err, LC_ERR_DB, "users: bad not_before");
  u->has_password = !PQgetisnull(res, row, 5);
  if (u->has_password &&
      lc_strlcpy(u->password_hash, PQgetvalue(res, row, 5), sizeof(u->password_hash)) != LC_OK)
    return lc_err_set(err, LC_ERR_DB, "users: password hash too long");
  return LC_OK;
}

/* Runs a statement returning at most one USER_COLS row. */
static int user_query(PGconn *conn, const char *sql, int n, const char *const *params,
                      auth_user *out, char err[LC_ERR_LEN]) {
  PGresult *res = NULL;
  int rc = lc_db_exec(conn, sql, n, params, &res, err);

  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) < 1)
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "user not found");
  else
    rc = user_from_row(res, 0, out, err);
  PQclear(res);
  return rc;
}

int auth_users_create(PGconn *conn, const char *email, const char *pwhash, const char *role,
                      auth_user *out, char err[LC_ERR_LEN]) {
  const char *p[3] = {email, pwhash, role};
  int rc;

  if (!auth_role_valid(role))
    return lc_err_set(err, LC_ERR_PARAM, "invalid role");
  rc = user_query(conn,
                  "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3) "
                  "RETURNING " USER_COLS,
                  3, p, out, err);
  if (rc == LC_ERR_CONFLICT)
    lc_err_set(err, LC_ERR_CONFLICT, "email already registered");
  return rc;
}

int auth_users_create_if_absent(PGconn *conn, const char *email, const char *pwhash,
                                const char *role, auth_user *out, int *created,
                                char err[LC_ERR_LEN]) {
  const char *p[3] = {email, pwhash, role};
  int rc;

  *created = 0;
  if (!auth_role_valid(role))
    return lc_err_set(err, LC_ERR_PARAM, "invalid role");
  rc = user_query(conn,
                  "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3) "
                  "ON CONFLICT (email) DO NOTHING RETURNING " USER_COLS,
                  3, p, out, err);
  if (rc == LC_OK) {
    *created = 1;
    return LC_OK;
  }
  if (rc != LC_ERR_NOTFOUND)
    return rc;
  return auth_users_by_email(conn, email, out, err);
}

int auth_users_by_email(PGconn *conn, const char *email, auth_user *out, char err[LC_ERR_LEN]) {
  const char *p[1] = {email};
  return user_query(conn, "SELECT " USER_COLS " FROM users WHERE email = $1", 1, p, out, err);
}

int auth_users_by_id(PGconn *conn, const char *id, auth_user *out, char err[LC_ERR_LEN]) {
  const char *p[1] = {id};
  if (id == NULL || !lc_uuid_valid(id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "user not found");
  return user_query(conn, "SELECT " USER_COLS " FROM users WHERE id = $1::uuid", 1, p, out,
                    err);
}

int auth_users_set_disabled(PGconn *conn, const char *id, int disabled, char err[LC_ERR_LEN]) {
  const char *p[2] = {id, disabled ? "true" : "false"};
  auth_user tmp;
  if (id == NULL || !lc_uuid_valid(id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "user not found");
  return user_query(conn,
                    "UPDATE users SET disabled = $2::boolean, updated_at = now() "
                    "WHERE id = $1::uuid RETURNING " USER_COLS,
                    2, p, &tmp, err);
}

int auth_users_set_role(PGconn *conn, const char *id, const char *role, char err[LC_ERR_LEN]) {
  const char *p[2] = {id, role};
  auth_user tmp;
  if (!auth_role_valid(role))
    return lc_err_set(err, LC_ERR_PARAM, "invalid role");
  if (id == NULL || !lc_uuid_valid(id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "user not found");
  return user_query(conn,
                    "UPDATE users SET role = $2, updated_at = now() "
                    "WHERE id = $1::uuid RETURNING " USER_COLS,
                    2, p, &tmp, err);
}

int auth_users_set_password(PGconn *conn, const char *id, const char *pwhash,
                            char err[LC_ERR_LEN]) {
  const char *p[2] = {id, pwhash};
  auth_user tmp;
  int rc;
  if (id == NULL || !lc_uuid_valid(id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "user not found");
  rc = user_query(conn,
                  "UPDATE users SET password_hash = $2, updated_at = now() "
                  "WHERE id = $1::uuid RETURNING " USER_COLS,
                  2, p, &tmp, err);
  memset(&tmp, 0, sizeof(tmp));
  return rc;
}

int auth_users_bump_not_before(PGconn *conn, const char *id, int64_t *not_before,
                               char err[LC_ERR_LEN]) {
  const char *p[1] = {id};
  auth_user tmp;
  int rc;
  *not_before = 0;
  if (id == NULL || !lc_uuid_valid(id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "user not found");
  rc = user_query(conn,
                  "UPDATE users SET not_before = GREATEST(COALESCE(not_before, 0) + 1, "
                  "floor(extract(epoch FROM clock_timestamp()))::bigint + 1), updated_at = now() "
                  "WHERE id = $1::uuid RETURNING " USER_COLS,
                  1, p, &tmp, err);
  if (rc == LC_OK)
    *not_before = tmp.not_before;
  memset(&tmp, 0, sizeof(tmp));
  return rc;
}

int auth_users_list(PGconn *conn, const char *cursor, int limit, auth_user *out, int *n,
                    char next_cursor[37], char err[LC_ERR_LEN]) {
  char lim[16];
  const char *p[2];
  PGresult *res = NULL;
  int rc, rows;

  *n = 0;
  next_cursor[0] = '\0';
  snprintf(lim, sizeof(lim), "%d", limit + 1);
  p[0] = cursor;
  p[1] = lim;
  rc = lc_db_exec(conn,
                  "SELECT " USER_COLS " FROM users WHERE $1::uuid IS NULL OR "
                  "(created_at, id) < (SELECT created_at, id FROM users WHERE id = $1::uuid) "
                  "ORDER BY created_at DESC, id DESC LIMIT $2::int",
                  2, p, &res, err);
  if (rc != LC_OK)
    return rc;
  rows = PQntuples(res);
  for (int i = 0; i < rows && i < limit; i++) {
    rc = user_from_row(res, i, &out[i], err);
    if (rc != LC_OK)
      break;
    out[i].password_hash[0] = '\0';
    (*n)++;
  }
  if (rc == LC_OK && rows > limit && *n == limit)
    lc_strlcpy(next_cursor, out[limit - 1].id, 37);
  PQclear(res);
  return rc;
}
