/* main.c - storage-svc: files and reports stored in S3-compatible
 * storage, metadata in its own schema "storage", paid through credit-svc's
 * reserve -> commit / release.
 *
 * Order (lc/svc.h): global init, block signals, config, log, DB pool +
 * migrations, S3 bucket, HTTP instance + routes, start, settler thread
 * (settle.h), wait for SIGINT/SIGTERM, drain paid requests, stop the
 * settler, stop, free. Config only from the
 * environment (table below, proto/CONTRACTS.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handlers.h"
#include "lc/cfg.h"
#include "lc/db.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "s3.h"
#include "liveness.h"
#include "settle.h"

#ifndef STORAGE_SQL_DIR_DEFAULT
#define STORAGE_SQL_DIR_DEFAULT "storage-svc/sql"
#endif

#define APP_NAME "storage-svc"
#define DRAIN_MS 15000

static const lc_cfg_spec SPECS[] = {
    {"STORAGE_BIND", LC_CFG_STR, 1, 64, "127.0.0.1", 1, "listen address"},
    {"STORAGE_PORT", LC_CFG_INT, 1, 65535, "21003", 1, "listen port"},
    {"STORAGE_DATABASE_URL", LC_CFG_SECRET, 1, 1024, NULL, 1, "PostgreSQL URL (role storage_svc)"},
    {"STORAGE_DB_POOL", LC_CFG_INT, 1, 64, "4", 1, "database connections"},
    {"STORAGE_CREDIT_URL", LC_CFG_STR, 8, 255, "http://127.0.0.1:21002", 1, "credit-svc base URL"},
    {"STORAGE_SQL_DIR", LC_CFG_STR, 1, 1024, NULL, 0, "migrations folder (default: source tree)"},
    {"STORAGE_MAX_UPLOAD", LC_CFG_INT, 1024, 1073741824, "10485760", 1,
     "largest accepted file (bytes); the gateway's GW_MAX_BODY must be >= this + 65536"},
    {"STORAGE_SPOOL_DIR", LC_CFG_STR, 1, 255, "/tmp", 1,
     "folder for the unlinked spool files of uploads in progress (O_TMPFILE)"},
    {"S3_ENDPOINT", LC_CFG_STR, 8, 255, "http://127.0.0.1:24568", 1, "S3 endpoint scheme://host[:port]"},
    {"S3_ADDRESSING", LC_CFG_STR, 4, 7, "path", 1, "path (endpoint/bucket/key) | virtual (bucket.host/key)"},
    {"S3_TIMEOUT_MS", LC_CFG_INT, 1000, 600000, "30000", 1, "timeout of one S3 request (ms)"},
    {"S3_REGION", LC_CFG_STR, 1, 63, "us-east-1", 1, "S3 region"},
    {"S3_BUCKET", LC_CFG_STR, 3, 63, "credit-saas", 1, "S3 bucket"},
    {"S3_ACCESS_KEY", LC_CFG_STR, 1, 127, NULL, 1, "S3 access key id"},
    {"S3_SECRET_KEY", LC_CFG_SECRET, 1, 255, NULL, 1, "S3 secret access key"},
    {"STORAGE_SETTLE_INTERVAL_MS", LC_CFG_INT, 100, 60000, "2000", 1,
     "settler pass period (ms): unsettled paid rows are resolved with credit-svc"},
    {"STORAGE_SETTLE_GRACE_S", LC_CFG_INT, 30, 3600, "60", 1,
     "age (s) after which a row whose request never finished (crash) is settled"},
    {"STORAGE_HEARTBEAT_MS", LC_CFG_INT, 100, 60000, "1000", 1,
     "instance heartbeat period (ms) in storage.instances"},
    {"STORAGE_CLAIM_STALE_S", LC_CFG_INT, 2, 600, "10", 1,
     "seconds without a heartbeat after which another instance may take over an unfinished "
     "Idempotency-Key claim of that instance"},
    {"INTERNAL_SECRET", LC_CFG_SECRET, 64, 128, NULL, 1, "hex HMAC key for internal calls"},
    {"LOG_LEVEL", LC_CFG_STR, 4, 7, "info", 1, "error|warning|info|debug"},
};

typedef struct {
  lc_db_pool *pool;
  const storage_s3 *s3;
} ready_ctx;

static int ready(void *ud)
{
  const ready_ctx *rc = ud;
  return lc_db_ping(rc->pool) && storage_s3_ping(rc->s3);
}

static int hex_ok(const char *s)
{
  for (; *s != '\0'; s++) {
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
      return 0;
  }
  return 1;
}

/* The bucket is created at start; a store that is down now is not fatal
 * (readyz says so and paid requests are released), so retry briefly only. */
static void ensure_bucket(const storage_s3 *s3)
{
  char err[LC_ERR_LEN];
  struct timespec ts = {0, 500 * 1000 * 1000};

  for (int i = 0; i < 10; i++) {
    if (storage_s3_ensure_bucket(s3, err) == LC_OK) {
      lc_log_info("main - bucket %s ready", s3->bucket);
      return;
    }
    nanosleep(&ts, NULL);
  }
  lc_log_warn("main - bucket %s not ready: %s (continuing, /readyz fails)", s3->bucket, err);
}

static void drain(storage_app *app)
{
  struct timespec ts = {0, 50 * 1000 * 1000};
  int64_t until = lc_mono_ms() + DRAIN_MS;

  while (atomic_load(&app->inflight) > 0 && lc_mono_ms() < until)
    nanosleep(&ts, NULL);
  if (atomic_load(&app->inflight) > 0)
    lc_log_warn("main - %d paid requests still running at shutdown", atomic_load(&app->inflight));
}

int main(void)
{
  struct _u_instance inst;
  int inst_ok = 0, started = 0, rc = EXIT_FAILURE;
  char err[LC_ERR_LEN] = "";
  lc_cfg *cfg = NULL;
  lc_db_pool *pool = NULL;
  static storage_s3 s3;
  static storage_creditc credit;
  static storage_app app;
  static lc_iauth_ctx iauth;
  static ready_ctx rctx;
  static storage_settler settler;
  static storage_live live;
  storage_settle_ctx sctx;
  const char *secret, *sql_dir;

  if (lc_global_init() != LC_OK || lc_svc_block_signals() != LC_OK) {
    fprintf(stderr, APP_NAME ": init failed\n");
    return EXIT_FAILURE;
  }
  if (lc_cfg_load(SPECS, sizeof(SPECS) / sizeof(SPECS[0]), &cfg, err) != LC_OK) {
    fprintf(stderr, APP_NAME ": config: %s\n", err);
    goto out;
  }
  if (lc_log_init(APP_NAME, lc_cfg_str(cfg, "LOG_LEVEL")) != LC_OK) {
    fprintf(stderr, APP_NAME ": LOG_LEVEL: must be error, warning, info or debug\n");
    goto out;
  }
  lc_cfg_dump(cfg);
  secret = lc_cfg_str(cfg, "INTERNAL_SECRET");
  if (!hex_ok(secret)) {
    lc_log_error("main - INTERNAL_SECRET: must be hex");
    goto out;
  }
  if (storage_s3_init(&s3, lc_cfg_str(cfg, "S3_ENDPOINT"), lc_cfg_str(cfg, "S3_REGION"),
                      lc_cfg_str(cfg, "S3_BUCKET"), lc_cfg_str(cfg, "S3_ACCESS_KEY"),
                      lc_cfg_str(cfg, "S3_SECRET_KEY"), (long)lc_cfg_int(cfg, "S3_TIMEOUT_MS"),
                      err) != LC_OK ||
      storage_s3_set_addressing(&s3, lc_cfg_str(cfg, "S3_ADDRESSING"), err) != LC_OK ||
      storage_creditc_init(&credit, lc_cfg_str(cfg, "STORAGE_CREDIT_URL"),
                           (const uint8_t *)secret, strlen(secret), 5000, err) != LC_OK) {
    lc_log_error("main - %s", err);
    goto out;
  }

  if (lc_db_pool_new(lc_cfg_str(cfg, "STORAGE_DATABASE_URL"), (int)lc_cfg_int(cfg, "STORAGE_DB_POOL"),
                     5000, &pool, err) != LC_OK) {
    lc_log_error("main - database pool: %s", err);
    goto out;
  }
  sql_dir = lc_cfg_str(cfg, "STORAGE_SQL_DIR");
  if (sql_dir == NULL)
    sql_dir = STORAGE_SQL_DIR_DEFAULT;
  if (lc_db_migrate(pool, "storage", sql_dir, err) != LC_OK) {
    lc_log_error("main - migrations from %s: %s", sql_dir, err);
    goto out;
  }
  ensure_bucket(&s3);

  app.reports.pool = pool;
  app.reports.s3 = &s3;
  app.reports.credit = &credit;
  app.reports.max_entries = STORAGE_REPORT_MAX_ENTRIES;
  app.files.pool = pool;
  app.files.s3 = &s3;
  app.files.credit = &credit;
  app.files.max_upload = (size_t)lc_cfg_int(cfg, "STORAGE_MAX_UPLOAD");
  app.files.spool_dir = lc_cfg_str(cfg, "STORAGE_SPOOL_DIR");
  app.reports.settle_grace_s = (int)lc_cfg_int(cfg, "STORAGE_SETTLE_GRACE_S");
  app.files.settle_grace_s = app.reports.settle_grace_s;
  atomic_init(&app.inflight, 0);
  iauth.secret = (const uint8_t *)secret;
  iauth.secret_len = strlen(secret);
  iauth.max_skew_s = LC_IAUTH_SKEW_S;
  iauth.replay = NULL; /* process-wide nonce cache */
  rctx.pool = pool;
  rctx.s3 = &s3;

  storage_idem_set_stale_s((int)lc_cfg_int(cfg, "STORAGE_CLAIM_STALE_S"));
  if (storage_live_start(&live, pool, (int)lc_cfg_int(cfg, "STORAGE_HEARTBEAT_MS"), err) !=
      LC_OK) {
    lc_log_error("main - %s", err);
    goto out;
  }

  if (lc_svc_instance_init(&inst, lc_cfg_str(cfg, "STORAGE_BIND"),
                           (int)lc_cfg_int(cfg, "STORAGE_PORT"),
                           app.files.max_upload + STORAGE_MP_OVERHEAD, err) != LC_OK) {
    lc_log_error("main - %s", err);
    goto out;
  }
  inst_ok = 1;
  if (lc_svc_add_ops(&inst, APP_NAME, ready, &rctx) != LC_OK ||
      storage_handlers_register(&inst, &app, &iauth, err) != LC_OK) {
    lc_log_error("main - routes: %s", err[0] != '\0' ? err : "ops endpoints");
    goto out;
  }
  if (lc_svc_start(&inst, NULL, NULL, 256, 30, err) != LC_OK) {
    lc_log_error("main - start: %s", err);
    goto out;
  }
  started = 1;
  sctx = (storage_settle_ctx){pool, &s3, &credit};
  if (storage_settler_start(&settler, &sctx, (int)lc_cfg_int(cfg, "STORAGE_SETTLE_INTERVAL_MS"),
                            err) != LC_OK) {
    lc_log_error("main - %s", err);
    goto out;
  }
  lc_log_info("main - listening on %s:%d", lc_cfg_str(cfg, "STORAGE_BIND"),
              (int)lc_cfg_int(cfg, "STORAGE_PORT"));

  lc_svc_wait();
  lc_log_info("main - stopping");
  drain(&app);
  rc = EXIT_SUCCESS;
out:
  storage_settler_stop(&settler);
  storage_live_stop(&live);
  if (started)
    ulfius_stop_framework(&inst);
  if (inst_ok)
    ulfius_clean_instance(&inst);
  lc_db_pool_free(pool);
  storage_s3_clear(&s3);
  lc_cfg_free(cfg);
  lc_log_close();
  lc_global_cleanup();
  return rc;
}
