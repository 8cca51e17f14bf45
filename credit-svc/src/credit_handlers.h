/* credit_handlers.h - HTTP routes of credit-svc (public /v1 credit routes and
 * the /internal routes of proto/CONTRACTS.md). Every route runs behind
 * lc_iauth_callback (registered here at LC_PRIO_AUTH on the same path), so a
 * request without a valid internal signature gets 401 before any handler.
 *
 * Authorization:
 *  - /internal/... routes: roles user, service, admin, system; user_id in the request
 *    must be the caller's own unless the role is admin or system; reservation
 *    ids of another user answer 404. Role anon -> 403.
 *  - GET /v1/credits, /v1/credits/ledger: the caller's own account (roles user,
 *    service, admin; an API key with scope "write" only -> 403).
 *  - GET /v1/admin/audit: role admin only (403 otherwise).
 *  - POST /v1/admin/users/:id/credits {amount, reason}: role admin (an API
 *    key with scope "read" -> 403); Idempotency-Key with Stripe semantics
 *    (credit_idem.h); 201 {entry_id, balance}; see credit_topup.h.
 *  - GET /internal/balances?user_ids=a,b (<= 100) and GET /internal/debits
 *    ?since&until&limit&cursor (contract C): roles admin and system only.
 * Handlers are thin: validate, call credit_ledger_*, map the status. */
#ifndef CREDIT_HANDLERS_H
#define CREDIT_HANDLERS_H

#include <stdint.h>
#include <ulfius.h>

#include "lc/db.h"
#include "lc/err.h"
#include "lc/iauth.h"

typedef struct {
  lc_db_pool *pool;     /* borrowed */
  int64_t ttl_s;        /* reservation lifetime */
  lc_iauth_ctx iauth;   /* secret borrowed; must outlive the instance */
  const char *auth_url; /* auth-svc base URL (user existence for admin top-ups); borrowed */
} credit_ctx;

/* Registers every route on inst; ctx must outlive the instance.
 * Returns LC_OK or LC_ERR (err names the route). */
int credit_handlers_register(struct _u_instance *inst, credit_ctx *ctx, char err[LC_ERR_LEN]);

#endif
