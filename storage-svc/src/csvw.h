/* csvw.h - RFC 4180 CSV writer with a formula-injection guard, into a
 * growable buffer with a hard cap.
 *
 * Text cells: a cell starting with '=', '+', '-', '@', TAB or CR gets a
 * leading apostrophe (so spreadsheets do not evaluate it); a cell containing
 * ',', '"', CR, LF or leading/trailing blanks is quoted with '"' doubled.
 * Number cells are written as digits (never guarded: "-10" is a number).
 * Rows end with CRLF. Not thread-safe per writer (one writer per request). */
#ifndef STORAGE_CSVW_H
#define STORAGE_CSVW_H

#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

typedef struct {
  char *buf;        /* new, NUL-terminated; take it with storage_csv_take */
  size_t len, cap, max;
  int overflow;     /* sticky: the cap was hit */
  int first_in_row;
} storage_csv;

void storage_csv_init(storage_csv *w, size_t max);
void storage_csv_free(storage_csv *w);
/* Appends one text cell (NULL = empty cell). */
void storage_csv_text(storage_csv *w, const char *s);
void storage_csv_int(storage_csv *w, int64_t v);
void storage_csv_end_row(storage_csv *w);
/* LC_OK and *out, *len (new buffer, free()) or LC_ERR_TOO_LARGE when the cap was hit. */
int storage_csv_take(storage_csv *w, char **out, size_t *len);

#endif
