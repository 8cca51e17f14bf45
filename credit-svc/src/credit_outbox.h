/* credit_outbox.h - outbox relay: publishes committed-debit messages written
 * by credit_ledger_commit to RabbitMQ with publisher confirms, then marks the
 * rows sent (at-least-once; consumers are idempotent on debit_id / id).
 *
 * Several relays (threads or daemon instances) may run at once: each batch
 * locks its rows with FOR UPDATE SKIP LOCKED. Order is created_at order
 * within a batch; across relays it is best effort. */
#ifndef CREDIT_OUTBOX_H
#define CREDIT_OUTBOX_H

#include <stdatomic.h>

#include "lc/amqp.h"
#include "lc/db.h"
#include "lc/err.h"

#define CREDIT_OUTBOX_BATCH 100
#define CREDIT_EVENTS_EXCHANGE "credit.events"

/* Publishes at most CREDIT_OUTBOX_BATCH unsent rows through pub (owned by the
 * calling thread) to exchange and marks the acked ones sent, all in one
 * transaction. *sent = rows marked sent. Returns LC_OK, the publish error
 * (LC_ERR_IO / LC_ERR_TIMEOUT: pub is then unusable, close and reopen; rows
 * acked before the failure are still marked sent) or a database error. */
int credit_outbox_drain(lc_db_pool *pool, lc_amqp_pub *pub, const char *exchange, int *sent,
                        char err[LC_ERR_LEN]);

typedef struct {
  lc_db_pool *pool;       /* borrowed */
  const char *conninfo;   /* for the dedicated LISTEN connection; NULL = poll only */
  const char *amqp_url;
  const char *exchange;   /* CREDIT_EVENTS_EXCHANGE in the daemon */
  int poll_ms;            /* idle wake-up period, e.g. 100 */
  atomic_bool *stop;      /* loop ends when true (after a last drain) */
} credit_relay_cfg;

/* Thread body (arg = credit_relay_cfg*, borrowed): drains the outbox until
 * *stop, woken by NOTIFY credit_outbox or every poll_ms; reopens the
 * publisher with capped exponential backoff after broker errors. Returns NULL. */
void *credit_outbox_thread(void *arg);

#endif
