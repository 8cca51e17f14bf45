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

/* ---- incremental parser (streamed uploads) ----
 * The same rules as storage_mp_parse, fed chunk by chunk in any split: the
 * preamble and part headers are collected in a bounded buffer (at most
 * STORAGE_MP_HEAD_MAX bytes) and checked with storage_mp_parse; the part's
 * data goes to sink as it is found, never collected (only up to 75 bytes
 * that may start the closing delimiter are held back). */
#define STORAGE_MP_HEAD_MAX (80 + STORAGE_MP_MAX_HEADERS * (STORAGE_MP_MAX_LINE + 2) + 2)
#define STORAGE_MP_SCRATCH 65536

/* Receives part data; returns LC_OK to go on, anything else stops the
 * parse with that status. */
typedef int (*storage_mp_sink)(void *ud, const uint8_t *p, size_t n);

typedef struct {
  int phase;                    /* internal */
  char ct[512];                 /* the Content-Type (for error details) */
  char delim[76];               /* CRLF "--" boundary */
  size_t dlen;
  uint8_t head[STORAGE_MP_HEAD_MAX + 80];
  size_t hlen;
  uint8_t tail[2];
  size_t ntail;
  size_t nhold;                 /* bytes at the start of scratch held back */
  uint8_t scratch[STORAGE_MP_SCRATCH + 80];
  storage_mp_part part;         /* data/len unused; valid once headers are in */
} storage_mp_stream;

/* LC_OK or LC_ERR_PARAM (bad Content-Type / boundary). */
int storage_mp_stream_init(storage_mp_stream *s, const char *content_type, char err[LC_ERR_LEN]);
/* Feeds n bytes. LC_OK, LC_ERR_PARAM (malformed, err says why) or the
 * sink's status. */
int storage_mp_stream_feed(storage_mp_stream *s, const uint8_t *p, size_t n,
                           storage_mp_sink sink, void *ud, char err[LC_ERR_LEN]);
/* 1 once the part headers are parsed (s->part is then valid). */
int storage_mp_stream_has_part(const storage_mp_stream *s);
/* After the last chunk: LC_OK when the body was complete (closing
 * delimiter seen), else LC_ERR_PARAM. */
int storage_mp_stream_finish(storage_mp_stream *s, char err[LC_ERR_LEN]);

#endif
