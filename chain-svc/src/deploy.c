/* deploy.c - CreditToken deployment by chain-svc (see deploy.h). */
#include "deploy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ethtx.h"
#include "fees.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "store.h"
#include "u256.h"

#define DEPLOY_GAS_MIN 1000000u

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int chain_deploy_lookup(chain_ctx *ctx, char address[43], char err[LC_ERR_LEN])
{
  PGconn *conn = NULL;
  PGresult *res = NULL;
  char cid[24];
  const char *p[1] = {cid};
  int rc;

  snprintf(cid, sizeof(cid), "%llu", (unsigned long long)ctx->chain_id);
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(conn,
                  "SELECT address FROM token_deployments WHERE chain_id = $1::bigint "
                  "AND status = 'deployed'",
                  1, p, &res, err);
  if (rc == LC_OK) {
    if (PQntuples(res) == 1)
      rc = lc_strlcpy(address, PQgetvalue(res, 0, 0), 43) == LC_OK ? LC_OK : LC_ERR_DB;
    else
      rc = lc_err_set(err, LC_ERR_NOTFOUND, "no token deployed by chain-svc on chain %s", cid);
  }
  PQclear(res);
  lc_db_release(ctx->db, conn);
  return rc;
}

/* Reads the hex bytecode file into a new binary buffer. */
static int read_bytecode(const char *path, uint8_t **code, size_t *len, char err[LC_ERR_LEN])
{
  char *text = NULL;
  size_t n = 0, cap;
  const char *h;
  int rc;

  rc = lc_read_file(path, CHAIN_BYTECODE_MAX + 8, &text, &n, err);
  if (rc != LC_OK)
    return lc_err_set(err, rc, "token bytecode %s: %s", path, "cannot read (build the project "
                                                             "or set CHAIN_TOKEN_BIN)");
  while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
    text[--n] = '\0';
  h = text;
  if (n >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X'))
    h += 2;
  cap = strlen(h) / 2;
  *code = lc_xmalloc(cap + 1);
  if (strlen(h) < 100 || strlen(h) % 2 != 0 ||
      lc_hex_decode(h, *code, cap + 1, len) != LC_OK || *len != cap) {
    free(*code);
    *code = NULL;
    free(text);
    return lc_err_set(err, LC_ERR_PARAM, "token bytecode %s is not hex", path);
  }
  free(text);
  return LC_OK;
}

/* Gas for the creation: eth_estimateGas + 20 %, at least DEPLOY_GAS_MIN. */
static int estimate_gas(chain_ctx *ctx, const char *data_hex, uint64_t *gas, char err[LC_ERR_LEN])
{
  json_t *res = NULL;
  uint64_t g = 0;
  int rc = rpc_call(&ctx->rpc, "eth_estimateGas",
                    json_pack("[{s:s, s:s}]", "from", ctx->master_str, "data", data_hex), &res,
                    NULL, err);
  if (rc == LC_OK && rpc_quantity_u64(res, &g) != LC_OK)
    rc = lc_err_set(err, LC_ERR_IO, "eth_estimateGas - bad quantity");
  json_decref(res);
  if (rc != LC_OK)
    return rc;
  g += g / 5;
  *gas = g < DEPLOY_GAS_MIN ? DEPLOY_GAS_MIN : g;
  return LC_OK;
}

/* Signs and stores the creation transaction under the nonce lock. */
static int sign_and_store(chain_ctx *ctx, const uint8_t *data, size_t data_len, uint64_t gas,
                          char err[LC_ERR_LEN])
{
  PGconn *conn = NULL;
  uint8_t tip[32], max_fee[32], hash[32], addr[20], *raw = NULL;
  size_t raw_len = 0;
  char *raw_hex = NULL, hash_hex[67], addr_s[43], cid[24], ns[24];
  const char *p[6];
  int64_t nonce = 0;
  ethtx_1559 tx;
  int rc;

  rc = chain_fees(ctx, tip, max_fee, err);
  if (rc != LC_OK)
    return rc;
  chain_fee_cap(tip, max_fee, ctx->fee_cap);
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = chain_store_nonce_ensure(ctx, conn, err);
  if (rc == LC_OK)
    rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    goto out;
  rc = chain_store_nonce_lock(ctx, conn, &nonce, err);
  if (rc != LC_OK)
    goto out;
  memset(&tx, 0, sizeof(tx));
  tx.chain_id = ctx->chain_id;
  tx.nonce = (uint64_t)nonce;
  memcpy(tx.max_priority_fee, tip, 32);
  memcpy(tx.max_fee, max_fee, 32);
  tx.gas_limit = gas;
  tx.create = 1;
  tx.data = data;
  tx.data_len = data_len;
  rc = ethtx_sign(&tx, ctx->master_priv, &raw, &raw_len, hash, err);
  if (rc != LC_OK)
    goto out;
  raw_hex = lc_xmalloc(2 * raw_len + 3);
  raw_hex[0] = '0';
  raw_hex[1] = 'x';
  lc_hex_encode(raw, raw_len, raw_hex + 2);
  hash_hex[0] = '0';
  hash_hex[1] = 'x';
  lc_hex_encode(hash, 32, hash_hex + 2);
  if (eth_create_address(ctx->master, (uint64_t)nonce, addr) != LC_OK) {
    rc = lc_err_set(err, LC_ERR, "deploy - cannot compute the contract address");
    goto out;
  }
  eth_address_checksum(addr, addr_s);
  snprintf(cid, sizeof(cid), "%llu", (unsigned long long)ctx->chain_id);
  snprintf(ns, sizeof(ns), "%lld", (long long)nonce);
  p[0] = cid;
  p[1] = addr_s;
  p[2] = ctx->master_str;
  p[3] = ns;
  p[4] = hash_hex;
  p[5] = raw_hex;
  rc = lc_db_exec(conn,
                  "INSERT INTO token_deployments (chain_id, address, deployer, nonce, tx_hash, "
                  "raw_tx, status) VALUES ($1::bigint, $2, $3, $4::bigint, $5, $6, 'signed')",
                  6, p, NULL, err);
  if (rc == LC_OK)
    rc = chain_store_nonce_advance(ctx, conn, nonce, err);
  if (rc == LC_OK)
    rc = lc_db_commit(conn, err);
  if (rc == LC_OK)
    lc_log_info("Event - token deployment signed nonce=%lld tx=%s address=%s", (long long)nonce,
                hash_hex, addr_s);
out:
  if (rc != LC_OK && conn != NULL)
    lc_db_rollback(conn);
  if (conn != NULL)
    lc_db_release(ctx->db, conn);
  free(raw);
  free(raw_hex);
  return rc;
}

/* Loads the stored deployment: *found, its status, hash, raw tx (new) and address. */
static int load_stored(chain_ctx *ctx, int *found, char status[16], char hash[67], char **raw,
                       char address[43], char err[LC_ERR_LEN])
{
  PGconn *conn = NULL;
  PGresult *res = NULL;
  char cid[24];
  const char *p[1] = {cid};
  int rc;

  *found = 0;
  *raw = NULL;
  snprintf(cid, sizeof(cid), "%llu", (unsigned long long)ctx->chain_id);
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(conn,
                  "SELECT status, tx_hash, raw_tx, address FROM token_deployments "
                  "WHERE chain_id = $1::bigint",
                  1, p, &res, err);
  if (rc == LC_OK && PQntuples(res) == 1) {
    *found = 1;
    lc_strlcpy(status, PQgetvalue(res, 0, 0), 16);
    lc_strlcpy(hash, PQgetvalue(res, 0, 1), 67);
    *raw = lc_xstrdup(PQgetvalue(res, 0, 2));
    lc_strlcpy(address, PQgetvalue(res, 0, 3), 43);
  }
  PQclear(res);
  lc_db_release(ctx->db, conn);
  return rc;
}

static int mark_deployed(chain_ctx *ctx, uint64_t block, char err[LC_ERR_LEN])
{
  PGconn *conn = NULL;
  char cid[24], bn[24];
  const char *p[2] = {cid, bn};
  int rc;

  snprintf(cid, sizeof(cid), "%llu", (unsigned long long)ctx->chain_id);
  snprintf(bn, sizeof(bn), "%llu", (unsigned long long)block);
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(conn,
                  "UPDATE token_deployments SET status = 'deployed', block_number = $2::bigint, "
                  "deployed_at = now() WHERE chain_id = $1::bigint",
                  2, p, NULL, err);
  lc_db_release(ctx->db, conn);
  return rc;
}

int chain_deploy_token(chain_ctx *ctx, const char *bytecode_path, int timeout_s,
                       char address[43], char err[LC_ERR_LEN])
{
  uint8_t *code = NULL, *data = NULL, supply[32];
  char *data_hex = NULL, *raw = NULL, status[16] = "", hash[67] = "";
  json_t *res = NULL, *rcpt = NULL;
  size_t code_len = 0;
  uint64_t gas = 0, block = 0, st = 0;
  int found = 0, rc, waited;

  rc = load_stored(ctx, &found, status, hash, &raw, address, err);
  if (rc != LC_OK)
    goto out;
  if (found && strcmp(status, "deployed") == 0) {
    rc = chain_ctx_set_token(ctx, address) == LC_OK ? LC_OK : LC_ERR_DB;
    goto out;
  }
  if (!found) {
    rc = read_bytecode(bytecode_path, &code, &code_len, err);
    if (rc != LC_OK)
      goto out;
    if (u256_mul_pow10(CHAIN_TOKEN_SUPPLY_UNITS, ctx->decimals, supply) != LC_OK) {
      rc = lc_err_set(err, LC_ERR_PARAM, "deploy - supply overflows");
      goto out;
    }
    data = lc_xmalloc(code_len + 32);
    memcpy(data, code, code_len);
    memcpy(data + code_len, supply, 32);
    data_hex = lc_xmalloc(2 * (code_len + 32) + 3);
    data_hex[0] = '0';
    data_hex[1] = 'x';
    lc_hex_encode(data, code_len + 32, data_hex + 2);
    rc = estimate_gas(ctx, data_hex, &gas, err);
    if (rc == LC_OK)
      rc = sign_and_store(ctx, data, code_len + 32, gas, err);
    if (rc == LC_OK)
      rc = load_stored(ctx, &found, status, hash, &raw, address, err);
    if (rc == LC_OK && !found)
      rc = lc_err_set(err, LC_ERR_DB, "deploy - stored deployment vanished");
    if (rc != LC_OK)
      goto out;
  }
  /* Broadcast the stored transaction (again, after a crash: same raw). */
  rc = rpc_call(&ctx->rpc, "eth_sendRawTransaction", json_pack("[s]", raw), &res, NULL, err);
  json_decref(res);
  res = NULL;
  if (rc == LC_ERR_UNPROCESSABLE) {
    chain_send_class cls = chain_classify_send_error(err);
    if (cls != CHAIN_SEND_ALREADY_KNOWN && cls != CHAIN_SEND_NONCE_TOO_LOW)
      goto out;
    rc = LC_OK; /* in the pool already, or mined: the receipt tells */
  }
  if (rc != LC_OK)
    goto out;
  for (waited = 0; waited < timeout_s * 10; waited++) {
    rc = rpc_call(&ctx->rpc, "eth_getTransactionReceipt", json_pack("[s]", hash), &rcpt, NULL,
                  err);
    if (rc != LC_OK)
      goto out;
    if (json_is_object(rcpt))
      break;
    json_decref(rcpt);
    rcpt = NULL;
    if (atomic_load(&lc_svc_stopping)) {
      rc = lc_err_set(err, LC_ERR_UNAVAIL, "deploy - stopped while waiting");
      goto out;
    }
    sleep_ms(100);
  }
  if (rcpt == NULL) {
    rc = lc_err_set(err, LC_ERR_TIMEOUT, "deploy - no receipt for %s after %d s (stored; rerun "
                                         "to re-broadcast)", hash, timeout_s);
    goto out;
  }
  if (rpc_quantity_u64(json_object_get(rcpt, "status"), &st) != LC_OK || st != 1 ||
      rpc_quantity_u64(json_object_get(rcpt, "blockNumber"), &block) != LC_OK) {
    rc = lc_err_set(err, LC_ERR, "deploy - transaction %s reverted", hash);
    goto out;
  }
  {
    const char *ca = json_string_value(json_object_get(rcpt, "contractAddress"));
    if (ca == NULL || strcasecmp(ca, address) != 0) {
      rc = lc_err_set(err, LC_ERR, "deploy - receipt names contract %s, expected %s",
                      ca != NULL ? ca : "(none)", address);
      goto out;
    }
  }
  rc = rpc_call(&ctx->rpc, "eth_getCode", json_pack("[ss]", address, "latest"), &res, NULL, err);
  if (rc != LC_OK)
    goto out;
  if (json_string_value(res) == NULL || strlen(json_string_value(res)) <= 2) {
    rc = lc_err_set(err, LC_ERR, "deploy - no code at %s", address);
    goto out;
  }
  rc = mark_deployed(ctx, block, err);
  if (rc == LC_OK && chain_ctx_set_token(ctx, address) != LC_OK)
    rc = lc_err_set(err, LC_ERR_DB, "deploy - bad stored address");
  if (rc == LC_OK)
    lc_log_info("Event - token deployed address=%s tx=%s block=%llu", address, hash,
                (unsigned long long)block);
out:
  json_decref(res);
  json_decref(rcpt);
  free(code);
  free(data);
  free(data_hex);
  free(raw);
  return rc;
}
