/* multipart.h - strict, bounded, zero-copy parser of a multipart/form-data
 * body (RFC 7578 / RFC 2046) holding exactly one part: the uploaded file.
 *
 * No library: the body (already in memory, buffered by ulfius) is scanned
 * once; the part's data is returned as a pointer into the body (no copy).
 * Rules:
 *   - Content-Type "multipart/form-data" with a boundary parameter of 1..70
 *     RFC 2046 bchars (token or quoted), nothing else unknown;
 *   - the body starts with "--boundary" CRLF (no preamble) and ends with
 *     "--boundary--" optionally followed by CRLF (epilogue ignored);
 *   - exactly one part; its header block is at most STORAGE_MP_MAX_HEADERS
 *     lines of at most STORAGE_MP_MAX_LINE bytes each, CRLF-terminated,
 *     "Name: value" form; Content-Disposition must be present exactly once and
 *     be `form-data; name="..."[; filename="..."][; filename*=UTF-8''...]`;
 *     Content-Type at most once; Content-Transfer-Encoding, if present, must
 *     be binary, 8bit or 7bit;
 *   - anything else -> LC_ERR_PARAM with a reason.
 * Pure, thread-safe. */
#ifndef STORAGE_MULTIPART_H
#define STORAGE_MULTIPART_H

#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

#define STORAGE_MP_MAX_HEADERS 8
#define STORAGE_MP_MAX_LINE 1024
#define STORAGE_MP_MAX_NAME 1024   /* raw file name bytes (before sanitising) */

typedef struct {
  const uint8_t *data;          /* borrowed: points into the body */
  size_t len;
  char filename[STORAGE_MP_MAX_NAME + 1]; /* raw, decoded (may contain NUL: use filename_len) */
  size_t filename_len;
  int has_filename;
  char field_name[128];
  char content_type[128];       /* "" when the part has none */
} storage_mp_part;

/* 1 when content_type's media type is multipart/form-data. */
int storage_mp_is_multipart(const char *content_type);

/* Parses body (len bytes) for the Content-Type header value content_type.
 * Returns LC_OK with *out filled, or LC_ERR_PARAM (err says why). */
int storage_mp_parse(const char *content_type, const uint8_t *body, size_t len,
                     storage_mp_part *out, char err[LC_ERR_LEN]);

#endif
