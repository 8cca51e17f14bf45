/* consumer.h - turns credit.debit.committed messages into signed ERC-20
 * transfers stored in chain.transfers (status "signed"); the sender thread
 * broadcasts them.
 *
 * Per message, in one DB transaction: lock the master's nonce row, sign
 * transfer(user address, cost * 10^decimals) with that nonce, insert the
 * transfer row, advance the nonce, commit. The message is acked only after
 * that commit (lc_amqp_consume acks when the handler returns LC_OK). */
#ifndef CHAIN_CONSUMER_H
#define CHAIN_CONSUMER_H

#include <stddef.h>

#include "chain_ctx.h"

#define CHAIN_DEBITS_QUEUE "chain-svc.debits"
#define CHAIN_DEBIT_TYPE "credit.debit.committed"
#define CHAIN_COST_MAX 1000000
#define CHAIN_CONSUMERS_MAX 64

/* lc_amqp_handler (ud = chain_ctx*). Returns LC_OK when the transfer is stored
 * (or already was: redelivery), LC_ERR_PARAM for a malformed message (goes to
 * the DLQ) and another status for transient failures (DB or node down; the
 * message is requeued, nothing is committed, no nonce is used).
 * Thread-safe: concurrent calls serialise on the nonce row lock. */
int chain_debit_handle(void *ud, const char *routing_key, const char *msg_id, const char *body,
                       size_t len);

/* 1 when a handler status is a failure of this message rather than an
 * outage (node, database, broker) or a race: such failures are counted per
 * message id in chain.deliveries and, after ctx->max_deliveries, the message
 * is rejected to the DLQ. Outages are retried forever (no committed debit is
 * ever dead-lettered because a dependency was down). */
int chain_debit_failure_counts(int rc);

/* Thread entry (arg = chain_ctx* with amqp_url set): declares the topology
 * (retrying until the broker answers) and consumes CHAIN_DEBITS_QUEUE with
 * ctx->consumers connections (threads) until lc_svc_stopping. With more than
 * one, the handlers' store steps are batched: one nonce lock and one commit
 * for all debits waiting at that moment (each message is still acked only
 * after the commit that stored it). Returns NULL. */
void *chain_consumer_main(void *arg);

#endif
