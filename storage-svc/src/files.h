/* files.h - uploaded files: the paid upload flow, listing, reading,
 * deleting, the paid service metadata fetch and the inventory used by
 * "files" reports. Metadata in storage.files, bytes in S3 under
 * files/<user_id>/<file uuid> (a key the server generates; the client's
 * name is only sanitised metadata, see names.h).
 *
 * Paid upload (storage_files_upload), "file.upload" = 10 credits:
 *   1. content type from magic bytes vs. the declared one (415 on a lie),
 *      size <= max_upload (413), SHA-256 of the bytes (one pass; the same
 *      digest is the stored checksum and SigV4's x-amz-content-sha256);
 *   2. Idempotency-Key claim (replay / 409 / 422, see idem.h);
 *   3. reserve at credit-svc (402);
 *   4. stream the bytes to S3 (from the spool file of a streamed upload,
 *      handlers.c, or from the caller's buffer);
 *   5. INSERT the row (debit_id NULL: invisible until committed);
 *   6. commit (or recover, see creditc.h), then set debit_id, then complete
 *      the Idempotency-Key claim.
 *   A failure before 6 releases the reservation and removes what was
 *   written: nothing is charged. At 6 the bytes and row are removed only
 *   after a definite release; an unknown outcome keeps them (status
 *   'settling', 503 STORAGE_SETTLING_DETAIL) for the settler (settle.h).
 * Thread-safe: each DB step checks out its own pooled connection. */
#ifndef STORAGE_FILES_H
#define STORAGE_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "creditc.h"
#include "lc/db.h"
#include "lc/err.h"
#include "lc/iauth.h"
#include "names.h"
#include "s3.h"
#include "sniff.h"

#define STORAGE_MAX_UPLOAD_DEFAULT (10u * 1024u * 1024u)

typedef struct {
  lc_db_pool *pool;
  const storage_s3 *s3;
  const storage_creditc *credit;
  size_t max_upload;        /* bytes of file content */
  int settle_grace_s;       /* a 'pending' row is settled after this (0 = default, settle.h) */
  const char *spool_dir;    /* streamed uploads are spooled to an unlinked file here
                               (NULL = "/tmp") */
} storage_files_ctx;

typedef struct {
  char id[37];
  char user_id[37];
  char name[STORAGE_NAME_BUF];
  char content_type[STORAGE_CT_MAX];
  int64_t size_bytes;
  char sha256[65];
  char created_at[32];
  char object_key[160];     /* internal; never in JSON */
} storage_file;

typedef struct {
  const uint8_t *data;      /* borrowed: the request body (or the multipart part in it) */
  size_t len;
  const char *raw_name;     /* decoded name bytes (may contain NUL), NULL = none */
  size_t raw_name_len;
  const char *declared_type;/* Content-Type of the body or part; NULL = none */
  /* A streamed upload (read != NULL): the len bytes were already counted,
   * hashed and sniffed while they arrived and are spooled; read(read_ud)
   * yields them again for the S3 PUT (data is unused). */
  storage_s3_read_fn read;
  void *read_ud;
  const char *sha256;       /* with read: lowercase hex SHA-256 of the bytes */
  const char *sniffed;      /* with read: storage_sniff_stream_type (NULL = none) */
} storage_upload;

/* The paid upload above. On LC_OK *out is the file, *replayed 1 for an
 * Idempotency-Key replay. Errors: LC_ERR_MEDIA, LC_ERR_TOO_LARGE,
 * LC_ERR_PARAM (empty file), LC_ERR_FUNDS, LC_ERR_CONFLICT,
 * LC_ERR_UNPROCESSABLE, LC_ERR_UNAVAIL (store/credit/db down: nothing
 * charged), LC_ERR_IO, LC_ERR; err has a user-safe detail. */
int storage_files_upload(const storage_files_ctx *ctx, const lc_identity *id,
                         const storage_upload *up, const char *idem_key, storage_file *out,
                         int *replayed, char err[LC_ERR_LEN]);

/* Own committed file; another user's or a missing one -> LC_ERR_NOTFOUND. */
int storage_files_get(lc_db_pool *pool, const char *user_id, const char *file_id,
                      storage_file *out, char err[LC_ERR_LEN]);

/* Own committed files, newest first; cursor as storage_reports_list. */
int storage_files_list(lc_db_pool *pool, const char *user_id, int limit, const char *cursor,
                       storage_file *items, size_t *n, char next_cursor[128],
                       char err[LC_ERR_LEN]);

/* Streamed read of an own file (GET /v1/files/{id}/content). Memory per
 * download is bounded by STORAGE_DL_RING whatever the file size:
 * storage_files_open looks the row up first (missing/foreign ->
 * LC_ERR_NOTFOUND, nothing asked of S3), then starts a thread that GETs the
 * object (storage_s3_get_stream) into a bounded ring and waits for S3's
 * answer headers: LC_OK only when S3 answered 200 with a Content-Length
 * equal to the stored size; store down, object gone or a size mismatch ->
 * LC_ERR_UNAVAIL (nothing was sent yet: the caller answers 503).
 * storage_file_stream_read then blocks for the next bytes (backpressure: a
 * slow client slows the S3 transfer down) and returns the count, 0 at the
 * end of a complete body, -1 when it cannot be completed (S3 failed
 * mid-body, too many or too few bytes, or a SHA-256 that differs from the
 * stored one: the final bytes are held back until the digest of the whole
 * body matched, so a reader gets a short body, never a wrong one).
 * storage_file_stream_close (any time, from the reading thread) aborts the
 * transfer, joins the thread and frees. */
#define STORAGE_DL_RING (256u * 1024u)
typedef struct storage_file_stream storage_file_stream;

int storage_files_open(const storage_files_ctx *ctx, const char *user_id, const char *file_id,
                       storage_file *meta, storage_file_stream **out, char err[LC_ERR_LEN]);
long storage_file_stream_read(storage_file_stream *s, char *buf, size_t max);
void storage_file_stream_close(storage_file_stream *s);

/* Deletes an own file (row first, then the object; an object that cannot
 * be deleted is logged as an orphan). Missing/foreign -> LC_ERR_NOTFOUND. */
int storage_files_delete(const storage_files_ctx *ctx, const char *user_id, const char *file_id,
                         char err[LC_ERR_LEN]);

/* Paid metadata fetch ("service.metadata" = 3 credits): own file looked up
 * first (404 costs nothing), then reserve -> commit. */
int storage_files_metadata_paid(const storage_files_ctx *ctx, const lc_identity *id,
                                const char *file_id, storage_file *out, char err[LC_ERR_LEN]);

/* The caller's committed files created in [from_ms, to_ms) (-1 = open), as
 * a new JSON array of storage_file_to_json objects, newest first, at most
 * max (then *truncated = 1). */
int storage_files_inventory(lc_db_pool *pool, const char *user_id, int64_t from_ms,
                            int64_t to_ms, size_t max, json_t **out, int *truncated,
                            char err[LC_ERR_LEN]);

/* Public JSON view {id, name, content_type, size_bytes, sha256, created_at} (new). */
json_t *storage_file_to_json(const storage_file *f);

/* Hex SHA-256 over "file.upload", content sha256, sanitised name and type. */
void storage_files_request_hash(const char *sha256, const char *name, const char *ctype,
                                char out[65]);

#endif
