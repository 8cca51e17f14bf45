/* credit_idem.c - Idempotency-Key records; see credit_idem.h. */
#include "credit_idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/util.h"

#define S_(x) #x
#define S(x) S_(x)

int credit_idem_key_valid(const char *key) {
  if (key == NULL)
    return 0;
  size_t n = strlen(key);
  if (n < 1 || n > CREDIT_IDEM_KEY_LEN_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
      return 0;
  return 1;
}

void credit_idem_hash(const char *method, const char *path, const void *body, size_t len,
                      char out[65]) {
  /* Length-prefixed fields: no two different (method, path, body) triples
   * produce the same hashed text. */
  char head[2200];
  int n = snprintf(head, sizeof(head), "%zu:%s\n%zu:%s\n%zu:", strlen(method), method,
                   strlen(path), path, len);
  if (n < 0 || (size_t)n >= sizeof(head))
    n = 0;
  size_t total = (size_t)n + len;
  uint8_t *buf = lc_xmalloc(total + 1);
  memcpy(buf, head, (size_t)n);
  if (len)
    memcpy(buf + n, body, len);
  uint8_t h[32];
  lc_sha256(buf, total, h);
  free(buf);
  lc_hex_encode(h, sizeof(h), out);
}

credit_idem_decision credit_idem_decide(int exists, const char *state, const char *stored_hash,
                                        const char *req_hash, int expired, int stale) {
  if (!exists || expired)
    return CREDIT_IDEM_NEW;
  if (stored_hash == NULL || req_hash == NULL || strcmp(stored_hash, req_hash) != 0)
    return CREDIT_IDEM_MISMATCH;
  if (state && strcmp(state, "done") == 0)
    return CREDIT_IDEM_REPLAY;
  return stale ? CREDIT_IDEM_NEW : CREDIT_IDEM_IN_FLIGHT;
}

void credit_idem_result_free(credit_idem_result *r) {
  if (r == NULL)
    return;
  free(r->body);
  r->body = NULL;
}

static int claim_once(PGconn *c, const char *owner, const char *key, const char *hash,
                      credit_idem_result *out, char err[LC_ERR_LEN]) {
  const char *p[3] = {owner, key, hash};
  PGresult *r = NULL;
  int rc = lc_db_exec(c,
                      "INSERT INTO idempotency_keys (owner, idem_key, request_hash, state,"
                      " expires_at) VALUES ($1, $2, $3, 'in_flight',"
                      " now() + interval '" S(CREDIT_IDEM_TTL_S) " seconds')"
                      " ON CONFLICT (owner, idem_key) DO NOTHING RETURNING 1",
                      3, p, &r, err);
  if (rc != LC_OK)
    return rc;
  int inserted = PQntuples(r) == 1;
  PQclear(r);
  if (inserted) {
    out->decision = CREDIT_IDEM_NEW;
    return LC_OK;
  }
  rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(c,
                  "SELECT state, request_hash, response_status, response_body,"
                  " expires_at <= now(),"
                  " locked_at <= now() - interval '" S(CREDIT_IDEM_STALE_S) " seconds'"
                  " FROM idempotency_keys WHERE owner = $1 AND idem_key = $2 FOR UPDATE",
                  2, p, &r, err);
  if (rc != LC_OK) {
    lc_db_rollback(c);
    return rc;
  }
  if (PQntuples(r) != 1) { /* swept in between: insert again */
    PQclear(r);
    lc_db_rollback(c);
    return LC_ERR_RETRY;
  }
  const char *state = PQgetvalue(r, 0, 0), *stored = PQgetvalue(r, 0, 1);
  int expired = PQgetvalue(r, 0, 4)[0] == 't', stale = PQgetvalue(r, 0, 5)[0] == 't';
  out->decision = credit_idem_decide(1, state, stored, hash, expired, stale);
  if (out->decision == CREDIT_IDEM_REPLAY) {
    int64_t st = 0;
    if (PQgetisnull(r, 0, 2) || lc_parse_i64(PQgetvalue(r, 0, 2), 100, 599, &st) != LC_OK) {
      PQclear(r);
      lc_db_rollback(c);
      return lc_err_set(err, LC_ERR_DB, "bad stored response");
    }
    out->status = (int)st;
    out->body = lc_xstrdup(PQgetisnull(r, 0, 3) ? "" : PQgetvalue(r, 0, 3));
  }
  PQclear(r);
  if (out->decision == CREDIT_IDEM_NEW) { /* expired or abandoned: take it over */
    rc = lc_db_exec(c,
                    "UPDATE idempotency_keys SET request_hash = $3, state = 'in_flight',"
                    " response_status = NULL, response_body = NULL, created_at = now(),"
                    " locked_at = now(),"
                    " expires_at = now() + interval '" S(CREDIT_IDEM_TTL_S) " seconds'"
                    " WHERE owner = $1 AND idem_key = $2",
                    3, p, NULL, err);
    if (rc != LC_OK) {
      lc_db_rollback(c);
      return rc;
    }
  }
  return lc_db_commit(c, err);
}

int credit_idem_claim(lc_db_pool *pool, const char *owner, const char *key, const char *req_hash,
                      credit_idem_result *out, char err[LC_ERR_LEN]) {
  memset(out, 0, sizeof(*out));
  if (owner == NULL || owner[0] == '\0' || strlen(owner) > 64 || !credit_idem_key_valid(key) ||
      req_hash == NULL || strlen(req_hash) != 64)
    return lc_err_set(err, LC_ERR_PARAM, "bad idempotency claim");
  PGconn *c = NULL;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  for (int i = 0; i < 3; i++) {
    rc = claim_once(c, owner, key, req_hash, out, err);
    if (rc != LC_ERR_RETRY)
      break;
  }
  lc_db_release(pool, c);
  if (rc == LC_ERR_RETRY)
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "idempotency key busy");
  return rc;
}

int credit_idem_finish(PGconn *conn, const char *owner, const char *key, const char *req_hash,
                       int status, const char *body, char err[LC_ERR_LEN]) {
  if (body == NULL || strlen(body) > CREDIT_IDEM_BODY_MAX || status < 100 || status > 599)
    return lc_err_set(err, LC_ERR_PARAM, "bad response to store");
  char st[16];
  snprintf(st, sizeof(st), "%d", status);
  const char *p[5] = {owner, key, req_hash, st, body};
  PGresult *r = NULL;
  int rc = lc_db_exec(conn,
                      "UPDATE idempotency_keys SET state = 'done', response_status = $4::int,"
                      " response_body = $5 WHERE owner = $1 AND idem_key = $2"
                      " AND request_hash = $3 AND state = 'in_flight' RETURNING 1",
                      5, p, &r, err);
  if (rc != LC_OK)
    return rc;
  int n = PQntuples(r);
  PQclear(r);
  return n == 1 ? LC_OK : lc_err_set(err, LC_ERR_CONFLICT, "idempotency claim lost");
}

int credit_idem_abandon(lc_db_pool *pool, const char *owner, const char *key,
                        const char *req_hash, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  const char *p[3] = {owner, key, req_hash};
  rc = lc_db_exec(c,
                  "DELETE FROM idempotency_keys WHERE owner = $1 AND idem_key = $2"
                  " AND request_hash = $3 AND state = 'in_flight'",
                  3, p, NULL, err);
  lc_db_release(pool, c);
  return rc;
}

int credit_idem_sweep(lc_db_pool *pool, int *n, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  *n = 0;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  PGresult *r = NULL;
  rc = lc_db_exec(c,
                  "WITH d AS (DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM"
                  " idempotency_keys WHERE expires_at <= now() LIMIT 1000) RETURNING 1)"
                  " SELECT count(*) FROM d",
                  0, NULL, &r, err);
  lc_db_release(pool, c);
  if (rc != LC_OK)
    return rc;
  int64_t k = 0;
  lc_parse_i64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &k);
  PQclear(r);
  *n = (int)k;
  return LC_OK;
}
