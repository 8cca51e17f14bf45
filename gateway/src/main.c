/* gateway - the only public listener: HTTPS (GnuTLS through ulfius/MHD),
 * verifies access JWTs with the public key alone, forwards to the owning
 * daemon with the identity signed by INTERNAL_SECRET. Stateless. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_routes.h"
#include "lc/cfg.h"
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
    {"GW_AUTH_URL", LC_CFG_STR, 8, 255, "http://127.0.0.1:21001", 0, "auth-svc base URL"},
    {"GW_CREDIT_URL", LC_CFG_STR, 8, 255, "http://127.0.0.1:21002", 0, "credit-svc base URL"},
    {"GW_STORAGE_URL", LC_CFG_STR, 8, 255, "http://127.0.0.1:21003", 0, "storage-svc base URL"},
    {"GW_CHAIN_URL", LC_CFG_STR, 8, 255, "http://127.0.0.1:21004", 0, "chain-svc base URL"},
    {"GW_MAX_BODY", LC_CFG_INT, 1024, 104857600, "1048576", 0, "request body limit (bytes)"},
    {"GW_MAX_CONNS", LC_CFG_INT, 1, 100000, "1024", 0, "concurrent connection limit"},
    {"GW_IDLE_TIMEOUT", LC_CFG_INT, 1, 3600, "30", 0, "idle connection timeout (s)"},
    {"GW_UPSTREAM_TIMEOUT_MS", LC_CFG_INT, 100, 600000, "30000", 0, "per-request upstream timeout"},
    {"INTERNAL_SECRET", LC_CFG_SECRET, 64, 128, NULL, 1, "HMAC key for internal identity headers"},
    {"LOG_LEVEL", LC_CFG_STR, 4, 7, "info", 0, "error|warning|info|debug"},
};

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
    ctx.up[i].name = NAMES[i];
    ctx.up[i].base_url = lc_cfg_str(cfg, URLS[i]);
    ctx.up[i].secret = (const uint8_t *)secret;
    ctx.up[i].secret_len = strlen(secret);
    ctx.up[i].timeout_ms = (long)lc_cfg_int(cfg, "GW_UPSTREAM_TIMEOUT_MS");
    ctx.up[i].max_resp = 64u * 1024 * 1024;
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
  if (lc_svc_add_ops(&inst, "gateway", NULL, NULL) != LC_OK ||
      gw_routes_register(&inst, &ctx, err) != LC_OK) {
    lc_log_error("gateway - route registration failed %s", err);
    goto out;
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
