/* chain_ctx.c - shared daemon state, key derivation and fee lookup
 * (see chain_ctx.h). */
#include "chain_ctx.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include <stdlib.h>
#include "ethtx.h"
#include "lc/util.h"
#include "u256.h"
#include "wallet.h"

int chain_ctx_init(chain_ctx *ctx, lc_db_pool *db, const char *rpc_url, uint64_t chain_id,
                   const char *token, const uint8_t *seed, size_t seed_len,
                   char err[LC_ERR_LEN])
{
  int rc;

  memset(ctx, 0, sizeof(*ctx));
  if (seed == NULL || seed_len < 16 || seed_len > sizeof(ctx->seed))
    return lc_err_set(err, LC_ERR_PARAM, "chain_ctx_init - bad seed length");
  if (token != NULL && eth_address_parse(token, ctx->token) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "chain_ctx_init - CHAIN_TOKEN_ADDRESS is not an address");
  rc = rpc_init(&ctx->rpc, rpc_url, 10000, err);
  if (rc != LC_OK)
    return rc;
  ctx->db = db;
  ctx->chain_id = chain_id;
  eth_address_checksum(ctx->token, ctx->token_str);
  ctx->decimals = 18;
  ctx->gas_limit = 120000;
  ctx->confirmations = 1;
  ctx->max_in_flight = 64;
  ctx->poll_ms = 250;
  ctx->stuck_after_s = 60;
  ctx->dropped_after_s = 10;
  ctx->max_deliveries = 5;
  ctx->balance_check_ms = 2000;
  atomic_init(&ctx->parked, 0);
  lc_strlcpy(ctx->exchange, "chain.events", sizeof(ctx->exchange));
  memcpy(ctx->seed, seed, seed_len);
  ctx->seed_len = seed_len;
  if (wallet_derive_eth(ctx->seed, ctx->seed_len, 0, 0, ctx->master_priv) != LC_OK ||
      eth_address_from_priv(ctx->master_priv, ctx->master) != LC_OK) {
    sodium_memzero(ctx->seed, sizeof(ctx->seed));
    sodium_memzero(ctx->master_priv, sizeof(ctx->master_priv));
    return lc_err_set(err, LC_ERR_PARAM, "chain_ctx_init - master key derivation failed");
  }
  eth_address_checksum(ctx->master, ctx->master_str);
  pthread_mutex_init(&ctx->fee_mu, NULL);
  ctx->consumers = 1;
  pthread_mutex_init(&ctx->store_mu, NULL);
  pthread_cond_init(&ctx->store_cv, NULL);
  ctx->store_head = NULL;
  ctx->store_busy = 0;
  {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&ctx->wake_mu, NULL);
    pthread_cond_init(&ctx->wake_cv, &ca);
    pthread_condattr_destroy(&ca);
  }
  memset(ctx->wake_seq, 0, sizeof(ctx->wake_seq));
  atomic_init(&ctx->last_block, 0);
  atomic_init(&ctx->track_open, 0);
  atomic_init(&ctx->track_unmined, 0);
  ctx->mine_nudge_ms = 0;
  return LC_OK;
}

void chain_wake(chain_ctx *ctx, int stage)
{
  pthread_mutex_lock(&ctx->wake_mu);
  ctx->wake_seq[stage]++;
  pthread_cond_broadcast(&ctx->wake_cv);
  pthread_mutex_unlock(&ctx->wake_mu);
}

int chain_wait(chain_ctx *ctx, int stage, unsigned *seen, int64_t ms)
{
  struct timespec ts;
  int woke = 0;

  if (ms < 0)
    ms = 0;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&ctx->wake_mu);
  while (ctx->wake_seq[stage] == *seen) {
    if (pthread_cond_timedwait(&ctx->wake_cv, &ctx->wake_mu, &ts) != 0)
      break;
  }
  if (ctx->wake_seq[stage] != *seen) {
    *seen = ctx->wake_seq[stage];
    woke = 1;
  }
  pthread_mutex_unlock(&ctx->wake_mu);
  return woke;
}

int chain_ctx_set_token(chain_ctx *ctx, const char *token)
{
  if (token == NULL || eth_address_parse(token, ctx->token) != LC_OK)
    return LC_ERR_PARAM;
  eth_address_checksum(ctx->token, ctx->token_str);
  return LC_OK;
}

void chain_ctx_free(chain_ctx *ctx)
{
  if (ctx == NULL)
    return;
  sodium_memzero(ctx->seed, sizeof(ctx->seed));
  sodium_memzero(ctx->master_priv, sizeof(ctx->master_priv));
  pthread_mutex_destroy(&ctx->fee_mu);
  pthread_mutex_destroy(&ctx->store_mu);
  pthread_cond_destroy(&ctx->store_cv);
  pthread_mutex_destroy(&ctx->wake_mu);
  pthread_cond_destroy(&ctx->wake_cv);
}

int chain_user_address(const chain_ctx *ctx, int64_t idx, uint8_t addr[20], char out[43])
{
  uint8_t priv[32], a[20];
  int rc;

  if (idx < 1 || idx >= INT64_C(0x80000000))
    return LC_ERR_PARAM;
  rc = wallet_derive_eth(ctx->seed, ctx->seed_len, 0, (uint32_t)idx, priv);
  if (rc == LC_OK)
    rc = eth_address_from_priv(priv, a);
  sodium_memzero(priv, sizeof(priv));
  if (rc != LC_OK)
    return LC_ERR;
  if (addr != NULL)
    memcpy(addr, a, sizeof(a));
  eth_address_checksum(a, out);
  return LC_OK;
}

/* Fetches fresh fee values from the node (no cache). */
static int fees_fetch(chain_ctx *ctx, uint8_t tip[32], uint8_t max_fee[32], char err[LC_ERR_LEN])
{
  json_t *blk = NULL, *tipv = NULL;
  uint8_t base[32], twice[32];
  int rc;

  rc = rpc_call(&ctx->rpc, "eth_getBlockByNumber", json_pack("[sb]", "latest", 0), &blk, NULL,
                err);
  if (rc != LC_OK)
    goto out;
  if (rpc_quantity_u256(json_object_get(blk, "baseFeePerGas"), base) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_IO, "fees - latest block has no baseFeePerGas");
    goto out;
  }
  rc = rpc_call(&ctx->rpc, "eth_maxPriorityFeePerGas", NULL, &tipv, NULL, err);
  if (rc != LC_OK)
    goto out;
  if (rpc_quantity_u256(tipv, tip) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_IO, "fees - bad eth_maxPriorityFeePerGas");
    goto out;
  }
  if (u256_add(base, base, twice) != LC_OK || u256_add(twice, tip, max_fee) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_IO, "fees - overflow");
    goto out;
  }
  rc = LC_OK;
out:
  json_decref(blk);
  json_decref(tipv);
  return rc;
}

int chain_fees(chain_ctx *ctx, uint8_t tip[32], uint8_t max_fee[32], char err[LC_ERR_LEN])
{
  int64_t now = lc_mono_ms();
  int rc = LC_OK;

  pthread_mutex_lock(&ctx->fee_mu);
  if (ctx->fee_at_ms == 0 || now - ctx->fee_at_ms > CHAIN_FEE_CACHE_MS) {
    rc = fees_fetch(ctx, ctx->fee_tip, ctx->fee_max, err);
    ctx->fee_at_ms = rc == LC_OK ? now : 0;
  }
  if (rc == LC_OK) {
    memcpy(tip, ctx->fee_tip, 32);
    memcpy(max_fee, ctx->fee_max, 32);
  }
  pthread_mutex_unlock(&ctx->fee_mu);
  return rc;
}

void chain_fees_invalidate(chain_ctx *ctx)
{
  pthread_mutex_lock(&ctx->fee_mu);
  ctx->fee_at_ms = 0;
  pthread_mutex_unlock(&ctx->fee_mu);
}

int chain_master_balances(chain_ctx *ctx, uint8_t eth[32], uint8_t tokens[32],
                          char err[LC_ERR_LEN])
{
  json_t *res = NULL;
  char call[80], hex[41];
  int rc;

  rc = rpc_call(&ctx->rpc, "eth_getBalance", json_pack("[ss]", ctx->master_str, "latest"), &res,
                NULL, err);
  if (rc == LC_OK && rpc_quantity_u256(res, eth) != LC_OK)
    rc = lc_err_set(err, LC_ERR_IO, "eth_getBalance - bad quantity");
  json_decref(res);
  res = NULL;
  if (rc != LC_OK)
    return rc;
  /* balanceOf(address) = 0x70a08231 || pad32(address) */
  lc_hex_encode(ctx->master, 20, hex);
  snprintf(call, sizeof(call), "0x70a08231000000000000000000000000%s", hex);
  rc = rpc_call(&ctx->rpc, "eth_call",
                json_pack("[{s:s, s:s}, s]", "to", ctx->token_str, "data", call, "latest"), &res,
                NULL, err);
  if (rc == LC_OK) {
    const char *v = json_string_value(res);
    /* "0x" + 64 hex digits; a missing contract answers "0x" */
    if (v == NULL || strlen(v) != 66 || u256_from_hex(v, tokens) != LC_OK)
      rc = lc_err_set(err, LC_ERR_IO, "balanceOf - unexpected answer (no token contract?)");
  }
  json_decref(res);
  return rc;
}

int chain_node_chain_id(chain_ctx *ctx, uint64_t *id, char err[LC_ERR_LEN])
{
  json_t *res = NULL;
  int rc = rpc_call(&ctx->rpc, "eth_chainId", NULL, &res, NULL, err);
  if (rc == LC_OK && rpc_quantity_u64(res, id) != LC_OK)
    rc = lc_err_set(err, LC_ERR_IO, "eth_chainId - bad quantity");
  json_decref(res);
  return rc;
}

/* Signs the transfer for nonce; raw_hex ("0x"...) and hash_hex (67 bytes). */
int chain_sign_transfer(chain_ctx *ctx, const uint8_t to[20], const uint8_t amount[32],
                         int64_t nonce, const uint8_t tip[32], const uint8_t max_fee[32],
                         char *raw_hex, size_t raw_hex_sz, char hash_hex[67],
                         char err[LC_ERR_LEN])
{
  uint8_t data[68], hash[32];
  uint8_t *raw = NULL;
  size_t raw_len = 0;
  ethtx_1559 tx;
  int rc;

  eth_erc20_transfer_data(to, amount, data);
  memset(&tx, 0, sizeof(tx));
  tx.chain_id = ctx->chain_id;
  tx.nonce = (uint64_t)nonce;
  memcpy(tx.max_priority_fee, tip, 32);
  memcpy(tx.max_fee, max_fee, 32);
  tx.gas_limit = ctx->gas_limit;
  memcpy(tx.to, ctx->token, 20);
  tx.data = data;
  tx.data_len = sizeof(data);
  rc = ethtx_sign(&tx, ctx->master_priv, &raw, &raw_len, hash, err);
  if (rc != LC_OK)
    return rc;
  if (2 * raw_len + 3 > raw_hex_sz) {
    free(raw);
    return lc_err_set(err, LC_ERR_TOO_LARGE, "raw transaction too large");
  }
  raw_hex[0] = '0';
  raw_hex[1] = 'x';
  lc_hex_encode(raw, raw_len, raw_hex + 2);
  hash_hex[0] = '0';
  hash_hex[1] = 'x';
  lc_hex_encode(hash, 32, hash_hex + 2);
  free(raw);
  return LC_OK;
}

