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

/* The end of every paid flow: commit the reservation; when that fails,
 * release it - and if credit-svc answers the release with 409 (it was in fact
 * committed, e.g. our first commit's answer was lost), repeat the commit
 * (idempotent) to learn the debit id. Returns
 *   LC_OK           committed, debit_id filled;
 *   LC_ERR_UNAVAIL  released: credit-svc answered the release with 200, so
 *                   nothing was or will be charged - the work may be undone;
 *   LC_ERR_TIMEOUT  outcome unknown (commit and release both unanswered, or
 *                   committed but the debit could not be read back): the
 *                   work must be kept and handed to the settler (settle.h).
 * what names the action in logs. */
int storage_creditc_commit_or_recover(const storage_creditc *c, const lc_identity *id,
                                      const char *reservation_id, char debit_id[64],
                                      const char *what);

/* The settler's question for one unsettled reservation of user_id, asked
 * as that user (role "user"): commit it (roll forward; idempotent - a
 * committed one returns its debit again). Returns LC_OK (charged, debit_id
 * filled), LC_ERR_CONFLICT (definitely not charged: credit-svc released it
 * or its TTL expired it; a 404 is confirmed by a release first) or
 * LC_ERR_TIMEOUT (still unknown: ask again later). */
int storage_creditc_settle(const storage_creditc *c, const char *user_id,
                           const char *reservation_id, char debit_id[64], char err[LC_ERR_LEN]);

/* Releases after a failure; errors are logged (the reservation then expires
 * at credit-svc after its TTL, which releases it too). */
void storage_creditc_release_logged(const storage_creditc *c, const lc_identity *id,
                                    const char *reservation_id, const char *what);

/* GET /internal/debits?since=&until=&limit=100[&cursor=] (contract C, signed
 * as role "system"), following next_cursor. Keeps the items whose user_id is
 * user_id, as a new JSON object debit_id -> {tx_hash, chain_status, cost,
 * committed_at}. Scans at most max_scan items (then *truncated = 1).
 * When credit-svc does not serve the route (404) *available = 0 and LC_OK
 * with *out NULL. since/until are RFC 3339 texts. Errors: LC_ERR_UNAVAIL, LC_ERR. */
int storage_creditc_debits(const storage_creditc *c, const char *request_id,
                           const char *user_id, const char *since, const char *until,
                           size_t max_scan, json_t **out, int *available, int *truncated,
                           char err[LC_ERR_LEN]);

#endif
