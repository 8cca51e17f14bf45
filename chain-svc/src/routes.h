/* routes.h - chain-svc HTTP: internal routes behind lc_iauth_callback
 *   GET /internal/wallets/:user_id -> {user_id, index, address} (creates the index)
 *   GET /internal/status           -> {chain_id, token_address, master_address,
 *                                      pending, confirmed, failed}
 *   GET /v1/admin/chain            -> the above + master_balances {eth, token}
 *                                     (decimal strings, null when the node is
 *                                     down) and parked {low_eth, low_token}
 *   GET /v1/admin/reconcile?since=&until= -> the reconcile.h report
 * (admin routes: role admin or system, else 403)
 * and the readiness check used by /readyz (DB ping + node chain id). */
#ifndef CHAIN_ROUTES_H
#define CHAIN_ROUTES_H

#include <ulfius.h>

#include "chain_ctx.h"
#include "lc/iauth.h"

/* Registers the internal routes (iauth must outlive inst). LC_OK or LC_ERR. */
int chain_routes_register(struct _u_instance *inst, chain_ctx *ctx, lc_iauth_ctx *iauth);

/* lc_ready_fn (ud = chain_ctx*): 1 when the DB answers and the node reports
 * ctx->chain_id. */
int chain_ready(void *ud);

#endif
