/* payments_store.c - sessions and once-only event application; see payments_store.h.
 * Lock order inside payments_apply_event: payment_events key -> session row
 * -> account row (taken by credit_ledger_grant). */
#include "payments_store.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "credit_audit.h"
#include "credit_ledger.h"
#include "lc/log.h"
#include "lc/util.h"
#include "payments_packs.h"

#define TX_RETRIES 3

static const char *cell(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int provider_valid(const char *p) {
  return p != NULL && (strcmp(p, "stripe") == 0 || strcmp(p, "razorpay") == 0);
}

/* 1 for 1..max bytes of printable ASCII without spaces. */
static int token_valid(const char *s, size_t max) {
  if (s == NULL || s[0] == '\0' || strlen(s) > max)
    return 0;
  for (const char *p = s; *p; p++) {
    if (*p <= ' ' || *p > '~')
      return 0;
  }
  return 1;
}

const char *payments_outcome_name(payments_outcome o) {
  switch (o) {
  case PAYMENTS_CREDITED: return "credited";
  case PAYMENTS_DUP_EVENT: return "duplicate_event";
  case PAYMENTS_DUP_SESSION: return "duplicate_session";
  case PAYMENTS_AMOUNT_MISMATCH: return "amount_mismatch";
  case PAYMENTS_UNKNOWN_SESSION: return "unknown_session";
  }
  return "unknown";
}

#define SESSION_COLS \
  "provider, id, user_id::text, pack, credits, amount, currency, status, coalesce(checkout_url, '')"

static int fill_session(const PGresult *r, int row, payments_session *s) {
  memset(s, 0, sizeof(*s));
  const char *v[9];
  for (int i = 0; i < 9; i++) {
    v[i] = cell(r, row, i);
    if (v[i] == NULL)
      return LC_ERR_DB;
  }
  if (lc_parse_i64(v[4], 1, INT64_MAX, &s->credits) != LC_OK ||
      lc_parse_i64(v[5], 1, INT64_MAX, &s->amount) != LC_OK)
    return LC_ERR_DB;
  lc_strlcpy(s->provider, v[0], sizeof(s->provider));
  lc_strlcpy(s->id, v[1], sizeof(s->id));
  lc_strlcpy(s->user_id, v[2], sizeof(s->user_id));
  lc_strlcpy(s->pack, v[3], sizeof(s->pack));
  lc_strlcpy(s->currency, v[6], sizeof(s->currency));
  lc_strlcpy(s->status, v[7], sizeof(s->status));
  lc_strlcpy(s->checkout_url, v[8], sizeof(s->checkout_url));
  return LC_OK;
}

int payments_store_session(lc_db_pool *pool, const payments_session *s, const char *client_key,
                           const char *request_id, char err[LC_ERR_LEN]) {
  if (s == NULL || !provider_valid(s->provider) || !token_valid(s->id, PAYMENTS_ID_MAX) ||
      !lc_uuid_valid(s->user_id) || s->credits <= 0 || s->amount <= 0 ||
      (client_key != NULL && !token_valid(client_key, 255)))
    return lc_err_set(err, LC_ERR_PARAM, "bad session");
  char credits[24], amount[24], cur[8];
  snprintf(credits, sizeof(credits), "%lld", (long long)s->credits);
  snprintf(amount, sizeof(amount), "%lld", (long long)s->amount);
  lc_strlcpy(cur, s->currency, sizeof(cur));
  for (char *p = cur; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  const char *p[10] = {s->provider, s->id, s->user_id, s->pack, credits, amount, cur,
                       s->checkout_url[0] ? s->checkout_url : NULL, client_key,
                       (request_id && request_id[0]) ? request_id : NULL};
  PGconn *c = NULL;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(c,
                  "INSERT INTO payment_sessions (provider, id, user_id, pack, credits, amount,"
                  " currency, checkout_url, client_key, request_id) VALUES ($1, $2, $3::uuid, $4,"
                  " $5::bigint, $6::bigint, $7, $8, $9, $10)",
                  10, p, NULL, err);
  lc_db_release(pool, c);
  if (rc == LC_ERR_CONFLICT)
    lc_err_set(err, rc, "session already stored");
  return rc;
}

int payments_find_by_client_key(lc_db_pool *pool, const char *user_id, const char *provider,
                                const char *client_key, payments_session *out,
                                char err[LC_ERR_LEN]) {
  if (!lc_uuid_valid(user_id) || !provider_valid(provider) || !token_valid(client_key, 255))
    return lc_err_set(err, LC_ERR_PARAM, "bad lookup");
  const char *p[3] = {user_id, provider, client_key};
  PGconn *c = NULL;
  PGresult *r = NULL;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(c,
                  "SELECT " SESSION_COLS " FROM payment_sessions"
                  " WHERE user_id = $1::uuid AND provider = $2 AND client_key = $3",
                  3, p, &r, err);
  lc_db_release(pool, c);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(r) != 1)
    rc = LC_ERR_NOTFOUND;
  else if (fill_session(r, 0, out) != LC_OK)
    rc = lc_err_set(err, LC_ERR_DB, "bad session row");
  PQclear(r);
  return rc;
}

/* ---- once-only application ---- */

typedef struct {
  const payments_event *ev;
  payments_outcome outcome;
  int64_t credited, balance;
} apply_args;

static int rollback_rc(PGconn *c, int rc) {
  lc_db_rollback(c);
  return rc;
}

static int set_event_outcome(PGconn *c, const payments_event *ev, const char *outcome,
                             char err[LC_ERR_LEN]) {
  const char *p[3] = {ev->provider, ev->event_id, outcome};
  return lc_db_exec(c,
                    "UPDATE payment_events SET outcome = $3 WHERE provider = $1 AND event_id = $2",
                    3, p, NULL, err);
}

/* Audit row for an event that was refused after its signature was verified. */
static int audit_rejected(PGconn *c, const payments_event *ev, const payments_session *s,
                          char err[LC_ERR_LEN]) {
  json_t *d = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:s}", "provider", ev->provider,
                        "session_id", s->id, "event_id", ev->event_id, "expected_amount",
                        (json_int_t)s->amount, "expected_currency", s->currency,
                        "reported_amount", (json_int_t)ev->amount, "reported_currency",
                        ev->currency ? ev->currency : "", "reason", "amount_mismatch");
  credit_audit_row row = {.user_id = s->user_id, .actor = ev->provider, .action = "purchase",
                          .cost = 0, .status = "rejected", .request_id = ev->request_id,
                          .detail = d};
  int rc = d ? credit_audit_insert(c, &row, NULL, err) : lc_err_set(err, LC_ERR_NOMEM, "detail");
  json_decref(d);
  return rc;
}

static int apply_unit(PGconn *c, apply_args *a, char err[LC_ERR_LEN]) {
  const payments_event *ev = a->ev;
  PGresult *r = NULL;
  payments_session s;
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  /* 1. The event id, once: a concurrent duplicate waits here for our commit. */
  const char *pe[5] = {ev->provider, ev->event_id, ev->event_type, ev->session_id,
                       (ev->request_id && ev->request_id[0]) ? ev->request_id : NULL};
  rc = lc_db_exec(c,
                  "INSERT INTO payment_events (provider, event_id, event_type, session_id, outcome,"
                  " request_id) VALUES ($1, $2, $3, $4, 'processing', $5)"
                  " ON CONFLICT (provider, event_id) DO NOTHING RETURNING 1",
                  5, pe, &r, err);
  if (rc != LC_OK)
    return rollback_rc(c, rc);
  int fresh = PQntuples(r) == 1;
  PQclear(r);
  r = NULL;
  if (!fresh) {
    a->outcome = PAYMENTS_DUP_EVENT;
    return rollback_rc(c, LC_OK);
  }
  /* 2. The session, locked: a second event of the same session waits here. */
  const char *ps[2] = {ev->provider, ev->session_id};
  rc = lc_db_exec(c,
                  "SELECT " SESSION_COLS " FROM payment_sessions"
                  " WHERE provider = $1 AND id = $2 FOR UPDATE",
                  2, ps, &r, err);
  if (rc != LC_OK)
    return rollback_rc(c, rc);
  if (PQntuples(r) != 1) {
    PQclear(r);
    /* Nothing written: a later redelivery is evaluated again. */
    a->outcome = PAYMENTS_UNKNOWN_SESSION;
    return rollback_rc(c, LC_OK);
  }
  rc = fill_session(r, 0, &s);
  PQclear(r);
  if (rc != LC_OK)
    return rollback_rc(c, lc_err_set(err, LC_ERR_DB, "bad session row"));
  /* 3. Amount and currency must be exactly what we asked for. */
  if (!payments_amount_matches(s.amount, s.currency, ev->amount, ev->currency)) {
    a->outcome = PAYMENTS_AMOUNT_MISMATCH;
    rc = set_event_outcome(c, ev, "amount_mismatch", err);
    if (rc == LC_OK)
      rc = audit_rejected(c, ev, &s, err);
    if (rc != LC_OK)
      return rollback_rc(c, rc);
    lc_log_warn("Security - %s event %s for session %s: amount %lld %s, expected %lld %s",
                ev->provider, ev->event_id, s.id, (long long)ev->amount,
                ev->currency ? ev->currency : "-", (long long)s.amount, s.currency);
    return lc_db_commit(c, err);
  }
  if (strcmp(s.status, "open") != 0) {
    a->outcome = PAYMENTS_DUP_SESSION;
    rc = set_event_outcome(c, ev, "duplicate_session", err);
    return rc == LC_OK ? lc_db_commit(c, err) : rollback_rc(c, rc);
  }
  /* 4. Credit through the ledger (entry + balance + purchase audit row). */
  char ref[300], reason[120], entry[37] = "";
  snprintf(ref, sizeof(ref), "%s:%s", ev->provider, s.id);
  snprintf(reason, sizeof(reason), "%s purchase of pack %s", ev->provider, s.pack);
  int64_t bal = 0;
  rc = credit_ledger_grant(c, s.user_id, s.credits, CREDIT_KIND_PURCHASE, reason, ev->provider,
                           ev->request_id, ref, entry, &bal, err);
  if (rc == LC_ERR_CONFLICT) { /* the ledger already holds this session's purchase */
    a->outcome = PAYMENTS_DUP_SESSION;
    rc = set_event_outcome(c, ev, "duplicate_session", err);
    return rc == LC_OK ? lc_db_commit(c, err) : rollback_rc(c, rc);
  }
  if (rc != LC_OK)
    return rollback_rc(c, rc);
  const char *pp[5] = {ev->provider, s.id, ev->event_id, entry, ev->paid_ref};
  rc = lc_db_exec(c,
                  "UPDATE payment_sessions SET status = 'paid', paid_at = now(),"
                  " paid_event_id = $3, ledger_entry_id = $4::uuid, paid_ref = $5"
                  " WHERE provider = $1 AND id = $2 AND status = 'open'",
                  5, pp, NULL, err);
  if (rc == LC_OK)
    rc = set_event_outcome(c, ev, "credited", err);
  if (rc != LC_OK)
    return rollback_rc(c, rc);
  rc = lc_db_commit(c, err);
  if (rc == LC_OK) {
    a->outcome = PAYMENTS_CREDITED;
    a->credited = s.credits;
    a->balance = bal;
    lc_log_info("Event - purchase credited provider=%s session=%s event=%s user=%s credits=%lld",
                ev->provider, s.id, ev->event_id, s.user_id, (long long)s.credits);
  }
  return rc;
}

int payments_apply_event(lc_db_pool *pool, const payments_event *ev, payments_outcome *outcome,
                         int64_t *credited, int64_t *balance, char err[LC_ERR_LEN]) {
  if (ev == NULL || !provider_valid(ev->provider) || !token_valid(ev->event_id, PAYMENTS_ID_MAX) ||
      !token_valid(ev->event_type, 100) || !token_valid(ev->session_id, PAYMENTS_ID_MAX) ||
      (ev->paid_ref != NULL && !token_valid(ev->paid_ref, PAYMENTS_ID_MAX)) ||
      (ev->request_id != NULL && strlen(ev->request_id) > 63))
    return lc_err_set(err, LC_ERR_PARAM, "bad payment event");
  apply_args a = {ev, PAYMENTS_UNKNOWN_SESSION, 0, 0};
  PGconn *c = NULL;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  for (int i = 0; i < TX_RETRIES; i++) {
    rc = apply_unit(c, &a, err);
    if (rc != LC_ERR_RETRY)
      break;
  }
  lc_db_release(pool, c);
  if (rc == LC_ERR_RETRY)
    rc = LC_ERR_UNAVAIL;
  if (rc != LC_OK)
    return rc;
  *outcome = a.outcome;
  if (credited)
    *credited = a.credited;
  if (balance)
    *balance = a.balance;
  return LC_OK;
}
