/* sender.c - broadcast, receipt tracking, fee bumps, drop/reorg recovery,
 * funds parking and status events (see sender.h). */
#include "sender.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ethtx.h"
#include "fees.h"
#include "lc/failpoint.h"
#include "lc/log.h"
#include "lc/msg.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "store.h"
#include "u256.h"

#define PUBLISH_TIMEOUT_MS 5000
#define ERR_KEEP 200
/* A nonce used on chain with none of our attempts mined must stay so this
 * long (and at least CHAIN_DROPPED_AFTER_S) before the transfer is re-signed
 * with a new nonce. */
#define FOREIGN_NONCE_GRACE_S 30

static int row_i64(const PGresult *res, int row, int col, int64_t *out)
{
  if (PQgetisnull(res, row, col))
    return LC_ERR_DB;
  return lc_parse_i64(PQgetvalue(res, row, col), INT64_MIN, INT64_MAX, out);
}

/* Numeric column (decimal text) -> u256; zero when NULL. */
static int row_u256(const PGresult *res, int row, int col, uint8_t out[32])
{
  memset(out, 0, 32);
  if (PQgetisnull(res, row, col))
    return LC_OK;
  return u256_from_dec(PQgetvalue(res, row, col), out);
}

static int exec1(PGconn *conn, const char *sql, const char *a, const char *b, char err[LC_ERR_LEN])
{
  const char *p[2] = {a, b};
  return lc_db_exec(conn, sql, b != NULL ? 2 : 1, p, NULL, err);
}

/* Sends one raw transaction; *cls gets the node's verdict. Returns LC_OK when
 * the node answered (accepted or refused: see *cls, err has its message) or
 * LC_ERR_UNAVAIL when it could not be reached. */
static int send_raw(chain_ctx *ctx, const char *raw, chain_send_class *cls, char err[LC_ERR_LEN])
{
  json_t *res = NULL;
  int rc = rpc_call(&ctx->rpc, "eth_sendRawTransaction", json_pack("[s]", raw), &res, NULL, err);
  json_decref(res);
  *cls = CHAIN_SEND_OK;
  if (rc == LC_OK)
    return LC_OK;
  if (rc == LC_ERR_UNPROCESSABLE) {
    *cls = chain_classify_send_error(err);
    return LC_OK;
  }
  return LC_ERR_UNAVAIL;
}

/* 1 when the node knows tx_hash (pending or mined), 0 when not, -1 on RPC failure. */
static int tx_known(chain_ctx *ctx, const char *tx_hash)
{
  char err[LC_ERR_LEN] = "";
  json_t *res = NULL;
  int rc = rpc_call(&ctx->rpc, "eth_getTransactionByHash", json_pack("[s]", tx_hash), &res,
                    NULL, err);
  int known = rc == LC_OK ? (res != NULL && !json_is_null(res)) : -1;
  json_decref(res);
  return known;
}

/* Receipt of hash: *rcpt new (JSON null when not mined). */
static int get_receipt(chain_ctx *ctx, const char *hash, json_t **rcpt, char err[LC_ERR_LEN])
{
  return rpc_call(&ctx->rpc, "eth_getTransactionReceipt", json_pack("[s]", hash), rcpt, NULL,
                  err);
}

static int master_nonce(chain_ctx *ctx, const char *tag, int64_t *out, char err[LC_ERR_LEN])
{
  json_t *res = NULL;
  uint64_t n = 0;
  int rc = rpc_call(&ctx->rpc, "eth_getTransactionCount", json_pack("[ss]", ctx->master_str, tag),
                    &res, NULL, err);
  if (rc == LC_OK && (rpc_quantity_u64(res, &n) != LC_OK || n > (uint64_t)INT64_MAX))
    rc = lc_err_set(err, LC_ERR_IO, "eth_getTransactionCount - bad quantity");
  json_decref(res);
  if (rc == LC_OK)
    *out = (int64_t)n;
  return rc;
}

/* The receipt's blockHash, checked (0x + 32 bytes of hex) and lowercased into out. */
static int block_hash_of(const json_t *rcpt, char out[67])
{
  const char *h = json_string_value(json_object_get(rcpt, "blockHash"));
  uint8_t b[32];
  size_t n = 0;

  if (h == NULL || strncmp(h, "0x", 2) != 0 || lc_hex_decode(h, b, sizeof(b), &n) != LC_OK ||
      n != sizeof(b))
    return LC_ERR_PARAM;
  out[0] = '0';
  out[1] = 'x';
  lc_hex_encode(b, sizeof(b), out + 2);
  return LC_OK;
}

/* Records a refused broadcast with capped exponential backoff. */
static int set_retry(PGconn *conn, const char *debit_id, const char *why, char err[LC_ERR_LEN])
{
  char msg[ERR_KEEP + 1];
  lc_strlcpy(msg, why, sizeof(msg));
  return exec1(conn,
               "UPDATE transfers SET attempts = attempts + 1, last_error = $2, "
               "next_attempt_at = now() + make_interval(secs => "
               "least(60, power(2, least(attempts, 10)))), updated_at = now() "
               "WHERE debit_id = $1 AND status = 'signed'",
               debit_id, msg, err);
}

/* ------------------------------------------------------ batched updates
 * Text arrays ("{a,b,...}") of values that need no quoting (UUIDs, 0x-hex,
 * status words, decimal numbers) for one statement over many rows. */
typedef struct {
  char *buf[5];
  size_t len[5], cap[5];
  int cols, n;
} arr_buf;

static void ab_init(arr_buf *b, int cols)
{
  memset(b, 0, sizeof(*b));
  b->cols = cols;
}

static void ab_add(arr_buf *b, const char *const *vals)
{
  for (int c = 0; c < b->cols; c++) {
    size_t need = strlen(vals[c]) + 4;
    if (b->len[c] + need > b->cap[c]) {
      b->cap[c] = (b->cap[c] + need) * 2;
      b->buf[c] = lc_xrealloc(b->buf[c], b->cap[c]);
    }
    if (b->len[c] == 0)
      b->buf[c][b->len[c]++] = '{';
    else
      b->buf[c][b->len[c] - 1] = ','; /* replace the closing brace */
    b->len[c] += (size_t)snprintf(b->buf[c] + b->len[c], b->cap[c] - b->len[c], "%s}", vals[c]);
  }
  b->n++;
}

static void ab_clear(arr_buf *b)
{
  for (int c = 0; c < b->cols; c++)
    b->len[c] = 0;
  b->n = 0;
}

static void ab_free(arr_buf *b)
{
  for (int c = 0; c < (int)(sizeof(b->buf) / sizeof(b->buf[0])); c++)
    free(b->buf[c]);
  memset(b, 0, sizeof(*b));
}

/* signed -> submitted for every (debit_id, hash) in b (cols 2), one statement. */
static int flush_submitted(PGconn *conn, arr_buf *b, char err[LC_ERR_LEN])
{
  const char *p[2];
  int rc;
  if (b->n == 0)
    return LC_OK;
  p[0] = b->buf[0];
  p[1] = b->buf[1];
  rc = lc_db_exec(conn,
                  "WITH v AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS v(debit_id, tx_hash)), "
                  "u AS (UPDATE transfers t SET status = 'submitted', attempts = 0, "
                  "last_error = NULL, submitted_at = coalesce(t.submitted_at, now()), "
                  "sent_at = clock_timestamp(), updated_at = now() FROM v "
                  "WHERE t.debit_id = v.debit_id AND t.status = 'signed' AND t.tx_hash = v.tx_hash "
                  "RETURNING t.debit_id, t.tx_hash) "
                  "UPDATE transfer_attempts a SET outcome = 'sent' FROM u "
                  "WHERE a.tx_hash = u.tx_hash AND a.debit_id = u.debit_id AND a.outcome = 'signed'",
                  2, p, NULL, err);
  ab_clear(b);
  return rc;
}

/* Makes attempt hash the transfer's current one (it is the attempt the chain
 * knows); status submitted, and "submitted" is published again with it. */
static int switch_to_attempt(PGconn *conn, const char *debit_id, const char *hash,
                             char err[LC_ERR_LEN])
{
  return exec1(conn,
               "UPDATE transfers t SET tx_hash = a.tx_hash, raw_tx = a.raw_tx, tip = a.tip, "
               "max_fee = a.max_fee, nonce = a.nonce, status = 'submitted', "
               "nonce_used_seen_at = NULL, "
               "submitted_at = coalesce(t.submitted_at, now()), sent_at = clock_timestamp(), "
               "reported_status = NULL, updated_at = now() "
               "FROM transfer_attempts a WHERE t.debit_id = $1 AND a.debit_id = t.debit_id "
               "AND a.tx_hash = $2 AND t.status IN ('signed', 'submitted')",
               debit_id, hash, err);
}

/* ---------------------------------------------------------------- funds */

/* Refreshes the master's balances every balance_check_ms. LC_OK when the
 * cache is usable. */
static int funds_refresh(chain_ctx *ctx, char err[LC_ERR_LEN])
{
  int64_t now = lc_mono_ms();
  if (ctx->funds_at_ms != 0 && now - ctx->funds_at_ms < ctx->balance_check_ms)
    return LC_OK;
  int rc = chain_master_balances(ctx, ctx->funds_eth, ctx->funds_tok, err);
  ctx->funds_at_ms = rc == LC_OK ? now : 0;
  if (rc == LC_OK) { /* /metrics: base units (wei, token units) as float gauges */
    char d[80];
    u256_to_dec(ctx->funds_eth, d), lc_metric_setf("chain_master_balance{asset=\"eth\"}", strtod(d, NULL));
    u256_to_dec(ctx->funds_tok, d), lc_metric_setf("chain_master_balance{asset=\"token\"}", strtod(d, NULL));
  }
  return rc;
}

/* Publishes the park state: alert once per transition, gauges always. */
static void set_parked(chain_ctx *ctx, int bits, int64_t waiting)
{
  int old = atomic_exchange(&ctx->parked, bits);
  if ((bits & CHAIN_PARK_ETH) && !(old & CHAIN_PARK_ETH))
    lc_log_error("Event - ALERT master wallet %s cannot pay gas: transfers parked until it "
                 "is topped up with ETH",
                 ctx->master_str);
  if ((bits & CHAIN_PARK_TOKEN) && !(old & CHAIN_PARK_TOKEN))
    lc_log_error("Event - ALERT master wallet %s holds too few tokens: transfers parked until "
                 "it is topped up",
                 ctx->master_str);
  if (old != 0 && bits == 0)
    lc_log_info("Event - master wallet %s funded again: draining parked transfers",
                ctx->master_str);
  lc_metric_set("chain_master_low_eth", (bits & CHAIN_PARK_ETH) ? 1 : 0);
  lc_metric_set("chain_master_low_token", (bits & CHAIN_PARK_TOKEN) ? 1 : 0);
  lc_metric_set("chain_transfers_parked", bits != 0 && waiting > 0 ? (uint64_t)waiting : 0);
}

/* a -= b, clamped at zero. */
static void sub_clamp(uint8_t a[32], const uint8_t b[32])
{
  int borrow = 0;
  if (u256_cmp(a, b) <= 0) {
    memset(a, 0, 32);
    return;
  }
  for (int i = 31; i >= 0; i--) {
    int d = (int)a[i] - (int)b[i] - borrow;
    borrow = d < 0;
    a[i] = (uint8_t)(d < 0 ? d + 256 : d);
  }
}

/* ------------------------------------------------------------ broadcast */

/* A foreign transaction consumed this transfer's nonce (none of our attempts
 * was mined): re-sign it with a fresh nonce from the allocator. */
static int renonce(chain_ctx *ctx, PGconn *conn, const char *debit_id, const char *cur_hash,
                   char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  uint8_t to[20], amount[32], tip[32], max_fee[32];
  char raw[CHAIN_RAW_TX_MAX], hash[67], ns[24], tip_d[80], max_d[80];
  int64_t pending = 0, next = 0, old_nonce = 0, nonce;
  const char *p[6];
  int rc;

  rc = master_nonce(ctx, "pending", &pending, err);
  if (rc == LC_OK)
    rc = chain_fees(ctx, tip, max_fee, err);
  if (rc != LC_OK)
    return rc;
  chain_fee_cap(tip, max_fee, ctx->fee_cap);
  rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    return rc;
  rc = chain_store_nonce_lock(ctx, conn, &next, err);
  if (rc != LC_OK)
    goto out;
  p[0] = debit_id;
  p[1] = cur_hash;
  rc = lc_db_exec(conn,
                  "SELECT to_address, amount, nonce FROM transfers WHERE debit_id = $1 "
                  "AND tx_hash = $2 AND status IN ('signed', 'submitted') FOR UPDATE",
                  2, p, &res, err);
  if (rc != LC_OK)
    goto out;
  if (PQntuples(res) != 1) {
    rc = lc_err_set(err, LC_ERR_CONFLICT, "renonce - transfer changed meanwhile");
    goto out;
  }
  if (eth_address_parse(PQgetvalue(res, 0, 0), to) != LC_OK ||
      u256_from_dec(PQgetvalue(res, 0, 1), amount) != LC_OK ||
      row_i64(res, 0, 2, &old_nonce) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_DB, "renonce - bad stored row");
    goto out;
  }
  nonce = next > pending ? next : pending;
  rc = chain_sign_transfer(ctx, to, amount, nonce, tip, max_fee, raw, sizeof(raw), hash, err);
  if (rc != LC_OK)
    goto out;
  snprintf(ns, sizeof(ns), "%lld", (long long)nonce);
  u256_to_dec(tip, tip_d);
  u256_to_dec(max_fee, max_d);
  p[0] = debit_id;
  p[1] = ns;
  p[2] = hash;
  p[3] = raw;
  p[4] = tip_d;
  p[5] = max_d;
  rc = lc_db_exec(conn,
                  "INSERT INTO transfer_attempts (debit_id, nonce, tx_hash, raw_tx, tip, max_fee, "
                  "reason) VALUES ($1, $2, $3, $4, $5, $6, 'renonce')",
                  6, p, NULL, err);
  if (rc == LC_OK)
    rc = lc_db_exec(conn,
                    "UPDATE transfers SET nonce = $2, tx_hash = $3, raw_tx = $4, tip = $5, "
                    "max_fee = $6, status = 'signed', sent_at = NULL, nonce_used_seen_at = NULL, next_attempt_at = now(), "
                    "attempts = 0, reported_status = NULL, updated_at = now() "
                    "WHERE debit_id = $1",
                    6, p, NULL, err);
  if (rc == LC_OK)
    rc = exec1(conn,
               "UPDATE transfer_attempts SET outcome = 'superseded' WHERE debit_id = $1 "
               "AND tx_hash <> $2 AND outcome IN ('signed', 'sent', 'rejected')",
               debit_id, hash, err);
  if (rc == LC_OK)
    rc = chain_store_nonce_advance(ctx, conn, next > nonce ? next - 1 : nonce, err);
  if (rc == LC_OK)
    rc = lc_db_commit(conn, err);
  if (rc == LC_OK) {
    lc_log_error("Security - nonce %lld of master %s was consumed by a transaction that is not "
                 "ours; debit_id=%s re-signed with nonce %lld tx=%s",
                 (long long)old_nonce, ctx->master_str, debit_id, (long long)nonce, hash);
    lc_metric_add("chain_foreign_nonce_total", 1);
  }
out:
  PQclear(res);
  if (rc != LC_OK)
    lc_db_rollback(conn);
  return rc;
}

/* The node says the nonce of debit_id is used. Finds which of our attempts
 * was mined and makes it current; when none was (after the drop grace time)
 * the nonce was taken by a foreign transaction -> renonce. *resolved = 1 when
 * the row changed. */
static int resolve_used_nonce(chain_ctx *ctx, PGconn *conn, const char *debit_id,
                              const char *cur_hash, int64_t age_s, int *resolved,
                              char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  const char *p[1] = {debit_id};
  int rc, i, n;

  *resolved = 0;
  rc = lc_db_exec(conn,
                  "SELECT tx_hash FROM transfer_attempts WHERE debit_id = $1 ORDER BY id DESC", 1,
                  p, &res, err);
  if (rc != LC_OK)
    return rc;
  n = PQntuples(res);
  for (i = 0; i < n; i++) {
    const char *h = PQgetvalue(res, i, 0);
    json_t *rcpt = NULL;
    rc = get_receipt(ctx, h, &rcpt, err);
    if (rc != LC_OK)
      goto out;
    int mined = json_is_object(rcpt);
    json_decref(rcpt);
    if (!mined)
      continue;
    if (strcmp(h, cur_hash) != 0) {
      lc_log_info("Event - debit_id=%s: earlier attempt %s was mined (not %s)", debit_id, h,
                  cur_hash);
      rc = switch_to_attempt(conn, debit_id, h, err);
    } else {
      rc = exec1(conn,
                 "UPDATE transfers SET status = 'submitted', sent_at = clock_timestamp(), "
                 "submitted_at = coalesce(submitted_at, now()), updated_at = now() "
                 "WHERE debit_id = $1 AND status = 'signed' AND tx_hash = $2",
                 debit_id, h, err);
    }
    *resolved = 1;
    goto out;
  }
  /* None of ours is mined although the nonce is used. Nodes can count a
   * nonce before they serve its receipt, so only a condition that persists
   * for the grace time means a foreign transaction took the nonce. */
  (void)age_s;
  PQclear(res);
  res = NULL;
  {
    const char *q[1] = {debit_id};
    int64_t seen = 0;
    rc = lc_db_exec(conn,
                    "UPDATE transfers SET nonce_used_seen_at = coalesce(nonce_used_seen_at, "
                    "clock_timestamp()) WHERE debit_id = $1 "
                    "RETURNING extract(epoch FROM clock_timestamp() - nonce_used_seen_at)::bigint",
                    1, q, &res, err);
    if (rc != LC_OK)
      goto out;
    if (PQntuples(res) == 1 && row_i64(res, 0, 0, &seen) == LC_OK &&
        seen >= (ctx->dropped_after_s > FOREIGN_NONCE_GRACE_S ? ctx->dropped_after_s
                                                                : FOREIGN_NONCE_GRACE_S)) {
      rc = renonce(ctx, conn, debit_id, cur_hash, err);
      *resolved = rc == LC_OK;
    }
  }
out:
  PQclear(res);
  return rc;
}

int chain_sender_broadcast(chain_ctx *ctx, int *sent, char err[LC_ERR_LEN])
{
  PGresult *cnt = NULL, *rows = NULL;
  PGconn *conn = NULL;
  char lim[24], ferr[LC_ERR_LEN] = "";
  const char *p[1] = {lim};
  int64_t in_flight = 0, waiting = 0;
  uint8_t tok_budget[32], eth_budget[32], sub_amount[32], gas[32], fee_now[32], tip_now[32];
  int rc, i, n = 0, m = 0, park = 0, pre_park = 0, funds_ok, in_tx = 0;
  rpc_batch_item *items = NULL;
  arr_buf subm;

  ab_init(&subm, 2);
  *sent = 0;
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(conn,
                  "SELECT count(*) FILTER (WHERE status = 'submitted'), "
                  "coalesce(sum(amount) FILTER (WHERE status = 'submitted'), 0), "
                  "count(*) FILTER (WHERE status = 'signed') FROM transfers "
                  "WHERE status IN ('signed', 'submitted')",
                  0, NULL, &cnt, err);
  if (rc != LC_OK)
    goto out;
  if (row_i64(cnt, 0, 0, &in_flight) != LC_OK || row_u256(cnt, 0, 1, sub_amount) != LC_OK ||
      row_i64(cnt, 0, 2, &waiting) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_DB, "broadcast - bad counts");
    goto out;
  }
  if (waiting == 0) {
    if (atomic_load(&ctx->parked) != 0)
      set_parked(ctx, 0, 0);
    goto out;
  }
  if (in_flight >= ctx->max_in_flight)
    goto out;

  /* Budgets: what the master holds minus what the submitted transfers will
   * spend (tokens: their amounts; ETH: gas_limit * max fee each). */
  funds_ok = funds_refresh(ctx, ferr) == LC_OK && chain_fees(ctx, tip_now, fee_now, ferr) == LC_OK;
  if (!funds_ok) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "broadcast - node unreachable: %.200s", ferr);
    goto out;
  }
  memcpy(tok_budget, ctx->funds_tok, 32);
  sub_clamp(tok_budget, sub_amount);
  memcpy(eth_budget, ctx->funds_eth, 32);
  {
    uint8_t per_tx[32], spent[32];
    u256_from_u64(ctx->gas_limit, gas);
    if (u256_mul_u64(fee_now, ctx->gas_limit, per_tx) == LC_OK &&
        u256_mul_u64(per_tx, (uint64_t)in_flight, spent) == LC_OK)
      sub_clamp(eth_budget, spent);
  }

  snprintf(lim, sizeof(lim), "%lld", (long long)(ctx->max_in_flight - in_flight));
  /* The pass's rows stay locked until its commit, so a second instance
   * skips them instead of sending the same transactions again. */
  rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    goto out;
  in_tx = 1;
  rc = lc_db_exec(conn,
                  "SELECT debit_id, raw_tx, tx_hash, nonce, amount, max_fee, "
                  "extract(epoch FROM now() - updated_at)::bigint FROM transfers "
                  "WHERE status = 'signed' AND next_attempt_at <= now() "
                  "ORDER BY from_address, nonce LIMIT $1::bigint FOR UPDATE SKIP LOCKED",
                  1, p, &rows, err);
  if (rc != LC_OK)
    goto out;
  n = PQntuples(rows);
  /* The payable prefix (nonce order) goes out in one JSON-RPC batch; the
   * answers are then handled row by row exactly as single sends were. Rows
   * after one that ends the pass stay "signed" even if the node took them:
   * the next pass sends the same raw transaction again ("already known"). */
  {
    uint8_t tb[32], eb[32];
    memcpy(tb, tok_budget, 32);
    memcpy(eb, eth_budget, 32);
    for (m = 0; m < n; m++) {
      uint8_t amount[32], row_fee[32], need_eth[32];
      if (row_u256(rows, m, 4, amount) != LC_OK || row_u256(rows, m, 5, row_fee) != LC_OK)
        break; /* reported by the loop below */
      if (u256_cmp(row_fee, (const uint8_t[32]){0}) == 0)
        memcpy(row_fee, fee_now, 32);
      if (u256_mul_u64(row_fee, ctx->gas_limit, need_eth) != LC_OK)
        memset(need_eth, 0xff, 32);
      if (u256_cmp(tb, amount) < 0)
        pre_park |= CHAIN_PARK_TOKEN;
      if (u256_cmp(eb, need_eth) < 0)
        pre_park |= CHAIN_PARK_ETH;
      if (pre_park != 0)
        break; /* nonce order: nothing after an unpayable transfer is sent */
      sub_clamp(tb, amount);
      sub_clamp(eb, need_eth);
    }
    items = lc_xcalloc((size_t)(m > 0 ? m : 1), sizeof(rpc_batch_item));
    for (i = 0; i < m; i++) {
      items[i].method = "eth_sendRawTransaction";
      items[i].params = json_pack("[s]", PQgetvalue(rows, i, 1));
    }
    if (m > 0 && rpc_batch(&ctx->rpc, items, (size_t)m, ferr) != LC_OK) {
      rc = lc_err_set(err, LC_ERR_UNAVAIL, "broadcast - node unreachable: %.200s", ferr);
      goto out;
    }
  }
  for (i = 0; i < n && !atomic_load(&lc_svc_stopping); i++) {
    const char *debit_id = PQgetvalue(rows, i, 0);
    const char *hash = PQgetvalue(rows, i, 2);
    const char *nonce_s = PQgetvalue(rows, i, 3);
    char rerr[LC_ERR_LEN] = "";
    uint8_t amount[32], row_fee[32], need_eth[32];
    chain_send_class cls;
    int64_t age = 0;
    int resolved = 0;

    if (row_u256(rows, i, 4, amount) != LC_OK || row_u256(rows, i, 5, row_fee) != LC_OK) {
      rc = lc_err_set(err, LC_ERR_DB, "broadcast - bad stored amount");
      goto out;
    }
    row_i64(rows, i, 6, &age);
    if (u256_cmp(row_fee, (const uint8_t[32]){0}) == 0)
      memcpy(row_fee, fee_now, 32);
    if (u256_mul_u64(row_fee, ctx->gas_limit, need_eth) != LC_OK)
      memset(need_eth, 0xff, 32);
    if (u256_cmp(tok_budget, amount) < 0)
      park |= CHAIN_PARK_TOKEN;
    if (u256_cmp(eth_budget, need_eth) < 0)
      park |= CHAIN_PARK_ETH;
    if (park != 0)
      break; /* nonce order: nothing after an unpayable transfer can be mined */

    if (i >= m) { /* not sent: unpayable (or a bad row, reported above) */
      park |= pre_park;
      break;
    }
    cls = CHAIN_SEND_OK;
    if (items[i].rc == LC_ERR_UNPROCESSABLE) {
      lc_strlcpy(rerr, items[i].err, sizeof(rerr));
      cls = chain_classify_send_error(rerr);
    } else if (items[i].rc != LC_OK) {
      rc = lc_err_set(err, LC_ERR_UNAVAIL, "broadcast - no answer from the node: %.200s",
                      items[i].err);
      goto out;
    }
    switch (cls) {
    case CHAIN_SEND_OK:
    case CHAIN_SEND_ALREADY_KNOWN: {
      const char *v[2] = {debit_id, hash};
      LC_FAILPOINT("chain.broadcast.before_mark"); /* marked in one batch below */
      ab_add(&subm, v);
      sub_clamp(tok_budget, amount);
      sub_clamp(eth_budget, need_eth);
      (*sent)++;
      lc_log_info("Event - transfer submitted debit_id=%s nonce=%s tx=%s", debit_id, nonce_s,
                  hash);
      break;
    }
    case CHAIN_SEND_NONCE_TOO_LOW:
      /* Which of our attempts took the nonce (or did someone else)? These
       * paths take their own locks: release the pass's first, and end it. */
      rc = flush_submitted(conn, &subm, err);
      if (rc == LC_OK)
        rc = lc_db_commit(conn, err);
      in_tx = 0;
      if (rc != LC_OK)
        goto out;
      n = i + 1;
      rc = resolve_used_nonce(ctx, conn, debit_id, hash, age, &resolved, err);
      if (rc == LC_ERR_UNAVAIL || rc == LC_ERR_TIMEOUT)
        goto out;
      if (rc == LC_OK && resolved)
        (*sent)++;
      if (rc != LC_OK || !resolved)
        rc = set_retry(conn, debit_id, rerr, err);
      if (rc != LC_OK)
        goto out;
      break;
    case CHAIN_SEND_UNDERPRICED:
    case CHAIN_SEND_FEE_TOO_LOW:
      /* Below the base fee, or another attempt of ours holds the nonce in
       * the pool: replace with raised fees (never the same raw again). */
      lc_log_warn("broadcast - debit_id=%s nonce=%s tx=%s: %s (%s); bumping fees", debit_id,
                  nonce_s, hash, chain_send_class_name(cls), rerr);
      chain_fees_invalidate(ctx);
      rc = flush_submitted(conn, &subm, err);
      if (rc == LC_OK)
        rc = lc_db_commit(conn, err);
      in_tx = 0;
      if (rc != LC_OK)
        goto out;
      n = i + 1;
      rc = chain_sender_bump(ctx, debit_id, hash, NULL, err);
      if (rc == LC_ERR_UNAVAIL || rc == LC_ERR_TIMEOUT)
        goto out;
      if (rc != LC_OK)
        rc = set_retry(conn, debit_id, rerr, err);
      else
        (*sent)++;
      if (rc != LC_OK)
        goto out;
      break;
    case CHAIN_SEND_NO_FUNDS:
      park |= CHAIN_PARK_ETH;
      ctx->funds_at_ms = 0;
      break;
    case CHAIN_SEND_REJECTED:
      lc_log_warn("broadcast - debit_id=%s nonce=%s tx=%s rejected: %s", debit_id, nonce_s, hash,
                  rerr);
      rc = set_retry(conn, debit_id, rerr, err);
      if (rc != LC_OK)
        goto out;
      break;
    }
    if (park != 0)
      break;
  }
  if (in_tx) {
    rc = flush_submitted(conn, &subm, err);
    if (rc == LC_OK)
      rc = lc_db_commit(conn, err);
    in_tx = 0;
  }
  set_parked(ctx, park, waiting - *sent);
out:
  if (in_tx) {
    /* Keep what was recorded: those transactions were accepted by the node. */
    char cerr[LC_ERR_LEN] = "";
    if (flush_submitted(conn, &subm, cerr) != LC_OK || lc_db_commit(conn, cerr) != LC_OK)
      lc_db_rollback(conn);
  }
  ab_free(&subm);
  if (items != NULL) {
    rpc_batch_free(items, (size_t)m);
    free(items);
  }
  PQclear(cnt);
  PQclear(rows);
  lc_db_release(ctx->db, conn);
  if (*sent > 0)
    chain_wake(ctx, CHAIN_WAKE_TRACK);
  return rc;
}

/* ------------------------------------------------------------- fee bump */

int chain_sender_bump(chain_ctx *ctx, const char *debit_id, const char *cur_hash,
                      char *new_hash, char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  PGconn *conn = NULL;
  uint8_t to[20], amount[32], old_tip[32], old_max[32], mkt_tip[32], mkt_max[32], tip[32],
      max_fee[32];
  char raw[CHAIN_RAW_TX_MAX], hash[67], ns[24], tip_d[80], max_d[80], rerr[LC_ERR_LEN] = "";
  const char *p[6];
  int64_t nonce = 0;
  chain_send_class cls;
  int rc, in_tx = 0;

  chain_fees_invalidate(ctx);
  rc = chain_fees(ctx, mkt_tip, mkt_max, err);
  if (rc != LC_OK)
    return rc == LC_ERR_UNPROCESSABLE ? LC_ERR_IO : rc;
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    goto out;
  in_tx = 1;
  p[0] = debit_id;
  p[1] = cur_hash;
  rc = lc_db_exec(conn,
                  "SELECT t.to_address, t.amount, t.nonce, "
                  "(SELECT max(tip) FROM transfer_attempts a WHERE a.debit_id = t.debit_id "
                  " AND a.nonce = t.nonce), "
                  "(SELECT max(max_fee) FROM transfer_attempts a WHERE a.debit_id = t.debit_id "
                  " AND a.nonce = t.nonce) "
                  "FROM transfers t WHERE t.debit_id = $1 AND t.tx_hash = $2 "
                  "AND t.status IN ('signed', 'submitted') FOR UPDATE OF t",
                  2, p, &res, err);
  if (rc != LC_OK)
    goto out;
  if (PQntuples(res) != 1) {
    rc = lc_err_set(err, LC_ERR_CONFLICT, "bump - transfer changed meanwhile");
    goto out;
  }
  if (eth_address_parse(PQgetvalue(res, 0, 0), to) != LC_OK ||
      u256_from_dec(PQgetvalue(res, 0, 1), amount) != LC_OK ||
      row_i64(res, 0, 2, &nonce) != LC_OK || row_u256(res, 0, 3, old_tip) != LC_OK ||
      row_u256(res, 0, 4, old_max) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_DB, "bump - bad stored row");
    goto out;
  }
  if (chain_fee_bump(old_tip, old_max, mkt_tip, mkt_max, ctx->fee_cap, tip, max_fee) != 0) {
    /* Restart the stuck timer so the cap warning is not repeated every pass. */
    exec1(conn, "UPDATE transfers SET sent_at = clock_timestamp() WHERE debit_id = $1", debit_id, NULL, err);
    lc_db_commit(conn, err);
    in_tx = 0;
    lc_log_warn("Event - debit_id=%s nonce=%lld stuck but CHAIN_MAX_FEE_GWEI forbids a 12.5%% "
                "raise; waiting for the base fee to drop",
                debit_id, (long long)nonce);
    lc_metric_add("chain_fee_cap_hit_total", 1);
    rc = lc_err_set(err, LC_ERR_FUNDS, "bump - fee cap reached");
    goto out;
  }
  rc = chain_sign_transfer(ctx, to, amount, nonce, tip, max_fee, raw, sizeof(raw), hash, err);
  if (rc != LC_OK)
    goto out;
  snprintf(ns, sizeof(ns), "%lld", (long long)nonce);
  u256_to_dec(tip, tip_d);
  u256_to_dec(max_fee, max_d);
  p[1] = ns;
  p[2] = hash;
  p[3] = raw;
  p[4] = tip_d;
  p[5] = max_d;
  /* Stored before broadcast; the stuck timer restarts now. */
  rc = lc_db_exec(conn,
                  "INSERT INTO transfer_attempts (debit_id, nonce, tx_hash, raw_tx, tip, max_fee, "
                  "reason) VALUES ($1, $2, $3, $4, $5, $6, 'fee_bump')",
                  6, p, NULL, err);
  if (rc == LC_OK)
    rc = exec1(conn, "UPDATE transfers SET sent_at = clock_timestamp(), updated_at = now() WHERE debit_id = $1",
               debit_id, NULL, err);
  if (rc == LC_OK)
    rc = lc_db_commit(conn, err);
  in_tx = 0;
  if (rc != LC_OK)
    goto out;

  rc = send_raw(ctx, raw, &cls, rerr);
  if (rc != LC_OK) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "bump - node unreachable: %.200s", rerr);
    goto out;
  }
  if (cls == CHAIN_SEND_OK || cls == CHAIN_SEND_ALREADY_KNOWN) {
    p[0] = debit_id;
    p[1] = cur_hash;
    p[2] = hash;
    rc = lc_db_exec(conn,
                    "UPDATE transfers t SET tx_hash = a.tx_hash, raw_tx = a.raw_tx, tip = a.tip, "
                    "max_fee = a.max_fee, status = 'submitted', "
                    "submitted_at = coalesce(t.submitted_at, now()), sent_at = clock_timestamp(), "
                    "replacements = t.replacements + 1, attempts = 0, last_error = NULL, "
                    "reported_status = CASE WHEN t.status = 'submitted' THEN NULL "
                    "ELSE t.reported_status END, updated_at = now() "
                    "FROM transfer_attempts a WHERE t.debit_id = $1 AND t.tx_hash = $2 "
                    "AND a.debit_id = t.debit_id AND a.tx_hash = $3",
                    3, p, NULL, err);
    if (rc == LC_OK)
      rc = exec1(conn, "UPDATE transfer_attempts SET outcome = 'sent' WHERE tx_hash = $1",
                 hash, NULL, err);
    if (rc != LC_OK)
      goto out;
    lc_log_info("Event - transfer replaced debit_id=%s nonce=%lld old_tx=%s new_tx=%s "
                "max_fee=%s tip=%s",
                debit_id, (long long)nonce, cur_hash, hash, max_d, tip_d);
    lc_metric_add("chain_tx_replaced_total", 1);
    if (new_hash != NULL)
      lc_strlcpy(new_hash, hash, 67);
    goto out;
  }
  {
    char why[ERR_KEEP + 1];
    lc_strlcpy(why, rerr, sizeof(why));
    exec1(conn, "UPDATE transfer_attempts SET outcome = 'rejected', error = $2 WHERE tx_hash = $1",
          hash, why, err);
  }
  lc_log_warn("bump - replacement %s of debit_id=%s refused: %s (%s); the next bump starts "
              "from these fees",
              hash, debit_id, chain_send_class_name(cls), rerr);
  rc = lc_err_set(err, LC_ERR_UNPROCESSABLE, "bump - replacement refused: %.200s", rerr);
out:
  if (in_tx)
    lc_db_rollback(conn);
  PQclear(res);
  lc_db_release(ctx->db, conn);
  return rc;
}

/* ---------------------------------------------------------------- track */

#define TRACK_UNMINED_MAX 8

/* Handles a submitted row without a receipt for its current hash: nonce
 * used by another attempt (or a foreign tx), dropped by the node, or stuck. */
static int track_unmined(chain_ctx *ctx, PGconn *conn, const char *debit_id, const char *hash,
                         const char *raw, int64_t nonce, int64_t age, int64_t *chain_nonce,
                         char err[LC_ERR_LEN])
{
  int known, resolved = 0, rc;

  if (*chain_nonce < 0) {
    rc = master_nonce(ctx, "latest", chain_nonce, err);
    if (rc != LC_OK)
      return rc;
  }
  if (*chain_nonce > nonce) {
    /* Our nonce is used on chain but not by this hash: an earlier attempt
     * (or, failing that, a foreign transaction). */
    return resolve_used_nonce(ctx, conn, debit_id, hash, age, &resolved, err);
  }
  known = tx_known(ctx, hash);
  if (known < 0)
    return lc_err_set(err, LC_ERR_UNAVAIL, "track - node unreachable");
  if (!known && age >= ctx->dropped_after_s) {
    /* Dropped from the pool (node restart, eviction, reorg): the same raw
     * transaction again. */
    chain_send_class cls;
    char rerr[LC_ERR_LEN] = "";
    rc = send_raw(ctx, raw, &cls, rerr);
    if (rc != LC_OK)
      return lc_err_set(err, LC_ERR_UNAVAIL, "track - node unreachable: %.200s", rerr);
    lc_log_warn("Event - transfer dropped by the node, re-broadcast unchanged debit_id=%s "
                "nonce=%lld tx=%s: %s",
                debit_id, (long long)nonce, hash, cls == CHAIN_SEND_OK ? "accepted" : rerr);
    lc_metric_add("chain_tx_rebroadcast_total", 1);
    if (cls == CHAIN_SEND_FEE_TOO_LOW || cls == CHAIN_SEND_UNDERPRICED) {
      rc = chain_sender_bump(ctx, debit_id, hash, NULL, err);
      if (rc == LC_ERR_UNAVAIL || rc == LC_ERR_TIMEOUT)
        return rc;
    }
    return exec1(conn, "UPDATE transfers SET sent_at = clock_timestamp() WHERE debit_id = $1 AND tx_hash = $2",
                 debit_id, hash, err);
  }
  if (known && ctx->stuck_after_s > 0 && age >= ctx->stuck_after_s) {
    lc_log_warn("Event - transfer stuck for %lld s debit_id=%s nonce=%lld tx=%s; replacing with "
                "raised fees",
                (long long)age, debit_id, (long long)nonce, hash);
    rc = chain_sender_bump(ctx, debit_id, hash, NULL, err);
    if (rc == LC_ERR_UNAVAIL || rc == LC_ERR_TIMEOUT)
      return rc;
  }
  return LC_OK;
}

/* Rollback check: at most every ROLLBACK_CHECK_MS per process. */
#define ROLLBACK_CHECK_MS 1000
/* Receipts looked up per check (one JSON-RPC batch); a deeper rollback is
 * undone over several checks, lowest nonces first. */
#define ROLLBACK_BATCH "1000"
/* Recorded blocks re-checked by hash: the REORG_BLOCKS highest recorded
 * blocks at most REORG_WINDOW below the head (one receipt each). */
#define REORG_BLOCKS "64"
#define REORG_WINDOW 64
static atomic_llong rollback_last_ms;

/* Puts the final transfers pairs (debit_id, tx_hash) back to 'submitted' in
 * one statement: sent_at kept, so the dropped-transaction logic re-broadcasts
 * at once when the node lost it; reported_status 'submitted' so the
 * confirmation is published again, with its new block; mined attempts back
 * to sent. The track pass then confirms each again from its receipt (same
 * stored raw transaction, same hash). why names the evidence in the log. */
static int revert_final(chain_ctx *ctx, PGconn *conn, arr_buf *pairs, const char *why,
                        int *reverted, char err[LC_ERR_LEN])
{
  PGresult *ures = NULL;
  const char *q[2] = {pairs->buf[0], pairs->buf[1]};
  int rc, i;

  *reverted = 0;
  if (pairs->n == 0)
    return LC_OK;
  rc = lc_db_exec(conn,
                  "WITH v AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS v(debit_id, tx_hash)), "
                  "u AS (UPDATE transfers t SET status = 'submitted', block_number = NULL, "
                  "block_hash = NULL, confirmed_at = NULL, reported_status = 'submitted', "
                  "nonce_used_seen_at = NULL, updated_at = now() FROM v "
                  "WHERE t.debit_id = v.debit_id AND t.tx_hash = v.tx_hash "
                  "AND t.status IN ('confirmed', 'failed') RETURNING t.debit_id, t.tx_hash, t.nonce), "
                  "a AS (UPDATE transfer_attempts a SET outcome = 'sent' FROM u "
                  "WHERE a.debit_id = u.debit_id AND a.tx_hash = u.tx_hash AND a.outcome = 'mined') "
                  "SELECT debit_id, tx_hash, nonce FROM u ORDER BY nonce",
                  2, q, &ures, err);
  if (rc != LC_OK)
    return rc;
  *reverted = PQntuples(ures);
  if (*reverted > 0) {
    lc_log_error("Event - chain rollback detected: master %s, %s; %d transfer(s) back to "
                 "submitted to be confirmed again (nonces %s..%s)",
                 ctx->master_str, why, *reverted, PQgetvalue(ures, 0, 2),
                 PQgetvalue(ures, *reverted - 1, 2));
    for (i = 0; i < *reverted; i++)
      lc_log_warn("Event - transfer no longer final, back to submitted debit_id=%s nonce=%s tx=%s",
                  PQgetvalue(ures, i, 0), PQgetvalue(ures, i, 2), PQgetvalue(ures, i, 1));
    lc_metric_add("chain_rollbacks_total", 1);
    lc_metric_add("chain_rollback_transfers_total", (uint64_t)*reverted);
  }
  PQclear(ures);
  return LC_OK;
}

/* Receipts of the tx hashes in column col of every row of res, in one
 * JSON-RPC batch; *out (new, n = PQntuples(res) items, set also on error:
 * free with rpc_batch_free + free) has a result (object or JSON null) for
 * every row on LC_OK. */
static int receipts_batch(chain_ctx *ctx, const PGresult *res, int col, rpc_batch_item **out,
                          char err[LC_ERR_LEN])
{
  int n = PQntuples(res), i, rc;
  rpc_batch_item *items = lc_xcalloc((size_t)n, sizeof(rpc_batch_item));

  *out = items;
  for (i = 0; i < n; i++) {
    items[i].method = "eth_getTransactionReceipt";
    items[i].params = json_pack("[s]", PQgetvalue(res, i, col));
  }
  rc = rpc_batch(&ctx->rpc, items, (size_t)n, err);
  if (rc != LC_OK)
    return rc;
  for (i = 0; i < n; i++)
    if (items[i].rc != LC_OK)
      return lc_err_set(err, items[i].rc == LC_ERR_UNPROCESSABLE ? LC_ERR_IO : items[i].rc,
                        "rollback check - eth_getTransactionReceipt: %.200s", items[i].err);
  return LC_OK;
}

/* Nonce evidence: the node lost blocks (restart from an older state, a reorg
 * deeper than CHAIN_CONFIRMATIONS): the master's on-chain nonce is below the
 * highest final nonce + 1. Every final transfer at or above that nonce
 * without a receipt is reverted. */
static int rollback_nonce(chain_ctx *ctx, PGconn *conn, int *reverted, char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  rpc_batch_item *items = NULL;
  arr_buf back;
  int64_t top = -1, chain_nonce = 0;
  char cn[24], why[128];
  const char *p[2] = {ctx->master_str, cn};
  int rc, i, n = 0;

  *reverted = 0;
  ab_init(&back, 2);
  rc = lc_db_exec(conn,
                  "SELECT max(nonce) FROM transfers WHERE from_address = $1 "
                  "AND status IN ('confirmed', 'failed')",
                  1, p, &res, err);
  if (rc != LC_OK)
    goto out;
  if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) || row_i64(res, 0, 0, &top) != LC_OK)
    goto out; /* nothing final yet */
  PQclear(res);
  res = NULL;
  rc = master_nonce(ctx, "latest", &chain_nonce, err);
  if (rc != LC_OK || chain_nonce > top)
    goto out;
  snprintf(cn, sizeof(cn), "%lld", (long long)chain_nonce);
  rc = lc_db_exec(conn,
                  "SELECT debit_id, tx_hash FROM transfers WHERE from_address = $1 "
                  "AND status IN ('confirmed', 'failed') AND nonce >= $2::bigint ORDER BY nonce "
                  "LIMIT " ROLLBACK_BATCH,
                  2, p, &res, err);
  if (rc != LC_OK)
    goto out;
  n = PQntuples(res);
  if (n == 0)
    goto out;
  rc = receipts_batch(ctx, res, 1, &items, err);
  if (rc != LC_OK)
    goto out;
  for (i = 0; i < n; i++) {
    const char *v[2] = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};
    if (!json_is_object(items[i].result))
      ab_add(&back, v);
  }
  snprintf(why, sizeof(why), "on-chain nonce %lld, highest final nonce %lld, no receipts",
           (long long)chain_nonce, (long long)top);
  rc = revert_final(ctx, conn, &back, why, reverted, err);
out:
  if (items != NULL) {
    rpc_batch_free(items, (size_t)n);
    free(items);
  }
  ab_free(&back);
  PQclear(res);
  return rc;
}

/* Block-hash evidence: a reorg, or a node that re-mined reverted
 * transactions, moves a transfer to another block while the master's nonce
 * never falls behind. For each of the highest recorded blocks near the head,
 * one transfer's receipt is compared with the recorded (number, hash): a
 * block hash commits to its transactions, so one match vouches for every
 * transfer recorded in that block. A recorded block above the head, a
 * missing receipt or another block reverts every transfer of that block. */
static int rollback_blocks(chain_ctx *ctx, PGconn *conn, int *reverted, char err[LC_ERR_LEN])
{
  PGresult *res = NULL, *tres = NULL;
  rpc_batch_item *items = NULL;
  json_t *bn = NULL;
  arr_buf gone, back;
  uint64_t head = 0;
  char lo[24], why[160] = "";
  const char *p[2] = {ctx->master_str, lo};
  int rc, i, n = 0;

  *reverted = 0;
  ab_init(&gone, 2);
  ab_init(&back, 2);
  rc = rpc_call(&ctx->rpc, "eth_blockNumber", NULL, &bn, NULL, err);
  if (rc != LC_OK)
    goto out;
  if (rpc_quantity_u64(bn, &head) != LC_OK || head > (uint64_t)INT64_MAX) {
    rc = lc_err_set(err, LC_ERR_IO, "rollback check - bad eth_blockNumber");
    goto out;
  }
  snprintf(lo, sizeof(lo), "%llu",
           (unsigned long long)(head > REORG_WINDOW ? head - REORG_WINDOW : 0));
  rc = lc_db_exec_prepared(conn, "chain_reorg_blocks",
                           "SELECT DISTINCT ON (block_number, block_hash) block_number, "
                           "block_hash, tx_hash FROM transfers WHERE from_address = $1 "
                           "AND block_hash IS NOT NULL AND block_number >= $2::bigint "
                           "AND status IN ('confirmed', 'failed') "
                           "ORDER BY block_number DESC, block_hash, tx_hash LIMIT " REORG_BLOCKS,
                           2, p, &res, err);
  if (rc != LC_OK)
    goto out;
  n = PQntuples(res);
  if (n == 0)
    goto out;
  rc = receipts_batch(ctx, res, 2, &items, err);
  if (rc != LC_OK)
    goto out;
  for (i = 0; i < n; i++) {
    const char *v[2] = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};
    const char *h;
    uint64_t rb = 0;
    int64_t recorded = 0;

    row_i64(res, i, 0, &recorded);
    if (json_is_object(items[i].result)) {
      h = json_string_value(json_object_get(items[i].result, "blockHash"));
      if (rpc_quantity_u64(json_object_get(items[i].result, "blockNumber"), &rb) != LC_OK ||
          h == NULL)
        continue; /* pending receipt shape: next check */
      if (rb == (uint64_t)recorded && strcasecmp(h, v[1]) == 0)
        continue;
    }
    if (why[0] == '\0')
      snprintf(why, sizeof(why), "recorded block %s (%.18s...) %s", v[0], v[1],
               (uint64_t)recorded > head ? "is above the head"
               : json_is_object(items[i].result) ? "no longer holds its transfers"
                                                  : "lost its transfers");
    ab_add(&gone, v);
  }
  if (gone.n == 0)
    goto out;
  {
    const char *q[3] = {ctx->master_str, gone.buf[0], gone.buf[1]};
    rc = lc_db_exec(conn,
                    "SELECT t.debit_id, t.tx_hash FROM transfers t "
                    "JOIN unnest($2::bigint[], $3::text[]) AS b(n, h) "
                    "ON t.block_number = b.n AND t.block_hash = b.h "
                    "WHERE t.from_address = $1 AND t.status IN ('confirmed', 'failed')",
                    3, q, &tres, err);
    if (rc != LC_OK)
      goto out;
  }
  for (i = 0; i < PQntuples(tres); i++) {
    const char *v[2] = {PQgetvalue(tres, i, 0), PQgetvalue(tres, i, 1)};
    ab_add(&back, v);
  }
  rc = revert_final(ctx, conn, &back, why, reverted, err);
out:
  if (items != NULL) {
    rpc_batch_free(items, (size_t)n);
    free(items);
  }
  ab_free(&gone);
  ab_free(&back);
  json_decref(bn);
  PQclear(tres);
  PQclear(res);
  return rc;
}

/* Both rollback checks, at most every ROLLBACK_CHECK_MS per process.
 * *reverted = transfers put back to submitted. */
static int rollback_check(chain_ctx *ctx, PGconn *conn, int *reverted, char err[LC_ERR_LEN])
{
  int64_t now = lc_mono_ms();
  long long last = atomic_load(&rollback_last_ms);
  int rc, more = 0;

  *reverted = 0;
  if (last != 0 && now - last < ROLLBACK_CHECK_MS)
    return LC_OK;
  if (!atomic_compare_exchange_strong(&rollback_last_ms, &last, (long long)now))
    return LC_OK; /* another thread checks now */
  rc = rollback_nonce(ctx, conn, reverted, err);
  if (rc != LC_OK)
    return rc;
  rc = rollback_blocks(ctx, conn, &more, err);
  *reverted += more;
  return rc;
}

int chain_sender_track(chain_ctx *ctx, int *done, char err[LC_ERR_LEN])
{
  PGresult *rows = NULL;
  PGconn *conn = NULL;
  json_t *bn = NULL;
  uint64_t latest = 0;
  int64_t chain_nonce = -1;
  char lim[24];
  const char *p[1] = {lim};
  int *later = NULL;
  rpc_batch_item *items = NULL;
  arr_buf fin;
  int *want = NULL;
  int rc, i, n = 0, nitems = 0, nlater = 0, in_tx = 0, slow = 0;
  int64_t young = ctx->stuck_after_s > 0 && ctx->stuck_after_s < ctx->dropped_after_s
                      ? ctx->stuck_after_s
                      : ctx->dropped_after_s;

  *done = 0;
  ab_init(&fin, 5);
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  {
    int reverted = 0;
    rc = rollback_check(ctx, conn, &reverted, err);
    if (rc != LC_OK)
      goto out;
    if (reverted > 0)
      chain_wake(ctx, CHAIN_WAKE_BROADCAST);
  }
  snprintf(lim, sizeof(lim), "%d", ctx->max_in_flight * 2);
  /* Rows locked for the pass: a second instance tracks other rows. */
  rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    goto out;
  in_tx = 1;
  rc = lc_db_exec(conn,
                  "SELECT debit_id, tx_hash, nonce, raw_tx, "
                  "extract(epoch FROM now() - coalesce(sent_at, submitted_at, updated_at))::bigint, "
                  "from_address FROM transfers WHERE status = 'submitted' "
                  "ORDER BY from_address, nonce LIMIT $1::bigint FOR UPDATE SKIP LOCKED",
                  1, p, &rows, err);
  if (rc != LC_OK)
    goto out;
  n = PQntuples(rows);
  atomic_store(&ctx->track_open, n);
  if (n == 0)
    goto out;
  later = lc_xcalloc((size_t)n, sizeof(int));
  rc = rpc_call(&ctx->rpc, "eth_blockNumber", NULL, &bn, NULL, err);
  if (rc != LC_OK)
    goto out;
  if (rpc_quantity_u64(bn, &latest) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_IO, "track - bad eth_blockNumber");
    goto out;
  }
  atomic_store(&ctx->last_block, (unsigned long long)latest);
  /* Receipts can exist only for nonces the chain has used: one
   * eth_getTransactionCount, then the receipts of those rows in one JSON-RPC
   * batch (one HTTP request). The others are unmined for sure. */
  rc = master_nonce(ctx, "latest", &chain_nonce, err);
  if (rc != LC_OK)
    goto out;
  want = lc_xcalloc((size_t)n, sizeof(int));
  items = lc_xcalloc((size_t)n, sizeof(rpc_batch_item));
  for (i = 0; i < n; i++) {
    int64_t nonce = 0;
    if (strcmp(PQgetvalue(rows, i, 5), ctx->master_str) == 0 &&
        row_i64(rows, i, 2, &nonce) == LC_OK && nonce >= chain_nonce) {
      later[nlater++] = i;
      continue;
    }
    items[nitems].method = "eth_getTransactionReceipt";
    items[nitems].params = json_pack("[s]", PQgetvalue(rows, i, 1));
    want[nitems++] = i;
  }
  rc = nitems > 0 ? rpc_batch(&ctx->rpc, items, (size_t)nitems, err) : LC_OK;
  if (rc != LC_OK)
    goto out;
  for (int k = 0; k < nitems && !atomic_load(&lc_svc_stopping); k++) {
    i = want[k];
    const char *debit_id = PQgetvalue(rows, i, 0);
    const char *hash = PQgetvalue(rows, i, 1);
    json_t *rcpt = items[k].result;
    uint64_t block = 0, st = 0;
    char blk[24], bhash[67];

    if (items[k].rc != LC_OK) {
      rc = lc_err_set(err, items[k].rc == LC_ERR_UNPROCESSABLE ? LC_ERR_IO : items[k].rc,
                      "eth_getTransactionReceipt: %.200s", items[k].err);
      goto out;
    }
    if (!json_is_object(rcpt)) {
      later[nlater++] = i;
      continue;
    }
    if (rpc_quantity_u64(json_object_get(rcpt, "blockNumber"), &block) != LC_OK ||
        rpc_quantity_u64(json_object_get(rcpt, "status"), &st) != LC_OK ||
        block_hash_of(rcpt, bhash) != LC_OK)
      continue; /* pending receipt shape: try next pass */
    if (latest < block ||
        latest - block + 1 < (uint64_t)(ctx->confirmations > 0 ? ctx->confirmations : 1))
      continue;
    snprintf(blk, sizeof(blk), "%llu", (unsigned long long)block);
    {
      const char *v[5] = {debit_id, hash, st == 1 ? "confirmed" : "failed", blk, bhash};
      LC_FAILPOINT("chain.receipt.before_mark"); /* marked in one batch below */
      ab_add(&fin, v);
    }
  }
  if (fin.n > 0) {
    /* Every final row in one statement (confirmed/failed with the mined attempt; the others superseded). */
    PGresult *fres = NULL;
    const char *fp[5] = {fin.buf[0], fin.buf[1], fin.buf[2], fin.buf[3], fin.buf[4]};
    rc = lc_db_exec(conn,
                    "WITH v AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], "
                    "$4::bigint[], $5::text[]) AS v(debit_id, tx_hash, st, blk, bh)), "
                    "u AS (UPDATE transfers t SET status = v.st, block_number = v.blk, "
                    "block_hash = v.bh, "
                    "confirmed_at = now(), updated_at = now(), last_error = NULL FROM v "
                    "WHERE t.debit_id = v.debit_id AND t.tx_hash = v.tx_hash "
                    "AND t.status = 'submitted' RETURNING t.debit_id, t.tx_hash, t.status, "
                    "t.block_number), "
                    "a AS (UPDATE transfer_attempts a SET outcome = CASE WHEN a.tx_hash = u.tx_hash "
                    "THEN 'mined' ELSE 'superseded' END FROM u WHERE a.debit_id = u.debit_id "
                    "AND (a.tx_hash = u.tx_hash OR a.outcome IN ('signed', 'sent'))) "
                    "SELECT debit_id, tx_hash, status, block_number FROM u",
                    5, fp, &fres, err);
    if (rc != LC_OK) {
      PQclear(fres);
      goto out;
    }
    for (i = 0; i < PQntuples(fres); i++) {
      (*done)++;
      if (strcmp(PQgetvalue(fres, i, 2), "confirmed") == 0)
        lc_log_info("Event - transfer confirmed debit_id=%s tx=%s block=%s",
                    PQgetvalue(fres, i, 0), PQgetvalue(fres, i, 1), PQgetvalue(fres, i, 3));
      else
        lc_log_error("Event - transfer FAILED on chain debit_id=%s tx=%s block=%s",
                     PQgetvalue(fres, i, 0), PQgetvalue(fres, i, 1), PQgetvalue(fres, i, 3));
    }
    PQclear(fres);
  }
  rc = lc_db_commit(conn, err);
  in_tx = 0;
  if (rc != LC_OK)
    goto out;
  atomic_store(&ctx->track_unmined, nlater);
  /* Unmined rows: their handling takes its own locks, after the commit.
   * The chain's nonce is read again (blocks were mined meanwhile). */
  chain_nonce = -1;
  for (i = 0; i < nlater && !atomic_load(&lc_svc_stopping); i++) {
    int r = later[i];
    int64_t age = 0, nonce = 0;
    row_i64(rows, r, 4, &age);
    row_i64(rows, r, 2, &nonce);
    if (chain_nonce < 0) {
      rc = master_nonce(ctx, "latest", &chain_nonce, err);
      if (rc != LC_OK)
        goto out;
    }
    /* Too young to be dropped or stuck: only a used nonce (another attempt
     * mined) needs handling now. Old ones (dropped / stuck: a node round
     * trip or a fee bump each) at most TRACK_UNMINED_MAX per pass, lowest
     * nonces first: after a node stall, unblocking the lowest nonce lets the
     * rest be mined, and the next passes see them mined. */
    if (chain_nonce <= nonce && (age < young || slow++ >= TRACK_UNMINED_MAX))
      continue;
    rc = track_unmined(ctx, conn, PQgetvalue(rows, r, 0), PQgetvalue(rows, r, 1),
                       PQgetvalue(rows, r, 3), nonce, age, &chain_nonce, err);
    if (rc == LC_ERR_UNAVAIL || rc == LC_ERR_TIMEOUT || rc == LC_ERR_DB)
      goto out;
    rc = LC_OK;
  }
out:
  if (in_tx) {
    char cerr[LC_ERR_LEN] = "";
    if (lc_db_commit(conn, cerr) != LC_OK)
      lc_db_rollback(conn);
  }
  if (items != NULL) {
    rpc_batch_free(items, (size_t)nitems);
    free(items);
  }
  free(want);
  ab_free(&fin);
  free(later);
  json_decref(bn);
  PQclear(rows);
  lc_db_release(ctx->db, conn);
  if (*done > 0) {
    chain_wake(ctx, CHAIN_WAKE_REPORT);
    chain_wake(ctx, CHAIN_WAKE_BROADCAST); /* the window has room again */
  }
  return rc;
}

/* --------------------------------------------------------------- report */

void chain_event_msg_id(const char *debit_id, const char *status, const char *tx_hash,
                        char out[37])
{
  uint8_t h[32];
  char in[200], hex[33];
  int n = snprintf(in, sizeof(in), "chain.transfer:%s:%s:%s", debit_id, status,
                   tx_hash != NULL ? tx_hash : "");

  lc_sha256(in, (size_t)(n > 0 ? n : 0), h);
  h[6] = (uint8_t)((h[6] & 0x0f) | 0x50); /* name-based version 5 layout */
  h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
  lc_hex_encode(h, 16, hex);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* Builds the envelope text of one row (new; free()). */
static char *event_text(const PGresult *rows, int i, char routing_key[64], char id[37])
{
  const char *debit_id = PQgetvalue(rows, i, 0);
  const char *status = PQgetvalue(rows, i, 5);
  const char *rid = PQgetvalue(rows, i, 6);
  int64_t nonce = 0, block = 0;
  json_t *body;
  char *text;

  if (row_i64(rows, i, 2, &nonce) != LC_OK)
    return NULL;
  body = json_pack("{s:s, s:s, s:I, s:s, s:s}", "debit_id", debit_id, "tx_hash",
                   PQgetvalue(rows, i, 1), "nonce", (json_int_t)nonce, "to_address",
                   PQgetvalue(rows, i, 3), "status", status);
  if (body == NULL)
    return NULL;
  if (row_i64(rows, i, 4, &block) == LC_OK)
    json_object_set_new(body, "block_number", json_integer((json_int_t)block));
  else
    json_object_set_new(body, "block_number", json_null());
  snprintf(routing_key, 64, "chain.transfer.%s", status);
  chain_event_msg_id(debit_id, status, PQgetvalue(rows, i, 1), id);
  text = lc_msg_build(routing_key, id, rid[0] != '\0' ? rid : NULL, body, NULL);
  json_decref(body);
  return text;
}

int chain_sender_report(chain_ctx *ctx, lc_amqp_pub **pub, int *published,
                        char err[LC_ERR_LEN])
{
  arr_buf rep;
  PGresult *rows = NULL;
  PGconn *conn = NULL;
  int rc, i, n;

  *published = 0;
  ab_init(&rep, 3);
  if (ctx->amqp_url == NULL)
    return LC_OK;
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(conn,
                  "SELECT debit_id, tx_hash, nonce, to_address, block_number, status, "
                  "request_id FROM transfers "
                  "WHERE reported_status IS DISTINCT FROM status AND status <> 'signed' "
                  "ORDER BY updated_at LIMIT 100",
                  0, NULL, &rows, err);
  if (rc != LC_OK)
    goto out;
  n = PQntuples(rows);
  if (n > 0 && *pub == NULL) {
    rc = lc_amqp_pub_open(ctx->amqp_url, pub, err);
    if (rc != LC_OK) {
      *pub = NULL;
      goto out;
    }
  }
  if (n > 0) {
    /* The whole pass in flight at once (one wait for the broker's confirms);
     * only confirmed events are marked reported below. */
    lc_amqp_msg *msgs = lc_xcalloc((size_t)n, sizeof(*msgs));
    char (*rks)[64] = lc_xcalloc((size_t)n, sizeof(*rks));
    char (*ids)[37] = lc_xcalloc((size_t)n, sizeof(*ids));
    int built = 0;

    for (i = 0; i < n; i++, built++) {
      char *text = event_text(rows, i, rks[i], ids[i]);
      if (text == NULL) {
        rc = lc_err_set(err, LC_ERR, "report - cannot build event");
        break;
      }
      msgs[i] = (lc_amqp_msg){rks[i], ids[i], text, strlen(text), LC_ERR_TIMEOUT};
    }
    if (rc == LC_OK && !atomic_load(&lc_svc_stopping)) {
      rc = lc_amqp_publish_batch(*pub, ctx->exchange, msgs, (size_t)n, PUBLISH_TIMEOUT_MS, err);
      LC_FAILPOINT("chain.report.after_publish"); /* reported_status set in one batch below */
      for (i = 0; i < n; i++) {
        const char *p[3] = {PQgetvalue(rows, i, 0), PQgetvalue(rows, i, 5),
                            PQgetvalue(rows, i, 1)};
        if (msgs[i].result != LC_OK)
          continue;
        ab_add(&rep, p);
        (*published)++;
      }
      if (rc != LC_OK && rc != LC_ERR_NOTFOUND) {
        lc_amqp_pub_close(*pub);
        *pub = NULL;
      }
    }
    for (i = 0; i < built; i++)
      free((char *)msgs[i].body);
    free(msgs);
    free(rks);
    free(ids);
  }
out:
  if (rep.n > 0) {
    /* One statement for the pass; only rows that did not change meanwhile
     * (a replacement re-publishes). Kept also after a publish error. */
    const char *q[3] = {rep.buf[0], rep.buf[1], rep.buf[2]};
    char uerr[LC_ERR_LEN] = "";
    int urc = lc_db_exec(conn,
                         "UPDATE transfers t SET reported_status = v.st FROM unnest($1::uuid[], "
                         "$2::text[], $3::text[]) AS v(debit_id, st, tx_hash) "
                         "WHERE t.debit_id = v.debit_id AND t.status = v.st AND t.tx_hash = v.tx_hash",
                         3, q, NULL, uerr);
    if (urc != LC_OK && rc == LC_OK)
      rc = lc_err_set(err, urc, "%s", uerr);
  }
  ab_free(&rep);
  PQclear(rows);
  if (conn != NULL)
    lc_db_release(ctx->db, conn);
  return rc;
}

/* ------------------------------------------------------------------ loop */

static void sleep_ms(int64_t ms)
{
  while (ms > 0 && !atomic_load(&lc_svc_stopping)) {
    int64_t slice = ms > 100 ? 100 : ms;
    struct timespec ts = {0, (long)slice * 1000000L};
    nanosleep(&ts, NULL);
    ms -= slice;
  }
}

/* Logs a failing step once per change of its error text. */
static void note(const char *step, int rc, const char *err, char last[LC_ERR_LEN])
{
  if (rc == LC_OK) {
    if (last[0] != '\0')
      lc_log_info("sender - %s recovered", step);
    last[0] = '\0';
    return;
  }
  if (strcmp(last, err) != 0)
    lc_log_warn("sender - %s: %s (%s)", step, lc_err_name(rc), err);
  lc_strlcpy(last, err, LC_ERR_LEN);
}

typedef enum { STEP_BROADCAST, STEP_TRACK, STEP_REPORT } sender_step;

typedef struct {
  chain_ctx *ctx;
  sender_step step;
} step_arg;

/* 1 when the node's latest block differs from the one the last track pass
 * saw (or the node cannot tell): a pass is worth it. */
static int new_block(chain_ctx *ctx)
{
  char err[LC_ERR_LEN] = "";
  json_t *bn = NULL;
  uint64_t latest = 0;
  int changed = 1;
  if (rpc_call(&ctx->rpc, "eth_blockNumber", NULL, &bn, NULL, err) == LC_OK &&
      rpc_quantity_u64(bn, &latest) == LC_OK)
    changed = latest != (uint64_t)atomic_load(&ctx->last_block);
  json_decref(bn);
  return changed;
}

/* Dev nodes (anvil) only. An automining anvil mines one block per arriving
 * transaction (a pipelined burst becomes hundreds of one-transaction blocks)
 * and can leave ready transactions unmined until the next one arrives
 * (foundry-rs/foundry#10122), so the tail of a burst waits for the stuck
 * timer. With CHAIN_MINE_NUDGE_MS set and sent transfers still unmined after
 * a track pass, the track stage asks at most every CHAIN_MINE_NUDGE_MS
 * whether the node automines (anvil_getAutomine) and if so mines one block
 * with everything pending (evm_mine). A node without these methods disables
 * the nudge for good; with automine off (tests) nothing is mined. */
#define NUDGE_FRESH_MS 250

static void mine_nudge(chain_ctx *ctx)
{
  static atomic_int unsupported;
  static atomic_llong last_nudge; /* shared by the stages: one nudge per period */
  char err[LC_ERR_LEN] = "";
  json_t *res = NULL;
  int64_t now = lc_mono_ms();
  long long last = atomic_load(&last_nudge);

  if (ctx->mine_nudge_ms <= 0 || atomic_load(&unsupported) || now - last < ctx->mine_nudge_ms ||
      !atomic_compare_exchange_strong(&last_nudge, &last, (long long)now))
    return;
  if (rpc_call(&ctx->rpc, "anvil_getAutomine", NULL, &res, NULL, err) != LC_OK) {
    if (atomic_exchange(&unsupported, 1) == 0)
      lc_log_info("sender - the node does not answer anvil_getAutomine (%s): mine nudge off", err);
    json_decref(res);
    return;
  }
  /* Only on a fresh answer: a stage descheduled between the two calls could
   * otherwise mine right after someone switched automine off. 250 ms: under
   * W2 + W4 load the node answers in 20-200 ms, and a 20 ms bound skipped
   * nearly every nudge (2 in 10 s), leaving the pipelined burst to
   * one-transaction automined blocks. Tests switch automine off only while
   * nothing is in flight, when no nudge runs. */
  if (json_is_true(res) && lc_mono_ms() - now <= NUDGE_FRESH_MS) {
    json_decref(res);
    res = NULL;
    if (rpc_call(&ctx->rpc, "evm_mine", NULL, &res, NULL, err) == LC_OK)
      lc_metric_add("chain_mine_nudges_total", 1);
  }
  json_decref(res);
}

/* One stage loop. A stage runs when another stage wakes it (a transfer was
 * stored -> broadcast; sent -> track; final -> report and broadcast), at
 * once again while it finds work, and at the latest every poll_ms; with
 * exponential backoff up to 5 s while a dependency is down. While transfers
 * are in flight, track also looks at eth_blockNumber every TRACK_TICK_MS and
 * runs as soon as a new block appears (receipts exist only then). */
#define TRACK_TICK_MS 10

static void *step_main(void *arg)
{
  step_arg *sa = arg;
  chain_ctx *ctx = sa->ctx;
  static const char *const names[] = {"broadcast", "track", "report"};
  static const int wake_of[] = {CHAIN_WAKE_BROADCAST, CHAIN_WAKE_TRACK, CHAIN_WAKE_REPORT};
  const char *name = names[sa->step];
  lc_amqp_pub *pub = NULL;
  char err[LC_ERR_LEN], last[LC_ERR_LEN] = "";
  int64_t backoff = 0, last_pass = 0;
  unsigned seen = 0;
  int woke = 0;

  while (!atomic_load(&lc_svc_stopping)) {
    int n = 0, rc;
    int64_t t0 = lc_mono_ms();

    if (sa->step == STEP_TRACK && !woke && backoff == 0 && last_pass != 0 &&
        t0 - last_pass < ctx->poll_ms) {
      if (atomic_load(&ctx->track_open) == 0) {
        woke = chain_wait(ctx, wake_of[sa->step], &seen, ctx->poll_ms - (t0 - last_pass));
        continue;
      }
      if (atomic_load(&ctx->track_unmined) > 0)
        mine_nudge(ctx);
      if (!new_block(ctx)) {
        woke = chain_wait(ctx, wake_of[sa->step], &seen, TRACK_TICK_MS);
        continue;
      }
    }
    woke = 0;
    last_pass = t0;
    err[0] = '\0';
    if (sa->step == STEP_BROADCAST) {
      rc = chain_sender_broadcast(ctx, &n, err);
      if (n > 0)
        lc_metric_add("chain_tx_submitted_total", (uint64_t)n);
    } else if (sa->step == STEP_TRACK) {
      rc = chain_sender_track(ctx, &n, err);
      if (n > 0)
        lc_metric_add("chain_tx_final_total", (uint64_t)n);
      /* Also after a pass, not only while idle: under a steady stream of
       * sends the broadcast stage wakes track again and again, the idle
       * branch above never runs, and a stalled automine left everything
       * sent in the last ~1 s unmined (one block of 300 transfers per
       * second instead of one every CHAIN_MINE_NUDGE_MS). */
      if (rc == LC_OK && atomic_load(&ctx->track_unmined) > 0)
        mine_nudge(ctx);
    } else {
      rc = chain_sender_report(ctx, &pub, &n, err);
      if (n > 0)
        lc_metric_add("chain_events_published_total", (uint64_t)n);
    }
    note(name, rc, err, last);
    if (rc != LC_OK)
      backoff = backoff == 0 ? ctx->poll_ms : (backoff * 2 > 5000 ? 5000 : backoff * 2);
    else
      backoff = 0;
    if (backoff == 0 && n > 0)
      continue; /* more work may be waiting */
    if (backoff > 0) {
      sleep_ms(backoff - (lc_mono_ms() - t0));
      continue;
    }
    woke = chain_wait(ctx, wake_of[sa->step], &seen,
                      sa->step == STEP_TRACK && atomic_load(&ctx->track_open) > 0
                          ? TRACK_TICK_MS
                          : ctx->poll_ms - (lc_mono_ms() - t0));
  }
  if (pub != NULL)
    lc_amqp_pub_close(pub);
  return NULL;
}

void *chain_sender_main(void *arg)
{
  chain_ctx *ctx = arg;
  step_arg args[3] = {{ctx, STEP_BROADCAST}, {ctx, STEP_TRACK}, {ctx, STEP_REPORT}};
  pthread_t th[2];
  int started = 0;

  lc_log_info("chain sender - started (poll %d ms, %d in flight, %d confirmations, stuck after "
              "%d s, dropped after %d s)",
              ctx->poll_ms, ctx->max_in_flight, ctx->confirmations, ctx->stuck_after_s,
              ctx->dropped_after_s);
  lc_metric_set("chain_master_low_eth", 0);
  lc_metric_set("chain_master_low_token", 0);
  lc_metric_set("chain_transfers_parked", 0);
  /* broadcast, track and report overlap: each stage has its own thread and
   * its own DB connection (CHAIN_DB_POOL must leave room for them). */
  for (int i = 0; i < 2; i++) {
    if (pthread_create(&th[i], NULL, step_main, &args[i + 1]) != 0) {
      lc_log_error("chain sender - cannot start the %s thread", i == 0 ? "track" : "report");
      atomic_store(&lc_svc_stopping, 1);
      break;
    }
    started++;
  }
  step_main(&args[0]);
  for (int i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  lc_log_info("chain sender - stopped");
  return NULL;
}
