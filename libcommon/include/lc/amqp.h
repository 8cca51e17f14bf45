/* amqp.h - RabbitMQ publisher (publisher confirms) and consumer (manual ack).
 *
 * Threading: an lc_amqp_pub and a consumer each own one connection and one
 * channel and must be used by one thread at a time (create one per thread).
 * URL: amqp://user:pass@host:port/vhost (vhost "%2f" = "/").
 *
 * Topology (declared idempotently by lc_amqp_declare_topology, see
 * proto/topology.md): topic exchanges credit.events, chain.events,
 * auth.events; quorum queues chain-svc.debits (credit.debit.committed) and
 * credit-svc.chain-results (chain.transfer.*), credit-svc.audit
 * (auth.events / auth.audit), each with a dead-letter queue
 * <queue>.dlq via exchange dlx. */
#ifndef LC_AMQP_H
#define LC_AMQP_H

#include <stdatomic.h>
#include <stddef.h>
#include "lc/err.h"

typedef struct lc_amqp_pub lc_amqp_pub;

/* Connects, opens channel 1 and enables confirm mode. *out is new. */
int lc_amqp_pub_open(const char *url, lc_amqp_pub **out, char err[LC_ERR_LEN]);
void lc_amqp_pub_close(lc_amqp_pub *pub);

/* Publishes one persistent message (content-type application/json,
 * message_id = msg_id, mandatory) and waits up to timeout_ms for the broker's
 * confirm. Returns LC_OK only on basic.ack with no basic.return;
 * LC_ERR_NOTFOUND when the broker returned the message as unroutable (no
 * queue bound for the routing key; the publisher stays usable - the caller
 * decides whether "delivered to nobody" is fine, e.g. auth.events
 * revocations with no gateway running, or a reason to retry later);
 * otherwise LC_ERR_IO / LC_ERR_TIMEOUT (the caller retries later; the
 * connection is then unusable: close and reopen). */
int lc_amqp_publish(lc_amqp_pub *pub, const char *exchange, const char *routing_key,
                    const char *msg_id, const char *body, size_t len, int timeout_ms,
                    char err[LC_ERR_LEN]);

/* One message of a batch (lc_amqp_publish_batch). */
typedef struct {
  const char *routing_key;
  const char *msg_id;  /* message_id; unique within a batch (a return is matched by it) */
  const char *body;
  size_t len;
  int result;          /* out: see lc_amqp_publish_batch */
} lc_amqp_msg;

#define LC_AMQP_BATCH_MAX 1000
#define LC_AMQP_MSGID_MAX 255 /* AMQP short string */

/* Publishes msgs[0..n) (n <= LC_AMQP_BATCH_MAX) like lc_amqp_publish, but
 * back to back, then waits up to timeout_ms in all for the confirms of all
 * of them: one round trip and one broker disk flush for the batch instead
 * of one per message. Per message, result = LC_OK (acked), LC_ERR_NOTFOUND
 * (returned as unroutable, then acked), LC_ERR_IO (nacked, or never sent)
 * or LC_ERR_TIMEOUT (no confirm seen: the broker may or may not have it).
 * A result of LC_OK or LC_ERR_NOTFOUND is final whatever the return value.
 * Returns LC_OK when every message was confirmed (results may still be
 * LC_ERR_NOTFOUND; err then describes one) and the publisher stays usable;
 * LC_ERR_PARAM for bad arguments (nothing sent); otherwise LC_ERR_IO /
 * LC_ERR_TIMEOUT and the publisher is unusable (close and reopen). Brokers
 * may confirm out of order; acks with "multiple" are handled. */
int lc_amqp_publish_batch(lc_amqp_pub *pub, const char *exchange, lc_amqp_msg *msgs, size_t n,
                          int timeout_ms, char err[LC_ERR_LEN]);

/* Declares exchanges, queues, bindings and DLQs (idempotent). */
int lc_amqp_declare_topology(const char *url, char err[LC_ERR_LEN]);

/* Handler result: LC_OK -> ack; LC_ERR_PARAM -> reject without requeue
 * (poison message goes to the DLQ); anything else -> nack with requeue after
 * a short delay. Called only from the consumer's thread. */
typedef int (*lc_amqp_handler)(void *ud, const char *routing_key, const char *msg_id,
                               const char *body, size_t len);

/* Consumes queue with prefetch until *stop becomes true, reconnecting with
 * capped exponential backoff when the broker goes away. Acks only after the
 * handler returns. Blocks the calling thread; returns LC_OK after stop. */
int lc_amqp_consume(const char *url, const char *queue, int prefetch, lc_amqp_handler fn,
                    void *ud, atomic_bool *stop);

/* One delivery of a batch. The handler sets rc for each, with the meaning of
 * an lc_amqp_handler's result (ack / dead-letter / requeue). The strings
 * live until the handler returns; body is NUL-terminated. */
typedef struct {
  const char *routing_key;
  const char *msg_id;
  const char *body;
  size_t len;
  int rc;
} lc_amqp_delivery;

typedef void (*lc_amqp_batch_handler)(void *ud, lc_amqp_delivery *d, size_t n);

#define LC_AMQP_CONSUME_BATCH_MAX 256

/* Like lc_amqp_consume, but after each delivery it takes, without waiting,
 * every further delivery already received (up to max_batch, 1..
 * LC_AMQP_CONSUME_BATCH_MAX, bounded by prefetch) and hands them to fn at once, in
 * delivery order, so that a handler can apply them in one transaction; each
 * is then settled by its rc. A message over the size limit is dead-lettered
 * without reaching fn. LC_ERR_PARAM for bad arguments. */
int lc_amqp_consume_batch(const char *url, const char *queue, int prefetch, int max_batch,
                          lc_amqp_batch_handler fn, void *ud, atomic_bool *stop);

/* Like lc_amqp_consume, for broadcast events: on every (re)connection
 * declares exchange (topic, durable, as the topology does), a server-named
 * exclusive auto-delete queue bound to each of keys[0..nkeys), consumes it,
 * then calls on_bound(ud) (may be NULL) from the consumer's thread. Events
 * published while no queue was bound (between connections) are lost, so
 * on_bound is where a consumer resynchronises (e.g. reloads a list). The
 * queue disappears with the connection. Blocks until *stop. */
int lc_amqp_consume_bound(const char *url, const char *exchange, const char *const *keys,
                          size_t nkeys, int prefetch, void (*on_bound)(void *ud),
                          lc_amqp_handler fn, void *ud, atomic_bool *stop);

/* 1 when a connection to url can be opened now (for /readyz). */
int lc_amqp_ping(const char *url);

#endif
