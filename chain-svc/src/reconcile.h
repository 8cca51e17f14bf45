/* reconcile.h - proves, for a time range, that every committed debit has
 * exactly one confirmed on-chain transfer of the right amount to the right
 * address, and lists every difference.
 *
 * Three sources are compared:
 *   1. credit-svc's committed debits (GET /internal/debits?since=&until=
 *      &cursor=, signed as role "system"), the ledger side;
 *   2. chain.transfers (+ transfer_attempts, wallets), chain-svc's side;
 *   3. the chain: receipts and the token's Transfer(master -> *) logs
 *      (eth_getLogs over the blocks of the transfers in scope).
 * Report (new JSON object):
 *   {range:{since, until}, debits, transfers, onchain,
 *    missing:[{debit_id, reason}], duplicates:[{debit_id|null, tx_hash|null, reason}],
 *    mismatched:[{debit_id, field, expected, actual}], ok}
 * ok is true exactly when the three lists are empty. Transfers still in
 * flight (signed/submitted) are listed under missing with reason
 * "not confirmed yet"; callers reconcile a range that has settled. */
#ifndef CHAIN_RECONCILE_H
#define CHAIN_RECONCILE_H

#include <jansson.h>

#include "chain_ctx.h"

#define CHAIN_RECONCILE_MAX_DEBITS 200000
#define CHAIN_RECONCILE_TS_MAX 40

/* 1 when s looks like an RFC 3339 timestamp (digits, T, Z, :, +, -, .). */
int chain_reconcile_ts_ok(const char *s);

/* Runs the reconciliation of [since, until) (RFC 3339; NULL = the last 24 h
 * until now). Needs ctx->credit_url and ctx->isecret. On LC_OK *report is
 * new. LC_ERR_PARAM for bad timestamps, LC_ERR_UNAVAIL / LC_ERR_IO when
 * credit-svc or the node cannot be queried (err says which),
 * LC_ERR_TOO_LARGE over CHAIN_RECONCILE_MAX_DEBITS. */
int chain_reconcile(chain_ctx *ctx, const char *since, const char *until, json_t **report,
                    char err[LC_ERR_LEN]);

#endif
