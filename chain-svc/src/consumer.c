/* consumer.c - credit.debit.committed -> signed transfer row (see consumer.h). */
#include "consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "ethtx.h"
#include "fees.h"
#include "lc/amqp.h"
#include "lc/failpoint.h"
#include "lc/log.h"
#include "lc/msg.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "store.h"
#include "u256.h"


typedef struct {
  char debit_id[37];
  char user_id[37];
  int64_t cost;
} debit_msg;

/* Validates the body of credit.debit.committed (borrowed). */
static int debit_parse(const json_t *body, debit_msg *d, char err[LC_ERR_LEN])
{
  const char *debit_id = json_string_value(json_object_get(body, "debit_id"));
  const char *user_id = json_string_value(json_object_get(body, "user_id"));
  const json_t *cost = json_object_get(body, "cost");

  if (debit_id == NULL || !lc_uuid_valid(debit_id))
    return lc_err_set(err, LC_ERR_PARAM, "debit_id is not a UUID");
  if (user_id == NULL || !lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "user_id is not a UUID");
  if (!json_is_integer(cost) || json_integer_value(cost) < 1 ||
      json_integer_value(cost) > CHAIN_COST_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "cost is not an integer in [1, %d]", CHAIN_COST_MAX);
  /* Lowercase so that the same id in another case maps to the same row text. */
  for (size_t i = 0; i < 37; i++) {
    char a = debit_id[i], b = user_id[i];
    d->debit_id[i] = (a >= 'A' && a <= 'F') ? (char)(a - 'A' + 'a') : a;
    d->user_id[i] = (b >= 'A' && b <= 'F') ? (char)(b - 'A' + 'a') : b;
  }
  d->cost = json_integer_value(cost);
  return LC_OK;
}

/* The transaction: nonce lock, sign, insert, advance, commit. */
static int store_transfer(chain_ctx *ctx, PGconn *conn, const debit_msg *d, const char *rid,
                          const char *to_str, const uint8_t to[20], char err[LC_ERR_LEN])
{
  uint8_t amount[32], tip[32], max_fee[32];
  char amount_dec[80], raw_hex[CHAIN_RAW_TX_MAX], hash_hex[67], nonce_s[24], cost_s[24];
  char tip_dec[80], max_dec[80];
  const char *p[12];
  int64_t nonce = 0;
  int rc;

  if (u256_mul_pow10((uint64_t)d->cost, ctx->decimals, amount) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "amount overflows 256 bits");
  u256_to_dec(amount, amount_dec);
  /* Fees before the lock: the node round trips stay outside the critical section. */
  rc = chain_fees(ctx, tip, max_fee, err);
  if (rc != LC_OK)
    return rc;
  chain_fee_cap(tip, max_fee, ctx->fee_cap);
  u256_to_dec(tip, tip_dec);
  u256_to_dec(max_fee, max_dec);

  rc = lc_db_begin(conn, err);
  if (rc != LC_OK)
    return rc;
  rc = chain_store_nonce_lock(ctx, conn, &nonce, err);
  if (rc != LC_OK)
    goto out;
  rc = chain_sign_transfer(ctx, to, amount, nonce, tip, max_fee, raw_hex, sizeof(raw_hex),
                           hash_hex, err);
  if (rc != LC_OK)
    goto out;
  snprintf(nonce_s, sizeof(nonce_s), "%lld", (long long)nonce);
  snprintf(cost_s, sizeof(cost_s), "%lld", (long long)d->cost);
  p[0] = d->debit_id;
  p[1] = d->user_id;
  p[2] = rid;
  p[3] = ctx->master_str;
  p[4] = to_str;
  p[5] = cost_s;
  p[6] = amount_dec;
  p[7] = nonce_s;
  p[8] = raw_hex;
  p[9] = hash_hex;
  p[10] = tip_dec;
  p[11] = max_dec;
  rc = lc_db_exec(conn,
                  "INSERT INTO transfers (debit_id, user_id, request_id, from_address, "
                  "to_address, cost, amount, nonce, raw_tx, tx_hash, status, tip, max_fee) "
                  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'signed', $11, $12)",
                  12, p, NULL, err);
  if (rc != LC_OK)
    goto out;
  p[1] = nonce_s;
  p[2] = hash_hex;
  p[3] = raw_hex;
  p[4] = tip_dec;
  p[5] = max_dec;
  rc = lc_db_exec(conn,
                  "INSERT INTO transfer_attempts (debit_id, nonce, tx_hash, raw_tx, tip, max_fee, "
                  "reason) VALUES ($1, $2, $3, $4, $5, $6, 'initial')",
                  6, p, NULL, err);
  if (rc != LC_OK)
    goto out;
  rc = chain_store_nonce_advance(ctx, conn, nonce, err);
  if (rc != LC_OK)
    goto out;
  rc = lc_db_commit(conn, err);
  if (rc == LC_OK)
    lc_log_info("Event - transfer signed debit_id=%s nonce=%lld tx=%s to=%s amount=%s",
                d->debit_id, (long long)nonce, hash_hex, to_str, amount_dec);
out:
  if (rc != LC_OK)
    lc_db_rollback(conn);
  return rc;
}

/* Sleeps ms milliseconds in short slices, returning early on stop. */
static void sleep_unless_stopping(int64_t ms);

/* Node or database unreachable: the message is nacked (requeued, nothing
 * stored, no nonce used); this thread waits first, doubling from 200 ms to
 * 5 s while the outage lasts, so an outage is not a redelivery storm. */
static void outage_backoff(int rc)
{
  static _Thread_local int64_t backoff_ms;
  if (rc != LC_ERR_UNAVAIL && rc != LC_ERR_TIMEOUT && rc != LC_ERR_IO) {
    backoff_ms = 0;
    return;
  }
  backoff_ms = backoff_ms == 0 ? 200 : (backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2);
  sleep_unless_stopping(backoff_ms);
}

int chain_debit_failure_counts(int rc)
{
  switch (rc) {
  case LC_OK:
  case LC_ERR_PARAM:      /* already rejected to the DLQ */
  case LC_ERR_UNAVAIL:    /* node / database / pool down */
  case LC_ERR_TIMEOUT:
  case LC_ERR_RETRY:      /* serialization failure, deadlock */
  case LC_ERR_CONFLICT:   /* a concurrent instance won the race */
  case LC_ERR_IO:         /* node answered garbage (proxy, restart) */
    return 0;
  default:
    return 1;
  }
}

/* *exists = 1 when debit_id already has a transfer. The same debit id with
 * another user or cost is not a redelivery but a corrupt message:
 * LC_ERR_UNPROCESSABLE (counted towards the DLQ, nothing is changed). */
static int existing_matches(PGconn *conn, const debit_msg *d, int *exists, char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  const char *p[1] = {d->debit_id};
  int64_t cost = 0;
  int rc;

  *exists = 0;
  rc = lc_db_exec(conn, "SELECT user_id::text, cost FROM transfers WHERE debit_id = $1", 1, p,
                  &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) == 1) {
    *exists = 1;
    if (lc_parse_i64(PQgetvalue(res, 0, 1), 1, INT64_MAX, &cost) != LC_OK ||
        strcmp(PQgetvalue(res, 0, 0), d->user_id) != 0 || cost != d->cost)
      rc = lc_err_set(err, LC_ERR_UNPROCESSABLE,
                      "debit_id %s is already stored with another user or cost", d->debit_id);
  }
  PQclear(res);
  return rc;
}

/* Counts one failed delivery of msg_id; returns the failures so far (0 when
 * the counter itself cannot be written: then the message is just retried). */
static int note_failure(chain_ctx *ctx, PGconn *conn, const char *msg_id, const char *why)
{
  PGresult *res = NULL;
  char e2[LC_ERR_LEN] = "", reason[201];
  const char *p[2] = {msg_id, reason};
  int64_t n = 0;

  (void)ctx;
  lc_strlcpy(reason, why, sizeof(reason));
  lc_db_rollback(conn);
  if (lc_db_exec(conn,
                 "INSERT INTO deliveries (msg_id, failures, last_error) VALUES ($1, 1, $2) "
                 "ON CONFLICT (msg_id) DO UPDATE SET failures = deliveries.failures + 1, "
                 "last_error = $2, updated_at = now() RETURNING failures",
                 2, p, &res, e2) != LC_OK)
    return 0;
  if (PQntuples(res) != 1 || lc_parse_i64(PQgetvalue(res, 0, 0), 0, INT32_MAX, &n) != LC_OK)
    n = 0;
  PQclear(res);
  return (int)n;
}

int chain_debit_handle(void *ud, const char *routing_key, const char *msg_id, const char *body,
                       size_t len)
{
  chain_ctx *ctx = ud;
  char type[64], id[37], rid[64], err[LC_ERR_LEN] = "", to_str[43];
  uint8_t to[20];
  json_t *jbody = NULL;
  PGconn *conn = NULL;
  debit_msg d;
  int64_t idx = 0;
  int exists = 0, rc;

  (void)routing_key;
  rc = lc_msg_parse(body, len, CHAIN_DEBIT_TYPE, type, id, rid, &jbody, err);
  if (rc == LC_OK)
    rc = debit_parse(jbody, &d, err);
  json_decref(jbody);
  if (rc != LC_OK) {
    lc_log_warn("chain_debit_handle - rejecting message %s: %s",
                msg_id != NULL ? msg_id : "-", err);
    return LC_ERR_PARAM;
  }
  lc_log_set_rid(rid);

  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    goto out;
  rc = existing_matches(conn, &d, &exists, err);
  if (rc != LC_OK || exists) {
    if (exists)
      lc_log_info("chain_debit_handle - debit_id=%s already has a transfer (redelivery)",
                  d.debit_id);
    goto out;
  }
  rc = chain_store_wallet(ctx, conn, d.user_id, &idx, to_str, err);
  if (rc == LC_OK && eth_address_parse(to_str, to) != LC_OK)
    rc = lc_err_set(err, LC_ERR_DB, "stored wallet address is malformed");
  if (rc == LC_OK)
    rc = chain_store_nonce_ensure(ctx, conn, err);
  if (rc == LC_OK)
    rc = store_transfer(ctx, conn, &d, rid, to_str, to, err);
  if (rc == LC_ERR_CONFLICT) {
    /* A concurrent handler stored this debit first (unique debit_id). */
    rc = existing_matches(conn, &d, &exists, err);
    if (rc == LC_OK && !exists)
      rc = LC_ERR_CONFLICT;
  }
  LC_FAILPOINT("chain.debit.before_ack");
out:
  if (conn != NULL && chain_debit_failure_counts(rc)) {
    /* Not an outage: count it; at the limit the message goes to the DLQ. */
    int failures = note_failure(ctx, conn, id, err);
    if (failures >= ctx->max_deliveries) {
      lc_log_error("Event - poison message id=%s debit_id=%s after %d failed deliveries: %s "
                   "(to the dead-letter queue)",
                   id, d.debit_id, failures, err);
      lc_metric_add("chain_poison_messages_total", 1);
      rc = LC_ERR_PARAM;
    }
  }
  if (conn != NULL)
    lc_db_release(ctx->db, conn);
  if (rc == LC_ERR_PARAM) {
    lc_log_warn("chain_debit_handle - rejecting debit_id=%s: %s", d.debit_id, err);
  } else if (rc != LC_OK) {
    lc_log_warn("chain_debit_handle - debit_id=%s will be retried: %s (%s)", d.debit_id,
                lc_err_name(rc), err);
  }
  outage_backoff(rc);
  lc_log_set_rid(NULL);
  return rc;
}

static void sleep_unless_stopping(int64_t ms)
{
  while (ms > 0 && !atomic_load(&lc_svc_stopping)) {
    int64_t slice = ms > 100 ? 100 : ms;
    struct timespec ts = {0, (long)slice * 1000000L};
    nanosleep(&ts, NULL);
    ms -= slice;
  }
}

void *chain_consumer_main(void *arg)
{
  chain_ctx *ctx = arg;
  char err[LC_ERR_LEN] = "";
  int64_t backoff = 500;

  while (!atomic_load(&lc_svc_stopping)) {
    if (lc_amqp_declare_topology(ctx->amqp_url, err) == LC_OK)
      break;
    lc_log_warn("chain consumer - broker not ready: %s (retry in %lld ms)", err,
                (long long)backoff);
    sleep_unless_stopping(backoff);
    backoff = backoff < 8000 ? backoff * 2 : 8000;
  }
  if (atomic_load(&lc_svc_stopping))
    return NULL;
  lc_log_info("chain consumer - consuming %s", CHAIN_DEBITS_QUEUE);
  lc_amqp_consume(ctx->amqp_url, CHAIN_DEBITS_QUEUE, 8, chain_debit_handle, ctx,
                  &lc_svc_stopping);
  lc_log_info("chain consumer - stopped");
  return NULL;
}
