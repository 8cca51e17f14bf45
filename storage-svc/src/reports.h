/* reports.h - POST/GET /v1/reports service logic: request validation, the
 * usage report builder, the paid generation flow (reserve -> work -> commit,
 * release on failure) and the report metadata in storage.reports.
 *
 * Paid flow of storage_reports_create:
 *   1. Idempotency-Key replay: a committed report with the same key and the
 *      same request is returned again (nothing charged); same key with a
 *      different request -> LC_ERR_UNPROCESSABLE; same key still running ->
 *      LC_ERR_CONFLICT.
 *   2. reserve "report.generate" at credit-svc (402 -> LC_ERR_FUNDS).
 *   3. read the caller's ledger, build the JSON report.
 *   4. PUT reports/<user_id>/<report_id>.json to S3.
 *   5. INSERT the metadata row (debit_id NULL: invisible until committed).
 *   6. commit the reservation, store debit_id (status 'committed'), and only
 *      then complete the Idempotency-Key claim.
 *   Any failure before 6 releases the reservation (nothing charged). A failed
 *   commit is followed by a release: a definite release (200) deletes the
 *   row and the object and answers 503 "nothing was charged"; a 409 means it
 *   was committed (the commit is repeated to read the debit, report kept);
 *   an unknown outcome keeps row and object (status 'settling') and answers
 *   503 STORAGE_SETTLING_DETAIL - the settler (settle.h) then makes it
 *   charged + visible or released + deleted. A failure to store debit_id
 *   after a commit answers the same 503 (the settler stores it).
 *
 * Thread-safety: every function may run concurrently; each DB step checks
 * out its own pooled connection and no lock is held across HTTP calls. */
#ifndef STORAGE_REPORTS_H
#define STORAGE_REPORTS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "lc/db.h"
#include "lc/err.h"
#include "lc/iauth.h"
#include "creditc.h"
#include "s3.h"

#define STORAGE_REPORT_MAX_BYTES (8u * 1024u * 1024u)
#define STORAGE_REPORT_MAX_ENTRIES 10000
#define STORAGE_IDEM_KEY_MAX 128

typedef struct {
  lc_db_pool *pool;
  const storage_s3 *s3;
  const storage_creditc *credit;
  size_t max_entries;       /* ledger cap per report, 0 = STORAGE_REPORT_MAX_ENTRIES */
  int settle_grace_s;       /* a 'pending' row is settled after this (0 = default, settle.h) */
} storage_reports_ctx;


typedef struct {
  char kind[16];            /* "usage" | "files" */
  char format[8];           /* "json" | "csv" */
  char from[32], to[32];    /* normalised "YYYY-MM-DDTHH:MM:SS.mmmZ" or "" */
  int64_t from_ms, to_ms;   /* epoch ms, -1 when absent; from inclusive, to exclusive */
} storage_report_req;

typedef struct {
  char id[37];
  char user_id[37];
  char kind[16];
  char format[8];
  int64_t size_bytes;
  char sha256[65];
  char created_at[32];
  char from[32], to[32];    /* "" when absent */
} storage_report;

/* Parses an RFC 3339 timestamp ("YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)")
 * or a date "YYYY-MM-DD" (midnight UTC) into epoch ms; years 1970..9999.
 * Returns LC_OK or LC_ERR_PARAM. */
int storage_reports_parse_time(const char *s, int64_t *ms);
/* Formats epoch ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (out >= 32 bytes). */
void storage_reports_format_time(int64_t ms, char out[32]);

/* Strictly validates the POST body {kind, format, from?, to?} (body
 * borrowed): unknown fields, wrong types, unknown values, bad or reversed
 * times -> LC_ERR_PARAM with a user-facing detail in err. */
int storage_reports_parse_req(const json_t *body, storage_report_req *out, char err[LC_ERR_LEN]);

/* Builds the usage report document
 *   {report_id, user_id, kind, format, generated_at, from?, to?, entry_count,
 *    truncated, entries:[...]}
 * keeping the ledger entries (borrowed array, newest first as credit-svc
 * returns them) whose "ts" (or "created_at") lies in [from, to) (all when
 * no range; entries without a parseable time are then left out). *out is new
 * (free()), compact JSON, *len its length. Over STORAGE_REPORT_MAX_BYTES ->
 * LC_ERR_TOO_LARGE; entries not an array -> LC_ERR_PARAM. */
int storage_reports_build_usage(const char *report_id, const char *user_id,
                                const char *generated_at, const storage_report_req *req,
                                const json_t *entries, int truncated, char **out, size_t *len,
                                char err[LC_ERR_LEN]);

/* Everything a report document is built from (all borrowed). */
typedef struct {
  const char *report_id, *user_id, *generated_at;
  const storage_report_req *req;
  const json_t *entries;  /* usage: ledger entries (credit-svc's shape, newest first);
                             files: storage_file_to_json objects */
  const json_t *debits;   /* usage: debit_id -> {tx_hash, chain_status, ...} from
                             credit-svc's /internal/debits; NULL = chain data unavailable */
  int truncated;          /* the source had more entries than the cap */
} storage_report_input;

/* Builds the report document of in->req->kind / format:
 *   json usage: {report_id, user_id, kind, format, generated_at, from?, to?,
 *                entry_count, truncated, chain_data: "available"|"unavailable",
 *                totals:{debited, credited, confirmed_debits, confirmed_cost},
 *                entries:[ledger entry + tx_hash + chain_status]}
 *   json files: {..., file_count, truncated, files:[...]}
 *   csv usage:  ts,kind,action,delta,balance_after,debit_id,tx_hash,chain_status
 *   csv files:  id,name,content_type,size_bytes,sha256,created_at
 * (CSV: RFC 4180 + formula guard, see csvw.h). Entries outside [from, to)
 * (by "ts" or "created_at") are left out. *out is new (free()), *len its
 * length. Over STORAGE_REPORT_MAX_BYTES -> LC_ERR_TOO_LARGE; entries not an
 * array -> LC_ERR_PARAM. */
int storage_reports_build(const storage_report_input *in, char **out, size_t *len,
                          char err[LC_ERR_LEN]);

/* Reads an own committed report's bytes for a paid download
 * ("report.download" = 2 credits): ownership first (404 costs nothing), then
 * reserve -> read the object -> commit. If the object cannot be read the
 * reservation is released and LC_ERR_UNAVAIL returned (nothing charged).
 * On LC_OK *body is new (free()), *len its size, *meta the report; the
 * debit's audit row is written by credit-svc's commit. */
int storage_reports_download(const storage_reports_ctx *ctx, const lc_identity *id,
                             const char *report_id, storage_report *meta, char **body,
                             size_t *len, char err[LC_ERR_LEN]);

/* Hex SHA-256 of the normalised request (kind, format, from, to): stored
 * with the Idempotency-Key to tell a replay from a different request. */
void storage_reports_request_hash(const storage_report_req *req, char out[65]);

/* The paid flow above. idem_key may be NULL. On LC_OK *out is the report
 * and *replayed is 1 when it is an Idempotency-Key replay. Errors:
 * LC_ERR_FUNDS, LC_ERR_CONFLICT, LC_ERR_UNPROCESSABLE, LC_ERR_UNAVAIL (store
 * or credit-svc down: nothing charged), LC_ERR_IO (store answered an
 * error), LC_ERR_TOO_LARGE, LC_ERR/LC_ERR_DB; err has a user-safe detail. */
int storage_reports_create(const storage_reports_ctx *ctx, const lc_identity *id,
                           const storage_report_req *req, const char *idem_key,
                           storage_report *out, int *replayed, char err[LC_ERR_LEN]);

/* Own committed report by id; another user's or a missing one -> LC_ERR_NOTFOUND. */
int storage_reports_get(lc_db_pool *pool, const char *user_id, const char *report_id,
                        storage_report *out, char err[LC_ERR_LEN]);

/* Own committed reports, newest first. limit 1..100; cursor NULL/"" = first
 * page, else the opaque next_cursor of a previous page (bad -> LC_ERR_PARAM).
 * items must hold limit entries; *n receives the count; next_cursor (>= 128
 * bytes) is "" on the last page. */
int storage_reports_list(lc_db_pool *pool, const char *user_id, int limit, const char *cursor,
                         storage_report *items, size_t *n, char next_cursor[128],
                         char err[LC_ERR_LEN]);

/* Public JSON view {id, kind, format, size_bytes, sha256, created_at, from?, to?} (new). */
json_t *storage_report_to_json(const storage_report *r);

#endif
