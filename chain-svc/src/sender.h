/* sender.h - drives stored transfers to the chain and reports their status.
 *
 * One pass = broadcast (signed -> submitted), track (submitted -> confirmed |
 * failed after CHAIN_CONFIRMATIONS blocks) and report (publish
 * chain.transfer.<status> for every row whose reported_status differs from
 * status). Raw transactions are re-broadcast unchanged: the nonce and hash
 * of a debit never change. Only one sender thread per database is expected;
 * a second one is harmless (updates are conditional on the old status) but
 * doubles the node traffic. */
#ifndef CHAIN_SENDER_H
#define CHAIN_SENDER_H

#include "chain_ctx.h"
#include "lc/amqp.h"

/* Broadcasts up to max_in_flight - submitted rows with status signed, in
 * nonce order, whose retry time has come. *sent gets the number now
 * submitted. LC_ERR_UNAVAIL when the node or DB is down (the pass stops). */
int chain_sender_broadcast(chain_ctx *ctx, int *sent, char err[LC_ERR_LEN]);

/* Checks receipts of submitted rows; *done gets the number that reached a
 * final status. A submitted transaction the node no longer knows (node
 * restarted) goes back to signed and is broadcast again unchanged. */
int chain_sender_track(chain_ctx *ctx, int *done, char err[LC_ERR_LEN]);

/* Publishes status changes through *pub (opened on ctx->amqp_url when NULL;
 * closed and set to NULL after any error). *published gets the count. */
int chain_sender_report(chain_ctx *ctx, lc_amqp_pub **pub, int *published,
                        char err[LC_ERR_LEN]);

/* Deterministic message id (UUID form) for (debit_id, status). */
void chain_event_msg_id(const char *debit_id, const char *status, char out[37]);

/* Thread entry (arg = chain_ctx*): one pass every ctx->poll_ms until
 * lc_svc_stopping. Returns NULL. */
void *chain_sender_main(void *arg);

#endif
