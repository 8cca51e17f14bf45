/* credit_chainres.c - chain result consumer; see credit_chainres.h. */
#include "credit_chainres.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

#include "credit_ledger.h"
#include "lc/amqp.h"
#include "lc/failpoint.h"
#include "lc/log.h"
#include "lc/msg.h"
#include "lc/svc.h"
#include "lc/util.h"

#define PREFETCH 64 /* also the largest batch of one transaction */

/* "0x" followed by exactly n hex digits. */
static int hex_n(const char *s, size_t n) {
  if (s == NULL || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || strlen(s) != n + 2)
    return 0;
  for (size_t i = 2; i < n + 2; i++)
    if (!isxdigit((unsigned char)s[i]))
      return 0;
  return 1;
}

/* Optional string member: absent/null -> *out NULL; else must pass hex_n. */
static int opt_hex(const json_t *b, const char *name, size_t n, const char **out) {
  const json_t *v = json_object_get(b, name);
  *out = NULL;
  if (v == NULL || json_is_null(v))
    return LC_OK;
  if (!json_is_string(v) || !hex_n(json_string_value(v), n))
    return LC_ERR_PARAM;
  *out = json_string_value(v);
  return LC_OK;
}

/* A parsed message: its envelope fields and body (the result's strings
 * point into b: json_decref(b) after). */
typedef struct {
  json_t *b;
  char type[64], id[37], rid[64];
} parsed_result;

/* Parses and validates one message into *m and *x; LC_ERR_PARAM (logged)
 * when it is malformed. m->b is set only on success. */
static int parse_result(const char *routing_key, const char *msg_id, const char *body,
                        size_t len, parsed_result *m, credit_chain_result *x) {
  char err[LC_ERR_LEN] = "";
  json_t *b = NULL;
  memset(m, 0, sizeof(*m));
  if (lc_msg_parse(body, len, NULL, m->type, m->id, m->rid, &b, err) != LC_OK) {
    lc_log_warn("chainres - rejecting message %s: %s", msg_id ? msg_id : "-", err);
    return LC_ERR_PARAM;
  }
  const char *status = NULL, *debit_id = NULL, *tx_hash = NULL, *to = NULL;
  int64_t block = -1;
  const json_t *jst = json_object_get(b, "status"), *jd = json_object_get(b, "debit_id");
  const json_t *jb = json_object_get(b, "block_number");
  static const char prefix[] = "chain.transfer.";
  const char *type = m->type;
  if (strncmp(type, prefix, sizeof(prefix) - 1) != 0 || !json_is_string(jst) ||
      strcmp(type + sizeof(prefix) - 1, json_string_value(jst)) != 0) {
    lc_err_set(err, LC_ERR_PARAM, "type/status mismatch (%s)", type);
    goto bad;
  }
  status = json_string_value(jst);
  if (strcmp(status, "submitted") != 0 && strcmp(status, "confirmed") != 0 &&
      strcmp(status, "failed") != 0) {
    lc_err_set(err, LC_ERR_PARAM, "unknown status");
    goto bad;
  }
  if (routing_key && strcmp(routing_key, type) != 0) {
    lc_err_set(err, LC_ERR_PARAM, "routing key %s does not match type", routing_key);
    goto bad;
  }
  debit_id = json_is_string(jd) ? json_string_value(jd) : NULL;
  if (debit_id == NULL || !lc_uuid_valid(debit_id) || opt_hex(b, "tx_hash", 64, &tx_hash) ||
      opt_hex(b, "to_address", 40, &to)) {
    lc_err_set(err, LC_ERR_PARAM, "bad debit_id, tx_hash or to_address");
    goto bad;
  }
  if (tx_hash == NULL && strcmp(status, "failed") != 0) {
    lc_err_set(err, LC_ERR_PARAM, "%s without tx_hash", status);
    goto bad;
  }
  if (jb != NULL && !json_is_null(jb)) {
    if (!json_is_integer(jb) || json_integer_value(jb) < 0) {
      lc_err_set(err, LC_ERR_PARAM, "bad block_number");
      goto bad;
    }
    block = (int64_t)json_integer_value(jb);
  }
  m->b = b;
  *x = (credit_chain_result){debit_id, status, tx_hash, to, block, LC_ERR, 0};
  return LC_OK;
bad:
  lc_log_warn("chainres - rejecting message %s: %s", m->id, err);
  json_decref(b);
  return LC_ERR_PARAM;
}

/* The message's result once its item x was applied (x->rc set). */
static int settle_result(const parsed_result *m, const credit_chain_result *x) {
  lc_log_set_rid(m->rid[0] ? m->rid : m->id);
  int rc = x->rc;
  if (rc == LC_ERR_NOTFOUND) {
    lc_log_warn("chainres - rejecting message %s: %s for unknown debit %s", m->id, m->type,
                x->debit_id);
    rc = LC_ERR_PARAM;
  } else if (rc != LC_OK) {
    lc_log_warn("chainres - cannot apply %s for %s: %s (requeued)", m->type, x->debit_id,
                lc_err_name(rc));
    rc = LC_ERR_UNAVAIL;
  } else {
    if (x->applied)
      lc_log_info("Event - debit %s chain_status=%s tx=%s", x->debit_id, x->chain_status,
                  x->tx_hash ? x->tx_hash : "-");
    else
      lc_log_debug("chainres - stale %s for %s ignored", x->chain_status, x->debit_id);
    LC_FAILPOINT("credit.chainres.before_ack");
    lc_metric_add("credit_chain_results_total", 1);
  }
  lc_log_set_rid(NULL);
  return rc;
}

void credit_chainres_batch(void *ud, lc_amqp_delivery *d, size_t n) {
  lc_db_pool *pool = ud;
  parsed_result *m = lc_xmalloc(sizeof(*m) * (n ? n : 1));
  credit_chain_result *items = lc_xmalloc(sizeof(*items) * (n ? n : 1));
  size_t k = 0;
  char err[LC_ERR_LEN] = "";
  for (size_t i = 0; i < n; i++) { /* the valid ones packed into m[0..k), items[0..k) */
    d[i].rc = parse_result(d[i].routing_key, d[i].msg_id, d[i].body, d[i].len, &m[k], &items[k]);
    k += d[i].rc == LC_OK;
  }
  int brc = credit_ledger_chain_update_batch(pool, items, k, err);
  if (brc != LC_OK) /* each message's outcome is logged once, below */
    lc_log_debug("chainres - batch of %zu: %s", k, err);
  k = 0;
  for (size_t i = 0; i < n; i++) {
    if (d[i].rc != LC_OK)
      continue;
    d[i].rc = settle_result(&m[k], &items[k]);
    json_decref(m[k].b);
    k++;
  }
  free(items);
  free(m);
}

int credit_chainres_handle(void *ud, const char *routing_key, const char *msg_id,
                           const char *body, size_t len) {
  lc_amqp_delivery d = {routing_key, msg_id, body, len, LC_ERR};
  credit_chainres_batch(ud, &d, 1);
  return d.rc;
}

void *credit_chainres_thread(void *arg) {
  credit_chainres_cfg *cfg = arg;
  char err[LC_ERR_LEN];
  int backoff_ms = 200, warned = 0;
  lc_log_set_rid("chain-results");
  while (!atomic_load(cfg->stop)) {
    if (lc_amqp_declare_topology(cfg->amqp_url, err) == LC_OK)
      break;
    if (!warned)
      lc_log_warn("chainres - cannot declare topology: %s (retrying)", err);
    warned = 1;
    for (int waited = 0; waited < backoff_ms && !atomic_load(cfg->stop); waited += 50) {
      struct timespec ts = {0, 50 * 1000000L};
      nanosleep(&ts, NULL);
    }
    backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
  }
  if (!atomic_load(cfg->stop))
    lc_amqp_consume_batch(cfg->amqp_url, CREDIT_CHAIN_RESULTS_QUEUE, PREFETCH, PREFETCH,
                          credit_chainres_batch, cfg->pool, cfg->stop);
  return NULL;
}
