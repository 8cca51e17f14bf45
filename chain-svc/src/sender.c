/* sender.c - broadcast, receipt tracking and status events (see sender.h). */
#include "sender.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lc/log.h"
#include "lc/msg.h"
#include "lc/svc.h"
#include "lc/util.h"

#define REPORT_BATCH 100
#define PUBLISH_TIMEOUT_MS 5000
/* A submitted tx unknown to the node for this long is broadcast again. */
#define LOST_AFTER_S 30

static int row_i64(const PGresult *res, int row, int col, int64_t *out)
{
  if (PQgetisnull(res, row, col))
    return LC_ERR_DB;
  return lc_parse_i64(PQgetvalue(res, row, col), INT64_MIN, INT64_MAX, out);
}

/* Sets a row's status (only when it still has status from). */
static int set_status(PGconn *conn, const char *debit_id, const char *from, const char *to,
                      const char *block, char err[LC_ERR_LEN])
{
  const char *p[4] = {debit_id, from, to, block};
  return lc_db_exec(conn,
                    "UPDATE transfers SET status = $3, block_number = $4::bigint, "
                    "attempts = CASE WHEN $3 = 'signed' THEN 0 ELSE attempts END, "
                    "last_error = NULL, next_attempt_at = now(), updated_at = now(), "
                    "submitted_at = CASE WHEN $3 = 'submitted' THEN now() ELSE submitted_at END, "
                    "confirmed_at = CASE WHEN $3 IN ('confirmed', 'failed') THEN now() "
                    "ELSE confirmed_at END "
                    "WHERE debit_id = $1 AND status = $2",
                    4, p, NULL, err);
}

/* Records a failed broadcast attempt with capped exponential backoff. */
static int set_retry(PGconn *conn, const char *debit_id, const char *why, char err[LC_ERR_LEN])
{
  char msg[201];
  const char *p[2] = {debit_id, msg};
  lc_strlcpy(msg, why, sizeof(msg));
  return lc_db_exec(conn,
                    "UPDATE transfers SET attempts = attempts + 1, last_error = $2, "
                    "next_attempt_at = now() + make_interval(secs => "
                    "least(60, power(2, least(attempts, 10)))), updated_at = now() "
                    "WHERE debit_id = $1 AND status = 'signed'",
                    2, p, NULL, err);
}

/* 1 when the node knows tx_hash (pending or mined); -1 on RPC failure. */
static int tx_known(chain_ctx *ctx, const char *tx_hash, char err[LC_ERR_LEN])
{
  json_t *res = NULL;
  int rc = rpc_call(&ctx->rpc, "eth_getTransactionByHash", json_pack("[s]", tx_hash), &res,
                    NULL, err);
  int known = rc == LC_OK ? (res != NULL && !json_is_null(res)) : -1;
  json_decref(res);
  return known;
}

int chain_sender_broadcast(chain_ctx *ctx, int *sent, char err[LC_ERR_LEN])
{
  PGresult *cnt = NULL, *rows = NULL;
  PGconn *conn = NULL;
  char lim[24];
  const char *p[1] = {lim};
  int64_t in_flight = 0;
  int rc, i, n;

  *sent = 0;
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(conn, "SELECT count(*) FROM transfers WHERE status = 'submitted'", 0, NULL,
                  &cnt, err);
  if (rc != LC_OK)
    goto out;
  if (row_i64(cnt, 0, 0, &in_flight) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_DB, "broadcast - bad count");
    goto out;
  }
  if (in_flight >= ctx->max_in_flight)
    goto out;
  snprintf(lim, sizeof(lim), "%lld", (long long)(ctx->max_in_flight - in_flight));
  rc = lc_db_exec(conn,
                  "SELECT debit_id, raw_tx, tx_hash, nonce FROM transfers "
                  "WHERE status = 'signed' AND next_attempt_at <= now() "
                  "ORDER BY from_address, nonce LIMIT $1::bigint",
                  1, p, &rows, err);
  if (rc != LC_OK)
    goto out;
  n = PQntuples(rows);
  for (i = 0; i < n && !atomic_load(&lc_svc_stopping); i++) {
    const char *debit_id = PQgetvalue(rows, i, 0);
    const char *raw = PQgetvalue(rows, i, 1);
    const char *hash = PQgetvalue(rows, i, 2);
    char rerr[LC_ERR_LEN] = "";
    json_t *res = NULL;
    int src = rpc_call(&ctx->rpc, "eth_sendRawTransaction", json_pack("[s]", raw), &res, NULL,
                       rerr);
    json_decref(res);
    if (src == LC_ERR_UNPROCESSABLE &&
        (strcasestr(rerr, "already known") != NULL || strcasestr(rerr, "nonce too low") != NULL ||
         strcasestr(rerr, "already imported") != NULL)) {
      /* Our exact transaction may already be in the pool or mined. */
      char kerr[LC_ERR_LEN] = "";
      int known = tx_known(ctx, hash, kerr);
      if (known == 1)
        src = LC_OK;
      else if (known < 0)
        src = LC_ERR_UNAVAIL;
    }
    if (src == LC_OK) {
      rc = set_status(conn, debit_id, "signed", "submitted", NULL, err);
      if (rc != LC_OK)
        goto out;
      (*sent)++;
      lc_log_info("Event - transfer submitted debit_id=%s nonce=%s tx=%s", debit_id,
                  PQgetvalue(rows, i, 3), hash);
      continue;
    }
    if (src == LC_ERR_UNAVAIL || src == LC_ERR_TIMEOUT) {
      rc = lc_err_set(err, LC_ERR_UNAVAIL, "broadcast - node unreachable: %.200s", rerr);
      goto out;
    }
    lc_log_warn("broadcast - debit_id=%s nonce=%s tx=%s rejected: %s", debit_id,
                PQgetvalue(rows, i, 3), hash, rerr);
    rc = set_retry(conn, debit_id, rerr, err);
    if (rc != LC_OK)
      goto out;
  }
out:
  PQclear(cnt);
  PQclear(rows);
  lc_db_release(ctx->db, conn);
  return rc;
}

int chain_sender_track(chain_ctx *ctx, int *done, char err[LC_ERR_LEN])
{
  PGresult *rows = NULL;
  PGconn *conn = NULL;
  json_t *bn = NULL;
  uint64_t latest = 0;
  char lim[24];
  const char *p[1] = {lim};
  int rc, i, n;

  *done = 0;
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    return rc;
  snprintf(lim, sizeof(lim), "%d", ctx->max_in_flight * 2);
  rc = lc_db_exec(conn,
                  "SELECT debit_id, tx_hash, nonce, "
                  "extract(epoch FROM now() - coalesce(submitted_at, updated_at))::bigint "
                  "FROM transfers WHERE status = 'submitted' "
                  "ORDER BY from_address, nonce LIMIT $1::bigint",
                  1, p, &rows, err);
  if (rc != LC_OK)
    goto out;
  n = PQntuples(rows);
  if (n == 0)
    goto out;
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
    int64_t age = 0;
    char blk[24];

    rc = rpc_call(&ctx->rpc, "eth_getTransactionReceipt", json_pack("[s]", hash), &rcpt, NULL,
                  err);
    if (rc != LC_OK)
      goto out;
    if (json_is_null(rcpt)) {
      json_decref(rcpt);
      if (row_i64(rows, i, 3, &age) != LC_OK || age < LOST_AFTER_S)
        continue;
      if (tx_known(ctx, hash, err) == 0) {
        lc_log_warn("track - tx %s of debit_id=%s unknown to the node; re-broadcasting", hash,
                    debit_id);
        rc = set_status(conn, debit_id, "submitted", "signed", NULL, err);
        if (rc != LC_OK)
          goto out;
      }
      continue;
    }
    if (rpc_quantity_u64(json_object_get(rcpt, "blockNumber"), &block) != LC_OK ||
        rpc_quantity_u64(json_object_get(rcpt, "status"), &st) != LC_OK) {
      json_decref(rcpt);
      continue; /* pending receipt shape: try next pass */
    }
    json_decref(rcpt);
    if (latest < block || latest - block + 1 < (uint64_t)ctx->confirmations)
      continue;
    snprintf(blk, sizeof(blk), "%llu", (unsigned long long)block);
    rc = set_status(conn, debit_id, "submitted", st == 1 ? "confirmed" : "failed", blk, err);
    if (rc != LC_OK)
      goto out;
    (*done)++;
    if (st == 1)
      lc_log_info("Event - transfer confirmed debit_id=%s tx=%s block=%s", debit_id, hash, blk);
    else
      lc_log_error("Event - transfer FAILED on chain debit_id=%s tx=%s block=%s", debit_id,
                   hash, blk);
  }
out:
  json_decref(bn);
  PQclear(rows);
  lc_db_release(ctx->db, conn);
  return rc;
}

void chain_event_msg_id(const char *debit_id, const char *status, char out[37])
{
  uint8_t h[32];
  char in[128], hex[33];
  int n = snprintf(in, sizeof(in), "chain.transfer:%s:%s", debit_id, status);

  lc_sha256(in, (size_t)(n > 0 ? n : 0), h);
  h[6] = (uint8_t)((h[6] & 0x0f) | 0x50); /* name-based version 5 layout */
  h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
  lc_hex_encode(h, 16, hex);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* Builds the envelope text of one row (new; free()). */
static char *event_text(const PGresult *rows, int i, char routing_key[64])
{
  const char *debit_id = PQgetvalue(rows, i, 0);
  const char *status = PQgetvalue(rows, i, 5);
  const char *rid = PQgetvalue(rows, i, 6);
  int64_t nonce = 0, block = 0;
  json_t *body;
  char id[37], *text;

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
  chain_event_msg_id(debit_id, status, id);
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
    char rk[64];
    char *text = event_text(rows, i, rk);
    const char *p[2] = {PQgetvalue(rows, i, 0), PQgetvalue(rows, i, 5)};
    char id[37];

    if (text == NULL) {
      rc = lc_err_set(err, LC_ERR, "report - cannot build event");
      goto out;
    }
    chain_event_msg_id(p[0], p[1], id);
    rc = lc_amqp_publish(*pub, ctx->exchange, rk, id, text, strlen(text), PUBLISH_TIMEOUT_MS,
                         err);
    free(text);
    if (rc != LC_OK) {
      lc_amqp_pub_close(*pub);
      *pub = NULL;
      goto out;
    }
    rc = lc_db_exec(conn,
                    "UPDATE transfers SET reported_status = $2 "
                    "WHERE debit_id = $1 AND status = $2",
                    2, p, NULL, err);
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

void *chain_sender_main(void *arg)
{
  chain_ctx *ctx = arg;
  lc_amqp_pub *pub = NULL;
  char err[LC_ERR_LEN], last_b[LC_ERR_LEN] = "", last_t[LC_ERR_LEN] = "",
       last_r[LC_ERR_LEN] = "";
  int64_t backoff = 0;

  lc_log_info("chain sender - started (poll %d ms, %d in flight, %d confirmations)",
              ctx->poll_ms, ctx->max_in_flight, ctx->confirmations);
  while (!atomic_load(&lc_svc_stopping)) {
    int sent = 0, done = 0, published = 0, rc_b, rc_t, rc_r;
    int64_t t0 = lc_mono_ms();

    err[0] = '\0';
    rc_b = chain_sender_broadcast(ctx, &sent, err);
    note("broadcast", rc_b, err, last_b);
    err[0] = '\0';
    rc_t = chain_sender_track(ctx, &done, err);
    note("track", rc_t, err, last_t);
    err[0] = '\0';
    rc_r = chain_sender_report(ctx, &pub, &published, err);
    note("report", rc_r, err, last_r);
    if (sent > 0)
      lc_metric_add("chain_tx_submitted_total", (uint64_t)sent);
    if (done > 0)
      lc_metric_add("chain_tx_final_total", (uint64_t)done);
    if (published > 0)
      lc_metric_add("chain_events_published_total", (uint64_t)published);
    /* Node/DB/broker down: back off up to 5 s; otherwise the normal period. */
    if (rc_b != LC_OK || rc_t != LC_OK || rc_r != LC_OK)
      backoff = backoff == 0 ? ctx->poll_ms : (backoff * 2 > 5000 ? 5000 : backoff * 2);
    else
      backoff = 0;
    if (sent > 0 || done > 0)
      continue; /* more work may be waiting (and receipts of what we just sent) */
    sleep_ms((backoff > 0 ? backoff : ctx->poll_ms) - (lc_mono_ms() - t0));
  }
  if (pub != NULL)
    lc_amqp_pub_close(pub);
  lc_log_info("chain sender - stopped");
  return NULL;
}
