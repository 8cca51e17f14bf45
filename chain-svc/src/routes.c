/* routes.c - chain-svc internal HTTP routes (see routes.h). Callbacks are thin:
 * parse, call the store, map the status. */
#include "routes.h"

#include <string.h>

#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "reconcile.h"
#include "store.h"
#include "u256.h"

static int cb_wallet(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  chain_ctx *ctx = ud;
  const char *user_id = u_map_get(req->map_url, "user_id");
  char err[LC_ERR_LEN] = "", address[43];
  PGconn *conn = NULL;
  int64_t idx = 0;
  json_t *body;
  int rc;

  if (user_id == NULL || !lc_uuid_valid(user_id))
    return lc_problem(resp, 400, NULL, "user_id must be a UUID");
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc == LC_OK) {
    rc = chain_store_wallet(ctx, conn, user_id, &idx, address, err);
    lc_db_release(ctx->db, conn);
  }
  if (rc != LC_OK) {
    lc_log_error("cb_wallet - %s", err);
    return lc_problem_from_err(resp, rc, NULL);
  }
  body = json_pack("{s:s, s:I, s:s}", "user_id", user_id, "index", (json_int_t)idx, "address",
                   address);
  rc = lc_json_send(resp, 200, body);
  json_decref(body);
  return rc;
}

static int cb_status(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  chain_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  PGconn *conn = NULL;
  int64_t pending = 0, confirmed = 0, failed = 0;
  json_t *body;
  int rc;

  (void)req;
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc == LC_OK) {
    rc = chain_store_counts(conn, &pending, &confirmed, &failed, err);
    lc_db_release(ctx->db, conn);
  }
  if (rc != LC_OK) {
    lc_log_error("cb_status - %s", err);
    return lc_problem_from_err(resp, rc, NULL);
  }
  body = json_pack("{s:I, s:s, s:s, s:I, s:I, s:I}", "chain_id", (json_int_t)ctx->chain_id,
                   "token_address", ctx->token_str, "master_address", ctx->master_str,
                   "pending", (json_int_t)pending, "confirmed", (json_int_t)confirmed, "failed",
                   (json_int_t)failed);
  rc = lc_json_send(resp, 200, body);
  json_decref(body);
  return rc;
}

/* Admin routes: the gateway already checked the role; the daemon checks again
 * (defence in depth: a forged internal call needs the HMAC key anyway). */
static int require_admin(struct _u_response *resp)
{
  const lc_identity *id = lc_iauth_identity(resp);
  if (id == NULL || (strcmp(id->role, "admin") != 0 && strcmp(id->role, "system") != 0)) {
    lc_problem(resp, 403, NULL, "admin only");
    return 0;
  }
  return 1;
}

/* GET /v1/admin/chain */
static int cb_admin_chain(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  chain_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "", eth_s[80], tok_s[80];
  uint8_t eth[32], tok[32];
  PGconn *conn = NULL;
  int64_t pending = 0, confirmed = 0, failed = 0;
  json_t *body, *bal;
  int rc, parked;

  (void)req;
  if (!require_admin(resp))
    return U_CALLBACK_COMPLETE;
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc == LC_OK) {
    rc = chain_store_counts(conn, &pending, &confirmed, &failed, err);
    lc_db_release(ctx->db, conn);
  }
  if (rc != LC_OK) {
    lc_log_error("cb_admin_chain - %s", err);
    return lc_problem_from_err(resp, rc, NULL);
  }
  if (chain_master_balances(ctx, eth, tok, err) == LC_OK) {
    u256_to_dec(eth, eth_s);
    u256_to_dec(tok, tok_s);
    bal = json_pack("{s:s, s:s}", "eth", eth_s, "token", tok_s);
  } else {
    bal = json_pack("{s:n, s:n}", "eth", "token"); /* node unreachable */
  }
  parked = atomic_load(&ctx->parked);
  body = json_pack("{s:I, s:s, s:s, s:o, s:I, s:I, s:I, s:{s:b, s:b}}", "chain_id",
                   (json_int_t)ctx->chain_id, "token_address", ctx->token_str, "master_address",
                   ctx->master_str, "master_balances", bal, "pending", (json_int_t)pending,
                   "confirmed", (json_int_t)confirmed, "failed", (json_int_t)failed, "parked",
                   "low_eth", (parked & CHAIN_PARK_ETH) != 0, "low_token",
                   (parked & CHAIN_PARK_TOKEN) != 0);
  rc = lc_json_send(resp, 200, body);
  json_decref(body);
  return rc;
}

/* GET /v1/admin/reconcile?since=&until= */
static int cb_admin_reconcile(const struct _u_request *req, struct _u_response *resp, void *ud)
{
  chain_ctx *ctx = ud;
  const char *since = u_map_get(req->map_url, "since");
  const char *until = u_map_get(req->map_url, "until");
  char err[LC_ERR_LEN] = "";
  json_t *report = NULL;
  int rc;

  if (!require_admin(resp))
    return U_CALLBACK_COMPLETE;
  for (int i = 0; req->map_url != NULL && i < u_map_count(req->map_url); i++) {
    const char *k = u_map_enum_keys(req->map_url)[i];
    if (strcmp(k, "since") != 0 && strcmp(k, "until") != 0)
      return lc_problem(resp, 400, NULL, "unknown query parameter (since, until)");
  }
  if ((since != NULL && !chain_reconcile_ts_ok(since)) ||
      (until != NULL && !chain_reconcile_ts_ok(until)))
    return lc_problem(resp, 400, NULL, "since/until must be RFC 3339 timestamps");
  rc = chain_reconcile(ctx, since, until, &report, err);
  if (rc != LC_OK) {
    lc_log_error("cb_admin_reconcile - %s", err);
    return lc_problem_from_err(resp, rc, rc == LC_ERR_PARAM ? err : NULL);
  }
  if (!json_is_true(json_object_get(report, "ok")))
    lc_log_warn("Event - reconciliation found differences: %zu missing, %zu duplicates, %zu "
                "mismatched",
                json_array_size(json_object_get(report, "missing")),
                json_array_size(json_object_get(report, "duplicates")),
                json_array_size(json_object_get(report, "mismatched")));
  rc = lc_json_send(resp, 200, report);
  json_decref(report);
  return rc;
}

int chain_routes_register(struct _u_instance *inst, chain_ctx *ctx, lc_iauth_ctx *iauth)
{
  if (lc_svc_route(inst, "*", "*", LC_PRIO_AUTH, lc_iauth_callback, iauth) != LC_OK)
    return LC_ERR;
  if (lc_svc_route(inst, "GET", "/internal/wallets/:user_id", LC_PRIO_APP, cb_wallet, ctx) !=
      LC_OK)
    return LC_ERR;
  if (lc_svc_route(inst, "GET", "/internal/status", LC_PRIO_APP, cb_status, ctx) != LC_OK)
    return LC_ERR;
  if (lc_svc_route(inst, "GET", "/v1/admin/chain", LC_PRIO_APP, cb_admin_chain, ctx) != LC_OK)
    return LC_ERR;
  if (lc_svc_route(inst, "GET", "/v1/admin/reconcile", LC_PRIO_APP, cb_admin_reconcile, ctx) !=
      LC_OK)
    return LC_ERR;
  return LC_OK;
}

int chain_ready(void *ud)
{
  chain_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  uint64_t id = 0;

  if (!lc_db_ping(ctx->db))
    return 0;
  if (chain_node_chain_id(ctx, &id, err) != LC_OK)
    return 0;
  return id == ctx->chain_id;
}
