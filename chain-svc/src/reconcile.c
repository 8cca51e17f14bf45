/* reconcile.c - ledger <-> transfers <-> chain reconciliation (see reconcile.h). */
#include "reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lc/http.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/util.h"
#include "u256.h"

#define TRANSFER_TOPIC "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
#define PAGE_LIMIT 1000
#define LOG_CHUNK 5000
#define WIDEN "10 minutes"

int chain_reconcile_ts_ok(const char *s)
{
  size_t n;
  if (s == NULL)
    return 0;
  n = strlen(s);
  if (n < 10 || n > CHAIN_RECONCILE_TS_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || c == 'T' || c == 'Z' || c == ':' || c == '+' || c == '-' ||
          c == '.' || c == 't' || c == 'z'))
      return 0;
  }
  return s[4] == '-' && s[7] == '-';
}

/* Percent-encodes a timestamp for a query string ('+' and ':'). */
static void qenc(const char *s, char *out, size_t outsz)
{
  size_t o = 0;
  for (; *s != '\0' && o + 4 < outsz; s++) {
    if ((*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
        *s == '-' || *s == '.') {
      out[o++] = *s;
    } else {
      snprintf(out + o, outsz - o, "%%%02X", (unsigned char)*s);
      o += 3;
    }
  }
  out[o] = '\0';
}

static void lower(char *s)
{
  for (; *s != '\0'; s++)
    if (*s >= 'A' && *s <= 'Z')
      *s = (char)(*s - 'A' + 'a');
}

/* Fetches every debit of [since, until) from credit-svc into the object
 * out (debit_id -> item; steals nothing, out borrowed). */
static int fetch_debits(chain_ctx *ctx, const char *since, const char *until, json_t *out,
                        char err[LC_ERR_LEN])
{
  lc_identity id;
  char s_enc[3 * CHAIN_RECONCILE_TS_MAX + 1], u_enc[3 * CHAIN_RECONCILE_TS_MAX + 1];
  char *cursor = NULL, path[1024];
  int rc = LC_OK;

  if (ctx->credit_url == NULL || ctx->isecret == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "reconcile - CHAIN_CREDIT_URL is not configured");
  memset(&id, 0, sizeof(id));
  lc_strlcpy(id.role, "system", sizeof(id.role));
  lc_strlcpy(id.request_id, lc_log_rid(), sizeof(id.request_id));
  if (strcmp(id.request_id, "-") == 0)
    id.request_id[0] = '\0';
  qenc(since, s_enc, sizeof(s_enc));
  qenc(until, u_enc, sizeof(u_enc));
  for (;;) {
    lc_http_resp resp;
    json_t *body = NULL, *items;
    const char *next;
    size_t i;
    json_t *it;
    char c_enc[600] = "";

    if (cursor != NULL)
      qenc(cursor, c_enc, sizeof(c_enc));
    snprintf(path, sizeof(path), "/internal/debits?since=%s&until=%s&limit=%d%s%s", s_enc, u_enc,
             PAGE_LIMIT, cursor != NULL ? "&cursor=" : "", c_enc);
    rc = lc_iauth_call(ctx->isecret, ctx->isecret_len, ctx->credit_url, "GET", path, &id, NULL,
                       NULL, 0, 30000, &resp, err);
    if (rc != LC_OK) {
      rc = lc_err_set(err, LC_ERR_UNAVAIL, "reconcile - credit-svc unreachable");
      break;
    }
    if (resp.status != 200) {
      rc = lc_err_set(err, LC_ERR_IO, "reconcile - credit-svc GET /internal/debits answered %ld",
                      resp.status);
      lc_http_resp_free(&resp);
      break;
    }
    body = json_loadb(resp.body != NULL ? resp.body : "", resp.len, 0, NULL);
    lc_http_resp_free(&resp);
    items = json_object_get(body, "items");
    if (!json_is_array(items)) {
      json_decref(body);
      rc = lc_err_set(err, LC_ERR_IO, "reconcile - credit-svc answered without items");
      break;
    }
    json_array_foreach(items, i, it)
    {
      const char *d = json_string_value(json_object_get(it, "debit_id"));
      if (d != NULL)
        json_object_set(out, d, it);
    }
    free(cursor);
    cursor = NULL;
    next = json_string_value(json_object_get(body, "next_cursor"));
    if (next != NULL && next[0] != '\0' && strlen(next) < 500)
      cursor = lc_xstrdup(next);
    json_decref(body);
    if (json_object_size(out) > CHAIN_RECONCILE_MAX_DEBITS) {
      rc = lc_err_set(err, LC_ERR_TOO_LARGE, "reconcile - more than %d debits: narrow the range",
                      CHAIN_RECONCILE_MAX_DEBITS);
      break;
    }
    if (cursor == NULL)
      break;
  }
  free(cursor);
  return rc;
}

/* '{id,id,...}' text array of the object's keys (new). */
static char *uuid_array(json_t *obj)
{
  size_t n = json_object_size(obj), cap = n * 37 + 3, len = 0;
  char *s = lc_xmalloc(cap);
  const char *k;
  json_t *v;

  s[len++] = '{';
  json_object_foreach(obj, k, v)
  {
    (void)v;
    if (len > 1)
      s[len++] = ',';
    memcpy(s + len, k, 36);
    len += 36;
  }
  s[len++] = '}';
  s[len] = '\0';
  return s;
}

static void add_missing(json_t *list, const char *debit_id, const char *reason)
{
  json_array_append_new(list, json_pack("{s:s, s:s}", "debit_id", debit_id, "reason", reason));
}

static void add_dup(json_t *list, const char *debit_id, const char *tx, const char *reason)
{
  json_array_append_new(list, json_pack("{s:s?, s:s?, s:s}", "debit_id", debit_id, "tx_hash", tx,
                                        "reason", reason));
}

static void add_mismatch(json_t *list, const char *debit_id, const char *field, const char *exp,
                         const char *act)
{
  json_array_append_new(list, json_pack("{s:s, s:s, s:s?, s:s?}", "debit_id", debit_id, "field",
                                        field, "expected", exp, "actual", act));
}

/* Transfer(master -> *) logs of the token in [from, to]: tx_hash -> [ {to, value} ]. */
static int fetch_logs(chain_ctx *ctx, uint64_t from, uint64_t to, json_t *out,
                      char err[LC_ERR_LEN])
{
  char topic1[67], hex[41];
  int rc = LC_OK;

  lc_hex_encode(ctx->master, 20, hex);
  snprintf(topic1, sizeof(topic1), "0x000000000000000000000000%s", hex);
  for (uint64_t b = from; b <= to && rc == LC_OK; b += LOG_CHUNK) {
    uint64_t e = b + LOG_CHUNK - 1 < to ? b + LOG_CHUNK - 1 : to;
    char fb[24], tb[24];
    json_t *res = NULL, *lg;
    size_t i;

    snprintf(fb, sizeof(fb), "0x%llx", (unsigned long long)b);
    snprintf(tb, sizeof(tb), "0x%llx", (unsigned long long)e);
    rc = rpc_call(&ctx->rpc, "eth_getLogs",
                  json_pack("[{s:s, s:s, s:s, s:[s, s]}]", "address", ctx->token_str, "fromBlock",
                            fb, "toBlock", tb, "topics", TRANSFER_TOPIC, topic1),
                  &res, NULL, err);
    if (rc != LC_OK)
      break;
    json_array_foreach(res, i, lg)
    {
      const char *tx = json_string_value(json_object_get(lg, "transactionHash"));
      const char *t2 = json_string_value(json_array_get(json_object_get(lg, "topics"), 2));
      const char *data = json_string_value(json_object_get(lg, "data"));
      json_t *removed = json_object_get(lg, "removed");
      char txl[67], to_addr[43], val[80];
      uint8_t v[32];
      json_t *arr;

      if (tx == NULL || t2 == NULL || strlen(t2) != 66 || data == NULL || json_is_true(removed) ||
          strlen(tx) != 66 || u256_from_hex(data, v) != LC_OK)
        continue;
      lc_strlcpy(txl, tx, sizeof(txl));
      lower(txl);
      snprintf(to_addr, sizeof(to_addr), "0x%s", t2 + 26);
      lower(to_addr);
      u256_to_dec(v, val);
      arr = json_object_get(out, txl);
      if (arr == NULL) {
        arr = json_array();
        json_object_set_new(out, txl, arr);
      }
      json_array_append_new(arr, json_pack("{s:s, s:s}", "to", to_addr, "value", val));
    }
    json_decref(res);
    if (e == to)
      break;
  }
  return rc;
}

int chain_reconcile(chain_ctx *ctx, const char *since, const char *until, json_t **report,
                    char err[LC_ERR_LEN])
{
  PGconn *conn = NULL;
  PGresult *res = NULL, *att = NULL;
  json_t *debits = json_object(), *wide = json_object(), *logs = json_object();
  json_t *transfers = json_object(), *known = json_object();
  json_t *missing = json_array(), *dups = json_array(), *mism = json_array();
  char s_buf[CHAIN_RECONCILE_TS_MAX + 8], u_buf[CHAIN_RECONCILE_TS_MAX + 8], ws[48], wu[48];
  char *ids = NULL;
  const char *p[3];
  uint64_t min_block = UINT64_MAX, max_block = 0;
  int64_t n_onchain = 0;
  int rc, i, n;
  const char *k;
  json_t *v;

  *report = NULL;
  if ((since != NULL && !chain_reconcile_ts_ok(since)) ||
      (until != NULL && !chain_reconcile_ts_ok(until))) {
    rc = lc_err_set(err, LC_ERR_PARAM, "since/until must be RFC 3339 timestamps");
    goto out;
  }
  rc = lc_db_acquire(ctx->db, &conn, err);
  if (rc != LC_OK)
    goto out;
  /* Normalise the range (and the widened one used to recognise transfers of
   * debits committed just outside it) in UTC text. */
  p[0] = since;
  p[1] = until;
  rc = lc_db_exec(conn,
                  "WITH r AS (SELECT coalesce($2::timestamptz, now()) AS u, "
                  "coalesce($1::timestamptz, coalesce($2::timestamptz, now()) - "
                  "interval '24 hours') AS s) SELECT "
                  "to_char(s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                  "to_char(u AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                  "to_char((s - interval '" WIDEN "') AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                  "to_char((u + interval '" WIDEN "') AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), s < u FROM r",
                  2, p, &res, err);
  if (rc != LC_OK) {
    rc = lc_err_set(err, LC_ERR_PARAM, "since/until are not valid timestamps");
    goto out;
  }
  if (strcmp(PQgetvalue(res, 0, 4), "t") != 0) {
    rc = lc_err_set(err, LC_ERR_PARAM, "since must be before until");
    goto out;
  }
  lc_strlcpy(s_buf, PQgetvalue(res, 0, 0), sizeof(s_buf));
  lc_strlcpy(u_buf, PQgetvalue(res, 0, 1), sizeof(u_buf));
  lc_strlcpy(ws, PQgetvalue(res, 0, 2), sizeof(ws));
  lc_strlcpy(wu, PQgetvalue(res, 0, 3), sizeof(wu));
  PQclear(res);
  res = NULL;

  rc = fetch_debits(ctx, s_buf, u_buf, debits, err);
  if (rc == LC_OK)
    rc = fetch_debits(ctx, ws, wu, wide, err);
  if (rc != LC_OK)
    goto out;

  /* Transfers of the debits in range, plus every transfer created in range. */
  ids = uuid_array(debits);
  p[0] = ids;
  p[1] = s_buf;
  p[2] = u_buf;
  rc = lc_db_exec(conn,
                  "SELECT t.debit_id::text, t.user_id::text, t.to_address, t.cost, "
                  "t.amount::text, t.tx_hash, t.status, t.block_number, w.address "
                  "FROM transfers t LEFT JOIN wallets w ON w.user_id = t.user_id "
                  "WHERE t.debit_id = ANY($1::uuid[]) OR (t.created_at >= $2::timestamptz "
                  "AND t.created_at < $3::timestamptz)",
                  3, p, &res, err);
  if (rc != LC_OK)
    goto out;
  n = PQntuples(res);
  for (i = 0; i < n; i++) {
    json_t *t = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?}", "user_id",
                          PQgetvalue(res, i, 1), "to", PQgetvalue(res, i, 2), "cost",
                          PQgetvalue(res, i, 3), "amount", PQgetvalue(res, i, 4), "tx",
                          PQgetvalue(res, i, 5), "status", PQgetvalue(res, i, 6), "block",
                          PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7), "wallet",
                          PQgetisnull(res, i, 8) ? NULL : PQgetvalue(res, i, 8));
    int64_t blk = 0;
    json_object_set_new(transfers, PQgetvalue(res, i, 0), t);
    if (strcmp(PQgetvalue(res, i, 6), "confirmed") == 0 && !PQgetisnull(res, i, 7) &&
        lc_parse_i64(PQgetvalue(res, i, 7), 0, INT64_MAX, &blk) == LC_OK) {
      if ((uint64_t)blk < min_block)
        min_block = (uint64_t)blk;
      if ((uint64_t)blk > max_block)
        max_block = (uint64_t)blk;
    }
  }
  PQclear(res);
  res = NULL;
  free(ids);
  ids = uuid_array(transfers);
  p[0] = ids;
  rc = lc_db_exec(conn,
                  "SELECT debit_id::text, tx_hash FROM transfer_attempts "
                  "WHERE debit_id = ANY($1::uuid[])",
                  1, p, &att, err);
  if (rc != LC_OK)
    goto out;
  for (i = 0; i < PQntuples(att); i++)
    json_object_set_new(known, PQgetvalue(att, i, 1), json_string(PQgetvalue(att, i, 0)));

  if (min_block != UINT64_MAX) {
    rc = fetch_logs(ctx, min_block, max_block, logs, err);
    if (rc != LC_OK) {
      rc = lc_err_set(err, rc == LC_ERR_UNPROCESSABLE ? LC_ERR_IO : LC_ERR_UNAVAIL,
                      "reconcile - eth_getLogs failed: %.200s", err);
      goto out;
    }
  }

  /* 1. every debit in range: one confirmed transfer, right amount and address. */
  json_object_foreach(debits, k, v)
  {
    json_t *t = json_object_get(transfers, k), *lg;
    json_int_t cost = json_integer_value(json_object_get(v, "cost"));
    const char *audit_tx = json_string_value(json_object_get(v, "tx_hash"));
    const char *audit_st = json_string_value(json_object_get(v, "chain_status"));
    const char *user = json_string_value(json_object_get(v, "user_id"));
    char exp_amount[80], cost_s[24], wallet_l[43], to_l[43];
    uint8_t amt[32];

    if (t == NULL) {
      add_missing(missing, k, "no transfer for this debit");
      continue;
    }
    snprintf(cost_s, sizeof(cost_s), "%lld", (long long)cost);
    if (strcmp(cost_s, json_string_value(json_object_get(t, "cost"))) != 0)
      add_mismatch(mism, k, "cost", cost_s, json_string_value(json_object_get(t, "cost")));
    if (cost > 0 && u256_mul_pow10((uint64_t)cost, ctx->decimals, amt) == LC_OK) {
      u256_to_dec(amt, exp_amount);
      if (strcmp(exp_amount, json_string_value(json_object_get(t, "amount"))) != 0)
        add_mismatch(mism, k, "amount", exp_amount,
                     json_string_value(json_object_get(t, "amount")));
    }
    if (user != NULL && strcmp(user, json_string_value(json_object_get(t, "user_id"))) != 0)
      add_mismatch(mism, k, "user_id", user, json_string_value(json_object_get(t, "user_id")));
    lc_strlcpy(to_l, json_string_value(json_object_get(t, "to")), sizeof(to_l));
    lower(to_l);
    if (json_string_value(json_object_get(t, "wallet")) != NULL) {
      lc_strlcpy(wallet_l, json_string_value(json_object_get(t, "wallet")), sizeof(wallet_l));
      lower(wallet_l);
      if (strcmp(wallet_l, to_l) != 0)
        add_mismatch(mism, k, "to_address", wallet_l, to_l);
    } else {
      add_mismatch(mism, k, "to_address", "the user's custodial wallet", "no wallet row");
    }
    if (strcmp(json_string_value(json_object_get(t, "status")), "confirmed") != 0) {
      char why[64];
      snprintf(why, sizeof(why), "not confirmed (status %s)",
               json_string_value(json_object_get(t, "status")));
      add_missing(missing, k, why);
      continue;
    }
    if (audit_st != NULL && strcmp(audit_st, "confirmed") == 0 && audit_tx != NULL &&
        strcasecmp(audit_tx, json_string_value(json_object_get(t, "tx"))) != 0)
      add_mismatch(mism, k, "audit_tx_hash", json_string_value(json_object_get(t, "tx")),
                   audit_tx);
    lg = json_object_get(logs, json_string_value(json_object_get(t, "tx")));
    if (json_array_size(lg) == 0) {
      add_missing(missing, k, "confirmed, but no Transfer log on chain");
      continue;
    }
    if (json_array_size(lg) > 1)
      add_dup(dups, k, json_string_value(json_object_get(t, "tx")),
              "several Transfer logs in one transaction");
    n_onchain++;
    {
      json_t *l0 = json_array_get(lg, 0);
      const char *lto = json_string_value(json_object_get(l0, "to"));
      const char *lval = json_string_value(json_object_get(l0, "value"));
      if (strcmp(lto, to_l) != 0)
        add_mismatch(mism, k, "onchain_to", to_l, lto);
      if (strcmp(lval, json_string_value(json_object_get(t, "amount"))) != 0)
        add_mismatch(mism, k, "onchain_amount", json_string_value(json_object_get(t, "amount")),
                     lval);
    }
  }

  /* 2. transfers without a committed debit (in range, allowing for clock lag). */
  json_object_foreach(transfers, k, v)
  {
    if (json_object_get(debits, k) == NULL && json_object_get(wide, k) == NULL)
      add_dup(dups, k, json_string_value(json_object_get(v, "tx")),
              "transfer without a committed debit");
  }

  /* 3. on-chain transfers from the master: each must be the current attempt
   * of exactly one transfer. */
  json_object_foreach(logs, k, v)
  {
    const char *debit = json_string_value(json_object_get(known, k));
    json_t *t = debit != NULL ? json_object_get(transfers, debit) : NULL;
    (void)v;
    if (debit == NULL) {
      /* Not an attempt of a transfer in scope: one of ours outside the range? */
      PGresult *r2 = NULL;
      const char *q[1] = {k};
      if (lc_db_exec(conn, "SELECT 1 FROM transfer_attempts WHERE tx_hash = $1", 1, q, &r2,
                     err) == LC_OK &&
          PQntuples(r2) == 0)
        add_dup(dups, NULL, k, "Transfer from the master that chain-svc did not send");
      PQclear(r2);
      continue;
    }
    if (t != NULL && strcmp(json_string_value(json_object_get(t, "tx")), k) != 0)
      add_dup(dups, debit, k, "a second attempt of this transfer is also on chain");
  }
  rc = LC_OK;
  *report = json_pack("{s:{s:s, s:s}, s:I, s:I, s:I, s:O, s:O, s:O, s:b}", "range", "since",
                      s_buf, "until", u_buf, "debits", (json_int_t)json_object_size(debits),
                      "transfers", (json_int_t)json_object_size(transfers), "onchain",
                      (json_int_t)n_onchain, "missing", missing, "duplicates", dups,
                      "mismatched", mism,
                      "ok", json_array_size(missing) == 0 && json_array_size(dups) == 0 &&
                                json_array_size(mism) == 0);
  if (*report == NULL)
    rc = lc_err_set(err, LC_ERR_NOMEM, "reconcile - cannot build the report");
out:
  PQclear(res);
  PQclear(att);
  if (conn != NULL)
    lc_db_release(ctx->db, conn);
  free(ids);
  json_decref(debits);
  json_decref(wide);
  json_decref(logs);
  json_decref(transfers);
  json_decref(known);
  json_decref(missing);
  json_decref(dups);
  json_decref(mism);
  return rc;
}
