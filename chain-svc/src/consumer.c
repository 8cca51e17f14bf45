/* consumer.c - credit.debit.committed -> signed transfer row (see consumer.h). */
#include "consumer.h"

#include <pthread.h>
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
    chain_wake(ctx, CHAIN_WAKE_BROADCAST);
  if (rc == LC_OK)
    lc_log_info("Event - transfer signed debit_id=%s nonce=%lld tx=%s to=%s amount=%s",
                d->debit_id, (long long)nonce, hash_hex, to_str, amount_dec);
out:
  if (rc != LC_OK)
    lc_db_rollback(conn);
  return rc;
}

/* ------------------------------------------------------------ batching
 *
 * Concurrent handlers (CHAIN_CONSUMERS threads) queue their store step; the
 * first one that finds no batch running becomes the leader and stores every
 * queued debit in ONE transaction: nonce lock, per debit sign + insert
 * (transfer and its first attempt), advance the nonce by the number stored,
 * one commit. Each handler returns (and its message is acked) only after that
 * commit. A debit stored meanwhile by someone else (ON CONFLICT) takes no
 * nonce. Any other statement error rolls the batch back and every debit of it
 * goes through store_transfer alone (the one-debit path), so a failing debit
 * never fails the others. */

#define STORE_BATCH_MAX 256

struct chain_store_req {
  const debit_msg *d;
  const char *rid;
  const char *to_str;
  const uint8_t *to;
  int rc;
  int done;
  char err[LC_ERR_LEN];
  struct chain_store_req *next;
};

/* Stores reqs[0..n) in one transaction; 1 when done (each req->rc set), 0
 * when a statement failed and the caller must fall back to one by one. */
static int store_batch_tx(chain_ctx *ctx, PGconn *conn, struct chain_store_req **reqs, int n)
{
  uint8_t tip[32], max_fee[32];
  char tip_dec[80], max_dec[80], err[LC_ERR_LEN] = "";
  int64_t n0 = 0, next;
  int rc, i;

  rc = chain_fees(ctx, tip, max_fee, err);
  if (rc == LC_OK) {
    chain_fee_cap(tip, max_fee, ctx->fee_cap);
    u256_to_dec(tip, tip_dec);
    u256_to_dec(max_fee, max_dec);
    rc = lc_db_begin(conn, err);
  }
  if (rc == LC_OK) {
    rc = chain_store_nonce_lock(ctx, conn, &n0, err);
    if (rc != LC_OK)
      lc_db_rollback(conn);
  }
  if (rc != LC_OK) {
    for (i = 0; i < n; i++) {
      reqs[i]->rc = rc;
      lc_strlcpy(reqs[i]->err, err, LC_ERR_LEN);
    }
    return 1;
  }
  next = n0;
  for (i = 0; i < n; i++) {
    struct chain_store_req *q = reqs[i];
    uint8_t amount[32];
    char amount_dec[80], raw_hex[CHAIN_RAW_TX_MAX], hash_hex[67], nonce_s[24], cost_s[24];
    const char *p[12];
    PGresult *res = NULL;

    q->rc = LC_ERR;
    if (u256_mul_pow10((uint64_t)q->d->cost, ctx->decimals, amount) != LC_OK)
      goto fail;
    u256_to_dec(amount, amount_dec);
    if (chain_sign_transfer(ctx, q->to, amount, next, tip, max_fee, raw_hex, sizeof(raw_hex),
                            hash_hex, err) != LC_OK)
      goto fail;
    snprintf(nonce_s, sizeof(nonce_s), "%lld", (long long)next);
    snprintf(cost_s, sizeof(cost_s), "%lld", (long long)q->d->cost);
    p[0] = q->d->debit_id;
    p[1] = q->d->user_id;
    p[2] = q->rid;
    p[3] = ctx->master_str;
    p[4] = q->to_str;
    p[5] = cost_s;
    p[6] = amount_dec;
    p[7] = nonce_s;
    p[8] = raw_hex;
    p[9] = hash_hex;
    p[10] = tip_dec;
    p[11] = max_dec;
    /* Transfer and its first attempt in one statement; a debit stored
     * meanwhile (redelivery raced us) inserts nothing and uses no nonce. */
    if (lc_db_exec_prepared(conn, "chain_transfer_insert",
                   "WITH t AS (INSERT INTO transfers (debit_id, user_id, request_id, "
                   "from_address, to_address, cost, amount, nonce, raw_tx, tx_hash, status, tip, "
                   "max_fee) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'signed', $11, $12) "
                   "ON CONFLICT (debit_id) DO NOTHING RETURNING debit_id) "
                   "INSERT INTO transfer_attempts (debit_id, nonce, tx_hash, raw_tx, tip, "
                   "max_fee, reason) SELECT debit_id, $8, $10, $9, $11, $12, 'initial' FROM t "
                   "RETURNING id",
                   12, p, &res, err) != LC_OK)
      goto fail;
    if (PQntuples(res) == 1) {
      q->rc = LC_OK;
      lc_log_info("Event - transfer signed debit_id=%s nonce=%lld tx=%s to=%s amount=%s",
                  q->d->debit_id, (long long)next, hash_hex, q->to_str, amount_dec);
      next++;
    } else {
      q->rc = lc_err_set(q->err, LC_ERR_CONFLICT, "debit_id %s stored concurrently",
                         q->d->debit_id);
    }
    PQclear(res);
    continue;
  fail:
    lc_log_warn("chain consumer - batch of %d: debit_id=%s: %s; storing one by one", n,
                q->d->debit_id, err);
    lc_db_rollback(conn);
    return 0;
  }
  if (next > n0) {
    char a[24], b[24];
    const char *p[3] = {ctx->master_str, a, b};
    PGresult *res = NULL;
    snprintf(a, sizeof(a), "%lld", (long long)n0);
    snprintf(b, sizeof(b), "%lld", (long long)next);
    rc = lc_db_exec_prepared(conn, "chain_nonce_advance",
                    "UPDATE nonces SET next_nonce = $3::bigint, updated_at = now() "
                    "WHERE address = $1 AND next_nonce = $2::bigint",
                    3, p, &res, err);
    if (rc == LC_OK && strcmp(PQcmdTuples(res), "1") != 0)
      rc = lc_err_set(err, LC_ERR_CONFLICT, "nonces - allocator moved underneath the lock");
    PQclear(res);
    if (rc != LC_OK) {
      lc_db_rollback(conn);
      return 0;
    }
  }
  rc = lc_db_commit(conn, err);
  if (rc != LC_OK) {
    lc_db_rollback(conn);
    for (i = 0; i < n; i++) {
      reqs[i]->rc = rc;
      lc_strlcpy(reqs[i]->err, err, LC_ERR_LEN);
    }
  }
  return 1;
}

/* Runs reqs as one batch (falling back to one by one), on conn. */
static void store_batch(chain_ctx *ctx, PGconn *conn, struct chain_store_req **reqs, int n)
{
  if (n > 1 && store_batch_tx(ctx, conn, reqs, n))
    return;
  for (int i = 0; i < n; i++)
    reqs[i]->rc = store_transfer(ctx, conn, reqs[i]->d, reqs[i]->rid, reqs[i]->to_str,
                                 reqs[i]->to, reqs[i]->err);
}

/* Queues the store step of d and waits for its batch; see above. */
static int store_batched(chain_ctx *ctx, PGconn *conn, const debit_msg *d, const char *rid,
                         const char *to_str, const uint8_t to[20], char err[LC_ERR_LEN])
{
  struct chain_store_req me = {d, rid, to_str, to, LC_ERR, 0, "", NULL};
  struct chain_store_req *batch[STORE_BATCH_MAX];
  int stored = 0;

  if (ctx->consumers <= 1)
    return store_transfer(ctx, conn, d, rid, to_str, to, err);
  pthread_mutex_lock(&ctx->store_mu);
  me.next = ctx->store_head;
  ctx->store_head = &me;
  while (!me.done) {
    if (!ctx->store_busy) {
      int n = 0;
      struct chain_store_req *q = ctx->store_head, *rest;
      while (q != NULL && n < STORE_BATCH_MAX) {
        batch[n++] = q;
        q = q->next;
      }
      ctx->store_head = q;
      ctx->store_busy = 1;
      pthread_mutex_unlock(&ctx->store_mu);
      /* oldest first: the list is newest-first */
      for (int i = 0; i < n / 2; i++) {
        rest = batch[i];
        batch[i] = batch[n - 1 - i];
        batch[n - 1 - i] = rest;
      }
      store_batch(ctx, conn, batch, n);
      pthread_mutex_lock(&ctx->store_mu);
      for (int i = 0; i < n; i++) {
        batch[i]->done = 1;
        stored += batch[i]->rc == LC_OK;
      }
      ctx->store_busy = 0;
      pthread_cond_broadcast(&ctx->store_cv);
    } else {
      pthread_cond_wait(&ctx->store_cv, &ctx->store_mu);
    }
  }
  pthread_mutex_unlock(&ctx->store_mu);
  if (stored > 0)
    chain_wake(ctx, CHAIN_WAKE_BROADCAST);
  if (me.rc != LC_OK)
    lc_strlcpy(err, me.err, LC_ERR_LEN);
  return me.rc;
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
  rc = lc_db_exec_prepared(conn, "chain_transfer_existing", "SELECT user_id::text, cost FROM transfers WHERE debit_id = $1", 1, p,
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
    rc = store_batched(ctx, conn, &d, rid, to_str, to, err);
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

static void *consume_main(void *arg)
{
  chain_ctx *ctx = arg;
  lc_amqp_consume(ctx->amqp_url, CHAIN_DEBITS_QUEUE, 8, chain_debit_handle, ctx,
                  &lc_svc_stopping);
  return NULL;
}

void *chain_consumer_main(void *arg)
{
  chain_ctx *ctx = arg;
  char err[LC_ERR_LEN] = "";
  int64_t backoff = 500;
  pthread_t th[CHAIN_CONSUMERS_MAX];
  int extra = 0;

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
  lc_log_info("chain consumer - consuming %s with %d consumer(s)", CHAIN_DEBITS_QUEUE,
              ctx->consumers);
  /* Each consumer has its own connection; their store steps are batched. */
  for (int i = 1; i < ctx->consumers && i < CHAIN_CONSUMERS_MAX; i++) {
    if (pthread_create(&th[extra], NULL, consume_main, ctx) != 0) {
      lc_log_warn("chain consumer - cannot start consumer %d", i + 1);
      break;
    }
    extra++;
  }
  consume_main(ctx);
  for (int i = 0; i < extra; i++)
    pthread_join(th[i], NULL);
  lc_log_info("chain consumer - stopped");
  return NULL;
}
