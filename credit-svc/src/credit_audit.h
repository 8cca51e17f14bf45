/* credit_audit.h - the append-only audit log of credit-svc: inserting rows
 * (inside a caller's transaction) and consuming auth-svc's auth.audit events
 * (queue credit-svc.audit) into rows.
 *
 * Audit rows are never updated (except the chain result of a debit, see
 * credit_ledger_chain_update) and never deleted: a database trigger refuses
 * it (sql/0002_ledger_v2.sql).
 *
 * Actions written by credit-svc: "<paid action>" (e.g. report.generate; the
 * debit/commit row, cost > 0, status committed, debit_id, chain result),
 * reservation (status reserved), release (status released|expired), topup,
 * purchase, grant (status ok). From auth-svc: signup, login, login_failed,
 * logout, ... (cost 0, status ok|failed|denied). */
#ifndef CREDIT_AUDIT_H
#define CREDIT_AUDIT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lc/db.h"
#include "lc/err.h"

#define CREDIT_AUDIT_QUEUE "credit-svc.audit"
#define CREDIT_AUDIT_DLQ "credit-svc.audit.dlq"
#define CREDIT_AUTH_EXCHANGE "auth.events"
#define CREDIT_AUTH_AUDIT_KEY "auth.audit"

typedef struct {
  const char *user_id;    /* UUID or NULL */
  const char *actor;      /* 1..64 bytes, required */
  const char *action;     /* 1..64 bytes, required */
  int64_t cost;           /* >= 0 (credits charged; 0 for non-debits) */
  const char *status;     /* 1..32 bytes, required */
  const char *request_id; /* NULL or <= 63 bytes */
  const json_t *detail;   /* borrowed; object or NULL (= {}), <= 4 KiB serialised */
  const char *event_id;   /* UUID or NULL; rows are unique on it */
  const char *ts;         /* RFC 3339 or NULL (= now) */
} credit_audit_row;

/* Inserts one audit row on conn (in the caller's transaction, or
 * autocommit). With event_id set, a second insert of the same event writes
 * nothing and sets *inserted = 0 (ON CONFLICT DO NOTHING; the transaction
 * stays usable). inserted may be NULL. Errors: LC_ERR_PARAM, LC_ERR_DB,
 * LC_ERR_UNAVAIL. Thread-safety: uses only conn. */
int credit_audit_insert(PGconn *conn, const credit_audit_row *row, int *inserted,
                        char err[LC_ERR_LEN]);

/* Validates an auth.audit body ({event_id, ts, user_id|null, actor, action,
 * status, request_id, detail}) and fills *row with pointers borrowed from
 * body. Returns LC_OK or LC_ERR_PARAM (err says which field). Pure. */
int credit_audit_from_auth_event(const json_t *body, credit_audit_row *row, char err[LC_ERR_LEN]);

/* lc_amqp_handler for credit-svc.audit (ud = lc_db_pool*): malformed ->
 * LC_ERR_PARAM (DLQ); database trouble -> requeue; duplicate event -> ack. */
int credit_audit_handle(void *ud, const char *routing_key, const char *msg_id, const char *body,
                        size_t len);

/* Declares credit-svc.audit (durable quorum, DLX dlx, DL key
 * credit-svc.audit.dlq) bound to auth.events/auth.audit, and its DLQ bound
 * to dlx; idempotent, same arguments as lc_amqp_declare_topology uses. */
int credit_audit_declare(const char *amqp_url, char err[LC_ERR_LEN]);

typedef struct {
  lc_db_pool *pool; /* borrowed */
  const char *amqp_url;
  atomic_bool *stop;
} credit_audit_cfg;

/* Thread body (arg = credit_audit_cfg*): declares (retrying until the broker
 * answers) and consumes until *stop. */
void *credit_audit_thread(void *arg);

#endif
