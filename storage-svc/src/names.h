/* names.h - client file names as metadata only: decoding, sanitising and the
 * Content-Disposition header built from them.
 *
 * A file name never becomes part of a storage path (object keys are
 * files/<user_id>/<uuid>); it is kept as display metadata after
 * storage_name_sanitize. Pure functions, thread-safe, no allocation. */
#ifndef STORAGE_NAMES_H
#define STORAGE_NAMES_H

#include <stddef.h>
#include "lc/err.h"

#define STORAGE_NAME_MAX 255         /* bytes of UTF-8 kept */
#define STORAGE_NAME_BUF (STORAGE_NAME_MAX + 1)
#define STORAGE_NAME_RAW_MAX 4096    /* longest raw name accepted before sanitising */
#define STORAGE_CD_MAX 1200          /* Content-Disposition value buffer */

/* Percent-decodes in (in_len bytes) into out (capacity outsz, NUL-terminated;
 * "%00" and other control characters are decoded and later removed by the
 * sanitiser). '+' is kept as '+'. A '%' not followed by two hex digits ->
 * LC_ERR_PARAM; output too long -> LC_ERR_TOO_LARGE. *out_len receives the
 * decoded length (may contain NUL bytes). */
int storage_name_pct_decode(const char *in, size_t in_len, char *out, size_t outsz,
                            size_t *out_len);

/* Sanitises a decoded name of in_len bytes (may contain NUL) into out
 * (STORAGE_NAME_BUF bytes):
 *   - invalid UTF-8 sequences become '_';
 *   - control characters (C0, DEL, C1) and bidirectional overrides
 *     (U+202A..U+202E, U+2066..U+2069) are removed;
 *   - '\' counts as '/'; only the part after the last '/' is kept;
 *   - leading/trailing spaces and dots are trimmed;
 *   - the result is cut to STORAGE_NAME_MAX bytes at a character boundary;
 *   - an empty result becomes fallback (e.g. "file").
 * Never fails; unicode letters are kept. */
void storage_name_sanitize(const char *in, size_t in_len, const char *fallback,
                           char out[STORAGE_NAME_BUF]);

/* Builds `attachment; filename="<ascii>"; filename*=UTF-8''<pct>` for a
 * sanitised name: the ASCII fallback replaces non-ASCII, '"', '\', '%', ';'
 * and control bytes with '_'; the extended value percent-encodes every byte
 * outside RFC 5987 attr-char. Output contains no CR/LF/NUL. Returns LC_OK or
 * LC_ERR_TOO_LARGE. */
int storage_content_disposition(const char *name, char *out, size_t outsz);

#endif
