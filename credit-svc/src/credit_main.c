/* credit_main.c - credit-svc daemon: balances, reservations, debits, ledger,
 * audit log, outbox relay to RabbitMQ and chain-result consumer.
 *
 * Threads: HTTP (ulfius, thread per connection), outbox relay, chain-results
 * consumer, reservation sweeper. Shutdown (SIGINT/SIGTERM): stop HTTP first
 * (in-flight requests finish), then let the workers do a last round and join
 * them, then close the pool. Configuration: proto/CONTRACTS.md. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "credit_chainres.h"
#include "credit_handlers.h"
#include "credit_ledger.h"
#include "credit_outbox.h"
#include "lc/amqp.h"
#include "lc/cfg.h"
#include "lc/db.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"

#ifndef CREDIT_SQL_DIR_DEFAULT
#define CREDIT_SQL_DIR_DEFAULT "credit-svc/sql"
#endif

#define SCHEMA "credit"
#define SWEEP_MS 2000

static const lc_cfg_spec SPECS[] = {
    {"CREDIT_BIND", LC_CFG_STR, 1, 64, "127.0.0.1", 1, "listen address"},
    {"CREDIT_PORT", LC_CFG_INT, 1, 65535, "21002", 1, "listen port"},
    {"CREDIT_DATABASE_URL", LC_CFG_SECRET, 1, 1024, NULL, 1,
     "PostgreSQL URL (search_path=credit is added when absent)"},
    {"CREDIT_DB_POOL", LC_CFG_INT, 1, 64, "8", 1, "database connections"},
    {"CREDIT_RESERVATION_TTL", LC_CFG_INT, 5, 86400, "300", 1, "reservation lifetime, seconds"},
    {"CREDIT_SQL_DIR", LC_CFG_STR, 1, 1024, NULL, 0, "migrations folder"},
    {"AMQP_URL", LC_CFG_SECRET, 1, 1024, NULL, 1, "RabbitMQ URL"},
    {"INTERNAL_SECRET", LC_CFG_SECRET, 64, 128, NULL, 1, "HMAC key of internal requests (hex)"},
    {"LOG_LEVEL", LC_CFG_STR, 1, 16, "info", 1, "error|warning|info|debug"},
    {"JWT_ISSUER", LC_CFG_STR, 1, 256, "credit-saas", 0, "unused here"},
    {"JWT_AUDIENCE", LC_CFG_STR, 1, 256, "credit-saas-api", 0, "unused here"},
};

static atomic_bool workers_stop;

typedef struct {
  lc_db_pool *pool;
  const char *amqp_url;
} ready_ctx;

static int ready(void *ud) {
  ready_ctx *r = ud;
  return lc_db_ping(r->pool) && lc_amqp_ping(r->amqp_url);
}

/* Reservation sweeper: expires overdue reservations every SWEEP_MS. */
static void *sweeper_thread(void *arg) {
  lc_db_pool *pool = arg;
  char err[LC_ERR_LEN];
  lc_log_set_rid("sweeper");
  while (!atomic_load(&workers_stop)) {
    int n = 0;
    if (credit_ledger_expire(pool, &n, err) != LC_OK)
      lc_log_warn("sweeper - %s", err);
    else if (n > 0)
      lc_log_info("Event - %d reservation(s) expired", n);
    for (int waited = 0; waited < SWEEP_MS && !atomic_load(&workers_stop); waited += 100) {
      struct timespec ts = {0, 100 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  return NULL;
}

/* Adds search_path=credit to url unless it already sets a search_path. */
static int conninfo_with_schema(const char *url, char *out, size_t outsz) {
  int n;
  if (strstr(url, "search_path") != NULL)
    n = snprintf(out, outsz, "%s", url);
  else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
    n = snprintf(out, outsz, "%s%soptions=-csearch_path%%3D" SCHEMA, url,
                 strchr(url, '?') ? "&" : "?");
  else
    n = snprintf(out, outsz, "%s options='-csearch_path=" SCHEMA "'", url);
  return (n < 0 || (size_t)n >= outsz) ? LC_ERR_PARAM : LC_OK;
}

/* Applies migrations, retrying for ~30 s while the database is unreachable. */
static int migrate(lc_db_pool *pool, const char *dir, char err[LC_ERR_LEN]) {
  int rc = LC_ERR;
  for (int i = 0; i < 30; i++) {
    rc = lc_db_migrate(pool, SCHEMA, dir, err);
    if (rc != LC_ERR_UNAVAIL && rc != LC_ERR_TIMEOUT)
      return rc;
    lc_log_warn("credit-svc - database not reachable yet: %s", err);
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
  }
  return rc;
}

int main(void) {
  char err[LC_ERR_LEN] = "";
  lc_cfg *cfg = NULL;
  lc_db_pool *pool = NULL;
  struct _u_instance inst;
  int inst_ok = 0, started = 0, exit_code = EXIT_FAILURE;
  pthread_t t_relay, t_chain, t_sweep;
  int have_relay = 0, have_chain = 0, have_sweep = 0;
  static char conninfo[1200];

  if (lc_global_init() != LC_OK || lc_svc_block_signals() != LC_OK) {
    fprintf(stderr, "credit-svc: cannot initialise\n");
    return EXIT_FAILURE;
  }
  if (lc_cfg_load(SPECS, sizeof(SPECS) / sizeof(SPECS[0]), &cfg, err) != LC_OK) {
    fprintf(stderr, "credit-svc: configuration error: %s\n", err);
    goto out;
  }
  if (lc_log_init("credit-svc", lc_cfg_str(cfg, "LOG_LEVEL")) != LC_OK) {
    fprintf(stderr, "credit-svc: LOG_LEVEL must be error|warning|info|debug\n");
    goto out;
  }
  lc_cfg_dump(cfg);
  if (conninfo_with_schema(lc_cfg_str(cfg, "CREDIT_DATABASE_URL"), conninfo, sizeof(conninfo)) !=
      LC_OK) {
    lc_log_error("credit-svc - CREDIT_DATABASE_URL too long");
    goto out;
  }
  if (lc_db_pool_new(conninfo, (int)lc_cfg_int(cfg, "CREDIT_DB_POOL"), 2000, &pool, err) !=
      LC_OK) {
    lc_log_error("credit-svc - database pool: %s", err);
    goto out;
  }
  const char *sql_dir = lc_cfg_str(cfg, "CREDIT_SQL_DIR");
  if (sql_dir == NULL)
    sql_dir = CREDIT_SQL_DIR_DEFAULT;
  if (migrate(pool, sql_dir, err) != LC_OK) {
    lc_log_error("credit-svc - migrations from %s failed: %s", sql_dir, err);
    goto out;
  }

  const char *secret = lc_cfg_str(cfg, "INTERNAL_SECRET");
  const char *amqp_url = lc_cfg_str(cfg, "AMQP_URL");
  credit_ctx ctx = {pool,
                    lc_cfg_int(cfg, "CREDIT_RESERVATION_TTL"),
                    {(const uint8_t *)secret, strlen(secret), 60}};
  ready_ctx rctx = {pool, amqp_url};
  if (lc_svc_instance_init(&inst, lc_cfg_str(cfg, "CREDIT_BIND"),
                           (int)lc_cfg_int(cfg, "CREDIT_PORT"), 64 * 1024, err) != LC_OK) {
    lc_log_error("credit-svc - http instance: %s", err);
    goto out;
  }
  inst_ok = 1;
  if (lc_svc_add_ops(&inst, "credit-svc", ready, &rctx) != LC_OK ||
      credit_handlers_register(&inst, &ctx, err) != LC_OK) {
    lc_log_error("credit-svc - routes: %s", err[0] ? err : "ops endpoints");
    goto out;
  }

  credit_relay_cfg relay = {pool, conninfo, amqp_url, CREDIT_EVENTS_EXCHANGE, 100, &workers_stop};
  credit_chainres_cfg chain = {pool, amqp_url, &workers_stop};
  have_relay = pthread_create(&t_relay, NULL, credit_outbox_thread, &relay) == 0;
  have_chain = pthread_create(&t_chain, NULL, credit_chainres_thread, &chain) == 0;
  have_sweep = pthread_create(&t_sweep, NULL, sweeper_thread, pool) == 0;
  if (!have_relay || !have_chain || !have_sweep) {
    lc_log_error("credit-svc - cannot start worker threads");
    goto out;
  }
  if (lc_svc_start(&inst, NULL, NULL, 256, 30, err) != LC_OK) {
    lc_log_error("credit-svc - cannot listen: %s", err);
    goto out;
  }
  started = 1;
  lc_log_info("Event - credit-svc listening on %s:%lld", lc_cfg_str(cfg, "CREDIT_BIND"),
              (long long)lc_cfg_int(cfg, "CREDIT_PORT"));
  int sig = lc_svc_wait();
  lc_log_info("Event - credit-svc stopping (signal %d)", sig);
  exit_code = EXIT_SUCCESS;

out:
  if (started)
    ulfius_stop_framework(&inst);
  atomic_store(&workers_stop, true);
  if (have_relay)
    pthread_join(t_relay, NULL);
  if (have_chain)
    pthread_join(t_chain, NULL);
  if (have_sweep)
    pthread_join(t_sweep, NULL);
  if (inst_ok)
    ulfius_clean_instance(&inst);
  lc_db_pool_free(pool);
  lc_cfg_free(cfg);
  lc_log_close();
  lc_global_cleanup();
  return exit_code;
}
