/* sniff.h - content type detection from magic bytes against an allowlist.
 *
 * Allowed types: image/png, image/jpeg, image/gif, application/pdf,
 * application/zip, text/plain, text/csv, application/json (text types must
 * be UTF-8). Detection looks at the bytes only:
 *   PNG  89 50 4E 47 0D 0A 1A 0A      JPEG FF D8 FF       GIF "GIF87a"/"GIF89a"
 *   PDF  "%PDF-"                      ZIP  "PK\3\4" or "PK\5\6"
 *   text: valid UTF-8 (optional BOM), no NUL and no control character other
 *         than TAB, LF, CR, FF; it is application/json when its first and
 *         last non-blank characters are {} or [] (shape, not full validation).
 * CSV cannot be told from plain text by its bytes: text/csv is accepted when
 * declared for text content. Pure functions, thread-safe. */
#ifndef STORAGE_SNIFF_H
#define STORAGE_SNIFF_H

#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

#define STORAGE_CT_MAX 64

/* Detected type of buf (one of the allowlist), or NULL when the bytes match
 * none of them (binary of another kind, invalid UTF-8, empty). */
const char *storage_sniff(const uint8_t *buf, size_t len);

/* Decides the stored content type. declared is the client's Content-Type
 * (raw body) or the part's Content-Type (multipart); NULL, "" and
 * application/octet-stream mean "not declared". Parameters other than
 * charset=utf-8/us-ascii on text types are refused.
 *   - bytes match nothing allowed           -> LC_ERR_MEDIA
 *   - declared type not in the allowlist    -> LC_ERR_MEDIA
 *   - declared type disagrees with the bytes-> LC_ERR_MEDIA (e.g. image/png
 *     declared for a PDF, application/json for plain text)
 *   - otherwise LC_OK, out = the declared type when compatible (text/csv,
 *     text/plain for JSON) else the detected one.
 * err gets a user-facing detail. */
int storage_sniff_decide(const uint8_t *buf, size_t len, const char *declared,
                         char out[STORAGE_CT_MAX], char err[LC_ERR_LEN]);

/* Incremental detection for a body that streams through (same result as
 * storage_sniff over all the bytes fed): keeps the first bytes, a UTF-8
 * validator state and the first/last non-blank characters. */
typedef struct {
  uint8_t head[8];
  size_t nhead;
  uint64_t total;
  int not_text;
  int need;              /* continuation bytes still expected */
  int seqlen;
  uint32_t cp;
  int64_t first_nb;      /* offset of the first non-blank byte (-1 none) */
  uint8_t first_c;
  int64_t first_nb3;     /* the same from offset 3 on (after a BOM) */
  uint8_t first_c3;
  int64_t last_nb;
  uint8_t last_c;
} storage_sniff_stream;

void storage_sniff_stream_init(storage_sniff_stream *s);
void storage_sniff_stream_feed(storage_sniff_stream *s, const uint8_t *p, size_t n);
/* Detected type of everything fed (as storage_sniff), or NULL. */
const char *storage_sniff_stream_type(const storage_sniff_stream *s);
/* storage_sniff_decide with the detected type already known (det may be NULL). */
int storage_sniff_decide_type(const char *det, const char *declared, char out[STORAGE_CT_MAX],
                              char err[LC_ERR_LEN]);

#endif
