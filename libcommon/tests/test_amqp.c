/* test_amqp.c - integration tests of lc/amqp.h against the real RabbitMQ.
 *
 * The dev broker is shared: apart from the topology test, every test
 * declares its own exchange/queue/DLX named lc_test_<hex> (auto-expiring,
 * deleted at the end) through a small test-only helper that talks to the
 * broker with librabbitmq directly. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lc/amqp.h"
#include "lc/util.h"

Suite *lc_amqp_suite(void);
const char *itest_amqp_url(void);

/* ------------------------------------------------ test-only broker helper -- */

struct tnames {
  char ex[64];  /* direct exchange, auto-delete */
  char q[64];   /* classic queue bound with key "k", dead-letters to dlx */
  char dlx[64]; /* direct exchange */
  char dlq[64]; /* bound to dlx with key <q>.dlq */
};

static void rand_hex(char *out, size_t nbytes) {
  uint8_t b[16];
  lc_random(b, nbytes);
  lc_hex_encode(b, nbytes, out);
}

static void t_check(amqp_connection_state_t c, const char *what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  ck_assert_msg(r.reply_type == AMQP_RESPONSE_NORMAL, "%s failed (reply type %d, lib %s)", what,
                r.reply_type, amqp_error_string2(r.library_error));
}

static amqp_connection_state_t t_open(void) {
  struct amqp_connection_info ci;
  char *copy = lc_xstrdup(itest_amqp_url());
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t *s = amqp_tcp_socket_new(c);
  ck_assert_int_eq(amqp_parse_url(copy, &ci), AMQP_STATUS_OK);
  ck_assert_int_eq(amqp_socket_open(s, ci.host, ci.port), AMQP_STATUS_OK);
  amqp_rpc_reply_t r =
      amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
  ck_assert_int_eq(r.reply_type, AMQP_RESPONSE_NORMAL);
  free(copy);
  amqp_channel_open(c, 1);
  t_check(c, "channel.open");
  return c;
}

static void t_close(amqp_connection_state_t c) {
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

/* quorum: the main queue is a durable quorum queue (as in production), so
 * confirms wait for the Raft log to be written. */
static void t_topo_create_q(struct tnames *n, int quorum) {
  char hex[13];
  amqp_table_entry_t e[4];
  amqp_table_t args = {quorum ? 4 : 3, e};

  rand_hex(hex, 6);
  snprintf(n->ex, sizeof(n->ex), "lc_test_%s", hex);
  snprintf(n->q, sizeof(n->q), "lc_test_%s.q", hex);
  snprintf(n->dlx, sizeof(n->dlx), "lc_test_%s.dlx", hex);
  snprintf(n->dlq, sizeof(n->dlq), "lc_test_%s.q.dlq", hex);

  e[0].key = amqp_cstring_bytes("x-dead-letter-exchange");
  e[0].value.kind = AMQP_FIELD_KIND_UTF8;
  e[0].value.value.bytes = amqp_cstring_bytes(n->dlx);
  e[1].key = amqp_cstring_bytes("x-dead-letter-routing-key");
  e[1].value.kind = AMQP_FIELD_KIND_UTF8;
  e[1].value.value.bytes = amqp_cstring_bytes(n->dlq);
  e[2].key = amqp_cstring_bytes("x-expires"); /* leftovers vanish if a test aborts */
  e[2].value.kind = AMQP_FIELD_KIND_I32;
  e[2].value.value.i32 = 600000;
  e[3].key = amqp_cstring_bytes("x-queue-type");
  e[3].value.kind = AMQP_FIELD_KIND_UTF8;
  e[3].value.value.bytes = amqp_cstring_bytes("quorum");

  amqp_connection_state_t c = t_open();
  amqp_exchange_declare(c, 1, amqp_cstring_bytes(n->ex), amqp_cstring_bytes("direct"), 0, 0, 1,
                        0, amqp_empty_table);
  t_check(c, "exchange.declare");
  amqp_exchange_declare(c, 1, amqp_cstring_bytes(n->dlx), amqp_cstring_bytes("direct"), 0, 0, 1,
                        0, amqp_empty_table);
  t_check(c, "exchange.declare dlx");
  amqp_queue_declare(c, 1, amqp_cstring_bytes(n->q), 0, quorum ? 1 : 0, 0, 0, args);
  t_check(c, "queue.declare");
  amqp_table_t dargs = {1, &e[2]};
  amqp_queue_declare(c, 1, amqp_cstring_bytes(n->dlq), 0, 0, 0, 0, dargs);
  t_check(c, "queue.declare dlq");
  amqp_queue_bind(c, 1, amqp_cstring_bytes(n->q), amqp_cstring_bytes(n->ex),
                  amqp_cstring_bytes("k"), amqp_empty_table);
  t_check(c, "queue.bind");
  amqp_queue_bind(c, 1, amqp_cstring_bytes(n->dlq), amqp_cstring_bytes(n->dlx),
                  amqp_cstring_bytes(n->dlq), amqp_empty_table);
  t_check(c, "queue.bind dlq");
  t_close(c);
}

static void t_topo_create(struct tnames *n) { t_topo_create_q(n, 0); }

static void t_topo_delete(const struct tnames *n) {
  amqp_connection_state_t c = t_open();
  amqp_queue_delete(c, 1, amqp_cstring_bytes(n->q), 0, 0);
  t_check(c, "queue.delete");
  amqp_queue_delete(c, 1, amqp_cstring_bytes(n->dlq), 0, 0);
  t_check(c, "queue.delete dlq");
  amqp_exchange_delete(c, 1, amqp_cstring_bytes(n->ex), 0);
  t_check(c, "exchange.delete");
  amqp_exchange_delete(c, 1, amqp_cstring_bytes(n->dlx), 0);
  t_check(c, "exchange.delete dlx");
  t_close(c);
}

/* Passive declare: message (ready) count and consumer count of a queue. */
static void t_queue_counts(const char *q, uint32_t *messages, uint32_t *consumers) {
  amqp_connection_state_t c = t_open();
  amqp_queue_declare_ok_t *ok =
      amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
  t_check(c, "queue.declare passive");
  ck_assert_ptr_nonnull(ok);
  *messages = ok->message_count;
  if (consumers != NULL)
    *consumers = ok->consumer_count;
  t_close(c);
}

/* basic.get with auto-ack; returns 1 and the message id when a message was there. */
static int t_get(const char *q, char *mid, size_t n, char *body, size_t bn) {
  amqp_connection_state_t c = t_open();
  amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 1);
  int got = 0;
  ck_assert_int_eq(r.reply_type, AMQP_RESPONSE_NORMAL);
  if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
    amqp_message_t m;
    ck_assert_int_eq(amqp_read_message(c, 1, &m, 0).reply_type, AMQP_RESPONSE_NORMAL);
    size_t l = m.properties.message_id.len < n - 1 ? m.properties.message_id.len : n - 1;
    memcpy(mid, m.properties.message_id.bytes, l);
    mid[l] = '\0';
    l = m.body.len < bn - 1 ? m.body.len : bn - 1;
    memcpy(body, m.body.bytes, l);
    body[l] = '\0';
    amqp_destroy_message(&m);
    got = 1;
  }
  t_close(c);
  return got;
}

/* t_get, polling up to 2.5 s: dead-lettering is asynchronous. */
static int t_get_wait(const char *q, char *mid, size_t n, char *body, size_t bn) {
  int got = 0;
  for (int i = 0; i < 50 && !got; i++) {
    got = t_get(q, mid, n, body, bn);
    if (!got)
      usleep(50 * 1000);
  }
  return got;
}

/* ------------------------------------------------------- consumer harness -- */

struct cons_ctx {
  atomic_bool stop;
  char want_id[64];
  int mode;     /* 0: ack mine; 1: retry once then ack; 2: reject (poison) */
  int calls;    /* deliveries of want_id */
  int foreign;  /* deliveries of other messages */
  char body[128];
  char rk[128];
  int deadline_ms;
};

static int handler(void *ud, const char *rk, const char *msg_id, const char *body, size_t len) {
  struct cons_ctx *x = ud;
  if (strcmp(msg_id, x->want_id) != 0) {
    x->foreign++;
    return LC_ERR; /* not ours: leave it to its owner (requeue) */
  }
  x->calls++;
  lc_strlcpy(x->rk, rk, sizeof(x->rk));
  ck_assert_uint_eq(strlen(body), len); /* NUL-terminated copy */
  lc_strlcpy(x->body, body, sizeof(x->body));
  if (x->mode == 1 && x->calls == 1)
    return LC_ERR_UNAVAIL;
  if (x->mode == 2) {
    atomic_store(&x->stop, true);
    return LC_ERR_PARAM;
  }
  atomic_store(&x->stop, true);
  return LC_OK;
}

static void *watchdog(void *arg) {
  struct cons_ctx *x = arg;
  int64_t end = lc_mono_ms() + x->deadline_ms;
  while (!atomic_load(&x->stop) && lc_mono_ms() < end)
    usleep(20 * 1000);
  atomic_store(&x->stop, true);
  return NULL;
}

static void run_consumer(const char *queue, int prefetch, struct cons_ctx *x) {
  pthread_t w;
  ck_assert_int_eq(pthread_create(&w, NULL, watchdog, x), 0);
  ck_assert_int_eq(lc_amqp_consume(itest_amqp_url(), queue, prefetch, handler, x, &x->stop), LC_OK);
  pthread_join(w, NULL);
}

static lc_amqp_pub *pub_open(void) {
  lc_amqp_pub *p = NULL;
  char err[LC_ERR_LEN];
  int rc = lc_amqp_pub_open(itest_amqp_url(), &p, err);
  ck_assert_msg(rc == LC_OK, "pub_open: %s", err);
  return p;
}

static void new_id(char *out, size_t n) {
  char hex[25];
  rand_hex(hex, 12);
  snprintf(out, n, "lc-test-%s", hex);
}

/* -------------------------------------------------------------- tests -- */

START_TEST(test_topology_and_route) {
  char err[LC_ERR_LEN];
  struct cons_ctx x;
  uint32_t msgs = 0, consumers = 0;
  char body[160];

  ck_assert_msg(lc_amqp_declare_topology(itest_amqp_url(), err) == LC_OK, "%s", err);
  ck_assert_msg(lc_amqp_declare_topology(itest_amqp_url(), err) == LC_OK, "twice: %s", err);
  t_queue_counts("chain-svc.debits.dlq", &msgs, NULL);
  t_queue_counts("credit-svc.chain-results.dlq", &msgs, NULL);
  t_queue_counts("credit-svc.chain-results", &msgs, NULL);
  t_queue_counts("chain-svc.debits", &msgs, &consumers);

  memset(&x, 0, sizeof(x));
  x.deadline_ms = 15000;
  new_id(x.want_id, sizeof(x.want_id));
  /* not a valid envelope: a real chain-svc would dead-letter it, never act on it */
  snprintf(body, sizeof(body), "{\"lc_test\":\"%s\"}", x.want_id);
  lc_amqp_pub *p = pub_open();
  ck_assert_msg(lc_amqp_publish(p, "credit.events", "credit.debit.committed", x.want_id, body,
                                strlen(body), 5000, err) == LC_OK,
                "publish: %s", err);
  lc_amqp_pub_close(p);
  if (consumers > 0) {
    fprintf(stderr, "test_topology_and_route: chain-svc.debits has %u consumer(s); "
                    "routing verified by the mandatory publish only\n", consumers);
    return;
  }
  /* large prefetch: other people's messages (nacked back) cannot starve ours */
  run_consumer("chain-svc.debits", 500, &x);
  ck_assert_int_eq(x.calls, 1);
  ck_assert_str_eq(x.body, body);
  ck_assert_str_eq(x.rk, "credit.debit.committed");
}
END_TEST

START_TEST(test_unroutable) {
  struct tnames n = {0};
  char err[LC_ERR_LEN];
  t_topo_create(&n);
  lc_amqp_pub *p = pub_open();
  /* bound key works */
  ck_assert_msg(lc_amqp_publish(p, n.ex, "k", "m1", "{}", 2, 5000, err) == LC_OK, "%s", err);
  /* no binding for this key: basic.return then ack -> LC_ERR_NOTFOUND */
  int rc = lc_amqp_publish(p, n.ex, "no-such-key", "m2", "{}", 2, 5000, err);
  ck_assert_int_eq(rc, LC_ERR_NOTFOUND);
  ck_assert_msg(strstr(err, "unroutable") != NULL, "err: %s", err);
  /* publisher still consistent after a return */
  ck_assert_msg(lc_amqp_publish(p, n.ex, "k", "m3", "{}", 2, 5000, err) == LC_OK, "%s", err);
  /* missing exchange: channel closed 404 -> error, publisher unusable */
  rc = lc_amqp_publish(p, "lc_test_no_such_exchange_x", "k", "m4", "{}", 2, 5000, err);
  ck_assert_int_eq(rc, LC_ERR_IO);
  ck_assert_msg(strstr(err, "404") != NULL, "err: %s", err);
  ck_assert_int_eq(lc_amqp_publish(p, n.ex, "k", "m5", "{}", 2, 5000, err), LC_ERR_IO);
  lc_amqp_pub_close(p);
  uint32_t msgs = 0;
  t_queue_counts(n.q, &msgs, NULL);
  ck_assert_uint_eq(msgs, 2);
  t_topo_delete(&n);
}
END_TEST

START_TEST(test_retry_redelivers) {
  struct tnames n = {0};
  struct cons_ctx x;
  char err[LC_ERR_LEN], mid[64], body[64];
  uint32_t msgs = 9;

  t_topo_create(&n);
  memset(&x, 0, sizeof(x));
  x.mode = 1;
  x.deadline_ms = 10000;
  new_id(x.want_id, sizeof(x.want_id));
  lc_amqp_pub *p = pub_open();
  ck_assert_int_eq(lc_amqp_publish(p, n.ex, "k", x.want_id, "{\"a\":1}", 7, 5000, err), LC_OK);
  lc_amqp_pub_close(p);
  run_consumer(n.q, 10, &x);
  ck_assert_int_eq(x.calls, 2); /* failed once, redelivered, then acked */
  ck_assert_str_eq(x.body, "{\"a\":1}");
  t_queue_counts(n.q, &msgs, NULL);
  ck_assert_uint_eq(msgs, 0);
  ck_assert_int_eq(t_get(n.dlq, mid, sizeof(mid), body, sizeof(body)), 0);
  t_topo_delete(&n);
}
END_TEST

/* Batch consumer: 40 messages published before it starts arrive in batches
 * of at most 16, in order, each exactly once acked; #7 is poison (DLQ), #9
 * fails once and comes back. */
struct batch_ctx {
  atomic_bool stop;
  int batches, biggest, acked, calls9, seen[40], last, order_ok, over_max;
  char prefix[64];
};

static void batch_handler(void *ud, lc_amqp_delivery *d, size_t n) {
  struct batch_ctx *x = ud;
  x->batches++;
  if ((int)n > x->biggest)
    x->biggest = (int)n;
  if (n > 16)
    x->over_max = 1;
  for (size_t i = 0; i < n; i++) {
    int k = -1;
    d[i].rc = LC_ERR; /* not ours: requeue */
    if (strncmp(d[i].msg_id, x->prefix, strlen(x->prefix)) != 0 ||
        sscanf(d[i].msg_id + strlen(x->prefix), "%d", &k) != 1 || k < 0 || k >= 40)
      continue;
    ck_assert_uint_eq(strlen(d[i].body), d[i].len);
    ck_assert_str_eq(d[i].routing_key, "k");
    if (k == 9 && x->calls9++ == 0) {
      d[i].rc = LC_ERR_UNAVAIL;
      continue;
    }
    if (k != 9 && k <= x->last)
      x->order_ok = 0;
    if (k != 9)
      x->last = k;
    x->seen[k]++;
    d[i].rc = k == 7 ? LC_ERR_PARAM : LC_OK;
    x->acked += k != 7;
  }
  int all = 1;
  for (int k = 0; k < 40; k++)
    all &= x->seen[k] >= 1;
  if (all)
    atomic_store(&x->stop, true);
}

static void *batch_watchdog(void *arg) {
  struct batch_ctx *x = arg;
  int64_t end = lc_mono_ms() + 15000;
  while (!atomic_load(&x->stop) && lc_mono_ms() < end)
    usleep(20 * 1000);
  atomic_store(&x->stop, true);
  return NULL;
}

START_TEST(test_consume_batch) {
  struct tnames n = {0};
  struct batch_ctx x;
  char err[LC_ERR_LEN], mid[64], body[64];
  uint32_t msgs = 9;
  lc_amqp_msg m[40];
  char ids[40][80];

  t_topo_create(&n);
  memset(&x, 0, sizeof(x));
  x.last = -1;
  x.order_ok = 1;
  char id[48];
  new_id(id, sizeof(id));
  snprintf(x.prefix, sizeof(x.prefix), "%s-", id);
  for (int k = 0; k < 40; k++) {
    snprintf(ids[k], sizeof(ids[k]), "%s%d", x.prefix, k);
    m[k] = (lc_amqp_msg){"k", ids[k], "{\"n\":1}", 7, LC_ERR};
  }
  lc_amqp_pub *p = pub_open();
  ck_assert_int_eq(lc_amqp_publish_batch(p, n.ex, m, 40, 5000, err), LC_OK);
  lc_amqp_pub_close(p);
  ck_assert_int_eq(lc_amqp_consume_batch(itest_amqp_url(), n.q, 64, 0, batch_handler, &x,
                                         &x.stop),
                   LC_ERR_PARAM);
  ck_assert_int_eq(lc_amqp_consume_batch(itest_amqp_url(), n.q, 64, LC_AMQP_CONSUME_BATCH_MAX + 1,
                                         batch_handler, &x, &x.stop),
                   LC_ERR_PARAM);
  pthread_t w;
  ck_assert_int_eq(pthread_create(&w, NULL, batch_watchdog, &x), 0);
  ck_assert_int_eq(lc_amqp_consume_batch(itest_amqp_url(), n.q, 64, 16, batch_handler, &x,
                                         &x.stop),
                   LC_OK);
  pthread_join(w, NULL);
  for (int k = 0; k < 40; k++)
    ck_assert_msg(x.seen[k] == 1, "message %d handled %d times", k, x.seen[k]);
  ck_assert_int_eq(x.calls9, 2); /* requeued once, then acked */
  ck_assert_int_eq(x.acked, 39);
  ck_assert_int_eq(x.over_max, 0);
  ck_assert_msg(x.biggest > 1, "no batch of more than one (%d batches)", x.batches);
  ck_assert_msg(x.batches < 40, "%d batches for 40 messages", x.batches);
  ck_assert_int_eq(x.order_ok, 1);
  t_queue_counts(n.q, &msgs, NULL);
  ck_assert_uint_eq(msgs, 0);
  ck_assert_int_eq(t_get_wait(n.dlq, mid, sizeof(mid), body, sizeof(body)), 1);
  ck_assert_str_eq(mid, ids[7]);
  t_topo_delete(&n);
}
END_TEST

START_TEST(test_poison_to_dlq) {
  struct tnames n = {0};
  struct cons_ctx x;
  char err[LC_ERR_LEN], mid[64], body[64];
  uint32_t msgs = 9;

  t_topo_create(&n);
  memset(&x, 0, sizeof(x));
  x.mode = 2;
  x.deadline_ms = 10000;
  new_id(x.want_id, sizeof(x.want_id));
  lc_amqp_pub *p = pub_open();
  ck_assert_int_eq(lc_amqp_publish(p, n.ex, "k", x.want_id, "not json", 8, 5000, err), LC_OK);
  lc_amqp_pub_close(p);
  run_consumer(n.q, 10, &x);
  ck_assert_int_eq(x.calls, 1);
  t_queue_counts(n.q, &msgs, NULL);
  ck_assert_uint_eq(msgs, 0);
  ck_assert_int_eq(t_get_wait(n.dlq, mid, sizeof(mid), body, sizeof(body)), 1);
  ck_assert_str_eq(mid, x.want_id);
  ck_assert_str_eq(body, "not json");
  t_topo_delete(&n);
}
END_TEST

static void throughput(int quorum) {
  struct tnames n = {0};
  char err[LC_ERR_LEN], id[48];
  const char *body = "{\"v\":1,\"type\":\"lc.test\",\"body\":{\"n\":12345}}";
  uint32_t msgs = 0;

  t_topo_create_q(&n, quorum);
  lc_amqp_pub *p = pub_open();
  int64_t t0 = lc_mono_ms();
  for (int i = 0; i < 1000; i++) {
    snprintf(id, sizeof(id), "tp-%d", i);
    int rc = lc_amqp_publish(p, n.ex, "k", id, body, strlen(body), 5000, err);
    ck_assert_msg(rc == LC_OK, "publish %d: %s", i, err);
  }
  int64_t dt = lc_mono_ms() - t0;
  lc_amqp_pub_close(p);
  fprintf(stderr,
          "amqp publish, confirm awaited per message, %s queue: 1000 msgs in %lld ms = %.0f "
          "msgs/s\n",
          quorum ? "durable quorum" : "transient classic", (long long)dt,
          dt > 0 ? 1000.0 * 1000.0 / (double)dt : 0.0);
  t_queue_counts(n.q, &msgs, NULL);
  ck_assert_uint_eq(msgs, 1000);
  t_topo_delete(&n);
}

START_TEST(test_publish_throughput) {
  throughput(0);
  throughput(1);
}
END_TEST

/* Same 1000 messages into a durable quorum queue in pipelined batches of
 * 100: every confirm arrives, the queue holds all 1000, in publish order. */
START_TEST(test_publish_batch_throughput) {
  struct tnames n = {0};
  char err[LC_ERR_LEN];
  static char ids[1000][16];
  const char *body = "{\"v\":1,\"type\":\"lc.test\",\"body\":{\"n\":12345}}";
  lc_amqp_msg m[100];
  uint32_t msgs = 0;

  t_topo_create_q(&n, 1);
  lc_amqp_pub *p = pub_open();
  int64_t t0 = lc_mono_ms();
  for (int b = 0; b < 10; b++) {
    for (int i = 0; i < 100; i++) {
      snprintf(ids[b * 100 + i], sizeof(ids[0]), "tb-%d", b * 100 + i);
      m[i] = (lc_amqp_msg){"k", ids[b * 100 + i], body, strlen(body), -1};
    }
    ck_assert_msg(lc_amqp_publish_batch(p, n.ex, m, 100, 5000, err) == LC_OK, "batch %d: %s", b,
                  err);
    for (int i = 0; i < 100; i++)
      ck_assert_int_eq(m[i].result, LC_OK);
  }
  int64_t dt = lc_mono_ms() - t0;
  fprintf(stderr,
          "amqp publish, batches of 100, confirms awaited per batch, durable quorum queue: 1000 "
          "msgs in %lld ms = %.0f msgs/s\n",
          (long long)dt, dt > 0 ? 1000.0 * 1000.0 / (double)dt : 0.0);
  /* an empty batch is a no-op; the publisher is still usable */
  ck_assert_int_eq(lc_amqp_publish_batch(p, n.ex, m, 0, 5000, err), LC_OK);
  lc_amqp_pub_close(p);
  t_queue_counts(n.q, &msgs, NULL);
  ck_assert_uint_eq(msgs, 1000);
  /* in publish order */
  amqp_connection_state_t c = t_open();
  for (int i = 0; i < 1000; i++) {
    amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(n.q), 1);
    ck_assert_int_eq(r.reply_type, AMQP_RESPONSE_NORMAL);
    ck_assert_int_eq(r.reply.id, AMQP_BASIC_GET_OK_METHOD);
    amqp_message_t msg;
    ck_assert_int_eq(amqp_read_message(c, 1, &msg, 0).reply_type, AMQP_RESPONSE_NORMAL);
    ck_assert_int_eq((int)msg.properties.message_id.len, (int)strlen(ids[i]));
    ck_assert(memcmp(msg.properties.message_id.bytes, ids[i], strlen(ids[i])) == 0);
    amqp_destroy_message(&msg);
  }
  t_close(c);
  t_topo_delete(&n);
}
END_TEST

/* Routable and unroutable messages mixed in one batch: each gets its own
 * result (the return is matched to its message, not to a neighbour), the
 * call succeeds, the publisher stays usable, only the routable ones land. */
START_TEST(test_publish_batch_mixed) {
  struct tnames n = {0};
  char err[LC_ERR_LEN];
  lc_amqp_msg m[7] = {
      {"k", "b0", "{}", 2, -1},        {"nope", "b1", "{}", 2, -1}, {"k", "b2", "{}", 2, -1},
      {"nope", "b3", "{}", 2, -1},     {"nope", "b4", "{}", 2, -1}, {"k", "b5", "{\"x\":1}", 7, -1},
      {"k", "b6", "", 0, -1},
  };
  uint32_t msgs = 0;

  t_topo_create(&n);
  lc_amqp_pub *p = pub_open();
  ck_assert_msg(lc_amqp_publish_batch(p, n.ex, m, 7, 5000, err) == LC_OK, "%s", err);
  for (int i = 0; i < 7; i++)
    ck_assert_msg(m[i].result == (strcmp(m[i].routing_key, "k") == 0 ? LC_OK : LC_ERR_NOTFOUND),
                  "message %d: result %d", i, m[i].result);
  ck_assert_msg(strstr(err, "unroutable") != NULL, "err: %s", err);
  /* still usable: a batch of one and the single publish */
  ck_assert_msg(lc_amqp_publish_batch(p, n.ex, m, 1, 5000, err) == LC_OK, "%s", err);
  ck_assert_int_eq(m[0].result, LC_OK);
  ck_assert_msg(lc_amqp_publish(p, n.ex, "k", "b7", "{}", 2, 5000, err) == LC_OK, "%s", err);
  lc_amqp_pub_close(p);
  t_queue_counts(n.q, &msgs, NULL);
  ck_assert_uint_eq(msgs, 6);
  t_topo_delete(&n);
}
END_TEST

/* Bad arguments send nothing and leave the publisher usable; a missing
 * exchange closes the channel: no message of the batch counts as
 * confirmed, and the publisher is unusable afterwards. */
START_TEST(test_publish_batch_errors) {
  struct tnames n = {0};
  char err[LC_ERR_LEN];
  lc_amqp_msg m[3] = {{"k", "e0", "{}", 2, -1}, {"k", NULL, "{}", 2, -1}, {"k", "e2", "{}", 2, -1}};
  uint32_t msgs = 9;

  t_topo_create(&n);
  lc_amqp_pub *p = pub_open();
  ck_assert_int_eq(lc_amqp_publish_batch(p, n.ex, m, 3, 5000, err), LC_ERR_PARAM);
  ck_assert_int_eq(lc_amqp_publish_batch(p, n.ex, m, LC_AMQP_BATCH_MAX + 1, 5000, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(lc_amqp_publish_batch(p, NULL, m, 1, 5000, err), LC_ERR_PARAM);
  t_queue_counts(n.q, &msgs, NULL);
  ck_assert_uint_eq(msgs, 0);
  m[1].msg_id = "e1";
  ck_assert_int_eq(lc_amqp_publish_batch(p, "lc_test_no_such_exchange_y", m, 3, 5000, err),
                   LC_ERR_IO);
  ck_assert_msg(strstr(err, "404") != NULL, "err: %s", err);
  for (int i = 0; i < 3; i++)
    ck_assert_msg(m[i].result != LC_OK && m[i].result != LC_ERR_NOTFOUND, "message %d: %d", i,
                  m[i].result);
  ck_assert_int_eq(lc_amqp_publish_batch(p, n.ex, m, 1, 5000, err), LC_ERR_IO);
  lc_amqp_pub_close(p);
  t_queue_counts(n.q, &msgs, NULL);
  ck_assert_uint_eq(msgs, 0);
  t_topo_delete(&n);
}
END_TEST

struct stop_ctx {
  const char *url;
  const char *queue;
  atomic_bool stop;
  int rc;
  int64_t returned_at;
};

static int never(void *ud, const char *rk, const char *id, const char *b, size_t l) {
  return LC_OK;
}

static void *consume_thread(void *arg) {
  struct stop_ctx *s = arg;
  s->rc = lc_amqp_consume(s->url, s->queue, 1, never, NULL, &s->stop);
  s->returned_at = lc_mono_ms();
  return NULL;
}

static void check_stop(const char *url, const char *queue, int run_ms) {
  struct stop_ctx s;
  pthread_t th;
  memset(&s, 0, sizeof(s));
  s.url = url;
  s.queue = queue;
  s.rc = -1;
  ck_assert_int_eq(pthread_create(&th, NULL, consume_thread, &s), 0);
  usleep((useconds_t)run_ms * 1000);
  int64_t t0 = lc_mono_ms();
  atomic_store(&s.stop, true);
  pthread_join(th, NULL);
  ck_assert_int_eq(s.rc, LC_OK);
  ck_assert_msg(s.returned_at - t0 < 1200, "returned %lld ms after stop",
                (long long)(s.returned_at - t0));
}

START_TEST(test_stop_flag) {
  struct tnames n = {0};
  t_topo_create(&n);
  check_stop(itest_amqp_url(), n.q, 700);
  t_topo_delete(&n);
  /* missing queue: channel closes with 404, consumer backs off and retries
   * until stopped */
  check_stop(itest_amqp_url(), "lc_test_no_such_queue_x", 1500);
  /* unreachable broker: connect errors with backoff, still stops promptly */
  check_stop("amqp://guest:guest@127.0.0.1:1/%2f", "q", 1500);
}
END_TEST

START_TEST(test_ping_and_bad_urls) {
  lc_amqp_pub *p = NULL;
  char err[LC_ERR_LEN];
  atomic_bool stop = true;

  ck_assert_int_eq(lc_amqp_ping(itest_amqp_url()), 1);
  ck_assert_int_eq(lc_amqp_ping("amqp://guest:guest@127.0.0.1:1/%2f"), 0);
  ck_assert_int_eq(lc_amqp_pub_open("amqp://guest:pw-not-logged@127.0.0.1:1/%2f", &p, err),
                   LC_ERR_UNAVAIL);
  ck_assert_msg(strstr(err, "pw-not-logged") == NULL, "password leaked: %s", err);
  ck_assert_ptr_null(p);
  ck_assert_int_eq(lc_amqp_pub_open("http://nope", &p, err), LC_ERR_PARAM);
  {
    struct amqp_connection_info ci;
    char *copy = lc_xstrdup(itest_amqp_url());
    char url[256];
    ck_assert_int_eq(amqp_parse_url(copy, &ci), AMQP_STATUS_OK);
    snprintf(url, sizeof(url), "amqp://%s:wrong-password@%s:%d/%%2f", ci.user, ci.host, ci.port);
    free(copy);
    ck_assert_int_eq(lc_amqp_pub_open(url, &p, err), LC_ERR_UNAVAIL);
  }
  ck_assert_msg(strstr(err, "wrong-password") == NULL, "password leaked: %s", err);
  ck_assert_int_eq(lc_amqp_consume(itest_amqp_url(), "q", 1, never, NULL, &stop), LC_OK);
  lc_amqp_pub_close(NULL);
}
END_TEST

Suite *lc_amqp_suite(void) {
  Suite *s = suite_create("amqp");
  TCase *tc = tcase_create("amqp");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_ping_and_bad_urls);
  tcase_add_test(tc, test_topology_and_route);
  tcase_add_test(tc, test_unroutable);
  tcase_add_test(tc, test_retry_redelivers);
  tcase_add_test(tc, test_poison_to_dlq);
  tcase_add_test(tc, test_consume_batch);
  tcase_add_test(tc, test_publish_throughput);
  tcase_add_test(tc, test_publish_batch_throughput);
  tcase_add_test(tc, test_publish_batch_mixed);
  tcase_add_test(tc, test_publish_batch_errors);
  tcase_add_test(tc, test_stop_flag);
  suite_add_tcase(s, tc);
  return s;
}
