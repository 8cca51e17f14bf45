/* handlers.h - storage-svc HTTP routes (thin ulfius adapters over files.c
 * and reports.c).
 *
 *   POST   /v1/files              raw body (name: X-File-Name, percent-encoded
 *                                 UTF-8, or ?name=) or multipart/form-data with
 *                                 one file part -> 201 file metadata (costs 10)
 *   GET    /v1/files              ?limit=1..100&cursor=... -> {items, next_cursor}
 *   GET    /v1/files/:id          -> own file metadata, 404 otherwise
 *   GET    /v1/files/:id/content  -> the bytes, attachment, nosniff (free)
 *   DELETE /v1/files/:id          -> 200 {id, deleted:true} (own only, 404 otherwise)
 *   POST   /v1/reports            {kind, format, from?, to?} -> 201 (costs 5)
 *   GET    /v1/reports            ?limit&cursor -> {items, next_cursor}
 *   GET    /v1/reports/:id        -> own report metadata
 *   GET    /v1/reports/:id/download -> the report, attachment (costs 2)
 *   GET    /v1/service/metadata/:file_id -> API keys with scope read|admin
 *                                 only, owner's files (costs 3)
 *
 * Every /v1 route first passes lc_iauth_callback (priority LC_PRIO_AUTH):
 * requests without a valid internal signature get 401. POST /v1/files is a
 * stream route (lc_svc_stream_route): its body is never held whole; it is
 * verified with lc_iauth_verify_unsigned (the gateway signs the
 * Content-Length, not a body hash; lc/iauth.h) and spooled to an unlinked
 * file under STORAGE_SPOOL_DIR while it is counted, hashed and sniffed. Size: the instance
 * body limit is max_upload + STORAGE_MP_OVERHEAD; a raw upload whose
 * Content-Length exceeds max_upload gets 413 before anything is reserved. */
#ifndef STORAGE_HANDLERS_H
#define STORAGE_HANDLERS_H

#include <stdatomic.h>
#include <ulfius.h>
#include "lc/err.h"
#include "lc/iauth.h"
#include "files.h"
#include "reports.h"

/* Room for multipart framing on top of the file size limit. */
#define STORAGE_MP_OVERHEAD (64u * 1024u)

typedef struct {
  storage_reports_ctx reports;
  storage_files_ctx files;
  atomic_int inflight;      /* paid requests in progress (drained at shutdown) */
} storage_app;

/* Registers the auth middleware and the routes; app and iauth are borrowed
 * and must outlive the instance. Returns LC_OK or LC_ERR. */
int storage_handlers_register(struct _u_instance *inst, storage_app *app, lc_iauth_ctx *iauth,
                              char err[LC_ERR_LEN]);

/* 1 when an Idempotency-Key value is acceptable (1..128 printable ASCII, no ','). */
int storage_idem_key_valid(const char *key);

#endif
