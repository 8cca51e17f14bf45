/* node_ceiling.c - perf tool: the node's own ceiling for W4.
 *
 * Pre-signs N EIP-1559 ERC-20 transfer(to, 1 token) transactions with
 * chain-svc's signing code (ethtx_sign, BIP-44 key of CHAIN_MNEMONIC index
 * NODE_CEILING_INDEX, default 0 = the token deployer on a fresh anvil), sends
 * them to the node as fast as it takes them (JSON-RPC batches of BATCH raw
 * transactions per HTTP request, one thread) while a second thread fetches
 * receipts (batched, in nonce order), and prints the confirmed transfers per
 * second and the send -> receipt latency. Nothing is stored: this is the
 * ceiling chain-svc's pipeline (DB, nonces, broker) is compared with.
 *
 *   node_ceiling RPC_URL TOKEN_ADDRESS N [BATCH=50]
 *
 * NODE_CEILING_FUND=1 (anvil): credit the sender 10^9 tokens first (its
 * balance slot), so that e.g. NODE_CEILING_INDEX=9 works on the stack's node.
 * NODE_CEILING_NUDGE_MS (100; 0 = off): evm_mine at most that often while
 * sent transactions are unmined, as chain-svc does with CHAIN_MINE_NUDGE_MS
 * (anvil's automine mines one block per transaction and can leave ready ones
 * unmined until the next one arrives).
 *
 * Output: one human line on stderr and one JSON object on stdout. Exit 0 when
 * every transfer was mined with status 1 within 120 s. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ethtx.h"
#include "keccak.h"
#include "lc/http.h"
#include "lc/util.h"
#include "rpc.h"
#include "u256.h"
#include "wallet.h"

#define ANVIL_MNEMONIC "test test test test test test test test test test test junk"
#define RAW_MAX 1024
#define MAX_N 100000
#define RCPT_WINDOW 200
#define TIMEOUT_MS 120000

typedef struct {
  char raw[RAW_MAX];
  char hash[67];
  int64_t sent_ms;      /* when the node answered the send */
  int64_t mined_ms;     /* when its receipt was first seen */
  int status;           /* receipt status, -1 = none yet */
} tx_slot;

static const char *g_url;
static tx_slot *g_tx;
static int g_n, g_batch;
static atomic_int g_sent; /* slots [0, g_sent) are sent */
static atomic_int g_send_failed;

/* POSTs body; *out new (parsed JSON). */
static int post_json(const char *body, json_t **out, char err[LC_ERR_LEN])
{
  static const char *const headers[] = {"Content-Type: application/json", NULL};
  lc_http_req req = {0};
  lc_http_resp resp = {0};
  json_error_t jerr;
  int rc;

  *out = NULL;
  req.method = "POST";
  req.url = g_url;
  req.headers = headers;
  req.body = body;
  req.body_len = strlen(body);
  req.timeout_ms = 30000;
  req.max_resp = 64u * 1024u * 1024u;
  rc = lc_http_do(&req, &resp, err);
  if (rc == LC_OK && resp.status != 200)
    rc = lc_err_set(err, LC_ERR_IO, "HTTP status %ld", resp.status);
  if (rc == LC_OK) {
    *out = json_loadb(resp.body != NULL ? resp.body : "", resp.len, 0, &jerr);
    if (*out == NULL)
      rc = lc_err_set(err, LC_ERR_IO, "bad JSON: %s", jerr.text);
  }
  lc_http_resp_free(&resp);
  return rc;
}

static int rpc1(const char *method, const char *params, json_t **result, char err[LC_ERR_LEN])
{
  char body[512];
  json_t *root = NULL;
  int rc;

  snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":%s}",
           method, params);
  rc = post_json(body, &root, err);
  if (rc != LC_OK)
    return rc;
  *result = json_incref(json_object_get(root, "result"));
  json_decref(root);
  if (*result == NULL)
    return lc_err_set(err, LC_ERR_IO, "%s: no result", method);
  return LC_OK;
}

static void *send_main(void *arg)
{
  size_t cap = (size_t)g_batch * (RAW_MAX + 96) + 16;
  char *body = lc_xmalloc(cap), err[LC_ERR_LEN];
  (void)arg;

  for (int i = 0; i < g_n; i += g_batch) {
    int m = g_n - i < g_batch ? g_n - i : g_batch;
    size_t len = 0;
    json_t *res = NULL;

    body[len++] = '[';
    for (int j = 0; j < m; j++)
      len += (size_t)snprintf(body + len, cap - len,
                              "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":"
                              "\"eth_sendRawTransaction\",\"params\":[\"%s\"]}",
                              j ? "," : "", i + j, g_tx[i + j].raw);
    body[len++] = ']';
    body[len] = '\0';
    if (post_json(body, &res, err) != LC_OK || !json_is_array(res)) {
      fprintf(stderr, "node_ceiling: send batch at %d: %s\n", i, err);
      atomic_store(&g_send_failed, 1);
      json_decref(res);
      break;
    }
    for (size_t k = 0; k < json_array_size(res); k++) {
      json_t *e = json_object_get(json_array_get(res, k), "error");
      if (e != NULL && !json_is_null(e)) {
        fprintf(stderr, "node_ceiling: send refused: %s\n",
                json_string_value(json_object_get(e, "message")));
        atomic_store(&g_send_failed, 1);
      }
    }
    json_decref(res);
    int64_t now = lc_mono_ms();
    for (int j = 0; j < m; j++)
      g_tx[i + j].sent_ms = now;
    atomic_store(&g_sent, i + m);
    if (atomic_load(&g_send_failed))
      break;
  }
  free(body);
  lc_http_thread_cleanup();
  return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  const char *mn = getenv("CHAIN_MNEMONIC") != NULL ? getenv("CHAIN_MNEMONIC") : ANVIL_MNEMONIC;
  const char *idx_s = getenv("NODE_CEILING_INDEX");
  uint8_t seed[64], priv[32], from[20], token[20], amount[32], tip[32], max_fee[32];
  char from_s[43], params[128], err[LC_ERR_LEN] = "";
  int64_t n = 0, batch = 50, idx = 0, t_sign0, t_start, t_end = 0;
  uint64_t nonce0 = 0, chain_id = 0;
  json_t *res = NULL;
  pthread_t th;
  int done = 0, failed = 0, ret = EXIT_FAILURE;
  size_t bcap = RCPT_WINDOW * 160 + 16;
  const char *nudge_s = getenv("NODE_CEILING_NUDGE_MS");
  int64_t nudge_ms = 100, last_progress, nudges = 0;
  char *body;

  if (argc < 4 || argc > 5 || lc_parse_i64(argv[3], 1, MAX_N, &n) != LC_OK ||
      (argc == 5 && lc_parse_i64(argv[4], 1, 1000, &batch) != LC_OK) ||
      eth_address_parse(argv[2], token) != LC_OK ||
      (idx_s != NULL && lc_parse_i64(idx_s, 0, 1000000, &idx) != LC_OK) ||
      (nudge_s != NULL && lc_parse_i64(nudge_s, 0, 60000, &nudge_ms) != LC_OK)) {
    fprintf(stderr, "usage: node_ceiling RPC_URL TOKEN_ADDRESS N [BATCH]\n");
    return EXIT_FAILURE;
  }
  g_url = argv[1];
  g_n = (int)n;
  g_batch = (int)batch;
  if (wallet_seed_from_mnemonic(mn, "", seed) != LC_OK ||
      wallet_derive_eth(seed, sizeof(seed), 0, (uint32_t)idx, priv) != LC_OK ||
      eth_address_from_priv(priv, from) != LC_OK) {
    fprintf(stderr, "node_ceiling: cannot derive the sender key\n");
    return EXIT_FAILURE;
  }
  eth_address_checksum(from, from_s);
  if (rpc1("eth_chainId", "[]", &res, err) != LC_OK || rpc_quantity_u64(res, &chain_id) != LC_OK) {
    fprintf(stderr, "node_ceiling: eth_chainId: %s\n", err);
    return EXIT_FAILURE;
  }
  json_decref(res);
  snprintf(params, sizeof(params), "[\"%s\",\"pending\"]", from_s);
  if (rpc1("eth_getTransactionCount", params, &res, err) != LC_OK ||
      rpc_quantity_u64(res, &nonce0) != LC_OK) {
    fprintf(stderr, "node_ceiling: eth_getTransactionCount: %s\n", err);
    return EXIT_FAILURE;
  }
  json_decref(res);

  /* NODE_CEILING_FUND=1 (anvil only): give the sender 10^9 tokens by writing
   * its OpenZeppelin ERC-20 balance slot, keccak256(pad32(addr) . pad32(0)),
   * so a non-master account can be used on the stack's own node. */
  if (getenv("NODE_CEILING_FUND") != NULL && strcmp(getenv("NODE_CEILING_FUND"), "1") == 0) {
    uint8_t pre[64] = {0}, slot[32], bal[32];
    char slot_hex[67], bal_hex[67], fp[256];
    memcpy(pre + 12, from, 20);
    keccak256(pre, sizeof(pre), slot);
    u256_mul_pow10(1000000000ull, 18, bal);
    slot_hex[0] = bal_hex[0] = '0';
    slot_hex[1] = bal_hex[1] = 'x';
    lc_hex_encode(slot, 32, slot_hex + 2);
    lc_hex_encode(bal, 32, bal_hex + 2);
    snprintf(fp, sizeof(fp), "[\"%s\",\"%s\",\"%s\"]", argv[2], slot_hex, bal_hex);
    if (rpc1("anvil_setStorageAt", fp, &res, err) != LC_OK) {
      fprintf(stderr, "node_ceiling: anvil_setStorageAt: %s\n", err);
      return EXIT_FAILURE;
    }
    json_decref(res);
  }

  /* Pre-sign: 1 token each to distinct fresh addresses (like new users). */
  g_tx = lc_xcalloc((size_t)n, sizeof(tx_slot));
  u256_mul_pow10(1, 18, amount);
  u256_from_u64(1000000000ull, tip);          /* 1 gwei */
  u256_from_u64(100000000000ull, max_fee);    /* 100 gwei */
  t_sign0 = lc_mono_ms();
  for (int64_t i = 0; i < n; i++) {
    uint8_t to[32], data[68], *raw = NULL, h[32];
    size_t raw_len = 0;
    char seedtxt[64];
    ethtx_1559 tx;
    int sl = snprintf(seedtxt, sizeof(seedtxt), "node-ceiling-%lld-%lld", (long long)nonce0,
                      (long long)i);
    keccak256((const uint8_t *)seedtxt, (size_t)sl, to);
    eth_erc20_transfer_data(to + 12, amount, data);
    memset(&tx, 0, sizeof(tx));
    tx.chain_id = chain_id;
    tx.nonce = nonce0 + (uint64_t)i;
    memcpy(tx.max_priority_fee, tip, 32);
    memcpy(tx.max_fee, max_fee, 32);
    tx.gas_limit = 120000;
    memcpy(tx.to, token, 20);
    tx.data = data;
    tx.data_len = sizeof(data);
    if (ethtx_sign(&tx, priv, &raw, &raw_len, h, err) != LC_OK || 2 * raw_len + 3 > RAW_MAX) {
      fprintf(stderr, "node_ceiling: sign: %s\n", err);
      return EXIT_FAILURE;
    }
    g_tx[i].raw[0] = '0', g_tx[i].raw[1] = 'x';
    lc_hex_encode(raw, raw_len, g_tx[i].raw + 2);
    g_tx[i].hash[0] = '0', g_tx[i].hash[1] = 'x';
    lc_hex_encode(h, 32, g_tx[i].hash + 2);
    g_tx[i].status = -1;
    free(raw);
  }
  int64_t sign_ms = lc_mono_ms() - t_sign0;

  t_start = lc_mono_ms();
  last_progress = t_start;
  if (pthread_create(&th, NULL, send_main, NULL) != 0)
    return EXIT_FAILURE;
  /* Receipts in nonce order (automine: mined in nonce order), batched. */
  body = lc_xmalloc(bcap);
  while (done < g_n && lc_mono_ms() - t_start < TIMEOUT_MS) {
    int sent = atomic_load(&g_sent), m = sent - done, got = 0;
    size_t len = 0;
    if (m > RCPT_WINDOW)
      m = RCPT_WINDOW;
    if (m <= 0) {
      if (atomic_load(&g_send_failed))
        break;
      struct timespec ts = {0, 1000000L};
      nanosleep(&ts, NULL);
      continue;
    }
    body[len++] = '[';
    for (int j = 0; j < m; j++)
      len += (size_t)snprintf(body + len, bcap - len,
                              "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":"
                              "\"eth_getTransactionReceipt\",\"params\":[\"%s\"]}",
                              j ? "," : "", done + j, g_tx[done + j].hash);
    body[len++] = ']';
    body[len] = '\0';
    if (post_json(body, &res, err) != LC_OK || !json_is_array(res)) {
      fprintf(stderr, "node_ceiling: receipts: %s\n", err);
      json_decref(res);
      break;
    }
    int64_t now = lc_mono_ms();
    for (size_t k = 0; k < json_array_size(res); k++) {
      json_t *e = json_array_get(res, k), *r = json_object_get(e, "result");
      json_int_t id = json_integer_value(json_object_get(e, "id"));
      uint64_t st = 0;
      if (id < done || id >= done + m || !json_is_object(r) ||
          rpc_quantity_u64(json_object_get(r, "status"), &st) != LC_OK)
        continue;
      if (g_tx[id].status < 0) {
        g_tx[id].status = (int)st;
        g_tx[id].mined_ms = now;
        t_end = now;
      }
    }
    json_decref(res);
    while (done < g_n && g_tx[done].status >= 0) {
      failed += g_tx[done].status != 1;
      done++, got++;
    }
    /* Same nudge as chain-svc's CHAIN_MINE_NUDGE_MS: while sent transfers
     * are unmined, evm_mine at most every nudge_ms (automining anvil mines
     * one block per transaction and can leave ready ones unmined). */
    if (done < atomic_load(&g_sent) && nudge_ms > 0 && now - last_progress >= nudge_ms) {
      json_t *mres = NULL;
      if (rpc1("evm_mine", "[]", &mres, err) == LC_OK)
        nudges++;
      json_decref(mres);
      last_progress = now;
    }
    if (got == 0) {
      struct timespec ts = {0, 2000000L};
      nanosleep(&ts, NULL);
    }
  }
  pthread_join(th, NULL);
  free(body);

  {
    int64_t *lat = lc_xcalloc((size_t)(done > 0 ? done : 1), sizeof(int64_t));
    int64_t send_end = 0;
    for (int i = 0; i < done; i++)
      lat[i] = g_tx[i].mined_ms - g_tx[i].sent_ms;
    for (int i = 0; i < g_n; i++)
      if (g_tx[i].sent_ms > send_end)
        send_end = g_tx[i].sent_ms;
    qsort(lat, (size_t)done, sizeof(int64_t), cmp_i64);
    double secs = t_end > t_start ? (double)(t_end - t_start) / 1000.0 : 0;
    double rate = secs > 0 ? done / secs : 0;
    double send_rate = send_end > t_start ? g_n * 1000.0 / (double)(send_end - t_start) : 0;
    int64_t p50 = done > 0 ? lat[(done - 1) / 2] : 0, p99 = done > 0 ? lat[(done - 1) * 99 / 100] : 0;
    int64_t mx = done > 0 ? lat[done - 1] : 0;
    fprintf(stderr,
            "node_ceiling: %d/%d confirmed (%d failed) in %.2f s = %.0f tx/s; sent at %.0f tx/s "
            "(batch %d); send->receipt p50 %lld ms p99 %lld ms max %lld ms; signing %.0f tx/s; "
            "%lld mine nudges\n",
            done, g_n, failed, secs, rate, send_rate, g_batch, (long long)p50, (long long)p99,
            (long long)mx, sign_ms > 0 ? n * 1000.0 / (double)sign_ms : 0.0, (long long)nudges);
    printf("{\"n\": %d, \"confirmed\": %d, \"failed\": %d, \"seconds\": %.3f, \"tx_per_s\": %.1f, "
           "\"send_per_s\": %.1f, \"batch\": %d, \"p50_ms\": %lld, \"p99_ms\": %lld, "
           "\"max_ms\": %lld, \"sign_ms\": %lld, \"nudges\": %lld}\n",
           g_n, done, failed, secs, rate, send_rate, g_batch, (long long)p50, (long long)p99,
           (long long)mx, (long long)sign_ms, (long long)nudges);
    free(lat);
  }
  if (done == g_n && failed == 0 && !atomic_load(&g_send_failed))
    ret = EXIT_SUCCESS;
  free(g_tx);
  lc_http_thread_cleanup();
  return ret;
}
