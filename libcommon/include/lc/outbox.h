/* outbox.h - generic transactional-outbox relay (publisher confirms).
 *
 * A daemon writes an envelope row into its own schema's table
 *   outbox(id uuid PK, routing_key text, payload text, created_at, sent_at, attempts)
 * in the same transaction as the change it announces (and may NOTIFY
 * <channel>); the relay publishes unsent rows in created_at order to one
 * exchange and marks them sent only after the broker's confirm, so delivery
 * is at least once (consumers are idempotent on the envelope id).
 *
 * Several relays (threads or instances) may run at once: each batch locks
 * its rows with FOR UPDATE SKIP LOCKED. Thread-safety: lc_outbox_drain uses
 * the caller's publisher (one thread); lc_outbox_thread owns its own. */
#ifndef LC_OUTBOX_H
#define LC_OUTBOX_H

#include <stdatomic.h>

#include "lc/amqp.h"
#include "lc/db.h"
#include "lc/err.h"

#define LC_OUTBOX_BATCH 100

/* Publishes at most LC_OUTBOX_BATCH unsent rows (oldest first) through pub
 * as one pipelined batch (lc_amqp_publish_batch: all in flight, one wait
 * for the confirms) and marks the confirmed ones sent, all in one
 * transaction. A row returned unroutable (no queue bound) counts as sent
 * when its routing key starts with one of the NULL-terminated
 * drop_unroutable prefixes (may be NULL: never); otherwise it stays unsent
 * with attempts+1, as does a nacked row; a row whose confirm never came
 * stays unsent as it was (the broker may have it: at least once). Rows of
 * one batch may thus reach the broker out of created_at order when some of
 * them fail (consumers are idempotent and order-independent). *sent = rows
 * marked sent. Returns LC_OK, the publish error (LC_ERR_IO / LC_ERR_TIMEOUT:
 * pub unusable, reopen; LC_ERR_NOTFOUND: some rows unroutable, pub still
 * usable, retry later) or a database error. */
int lc_outbox_drain(lc_db_pool *pool, lc_amqp_pub *pub, const char *exchange,
                    const char *const *drop_unroutable, int *sent, char err[LC_ERR_LEN]);

typedef struct {
  lc_db_pool *pool;                     /* borrowed */
  const char *conninfo;                 /* dedicated LISTEN connection; NULL = poll only */
  const char *channel;                  /* NOTIFY channel name ([a-z_]{1,63}); NULL = poll only */
  const char *amqp_url;
  const char *exchange;
  const char *const *drop_unroutable;   /* see lc_outbox_drain; may be NULL */
  int declare_topology;                 /* 1 = lc_amqp_declare_topology once per broker connection */
  int poll_ms;                          /* idle wake-up period, e.g. 100 */
  void (*tick)(void *ud);               /* called once per loop turn (housekeeping); may be NULL */
  void *tick_ud;
  const char *name;                     /* log prefix / request id, e.g. "auth-outbox" */
  atomic_bool *stop;                    /* loop ends when true (after a last drain) */
} lc_outbox_cfg;

/* Thread body (arg = lc_outbox_cfg*, borrowed, must outlive the thread):
 * drains until *stop, woken by NOTIFY or every poll_ms; reopens the
 * publisher with capped exponential backoff (100 ms .. 5 s) after broker
 * errors. Returns NULL. */
void *lc_outbox_thread(void *arg);

#endif
