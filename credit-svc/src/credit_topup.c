/* credit_topup.c - admin top-up; see credit_topup.h. */
#include "credit_topup.h"

#include <stdlib.h>
#include <string.h>

#include "credit_idem.h"
#include "credit_ledger.h"
#include "lc/util.h"

int credit_topup_validate(const json_t *body, int64_t *amount, const char **reason,
                          char err[LC_ERR_LEN]) {
  if (!json_is_object(body))
    return lc_err_set(err, LC_ERR_PARAM, "body must be a JSON object");
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)body, k, v) {
    if (strcmp(k, "amount") != 0 && strcmp(k, "reason") != 0)
      return lc_err_set(err, LC_ERR_PARAM, "unknown field '%.40s'", k);
  }
  const json_t *ja = json_object_get(body, "amount");
  if (!json_is_integer(ja))
    return lc_err_set(err, LC_ERR_PARAM, "amount must be an integer 1..%d", CREDIT_TOPUP_MAX);
  json_int_t a = json_integer_value(ja);
  if (a < 1 || a > CREDIT_TOPUP_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "amount must be an integer 1..%d", CREDIT_TOPUP_MAX);
  const json_t *jr = json_object_get(body, "reason");
  const char *r = json_is_string(jr) ? json_string_value(jr) : NULL;
  if (r == NULL || r[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "reason must be a non-empty string");
  size_t cps = 0;
  for (const unsigned char *p = (const unsigned char *)r; *p; p++) {
    if (*p < 0x20 || *p == 0x7f)
      return lc_err_set(err, LC_ERR_PARAM, "reason must not contain control characters");
    cps += ((*p & 0xC0) != 0x80);
  }
  if (strlen(r) != json_string_length(jr))
    return lc_err_set(err, LC_ERR_PARAM, "reason must not contain NUL");
  if (cps > CREDIT_REASON_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "reason must be at most %d characters",
                      CREDIT_REASON_MAX);
  *amount = (int64_t)a;
  *reason = r;
  return LC_OK;
}

static int topup_once(PGconn *c, const char *user_id, int64_t amount, const char *reason,
                      const char *actor, const char *request_id, const credit_topup_idem *idem,
                      char **body_out, char err[LC_ERR_LEN]) {
  char entry_id[37];
  int64_t bal = 0;
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  rc = credit_ledger_grant(c, user_id, amount, CREDIT_KIND_TOPUP, reason, actor, request_id, NULL,
                           entry_id, &bal, err);
  if (rc != LC_OK)
    goto fail;
  json_t *o = json_pack("{s:s, s:I}", "entry_id", entry_id, "balance", (json_int_t)bal);
  char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (text == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "cannot build response");
    goto fail;
  }
  if (idem && idem->key) {
    rc = credit_idem_finish(c, idem->owner, idem->key, idem->hash, 201, text, err);
    if (rc != LC_OK) {
      free(text);
      goto fail;
    }
  }
  rc = lc_db_commit(c, err);
  if (rc != LC_OK) {
    free(text);
    return rc;
  }
  *body_out = text;
  return LC_OK;
fail:
  lc_db_rollback(c);
  return rc;
}

int credit_topup_run(lc_db_pool *pool, const char *user_id, int64_t amount, const char *reason,
                     const char *actor, const char *request_id, const credit_topup_idem *idem,
                     char **body_out, char err[LC_ERR_LEN]) {
  *body_out = NULL;
  if (amount < 1 || amount > CREDIT_TOPUP_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "amount out of range");
  PGconn *c = NULL;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  for (int i = 0; i < 3; i++) {
    rc = topup_once(c, user_id, amount, reason, actor, request_id, idem, body_out, err);
    if (rc != LC_ERR_RETRY)
      break;
  }
  lc_db_release(pool, c);
  if (rc == LC_ERR_RETRY)
    rc = LC_ERR_UNAVAIL;
  return rc;
}
