/* cursor.h - keyset pagination for newest-first lists: opaque cursors
 * base64url("<created_at epoch microseconds>:<uuid>") and the one page query
 * shared by the file and report lists. Thread-safe. */
#ifndef STORAGE_CURSOR_H
#define STORAGE_CURSOR_H

#include <libpq-fe.h>

#include "lc/db.h"
#include "lc/err.h"

/* Decodes cursor into us (decimal microseconds) and id. LC_OK or LC_ERR_PARAM. */
int storage_cursor_decode(const char *cursor, char us[24], char id[37]);
/* Encodes us and id into out (128 bytes); out = "" on failure. */
void storage_cursor_encode(const char *us, const char *id, char out[128]);

/* One page of the caller's committed rows of table (a constant such as
 * "storage.files"), newest first: runs "SELECT <cols>, <created_at in us>
 * FROM <table> WHERE user_id = $1 AND debit_id IS NOT NULL AND (created_at,
 * id) < cursor ORDER BY created_at DESC, id DESC LIMIT limit + 1". cols and
 * table are constants of the caller, never client input; ncols = number of
 * columns in cols (the cursor column is ncols, the id must be column 0).
 * On LC_OK *res is new (PQclear) holding at most limit + 1 rows; the caller
 * maps the first min(rows, limit) and next_cursor is set when there are more.
 * Errors: LC_ERR_PARAM (bad cursor / limit outside 1..100), LC_ERR_FORBIDDEN
 * (no user identity), database errors. */
int storage_page_newest(lc_db_pool *pool, const char *cols, int ncols, const char *table,
                        const char *user_id, int limit, const char *cursor, PGresult **res,
                        char next_cursor[128], char err[LC_ERR_LEN]);

#endif
