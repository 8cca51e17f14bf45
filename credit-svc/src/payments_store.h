/* payments_store.h - persistence of the payment flow in credit-svc's schema
 * (sql/0010_payments.sql): provider sessions/orders and the once-only
 * application of provider events to the ledger.
 *
 * Thread-safety: every function acquires its own pooled connection for its
 * unit of work; safe to call concurrently from any thread and from several
 * daemon instances (guarantees come from unique keys and row locks in
 * PostgreSQL, never from process-local locks).
 *
 * Errors (lc_status): LC_ERR_PARAM bad input, LC_ERR_NOTFOUND,
 * LC_ERR_CONFLICT, LC_ERR_TIMEOUT/LC_ERR_UNAVAIL (pool or database down),
 * LC_ERR_DB. err gets a short reason without SQL text or secrets. */
#ifndef PAYMENTS_STORE_H
#define PAYMENTS_STORE_H

#include <stdint.h>

#include "lc/db.h"
#include "lc/err.h"

#define PAYMENTS_ID_MAX 255
#define PAYMENTS_URL_MAX 2048

/* A stored checkout session (Stripe) or order (Razorpay). */
typedef struct {
  char provider[16];                  /* "stripe" | "razorpay" */
  char id[PAYMENTS_ID_MAX + 1];
  char user_id[37];
  char pack[17];
  int64_t credits;
  int64_t amount;                     /* minor units */
  char currency[8];                   /* lower case */
  char status[8];                     /* "open" | "paid" */
  char checkout_url[PAYMENTS_URL_MAX + 1]; /* "" for Razorpay */
} payments_session;

/* Inserts a new open session. client_key (NULL = none) is the caller's
 * Idempotency-Key. LC_ERR_CONFLICT when (provider, id) or (user, provider,
 * client_key) already exists. */
int payments_store_session(lc_db_pool *pool, const payments_session *s, const char *client_key,
                           const char *request_id, char err[LC_ERR_LEN]);

/* The session of (user_id, provider, client_key); LC_ERR_NOTFOUND if none. */
int payments_find_by_client_key(lc_db_pool *pool, const char *user_id, const char *provider,
                                const char *client_key, payments_session *out,
                                char err[LC_ERR_LEN]);

/* A provider event that says a session/order was paid, already
 * signature-verified and parsed by the caller. */
typedef struct {
  const char *provider;    /* "stripe" | "razorpay" */
  const char *event_id;    /* evt_... / X-Razorpay-Event-Id, 1..255 bytes */
  const char *event_type;  /* e.g. checkout.session.completed */
  const char *session_id;  /* cs_... / order_... */
  const char *paid_ref;    /* provider payment id (pay_...) or NULL */
  int64_t amount;          /* amount the provider says was paid, minor units */
  const char *currency;    /* as the provider reports it (any case) */
  const char *request_id;  /* NULL = generated */
} payments_event;

typedef enum {
  PAYMENTS_CREDITED = 0,      /* this call credited the session's credits */
  PAYMENTS_DUP_EVENT,         /* event id seen before: nothing written */
  PAYMENTS_DUP_SESSION,       /* session already credited by another event */
  PAYMENTS_AMOUNT_MISMATCH,   /* amount/currency differ from the stored session */
  PAYMENTS_UNKNOWN_SESSION,   /* no such session: nothing written */
} payments_outcome;

/* Applies ev in ONE transaction: records the event id (unique), locks the
 * session, checks amount and currency against it, and - only when the
 * session is still open - credits it through credit_ledger_grant (kind
 * purchase, actor = provider, ref_id "<provider>:<session id>", which also
 * writes the purchase audit row) and marks it paid. A mismatch records the
 * event and an audit row (action purchase, status rejected) and credits
 * nothing. Concurrent duplicates serialise on the event key / session row
 * lock, so at most one of them credits. *outcome is set on LC_OK;
 * *credited and *balance (may be NULL) receive the credits granted and the
 * balance after when PAYMENTS_CREDITED. */
int payments_apply_event(lc_db_pool *pool, const payments_event *ev, payments_outcome *outcome,
                         int64_t *credited, int64_t *balance, char err[LC_ERR_LEN]);

/* Stable name of an outcome ("credited", "duplicate_event", ...). */
const char *payments_outcome_name(payments_outcome o);

#endif
