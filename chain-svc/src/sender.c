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

/* signed -> submitted after the node accepted (or already had) tx_hash. */
static int mark_submitted(PGconn *conn, const char *debit_id, const char *hash,
                          char err[LC_ERR_LEN])
{
  return exec1(conn,
               "WITH u AS (UPDATE transfers SET status = 'submitted', attempts = 0, "
               "last_error = NULL, submitted_at = coalesce(submitted_at, now()), "
               "sent_at = clock_timestamp(), updated_at = now() "
               "WHERE debit_id = $1 AND status = 'signed' AND tx_hash = $2 RETURNING debit_id) "
               "UPDATE transfer_attempts SET outcome = 'sent' WHERE tx_hash = $2 "
               "AND debit_id IN (SELECT debit_id FROM u) AND outcome = 'signed'",
               debit_id, hash, err);
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
  int rc, i, n, park = 0, funds_ok, in_tx = 0;

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
  for (i = 0; i < n && !atomic_load(&lc_svc_stopping); i++) {
    const char *debit_id = PQgetvalue(rows, i, 0);
    const char *raw = PQgetvalue(rows, i, 1);
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

    rc = send_raw(ctx, raw, &cls, rerr);
    if (rc != LC_OK) {
      rc = lc_err_set(err, LC_ERR_UNAVAIL, "broadcast - node unreachable: %.200s", rerr);
      goto out;
    }
    switch (cls) {
    case CHAIN_SEND_OK:
    case CHAIN_SEND_ALREADY_KNOWN:
      LC_FAILPOINT("chain.broadcast.before_mark");
      rc = mark_submitted(conn, debit_id, hash, err);
      if (rc != LC_OK)
        goto out;
      sub_clamp(tok_budget, amount);
      sub_clamp(eth_budget, need_eth);
      (*sent)++;
      lc_log_info("Event - transfer submitted debit_id=%s nonce=%s tx=%s", debit_id, nonce_s,
                  hash);
      break;
    case CHAIN_SEND_NONCE_TOO_LOW:
      /* Which of our attempts took the nonce (or did someone else)? These
       * paths take their own locks: release the pass's first, and end it. */
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
    rc = lc_db_commit(conn, err);
    in_tx = 0;
  }
  set_parked(ctx, park, waiting - *sent);
out:
  if (in_tx) {
    /* Keep what was recorded: those transactions were accepted by the node. */
    char cerr[LC_ERR_LEN] = "";
    if (lc_db_commit(conn, cerr) != LC_OK)
      lc_db_rollback(conn);
  }
  PQclear(cnt);
  PQclear(rows);
  lc_db_release(ctx->db, conn);
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

/* Marks debit_id final (confirmed/failed) with its mined attempt. */
static int mark_final(PGconn *conn, const char *debit_id, const char *hash, int ok,
                      const char *blk, char err[LC_ERR_LEN])
{
  const char *p[4] = {debit_id, hash, ok ? "confirmed" : "failed", blk};
  return lc_db_exec(conn,
                    "WITH u AS (UPDATE transfers SET status = $3, block_number = $4::bigint, "
                    "confirmed_at = now(), updated_at = now(), last_error = NULL "
                    "WHERE debit_id = $1 AND tx_hash = $2 AND status = 'submitted' "
                    "RETURNING debit_id) "
                    "UPDATE transfer_attempts SET outcome = CASE WHEN tx_hash = $2 THEN 'mined' "
                    "ELSE 'superseded' END WHERE debit_id IN (SELECT debit_id FROM u) "
                    "AND (tx_hash = $2 OR outcome IN ('signed', 'sent'))",
                    4, p, NULL, err);
}

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
  int rc, i, n, nlater = 0, in_tx = 0;

  *done = 0;
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  snprintf(lim, sizeof(lim), "%d", ctx->max_in_flight * 2);
  /* Rows locked for the pass: a second instance tracks other rows. */
  rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    goto out;
  in_tx = 1;
  rc = lc_db_exec(conn,
                  "SELECT debit_id, tx_hash, nonce, raw_tx, "
                  "extract(epoch FROM now() - coalesce(sent_at, submitted_at, updated_at))::bigint "
                  "FROM transfers WHERE status = 'submitted' "
                  "ORDER BY from_address, nonce LIMIT $1::bigint FOR UPDATE SKIP LOCKED",
                  1, p, &rows, err);
  if (rc != LC_OK)
    goto out;
  n = PQntuples(rows);
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
  for (i = 0; i < n && !atomic_load(&lc_svc_stopping); i++) {
    const char *debit_id = PQgetvalue(rows, i, 0);
    const char *hash = PQgetvalue(rows, i, 1);
    json_t *rcpt = NULL;
    uint64_t block = 0, st = 0;
    char blk[24];

    rc = get_receipt(ctx, hash, &rcpt, err);
    if (rc != LC_OK)
      goto out;
    if (!json_is_object(rcpt)) {
      json_decref(rcpt);
      later[nlater++] = i;
      continue;
    }
    if (rpc_quantity_u64(json_object_get(rcpt, "blockNumber"), &block) != LC_OK ||
        rpc_quantity_u64(json_object_get(rcpt, "status"), &st) != LC_OK) {
      json_decref(rcpt);
      continue; /* pending receipt shape: try next pass */
    }
    json_decref(rcpt);
    if (latest < block ||
        latest - block + 1 < (uint64_t)(ctx->confirmations > 0 ? ctx->confirmations : 1))
      continue;
    snprintf(blk, sizeof(blk), "%llu", (unsigned long long)block);
    LC_FAILPOINT("chain.receipt.before_mark");
    rc = mark_final(conn, debit_id, hash, st == 1, blk, err);
    if (rc != LC_OK)
      goto out;
    (*done)++;
    if (st == 1)
      lc_log_info("Event - transfer confirmed debit_id=%s tx=%s block=%s", debit_id, hash, blk);
    else
      lc_log_error("Event - transfer FAILED on chain debit_id=%s tx=%s block=%s", debit_id,
                   hash, blk);
  }
  rc = lc_db_commit(conn, err);
  in_tx = 0;
  if (rc != LC_OK)
    goto out;
  /* Unmined rows: their handling takes its own locks, after the commit. */
  for (i = 0; i < nlater && !atomic_load(&lc_svc_stopping); i++) {
    int r = later[i];
    int64_t age = 0, nonce = 0;
    row_i64(rows, r, 4, &age);
    row_i64(rows, r, 2, &nonce);
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
  free(later);
  json_decref(bn);
  PQclear(rows);
  lc_db_release(ctx->db, conn);
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
  PGresult *rows = NULL;
  PGconn *conn = NULL;
  int rc, i, n;

  *published = 0;
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
  for (i = 0; i < n && !atomic_load(&lc_svc_stopping); i++) {
    char rk[64], id[37];
    char *text = event_text(rows, i, rk, id);
    const char *p[3] = {PQgetvalue(rows, i, 0), PQgetvalue(rows, i, 5), PQgetvalue(rows, i, 1)};

    if (text == NULL) {
      rc = lc_err_set(err, LC_ERR, "report - cannot build event");
      goto out;
    }
    rc = lc_amqp_publish(*pub, ctx->exchange, rk, id, text, strlen(text), PUBLISH_TIMEOUT_MS,
                         err);
    free(text);
    if (rc != LC_OK) {
      lc_amqp_pub_close(*pub);
      *pub = NULL;
      goto out;
    }
    LC_FAILPOINT("chain.report.after_publish");
    /* Only when nothing changed meanwhile (a replacement re-publishes). */
    rc = lc_db_exec(conn,
                    "UPDATE transfers SET reported_status = $2 "
                    "WHERE debit_id = $1 AND status = $2 AND tx_hash = $3",
                    3, p, NULL, err);
    if (rc != LC_OK)
      goto out;
    (*published)++;
  }
out:
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

/* One stage loop: runs its step every poll_ms (at once again while it finds
 * work), with exponential backoff up to 5 s while a dependency is down. */
static void *step_main(void *arg)
{
  step_arg *sa = arg;
  chain_ctx *ctx = sa->ctx;
  static const char *const names[] = {"broadcast", "track", "report"};
  const char *name = names[sa->step];
  lc_amqp_pub *pub = NULL;
  char err[LC_ERR_LEN], last[LC_ERR_LEN] = "";
  int64_t backoff = 0;

  while (!atomic_load(&lc_svc_stopping)) {
    int n = 0, rc;
    int64_t t0 = lc_mono_ms();

    err[0] = '\0';
    if (sa->step == STEP_BROADCAST) {
      rc = chain_sender_broadcast(ctx, &n, err);
      if (n > 0)
        lc_metric_add("chain_tx_submitted_total", (uint64_t)n);
    } else if (sa->step == STEP_TRACK) {
      rc = chain_sender_track(ctx, &n, err);
      if (n > 0)
        lc_metric_add("chain_tx_final_total", (uint64_t)n);
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
    sleep_ms((backoff > 0 ? backoff : ctx->poll_ms) - (lc_mono_ms() - t0));
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
