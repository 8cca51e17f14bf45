/* handlers.h - storage-svc HTTP routes (thin ulfius adapters over reports.c).
 *
 *   POST /v1/reports       {kind, format, from?, to?} -> 201 report metadata (costs 5)
 *   GET  /v1/reports       ?limit=1..100&cursor=...   -> 200 {items, next_cursor}
 *   GET  /v1/reports/:id   -> 200 own report, 404 otherwise
 *
 * Every /v1 route first passes lc_iauth_callback (priority LC_PRIO_AUTH):
 * requests without a valid internal signature get 401. Later: /v1/files*. */
#ifndef STORAGE_HANDLERS_H
#define STORAGE_HANDLERS_H

#include <stdatomic.h>
#include <ulfius.h>
#include "lc/err.h"
#include "lc/iauth.h"
#include "reports.h"

typedef struct {
  storage_reports_ctx reports;
  atomic_int inflight;      /* paid requests in progress (drained at shutdown) */
} storage_app;

/* Registers the auth middleware and the routes; app and iauth are borrowed
 * and must outlive the instance. Returns LC_OK or LC_ERR. */
int storage_handlers_register(struct _u_instance *inst, storage_app *app, lc_iauth_ctx *iauth,
                              char err[LC_ERR_LEN]);

/* 1 when an Idempotency-Key value is acceptable (1..128 printable ASCII, no ','). */
int storage_idem_key_valid(const char *key);

#endif
