/* routes.c - chain-svc internal HTTP routes (see routes.h). Callbacks are thin:
 * parse, call the store, map the status. */
#include "routes.h"

#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "store.h"

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

int chain_routes_register(struct _u_instance *inst, chain_ctx *ctx, lc_iauth_ctx *iauth)
{
  if (lc_svc_route(inst, "*", "*", LC_PRIO_AUTH, lc_iauth_callback, iauth) != LC_OK)
    return LC_ERR;
  if (lc_svc_route(inst, "GET", "/internal/wallets/:user_id", LC_PRIO_APP, cb_wallet, ctx) !=
      LC_OK)
    return LC_ERR;
  if (lc_svc_route(inst, "GET", "/internal/status", LC_PRIO_APP, cb_status, ctx) != LC_OK)
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
