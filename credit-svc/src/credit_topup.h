/* credit_topup.h - admin credit top-up (POST /v1/admin/users/{id}/credits):
 * strict input validation and the exactly-once write (ledger entry kind
 * topup + audit row + stored Idempotency-Key response in one transaction).
 *
 * credit-svc does not own users: the target account is opened lazily (a
 * user id that auth-svc never issued gets an account nobody can log into;
 * admins act on ids taken from GET /v1/admin/users). Thread-safe. */
#ifndef CREDIT_TOPUP_H
#define CREDIT_TOPUP_H

#include <jansson.h>
#include <stdint.h>

#include "lc/db.h"
#include "lc/err.h"

#define CREDIT_TOPUP_MAX 1000000 /* largest single top-up, credits */

/* Validates a top-up body: exactly {amount, reason}; amount a JSON integer
 * 1..CREDIT_TOPUP_MAX (no fraction, exponent, string, bool, null, object,
 * array); reason a string of 1..CREDIT_REASON_MAX code points without control
 * characters. *reason borrows from body. Pure. LC_OK or LC_ERR_PARAM. */
int credit_topup_validate(const json_t *body, int64_t *amount, const char **reason,
                          char err[LC_ERR_LEN]);

typedef struct {
  const char *owner, *key, *hash; /* Idempotency-Key claim (all NULL = none) */
} credit_topup_idem;

/* Writes the top-up in one transaction: ledger entry (actor = admin id,
 * reason, request id), audit row "topup", and - with idem - the stored
 * response {entry_id, balance} (status 201). *body_out is new JSON text.
 * Errors: LC_ERR_PARAM, LC_ERR_CONFLICT (claim lost), LC_ERR_DB/UNAVAIL. */
int credit_topup_run(lc_db_pool *pool, const char *user_id, int64_t amount, const char *reason,
                     const char *actor, const char *request_id, const credit_topup_idem *idem,
                     char **body_out, char err[LC_ERR_LEN]);

#endif
