/* sender.h - drives stored transfers to the chain and reports their status.
 *
 * One pass = broadcast (signed -> submitted), track (submitted -> confirmed |
 * failed after CHAIN_CONFIRMATIONS blocks; stuck -> fee bump; dropped ->
 * re-broadcast; nonce used -> find which of our attempts was mined) and report
 * (publish chain.transfer.<status> for every row whose reported_status differs
 * from status; a replacement re-publishes "submitted" with its new hash).
 *
 * Every signed transaction is stored in transfer_attempts before it is
 * broadcast; a transfer's nonce never changes except when a foreign
 * transaction consumed it (then it is re-signed with a fresh nonce, logged as a
 * security event). Broadcasts are conditional on the master's balances: when
 * the master cannot pay gas or lacks tokens, signed transfers stay parked
 * (alert logged once, gauges chain_master_low_eth / chain_master_low_token /
 * chain_transfers_parked) and drain after a top-up.
 *
 * Several senders on one database (several instances) are safe: status
 * updates are conditional on the old status / hash and fee bumps take the
 * transfer row's lock. */
#ifndef CHAIN_SENDER_H
#define CHAIN_SENDER_H

#include "chain_ctx.h"
#include "lc/amqp.h"

/* Broadcasts up to max_in_flight - submitted rows with status signed, in
 * nonce order, whose retry time has come and that the master can pay for.
 * *sent gets the number now submitted. LC_ERR_UNAVAIL when the node or DB is
 * down (the pass stops). */
int chain_sender_broadcast(chain_ctx *ctx, int *sent, char err[LC_ERR_LEN]);

/* Checks receipts of submitted rows; *done gets the number that reached a
 * final status. Unknown to the node for ctx->dropped_after_s -> broadcast
 * again unchanged; unmined for ctx->stuck_after_s -> replaced with the same
 * nonce and fees raised >= 12.5 % (capped by ctx->fee_cap). */
int chain_sender_track(chain_ctx *ctx, int *done, char err[LC_ERR_LEN]);

/* Publishes status changes through *pub (opened on ctx->amqp_url when NULL;
 * closed and set to NULL after any error). *published gets the count. */
int chain_sender_report(chain_ctx *ctx, lc_amqp_pub **pub, int *published,
                        char err[LC_ERR_LEN]);

/* Replaces the current attempt of debit_id (which must still be cur_hash)
 * with the same nonce and raised fees, stores it, then broadcasts it.
 * *new_hash (67 bytes, may be NULL) gets the new hash when the node accepted
 * it. LC_OK when replaced, LC_ERR_CONFLICT when the row changed meanwhile,
 * LC_ERR_FUNDS when the fee cap forbids a 12.5 % raise, LC_ERR_UNPROCESSABLE
 * when the node refused the replacement (recorded; the next bump starts from
 * the refused fees, so it bumps more), LC_ERR_UNAVAIL when the node is down. */
int chain_sender_bump(chain_ctx *ctx, const char *debit_id, const char *cur_hash,
                      char *new_hash, char err[LC_ERR_LEN]);

/* Deterministic message id (UUID form) for (debit_id, status, tx_hash);
 * tx_hash may be NULL. */
void chain_event_msg_id(const char *debit_id, const char *status, const char *tx_hash,
                        char out[37]);

/* Thread entry (arg = chain_ctx*): one pass every ctx->poll_ms until
 * lc_svc_stopping. Returns NULL. */
void *chain_sender_main(void *arg);

#endif
