/* main.c - chain-svc: mirrors every committed credit debit as an ERC-20
 * transfer from the master wallet to the user's custodial address.
 *
 * Threads: the consumer (credit.debit.committed -> signed transfer row), the
 * sender (broadcast, receipts, chain.transfer.* events) and the HTTP server
 * (ops + internal routes). Configuration only from the environment
 * (proto/CONTRACTS.md); the mnemonic never leaves memory. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "chain_ctx.h"
#include "consumer.h"
#include "deploy.h"
#include "ethtx.h"
#include "fees.h"
#include "keyfile.h"
#include "lc/cfg.h"
#include "lc/db.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "reconcile.h"
#include "routes.h"
#include "sender.h"
#include "wallet.h"

#ifndef CHAIN_SQL_DIR_DEFAULT
#define CHAIN_SQL_DIR_DEFAULT "chain-svc/sql"
#endif

#ifndef CHAIN_TOKEN_BIN_DEFAULT
#define CHAIN_TOKEN_BIN_DEFAULT "CreditToken.bin"
#endif

/* Every setting; the "required" column is adjusted per mode (mode_specs). */
static const lc_cfg_spec SPECS[] = {
  {"CHAIN_BIND", LC_CFG_STR, 1, 64, "127.0.0.1", 1, "HTTP bind address"},
  {"CHAIN_PORT", LC_CFG_INT, 1, 65535, "21004", 1, "HTTP port"},
  {"CHAIN_DATABASE_URL", LC_CFG_SECRET, 1, 1024, NULL, 1, "PostgreSQL URL (role chain_svc)"},
  {"CHAIN_DB_POOL", LC_CFG_INT, 2, 64, "10", 1, "DB connections"},
  {"CHAIN_RPC_URL", LC_CFG_STR, 1, 500, "http://127.0.0.1:8545", 1, "Ethereum JSON-RPC URL"},
  {"CHAIN_ID", LC_CFG_INT, 1, INT64_C(4503599627370495), "31337", 1, "expected chain id"},
  {"CHAIN_TOKEN_ADDRESS", LC_CFG_STR, 42, 42, NULL, 0,
   "ERC-20 token address (unset: the one chain-svc deployed, deploying it on first start)"},
  {"CHAIN_TOKEN_DECIMALS", LC_CFG_INT, 0, 60, "18", 1, "token decimals"},
  {"CHAIN_TOKEN_BIN", LC_CFG_STR, 1, 1024, NULL, 0, "creation bytecode (hex) for deploy-token"},
  {"CHAIN_MNEMONIC", LC_CFG_SECRET, 20, 1000, NULL, 0, "BIP-39 mnemonic of the HD wallet"},
  {"CHAIN_KEYFILE", LC_CFG_STR, 1, 1024, NULL, 0, "encrypted mnemonic file (keyfile-create)"},
  {"CHAIN_KEYFILE_PASSPHRASE", LC_CFG_SECRET, 12, 1024, NULL, 0, "passphrase of CHAIN_KEYFILE"},
  {"CHAIN_CONFIRMATIONS", LC_CFG_INT, 0, 1000, "1", 1, "blocks until a transfer is final"},
  {"CHAIN_GAS_LIMIT", LC_CFG_INT, 21000, 10000000, "120000", 1, "gas limit per transfer"},
  {"CHAIN_POLL_MS", LC_CFG_INT, 10, 60000, "250", 1, "sender loop period"},
  {"CHAIN_MAX_IN_FLIGHT", LC_CFG_INT, 1, 4096, "64", 1, "max submitted, unconfirmed txs"},
  {"CHAIN_CONSUMERS", LC_CFG_INT, 1, 64, "4", 1,
   "debit consumers (connections); their stores share one commit"},
  {"CHAIN_MINE_NUDGE_MS", LC_CFG_INT, 0, 60000, "0", 1,
   "dev nodes only: evm_mine at most this often while sent transfers are unmined (0 = off)"},
  {"CHAIN_STUCK_AFTER_S", LC_CFG_INT, 0, 86400, "60", 1,
   "replace a tx unmined this long with raised fees (0 = never)"},
  {"CHAIN_DROPPED_AFTER_S", LC_CFG_INT, 1, 3600, "10", 1,
   "re-broadcast a tx the node has not known for this long"},
  {"CHAIN_MAX_FEE_GWEI", LC_CFG_INT, 0, 1000000, "500", 1, "max fee per gas cap (0 = none)"},
  {"CHAIN_MAX_DELIVERIES", LC_CFG_INT, 1, 1000, "5", 1, "failed deliveries before the DLQ"},
  {"CHAIN_BALANCE_CHECK_MS", LC_CFG_INT, 100, 600000, "2000", 1, "master balance check period"},
  {"CHAIN_CREDIT_URL", LC_CFG_STR, 1, 500, "http://127.0.0.1:21002", 1,
   "credit-svc base URL (reconciliation)"},
  {"CHAIN_SQL_DIR", LC_CFG_STR, 1, 1024, NULL, 0, "migrations folder"},
  {"CHAIN_DB_SCHEMA", LC_CFG_STR, 1, 48, "chain", 1, "PostgreSQL schema of chain-svc's tables"},
  {"AMQP_URL", LC_CFG_SECRET, 1, 1024, NULL, 1, "RabbitMQ URL"},
  {"INTERNAL_SECRET", LC_CFG_SECRET, 64, 128, NULL, 1, "hex HMAC key of internal requests"},
  {"LOG_LEVEL", LC_CFG_STR, 4, 7, "info", 1, "error|warning|info|debug"},
};
#define NSPECS (sizeof(SPECS) / sizeof(SPECS[0]))

typedef enum { MODE_DAEMON, MODE_DEPLOY, MODE_RECONCILE } run_mode;

/* SPECS with the daemon-only settings made optional for the commands. */
static void mode_specs(run_mode mode, lc_cfg_spec out[NSPECS])
{
  for (size_t i = 0; i < NSPECS; i++) {
    out[i] = SPECS[i];
    if (mode == MODE_DAEMON)
      continue;
    if (strcmp(out[i].name, "AMQP_URL") == 0 ||
        (mode == MODE_DEPLOY && strcmp(out[i].name, "INTERNAL_SECRET") == 0))
      out[i].required = 0;
  }
}

/* Appends "options=-csearch_path=<schema>" unless the URL/conninfo already
 * sets a search_path. */
static int conninfo_with_schema(const char *url, const char *schema, char *out, size_t outsz)
{
  int n;
  if (strstr(url, "search_path") != NULL)
    n = snprintf(out, outsz, "%s", url);
  else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
    n = snprintf(out, outsz, "%s%soptions=-csearch_path%%3D%s", url,
                 strchr(url, '?') != NULL ? "&" : "?", schema);
  else
    n = snprintf(out, outsz, "%s options='-csearch_path=%s'", url, schema);
  return n > 0 && (size_t)n < outsz ? LC_OK : LC_ERR_TOO_LARGE;
}

/* Retries eth_chainId until the node answers with CHAIN_ID or a stop signal
 * arrives (returns 1 then). */
static int wait_for_node(chain_ctx *ctx)
{
  char err[LC_ERR_LEN] = "";
  int64_t backoff = 250;
  uint64_t id = 0;

  for (;;) {
    int rc = chain_node_chain_id(ctx, &id, err);
    if (rc == LC_OK && id == ctx->chain_id)
      return 0;
    if (rc == LC_OK)
      lc_log_error("chain-svc - node reports chain id %llu, expected %llu",
                   (unsigned long long)id, (unsigned long long)ctx->chain_id);
    else
      lc_log_warn("chain-svc - node not reachable: %s", err);
    for (int64_t t = 0; t < backoff; t += 50) {
      struct timespec ts = {0, 50 * 1000000L};
      if (atomic_load(&lc_svc_stopping))
        return 1;
      nanosleep(&ts, NULL);
    }
    backoff = backoff < 5000 ? backoff * 2 : 5000;
  }
}

/* Waits for SIGINT/SIGTERM in its own thread so startup retries can stop. */
static void *signal_main(void *arg)
{
  (void)arg;
  lc_svc_wait();
  return NULL;
}

/* The BIP-39 seed from CHAIN_MNEMONIC or CHAIN_KEYFILE (+ passphrase);
 * exactly one of the two. The mnemonic text is wiped before returning. */
static int load_seed(const lc_cfg *cfg, uint8_t seed[64], char err[LC_ERR_LEN])
{
  const char *mn = lc_cfg_str(cfg, "CHAIN_MNEMONIC");
  const char *kf = lc_cfg_str(cfg, "CHAIN_KEYFILE");
  const char *pw = lc_cfg_str(cfg, "CHAIN_KEYFILE_PASSPHRASE");
  char buf[CHAIN_KEYFILE_MAX_MNEMONIC + 1];
  int rc;

  if ((mn == NULL) == (kf == NULL))
    return lc_err_set(err, LC_ERR_PARAM, "set exactly one of CHAIN_MNEMONIC and CHAIN_KEYFILE");
  if (mn != NULL)
    return wallet_seed_from_mnemonic(mn, "", seed) == LC_OK
               ? LC_OK
               : lc_err_set(err, LC_ERR_PARAM, "CHAIN_MNEMONIC is not a valid BIP-39 mnemonic");
  if (pw == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "CHAIN_KEYFILE needs CHAIN_KEYFILE_PASSPHRASE");
  rc = chain_keyfile_read(kf, pw, buf, sizeof(buf), err);
  if (rc == LC_OK && wallet_seed_from_mnemonic(buf, "", seed) != LC_OK)
    rc = lc_err_set(err, LC_ERR_PARAM, "CHAIN_KEYFILE does not hold a valid BIP-39 mnemonic");
  sodium_memzero(buf, sizeof(buf));
  return rc;
}

/* `chain-svc keyfile-create <path>`: mnemonic on stdin, passphrase from
 * CHAIN_KEYFILE_PASSPHRASE (or CHAIN_KEYFILE_PASSPHRASE_FILE). */
static int cmd_keyfile_create(const char *path)
{
  static const lc_cfg_spec KSPECS[] = {
    {"CHAIN_KEYFILE_PASSPHRASE", LC_CFG_SECRET, 12, 1024, NULL, 1, "passphrase of the key file"},
    {"LOG_LEVEL", LC_CFG_STR, 4, 7, "info", 1, "error|warning|info|debug"},
  };
  lc_cfg *cfg = NULL;
  char err[LC_ERR_LEN] = "", mn[CHAIN_KEYFILE_MAX_MNEMONIC + 2], addr_s[43];
  uint8_t seed[64], priv[32], addr[20];
  size_t n;
  int ret = EXIT_FAILURE;

  if (lc_cfg_load(KSPECS, 2, &cfg, err) != LC_OK) {
    fprintf(stderr, "chain-svc keyfile-create: %s\n", err);
    return EXIT_FAILURE;
  }
  n = fread(mn, 1, sizeof(mn) - 1, stdin);
  mn[n] = '\0';
  while (n > 0 && (mn[n - 1] == '\n' || mn[n - 1] == '\r' || mn[n - 1] == ' '))
    mn[--n] = '\0';
  if (n == 0 || n > CHAIN_KEYFILE_MAX_MNEMONIC ||
      wallet_seed_from_mnemonic(mn, "", seed) != LC_OK) {
    fprintf(stderr, "chain-svc keyfile-create: stdin is not a valid BIP-39 mnemonic\n");
    goto out;
  }
  if (chain_keyfile_write(path, mn, lc_cfg_str(cfg, "CHAIN_KEYFILE_PASSPHRASE"), 0, 0, err) !=
      LC_OK) {
    fprintf(stderr, "chain-svc keyfile-create: %s\n", err);
    goto out;
  }
  if (wallet_derive_eth(seed, 64, 0, 0, priv) == LC_OK &&
      eth_address_from_priv(priv, addr) == LC_OK) {
    eth_address_checksum(addr, addr_s);
    printf("wrote %s (master address %s)\n", path, addr_s);
  }
  ret = EXIT_SUCCESS;
out:
  sodium_memzero(mn, sizeof(mn));
  sodium_memzero(seed, sizeof(seed));
  sodium_memzero(priv, sizeof(priv));
  lc_cfg_free(cfg);
  return ret;
}

static void usage(void)
{
  fprintf(stderr,
          "usage: chain-svc                       run the daemon\n"
          "       chain-svc keyfile-create PATH   encrypt the mnemonic read from stdin\n"
          "       chain-svc deploy-token          deploy CreditToken from the master wallet\n"
          "       chain-svc reconcile [--since T] [--until T]   print the reconciliation\n"
          "                                       report (exit 0 ok, 2 differences)\n");
}

int main(int argc, char **argv)
{
  static chain_ctx ctx;
  static lc_iauth_ctx iauth;
  static uint8_t secret[129];
  static lc_cfg_spec specs[NSPECS];
  struct _u_instance inst;
  lc_cfg *cfg = NULL;
  lc_db_pool *pool = NULL;
  char err[LC_ERR_LEN] = "", conninfo[1200], token[43] = "";
  uint8_t seed[64];
  size_t secret_len = 0;
  pthread_t th_sig, th_cons, th_send;
  int ret = EXIT_FAILURE, sig_started = 0, inst_ok = 0, started = 0, threads = 0, ctx_ok = 0;
  const char *sql_dir, *since = NULL, *until = NULL, *bin, *schema;
  run_mode mode = MODE_DAEMON;

  if (argc >= 2) {
    if (strcmp(argv[1], "keyfile-create") == 0 && argc == 3) {
      if (lc_global_init() != LC_OK)
        return EXIT_FAILURE;
      ret = cmd_keyfile_create(argv[2]);
      lc_global_cleanup();
      return ret;
    } else if (strcmp(argv[1], "deploy-token") == 0 && argc == 2) {
      mode = MODE_DEPLOY;
    } else if (strcmp(argv[1], "reconcile") == 0) {
      mode = MODE_RECONCILE;
      for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--since") == 0 && i + 1 < argc)
          since = argv[++i];
        else if (strcmp(argv[i], "--until") == 0 && i + 1 < argc)
          until = argv[++i];
        else {
          usage();
          return EXIT_FAILURE;
        }
      }
    } else {
      usage();
      return EXIT_FAILURE;
    }
  }

  if (lc_global_init() != LC_OK || lc_svc_block_signals() != LC_OK) {
    fprintf(stderr, "chain-svc: init failed\n");
    return EXIT_FAILURE;
  }
  mode_specs(mode, specs);
  if (lc_cfg_load(specs, NSPECS, &cfg, err) != LC_OK) {
    fprintf(stderr, "chain-svc: config: %s\n", err);
    goto out;
  }
  if (lc_log_init("chain-svc", lc_cfg_str(cfg, "LOG_LEVEL")) != LC_OK) {
    fprintf(stderr, "chain-svc: bad LOG_LEVEL\n");
    goto out;
  }
  if (mode == MODE_DAEMON)
    lc_cfg_dump(cfg);
  /* The HMAC key is the INTERNAL_SECRET text itself (lc/iauth.h); it must be hex. */
  if (lc_cfg_str(cfg, "INTERNAL_SECRET") != NULL) {
    if (lc_hex_decode(lc_cfg_str(cfg, "INTERNAL_SECRET"), secret, sizeof(secret), &secret_len) !=
            LC_OK ||
        lc_strlcpy((char *)secret, lc_cfg_str(cfg, "INTERNAL_SECRET"), sizeof(secret)) != LC_OK) {
      lc_log_error("chain-svc - INTERNAL_SECRET is not hex");
      goto out;
    }
    secret_len = strlen((const char *)secret);
  }
  iauth.secret = secret;
  iauth.secret_len = secret_len;
  iauth.max_skew_s = LC_IAUTH_SKEW_S;
  iauth.replay = NULL; /* process-wide nonce cache */

  schema = lc_cfg_str(cfg, "CHAIN_DB_SCHEMA");
  for (const char *c = schema; *c != '\0'; c++) {
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
      lc_log_error("chain-svc - CHAIN_DB_SCHEMA must be [a-z0-9_]");
      goto out;
    }
  }
  if (conninfo_with_schema(lc_cfg_str(cfg, "CHAIN_DATABASE_URL"), schema, conninfo,
                           sizeof(conninfo)) != LC_OK ||
      lc_db_pool_new(conninfo, (int)lc_cfg_int(cfg, "CHAIN_DB_POOL"), 5000, &pool, err) !=
          LC_OK) {
    lc_log_error("chain-svc - database pool: %s", err);
    goto out;
  }
  sodium_memzero(conninfo, sizeof(conninfo));

  if (load_seed(cfg, seed, err) != LC_OK) {
    sodium_memzero(seed, sizeof(seed));
    lc_log_error("chain-svc - %s", err);
    goto out;
  }
  if (chain_ctx_init(&ctx, pool, lc_cfg_str(cfg, "CHAIN_RPC_URL"),
                     (uint64_t)lc_cfg_int(cfg, "CHAIN_ID"), lc_cfg_str(cfg, "CHAIN_TOKEN_ADDRESS"),
                     seed, sizeof(seed), err) != LC_OK) {
    sodium_memzero(seed, sizeof(seed));
    lc_log_error("chain-svc - %s", err);
    goto out;
  }
  sodium_memzero(seed, sizeof(seed));
  ctx_ok = 1;
  ctx.decimals = (unsigned)lc_cfg_int(cfg, "CHAIN_TOKEN_DECIMALS");
  ctx.gas_limit = (uint64_t)lc_cfg_int(cfg, "CHAIN_GAS_LIMIT");
  ctx.confirmations = (int)lc_cfg_int(cfg, "CHAIN_CONFIRMATIONS");
  ctx.max_in_flight = (int)lc_cfg_int(cfg, "CHAIN_MAX_IN_FLIGHT");
  ctx.poll_ms = (int)lc_cfg_int(cfg, "CHAIN_POLL_MS");
  ctx.consumers = (int)lc_cfg_int(cfg, "CHAIN_CONSUMERS");
  ctx.mine_nudge_ms = (int)lc_cfg_int(cfg, "CHAIN_MINE_NUDGE_MS");
  ctx.stuck_after_s = (int)lc_cfg_int(cfg, "CHAIN_STUCK_AFTER_S");
  ctx.dropped_after_s = (int)lc_cfg_int(cfg, "CHAIN_DROPPED_AFTER_S");
  ctx.max_deliveries = (int)lc_cfg_int(cfg, "CHAIN_MAX_DELIVERIES");
  ctx.balance_check_ms = (int)lc_cfg_int(cfg, "CHAIN_BALANCE_CHECK_MS");
  if (chain_gwei_to_wei((uint64_t)lc_cfg_int(cfg, "CHAIN_MAX_FEE_GWEI"), ctx.fee_cap) != 0)
    goto out;
  ctx.amqp_url = lc_cfg_str(cfg, "AMQP_URL");
  ctx.credit_url = lc_cfg_str(cfg, "CHAIN_CREDIT_URL");
  ctx.isecret = secret_len > 0 ? secret : NULL;
  ctx.isecret_len = secret_len;

  sql_dir = lc_cfg_str(cfg, "CHAIN_SQL_DIR");
  if (sql_dir == NULL)
    sql_dir = CHAIN_SQL_DIR_DEFAULT;
  if (lc_db_migrate(pool, schema, sql_dir, err) != LC_OK) {
    lc_log_error("chain-svc - migrations from %s: %s", sql_dir, err);
    goto out;
  }

  if (pthread_create(&th_sig, NULL, signal_main, NULL) != 0)
    goto out;
  sig_started = 1;
  if (wait_for_node(&ctx) != 0) {
    ret = EXIT_SUCCESS;
    goto out;
  }

  /* The token: configured, else the one chain-svc deployed, else deploy it. */
  bin = lc_cfg_str(cfg, "CHAIN_TOKEN_BIN");
  if (bin == NULL)
    bin = CHAIN_TOKEN_BIN_DEFAULT;
  if (mode == MODE_DEPLOY) {
    if (chain_deploy_token(&ctx, bin, 120, token, err) != LC_OK) {
      lc_log_error("chain-svc - deploy-token: %s", err);
      goto out;
    }
    printf("CHAIN_TOKEN_ADDRESS=%s\nCHAIN_TOKEN_DECIMALS=%u\n", ctx.token_str, ctx.decimals);
    ret = EXIT_SUCCESS;
    goto out;
  }
  if (lc_cfg_str(cfg, "CHAIN_TOKEN_ADDRESS") == NULL) {
    int rc = chain_deploy_lookup(&ctx, token, err);
    if (rc == LC_OK)
      rc = chain_ctx_set_token(&ctx, token);
    else if (rc == LC_ERR_NOTFOUND && mode == MODE_DAEMON) {
      lc_log_info("chain-svc - CHAIN_TOKEN_ADDRESS unset and no deployment recorded: deploying");
      rc = chain_deploy_token(&ctx, bin, 120, token, err);
    }
    if (rc != LC_OK) {
      lc_log_error("chain-svc - token: %s", err);
      goto out;
    }
  }
  lc_log_info("chain-svc - master address %s, token %s, chain id %llu", ctx.master_str,
              ctx.token_str, (unsigned long long)ctx.chain_id);

  if (mode == MODE_RECONCILE) {
    json_t *report = NULL;
    if (chain_reconcile(&ctx, since, until, &report, err) != LC_OK) {
      lc_log_error("chain-svc - reconcile: %s", err);
      goto out;
    }
    json_dumpf(report, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("\n");
    ret = json_is_true(json_object_get(report, "ok")) ? EXIT_SUCCESS : 2;
    json_decref(report);
    goto out;
  }

  if (lc_svc_instance_init(&inst, lc_cfg_str(cfg, "CHAIN_BIND"),
                           (int)lc_cfg_int(cfg, "CHAIN_PORT"), 65536, err) != LC_OK) {
    lc_log_error("chain-svc - http: %s", err);
    goto out;
  }
  inst_ok = 1;
  /* Domain series of /metrics (SQL gauges refreshed on scrape; see docs/operations.md). */
  lc_metric_help("chain_master_balance", "gauge", "Master wallet balance in base units (wei, token units).");
  lc_metric_sql(pool, "chain_transfers", "status", "Transfers by state (pending = signed or submitted).",
                "SELECT v.s, count(t.debit_id) FROM (VALUES ('pending'), ('confirmed'), ('failed')) v(s) LEFT JOIN transfers t ON CASE WHEN t.status IN ('signed', 'submitted') THEN 'pending' ELSE t.status END = v.s GROUP BY v.s");
  lc_metric_sql(pool, "chain_nonce_lag", NULL, "Nonces allocated but not yet final (allocator next nonce - last final nonce - 1).",
                "SELECT greatest(0, coalesce((SELECT max(next_nonce) FROM nonces), 0) - coalesce((SELECT max(nonce) + 1 FROM transfers WHERE status IN ('confirmed', 'failed')), 0))");
  if (lc_svc_add_ops(&inst, "chain-svc", chain_ready, &ctx) != LC_OK ||
      chain_routes_register(&inst, &ctx, &iauth) != LC_OK ||
      lc_svc_start(&inst, NULL, NULL, 64, 30, err) != LC_OK) {
    lc_log_error("chain-svc - http start: %s", err);
    goto out;
  }
  started = 1;
  if (pthread_create(&th_cons, NULL, chain_consumer_main, &ctx) != 0) {
    goto out;
  }
  threads = 1;
  if (pthread_create(&th_send, NULL, chain_sender_main, &ctx) != 0) {
    goto out;
  }
  threads = 2;
  lc_log_info("chain-svc - listening on %s:%lld", lc_cfg_str(cfg, "CHAIN_BIND"),
              (long long)lc_cfg_int(cfg, "CHAIN_PORT"));

  pthread_join(th_sig, NULL); /* returns on SIGINT/SIGTERM (lc_svc_stopping set) */
  sig_started = 0;
  lc_log_info("chain-svc - stopping");
  ret = EXIT_SUCCESS;
out:
  atomic_store(&lc_svc_stopping, 1);
  if (sig_started) {
    /* Wake the sigwait thread ourselves (error path, command done, or stop). */
    pthread_kill(th_sig, SIGTERM);
    pthread_join(th_sig, NULL);
  }
  if (threads >= 1)
    pthread_join(th_cons, NULL);
  if (threads >= 2)
    pthread_join(th_send, NULL);
  if (started)
    ulfius_stop_framework(&inst);
  if (inst_ok)
    ulfius_clean_instance(&inst);
  if (ctx_ok)
    chain_ctx_free(&ctx);
  lc_db_pool_free(pool);
  sodium_memzero(secret, sizeof(secret));
  lc_cfg_free(cfg);
  lc_log_close();
  lc_global_cleanup();
  return ret;
}
