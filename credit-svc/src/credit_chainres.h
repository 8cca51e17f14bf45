/* credit_chainres.h - consumer of chain-svc results (queue
 * credit-svc.chain-results, types chain.transfer.submitted|confirmed|failed)
 * into the audit log.
 *
 * Message handling (lc_amqp_handler contract):
 *  - valid message, audit row updated or already at a higher status -> ack;
 *  - malformed envelope/body, type/status mismatch, or a debit_id with no
 *    audit row -> LC_ERR_PARAM (rejected to credit-svc.chain-results.dlq for
 *    inspection: chain results only exist for debits committed here, so an
 *    unknown debit is never a race and must not be silently dropped);
 *  - database unavailable -> requeue (redelivered later). */
#ifndef CREDIT_CHAINRES_H
#define CREDIT_CHAINRES_H

#include <stdatomic.h>
#include <stddef.h>

#include "lc/amqp.h"
#include "lc/db.h"

#define CREDIT_CHAIN_RESULTS_QUEUE "credit-svc.chain-results"

/* lc_amqp_batch_handler; ud = lc_db_pool*. The valid results of a batch are
 * applied in one transaction (credit_ledger_chain_update_batch); each
 * delivery's rc follows the contract above. */
void credit_chainres_batch(void *ud, lc_amqp_delivery *d, size_t n);

/* lc_amqp_handler (a batch of one); ud = lc_db_pool*. */
int credit_chainres_handle(void *ud, const char *routing_key, const char *msg_id,
                           const char *body, size_t len);

typedef struct {
  lc_db_pool *pool;      /* borrowed */
  const char *amqp_url;
  atomic_bool *stop;
} credit_chainres_cfg;

/* Thread body (arg = credit_chainres_cfg*): declares the topology (retrying
 * until the broker is reachable) and consumes until *stop. Returns NULL. */
void *credit_chainres_thread(void *arg);

#endif
