/* cursor.h - opaque keyset-pagination cursors for newest-first lists:
 * base64url("<created_at epoch microseconds>:<uuid>"). Pure, thread-safe. */
#ifndef STORAGE_CURSOR_H
#define STORAGE_CURSOR_H

#include "lc/err.h"

/* Decodes cursor into us (decimal microseconds) and id. LC_OK or LC_ERR_PARAM. */
int storage_cursor_decode(const char *cursor, char us[24], char id[37]);
/* Encodes us and id into out (128 bytes); out = "" on failure. */
void storage_cursor_encode(const char *us, const char *id, char out[128]);

#endif
