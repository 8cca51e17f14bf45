/* gateway - the only public listener: HTTPS (GnuTLS through ulfius/MHD, TLS
 * 1.2+), verifies access JWTs with the public key alone and API keys through
 * auth-svc (short cache), honours revocations (auth.events + the list loaded
 * at start), rate-limits signup/login/refresh/payments, forwards to the
 * owning daemon with the identity signed by INTERNAL_SECRET. No durable
 * state: revocations, key cache and buckets live in memory. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_routes.h"
#include "gw_static.h"
#include "gw_sync.h"
#include "gw_upstream.h"
#include "lc/cfg.h"
#include "lc/http.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"

static const lc_cfg_spec SPECS[] = {
    {"GW_BIND", LC_CFG_STR, 7, 45, "127.0.0.1", 0, "address to listen on"},
    {"GW_PORT", LC_CFG_INT, 1, 65535, "8443", 0, "HTTPS port"},
    {"GW_TLS_CERT_FILE", LC_CFG_STR, 1, 4096, NULL, 1, "PEM certificate chain file"},
    {"GW_TLS_KEY_FILE", LC_CFG_STR, 1, 4096, NULL, 1, "PEM private key file"},
    {"GW_JWT_PUBLIC_KEY", LC_CFG_STR, 64, 64, NULL, 1, "Ed25519 public key (hex) of auth-svc"},
    {"JWT_ISSUER", LC_CFG_STR, 1, 127, "credit-saas", 0, "expected iss"},
    {"JWT_AUDIENCE", LC_CFG_STR, 1, 127, "credit-saas-api", 0, "expected aud"},
    {"GW_JWT_LEEWAY", LC_CFG_INT, 0, 300, "30", 0, "clock skew tolerated on exp/iat (s)"},
    {"GW_AUTH_URL", LC_CFG_STR, 8, 2047, "http://127.0.0.1:21001", 0,
     "auth-svc base URL, or a comma-separated list of instances (at most 8)"},
    {"GW_CREDIT_URL", LC_CFG_STR, 8, 2047, "http://127.0.0.1:21002", 0,
     "credit-svc base URL, or a comma-separated list of instances (at most 8)"},
    {"GW_STORAGE_URL", LC_CFG_STR, 8, 2047, "http://127.0.0.1:21003", 0,
     "storage-svc base URL, or a comma-separated list of instances (at most 8)"},
    {"GW_CHAIN_URL", LC_CFG_STR, 8, 2047, "http://127.0.0.1:21004", 0,
     "chain-svc base URL, or a comma-separated list of instances (at most 8)"},
    {"GW_MAX_BODY", LC_CFG_INT, 1024, 104857600, "1048576", 0, "request body limit (bytes)"},
    {"GW_MAX_CONNS", LC_CFG_INT, 1, 100000, "1024", 0, "concurrent connection limit"},
    {"GW_IDLE_TIMEOUT", LC_CFG_INT, 1, 3600, "30", 0, "idle connection timeout (s)"},
    {"GW_UPSTREAM_TIMEOUT_MS", LC_CFG_INT, 100, 600000, "30000", 0, "per-request upstream timeout"},
    {"GW_HEALTH_INTERVAL_MS", LC_CFG_INT, 100, 600000, "1000", 0,
     "active check of every upstream instance every this many ms (GET /readyz; /healthz when "
     "a daemon has one instance)"},
    {"GW_HEALTH_TIMEOUT_MS", LC_CFG_INT, 50, 60000, "1000", 0, "timeout of one active check (ms)"},
    {"GW_UPSTREAM_BACKOFF_MS", LC_CFG_INT, 0, 600000, "5000", 0,
     "an instance that failed a request (refused, reset, timeout) gets no traffic this long "
     "unless an active check passes first (0 = no passive back-off)"},
    {"INTERNAL_SECRET", LC_CFG_SECRET, 64, 128, NULL, 1, "HMAC key for internal identity headers"},
    {"AMQP_URL", LC_CFG_SECRET, 8, 1024, NULL, 1, "RabbitMQ URL (auth.events revocations)"},
    {"GW_REVOCATIONS_REQUIRED", LC_CFG_BOOL, 0, 1, "1", 0,
     "answer 503 on authenticated routes until the revocation list is loaded"},
    {"GW_REVOKE_MAX", LC_CFG_INT, 16, 10000000, "200000", 0, "max revoked jti / user entries"},
    {"GW_REVOKE_USER_TTL", LC_CFG_INT, 60, 31536000, "3600", 0,
     "keep a user's not-before this long (s; >= access TTL + leeway)"},
    {"GW_KEY_CACHE_MS", LC_CFG_INT, 0, 60000, "1000", 0, "API-key positive cache lifetime (ms)"},
    {"GW_KEY_NEG_CACHE_MS", LC_CFG_INT, 0, 60000, "1000", 0, "API-key negative cache lifetime (ms)"},
    {"GW_KEY_CACHE_MAX", LC_CFG_INT, 1, 1000000, "4096", 0, "API-key cache entries"},
    {"GW_TRUSTED_PROXY", LC_CFG_STR, 0, 45, "", 0,
     "IP of a reverse proxy whose last X-Forwarded-For hop is the client ('' = none)"},
    {"GW_RL_TABLE", LC_CFG_INT, 64, 10000000, "65536", 0, "rate-limit buckets kept in memory"},
    {"GW_RL_WINDOW_S", LC_CFG_INT, 1, 86400, "60", 0, "rate-limit window (s); limits below are per window"},
    {"GW_RL_SIGNUP_IP", LC_CFG_INT, 1, 1000000, "5", 0, "signups per window per client IP"},
    {"GW_RL_LOGIN_IP", LC_CFG_INT, 1, 1000000, "10", 0, "logins per window per client IP"},
    {"GW_RL_LOGIN_ACCOUNT", LC_CFG_INT, 1, 1000000, "5", 0, "logins per window per email"},
    {"GW_RL_REFRESH_IP", LC_CFG_INT, 1, 1000000, "30", 0, "refreshes per window per client IP"},
    {"GW_RL_REFRESH_ACCOUNT", LC_CFG_INT, 1, 1000000, "10", 0,
     "refreshes per window per refresh token"},
    {"GW_RL_PASSWORD_ACCOUNT", LC_CFG_INT, 1, 1000000, "5", 0,
     "password changes per window per user (per IP: GW_RL_LOGIN_IP)"},
    {"GW_RL_CHECKOUT_IP", LC_CFG_INT, 1, 1000000, "20", 0, "checkouts per window per client IP"},
    {"GW_RL_CHECKOUT_ACCOUNT", LC_CFG_INT, 1, 1000000, "10", 0, "checkouts per window per user"},
    {"GW_RL_WEBHOOK_IP", LC_CFG_INT, 1, 10000000, "600", 0,
     "payment webhooks per window per client IP (provider traffic)"},
    {"GW_WEB_DIR", LC_CFG_STR, 0, 4096, "", 0,
     "directory of the web front end (index.html, app.js, app.css, icon.svg; '' = none)"},
    {"LOG_LEVEL", LC_CFG_STR, 4, 7, "info", 0, "error|warning|info|debug"},
};

static gw_sync g_sync;
static gw_revoke g_rv;
static gw_keycache g_keys;
static gw_keys_upstream g_keys_up;
static gw_rl g_rl;
static gw_static g_static;
static gw_pool g_pools[GW_UP_COUNT];
static gw_health g_health;
static gw_jwtcache g_jwtc; /* verified access tokens (claims; expiry + revocation re-checked) */

static int revocations_loaded(void *ud) { return gw_sync_loaded(ud); }

/* /readyz: revocation list loaded and at least one instance of every
 * upstream alive, i.e. the health thread's last check connected (no probe
 * fans out). A daemon that answers "not ready" (chain node or broker down)
 * or slowly keeps the gateway ready: its routes answer the daemon's own 503s. */
static int ready(void *ud) {
  const gw_ctx *ctx = ud;
  if (!gw_sync_loaded(&g_sync))
    return 0;
  for (int i = 0; i < GW_UP_COUNT; i++)
    if (ctx->up[i].pool != NULL && gw_upstream_nalive(ctx->up[i].pool) == 0)
      return 0;
  return 1;
}

static gw_rl_limit limit(const lc_cfg *cfg, const char *name) {
  gw_rl_limit l = {lc_cfg_int(cfg, name), lc_cfg_int(cfg, "GW_RL_WINDOW_S") * 1000};
  return l;
}

int main(void) {
  char err[LC_ERR_LEN] = "";
  lc_cfg *cfg = NULL;
  char *cert = NULL, *key = NULL;
  struct _u_instance inst;
  int inst_ok = 0, started = 0, status = EXIT_FAILURE;
  static gw_ctx ctx;

  if (lc_global_init() != LC_OK) {
    fprintf(stderr, "gateway: global init failed\n");
    return EXIT_FAILURE;
  }
  lc_svc_block_signals();
  if (lc_cfg_load(SPECS, sizeof(SPECS) / sizeof(SPECS[0]), &cfg, err) != LC_OK) {
    fprintf(stderr, "gateway: configuration error: %s\n", err);
    goto out;
  }
  if (lc_log_init("gateway", lc_cfg_str(cfg, "LOG_LEVEL")) != LC_OK) {
    fprintf(stderr, "gateway: LOG_LEVEL: invalid\n");
    goto out;
  }
  lc_cfg_dump(cfg);

  size_t pklen = 0;
  if (lc_hex_decode(lc_cfg_str(cfg, "GW_JWT_PUBLIC_KEY"), ctx.authn.jwt_pk, 32, &pklen) != LC_OK ||
      pklen != 32) {
    lc_log_error("gateway - GW_JWT_PUBLIC_KEY: not 32 bytes of hex");
    goto out;
  }
  ctx.authn.issuer = lc_cfg_str(cfg, "JWT_ISSUER");
  ctx.authn.audience = lc_cfg_str(cfg, "JWT_AUDIENCE");
  ctx.authn.leeway_s = lc_cfg_int(cfg, "GW_JWT_LEEWAY");

  const char *secret = lc_cfg_str(cfg, "INTERNAL_SECRET");
  static const char *const NAMES[GW_UP_COUNT] = {"auth-svc", "credit-svc", "storage-svc",
                                                 "chain-svc"};
  static const char *const URLS[GW_UP_COUNT] = {"GW_AUTH_URL", "GW_CREDIT_URL", "GW_STORAGE_URL",
                                                "GW_CHAIN_URL"};
  for (int i = 0; i < GW_UP_COUNT; i++) {
    if (gw_pool_init(&g_pools[i], NAMES[i], lc_cfg_str(cfg, URLS[i]),
                     lc_cfg_int(cfg, "GW_UPSTREAM_BACKOFF_MS"), err) != LC_OK) {
      lc_log_error("gateway - %s: %s", URLS[i], err);
      goto out;
    }
    ctx.up[i].name = NAMES[i];
    ctx.up[i].pool = &g_pools[i];
    ctx.up[i].base_url = gw_upstream_url(&g_pools[i], 0);
    ctx.up[i].secret = (const uint8_t *)secret;
    ctx.up[i].secret_len = strlen(secret);
    ctx.up[i].timeout_ms = (long)lc_cfg_int(cfg, "GW_UPSTREAM_TIMEOUT_MS");
    ctx.up[i].max_resp = 64u * 1024 * 1024;
  }

  /* revocations, API keys, rate limits */
  if (gw_revoke_init(&g_rv, (size_t)lc_cfg_int(cfg, "GW_REVOKE_MAX"), ctx.authn.leeway_s,
                     lc_cfg_int(cfg, "GW_REVOKE_USER_TTL")) != LC_OK) {
    lc_log_error("gateway - cannot initialise the revocation state");
    goto out;
  }
  g_keys_up.auth_url = ctx.up[GW_UP_AUTH].base_url;
  g_keys_up.auth_pool = &g_pools[GW_UP_AUTH];
  g_keys_up.secret = (const uint8_t *)secret;
  g_keys_up.secret_len = strlen(secret);
  g_keys_up.timeout_ms = 3000;
  if (gw_keys_init(&g_keys, (size_t)lc_cfg_int(cfg, "GW_KEY_CACHE_MAX"),
                   lc_cfg_int(cfg, "GW_KEY_CACHE_MS"), lc_cfg_int(cfg, "GW_KEY_NEG_CACHE_MS"),
                   gw_keys_verify_http, &g_keys_up) != LC_OK ||
      gw_rl_init(&g_rl, (size_t)lc_cfg_int(cfg, "GW_RL_TABLE")) != LC_OK) {
    lc_log_error("gateway - cannot initialise the key cache / rate limits");
    goto out;
  }
  ctx.authn.rv = &g_rv;
  ctx.authn.keys = &g_keys;
  if (gw_jwtcache_init(&g_jwtc, 4096) == 0)
    ctx.authn.jwtc = &g_jwtc;
  ctx.rl = &g_rl;
  ctx.trusted_proxy = lc_cfg_str(cfg, "GW_TRUSTED_PROXY");
  if (ctx.trusted_proxy != NULL && ctx.trusted_proxy[0] != '\0') {
    char norm[64];
    gw_rl_client_ip(ctx.trusted_proxy, NULL, NULL, norm, sizeof(norm));
    if (strcmp(norm, ctx.trusted_proxy) != 0) {
      lc_log_error("gateway - GW_TRUSTED_PROXY: not a canonical IPv4/IPv6 address");
      goto out;
    }
  }
  ctx.rules[GW_RL_SIGNUP].ip = limit(cfg, "GW_RL_SIGNUP_IP");
  ctx.rules[GW_RL_LOGIN].ip = limit(cfg, "GW_RL_LOGIN_IP");
  ctx.rules[GW_RL_LOGIN].account = limit(cfg, "GW_RL_LOGIN_ACCOUNT");
  ctx.rules[GW_RL_REFRESH].ip = limit(cfg, "GW_RL_REFRESH_IP");
  ctx.rules[GW_RL_REFRESH].account = limit(cfg, "GW_RL_REFRESH_ACCOUNT");
  ctx.rules[GW_RL_PASSWORD].ip = limit(cfg, "GW_RL_LOGIN_IP");
  ctx.rules[GW_RL_PASSWORD].account = limit(cfg, "GW_RL_PASSWORD_ACCOUNT");
  ctx.rules[GW_RL_CHECKOUT].ip = limit(cfg, "GW_RL_CHECKOUT_IP");
  ctx.rules[GW_RL_CHECKOUT].account = limit(cfg, "GW_RL_CHECKOUT_ACCOUNT");
  ctx.rules[GW_RL_WEBHOOK].ip = limit(cfg, "GW_RL_WEBHOOK_IP");
  ctx.revocations_loaded = revocations_loaded;
  ctx.revocations_ud = &g_sync;
  ctx.require_revocations = lc_cfg_bool(cfg, "GW_REVOCATIONS_REQUIRED");

  g_sync.amqp_url = lc_cfg_str(cfg, "AMQP_URL");
  g_sync.auth_url = ctx.up[GW_UP_AUTH].base_url;
  g_sync.auth_pool = &g_pools[GW_UP_AUTH];
  g_sync.secret = (const uint8_t *)secret;
  g_sync.secret_len = strlen(secret);
  g_sync.rv = &g_rv;
  g_sync.keys = &g_keys;
  static gw_pool *pools[GW_UP_COUNT];
  for (int i = 0; i < GW_UP_COUNT; i++) {
    pools[i] = &g_pools[i];
    gw_upstream_publish(pools[i], lc_mono_ms());
    lc_log_info("Event - %s: %d instance(s)", g_pools[i].name, g_pools[i].n);
  }
  if (gw_health_start(&g_health, pools, GW_UP_COUNT, lc_cfg_int(cfg, "GW_HEALTH_INTERVAL_MS"),
                      (long)lc_cfg_int(cfg, "GW_HEALTH_TIMEOUT_MS"), err) != LC_OK) {
    lc_log_error("gateway - %s", err);
    goto out;
  }
  lc_metric_help("gateway_upstream_up", "gauge",
                 "1 when the upstream instance gets traffic (readiness check passed, no back-off)");
  if (gw_sync_start(&g_sync, err) != LC_OK) {
    lc_log_error("gateway - %s", err);
    goto out;
  }

  size_t len = 0;
  if (lc_read_file(lc_cfg_str(cfg, "GW_TLS_CERT_FILE"), 1 << 20, &cert, &len, err) != LC_OK ||
      lc_read_file(lc_cfg_str(cfg, "GW_TLS_KEY_FILE"), 1 << 20, &key, &len, err) != LC_OK) {
    lc_log_error("gateway - TLS material: %s", err);
    goto out;
  }

  if (lc_svc_instance_init(&inst, lc_cfg_str(cfg, "GW_BIND"), (int)lc_cfg_int(cfg, "GW_PORT"),
                           (size_t)lc_cfg_int(cfg, "GW_MAX_BODY"), err) != LC_OK) {
    lc_log_error("gateway - %s", err);
    goto out;
  }
  inst_ok = 1;
  if (lc_svc_add_ops(&inst, "gateway", ready, &ctx) != LC_OK ||
      gw_routes_register(&inst, &ctx, err) != LC_OK) {
    lc_log_error("gateway - route registration failed %s", err);
    goto out;
  }
  const char *web_dir = lc_cfg_str(cfg, "GW_WEB_DIR");
  if (web_dir != NULL && web_dir[0] != '\0') {
    if (gw_static_load(&g_static, web_dir, err) != LC_OK ||
        gw_static_register(&inst, &g_static, err) != LC_OK) {
      lc_log_error("gateway - GW_WEB_DIR: %s", err);
      goto out;
    }
    lc_log_info("Event - web front end served from %s", web_dir);
  }
  if (lc_svc_start(&inst, key, cert, (unsigned)lc_cfg_int(cfg, "GW_MAX_CONNS"),
                   (unsigned)lc_cfg_int(cfg, "GW_IDLE_TIMEOUT"), err) != LC_OK) {
    lc_log_error("gateway - cannot start: %s", err);
    goto out;
  }
  started = 1;
  lc_log_info("Event - gateway listening on https://%s:%lld", lc_cfg_str(cfg, "GW_BIND"),
              (long long)lc_cfg_int(cfg, "GW_PORT"));
  int sig = lc_svc_wait();
  lc_log_info("Event - gateway stopping (signal %d)", sig);
  status = EXIT_SUCCESS;

out:
  if (started)
    ulfius_stop_framework(&inst);
  if (inst_ok)
    ulfius_clean_instance(&inst);
  gw_health_stop(&g_health);
  gw_sync_stop(&g_sync);
  gw_keys_free(&g_keys);
  gw_revoke_free(&g_rv);
  gw_jwtcache_free(&g_jwtc);
  gw_rl_free(&g_rl);
  gw_static_free(&g_static);
  if (key != NULL) {
    memset(key, 0, strlen(key));
    free(key);
  }
  free(cert);
  lc_cfg_free(cfg);
  lc_log_close();
  lc_global_cleanup();
  return status;
}
