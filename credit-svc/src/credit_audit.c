/* credit_audit.c - audit row insertion and the auth.audit consumer; see
 * credit_audit.h. */
#include "credit_audit.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "credit_ledger.h"
#include "lc/amqp.h"
#include "lc/log.h"
#include "lc/msg.h"
#include "lc/svc.h"
#include "lc/util.h"

#define DETAIL_MAX 4096
#define PREFETCH 32

static int len_ok(const char *s, size_t lo, size_t hi) {
  if (s == NULL)
    return 0;
  size_t n = strlen(s);
  return n >= lo && n <= hi;
}

int credit_audit_insert(PGconn *conn, const credit_audit_row *row, int *inserted,
                        char err[LC_ERR_LEN]) {
  if (inserted)
    *inserted = 0;
  if (row == NULL || (row->user_id && !lc_uuid_valid(row->user_id)) ||
      !len_ok(row->actor, 1, 64) || !len_ok(row->action, 1, 64) ||
      !len_ok(row->status, 1, 32) || row->cost < 0 ||
      (row->request_id && strlen(row->request_id) > 63) ||
      (row->event_id && !lc_uuid_valid(row->event_id)) ||
      (row->ts && !credit_ts_valid(row->ts)) ||
      (row->detail && !json_is_object(row->detail)))
    return lc_err_set(err, LC_ERR_PARAM, "bad audit row");
  char *detail = row->detail ? json_dumps(row->detail, JSON_COMPACT | JSON_SORT_KEYS)
                             : lc_xstrdup("{}");
  if (detail == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "cannot serialise audit detail");
  if (strlen(detail) > DETAIL_MAX) {
    free(detail);
    return lc_err_set(err, LC_ERR_PARAM, "audit detail too large");
  }
  char cost[24];
  snprintf(cost, sizeof(cost), "%lld", (long long)row->cost);
  const char *rid = (row->request_id && row->request_id[0]) ? row->request_id : NULL;
  const char *p[9] = {row->user_id, row->actor, row->action, cost, row->status,
                      rid, detail, row->event_id, row->ts};
  PGresult *r = NULL;
  int rc = lc_db_exec_prepared(conn, "credit_audit_insert",
                      "INSERT INTO audit (user_id, actor, action, cost, status, request_id,"
                      " detail, event_id, ts) VALUES ($1::uuid, $2, $3, $4::bigint, $5, $6,"
                      " $7::jsonb, $8::uuid, coalesce($9::timestamptz, clock_timestamp()))"
                      " ON CONFLICT (event_id) DO NOTHING RETURNING id",
                      9, p, &r, err);
  free(detail);
  if (rc != LC_OK)
    return rc;
  if (inserted)
    *inserted = PQntuples(r) == 1;
  PQclear(r);
  return LC_OK;
}

/* Required string member of 1..max bytes, or NULL. */
static const char *req_str(const json_t *o, const char *name, size_t max) {
  const json_t *v = json_object_get(o, name);
  const char *s = json_is_string(v) ? json_string_value(v) : NULL;
  return len_ok(s, 1, max) ? s : NULL;
}

int credit_audit_from_auth_event(const json_t *body, credit_audit_row *row,
                                 char err[LC_ERR_LEN]) {
  memset(row, 0, sizeof(*row));
  if (!json_is_object(body))
    return lc_err_set(err, LC_ERR_PARAM, "body is not an object");
  row->event_id = req_str(body, "event_id", 36);
  if (row->event_id == NULL || !lc_uuid_valid(row->event_id))
    return lc_err_set(err, LC_ERR_PARAM, "event_id must be a UUID");
  row->ts = req_str(body, "ts", 35);
  if (row->ts == NULL || !credit_ts_valid(row->ts))
    return lc_err_set(err, LC_ERR_PARAM, "ts must be an RFC 3339 timestamp");
  const json_t *uid = json_object_get(body, "user_id");
  if (uid != NULL && !json_is_null(uid)) {
    row->user_id = json_is_string(uid) ? json_string_value(uid) : NULL;
    if (row->user_id == NULL || !lc_uuid_valid(row->user_id))
      return lc_err_set(err, LC_ERR_PARAM, "user_id must be a UUID or null");
  }
  row->actor = req_str(body, "actor", 64);
  row->action = req_str(body, "action", 64);
  row->status = req_str(body, "status", 32);
  if (row->actor == NULL || row->action == NULL || row->status == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "actor, action and status are required strings");
  if (strcmp(row->status, "ok") != 0 && strcmp(row->status, "failed") != 0 &&
      strcmp(row->status, "denied") != 0)
    return lc_err_set(err, LC_ERR_PARAM, "status must be ok|failed|denied");
  const json_t *rid = json_object_get(body, "request_id");
  if (rid != NULL && !json_is_null(rid)) {
    row->request_id = json_is_string(rid) ? json_string_value(rid) : NULL;
    if (row->request_id == NULL || strlen(row->request_id) > 63)
      return lc_err_set(err, LC_ERR_PARAM, "request_id must be a string of <= 63 bytes");
  }
  const json_t *d = json_object_get(body, "detail");
  if (d != NULL && !json_is_null(d) && !json_is_object(d))
    return lc_err_set(err, LC_ERR_PARAM, "detail must be an object");
  row->detail = json_is_object(d) ? d : NULL;
  row->cost = 0;
  return LC_OK;
}

int credit_audit_handle(void *ud, const char *routing_key, const char *msg_id, const char *body,
                        size_t len) {
  lc_db_pool *pool = ud;
  char type[64], id[37], rid[64], err[LC_ERR_LEN] = "";
  json_t *b = NULL;
  PGconn *c = NULL;
  credit_audit_row row;
  int rc = lc_msg_parse(body, len, CREDIT_AUTH_AUDIT_KEY, type, id, rid, &b, err);
  if (rc == LC_OK && routing_key && strcmp(routing_key, CREDIT_AUTH_AUDIT_KEY) != 0)
    rc = lc_err_set(err, LC_ERR_PARAM, "unexpected routing key");
  if (rc == LC_OK)
    rc = credit_audit_from_auth_event(b, &row, err);
  if (rc != LC_OK) {
    lc_log_warn("audit - rejecting message %s: %s", msg_id ? msg_id : "-", err);
    rc = LC_ERR_PARAM;
    goto out;
  }
  if (row.request_id == NULL && rid[0])
    row.request_id = rid;
  rc = lc_db_acquire(pool, &c, err);
  if (rc == LC_OK) {
    int inserted = 0;
    rc = credit_audit_insert(c, &row, &inserted, err);
    lc_db_release(pool, c);
    if (rc == LC_OK && inserted)
      lc_metric_add("credit_auth_audit_events_total", 1);
  }
  if (rc == LC_ERR_PARAM) {
    lc_log_warn("audit - rejecting message %s: %s", id, err);
  } else if (rc != LC_OK) {
    lc_log_warn("audit - cannot store event %s: %s (requeued)", id, err);
    rc = LC_ERR_UNAVAIL;
  }
out:
  json_decref(b);
  return rc;
}

/* ---- topology (same arguments as libcommon's lc_amqp_declare_topology) ---- */

static int reply_ok(amqp_connection_state_t c, const char *what, char err[LC_ERR_LEN]) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (r.reply_type == AMQP_RESPONSE_NORMAL)
    return LC_OK;
  return lc_err_set(err, LC_ERR_IO, "%s failed (reply type %d)", what, (int)r.reply_type);
}

static int declare_queue(amqp_connection_state_t c, const char *name, const char *dlq_key,
                         char err[LC_ERR_LEN]) {
  amqp_table_entry_t e[3];
  e[0].key = amqp_cstring_bytes("x-queue-type");
  e[0].value.kind = AMQP_FIELD_KIND_UTF8;
  e[0].value.value.bytes = amqp_cstring_bytes("quorum");
  e[1].key = amqp_cstring_bytes("x-dead-letter-exchange");
  e[1].value.kind = AMQP_FIELD_KIND_UTF8;
  e[1].value.value.bytes = amqp_cstring_bytes("dlx");
  e[2].key = amqp_cstring_bytes("x-dead-letter-routing-key");
  e[2].value.kind = AMQP_FIELD_KIND_UTF8;
  e[2].value.value.bytes = amqp_cstring_bytes(dlq_key ? dlq_key : "");
  amqp_table_t args = {dlq_key ? 3 : 1, e};
  amqp_queue_declare(c, 1, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
  return reply_ok(c, name, err);
}

int credit_audit_declare(const char *amqp_url, char err[LC_ERR_LEN]) {
  struct amqp_connection_info ci;
  char *url = lc_xstrdup(amqp_url);
  amqp_connection_state_t c = NULL;
  int rc = LC_ERR_PARAM, opened = 0;
  if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
    lc_err_set(err, LC_ERR_PARAM, "bad AMQP URL");
    goto out;
  }
  c = amqp_new_connection();
  amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
  struct timeval tv = {5, 0};
  if (s == NULL || amqp_socket_open_noblock(s, ci.host, ci.port, &tv) != AMQP_STATUS_OK) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "cannot connect to the broker");
    goto out;
  }
  amqp_rpc_reply_t lr = amqp_login(c, ci.vhost, 0, 131072, 30, AMQP_SASL_METHOD_PLAIN, ci.user,
                                   ci.password);
  if (lr.reply_type != AMQP_RESPONSE_NORMAL) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "broker login failed");
    goto out;
  }
  amqp_channel_open(c, 1);
  rc = reply_ok(c, "channel.open", err);
  if (rc != LC_OK)
    goto out;
  opened = 1;
  amqp_exchange_declare(c, 1, amqp_cstring_bytes(CREDIT_AUTH_EXCHANGE),
                        amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
  rc = reply_ok(c, "exchange.declare auth.events", err);
  if (rc == LC_OK) {
    amqp_exchange_declare(c, 1, amqp_cstring_bytes("dlx"), amqp_cstring_bytes("direct"), 0, 1, 0,
                          0, amqp_empty_table);
    rc = reply_ok(c, "exchange.declare dlx", err);
  }
  if (rc == LC_OK)
    rc = declare_queue(c, CREDIT_AUDIT_DLQ, NULL, err);
  if (rc == LC_OK) {
    amqp_queue_bind(c, 1, amqp_cstring_bytes(CREDIT_AUDIT_DLQ), amqp_cstring_bytes("dlx"),
                    amqp_cstring_bytes(CREDIT_AUDIT_DLQ), amqp_empty_table);
    rc = reply_ok(c, "queue.bind dlq", err);
  }
  if (rc == LC_OK)
    rc = declare_queue(c, CREDIT_AUDIT_QUEUE, CREDIT_AUDIT_DLQ, err);
  if (rc == LC_OK) {
    amqp_queue_bind(c, 1, amqp_cstring_bytes(CREDIT_AUDIT_QUEUE),
                    amqp_cstring_bytes(CREDIT_AUTH_EXCHANGE),
                    amqp_cstring_bytes(CREDIT_AUTH_AUDIT_KEY), amqp_empty_table);
    rc = reply_ok(c, "queue.bind credit-svc.audit", err);
  }
out:
  if (c) {
    if (opened && rc == LC_OK)
      amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
  }
  free(url);
  return rc;
}

void *credit_audit_thread(void *arg) {
  credit_audit_cfg *cfg = arg;
  char err[LC_ERR_LEN];
  int backoff_ms = 200, warned = 0;
  lc_log_set_rid("auth-audit");
  while (!atomic_load(cfg->stop)) {
    if (credit_audit_declare(cfg->amqp_url, err) == LC_OK)
      break;
    if (!warned)
      lc_log_warn("audit - cannot declare %s: %s (retrying)", CREDIT_AUDIT_QUEUE, err);
    warned = 1;
    for (int waited = 0; waited < backoff_ms && !atomic_load(cfg->stop); waited += 50) {
      struct timespec ts = {0, 50 * 1000000L};
      nanosleep(&ts, NULL);
    }
    backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
  }
  if (!atomic_load(cfg->stop))
    lc_amqp_consume(cfg->amqp_url, CREDIT_AUDIT_QUEUE, PREFETCH, credit_audit_handle, cfg->pool,
                    cfg->stop);
  return NULL;
}
