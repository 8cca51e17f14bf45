/* creditc.h - storage-svc's client of credit-svc's internal routes
 * (proto/CONTRACTS.md "Internal HTTP routes"): reserve -> commit | release,
 * and the caller's ledger for usage reports.
 *
 * Every call is signed with lc_iauth_call as the end user's identity (the
 * identity storage-svc itself received), so credit-svc sees the same user
 * and request id. Thread-safe: a storage_creditc is immutable after init. */
#ifndef STORAGE_CREDITC_H
#define STORAGE_CREDITC_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "lc/err.h"
#include "lc/iauth.h"

typedef struct {
  char base_url[256];     /* "http://127.0.0.1:21002" (no trailing '/') */
  const uint8_t *secret;  /* borrowed: INTERNAL_SECRET bytes, must outlive the client */
  size_t secret_len;
  long timeout_ms;
} storage_creditc;

typedef struct {
  char reservation_id[64];
  int64_t cost;
  char status[16];        /* "reserved" for a usable one; credit-svc replays an
                             earlier reservation for a reused idempotency key */
} storage_reservation;

/* Copies base_url and borrows secret. Returns LC_OK or LC_ERR_PARAM. */
int storage_creditc_init(storage_creditc *c, const char *base_url, const uint8_t *secret,
                         size_t secret_len, long timeout_ms, char err[LC_ERR_LEN]);

/* POST /internal/reservations {user_id, action, idempotency_key?}.
 * Returns LC_OK (out filled), LC_ERR_FUNDS (402), LC_ERR_CONFLICT (409),
 * LC_ERR_UNPROCESSABLE (422), LC_ERR_UNAVAIL (credit-svc down or 5xx),
 * LC_ERR otherwise (unexpected answer). For 402/409/422 err carries the
 * problem detail credit-svc gave (safe to show to the user). */
int storage_creditc_reserve(const storage_creditc *c, const lc_identity *id, const char *action,
                            const char *idempotency_key, storage_reservation *out,
                            char err[LC_ERR_LEN]);

/* POST /internal/reservations/{id}/commit -> debit_id (idempotent on credit's side).
 * Returns LC_OK, LC_ERR_NOTFOUND (unknown/expired), LC_ERR_CONFLICT
 * (already released), LC_ERR_UNAVAIL, LC_ERR. */
int storage_creditc_commit(const storage_creditc *c, const lc_identity *id,
                           const char *reservation_id, char debit_id[64], char err[LC_ERR_LEN]);

/* POST /internal/reservations/{id}/release. Returns LC_OK, LC_ERR_CONFLICT
 * (already committed), LC_ERR_NOTFOUND, LC_ERR_UNAVAIL, LC_ERR. */
int storage_creditc_release(const storage_creditc *c, const lc_identity *id,
                            const char *reservation_id, char err[LC_ERR_LEN]);

/* GET /internal/ledger?user_id=<id->user_id>&limit=100[&cursor=...], following
 * next_cursor until it is absent/null or max_entries entries were read (then
 * *truncated = 1 when more existed). Entries are taken verbatim from the
 * "items" array of each page. On LC_OK *entries is a new JSON array. */
int storage_creditc_ledger(const storage_creditc *c, const lc_identity *id, size_t max_entries,
                           json_t **entries, int *truncated, char err[LC_ERR_LEN]);

#endif
