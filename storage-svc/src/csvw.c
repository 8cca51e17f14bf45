/* csvw.c - CSV writer (csvw.h). */
#include "csvw.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/util.h"

void storage_csv_init(storage_csv *w, size_t max)
{
  memset(w, 0, sizeof(*w));
  w->max = max;
  w->first_in_row = 1;
}

void storage_csv_free(storage_csv *w)
{
  if (w == NULL)
    return;
  free(w->buf);
  w->buf = NULL;
  w->len = w->cap = 0;
}

static void put(storage_csv *w, const char *s, size_t n)
{
  if (w->overflow)
    return;
  if (w->len + n > w->max) {
    w->overflow = 1;
    return;
  }
  if (w->len + n + 1 > w->cap) {
    size_t nc = w->cap ? w->cap : 1024;
    while (nc < w->len + n + 1)
      nc *= 2;
    if (nc > w->max + 1)
      nc = w->max + 1;
    w->buf = lc_xrealloc(w->buf, nc);
    w->cap = nc;
  }
  memcpy(w->buf + w->len, s, n);
  w->len += n;
  w->buf[w->len] = '\0';
}

static void sep(storage_csv *w)
{
  if (!w->first_in_row)
    put(w, ",", 1);
  w->first_in_row = 0;
}

void storage_csv_text(storage_csv *w, const char *s)
{
  size_t n;
  int guard, quote;

  sep(w);
  if (s == NULL || s[0] == '\0')
    return;
  n = strlen(s);
  guard = strchr("=+-@\t\r", s[0]) != NULL;
  quote = strpbrk(s, ",\"\r\n") != NULL || s[0] == ' ' || s[n - 1] == ' ' || s[n - 1] == '\t';
  if (quote)
    put(w, "\"", 1);
  if (guard)
    put(w, "'", 1);
  for (const char *p = s; *p != '\0'; p++) {
    if (*p == '"')
      put(w, "\"\"", 2);
    else
      put(w, p, 1);
  }
  if (quote)
    put(w, "\"", 1);
}

void storage_csv_int(storage_csv *w, int64_t v)
{
  char num[24];
  int n = snprintf(num, sizeof(num), "%" PRId64, v);

  sep(w);
  put(w, num, (size_t)n);
}

void storage_csv_end_row(storage_csv *w)
{
  put(w, "\r\n", 2);
  w->first_in_row = 1;
}

int storage_csv_take(storage_csv *w, char **out, size_t *len)
{
  *out = NULL;
  *len = 0;
  if (w->overflow)
    return LC_ERR_TOO_LARGE;
  if (w->buf == NULL)
    w->buf = lc_xstrdup("");
  *out = w->buf;
  *len = w->len;
  w->buf = NULL;
  w->len = w->cap = 0;
  return LC_OK;
}
