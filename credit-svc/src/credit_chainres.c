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

#define PREFETCH 32

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

int credit_chainres_handle(void *ud, const char *routing_key, const char *msg_id,
                           const char *body, size_t len) {
  lc_db_pool *pool = ud;
  char type[64], id[37], rid[64], err[LC_ERR_LEN] = "";
  json_t *b = NULL;
  int rc = lc_msg_parse(body, len, NULL, type, id, rid, &b, err);
  if (rc != LC_OK) {
    lc_log_warn("chainres - rejecting message %s: %s", msg_id ? msg_id : "-", err);
    return LC_ERR_PARAM;
  }
  lc_log_set_rid(rid[0] ? rid : id);
  const char *status = NULL, *debit_id = NULL, *tx_hash = NULL, *to = NULL;
  int64_t block = -1;
  const json_t *jst = json_object_get(b, "status"), *jd = json_object_get(b, "debit_id");
  const json_t *jb = json_object_get(b, "block_number");
  static const char prefix[] = "chain.transfer.";
  rc = LC_ERR_PARAM;
  if (strncmp(type, prefix, sizeof(prefix) - 1) != 0 || !json_is_string(jst) ||
      strcmp(type + sizeof(prefix) - 1, json_string_value(jst)) != 0) {
    lc_err_set(err, LC_ERR_PARAM, "type/status mismatch (%s)", type);
    goto out;
  }
  status = json_string_value(jst);
  if (strcmp(status, "submitted") != 0 && strcmp(status, "confirmed") != 0 &&
      strcmp(status, "failed") != 0) {
    lc_err_set(err, LC_ERR_PARAM, "unknown status");
    goto out;
  }
  if (routing_key && strcmp(routing_key, type) != 0) {
    lc_err_set(err, LC_ERR_PARAM, "routing key %s does not match type", routing_key);
    goto out;
  }
  debit_id = json_is_string(jd) ? json_string_value(jd) : NULL;
  if (debit_id == NULL || !lc_uuid_valid(debit_id) || opt_hex(b, "tx_hash", 64, &tx_hash) ||
      opt_hex(b, "to_address", 40, &to)) {
    lc_err_set(err, LC_ERR_PARAM, "bad debit_id, tx_hash or to_address");
    goto out;
  }
  if (tx_hash == NULL && strcmp(status, "failed") != 0) {
    lc_err_set(err, LC_ERR_PARAM, "%s without tx_hash", status);
    goto out;
  }
  if (jb != NULL && !json_is_null(jb)) {
    if (!json_is_integer(jb) || json_integer_value(jb) < 0) {
      lc_err_set(err, LC_ERR_PARAM, "bad block_number");
      goto out;
    }
    block = (int64_t)json_integer_value(jb);
  }
  int applied = 0;
  rc = credit_ledger_chain_update(pool, debit_id, status, tx_hash, block, to, &applied, err);
  if (rc == LC_ERR_NOTFOUND) {
    lc_err_set(err, LC_ERR_PARAM, "%s for unknown debit %s", type, debit_id);
    rc = LC_ERR_PARAM;
    goto out;
  }
  if (rc != LC_OK) {
    lc_log_warn("chainres - cannot apply %s for %s: %s (requeued)", type, debit_id, err);
    rc = LC_ERR_UNAVAIL;
    goto out;
  }
  if (applied)
    lc_log_info("Event - debit %s chain_status=%s tx=%s", debit_id, status,
                tx_hash ? tx_hash : "-");
  else
    lc_log_debug("chainres - stale %s for %s ignored", status, debit_id);
  LC_FAILPOINT("credit.chainres.before_ack");
  lc_metric_add("credit_chain_results_total", 1);
out:
  if (rc == LC_ERR_PARAM && err[0])
    lc_log_warn("chainres - rejecting message %s: %s", id, err);
  json_decref(b);
  lc_log_set_rid(NULL);
  return rc;
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
    lc_amqp_consume(cfg->amqp_url, CREDIT_CHAIN_RESULTS_QUEUE, PREFETCH, credit_chainres_handle,
                    cfg->pool, cfg->stop);
  return NULL;
}
