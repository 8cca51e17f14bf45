/* outbox.h - generic transactional-outbox relay (publisher confirms).
 *
 * A daemon writes an envelope row into its own schema's table
 *   outbox(id uuid PK, routing_key text, payload text, created_at, sent_at, attempts)
 * in the same transaction as the change it announces; after its commit it
 * rings the relay's bell (lc_outbox_ring, same process) or, from another
 * process, NOTIFYs <channel>; otherwise the relay finds the row within
 * poll_ms. The relay publishes unsent rows in created_at order to one
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

/* In-process wake-up of a relay: a non-blocking self-pipe. Ringing costs
 * one write(2) at most (rings while one is pending coalesce) and, unlike a
 * NOTIFY inside the writing transaction, takes no database-wide lock: a
 * transaction that NOTIFYs holds PostgreSQL's notify-queue lock from its
 * commit until the commit is flushed, so concurrent NOTIFYing commits
 * serialise, WAL flush included. Thread-safe; ring after the commit. */
typedef struct lc_outbox_bell lc_outbox_bell;
int lc_outbox_bell_new(lc_outbox_bell **out, char err[LC_ERR_LEN]);
void lc_outbox_bell_free(lc_outbox_bell *b);
void lc_outbox_ring(lc_outbox_bell *b);   /* NULL: nothing */

typedef struct {
  lc_db_pool *pool;                     /* borrowed */
  lc_outbox_bell *bell;                 /* borrowed; rung by the writers of this process; may be NULL */
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
 * drains until *stop, woken by the bell, a NOTIFY or every poll_ms; reopens the
 * publisher with capped exponential backoff (100 ms .. 5 s) after broker
 * errors. Returns NULL. */
void *lc_outbox_thread(void *arg);

#endif
