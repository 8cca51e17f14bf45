/* main.c - auth-svc: users, passwords (Argon2id), access JWTs (EdDSA) and
 * rotated refresh tokens. Configuration (environment only, validated before
 * any socket opens), wiring of pools and routes, bootstrap admin, lifecycle
 * in the order of lc/svc.h. Listens on AUTH_BIND:AUTH_PORT (plain HTTP,
 * loopback); every route except the ops ones requires the gateway's signed
 * identity headers (lc/iauth.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <ulfius.h>

#include "accounts.h"
#include "handlers.h"
#include "lc/cfg.h"
#include "lc/db.h"
#include "lc/iauth.h"
#include "lc/jwt.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "lc/amqp.h"
#include "lc/outbox.h"
#include "events.h"
#include "oauth_handlers.h"
#include "passwords.h"
#include "sessions.h"

#include <pthread.h>
#include <stdbool.h>

#ifndef AUTH_SQL_DIR_DEFAULT
#define AUTH_SQL_DIR_DEFAULT "auth-svc/sql"
#endif

#define APP "auth-svc"

static const lc_cfg_spec SPECS[] = {
  {"AUTH_BIND", LC_CFG_STR, 1, 64, "127.0.0.1", 1, "listen address"},
  {"AUTH_PORT", LC_CFG_INT, 1, 65535, "21001", 1, "listen port"},
  {"AUTH_DATABASE_URL", LC_CFG_SECRET, 1, 1024, NULL, 1,
   "libpq URI; search_path should name AUTH_DB_SCHEMA"},
  {"AUTH_DB_SCHEMA", LC_CFG_STR, 1, 63, "auth", 1, "schema owning the auth tables"},
  {"AUTH_DB_POOL", LC_CFG_INT, 1, 64, "4", 1, "PostgreSQL connections"},
  {"AUTH_SQL_DIR", LC_CFG_STR, 1, 1024, NULL, 0, "migrations folder (default: build tree)"},
  {"AUTH_JWT_SEED", LC_CFG_SECRET, 64, 64, NULL, 1, "Ed25519 seed, hex 32 bytes"},
  {"AUTH_ACCESS_TTL", LC_CFG_INT, 60, 86400, "900", 1, "access JWT lifetime (s)"},
  {"AUTH_REFRESH_TTL", LC_CFG_INT, 300, 7776000, "604800", 1,
   "refresh family lifetime, absolute (s)"},
  {"AUTH_ADMIN_EMAIL", LC_CFG_STR, 3, 254, NULL, 0, "bootstrap admin email"},
  {"AUTH_ADMIN_PASSWORD", LC_CFG_SECRET, 8, 256, NULL, 0, "bootstrap admin password"},
  {"AUTH_CREDIT_URL", LC_CFG_STR, 8, 512, NULL, 0, "credit-svc base URL (account opening)"},
  {"AUTH_CHAIN_URL", LC_CFG_STR, 8, 512, NULL, 0,
   "chain-svc base URL (custodial_address in admin views)"},
  {"AUTH_TOKEN_ENC_KEY", LC_CFG_SECRET, 64, 64, NULL, 0,
   "hex 32 bytes: seals refresh successors for the grace window (unset = no grace window)"},
  {"AUTH_REFRESH_GRACE_MS", LC_CFG_INT, 0, 2000, "2000", 1,
   "window in which concurrent refreshes of one token get the same successor (ms)"},
  {"AUTH_ALLOWED_ORIGINS", LC_CFG_STR, 1, 2048, "https://127.0.0.1:8443", 1,
   "comma list of Origins allowed to refresh with the cookie"},
  {"AMQP_URL", LC_CFG_SECRET, 8, 1024, NULL, 0, "RabbitMQ URL for auth.events (unset = no relay)"},
  {"AUTH_PWHASH_MEMLIMIT", LC_CFG_INT, 67108864, 4294967296LL, "67108864", 1,
   "Argon2id memory per hash (bytes)"},
  {"AUTH_PWHASH_OPSLIMIT", LC_CFG_INT, 2, 64, "2", 1, "Argon2id passes"},
  {"AUTH_PWHASH_CONCURRENCY", LC_CFG_INT, 1, 256, "2", 1, "concurrent Argon2id runs"},
  {"AUTH_PWHASH_WAIT_MS", LC_CFG_INT, 1, 60000, "3000", 1,
   "max wait for a hashing slot before 503 (ms)"},
  {"AUTH_PWHASH_QUEUE", LC_CFG_INT, 0, 10000, "8", 1,
   "max requests waiting for a hashing slot; more get 503 at once (0 = unbounded)"},
  {"AUTH_MAX_CONNS", LC_CFG_INT, 1, 10000, "256", 1, "HTTP connection limit"},
  {"INTERNAL_SECRET", LC_CFG_SECRET, 64, 128, NULL, 1, "internal HMAC key, hex"},
  {"LOG_LEVEL", LC_CFG_STR, 4, 7, "info", 1, "error|warning|info|debug"},
  {"JWT_ISSUER", LC_CFG_STR, 1, 127, "credit-saas", 1, "JWT iss"},
  {"JWT_AUDIENCE", LC_CFG_STR, 1, 127, "credit-saas-api", 1, "JWT aud"},
  OAUTH_CFG_SPECS, /* oauth_handlers.h */
};

static int is_dir(const char *p) {
  struct stat st;
  return p != NULL && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* AUTH_SQL_DIR, else <exe dir>/../../auth-svc/sql when present, else the
 * build-time default (the source tree). */
static void resolve_sql_dir(const lc_cfg *cfg, char out[PATH_MAX]) {
  const char *env = lc_cfg_str(cfg, "AUTH_SQL_DIR");
  char exe[PATH_MAX];
  ssize_t n;

  if (env != NULL) {
    lc_strlcpy(out, env, PATH_MAX);
    return;
  }
  n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    char *slash;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash != NULL) {
      *slash = '\0';
      if (snprintf(out, PATH_MAX, "%s/../../auth-svc/sql", exe) < PATH_MAX && is_dir(out))
        return;
    }
  }
  lc_strlcpy(out, AUTH_SQL_DIR_DEFAULT, PATH_MAX);
}

/* Relay housekeeping: wipes sealed refresh successors past the grace window
 * (at most once a second). */
static void relay_tick(void *ud) {
  static int64_t next;
  const auth_ctx *ctx = ud;
  char err[LC_ERR_LEN];
  PGconn *c = NULL;
  int n = 0;

  if (lc_mono_ms() < next)
    return;
  next = lc_mono_ms() + 1000;
  if (lc_db_acquire(ctx->pool, &c, err) != LC_OK)
    return;
  if (auth_sessions_wipe_successors(c, ctx->tok.grace_ms, &n, err) != LC_OK)
    lc_log_warn("relay_tick - wipe successors: %s", err);
  lc_db_release(ctx->pool, c);
}

static int ready(void *ud) {
  return lc_db_ping((lc_db_pool *)ud);
}

/* Applies migrations, waiting up to ~30 s for the database to come up. */
static int migrate(lc_db_pool *pool, const char *schema, const char *dir, char err[LC_ERR_LEN]) {
  int rc = LC_ERR;
  for (int i = 0; i < 30 && !atomic_load(&lc_svc_stopping); i++) {
    rc = lc_db_migrate(pool, schema, dir, err);
    if (rc != LC_ERR_UNAVAIL && rc != LC_ERR_TIMEOUT)
      break;
    lc_log_warn("migrate - database not reachable yet: %s", err);
    sleep(1);
  }
  return rc;
}

/* Creates the bootstrap admin when AUTH_ADMIN_EMAIL/PASSWORD are set. */
static int bootstrap_admin(const lc_cfg *cfg, const auth_ctx *ctx, char err[LC_ERR_LEN]) {
  const char *email = lc_cfg_str(cfg, "AUTH_ADMIN_EMAIL");
  const char *pw = lc_cfg_str(cfg, "AUTH_ADMIN_PASSWORD");
  auth_user u;
  int created = 0, rc;

  if (email == NULL && pw == NULL)
    return LC_OK;
  if (email == NULL || pw == NULL)
    return lc_err_set(err, LC_ERR_PARAM,
                      "AUTH_ADMIN_EMAIL and AUTH_ADMIN_PASSWORD must be set together");
  rc = auth_account_ensure(ctx, email, pw, "admin", &u, &created, err);
  if (rc != LC_OK)
    return rc;
  if (!created)
    lc_log_info("bootstrap admin %s already exists; left unchanged", u.id);
  return LC_OK;
}

int main(void) {
  char err[LC_ERR_LEN] = "";
  char sql_dir[PATH_MAX];
  lc_cfg *cfg = NULL;
  lc_db_pool *pool = NULL;
  auth_pw *pw = NULL;
  auth_ctx ctx;
  oauth_ctx octx;
  int octx_ok = 0;
  lc_iauth_ctx ictx;
  struct _u_instance inst;
  int inst_ok = 0, started = 0, have_relay = 0;
  static const char *const drop_unroutable[] = {"auth.token.", "auth.user.", "auth.key.", NULL};
  static atomic_bool relay_stop;
  lc_outbox_cfg relay;
  pthread_t t_relay;
  uint8_t secret[129], seed[32], pk[32];
  size_t secret_len = 0, seed_len = 0;
  int rc, code = 1;

  memset(&ctx, 0, sizeof(ctx));
  memset(&octx, 0, sizeof(octx));
  if (lc_global_init() != LC_OK) {
    fprintf(stderr, APP ": global init failed\n");
    return 1;
  }
  lc_svc_block_signals();
  rc = lc_cfg_load(SPECS, sizeof(SPECS) / sizeof(SPECS[0]), &cfg, err);
  if (rc != LC_OK) {
    fprintf(stderr, APP ": configuration error: %s\n", err);
    code = 2;
    goto out;
  }
  if (lc_log_init(APP, lc_cfg_str(cfg, "LOG_LEVEL")) != LC_OK) {
    fprintf(stderr, APP ": configuration error: LOG_LEVEL must be error|warning|info|debug\n");
    code = 2;
    goto out;
  }
  lc_cfg_dump(cfg);
  /* The HMAC key is the INTERNAL_SECRET text itself (lc/iauth.h); it must be hex. */
  if (lc_hex_decode(lc_cfg_str(cfg, "INTERNAL_SECRET"), secret, sizeof(secret), &secret_len) !=
          LC_OK ||
      secret_len < 32 ||
      lc_strlcpy((char *)secret, lc_cfg_str(cfg, "INTERNAL_SECRET"), sizeof(secret)) != LC_OK) {
    lc_log_error("configuration error: INTERNAL_SECRET must be 64..128 hex characters");
    code = 2;
    goto out;
  }
  secret_len = strlen((const char *)secret);
  if (lc_hex_decode(lc_cfg_str(cfg, "AUTH_JWT_SEED"), seed, sizeof(seed), &seed_len) != LC_OK ||
      seed_len != 32) {
    lc_log_error("configuration error: AUTH_JWT_SEED must be 64 hex characters");
    code = 2;
    goto out;
  }
  if (lc_jwt_keypair_from_seed(seed, pk, ctx.tok.sk) != LC_OK) {
    lc_log_error("configuration error: AUTH_JWT_SEED unusable");
    code = 2;
    goto out;
  }
  sodium_memzero(seed, sizeof(seed));
  lc_strlcpy(ctx.tok.iss, lc_cfg_str(cfg, "JWT_ISSUER"), sizeof(ctx.tok.iss));
  lc_strlcpy(ctx.tok.aud, lc_cfg_str(cfg, "JWT_AUDIENCE"), sizeof(ctx.tok.aud));
  ctx.tok.access_ttl = lc_cfg_int(cfg, "AUTH_ACCESS_TTL");
  ctx.tok.refresh_ttl = lc_cfg_int(cfg, "AUTH_REFRESH_TTL");
  ctx.secret = secret;
  ctx.secret_len = secret_len;
  ctx.credit_url = lc_cfg_str(cfg, "AUTH_CREDIT_URL");
  ctx.chain_url = lc_cfg_str(cfg, "AUTH_CHAIN_URL");
  ctx.allowed_origins = lc_cfg_str(cfg, "AUTH_ALLOWED_ORIGINS");
  ctx.tok.grace_ms = lc_cfg_int(cfg, "AUTH_REFRESH_GRACE_MS");
  if (lc_cfg_str(cfg, "AUTH_TOKEN_ENC_KEY") == NULL) {
    lc_log_warn("AUTH_TOKEN_ENC_KEY unset: refresh grace window disabled");
    ctx.tok.grace_ms = 0;
  } else {
    size_t klen = 0;
    if (lc_hex_decode(lc_cfg_str(cfg, "AUTH_TOKEN_ENC_KEY"), ctx.tok.enc_key,
                      sizeof(ctx.tok.enc_key), &klen) != LC_OK ||
        klen != 32) {
      lc_log_error("configuration error: AUTH_TOKEN_ENC_KEY must be 64 hex characters");
      code = 2;
      goto out;
    }
  }
  {
    char pkhex[65];
    lc_hex_encode(pk, sizeof(pk), pkhex);
    lc_log_info("JWT public key (GW_JWT_PUBLIC_KEY) %s", pkhex);
  }

  rc = lc_db_pool_new(lc_cfg_str(cfg, "AUTH_DATABASE_URL"), (int)lc_cfg_int(cfg, "AUTH_DB_POOL"),
                      2000, &pool, err);
  if (rc != LC_OK) {
    lc_log_error("db pool: %s", err);
    goto out;
  }
  ctx.pool = pool;
  resolve_sql_dir(cfg, sql_dir);
  rc = migrate(pool, lc_cfg_str(cfg, "AUTH_DB_SCHEMA"), sql_dir, err);
  if (rc != LC_OK) {
    lc_log_error("migrations (%s): %s", sql_dir, err);
    goto out;
  }
  rc = auth_pw_new((size_t)lc_cfg_int(cfg, "AUTH_PWHASH_MEMLIMIT"),
                   (uint64_t)lc_cfg_int(cfg, "AUTH_PWHASH_OPSLIMIT"),
                   (int)lc_cfg_int(cfg, "AUTH_PWHASH_CONCURRENCY"),
                   (int)lc_cfg_int(cfg, "AUTH_PWHASH_WAIT_MS"), &pw, err);
  if (rc != LC_OK) {
    lc_log_error("password hasher: %s", err);
    goto out;
  }
  auth_pw_set_max_waiters(pw, (int)lc_cfg_int(cfg, "AUTH_PWHASH_QUEUE"));
  lc_log_info("password hashing - at most %lld Argon2id runs at once (%lld MiB), %lld waiting",
              (long long)lc_cfg_int(cfg, "AUTH_PWHASH_CONCURRENCY"),
              (long long)(lc_cfg_int(cfg, "AUTH_PWHASH_CONCURRENCY") *
                          (lc_cfg_int(cfg, "AUTH_PWHASH_MEMLIMIT") / (1024 * 1024))),
              (long long)lc_cfg_int(cfg, "AUTH_PWHASH_QUEUE"));
  ctx.pw = pw;
  rc = bootstrap_admin(cfg, &ctx, err);
  if (rc != LC_OK) {
    lc_log_error("bootstrap admin: %s", err);
    code = rc == LC_ERR_PARAM ? 2 : 1;
    goto out;
  }

  memset(&relay, 0, sizeof(relay));
  if (lc_cfg_str(cfg, "AMQP_URL") != NULL) {
    atomic_store(&relay_stop, false);
    relay.pool = pool;
    relay.conninfo = lc_cfg_str(cfg, "AUTH_DATABASE_URL");
    relay.channel = AUTH_OUTBOX_CHANNEL;
    relay.amqp_url = lc_cfg_str(cfg, "AMQP_URL");
    relay.exchange = AUTH_EVENTS_EXCHANGE;
    relay.drop_unroutable = drop_unroutable;
    relay.declare_topology = 1;
    relay.poll_ms = 200;
    relay.tick = relay_tick;
    relay.tick_ud = &ctx;
    relay.name = "auth-outbox";
    relay.stop = &relay_stop;
    have_relay = pthread_create(&t_relay, NULL, lc_outbox_thread, &relay) == 0;
    if (!have_relay)
      lc_log_error("cannot start the auth.events relay thread");
  } else {
    lc_log_warn("AMQP_URL unset: auth.events stay in the outbox (no relay)");
  }

  octx_ok = 1;
  rc = oauth_ctx_init(&octx, cfg, &ctx, err);
  if (rc != LC_OK) {
    lc_log_error("configuration error: %s", err);
    code = 2;
    goto out;
  }
  rc = lc_svc_instance_init(&inst, lc_cfg_str(cfg, "AUTH_BIND"), (int)lc_cfg_int(cfg, "AUTH_PORT"),
                            16384, err);
  if (rc != LC_OK) {
    lc_log_error("http instance: %s", err);
    goto out;
  }
  inst_ok = 1;
  ictx.secret = secret;
  ictx.secret_len = secret_len;
  ictx.max_skew_s = LC_IAUTH_SKEW_S;
  ictx.replay = NULL; /* process-wide nonce cache */
  rc = auth_handlers_register(&inst, &ctx, &ictx);
  if (rc != LC_OK)
    goto out;
  rc = oauth_handlers_register(&inst, &octx);
  if (rc != LC_OK)
    goto out;
  rc = lc_svc_add_ops(&inst, APP, ready, pool);
  if (rc != LC_OK) {
    lc_log_error("ops routes: registration failed");
    goto out;
  }
  rc = lc_svc_start(&inst, NULL, NULL, (unsigned int)lc_cfg_int(cfg, "AUTH_MAX_CONNS"), 30, err);
  if (rc != LC_OK) {
    lc_log_error("start: %s", err);
    goto out;
  }
  started = 1;
  lc_log_info("listening on %s:%lld", lc_cfg_str(cfg, "AUTH_BIND"),
              (long long)lc_cfg_int(cfg, "AUTH_PORT"));
  rc = lc_svc_wait();
  lc_log_info("signal %d: shutting down", rc);
  code = 0;
out:
  if (started)
    ulfius_stop_framework(&inst);
  if (have_relay) {
    atomic_store(&relay_stop, true);
    pthread_join(t_relay, NULL);
  }
  if (inst_ok)
    ulfius_clean_instance(&inst);
  if (octx_ok)
    oauth_ctx_free(&octx);
  auth_pw_free(pw);
  lc_db_pool_free(pool);
  sodium_memzero(&ctx.tok, sizeof(ctx.tok));
  sodium_memzero(secret, sizeof(secret));
  if (cfg != NULL)
    lc_log_close();
  lc_cfg_free(cfg);
  lc_global_cleanup();
  return code;
}
