/* store.c - chain schema access (see store.h). */
#include "store.h"

#include <stdio.h>
#include <string.h>

#include "lc/util.h"

/* Reads an int64 column; LC_ERR_DB when it is not a number. */
static int col_i64(const PGresult *res, int row, int col, int64_t *out)
{
  if (PQgetisnull(res, row, col))
    return LC_ERR_DB;
  return lc_parse_i64(PQgetvalue(res, row, col), INT64_MIN, INT64_MAX, out) == LC_OK
             ? LC_OK
             : LC_ERR_DB;
}

/* SELECT of an existing wallet; *found = 0 when there is none. */
static int wallet_select(PGconn *conn, const char *user_id, int *found, int64_t *idx,
                         char address[43], char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  const char *p[1] = {user_id};
  int rc;

  *found = 0;
  rc = lc_db_exec_prepared(conn, "chain_wallet_of", "SELECT idx, address FROM wallets WHERE user_id = $1", 1, p, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) == 1) {
    rc = col_i64(res, 0, 0, idx);
    if (rc == LC_OK && lc_strlcpy(address, PQgetvalue(res, 0, 1), 43) != LC_OK)
      rc = LC_ERR_DB;
    if (rc != LC_OK)
      lc_err_set(err, rc, "wallets - bad stored row");
    *found = rc == LC_OK;
  }
  PQclear(res);
  return rc;
}

int chain_store_wallet(chain_ctx *ctx, PGconn *conn, const char *user_id, int64_t *idx,
                       char address[43], char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  int found = 0, rc;
  int64_t next = 0;
  char idxs[24];
  const char *p[3];

  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id is not a UUID");
  rc = wallet_select(conn, user_id, &found, idx, address, err);
  if (rc != LC_OK || found)
    return rc;

  rc = lc_db_exec(conn, "SELECT nextval('wallet_idx_seq')", 0, NULL, &res, err);
  if (rc != LC_OK)
    return rc;
  rc = col_i64(res, 0, 0, &next);
  PQclear(res);
  res = NULL;
  if (rc != LC_OK)
    return lc_err_set(err, rc, "wallets - bad sequence value");
  rc = chain_user_address(ctx, next, NULL, address);
  if (rc != LC_OK)
    return lc_err_set(err, rc, "wallets - cannot derive address for index %lld",
                      (long long)next);
  snprintf(idxs, sizeof(idxs), "%lld", (long long)next);
  p[0] = user_id;
  p[1] = idxs;
  p[2] = address;
  rc = lc_db_exec(conn,
                  "INSERT INTO wallets (user_id, idx, address) VALUES ($1, $2, $3) "
                  "ON CONFLICT (user_id) DO NOTHING",
                  3, p, NULL, err);
  if (rc != LC_OK)
    return rc;
  /* Either ours or the concurrent winner's row. */
  rc = wallet_select(conn, user_id, &found, idx, address, err);
  if (rc == LC_OK && !found)
    rc = lc_err_set(err, LC_ERR_DB, "wallets - row vanished");
  return rc;
}

int chain_store_nonce_ensure(chain_ctx *ctx, PGconn *conn, char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  json_t *cnt = NULL;
  const char *p[2];
  char ns[24];
  uint64_t n = 0;
  int rc;

  p[0] = ctx->master_str;
  rc = lc_db_exec_prepared(conn, "chain_nonce_exists", "SELECT 1 FROM nonces WHERE address = $1", 1, p, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) == 1) {
    PQclear(res);
    return LC_OK;
  }
  PQclear(res);

  rc = rpc_call(&ctx->rpc, "eth_getTransactionCount",
                json_pack("[ss]", ctx->master_str, "pending"), &cnt, NULL, err);
  if (rc != LC_OK)
    return rc;
  if (rpc_quantity_u64(cnt, &n) != LC_OK || n > (uint64_t)INT64_MAX) {
    json_decref(cnt);
    return lc_err_set(err, LC_ERR_IO, "eth_getTransactionCount - bad quantity");
  }
  json_decref(cnt);
  snprintf(ns, sizeof(ns), "%llu", (unsigned long long)n);
  p[1] = ns;
  rc = lc_db_exec(conn,
                  "INSERT INTO nonces (address, next_nonce) VALUES ($1, $2) "
                  "ON CONFLICT (address) DO NOTHING",
                  2, p, NULL, err);
  return rc;
}

int chain_store_nonce_lock(chain_ctx *ctx, PGconn *conn, int64_t *nonce, char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  const char *p[1] = {ctx->master_str};
  int rc;

  rc = lc_db_exec_prepared(conn, "chain_nonce_lock", "SELECT next_nonce FROM nonces WHERE address = $1 FOR UPDATE", 1, p,
                  &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1)
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "nonces - no row for the master address");
  else if (col_i64(res, 0, 0, nonce) != LC_OK)
    rc = lc_err_set(err, LC_ERR_DB, "nonces - bad stored value");
  PQclear(res);
  return rc;
}

int chain_store_nonce_advance(chain_ctx *ctx, PGconn *conn, int64_t used, char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  char ns[24];
  const char *p[2];
  int rc;

  snprintf(ns, sizeof(ns), "%lld", (long long)used);
  p[0] = ctx->master_str;
  p[1] = ns;
  rc = lc_db_exec(conn,
                  "UPDATE nonces SET next_nonce = $2::bigint + 1, updated_at = now() "
                  "WHERE address = $1 AND next_nonce = $2::bigint",
                  2, p, &res, err);
  if (rc != LC_OK)
    return rc;
  if (strcmp(PQcmdTuples(res), "1") != 0)
    rc = lc_err_set(err, LC_ERR_CONFLICT, "nonces - allocator moved underneath the lock");
  PQclear(res);
  return rc;
}

int chain_store_transfer_exists(PGconn *conn, const char *debit_id, int *exists,
                                char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  const char *p[1] = {debit_id};
  int rc;

  *exists = 0;
  rc = lc_db_exec(conn, "SELECT 1 FROM transfers WHERE debit_id = $1", 1, p, &res, err);
  if (rc != LC_OK)
    return rc;
  *exists = PQntuples(res) > 0;
  PQclear(res);
  return LC_OK;
}

int chain_store_counts(PGconn *conn, int64_t *pending, int64_t *confirmed, int64_t *failed,
                       char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  int rc;

  rc = lc_db_exec(conn,
                  "SELECT count(*) FILTER (WHERE status IN ('signed', 'submitted')), "
                  "count(*) FILTER (WHERE status = 'confirmed'), "
                  "count(*) FILTER (WHERE status = 'failed') FROM transfers",
                  0, NULL, &res, err);
  if (rc != LC_OK)
    return rc;
  if (col_i64(res, 0, 0, pending) != LC_OK || col_i64(res, 0, 1, confirmed) != LC_OK ||
      col_i64(res, 0, 2, failed) != LC_OK)
    rc = lc_err_set(err, LC_ERR_DB, "transfers - bad counts");
  PQclear(res);
  return rc;
}
