/* amqp.c - RabbitMQ publisher with publisher confirms, topology declaration
 * and a reconnecting consumer with manual acknowledgements (librabbitmq 0.11).
 *
 * Every connection uses channel 1 only. A publisher sends a batch of
 * messages back to back and then waits for the broker's confirms of all of
 * them (lc_amqp_publish is a batch of one); a basic.return (mandatory,
 * unroutable) is reported as LC_ERR_NOTFOUND (the publisher stays usable);
 * basic.nack, channel/connection close or timeout is reported as an error
 * and the publisher becomes unusable (close and reopen).
 * The consumer acks only after its handler returns; see lc/amqp.h for the
 * handler contract and proto/topology.md for the wire topology.
 * Error texts carry host and port but never the URL's credentials. */
#include "lc/amqp.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "lc/log.h"
#include "lc/util.h"

#define AMQP_CHAN 1
#define AMQP_CONNECT_TIMEOUT_MS 5000
#define AMQP_RPC_TIMEOUT_MS 10000
#define AMQP_FRAME_MAX 131072
#define AMQP_CONSUMER_HEARTBEAT_S 30
#define AMQP_CONSUME_POLL_MS 500
#define AMQP_RETRY_DELAY_MS 200
#define AMQP_BACKOFF_MIN_MS 200
#define AMQP_BACKOFF_MAX_MS 5000
#define AMQP_MAX_BODY (1024u * 1024u)
#define AMQP_CONSUME_MAX LC_AMQP_CONSUME_BATCH_MAX

struct lc_amqp_pub {
  amqp_connection_state_t conn;
  uint64_t next_tag; /* delivery tag of the next publish (confirm mode starts at 1) */
  int broken;        /* 1 after any failure: the channel state is unknown */
};

/* ------------------------------------------------------------ helpers -- */

static struct timeval ms_tv(int64_t ms) {
  struct timeval tv;
  if (ms < 0)
    ms = 0;
  tv.tv_sec = (time_t)(ms / 1000);
  tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
  return tv;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Copies an amqp_bytes_t into a NUL-terminated bounded buffer. */
static void bytes_to_str(amqp_bytes_t b, char *out, size_t n) {
  size_t len = b.len < n - 1 ? b.len : n - 1;
  if (len > 0)
    memcpy(out, b.bytes, len);
  out[len] = '\0';
}

/* Describes a failed RPC reply; returns LC_ERR_IO (or LC_ERR_TIMEOUT). */
static int rpc_fail(amqp_rpc_reply_t r, const char *what, char err[LC_ERR_LEN]) {
  char text[128];

  switch (r.reply_type) {
  case AMQP_RESPONSE_NORMAL:
    return LC_OK;
  case AMQP_RESPONSE_NONE:
    return lc_err_set(err, LC_ERR_IO, "%s - missing RPC reply", what);
  case AMQP_RESPONSE_LIBRARY_EXCEPTION:
    return lc_err_set(err, r.library_error == AMQP_STATUS_TIMEOUT ? LC_ERR_TIMEOUT : LC_ERR_IO,
                      "%s - %s", what, amqp_error_string2(r.library_error));
  case AMQP_RESPONSE_SERVER_EXCEPTION:
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      amqp_connection_close_t *m = r.reply.decoded;
      bytes_to_str(m->reply_text, text, sizeof(text));
      return lc_err_set(err, LC_ERR_IO, "%s - connection closed by broker: %u %s", what,
                        m->reply_code, text);
    }
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
      amqp_channel_close_t *m = r.reply.decoded;
      bytes_to_str(m->reply_text, text, sizeof(text));
      return lc_err_set(err, LC_ERR_IO, "%s - channel closed by broker: %u %s", what,
                        m->reply_code, text);
    }
    return lc_err_set(err, LC_ERR_IO, "%s - unexpected server method 0x%08x", what,
                      (unsigned)r.reply.id);
  }
  return lc_err_set(err, LC_ERR_IO, "%s - unknown reply type", what);
}

/* Checks the last RPC reply. On a broker-side channel or connection close
 * it completes the close handshake (and closes the connection politely
 * after a channel close), so the caller only has to destroy the
 * connection. Returns LC_OK or the error from rpc_fail. */
static int rpc_check(amqp_connection_state_t c, const char *what, char err[LC_ERR_LEN]) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  int rc = rpc_fail(r, what, err);

  if (rc == LC_OK || r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION)
    return rc;
  if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    amqp_channel_close_ok_t ok;
    memset(&ok, 0, sizeof(ok));
    amqp_send_method(c, AMQP_CHAN, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  } else if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    amqp_connection_close_ok_t ok;
    memset(&ok, 0, sizeof(ok));
    amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  }
  return rc;
}

/* Opens a connection and channel 1. url is copied (amqp_parse_url edits
 * it in place). heartbeat in seconds (0 = none). */
static int conn_open(const char *url, int heartbeat, amqp_connection_state_t *out,
                     char err[LC_ERR_LEN]) {
  struct amqp_connection_info ci;
  amqp_connection_state_t c = NULL;
  amqp_socket_t *sock;
  struct timeval tv;
  char *copy = NULL;
  int st, rc = LC_OK;

  *out = NULL;
  if (url == NULL || url[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "amqp - empty url");
  copy = lc_xstrdup(url);
  if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
    rc = lc_err_set(err, LC_ERR_PARAM, "amqp - malformed url");
    goto out;
  }
  if (ci.ssl) {
    rc = lc_err_set(err, LC_ERR_PARAM, "amqp - amqps:// is not supported");
    goto out;
  }
  c = amqp_new_connection();
  if (c == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "amqp - cannot allocate connection");
    goto out;
  }
  sock = amqp_tcp_socket_new(c);
  if (sock == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "amqp - cannot allocate socket");
    goto out;
  }
  tv = ms_tv(AMQP_CONNECT_TIMEOUT_MS);
  st = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
  if (st != AMQP_STATUS_OK) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "amqp - cannot connect to %s:%d: %s", ci.host, ci.port,
                    amqp_error_string2(st));
    goto out;
  }
  tv = ms_tv(AMQP_RPC_TIMEOUT_MS);
  amqp_set_handshake_timeout(c, &tv);
  amqp_set_rpc_timeout(c, &tv);
  rc = rpc_fail(amqp_login(c, ci.vhost, 0, AMQP_FRAME_MAX, heartbeat, AMQP_SASL_METHOD_PLAIN,
                           ci.user, ci.password),
                "amqp login", err);
  if (rc != LC_OK) {
    rc = LC_ERR_UNAVAIL;
    goto out;
  }
  amqp_channel_open(c, AMQP_CHAN);
  rc = rpc_check(c, "amqp channel.open", err);
  if (rc != LC_OK)
    goto out;
  *out = c;
  c = NULL;
out:
  if (c != NULL)
    amqp_destroy_connection(c);
  free(copy);
  return rc;
}

/* Closes politely when the connection is healthy, then frees it. Callers
 * pass healthy=0 after errors (the close handshake, if still possible, was
 * already done by rpc_check / the frame handlers). */
static void conn_close(amqp_connection_state_t c, int healthy) {
  if (c == NULL)
    return;
  if (healthy) {
    amqp_channel_close(c, AMQP_CHAN, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(c);
}

/* ---------------------------------------------------------- publisher -- */

int lc_amqp_pub_open(const char *url, lc_amqp_pub **out, char err[LC_ERR_LEN]) {
  amqp_connection_state_t c = NULL;
  int rc;

  if (out == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "lc_amqp_pub_open - out is NULL");
  *out = NULL;
  rc = conn_open(url, 0, &c, err);
  if (rc != LC_OK)
    return rc;
  amqp_confirm_select(c, AMQP_CHAN);
  rc = rpc_check(c, "amqp confirm.select", err);
  if (rc != LC_OK) {
    conn_close(c, 0);
    return rc;
  }
  lc_amqp_pub *p = lc_xcalloc(1, sizeof(*p));
  p->conn = c;
  p->next_tag = 1;
  *out = p;
  return LC_OK;
}

void lc_amqp_pub_close(lc_amqp_pub *pub) {
  if (pub == NULL)
    return;
  conn_close(pub->conn, !pub->broken);
  free(pub);
}

/* Reads the content header and body frames that follow a basic.return and
 * discards the body; the returned message's message_id goes to mid (""
 * when it has none). */
static int skip_content(amqp_connection_state_t c, int64_t deadline, char *mid, size_t midlen,
                        char err[LC_ERR_LEN]) {
  amqp_frame_t f;
  uint64_t size, got = 0;
  struct timeval tv = ms_tv(deadline - lc_mono_ms());
  int st = amqp_simple_wait_frame_noblock(c, &f, &tv);
  const amqp_basic_properties_t *props;

  mid[0] = '\0';
  if (st != AMQP_STATUS_OK)
    return lc_err_set(err, st == AMQP_STATUS_TIMEOUT ? LC_ERR_TIMEOUT : LC_ERR_IO,
                      "lc_amqp_publish - reading returned message: %s", amqp_error_string2(st));
  if (f.frame_type != AMQP_FRAME_HEADER)
    return lc_err_set(err, LC_ERR_IO, "lc_amqp_publish - expected content header");
  props = f.payload.properties.decoded;
  if (props != NULL && (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG))
    bytes_to_str(props->message_id, mid, midlen);
  size = f.payload.properties.body_size;
  while (got < size) {
    tv = ms_tv(deadline - lc_mono_ms());
    st = amqp_simple_wait_frame_noblock(c, &f, &tv);
    if (st != AMQP_STATUS_OK)
      return lc_err_set(err, st == AMQP_STATUS_TIMEOUT ? LC_ERR_TIMEOUT : LC_ERR_IO,
                        "lc_amqp_publish - reading returned message: %s",
                        amqp_error_string2(st));
    if (f.frame_type != AMQP_FRAME_BODY)
      return lc_err_set(err, LC_ERR_IO, "lc_amqp_publish - expected content body");
    got += f.payload.body_fragment.len;
  }
  return LC_OK;
}

/* Message states while a batch waits for its confirms. */
enum { M_PENDING = 0, M_RETURNED, M_DONE };

/* Settles every pending message with a tag in [lo, hi] (confirm tags
 * first..first+n-1): result = ok_rc (ack: LC_OK, or LC_ERR_NOTFOUND when it
 * was returned first) or LC_ERR_IO (nack). Returns how many it settled. */
static size_t settle(lc_amqp_msg *msgs, unsigned char *st, size_t n, uint64_t first, uint64_t lo,
                     uint64_t hi, int ack) {
  size_t done = 0;
  if (hi < first || lo >= first + n)
    return 0; /* a confirm of an earlier batch */
  if (lo < first)
    lo = first;
  if (hi >= first + n)
    hi = first + n - 1;
  for (uint64_t t = lo; t <= hi; t++) {
    size_t i = (size_t)(t - first);
    if (st[i] == M_DONE)
      continue;
    msgs[i].result = !ack ? LC_ERR_IO : st[i] == M_RETURNED ? LC_ERR_NOTFOUND : LC_OK;
    st[i] = M_DONE;
    done++;
  }
  return done;
}

/* Not thread-safe (one publisher per thread). See lc/amqp.h. */
int lc_amqp_publish_batch(lc_amqp_pub *pub, const char *exchange, lc_amqp_msg *msgs, size_t n,
                          int timeout_ms, char err[LC_ERR_LEN]) {
  amqp_basic_properties_t props;
  unsigned char *st = NULL;
  uint64_t first;
  int64_t deadline;
  size_t sent = 0, pending, nacked = 0;
  char rtext[128] = "";
  int rc = LC_OK;

  if (pub == NULL || exchange == NULL || (msgs == NULL && n > 0) || n > LC_AMQP_BATCH_MAX ||
      timeout_ms < 0)
    return lc_err_set(err, LC_ERR_PARAM, "lc_amqp_publish - bad arguments");
  for (size_t i = 0; i < n; i++) {
    if (msgs[i].routing_key == NULL || msgs[i].msg_id == NULL ||
        (msgs[i].body == NULL && msgs[i].len > 0))
      return lc_err_set(err, LC_ERR_PARAM, "lc_amqp_publish - bad message %zu", i);
    msgs[i].result = LC_ERR_TIMEOUT;
  }
  if (pub->broken)
    return lc_err_set(err, LC_ERR_IO, "lc_amqp_publish - connection unusable, reopen it");
  if (n == 0)
    return LC_OK;
  st = lc_xcalloc(n, 1);

  memset(&props, 0, sizeof(props));
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
  props.content_type = amqp_cstring_bytes("application/json");
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.timestamp = (uint64_t)(lc_now_ms() / 1000);
  first = pub->next_tag;
  /* All messages back to back, then one wait for their confirms. */
  for (; sent < n; sent++) {
    amqp_bytes_t payload = {msgs[sent].len, (void *)msgs[sent].body};
    int s;
    props.message_id = amqp_cstring_bytes(msgs[sent].msg_id);
    s = amqp_basic_publish(pub->conn, AMQP_CHAN, amqp_cstring_bytes(exchange),
                           amqp_cstring_bytes(msgs[sent].routing_key), 1, 0, &props, payload);
    if (s != AMQP_STATUS_OK) {
      rc = lc_err_set(err, LC_ERR_IO, "lc_amqp_publish - send failed: %s", amqp_error_string2(s));
      break;
    }
    pub->next_tag++;
  }
  for (size_t i = sent; i < n; i++) {
    msgs[i].result = LC_ERR_IO; /* never sent */
    st[i] = M_DONE;
  }
  /* Confirms of what was sent, even after a send failure: an ack is final. */
  pending = sent;
  deadline = lc_mono_ms() + timeout_ms;
  while (pending > 0) {
    amqp_frame_t f;
    struct timeval tv = ms_tv(deadline - lc_mono_ms());
    int s;

    amqp_maybe_release_buffers(pub->conn);
    s = amqp_simple_wait_frame_noblock(pub->conn, &f, &tv);
    if (s == AMQP_STATUS_TIMEOUT) {
      if (rc == LC_OK)
        rc = lc_err_set(err, LC_ERR_TIMEOUT, "lc_amqp_publish - %zu of %zu confirms missing "
                        "after %d ms", pending, sent, timeout_ms);
      goto out;
    }
    if (s != AMQP_STATUS_OK) {
      if (rc == LC_OK)
        rc = lc_err_set(err, LC_ERR_IO, "lc_amqp_publish - %s", amqp_error_string2(s));
      goto out;
    }
    if (f.frame_type != AMQP_FRAME_METHOD)
      continue;

    switch (f.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      amqp_basic_ack_t *a = f.payload.method.decoded;
      pending -= settle(msgs, st, n, first, a->multiple ? 0 : a->delivery_tag, a->delivery_tag, 1);
      break;
    }
    case AMQP_BASIC_NACK_METHOD: {
      amqp_basic_nack_t *k = f.payload.method.decoded;
      size_t d = settle(msgs, st, n, first, k->multiple ? 0 : k->delivery_tag, k->delivery_tag, 0);
      pending -= d;
      nacked += d;
      break;
    }
    case AMQP_BASIC_RETURN_METHOD: {
      /* RabbitMQ sends basic.return before the message's basic.ack; the
       * return names no tag, so it is matched by message_id. */
      amqp_basic_return_t *r = f.payload.method.decoded;
      char mid[LC_AMQP_MSGID_MAX + 1];
      size_t i;
      bytes_to_str(r->reply_text, rtext, sizeof(rtext));
      int src = skip_content(pub->conn, deadline, mid, sizeof(mid), err);
      if (src != LC_OK) {
        rc = src;
        goto out;
      }
      for (i = 0; i < sent; i++)
        if (st[i] == M_PENDING && strcmp(msgs[i].msg_id, mid) == 0)
          break;
      if (i == sent) {
        rc = lc_err_set(err, LC_ERR_IO, "lc_amqp_publish - return of an unknown message");
        goto out;
      }
      st[i] = M_RETURNED;
      break; /* the ack follows */
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      amqp_channel_close_t *m = f.payload.method.decoded;
      amqp_channel_close_ok_t ok;
      bytes_to_str(m->reply_text, rtext, sizeof(rtext));
      rc = lc_err_set(err, LC_ERR_IO, "lc_amqp_publish - channel closed: %u %s", m->reply_code,
                      rtext);
      memset(&ok, 0, sizeof(ok));
      amqp_send_method(pub->conn, AMQP_CHAN, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      amqp_connection_close(pub->conn, AMQP_REPLY_SUCCESS); /* channel gone: end politely */
      goto out;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      amqp_connection_close_t *m = f.payload.method.decoded;
      amqp_connection_close_ok_t ok;
      bytes_to_str(m->reply_text, rtext, sizeof(rtext));
      rc = lc_err_set(err, LC_ERR_IO, "lc_amqp_publish - connection closed: %u %s",
                      m->reply_code, rtext);
      memset(&ok, 0, sizeof(ok));
      amqp_send_method(pub->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      goto out;
    }
    default:
      break;
    }
  }
  amqp_maybe_release_buffers(pub->conn);
  if (rc == LC_OK && nacked > 0)
    rc = lc_err_set(err, LC_ERR_IO, "lc_amqp_publish - broker nacked %zu message(s)", nacked);
  else if (rc == LC_OK)
    for (size_t i = 0; i < n; i++)
      if (msgs[i].result == LC_ERR_NOTFOUND) {
        /* Returned but acked: the channel is still consistent. */
        lc_err_set(err, LC_ERR_NOTFOUND, "lc_amqp_publish - unroutable (%s/%s): %s", exchange,
                   msgs[i].routing_key, rtext);
        break;
      }
  if (rc == LC_OK) {
    free(st);
    return LC_OK;
  }
out:
  pub->broken = 1;
  free(st);
  return rc;
}

/* Not thread-safe (one publisher per thread). See lc/amqp.h. */
int lc_amqp_publish(lc_amqp_pub *pub, const char *exchange, const char *routing_key,
                    const char *msg_id, const char *body, size_t len, int timeout_ms,
                    char err[LC_ERR_LEN]) {
  lc_amqp_msg m = {routing_key, msg_id, body, len, LC_ERR_TIMEOUT};
  int rc = lc_amqp_publish_batch(pub, exchange, &m, 1, timeout_ms, err);
  if (rc != LC_OK)
    return rc;
  return m.result; /* LC_OK, or LC_ERR_NOTFOUND with err set */
}

/* ----------------------------------------------------------- topology -- */

struct topo_queue {
  const char *name;
  const char *exchange;
  const char *binding;
};

static const char *const topo_exchanges[] = {"credit.events", "chain.events", "auth.events"};
static const struct topo_queue topo_queues[] = {
    {"chain-svc.debits", "credit.events", "credit.debit.committed"},
    {"credit-svc.chain-results", "chain.events", "chain.transfer.*"},
    {"credit-svc.audit", "auth.events", "auth.audit"},
};
#define TOPO_DLX "dlx"

static int topo_exchange(amqp_connection_state_t c, const char *name, const char *type,
                         char err[LC_ERR_LEN]) {
  char what[96];
  amqp_exchange_declare(c, AMQP_CHAN, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1,
                        0, 0, amqp_empty_table);
  snprintf(what, sizeof(what), "exchange.declare %s", name);
  return rpc_check(c, what, err);
}

/* Durable quorum queue; dlq_key non-NULL adds dead-lettering via dlx. */
static int topo_queue_decl(amqp_connection_state_t c, const char *name, const char *dlq_key,
                           char err[LC_ERR_LEN]) {
  amqp_table_entry_t e[3];
  amqp_table_t args;
  char what[128];

  e[0].key = amqp_cstring_bytes("x-queue-type");
  e[0].value.kind = AMQP_FIELD_KIND_UTF8;
  e[0].value.value.bytes = amqp_cstring_bytes("quorum");
  e[1].key = amqp_cstring_bytes("x-dead-letter-exchange");
  e[1].value.kind = AMQP_FIELD_KIND_UTF8;
  e[1].value.value.bytes = amqp_cstring_bytes(TOPO_DLX);
  e[2].key = amqp_cstring_bytes("x-dead-letter-routing-key");
  e[2].value.kind = AMQP_FIELD_KIND_UTF8;
  e[2].value.value.bytes = amqp_cstring_bytes(dlq_key != NULL ? dlq_key : "");
  args.num_entries = dlq_key != NULL ? 3 : 1;
  args.entries = e;

  amqp_queue_declare(c, AMQP_CHAN, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
  snprintf(what, sizeof(what), "queue.declare %s", name);
  return rpc_check(c, what, err);
}

static int topo_bind(amqp_connection_state_t c, const char *queue, const char *exchange,
                     const char *key, char err[LC_ERR_LEN]) {
  char what[160];
  amqp_queue_bind(c, AMQP_CHAN, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                  amqp_cstring_bytes(key), amqp_empty_table);
  snprintf(what, sizeof(what), "queue.bind %s", queue);
  return rpc_check(c, what, err);
}

/* Idempotent: redeclaring with identical arguments is a no-op on the broker.
 * A queue that exists with different arguments fails with 406. */
int lc_amqp_declare_topology(const char *url, char err[LC_ERR_LEN]) {
  amqp_connection_state_t c = NULL;
  int rc;

  rc = conn_open(url, 0, &c, err);
  if (rc != LC_OK)
    return rc;
  for (size_t i = 0; i < sizeof(topo_exchanges) / sizeof(topo_exchanges[0]); i++) {
    rc = topo_exchange(c, topo_exchanges[i], "topic", err);
    if (rc != LC_OK)
      goto out;
  }
  rc = topo_exchange(c, TOPO_DLX, "direct", err);
  if (rc != LC_OK)
    goto out;
  for (size_t i = 0; i < sizeof(topo_queues) / sizeof(topo_queues[0]); i++) {
    const struct topo_queue *q = &topo_queues[i];
    char dlq[128];
    snprintf(dlq, sizeof(dlq), "%s.dlq", q->name);
    rc = topo_queue_decl(c, dlq, NULL, err);
    if (rc == LC_OK)
      rc = topo_bind(c, dlq, TOPO_DLX, dlq, err);
    if (rc == LC_OK)
      rc = topo_queue_decl(c, q->name, dlq, err);
    if (rc == LC_OK)
      rc = topo_bind(c, q->name, q->exchange, q->binding, err);
    if (rc != LC_OK)
      goto out;
  }
out:
  conn_close(c, rc == LC_OK);
  return rc;
}

/* ----------------------------------------------------------- consumer -- */

/* What a session calls with its deliveries: one handler per message, or a
 * batch handler with up to max deliveries at once (lc_amqp_consume_batch). */
typedef struct {
  lc_amqp_handler one;
  lc_amqp_batch_handler many;
  void *ud;
  int max;
} consume_fn;

/* One received delivery: the envelope, its bounded strings and the body as
 * a NUL-terminated copy. */
typedef struct {
  amqp_envelope_t env;
  char rk[256];
  char mid[128];
  char *body;
} consume_slot;

/* Acks, rejects or requeues one delivery by its handler result. Returns
 * LC_OK when sent, LC_ERR_IO when the connection failed. */
static int slot_settle(amqp_connection_state_t c, const consume_slot *s, int hrc) {
  int st;
  if (hrc == LC_OK) {
    st = amqp_basic_ack(c, AMQP_CHAN, s->env.delivery_tag, 0);
  } else if (hrc == LC_ERR_PARAM) {
    lc_log_warn("lc_amqp_consume - message %s (%s) rejected to the dead-letter queue", s->mid,
                s->rk);
    st = amqp_basic_reject(c, AMQP_CHAN, s->env.delivery_tag, 0);
  } else {
    lc_log_debug("lc_amqp_consume - message %s (%s) failed (%s), requeued", s->mid, s->rk,
                 lc_err_name(hrc));
    st = amqp_basic_nack(c, AMQP_CHAN, s->env.delivery_tag, 0, 1);
  }
  return st == AMQP_STATUS_OK ? LC_OK : LC_ERR_IO;
}

/* Takes the delivery just received into s and d. A body over the limit is
 * dead-lettered here, unseen by any handler. Returns 1 when kept, 0 when
 * dead-lettered (s is free again), -1 when that reject could not be sent. */
static int slot_take(amqp_connection_state_t c, consume_slot *s, lc_amqp_delivery *d) {
  size_t len = s->env.message.body.len;
  bytes_to_str(s->env.routing_key, s->rk, sizeof(s->rk));
  s->mid[0] = '\0';
  if ((s->env.message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0)
    bytes_to_str(s->env.message.properties.message_id, s->mid, sizeof(s->mid));
  if (len > AMQP_MAX_BODY) {
    lc_log_warn("lc_amqp_consume - message %s too large (%zu bytes), dead-lettered", s->mid, len);
    int rc = slot_settle(c, s, LC_ERR_PARAM);
    amqp_destroy_envelope(&s->env);
    return rc == LC_OK ? 0 : -1;
  }
  /* NUL-terminated copy so handlers may treat the body as text. */
  s->body = lc_xmalloc(len + 1);
  if (len > 0)
    memcpy(s->body, s->env.message.body.bytes, len);
  s->body[len] = '\0';
  *d = (lc_amqp_delivery){s->rk, s->mid, s->body, len, LC_ERR};
  return 1;
}

/* Hands slots[0..n) to the handler(s), then settles each (one short delay
 * before the requeues, if any). Frees the slots. Returns LC_OK when every
 * settlement was sent, LC_ERR_IO when the connection failed. */
static int consume_slots(amqp_connection_state_t c, const consume_fn *h, consume_slot *slots,
                         lc_amqp_delivery *d, int n) {
  int rc = LC_OK, requeue = 0, i;
  if (h->many != NULL)
    h->many(h->ud, d, (size_t)n);
  else
    for (i = 0; i < n; i++)
      d[i].rc = h->one(h->ud, d[i].routing_key, d[i].msg_id, d[i].body, d[i].len);
  for (i = 0; i < n; i++)
    requeue |= d[i].rc != LC_OK && d[i].rc != LC_ERR_PARAM;
  if (requeue)
    sleep_ms(AMQP_RETRY_DELAY_MS);
  for (i = 0; i < n; i++) {
    if (rc == LC_OK)
      rc = slot_settle(c, &slots[i], d[i].rc);
    free(slots[i].body);
    amqp_destroy_envelope(&slots[i].env);
  }
  return rc;
}

/* After AMQP_STATUS_UNEXPECTED_STATE: reads the pending frame. Returns
 * LC_OK to keep consuming, LC_ERR_IO when the channel/connection is gone
 * (*healthy tells whether a polite close is still possible). */
static int consume_frame(amqp_connection_state_t c, const char *queue, int *healthy) {
  amqp_frame_t f;
  struct timeval tv = ms_tv(AMQP_CONSUME_POLL_MS);
  int st = amqp_simple_wait_frame_noblock(c, &f, &tv);

  if (st == AMQP_STATUS_TIMEOUT)
    return LC_OK;
  if (st != AMQP_STATUS_OK) {
    *healthy = 0;
    lc_log_warn("lc_amqp_consume - %s: %s", queue, amqp_error_string2(st));
    return LC_ERR_IO;
  }
  if (f.frame_type != AMQP_FRAME_METHOD)
    return LC_OK;
  switch (f.payload.method.id) {
  case AMQP_CHANNEL_CLOSE_METHOD: {
    amqp_channel_close_t *m = f.payload.method.decoded;
    amqp_channel_close_ok_t ok;
    char text[128];
    bytes_to_str(m->reply_text, text, sizeof(text));
    lc_log_warn("lc_amqp_consume - %s: channel closed: %u %s", queue, m->reply_code, text);
    memset(&ok, 0, sizeof(ok));
    amqp_send_method(c, AMQP_CHAN, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    /* channel is gone; only the connection can be closed */
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    *healthy = 0;
    return LC_ERR_IO;
  }
  case AMQP_CONNECTION_CLOSE_METHOD: {
    amqp_connection_close_t *m = f.payload.method.decoded;
    amqp_connection_close_ok_t ok;
    char text[128];
    bytes_to_str(m->reply_text, text, sizeof(text));
    lc_log_warn("lc_amqp_consume - %s: connection closed: %u %s", queue, m->reply_code, text);
    memset(&ok, 0, sizeof(ok));
    amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    *healthy = 0;
    return LC_ERR_IO;
  }
  case AMQP_BASIC_CANCEL_METHOD:
    lc_log_warn("lc_amqp_consume - %s: consumer cancelled by broker", queue);
    return LC_ERR_IO; /* reconnect and consume again */
  default:
    return LC_OK; /* e.g. basic.ack from confirms: not ours to handle */
  }
}

/* Waits up to ms, in short slices so that *stop is honoured promptly. */
static void backoff_wait(int ms, atomic_bool *stop) {
  while (ms > 0 && !atomic_load(stop)) {
    int s = ms < 100 ? ms : 100;
    sleep_ms(s);
    ms -= s;
  }
}

/* Subscription of lc_amqp_consume_bound: a private queue bound to keys. */
typedef struct {
  const char *exchange;
  const char *const *keys;
  size_t nkeys;
  void (*on_bound)(void *ud);
} consume_bind;

/* Declares the exchange (topic, durable: same arguments as the topology),
 * a server-named exclusive auto-delete queue, and binds it to every key.
 * The queue name goes into qname. */
static int bind_private_queue(amqp_connection_state_t c, const consume_bind *b, char *qname,
                              size_t qsz, char err[LC_ERR_LEN]) {
  int rc = topo_exchange(c, b->exchange, "topic", err);
  if (rc != LC_OK)
    return rc;
  amqp_queue_declare_ok_t *ok = amqp_queue_declare(c, AMQP_CHAN, amqp_empty_bytes, 0, 0, 1, 1,
                                                   amqp_empty_table);
  rc = rpc_check(c, "queue.declare (private)", err);
  if (rc != LC_OK)
    return rc;
  if (ok == NULL || ok->queue.len == 0 || ok->queue.len >= qsz)
    return lc_err_set(err, LC_ERR_IO, "queue.declare (private) - no queue name");
  bytes_to_str(ok->queue, qname, qsz);
  for (size_t i = 0; i < b->nkeys; i++) {
    rc = topo_bind(c, qname, b->exchange, b->keys[i], err);
    if (rc != LC_OK)
      return rc;
  }
  return LC_OK;
}

/* Runs one connection's consume loop until *stop or a connection error
 * (b != NULL: on a private queue bound first, see lc_amqp_consume_bound).
 * Returns LC_OK on stop, an error otherwise (already logged). */
static int consume_session(const char *url, const char *queue, int prefetch, const consume_fn *h,
                           atomic_bool *stop, int *started, const consume_bind *b) {
  amqp_connection_state_t c = NULL;
  char err[LC_ERR_LEN];
  char qname[256];
  consume_slot *slots = NULL;
  lc_amqp_delivery *dl = NULL;
  int healthy = 1;
  int rc;

  *started = 0;
  rc = conn_open(url, AMQP_CONSUMER_HEARTBEAT_S, &c, err);
  if (rc != LC_OK) {
    lc_log_warn("lc_amqp_consume - %s: %s", queue, err);
    return rc;
  }
  if (b != NULL) {
    rc = bind_private_queue(c, b, qname, sizeof(qname), err);
    if (rc != LC_OK) {
      lc_log_warn("lc_amqp_consume - %s: %s", queue, err);
      healthy = 0;
      goto out;
    }
    queue = qname;
  }
  amqp_basic_qos(c, AMQP_CHAN, 0, (uint16_t)prefetch, 0);
  rc = rpc_check(c, "basic.qos", err);
  if (rc == LC_OK) {
    amqp_basic_consume(c, AMQP_CHAN, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    rc = rpc_check(c, "basic.consume", err);
  }
  if (rc != LC_OK) {
    lc_log_warn("lc_amqp_consume - %s: %s", queue, err);
    healthy = 0;
    goto out;
  }
  *started = 1;
  if (b != NULL && b->on_bound != NULL)
    b->on_bound(h->ud);
  lc_log_info("lc_amqp_consume - consuming %s (prefetch %d, batch %d)", queue, prefetch, h->max);
  slots = lc_xmalloc(sizeof(*slots) * (size_t)h->max);
  dl = lc_xmalloc(sizeof(*dl) * (size_t)h->max);

  while (!atomic_load(stop)) {
    struct timeval tv = ms_tv(AMQP_CONSUME_POLL_MS);
    amqp_rpc_reply_t r;
    int n = 0;

    amqp_maybe_release_buffers(c);
    r = amqp_consume_message(c, &slots[0].env, &tv, 0);
    /* a batch: whatever else has already arrived, never waiting for more
     * (envelopes own their memory, so several can be held at once) */
    rc = LC_OK;
    while (r.reply_type == AMQP_RESPONSE_NORMAL) {
      int kept = slot_take(c, &slots[n], &dl[n]);
      if (kept < 0) {
        rc = LC_ERR_IO;
        break;
      }
      n += kept;
      if (n == h->max)
        break;
      struct timeval now = {0, 0};
      r = amqp_consume_message(c, &slots[n].env, &now, 0);
    }
    if (rc == LC_OK && n > 0)
      rc = consume_slots(c, h, slots, dl, n);
    else
      for (int i = 0; i < n; i++) { /* connection failed: the broker requeues them */
        free(slots[i].body);
        amqp_destroy_envelope(&slots[i].env);
      }
    if (rc != LC_OK) {
      lc_log_warn("lc_amqp_consume - %s: ack failed, reconnecting", queue);
      healthy = 0;
      goto out;
    }
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
      continue;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
      continue;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      rc = consume_frame(c, queue, &healthy);
      if (rc != LC_OK)
        goto out;
      continue;
    }
    rpc_fail(r, "consume", err);
    lc_log_warn("lc_amqp_consume - %s: %s", queue, err);
    healthy = 0;
    rc = LC_ERR_IO;
    goto out;
  }
  rc = LC_OK;
out:
  free(slots);
  free(dl);
  conn_close(c, healthy);
  return rc;
}

/* Blocks the calling thread; see lc/amqp.h. Unacked deliveries are
 * requeued by the broker when the connection closes. */
static int consume_loop(const char *url, const char *queue, int prefetch, const consume_fn *h,
                        atomic_bool *stop, const consume_bind *b) {
  int backoff = AMQP_BACKOFF_MIN_MS;

  if (prefetch < 1)
    prefetch = 1;
  if (prefetch > 65535)
    prefetch = 65535;

  while (!atomic_load(stop)) {
    int started = 0;
    int rc = consume_session(url, queue, prefetch, h, stop, &started, b);
    if (rc == LC_OK || atomic_load(stop))
      break;
    if (started)
      backoff = AMQP_BACKOFF_MIN_MS;
    backoff_wait(backoff, stop);
    backoff = backoff * 2 > AMQP_BACKOFF_MAX_MS ? AMQP_BACKOFF_MAX_MS : backoff * 2;
  }
  return LC_OK;
}

int lc_amqp_consume(const char *url, const char *queue, int prefetch, lc_amqp_handler fn,
                    void *ud, atomic_bool *stop) {
  if (url == NULL || queue == NULL || fn == NULL || stop == NULL)
    return LC_ERR_PARAM;
  consume_fn h = {fn, NULL, ud, 1};
  return consume_loop(url, queue, prefetch, &h, stop, NULL);
}

int lc_amqp_consume_batch(const char *url, const char *queue, int prefetch, int max_batch,
                          lc_amqp_batch_handler fn, void *ud, atomic_bool *stop) {
  if (url == NULL || queue == NULL || fn == NULL || stop == NULL || max_batch < 1 ||
      max_batch > AMQP_CONSUME_MAX)
    return LC_ERR_PARAM;
  consume_fn h = {NULL, fn, ud, max_batch};
  return consume_loop(url, queue, prefetch, &h, stop, NULL);
}

int lc_amqp_consume_bound(const char *url, const char *exchange, const char *const *keys,
                          size_t nkeys, int prefetch, void (*on_bound)(void *ud),
                          lc_amqp_handler fn, void *ud, atomic_bool *stop) {
  if (url == NULL || exchange == NULL || keys == NULL || nkeys == 0 || fn == NULL ||
      stop == NULL)
    return LC_ERR_PARAM;
  for (size_t i = 0; i < nkeys; i++)
    if (keys[i] == NULL)
      return LC_ERR_PARAM;
  consume_bind b = {exchange, keys, nkeys, on_bound};
  char label[160];
  snprintf(label, sizeof(label), "%s (private queue)", exchange);
  consume_fn h = {fn, NULL, ud, 1};
  return consume_loop(url, label, prefetch, &h, stop, &b);
}

int lc_amqp_ping(const char *url) {
  amqp_connection_state_t c = NULL;
  char err[LC_ERR_LEN];
  if (conn_open(url, 0, &c, err) != LC_OK)
    return 0;
  conn_close(c, 1);
  return 1;
}
