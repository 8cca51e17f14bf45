/* names.c - file name decoding, sanitising, Content-Disposition (names.h). */
#include "names.h"

#include <stdint.h>
#include <string.h>

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int storage_name_pct_decode(const char *in, size_t in_len, char *out, size_t outsz,
                            size_t *out_len)
{
  size_t o = 0;

  *out_len = 0;
  if (outsz == 0)
    return LC_ERR_TOO_LARGE;
  for (size_t i = 0; i < in_len; i++) {
    char c = in[i];
    if (c == '%') {
      int h, l;
      if (in_len - i < 3)
        return LC_ERR_PARAM;
      h = hexval(in[i + 1]);
      l = hexval(in[i + 2]);
      if (h < 0 || l < 0)
        return LC_ERR_PARAM;
      c = (char)(h * 16 + l);
      i += 2;
    }
    if (o + 1 >= outsz)
      return LC_ERR_TOO_LARGE;
    out[o++] = c;
  }
  out[o] = '\0';
  *out_len = o;
  return LC_OK;
}

/* Decodes one UTF-8 sequence at s (n bytes left). Returns its length and the
 * code point in *cp, or 0 for an invalid/overlong/surrogate sequence. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
  uint32_t c;
  size_t len;

  if (n == 0)
    return 0;
  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  if (s[0] >= 0xc2 && s[0] <= 0xdf) {
    len = 2;
    c = s[0] & 0x1f;
  } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
    len = 3;
    c = s[0] & 0x0f;
  } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
    len = 4;
    c = s[0] & 0x07;
  } else {
    return 0;
  }
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    c = (c << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
      (c >= 0xd800 && c <= 0xdfff))
    return 0;
  *cp = c;
  return len;
}

static int removed_cp(uint32_t cp)
{
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) ||
         (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

void storage_name_sanitize(const char *in, size_t in_len, const char *fallback,
                           char out[STORAGE_NAME_BUF])
{
  char tmp[STORAGE_NAME_RAW_MAX + 1];
  const unsigned char *s = (const unsigned char *)in;
  size_t t = 0, start = 0, end, o = 0, i = 0;

  if (in == NULL)
    in_len = 0;
  /* 1. clean UTF-8, drop controls, '\' -> '/' (into tmp, bounded) */
  while (i < in_len && t < STORAGE_NAME_RAW_MAX) {
    uint32_t cp = 0;
    size_t l = utf8_next(s + i, in_len - i, &cp);
    if (l == 0) {
      tmp[t++] = '_';
      i++;
      continue;
    }
    if (!removed_cp(cp)) {
      if (t + l > STORAGE_NAME_RAW_MAX)
        break;
      if (cp == '\\')
        tmp[t++] = '/';
      else
        memcpy(tmp + t, s + i, l), t += l;
    }
    i += l;
  }
  tmp[t] = '\0';
  /* 2. basename */
  for (size_t k = 0; k < t; k++) {
    if (tmp[k] == '/')
      start = k + 1;
  }
  /* 3. trim spaces and dots */
  end = t;
  while (start < end && (tmp[start] == ' ' || tmp[start] == '.'))
    start++;
  while (end > start && (tmp[end - 1] == ' ' || tmp[end - 1] == '.'))
    end--;
  /* 4. cut at a character boundary */
  i = start;
  while (i < end) {
    uint32_t cp = 0;
    size_t l = utf8_next((const unsigned char *)tmp + i, end - i, &cp);
    if (l == 0)
      l = 1; /* cannot happen: tmp is valid UTF-8 */
    if (o + l > STORAGE_NAME_MAX)
      break;
    memcpy(out + o, tmp + i, l);
    o += l;
    i += l;
  }
  while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '.'))
    o--;
  out[o] = '\0';
  if (o == 0) {
    const char *f = fallback != NULL && fallback[0] != '\0' ? fallback : "file";
    size_t fl = strlen(f);
    if (fl > STORAGE_NAME_MAX)
      fl = STORAGE_NAME_MAX;
    memcpy(out, f, fl);
    out[fl] = '\0';
  }
}

static int attr_char(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         strchr("!#$&+-.^_`|~", c) != NULL;
}

int storage_content_disposition(const char *name, char *out, size_t outsz)
{
  static const char hex[] = "0123456789ABCDEF";
  static const char p1[] = "attachment; filename=\"", p2[] = "\"; filename*=UTF-8''";
  size_t o = 0, n = name != NULL ? strlen(name) : 0;

  if (sizeof(p1) - 1 + n + sizeof(p2) - 1 + 3 * n + 1 > outsz)
    return LC_ERR_TOO_LARGE;
  memcpy(out, p1, sizeof(p1) - 1);
  o = sizeof(p1) - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    int bad = c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '%' || c == ';';
    /* one '_' per UTF-8 character, not per byte */
    if (c >= 0x80 && (c & 0xc0) == 0x80)
      continue;
    out[o++] = bad ? '_' : (char)c;
  }
  memcpy(out + o, p2, sizeof(p2) - 1);
  o += sizeof(p2) - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (attr_char(c)) {
      out[o++] = (char)c;
    } else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 0x0f];
    }
  }
  out[o] = '\0';
  return LC_OK;
}
