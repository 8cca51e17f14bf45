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

#include "credit_audit.h"
#include "credit_chainres.h"
#include "credit_handlers.h"
#include "credit_idem.h"
#include "credit_ledger.h"
#include "credit_notify.h"
#include "lc/outbox.h"
#include "lc/amqp.h"
#include "lc/cfg.h"
#include "lc/db.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "payments_handlers.h"

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
    {"CREDIT_LOW_BALANCE_THRESHOLD", LC_CFG_INT, 0, 1000000, "10", 1,
     "low-credit email when a debit crosses below this balance (0 = off)"},
    {"CREDIT_MAIL_PROVIDER", LC_CFG_STR, 4, 8, "smtp", 1, "smtp|sendgrid|mailgun"},
    {"CREDIT_MAIL_FROM", LC_CFG_STR, 3, 254, "no-reply@credits.localhost", 1,
     "sender address of notification emails"},
    {"CREDIT_SMTP_URL", LC_CFG_STR, 8, 512, "smtp://127.0.0.1:21025", 1,
     "SMTP server (smtp://host:port or smtps://host:port)"},
    {"CREDIT_SMTP_USER", LC_CFG_STR, 1, 256, NULL, 0, "SMTP user (STARTTLS then required)"},
    {"CREDIT_SMTP_PASSWORD", LC_CFG_SECRET, 1, 256, NULL, 0, "SMTP password"},
    {"CREDIT_MAIL_API_URL", LC_CFG_STR, 8, 512, NULL, 0,
     "SendGrid / Mailgun API base URL (default https://api.sendgrid.com / https://api.mailgun.net)"},
    {"CREDIT_MAIL_API_KEY", LC_CFG_SECRET, 1, 256, NULL, 0, "SendGrid / Mailgun API key"},
    {"CREDIT_MAILGUN_DOMAIN", LC_CFG_STR, 1, 253, NULL, 0, "Mailgun sending domain"},
    {"CREDIT_AUTH_URL", LC_CFG_STR, 8, 512, "http://127.0.0.1:21001", 1,
     "auth-svc base URL (email lookup for notifications)"},
    {"CREDIT_NOTIFY_POLL_MS", LC_CFG_INT, 50, 60000, "500", 1, "notifier poll interval, ms"},
    {"AMQP_URL", LC_CFG_SECRET, 1, 1024, NULL, 1, "RabbitMQ URL"},
    {"INTERNAL_SECRET", LC_CFG_SECRET, 64, 128, NULL, 1, "HMAC key of internal requests (hex)"},
    {"LOG_LEVEL", LC_CFG_STR, 1, 16, "info", 1, "error|warning|info|debug"},
    {"JWT_ISSUER", LC_CFG_STR, 1, 256, "credit-saas", 0, "unused here"},
    {"JWT_AUDIENCE", LC_CFG_STR, 1, 256, "credit-saas-api", 0, "unused here"},
    PAYMENTS_CFG_SPECS, /* payments_handlers.h: Stripe / Razorpay */
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
    if (credit_idem_sweep(pool, &n, err) != LC_OK)
      lc_log_warn("sweeper - idempotency keys: %s", err);
    else if (n > 0)
      lc_log_info("Event - %d expired idempotency key(s) deleted", n);
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

/* Notifier settings from the validated configuration (strings borrowed from
 * cfg, which outlives the thread). */
static int notify_config(const lc_cfg *cfg, lc_db_pool *pool, const char *secret,
                         credit_notify_cfg *n) {
  memset(n, 0, sizeof(*n));
  if (credit_mail_provider_parse(lc_cfg_str(cfg, "CREDIT_MAIL_PROVIDER"), &n->provider) !=
      LC_OK) {
    lc_log_error("credit-svc - CREDIT_MAIL_PROVIDER must be smtp|sendgrid|mailgun");
    return LC_ERR_PARAM;
  }
  n->pool = pool;
  n->from = lc_cfg_str(cfg, "CREDIT_MAIL_FROM");
  if (!credit_mail_addr_valid(n->from)) {
    lc_log_error("credit-svc - CREDIT_MAIL_FROM is not a plain address");
    return LC_ERR_PARAM;
  }
  n->smtp_url = lc_cfg_str(cfg, "CREDIT_SMTP_URL");
  n->smtp_user = lc_cfg_str(cfg, "CREDIT_SMTP_USER");
  n->smtp_password = lc_cfg_str(cfg, "CREDIT_SMTP_PASSWORD");
  n->api_base = lc_cfg_str(cfg, "CREDIT_MAIL_API_URL");
  if (n->api_base == NULL)
    n->api_base = n->provider == CREDIT_MAIL_MAILGUN ? "https://api.mailgun.net"
                                                     : "https://api.sendgrid.com";
  n->api_key = lc_cfg_str(cfg, "CREDIT_MAIL_API_KEY");
  n->mailgun_domain = lc_cfg_str(cfg, "CREDIT_MAILGUN_DOMAIN");
  if (n->provider != CREDIT_MAIL_SMTP && n->api_key == NULL) {
    lc_log_error("credit-svc - CREDIT_MAIL_API_KEY is required for this mail provider");
    return LC_ERR_PARAM;
  }
  if (n->provider == CREDIT_MAIL_MAILGUN && n->mailgun_domain == NULL) {
    lc_log_error("credit-svc - CREDIT_MAILGUN_DOMAIN is required for mailgun");
    return LC_ERR_PARAM;
  }
  n->auth_url = lc_cfg_str(cfg, "CREDIT_AUTH_URL");
  n->secret = (const uint8_t *)secret;
  n->secret_len = strlen(secret);
  n->poll_ms = (int)lc_cfg_int(cfg, "CREDIT_NOTIFY_POLL_MS");
  n->stop = &workers_stop;
  credit_ledger_set_low_threshold(lc_cfg_int(cfg, "CREDIT_LOW_BALANCE_THRESHOLD"));
  return LC_OK;
}

int main(void) {
  char err[LC_ERR_LEN] = "";
  lc_cfg *cfg = NULL;
  lc_db_pool *pool = NULL;
  struct _u_instance inst;
  int inst_ok = 0, started = 0, exit_code = EXIT_FAILURE;
  pthread_t t_relay, t_chain, t_sweep, t_audit, t_notify;
  int have_relay = 0, have_chain = 0, have_sweep = 0, have_audit = 0, have_notify = 0;
  static char conninfo[1200];
  lc_outbox_bell *bell = NULL;

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
                    {(const uint8_t *)secret, strlen(secret), LC_IAUTH_SKEW_S, NULL},
                    lc_cfg_str(cfg, "CREDIT_AUTH_URL")};
  ready_ctx rctx = {pool, amqp_url};
  if (lc_svc_instance_init(&inst, lc_cfg_str(cfg, "CREDIT_BIND"),
                           (int)lc_cfg_int(cfg, "CREDIT_PORT"), 64 * 1024, err) != LC_OK) {
    lc_log_error("credit-svc - http instance: %s", err);
    goto out;
  }
  inst_ok = 1;
  payments_ctx pay;
  if (payments_ctx_init(cfg, pool, &pay, err) != LC_OK) {
    lc_log_error("credit-svc - configuration error: %s", err);
    goto out;
  }
  /* Domain series of /metrics (see docs/operations.md). */
  lc_metric_add("credit_debits_committed_total", 0);
  lc_metric_help("credit_debits_committed_total", "counter", "Debits committed (idempotent replays excluded).");
  lc_metric_sql(pool, "credit_outbox_backlog", NULL, "Outbox rows not yet confirmed by the broker.",
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL");
  if (lc_svc_add_ops(&inst, "credit-svc", ready, &rctx) != LC_OK ||
      credit_handlers_register(&inst, &ctx, err) != LC_OK ||
      payments_handlers_register(&inst, &pay, err) != LC_OK) {
    lc_log_error("credit-svc - routes: %s", err[0] ? err : "ops endpoints");
    goto out;
  }

  /* The relay is woken by the debit commits of this process (bell) and
   * polls every 100 ms for rows another instance left behind. */
  if (lc_outbox_bell_new(&bell, err) != LC_OK) {
    lc_log_error("credit-svc - %s", err);
    goto out;
  }
  credit_ledger_set_outbox_bell(bell);
  lc_outbox_cfg relay = {.pool = pool,
                         .bell = bell,
                         .amqp_url = amqp_url,
                         .exchange = "credit.events",
                         .declare_topology = 1,
                         .poll_ms = 100,
                         .name = "credit-outbox",
                         .stop = &workers_stop};
  credit_chainres_cfg chain = {pool, amqp_url, &workers_stop};
  credit_audit_cfg audit = {pool, amqp_url, &workers_stop};
  credit_notify_cfg notify;
  if (notify_config(cfg, pool, secret, &notify) != LC_OK)
    goto out;
  have_relay = pthread_create(&t_relay, NULL, lc_outbox_thread, &relay) == 0;
  have_chain = pthread_create(&t_chain, NULL, credit_chainres_thread, &chain) == 0;
  have_sweep = pthread_create(&t_sweep, NULL, sweeper_thread, pool) == 0;
  have_audit = pthread_create(&t_audit, NULL, credit_audit_thread, &audit) == 0;
  have_notify = pthread_create(&t_notify, NULL, credit_notify_thread, &notify) == 0;
  if (!have_relay || !have_chain || !have_sweep || !have_audit || !have_notify) {
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
  if (have_audit)
    pthread_join(t_audit, NULL);
  if (have_notify)
    pthread_join(t_notify, NULL);
  if (inst_ok)
    ulfius_clean_instance(&inst);
  credit_ledger_set_outbox_bell(NULL);
  lc_outbox_bell_free(bell);
  lc_db_pool_free(pool);
  lc_cfg_free(cfg);
  lc_log_close();
  lc_global_cleanup();
  return exit_code;
}
