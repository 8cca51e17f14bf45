/* creditc.c - client of credit-svc's internal routes (see creditc.h). */
#include "creditc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/http.h"
#include "lc/log.h"
#include "lc/util.h"
#include "sigv4.h"

#define CREDIT_MAX_RESP (2u * 1024u * 1024u)
#define LEDGER_PAGE 100
#define LEDGER_MAX_PAGES 1000

int storage_creditc_init(storage_creditc *c, const char *base_url, const uint8_t *secret,
                         size_t secret_len, long timeout_ms, char err[LC_ERR_LEN])
{
  size_t n;

  if (c == NULL || base_url == NULL || secret == NULL || secret_len == 0)
    return lc_err_set(err, LC_ERR_PARAM, "creditc: missing configuration");
  memset(c, 0, sizeof(*c));
  if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)
    return lc_err_set(err, LC_ERR_PARAM, "STORAGE_CREDIT_URL: must start with http:// or https://");
  if (lc_strlcpy(c->base_url, base_url, sizeof(c->base_url)) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "STORAGE_CREDIT_URL: too long");
  n = strlen(c->base_url);
  if (c->base_url[n - 1] == '/')
    c->base_url[n - 1] = '\0';
  c->secret = secret;
  c->secret_len = secret_len;
  c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
  return LC_OK;
}

/* Copies the "detail" of a problem body (if any) into err with code. */
static int problem_err(const lc_http_resp *resp, int code, const char *fallback,
                       char err[LC_ERR_LEN])
{
  json_t *j = NULL;
  const char *detail = NULL;
  int rc;

  if (resp->body != NULL && resp->len > 0)
    j = json_loadb(resp->body, resp->len, 0, NULL);
  if (json_is_object(j))
    detail = json_string_value(json_object_get(j, "detail"));
  rc = lc_err_set(err, code, "%s", detail != NULL ? detail : fallback);
  json_decref(j);
  return rc;
}

/* Maps a non-2xx answer of credit-svc to an lc status. */
static int status_err(const char *what, const lc_http_resp *resp, char err[LC_ERR_LEN])
{
  switch (resp->status) {
  case 402:
    return problem_err(resp, LC_ERR_FUNDS, "insufficient credits", err);
  case 404:
    return problem_err(resp, LC_ERR_NOTFOUND, "reservation not found", err);
  case 409:
    return problem_err(resp, LC_ERR_CONFLICT, "conflict", err);
  case 422:
    return problem_err(resp, LC_ERR_UNPROCESSABLE, "idempotency key reused with a different request", err);
  default:
    break;
  }
  if (resp->status >= 500 || resp->status == 429)
    return lc_err_set(err, LC_ERR_UNAVAIL, "credit-svc %s: status %ld", what, resp->status);
  return lc_err_set(err, LC_ERR, "credit-svc %s: unexpected status %ld", what, resp->status);
}

/* One signed call; on LC_OK *json is the parsed object body of a 2xx answer (new). */
static int call(const storage_creditc *c, const lc_identity *id, const char *method,
                const char *path_query, const char *const *extra, const char *body,
                const char *what, json_t **json, char err[LC_ERR_LEN])
{
  lc_http_resp resp;
  json_t *j = NULL;
  int rc;

  *json = NULL;
  memset(&resp, 0, sizeof(resp));
  rc = lc_iauth_call(c->secret, c->secret_len, c->base_url, method, path_query, id, extra,
                     body, body != NULL ? strlen(body) : 0, c->timeout_ms, &resp, err);
  if (rc != LC_OK) {
    lc_http_resp_free(&resp);
    return lc_err_set(err, LC_ERR_UNAVAIL, "credit-svc %s: unreachable", what);
  }
  if (resp.status < 200 || resp.status > 299) {
    rc = status_err(what, &resp, err);
    goto out;
  }
  if (resp.body != NULL && resp.len > 0)
    j = json_loadb(resp.body, resp.len, 0, NULL);
  if (!json_is_object(j)) {
    rc = lc_err_set(err, LC_ERR, "credit-svc %s: malformed answer", what);
    goto out;
  }
  *json = j;
  j = NULL;
  rc = LC_OK;
out:
  json_decref(j);
  lc_http_resp_free(&resp);
  return rc;
}

int storage_creditc_reserve(const storage_creditc *c, const lc_identity *id, const char *action,
                            const char *idempotency_key, storage_reservation *out,
                            char err[LC_ERR_LEN])
{
  json_t *req = NULL, *res = NULL;
  char *body = NULL;
  const char *rid;
  int rc;

  memset(out, 0, sizeof(*out));
  req = json_pack("{s:s, s:s}", "user_id", id->user_id, "action", action);
  if (req == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "creditc: cannot build request");
  if (idempotency_key != NULL)
    json_object_set_new(req, "idempotency_key", json_string(idempotency_key));
  body = json_dumps(req, JSON_COMPACT);
  if (body == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "creditc: cannot encode request");
    goto out;
  }
  rc = call(c, id, "POST", "/internal/reservations", NULL, body, "reserve", &res, err);
  if (rc != LC_OK)
    goto out;
  rid = json_string_value(json_object_get(res, "reservation_id"));
  if (rid == NULL || rid[0] == '\0' ||
      lc_strlcpy(out->reservation_id, rid, sizeof(out->reservation_id)) != LC_OK ||
      strpbrk(rid, "/?#% ") != NULL) {
    rc = lc_err_set(err, LC_ERR, "credit-svc reserve: bad reservation_id");
    goto out;
  }
  out->cost = json_integer_value(json_object_get(res, "cost"));
  {
    const char *st = json_string_value(json_object_get(res, "status"));
    if (st != NULL)
      lc_strlcpy(out->status, st, sizeof(out->status));
  }
  rc = LC_OK;
out:
  free(body);
  json_decref(req);
  json_decref(res);
  return rc;
}

static int reservation_path(const char *reservation_id, const char *verb, char *out,
                            size_t outsz, char err[LC_ERR_LEN])
{
  int n;

  if (reservation_id == NULL || reservation_id[0] == '\0' ||
      strpbrk(reservation_id, "/?#% ") != NULL)
    return lc_err_set(err, LC_ERR_PARAM, "creditc: bad reservation id");
  n = snprintf(out, outsz, "/internal/reservations/%s/%s", reservation_id, verb);
  if (n < 0 || (size_t)n >= outsz)
    return lc_err_set(err, LC_ERR_PARAM, "creditc: reservation id too long");
  return LC_OK;
}

int storage_creditc_commit(const storage_creditc *c, const lc_identity *id,
                           const char *reservation_id, char debit_id[64], char err[LC_ERR_LEN])
{
  char path[160];
  json_t *res = NULL;
  const char *d;
  int rc;

  debit_id[0] = '\0';
  rc = reservation_path(reservation_id, "commit", path, sizeof(path), err);
  if (rc != LC_OK)
    return rc;
  rc = call(c, id, "POST", path, NULL, "{}", "commit", &res, err);
  if (rc != LC_OK)
    return rc;
  d = json_string_value(json_object_get(res, "debit_id"));
  if (d == NULL || lc_strlcpy(debit_id, d, 64) != LC_OK)
    rc = lc_err_set(err, LC_ERR, "credit-svc commit: bad debit_id");
  json_decref(res);
  return rc;
}

int storage_creditc_release(const storage_creditc *c, const lc_identity *id,
                            const char *reservation_id, char err[LC_ERR_LEN])
{
  char path[160];
  json_t *res = NULL;
  int rc;

  rc = reservation_path(reservation_id, "release", path, sizeof(path), err);
  if (rc != LC_OK)
    return rc;
  rc = call(c, id, "POST", path, NULL, "{}", "release", &res, err);
  json_decref(res);
  return rc;
}

int storage_creditc_ledger(const storage_creditc *c, const lc_identity *id, size_t max_entries,
                           json_t **entries, int *truncated, char err[LC_ERR_LEN])
{
  char path[1024], ecursor[600], cursor[200] = "";
  json_t *all = json_array(), *page = NULL, *items;
  const char *next;
  int rc = LC_OK, n;

  *entries = NULL;
  *truncated = 0;
  if (all == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "creditc: out of memory");
  if (!lc_uuid_valid(id->user_id)) {
    rc = lc_err_set(err, LC_ERR_PARAM, "creditc: bad user id");
    goto out;
  }
  for (int p = 0; p < LEDGER_MAX_PAGES; p++) {
    if (cursor[0] == '\0') {
      n = snprintf(path, sizeof(path), "/internal/ledger?user_id=%s&limit=%d", id->user_id,
                   LEDGER_PAGE);
    } else {
      if (storage_sigv4_uri_encode(cursor, 1, ecursor, sizeof(ecursor)) != LC_OK) {
        rc = lc_err_set(err, LC_ERR, "credit-svc ledger: cursor too long");
        goto out;
      }
      n = snprintf(path, sizeof(path), "/internal/ledger?user_id=%s&limit=%d&cursor=%s",
                   id->user_id, LEDGER_PAGE, ecursor);
    }
    if (n < 0 || (size_t)n >= sizeof(path)) {
      rc = lc_err_set(err, LC_ERR, "credit-svc ledger: path too long");
      goto out;
    }
    rc = call(c, id, "GET", path, NULL, NULL, "ledger", &page, err);
    if (rc != LC_OK)
      goto out;
    items = json_object_get(page, "items");
    if (!json_is_array(items)) {
      rc = lc_err_set(err, LC_ERR, "credit-svc ledger: no items array");
      goto out;
    }
    next = json_string_value(json_object_get(page, "next_cursor"));
    for (size_t i = 0; i < json_array_size(items); i++) {
      if (json_array_size(all) >= max_entries) {
        *truncated = 1;
        break;
      }
      json_array_append(all, json_array_get(items, i));
    }
    if (*truncated || next == NULL || next[0] == '\0' || json_array_size(items) == 0)
      break;
    if (lc_strlcpy(cursor, next, sizeof(cursor)) != LC_OK) {
      rc = lc_err_set(err, LC_ERR, "credit-svc ledger: cursor too long");
      goto out;
    }
    json_decref(page);
    page = NULL;
  }
  *entries = all;
  all = NULL;
  rc = LC_OK;
out:
  json_decref(page);
  json_decref(all);
  return rc;
}

int storage_creditc_commit_or_recover(const storage_creditc *c, const lc_identity *id,
                                      const char *reservation_id, char debit_id[64],
                                      const char *what)
{
  char err[LC_ERR_LEN] = "";
  int rc, rel;

  rc = storage_creditc_commit(c, id, reservation_id, debit_id, err);
  if (rc == LC_OK)
    return LC_OK;
  lc_log_error("%s - commit of reservation %s failed: %s", what, reservation_id, err);
  /* The commit may have happened (answer lost) or may still happen (request
   * in flight): only credit-svc's definite answer to a release decides. */
  rel = storage_creditc_release(c, id, reservation_id, err);
  if (rel == LC_OK)
    return LC_ERR_UNAVAIL; /* released (or already released/expired): nothing charged */
  if (rel == LC_ERR_CONFLICT) {
    /* credit-svc says it is committed already: fetch the debit (idempotent). */
    rc = storage_creditc_commit(c, id, reservation_id, debit_id, err);
    if (rc == LC_OK)
      return LC_OK;
    lc_log_error("Event - reservation %s is committed but its debit could not be read: %s "
                 "(left to the settler)", reservation_id, err);
    return LC_ERR_TIMEOUT;
  }
  lc_log_error("%s - release of reservation %s failed: %s (outcome unknown: left to the "
               "settler)", what, reservation_id, err);
  return LC_ERR_TIMEOUT;
}

int storage_creditc_settle(const storage_creditc *c, const char *user_id,
                           const char *reservation_id, char debit_id[64], char err[LC_ERR_LEN])
{
  lc_identity id;
  int rc;

  memset(&id, 0, sizeof(id));
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "creditc: bad user id");
  lc_strlcpy(id.user_id, user_id, sizeof(id.user_id));
  lc_strlcpy(id.role, "user", sizeof(id.role));
  lc_strlcpy(id.scope, "full", sizeof(id.scope));
  lc_uuid_v4(id.request_id);
  rc = storage_creditc_commit(c, &id, reservation_id, debit_id, err);
  if (rc == LC_OK || rc == LC_ERR_CONFLICT)
    return rc; /* committed now or before (same debit) | released or expired */
  if (rc == LC_ERR_NOTFOUND) {
    /* confirm with a release: idempotent for released/expired ones */
    rc = storage_creditc_release(c, &id, reservation_id, err);
    if (rc == LC_OK)
      return LC_ERR_CONFLICT;
    if (rc == LC_ERR_CONFLICT) /* committed in between */
      return storage_creditc_commit(c, &id, reservation_id, debit_id, err) == LC_OK
                 ? LC_OK : LC_ERR_TIMEOUT;
  }
  return LC_ERR_TIMEOUT;
}

void storage_creditc_release_logged(const storage_creditc *c, const lc_identity *id,
                                    const char *reservation_id, const char *what)
{
  char err[LC_ERR_LEN] = "";

  if (storage_creditc_release(c, id, reservation_id, err) != LC_OK)
    lc_log_error("%s - release of reservation %s failed: %s (it expires by TTL)", what,
                 reservation_id, err);
}

int storage_creditc_debits(const storage_creditc *c, const char *request_id,
                           const char *user_id, const char *since, const char *until,
                           size_t max_scan, json_t **out, int *available, int *truncated,
                           char err[LC_ERR_LEN])
{
  char path[1024], es[120], eu[120], ecursor[600], cursor[200] = "";
  json_t *map = json_object(), *page = NULL, *items;
  lc_identity sys;
  lc_http_resp resp;
  size_t scanned = 0;
  const char *next;
  int rc = LC_OK, n;

  *out = NULL;
  *available = 1;
  *truncated = 0;
  memset(&sys, 0, sizeof(sys));
  lc_strlcpy(sys.role, "system", sizeof(sys.role));
  lc_strlcpy(sys.request_id, request_id != NULL ? request_id : "", sizeof(sys.request_id));
  if (storage_sigv4_uri_encode(since, 1, es, sizeof(es)) != LC_OK ||
      storage_sigv4_uri_encode(until, 1, eu, sizeof(eu)) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_PARAM, "creditc: bad period");
    goto out;
  }
  for (int p = 0; p < LEDGER_MAX_PAGES; p++) {
    if (cursor[0] == '\0') {
      n = snprintf(path, sizeof(path), "/internal/debits?since=%s&until=%s&limit=%d", es, eu,
                   LEDGER_PAGE);
    } else {
      if (storage_sigv4_uri_encode(cursor, 1, ecursor, sizeof(ecursor)) != LC_OK) {
        rc = lc_err_set(err, LC_ERR, "credit-svc debits: cursor too long");
        goto out;
      }
      n = snprintf(path, sizeof(path), "/internal/debits?since=%s&until=%s&limit=%d&cursor=%s",
                   es, eu, LEDGER_PAGE, ecursor);
    }
    if (n < 0 || (size_t)n >= sizeof(path)) {
      rc = lc_err_set(err, LC_ERR, "credit-svc debits: path too long");
      goto out;
    }
    memset(&resp, 0, sizeof(resp));
    rc = lc_iauth_call(c->secret, c->secret_len, c->base_url, "GET", path, &sys, NULL, NULL, 0,
                       c->timeout_ms, &resp, err);
    if (rc != LC_OK) {
      lc_http_resp_free(&resp);
      rc = lc_err_set(err, LC_ERR_UNAVAIL, "credit-svc debits: unreachable");
      goto out;
    }
    if (resp.status == 404 && p == 0) {
      /* contract C not deployed on this credit-svc: no chain data */
      lc_http_resp_free(&resp);
      *available = 0;
      json_decref(map);
      map = NULL;
      rc = LC_OK;
      goto out;
    }
    if (resp.status != 200) {
      rc = status_err("debits", &resp, err);
      lc_http_resp_free(&resp);
      goto out;
    }
    page = resp.body != NULL ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
    lc_http_resp_free(&resp);
    items = json_object_get(page, "items");
    if (!json_is_array(items)) {
      rc = lc_err_set(err, LC_ERR, "credit-svc debits: no items array");
      goto out;
    }
    for (size_t i = 0; i < json_array_size(items); i++) {
      json_t *it = json_array_get(items, i);
      const char *uid = json_string_value(json_object_get(it, "user_id"));
      const char *did = json_string_value(json_object_get(it, "debit_id"));
      if (++scanned > max_scan) {
        *truncated = 1;
        break;
      }
      if (uid == NULL || did == NULL || strcmp(uid, user_id) != 0)
        continue;
      json_object_set_new(map, did,
                          json_pack("{s:O?, s:O?, s:O?, s:O?}", "tx_hash",
                                    json_object_get(it, "tx_hash"), "chain_status",
                                    json_object_get(it, "chain_status"), "cost",
                                    json_object_get(it, "cost"), "committed_at",
                                    json_object_get(it, "committed_at")));
    }
    next = json_string_value(json_object_get(page, "next_cursor"));
    if (*truncated || next == NULL || next[0] == '\0' || json_array_size(items) == 0)
      break;
    if (lc_strlcpy(cursor, next, sizeof(cursor)) != LC_OK) {
      rc = lc_err_set(err, LC_ERR, "credit-svc debits: cursor too long");
      goto out;
    }
    json_decref(page);
    page = NULL;
  }
  *out = map;
  map = NULL;
  rc = LC_OK;
out:
  json_decref(page);
  json_decref(map);
  return rc;
}
