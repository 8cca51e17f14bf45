/* sniff.c - magic-byte content type detection (sniff.h). */
#include "sniff.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "lc/util.h"

static int starts(const uint8_t *b, size_t n, const char *magic, size_t mlen)
{
  return n >= mlen && memcmp(b, magic, mlen) == 0;
}

/* 1 when buf is UTF-8 text without disallowed control characters. */
static int is_text(const uint8_t *b, size_t n)
{
  size_t i = 0;

  if (n >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf)
    i = 3;
  while (i < n) {
    uint8_t c = b[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f)
        return 0;
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (n - i < len)
      return 0;
    for (size_t k = 1; k < len; k++) {
      if ((b[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (b[i + k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
      return 0;
    i += len;
  }
  return 1;
}

static int json_shape(const uint8_t *b, size_t n)
{
  size_t s = 0, e = n;

  if (n >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf)
    s = 3;
  while (s < e && isspace(b[s]))
    s++;
  while (e > s && isspace(b[e - 1]))
    e--;
  if (e - s < 2)
    return 0;
  return (b[s] == '{' && b[e - 1] == '}') || (b[s] == '[' && b[e - 1] == ']');
}

const char *storage_sniff(const uint8_t *b, size_t n)
{
  if (b == NULL || n == 0)
    return NULL;
  if (starts(b, n, "\x89PNG\r\n\x1a\n", 8))
    return "image/png";
  if (starts(b, n, "\xff\xd8\xff", 3))
    return "image/jpeg";
  if (starts(b, n, "GIF87a", 6) || starts(b, n, "GIF89a", 6))
    return "image/gif";
  if (starts(b, n, "%PDF-", 5))
    return "application/pdf";
  if (starts(b, n, "PK\x03\x04", 4) || starts(b, n, "PK\x05\x06", 4))
    return "application/zip";
  if (!is_text(b, n))
    return NULL;
  return json_shape(b, n) ? "application/json" : "text/plain";
}

/* Normalises "Type/Sub ; charset=UTF-8" into base (lowercase) and checks
 * parameters. Returns LC_OK, LC_ERR_NOTFOUND (not declared) or LC_ERR_MEDIA. */
static int parse_declared(const char *d, char base[STORAGE_CT_MAX])
{
  size_t o = 0;
  const char *p = d;

  base[0] = '\0';
  if (d == NULL)
    return LC_ERR_NOTFOUND;
  while (*p == ' ' || *p == '\t')
    p++;
  while (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t') {
    if (o + 1 >= STORAGE_CT_MAX)
      return LC_ERR_MEDIA;
    base[o++] = (char)tolower((unsigned char)*p++);
  }
  base[o] = '\0';
  while (*p == ' ' || *p == '\t')
    p++;
  if (o == 0 && *p == '\0')
    return LC_ERR_NOTFOUND;
  if (strcmp(base, "application/octet-stream") == 0)
    return *p == '\0' ? LC_ERR_NOTFOUND : LC_ERR_MEDIA;
  if (strcmp(base, "image/jpg") == 0 || strcmp(base, "image/pjpeg") == 0)
    lc_strlcpy(base, "image/jpeg", STORAGE_CT_MAX);
  if (strcmp(base, "application/x-zip-compressed") == 0)
    lc_strlcpy(base, "application/zip", STORAGE_CT_MAX);
  if (*p == '\0')
    return LC_OK;
  /* only "; charset=utf-8|us-ascii" on text types */
  if (*p != ';')
    return LC_ERR_MEDIA;
  p++;
  while (*p == ' ' || *p == '\t')
    p++;
  if (strncmp(base, "text/", 5) != 0 && strcmp(base, "application/json") != 0)
    return LC_ERR_MEDIA;
  if (strncasecmp(p, "charset=", 8) != 0)
    return LC_ERR_MEDIA;
  p += 8;
  if (*p == '"')
    p++;
  if (strncasecmp(p, "utf-8", 5) == 0)
    p += 5;
  else if (strncasecmp(p, "us-ascii", 8) == 0)
    p += 8;
  else
    return LC_ERR_MEDIA;
  if (*p == '"')
    p++;
  while (*p == ' ' || *p == '\t')
    p++;
  return *p == '\0' ? LC_OK : LC_ERR_MEDIA;
}

static int allowed(const char *t)
{
  static const char *const list[] = {"image/png",      "image/jpeg", "image/gif",
                                      "application/pdf", "application/zip", "text/plain",
                                      "text/csv",       "application/json", NULL};
  for (size_t i = 0; list[i] != NULL; i++) {
    if (strcmp(list[i], t) == 0)
      return 1;
  }
  return 0;
}

int storage_sniff_decide(const uint8_t *buf, size_t len, const char *declared,
                         char out[STORAGE_CT_MAX], char err[LC_ERR_LEN])
{
  return storage_sniff_decide_type(storage_sniff(buf, len), declared, out, err);
}

int storage_sniff_decide_type(const char *det, const char *declared, char out[STORAGE_CT_MAX],
                              char err[LC_ERR_LEN])
{
  char base[STORAGE_CT_MAX];
  int rc;

  out[0] = '\0';
  rc = parse_declared(declared, base);
  if (rc == LC_ERR_MEDIA)
    return lc_err_set(err, LC_ERR_MEDIA, "the declared content type is not allowed");
  if (rc == LC_OK && !allowed(base))
    return lc_err_set(err, LC_ERR_MEDIA,
                      "content type %s is not allowed (png, jpeg, gif, pdf, zip, UTF-8 text, "
                      "csv, json)", base);
  if (det == NULL)
    return lc_err_set(err, LC_ERR_MEDIA,
                      "the file content is not an allowed type (png, jpeg, gif, pdf, zip, "
                      "UTF-8 text, csv, json)");
  if (rc == LC_ERR_NOTFOUND || strcmp(base, det) == 0) {
    lc_strlcpy(out, det, STORAGE_CT_MAX);
    return LC_OK;
  }
  /* text family: csv/plain declared for text; plain or csv declared for JSON-shaped text */
  if ((strcmp(det, "text/plain") == 0 || strcmp(det, "application/json") == 0) &&
      (strcmp(base, "text/plain") == 0 || strcmp(base, "text/csv") == 0)) {
    lc_strlcpy(out, base, STORAGE_CT_MAX);
    return LC_OK;
  }
  return lc_err_set(err, LC_ERR_MEDIA, "declared content type %s does not match the content (%s)",
                    base, det);
}

/* ---- incremental ---------------------------------------------------------- */

void storage_sniff_stream_init(storage_sniff_stream *s)
{
  memset(s, 0, sizeof(*s));
  s->first_nb = s->first_nb3 = s->last_nb = -1;
}

static int blank(uint8_t c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

void storage_sniff_stream_feed(storage_sniff_stream *s, const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    uint8_t c = p[i];
    int64_t off = (int64_t)s->total++;

    if (s->nhead < sizeof(s->head))
      s->head[s->nhead++] = c;
    if (!blank(c)) {
      if (s->first_nb < 0) {
        s->first_nb = off;
        s->first_c = c;
      }
      if (off >= 3 && s->first_nb3 < 0) {
        s->first_nb3 = off;
        s->first_c3 = c;
      }
      s->last_nb = off;
      s->last_c = c;
    }
    if (s->not_text)
      continue;
    if (s->need == 0) {
      if (c < 0x80) {
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f)
          s->not_text = 1;
        continue;
      }
      if (c >= 0xc2 && c <= 0xdf) {
        s->seqlen = 2;
        s->cp = c & 0x1f;
      } else if (c >= 0xe0 && c <= 0xef) {
        s->seqlen = 3;
        s->cp = c & 0x0f;
      } else if (c >= 0xf0 && c <= 0xf4) {
        s->seqlen = 4;
        s->cp = c & 0x07;
      } else {
        s->not_text = 1;
        continue;
      }
      s->need = s->seqlen - 1;
      continue;
    }
    if ((c & 0xc0) != 0x80) {
      s->not_text = 1;
      continue;
    }
    s->cp = (s->cp << 6) | (c & 0x3f);
    if (--s->need == 0) {
      uint32_t cp = s->cp;
      if ((s->seqlen == 3 && cp < 0x800) || (s->seqlen == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
          (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
        s->not_text = 1;
    }
  }
}

const char *storage_sniff_stream_type(const storage_sniff_stream *s)
{
  const char *magic;
  int bom;
  int64_t first;
  uint8_t fc;

  if (s->total == 0)
    return NULL;
  /* the magic numbers need at most the first 8 bytes */
  magic = storage_sniff(s->head, s->nhead);
  if (magic != NULL && strncmp(magic, "text/", 5) != 0 && strcmp(magic, "application/json") != 0)
    return magic;
  if (s->not_text || s->need != 0)
    return NULL;
  bom = s->nhead >= 3 && s->head[0] == 0xef && s->head[1] == 0xbb && s->head[2] == 0xbf;
  first = bom ? s->first_nb3 : s->first_nb;
  fc = bom ? s->first_c3 : s->first_c;
  if (first < 0 || s->last_nb < first + 1)
    return "text/plain";
  if ((fc == '{' && s->last_c == '}') || (fc == '[' && s->last_c == ']'))
    return "application/json";
  return "text/plain";
}
