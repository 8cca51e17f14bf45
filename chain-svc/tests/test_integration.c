/* test_integration.c - chain-svc against the real dev PostgreSQL and anvil.
 *
 * Setup (once per run): a private schema chain_it_<random> migrated from
 * chain-svc/sql, a random 64-byte HD seed (so the master wallet is a fresh
 * address no other process uses), 100 ETH for it (anvil_setBalance), and a
 * CreditToken deployed FROM that master (anvil_impersonateAccount) so the
 * master holds the whole supply. Nothing here touches the "chain" schema or
 * anvil account #0. The schema is dropped at the end.
 *
 * Env: CHAIN_TEST_PG_URL (libpq URI without search_path, default the
 * local stack), CHAIN_TEST_RPC_URL (default http://127.0.0.1:8545). Runs in
 * CK_NOFORK mode: tests share the setup. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chain_ctx.h"
#include "consumer.h"
#include "lc/db.h"
#include "lc/msg.h"
#include "lc/util.h"
#include "rpc.h"
#include "sender.h"
#include "store.h"
#include "u256.h"

#ifndef CHAIN_TEST_DIR
#define CHAIN_TEST_DIR "chain-svc/tests"
#endif
#ifndef CHAIN_SQL_DIR_DEFAULT
#define CHAIN_SQL_DIR_DEFAULT "chain-svc/sql"
#endif

#define TRANSFER_TOPIC "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

static chain_ctx g_ctx;
static lc_db_pool *g_pool;
static char g_schema[64];
static uint8_t g_seed[64];

/* --- helpers ------------------------------------------------------------ */

static json_t *rpc_ok(rpc_client *c, const char *method, json_t *params)
{
  json_t *res = NULL;
  char err[LC_ERR_LEN] = "";
  int rc = rpc_call(c, method, params, &res, NULL, err);
  ck_assert_msg(rc == LC_OK, "%s: %s", method, err);
  return res;
}

static int64_t sql_i64(const char *sql, const char *p1)
{
  PGconn *conn = NULL;
  PGresult *res = NULL;
  char err[LC_ERR_LEN] = "";
  const char *p[1] = {p1};
  int64_t v = -1;

  ck_assert_int_eq(lc_db_acquire(g_pool, &conn, err), LC_OK);
  ck_assert_msg(lc_db_exec(conn, sql, p1 != NULL ? 1 : 0, p1 != NULL ? p : NULL, &res, err) ==
                    LC_OK,
                "%s", err);
  if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
    lc_parse_i64(PQgetvalue(res, 0, 0), INT64_MIN, INT64_MAX, &v);
  PQclear(res);
  lc_db_release(g_pool, conn);
  return v;
}

static void sql_str(const char *sql, const char *p1, char *out, size_t outsz)
{
  PGconn *conn = NULL;
  PGresult *res = NULL;
  char err[LC_ERR_LEN] = "";
  const char *p[1] = {p1};

  ck_assert_int_eq(lc_db_acquire(g_pool, &conn, err), LC_OK);
  ck_assert_msg(lc_db_exec(conn, sql, 1, p, &res, err) == LC_OK, "%s", err);
  ck_assert_int_eq(PQntuples(res), 1);
  lc_strlcpy(out, PQgetvalue(res, 0, 0), outsz);
  PQclear(res);
  lc_db_release(g_pool, conn);
}

static char *debit_envelope(const char *debit_id, const char *user_id, json_int_t cost)
{
  json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:s}", "debit_id", debit_id, "user_id",
                           user_id, "action", "report.generate", "cost", cost, "committed_at",
                           "2026-01-01T00:00:00.000Z");
  char *text = lc_msg_build(CHAIN_DEBIT_TYPE, NULL, "it-request", body, NULL);
  json_decref(body);
  return text;
}

static int handle(const char *debit_id, const char *user_id, json_int_t cost)
{
  char *text = debit_envelope(debit_id, user_id, cost);
  int rc = chain_debit_handle(&g_ctx, CHAIN_DEBIT_TYPE, "x", text, strlen(text));
  free(text);
  return rc;
}

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Lower-case hex of addr left-padded to a 32-byte topic. */
static void topic_of(const char *addr, char out[67])
{
  snprintf(out, 67, "0x000000000000000000000000%.40s", addr + 2);
  for (char *p = out; *p; p++)
    if (*p >= 'A' && *p <= 'F')
      *p = (char)(*p - 'A' + 'a');
}

/* --- setup -------------------------------------------------------------- */

static int read_bytecode(char **hex)
{
  char cmd[1200], *buf = lc_xmalloc(65536);
  size_t n = 0;
  FILE *f;

  snprintf(cmd, sizeof(cmd), "node '%s/compile_token.mjs'", CHAIN_TEST_DIR);
  f = popen(cmd, "r");
  if (f == NULL) {
    free(buf);
    return LC_ERR;
  }
  n = fread(buf, 1, 65535, f);
  buf[n] = '\0';
  if (pclose(f) != 0 || n < 100) {
    free(buf);
    return LC_ERR;
  }
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  *hex = buf;
  return LC_OK;
}

/* Deploys CreditToken(10^9 * 10^18) from master; writes the token address. */
static int deploy_token(rpc_client *c, const char *master, char token[43])
{
  char *code = NULL, *data, err[LC_ERR_LEN] = "";
  json_t *res = NULL, *rcpt = NULL;
  uint8_t supply[32];
  char supply_hex[65];
  size_t dlen;
  int rc, i;

  if (read_bytecode(&code) != LC_OK) {
    fprintf(stderr, "cannot compile the token (node + solc)\n");
    return LC_ERR;
  }
  if (u256_mul_pow10(1000000000u, 18, supply) != LC_OK)
    return LC_ERR;
  lc_hex_encode(supply, 32, supply_hex);
  dlen = strlen(code) + 64 + 3;
  data = lc_xmalloc(dlen);
  snprintf(data, dlen, "0x%s%s", code, supply_hex);
  free(code);

  rc = rpc_call(c, "anvil_setBalance", json_pack("[ss]", master, "0x56BC75E2D63100000"), &res,
                NULL, err);
  json_decref(res);
  if (rc == LC_OK)
    rc = rpc_call(c, "anvil_impersonateAccount", json_pack("[s]", master), &res, NULL, err);
  json_decref(res);
  res = NULL;
  if (rc == LC_OK)
    rc = rpc_call(c, "eth_sendTransaction",
                  json_pack("[{s:s, s:s, s:s}]", "from", master, "data", data, "gas", "0x200000"),
                  &res, NULL, err);
  free(data);
  if (rc != LC_OK) {
    fprintf(stderr, "deploy: %s\n", err);
    json_decref(res);
    return rc;
  }
  for (i = 0; i < 100 && rc == LC_OK; i++) {
    rc = rpc_call(c, "eth_getTransactionReceipt", json_pack("[O]", res), &rcpt, NULL, err);
    if (rc == LC_OK && !json_is_null(rcpt))
      break;
    json_decref(rcpt);
    rcpt = NULL;
    sleep_ms(50);
  }
  json_decref(res);
  res = NULL;
  rpc_call(c, "anvil_stopImpersonatingAccount", json_pack("[s]", master), &res, NULL, err);
  json_decref(res);
  if (rcpt == NULL || json_is_null(rcpt) ||
      json_string_value(json_object_get(rcpt, "contractAddress")) == NULL) {
    json_decref(rcpt);
    return LC_ERR;
  }
  rc = lc_strlcpy(token, json_string_value(json_object_get(rcpt, "contractAddress")), 43);
  json_decref(rcpt);
  return rc;
}

static int setup(void)
{
  const char *pg = getenv("CHAIN_TEST_PG_URL");
  const char *rpc_url = getenv("CHAIN_TEST_RPC_URL");
  char conninfo[1024], err[LC_ERR_LEN] = "", hex[9], token[43];
  uint8_t rnd[4];
  chain_ctx probe;
  int rc;

  if (pg == NULL)
    pg = "postgresql://postgres@127.0.0.1:25432/saas";
  if (rpc_url == NULL)
    rpc_url = "http://127.0.0.1:8545";
  lc_random(rnd, sizeof(rnd));
  lc_hex_encode(rnd, sizeof(rnd), hex);
  snprintf(g_schema, sizeof(g_schema), "chain_it_%s", hex);
  snprintf(conninfo, sizeof(conninfo), "%s%soptions=-csearch_path%%3D%s", pg,
           strchr(pg, '?') != NULL ? "&" : "?", g_schema);
  if (lc_db_pool_new(conninfo, 8, 10000, &g_pool, err) != LC_OK ||
      lc_db_migrate(g_pool, g_schema, CHAIN_SQL_DIR_DEFAULT, err) != LC_OK) {
    fprintf(stderr, "db setup: %s\n", err);
    return LC_ERR;
  }
  lc_random(g_seed, sizeof(g_seed));
  /* First derive the master (token unknown yet), deploy, then the real ctx. */
  rc = chain_ctx_init(&probe, g_pool, rpc_url, 31337, "0x0000000000000000000000000000000000000001",
                      g_seed, sizeof(g_seed), err);
  if (rc != LC_OK)
    return rc;
  rc = deploy_token(&probe.rpc, probe.master_str, token);
  chain_ctx_free(&probe);
  if (rc != LC_OK)
    return rc;
  rc = chain_ctx_init(&g_ctx, g_pool, rpc_url, 31337, token, g_seed, sizeof(g_seed), err);
  g_ctx.max_in_flight = 256;
  fprintf(stderr, "schema %s, master %s, token %s\n", g_schema, g_ctx.master_str, token);
  return rc;
}

static void teardown(void)
{
  PGconn *conn = NULL;
  char err[LC_ERR_LEN] = "", sql[128];

  snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", g_schema); /* our random name */
  if (g_pool != NULL && lc_db_acquire(g_pool, &conn, err) == LC_OK) {
    lc_db_exec(conn, sql, 0, NULL, NULL, err);
    lc_db_release(g_pool, conn);
  }
  chain_ctx_free(&g_ctx);
  lc_db_pool_free(g_pool);
}

/* --- tests -------------------------------------------------------------- */

START_TEST(test_wallet_index)
{
  PGconn *conn = NULL;
  char err[LC_ERR_LEN] = "", u1[37], u2[37], a1[43], a1b[43], a2[43], d[43];
  int64_t i1 = 0, i1b = 0, i2 = 0;

  lc_uuid_v4(u1);
  lc_uuid_v4(u2);
  ck_assert_int_eq(lc_db_acquire(g_pool, &conn, err), LC_OK);
  ck_assert_int_eq(chain_store_wallet(&g_ctx, conn, u1, &i1, a1, err), LC_OK);
  ck_assert_int_eq(chain_store_wallet(&g_ctx, conn, u1, &i1b, a1b, err), LC_OK);
  ck_assert_int_eq(chain_store_wallet(&g_ctx, conn, u2, &i2, a2, err), LC_OK);
  ck_assert_int_eq(chain_store_wallet(&g_ctx, conn, "not-a-uuid", &i2, a2, err), LC_ERR_PARAM);
  lc_db_release(g_pool, conn);
  ck_assert_int_ge(i1, 1);
  ck_assert_int_eq(i1, i1b);
  ck_assert_str_eq(a1, a1b);
  ck_assert_int_ne(i1, i2);
  ck_assert_str_ne(a1, a2);
  ck_assert_int_eq(chain_user_address(&g_ctx, i1, NULL, d), LC_OK);
  ck_assert_str_eq(a1, d);
}
END_TEST

START_TEST(test_rejects_malformed)
{
  char d[37], u[37];
  static const char junk[] = "{\"v\":1,\"type\":\"credit.debit.committed\"}";
  int64_t before = sql_i64("SELECT count(*) FROM transfers", NULL);

  lc_uuid_v4(d);
  lc_uuid_v4(u);
  ck_assert_int_eq(chain_debit_handle(&g_ctx, "k", "m", junk, strlen(junk)), LC_ERR_PARAM);
  ck_assert_int_eq(chain_debit_handle(&g_ctx, "k", "m", "not json", 8), LC_ERR_PARAM);
  ck_assert_int_eq(handle(d, u, 0), LC_ERR_PARAM);
  ck_assert_int_eq(handle(d, u, 1000001), LC_ERR_PARAM);
  ck_assert_int_eq(handle(d, "nope", 5), LC_ERR_PARAM);
  ck_assert_int_eq(handle("nope", u, 5), LC_ERR_PARAM);
  ck_assert_int_eq(sql_i64("SELECT count(*) FROM transfers", NULL), before);
}
END_TEST

/* Node down while signing: requeue status, nothing stored, no nonce used. */
START_TEST(test_node_down_burns_nothing)
{
  chain_ctx down;
  char err[LC_ERR_LEN] = "", d[37], u[37], *text;
  int64_t nonce_before, count_before;
  int rc;

  lc_uuid_v4(d);
  lc_uuid_v4(u);
  /* make sure the nonce row exists (first debit through the real node) */
  ck_assert_int_eq(handle(d, u, 1), LC_OK);
  nonce_before = sql_i64("SELECT next_nonce FROM nonces WHERE address = $1", g_ctx.master_str);
  count_before = sql_i64("SELECT count(*) FROM transfers", NULL);
  ck_assert_int_ge(nonce_before, 1);

  ck_assert_int_eq(chain_ctx_init(&down, g_pool, "http://127.0.0.1:1", 31337, g_ctx.token_str,
                                  g_seed, sizeof(g_seed), err),
                   LC_OK);
  lc_uuid_v4(d);
  text = debit_envelope(d, u, 3);
  rc = chain_debit_handle(&down, CHAIN_DEBIT_TYPE, "x", text, strlen(text));
  free(text);
  chain_ctx_free(&down);
  ck_assert_int_ne(rc, LC_OK);
  ck_assert_int_ne(rc, LC_ERR_PARAM);
  ck_assert_int_eq(sql_i64("SELECT next_nonce FROM nonces WHERE address = $1", g_ctx.master_str),
                   nonce_before);
  ck_assert_int_eq(sql_i64("SELECT count(*) FROM transfers", NULL), count_before);
  ck_assert_int_eq(sql_i64("SELECT count(*) FROM transfers WHERE debit_id = $1", d), 0);
}
END_TEST

#define NTHREADS 4
#define PER_THREAD 10

static void *debit_worker(void *arg)
{
  long fails = 0;
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    char d[37], u[37];
    lc_uuid_v4(d);
    lc_uuid_v4(u);
    if (handle(d, u, 1 + i) != LC_OK)
      fails++;
  }
  return (void *)fails;
}

START_TEST(test_nonce_contiguous_concurrent)
{
  pthread_t th[NTHREADS];
  int64_t before, after, n, mn, mx, distinct;
  int i;

  /* ensure the nonce row exists, then remember where the allocator stands */
  {
    char d[37], u[37];
    lc_uuid_v4(d);
    lc_uuid_v4(u);
    ck_assert_int_eq(handle(d, u, 2), LC_OK);
  }
  before = sql_i64("SELECT next_nonce FROM nonces WHERE address = $1", g_ctx.master_str);
  for (i = 0; i < NTHREADS; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, debit_worker, NULL), 0);
  for (i = 0; i < NTHREADS; i++) {
    void *ret = NULL;
    pthread_join(th[i], &ret);
    ck_assert_int_eq((long)ret, 0);
  }
  after = sql_i64("SELECT next_nonce FROM nonces WHERE address = $1", g_ctx.master_str);
  ck_assert_int_eq(after - before, NTHREADS * PER_THREAD);
  /* Every nonce in [before, after) used exactly once; and globally no gaps. */
  n = sql_i64("SELECT count(*) FROM transfers WHERE nonce >= $1::bigint", "0");
  mn = sql_i64("SELECT min(nonce) FROM transfers WHERE from_address = $1", g_ctx.master_str);
  mx = sql_i64("SELECT max(nonce) FROM transfers WHERE from_address = $1", g_ctx.master_str);
  distinct = sql_i64("SELECT count(DISTINCT nonce) FROM transfers WHERE from_address = $1",
                     g_ctx.master_str);
  ck_assert_int_eq(distinct, n);
  ck_assert_int_eq(mx - mn + 1, n);
  ck_assert_int_eq(mx + 1, after);
}
END_TEST

/* Batched stores (CHAIN_CONSUMERS > 1): 6 concurrent handlers, every one of
 * 30 debits delivered twice at about the same time (by two threads): each
 * call acks (LC_OK), one transfer per debit, nonces contiguous. */
#define BATCH_THREADS 6
#define BATCH_DEBITS 30

static char g_bd[BATCH_DEBITS][37], g_bu[BATCH_DEBITS][37];

static void *batch_worker(void *arg)
{
  long t = (long)arg, fails = 0;
  int from = (int)(t % 3) * (BATCH_DEBITS / 3);
  for (int i = from; i < from + BATCH_DEBITS / 3; i++)
    if (handle(g_bd[i], g_bu[i], 1 + i % 7) != LC_OK)
      fails++;
  return (void *)fails;
}

START_TEST(test_batched_stores)
{
  pthread_t th[BATCH_THREADS];
  int64_t before, after, n, mn, mx, distinct;
  char list[BATCH_DEBITS * 38 + 4];
  size_t len = 0;
  int i;

  for (i = 0; i < BATCH_DEBITS; i++) {
    lc_uuid_v4(g_bd[i]);
    lc_uuid_v4(g_bu[i]);
    len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? "," : "{", g_bd[i]);
  }
  snprintf(list + len, sizeof(list) - len, "}");
  before = sql_i64("SELECT next_nonce FROM nonces WHERE address = $1", g_ctx.master_str);
  g_ctx.consumers = BATCH_THREADS;
  for (i = 0; i < BATCH_THREADS; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, batch_worker, (void *)(long)i), 0);
  for (i = 0; i < BATCH_THREADS; i++) {
    void *ret = NULL;
    pthread_join(th[i], &ret);
    ck_assert_int_eq((long)ret, 0);
  }
  g_ctx.consumers = 1;
  after = sql_i64("SELECT next_nonce FROM nonces WHERE address = $1", g_ctx.master_str);
  ck_assert_int_eq(after - before, BATCH_DEBITS);
  ck_assert_int_eq(sql_i64("SELECT count(*) FROM transfers WHERE debit_id = ANY($1::uuid[])", list),
                   BATCH_DEBITS);
  ck_assert_int_eq(sql_i64("SELECT count(*) FROM transfer_attempts WHERE debit_id = ANY($1::uuid[])",
                           list),
                   BATCH_DEBITS);
  n = sql_i64("SELECT count(*) FROM transfers WHERE nonce >= $1::bigint", "0");
  mn = sql_i64("SELECT min(nonce) FROM transfers WHERE from_address = $1", g_ctx.master_str);
  mx = sql_i64("SELECT max(nonce) FROM transfers WHERE from_address = $1", g_ctx.master_str);
  distinct = sql_i64("SELECT count(DISTINCT nonce) FROM transfers WHERE from_address = $1",
                     g_ctx.master_str);
  ck_assert_int_eq(distinct, n);
  ck_assert_int_eq(mx - mn + 1, n);
  ck_assert_int_eq(mx + 1, after);
}
END_TEST

/* Drives broadcast + track until debit_id is final or timeout; returns ms. */
static int64_t drive_until_final(const char *debit_id)
{
  char err[LC_ERR_LEN] = "", st[16] = "";
  int64_t t0 = lc_mono_ms();

  while (lc_mono_ms() - t0 < 60000) {
    int sent = 0, done = 0, rc;
    rc = chain_sender_broadcast(&g_ctx, &sent, err);
    ck_assert_msg(rc == LC_OK, "broadcast: %s", err);
    rc = chain_sender_track(&g_ctx, &done, err);
    ck_assert_msg(rc == LC_OK, "track: %s", err);
    sql_str("SELECT status FROM transfers WHERE debit_id = $1", debit_id, st, sizeof(st));
    if (strcmp(st, "confirmed") == 0 || strcmp(st, "failed") == 0)
      return lc_mono_ms() - t0;
    sleep_ms(20);
  }
  return -1;
}

START_TEST(test_round_trip)
{
  char d[37], u[37], hash[67], to[43], want_topic1[67], want_topic2[67], amount_hex[65],
      want_data[67], call[80], st[16];
  uint8_t amount[32];
  json_t *rcpt, *logs, *lg, *topics, *bal;
  int64_t t0, t_handle, t_final, nonce_after;
  size_t i, nlogs = 0;

  lc_uuid_v4(d);
  lc_uuid_v4(u);
  t0 = lc_mono_ms();
  ck_assert_int_eq(handle(d, u, 5), LC_OK);
  t_handle = lc_mono_ms() - t0;
  sql_str("SELECT status FROM transfers WHERE debit_id = $1", d, st, sizeof(st));
  ck_assert_str_eq(st, "signed");
  t_final = drive_until_final(d);
  ck_assert_int_ge(t_final, 0);
  fprintf(stderr, "round trip: handler %lld ms, signed->confirmed %lld ms (incl. backlog)\n",
          (long long)t_handle, (long long)t_final);

  sql_str("SELECT status FROM transfers WHERE debit_id = $1", d, st, sizeof(st));
  ck_assert_str_eq(st, "confirmed");
  ck_assert_int_ge(sql_i64("SELECT block_number FROM transfers WHERE debit_id = $1", d), 1);
  sql_str("SELECT tx_hash FROM transfers WHERE debit_id = $1", d, hash, sizeof(hash));
  sql_str("SELECT to_address FROM transfers WHERE debit_id = $1", d, to, sizeof(to));
  {
    char waddr[43];
    sql_str("SELECT address FROM wallets WHERE user_id = $1", u, waddr, sizeof(waddr));
    ck_assert_str_eq(waddr, to);
  }

  /* On chain: status 1, exactly one Transfer(master -> user, 5 * 10^18) log from the token. */
  rcpt = rpc_ok(&g_ctx.rpc, "eth_getTransactionReceipt", json_pack("[s]", hash));
  ck_assert(json_is_object(rcpt));
  ck_assert_str_eq(json_string_value(json_object_get(rcpt, "status")), "0x1");
  logs = json_object_get(rcpt, "logs");
  topic_of(g_ctx.master_str, want_topic1);
  topic_of(to, want_topic2);
  ck_assert_int_eq(u256_mul_pow10(5, 18, amount), LC_OK);
  lc_hex_encode(amount, 32, amount_hex);
  snprintf(want_data, sizeof(want_data), "0x%s", amount_hex);
  json_array_foreach(logs, i, lg)
  {
    topics = json_object_get(lg, "topics");
    if (strcasecmp(json_string_value(json_array_get(topics, 0)), TRANSFER_TOPIC) != 0)
      continue;
    nlogs++;
    ck_assert_int_eq(strcasecmp(json_string_value(json_object_get(lg, "address")),
                                g_ctx.token_str),
                     0);
    ck_assert_int_eq(strcasecmp(json_string_value(json_array_get(topics, 1)), want_topic1), 0);
    ck_assert_int_eq(strcasecmp(json_string_value(json_array_get(topics, 2)), want_topic2), 0);
    ck_assert_int_eq(strcasecmp(json_string_value(json_object_get(lg, "data")), want_data), 0);
  }
  ck_assert_int_eq(nlogs, 1);
  json_decref(rcpt);

  /* balanceOf(user) == 5 * 10^18 (a fresh address) */
  snprintf(call, sizeof(call), "0x70a08231%s", want_topic2 + 2);
  bal = rpc_ok(&g_ctx.rpc, "eth_call",
               json_pack("[{s:s, s:s}, s]", "to", g_ctx.token_str, "data", call, "latest"));
  ck_assert_int_eq(strcasecmp(json_string_value(bal), want_data), 0);
  json_decref(bal);

  /* Redelivery of the same debit: acked, no second transfer, no nonce used. */
  nonce_after = sql_i64("SELECT next_nonce FROM nonces WHERE address = $1", g_ctx.master_str);
  ck_assert_int_eq(handle(d, u, 5), LC_OK);
  ck_assert_int_eq(sql_i64("SELECT count(*) FROM transfers WHERE debit_id = $1", d), 1);
  ck_assert_int_eq(sql_i64("SELECT next_nonce FROM nonces WHERE address = $1", g_ctx.master_str),
                   nonce_after);
}
END_TEST

/* A second broadcast of an already-mined raw tx is recognised (nonce too low
 * / already known + found by hash) and does not count as an error. */
START_TEST(test_rebroadcast_is_harmless)
{
  char d[37], u[37], err[LC_ERR_LEN] = "", st[16];
  PGconn *conn = NULL;
  const char *p[1];
  int sent = 0;

  lc_uuid_v4(d);
  lc_uuid_v4(u);
  ck_assert_int_eq(handle(d, u, 7), LC_OK);
  ck_assert_int_ge(drive_until_final(d), 0);
  /* pretend we crashed before recording the broadcast */
  p[0] = d;
  ck_assert_int_eq(lc_db_acquire(g_pool, &conn, err), LC_OK);
  ck_assert_int_eq(lc_db_exec(conn,
                              "UPDATE transfers SET status = 'signed', block_number = NULL "
                              "WHERE debit_id = $1",
                              1, p, NULL, err),
                   LC_OK);
  lc_db_release(g_pool, conn);
  ck_assert_int_eq(chain_sender_broadcast(&g_ctx, &sent, err), LC_OK);
  ck_assert_int_ge(sent, 1);
  ck_assert_int_ge(drive_until_final(d), 0);
  sql_str("SELECT status FROM transfers WHERE debit_id = $1", d, st, sizeof(st));
  ck_assert_str_eq(st, "confirmed");
  ck_assert_int_eq(sql_i64("SELECT attempts FROM transfers WHERE debit_id = $1", d), 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chain-svc-integration");
  TCase *tc = tcase_create("daemon");
  SRunner *sr;
  int failed;

  lc_global_init();
  if (setup() != LC_OK) {
    fprintf(stderr, "setup failed (PostgreSQL on 25432, anvil on 8545, node + solc needed)\n");
    teardown();
    return EXIT_FAILURE;
  }
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_wallet_index);
  tcase_add_test(tc, test_rejects_malformed);
  tcase_add_test(tc, test_node_down_burns_nothing);
  tcase_add_test(tc, test_nonce_contiguous_concurrent);
  tcase_add_test(tc, test_batched_stores);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_rebroadcast_is_harmless);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_NOFORK);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  teardown();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
