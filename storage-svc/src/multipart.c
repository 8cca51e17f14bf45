/* multipart.c - strict single-part multipart/form-data parser (multipart.h). */
#include "multipart.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "lc/util.h"
#include "names.h"

static int is_tchar(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_bchar(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != '\0' && strchr("'()+_,-./:=? ", c) != NULL);
}

static void skip_ows(const char **p)
{
  while (**p == ' ' || **p == '\t')
    (*p)++;
}

/* Next "; name=value" parameter at *pp. Returns 1 (one parsed), 0 (end of
 * value) or -1 (malformed / too long). name is lowercased. */
static int next_param(const char **pp, char *name, size_t namesz, char *val, size_t valsz,
                      size_t *vlen)
{
  const char *p = *pp;
  size_t n = 0, v = 0;

  skip_ows(&p);
  if (*p == '\0')
    return 0;
  if (*p != ';')
    return -1;
  p++;
  skip_ows(&p);
  while (is_tchar((unsigned char)*p)) {
    if (n + 1 >= namesz)
      return -1;
    name[n++] = (char)tolower((unsigned char)*p++);
  }
  name[n] = '\0';
  if (n == 0 || *p != '=')
    return -1;
  p++;
  if (*p == '"') {
    p++;
    while (*p != '"') {
      if (*p == '\0')
        return -1;
      if (*p == '\\') {
        p++;
        if (*p == '\0')
          return -1;
      }
      if (v + 1 >= valsz)
        return -1;
      val[v++] = *p++;
    }
    p++;
  } else {
    while (is_tchar((unsigned char)*p)) {
      if (v + 1 >= valsz)
        return -1;
      val[v++] = *p++;
    }
    if (v == 0)
      return -1;
  }
  val[v] = '\0';
  *vlen = v;
  *pp = p;
  return 1;
}

/* Media type at p equals type (case-insensitive) and is followed by a
 * parameter, blank or end; *after points behind it. */
static int media_is(const char *p, const char *type, const char **after)
{
  size_t n = strlen(type);

  skip_ows(&p);
  if (strncasecmp(p, type, n) != 0)
    return 0;
  p += n;
  if (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t')
    return 0;
  *after = p;
  return 1;
}

int storage_mp_is_multipart(const char *ct)
{
  const char *after;

  return ct != NULL && media_is(ct, "multipart/form-data", &after);
}

static int get_boundary(const char *ct, char b[71], size_t *blen, char err[LC_ERR_LEN])
{
  char name[32], val[128];
  const char *p;
  size_t vlen = 0;
  int r, seen = 0;

  if (ct == NULL || !media_is(ct, "multipart/form-data", &p))
    return lc_err_set(err, LC_ERR_PARAM, "Content-Type must be multipart/form-data");
  while ((r = next_param(&p, name, sizeof(name), val, sizeof(val), &vlen)) == 1) {
    if (strcmp(name, "boundary") != 0 || seen)
      return lc_err_set(err, LC_ERR_PARAM, "multipart Content-Type: unexpected parameter");
    if (vlen < 1 || vlen > 70 || val[vlen - 1] == ' ')
      return lc_err_set(err, LC_ERR_PARAM, "multipart boundary must be 1..70 characters");
    for (size_t i = 0; i < vlen; i++) {
      if (!is_bchar((unsigned char)val[i]))
        return lc_err_set(err, LC_ERR_PARAM, "multipart boundary has an invalid character");
    }
    memcpy(b, val, vlen + 1);
    *blen = vlen;
    seen = 1;
  }
  if (r < 0)
    return lc_err_set(err, LC_ERR_PARAM, "multipart Content-Type: malformed parameters");
  if (!seen)
    return lc_err_set(err, LC_ERR_PARAM, "multipart Content-Type: missing boundary");
  return LC_OK;
}

static int parse_disposition(const char *v, storage_mp_part *out, char err[LC_ERR_LEN])
{
  char name[32], val[STORAGE_MP_MAX_LINE + 1];
  const char *p;
  size_t vlen = 0;
  int r, have_name = 0, have_fn = 0, have_fnx = 0;

  if (!media_is(v, "form-data", &p))
    return lc_err_set(err, LC_ERR_PARAM, "part Content-Disposition must be form-data");
  while ((r = next_param(&p, name, sizeof(name), val, sizeof(val), &vlen)) == 1) {
    if (strcmp(name, "name") == 0 && !have_name) {
      if (lc_strlcpy(out->field_name, val, sizeof(out->field_name)) != LC_OK)
        return lc_err_set(err, LC_ERR_PARAM, "part field name too long");
      have_name = 1;
    } else if (strcmp(name, "filename") == 0 && !have_fn) {
      have_fn = 1;
      if (!have_fnx) {
        if (vlen > STORAGE_MP_MAX_NAME)
          return lc_err_set(err, LC_ERR_PARAM, "file name too long");
        memcpy(out->filename, val, vlen + 1);
        out->filename_len = vlen;
      }
    } else if (strcmp(name, "filename*") == 0 && !have_fnx) {
      /* RFC 5987: UTF-8''pct-encoded (language tag must be empty or a token) */
      const char *q = val, *s;
      if (strncasecmp(q, "utf-8'", 6) != 0)
        return lc_err_set(err, LC_ERR_PARAM, "filename* must use the UTF-8 charset");
      s = strchr(q + 6, '\'');
      if (s == NULL)
        return lc_err_set(err, LC_ERR_PARAM, "filename* is malformed");
      s++;
      if (storage_name_pct_decode(s, strlen(s), out->filename, sizeof(out->filename),
                                  &out->filename_len) != LC_OK)
        return lc_err_set(err, LC_ERR_PARAM, "filename* is malformed or too long");
      have_fnx = 1;
    } else {
      return lc_err_set(err, LC_ERR_PARAM, "part Content-Disposition: unexpected parameter");
    }
  }
  if (r < 0)
    return lc_err_set(err, LC_ERR_PARAM, "part Content-Disposition: malformed parameters");
  if (!have_name)
    return lc_err_set(err, LC_ERR_PARAM, "part Content-Disposition: missing name");
  out->has_filename = have_fn || have_fnx;
  return LC_OK;
}

/* One header line (NUL-free, NUL-terminated). */
static int header_line(char *line, storage_mp_part *out, int *have_cd, int *have_ct,
                       char err[LC_ERR_LEN])
{
  char *colon = strchr(line, ':'), *v, *e;

  if (colon == NULL || colon == line)
    return lc_err_set(err, LC_ERR_PARAM, "malformed part header");
  for (char *c = line; c < colon; c++) {
    if (!is_tchar((unsigned char)*c))
      return lc_err_set(err, LC_ERR_PARAM, "malformed part header name");
  }
  *colon = '\0';
  v = colon + 1;
  while (*v == ' ' || *v == '\t')
    v++;
  e = v + strlen(v);
  while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
    *--e = '\0';
  if (strcasecmp(line, "Content-Disposition") == 0) {
    if (*have_cd)
      return lc_err_set(err, LC_ERR_PARAM, "duplicate part Content-Disposition");
    *have_cd = 1;
    return parse_disposition(v, out, err);
  }
  if (strcasecmp(line, "Content-Type") == 0) {
    if (*have_ct)
      return lc_err_set(err, LC_ERR_PARAM, "duplicate part Content-Type");
    *have_ct = 1;
    if (lc_strlcpy(out->content_type, v, sizeof(out->content_type)) != LC_OK)
      return lc_err_set(err, LC_ERR_PARAM, "part Content-Type too long");
    return LC_OK;
  }
  if (strcasecmp(line, "Content-Transfer-Encoding") == 0) {
    if (strcasecmp(v, "binary") != 0 && strcasecmp(v, "8bit") != 0 && strcasecmp(v, "7bit") != 0)
      return lc_err_set(err, LC_ERR_PARAM, "unsupported part Content-Transfer-Encoding");
  }
  return LC_OK; /* other headers are ignored */
}

int storage_mp_parse(const char *ct, const uint8_t *body, size_t len, storage_mp_part *out,
                     char err[LC_ERR_LEN])
{
  char b[71], line[STORAGE_MP_MAX_LINE + 1], delim[76];
  size_t blen = 0, pos, nh = 0;
  const uint8_t *end, *q;
  int rc, have_cd = 0, have_ct = 0;

  memset(out, 0, sizeof(*out));
  rc = get_boundary(ct, b, &blen, err);
  if (rc != LC_OK)
    return rc;
  if (body == NULL || len < blen + 4 || body[0] != '-' || body[1] != '-' ||
      memcmp(body + 2, b, blen) != 0)
    return lc_err_set(err, LC_ERR_PARAM, "multipart body must start with the boundary");
  pos = blen + 2;
  if (body[pos] == '-' && body[pos + 1] == '-')
    return lc_err_set(err, LC_ERR_PARAM, "multipart body has no part");
  if (body[pos] != '\r' || body[pos + 1] != '\n')
    return lc_err_set(err, LC_ERR_PARAM, "malformed multipart boundary line");
  pos += 2;

  /* headers */
  for (;;) {
    size_t room = len - pos, ll;
    const uint8_t *eol;
    if (room > STORAGE_MP_MAX_LINE + 2)
      room = STORAGE_MP_MAX_LINE + 2;
    eol = memmem(body + pos, room, "\r\n", 2);
    if (eol == NULL)
      return lc_err_set(err, LC_ERR_PARAM, "part header line too long or unterminated");
    ll = (size_t)(eol - (body + pos));
    if (ll == 0) {
      pos += 2;
      break;
    }
    if (++nh > STORAGE_MP_MAX_HEADERS)
      return lc_err_set(err, LC_ERR_PARAM, "too many part headers");
    if (ll > STORAGE_MP_MAX_LINE || memchr(body + pos, '\0', ll) != NULL)
      return lc_err_set(err, LC_ERR_PARAM, "malformed part header");
    memcpy(line, body + pos, ll);
    line[ll] = '\0';
    rc = header_line(line, out, &have_cd, &have_ct, err);
    if (rc != LC_OK)
      return rc;
    pos += ll + 2;
  }
  if (!have_cd)
    return lc_err_set(err, LC_ERR_PARAM, "part without Content-Disposition");

  /* data up to CRLF--boundary */
  delim[0] = '\r';
  delim[1] = '\n';
  delim[2] = '-';
  delim[3] = '-';
  memcpy(delim + 4, b, blen);
  end = memmem(body + pos, len - pos, delim, blen + 4);
  if (end == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "multipart part is not terminated by the boundary");
  out->data = body + pos;
  out->len = (size_t)(end - (body + pos));
  q = end + blen + 4;
  if ((size_t)(body + len - q) >= 2 && q[0] == '-' && q[1] == '-')
    return LC_OK; /* close delimiter; the epilogue is ignored */
  if ((size_t)(body + len - q) >= 2 && q[0] == '\r' && q[1] == '\n')
    return lc_err_set(err, LC_ERR_PARAM, "exactly one part (the file) is expected");
  memset(out, 0, sizeof(*out));
  return lc_err_set(err, LC_ERR_PARAM, "malformed multipart delimiter");
}

/* ---- incremental parser ------------------------------------------------------ */

enum { MPS_HEAD = 0, MPS_DATA, MPS_AFTER, MPS_DONE, MPS_FAILED };

int storage_mp_stream_init(storage_mp_stream *s, const char *ct, char err[LC_ERR_LEN])
{
  char b[71];
  size_t blen = 0;
  int rc;

  memset(s, 0, sizeof(*s));
  s->phase = MPS_FAILED;
  rc = get_boundary(ct, b, &blen, err);
  if (rc != LC_OK)
    return rc;
  if (lc_strlcpy(s->ct, ct, sizeof(s->ct)) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "multipart Content-Type too long");
  memcpy(s->delim, "\r\n--", 4);
  memcpy(s->delim + 4, b, blen);
  s->dlen = blen + 4;
  s->phase = MPS_HEAD;
  return LC_OK;
}

int storage_mp_stream_has_part(const storage_mp_stream *s)
{
  return s->phase == MPS_DATA || s->phase == MPS_AFTER || s->phase == MPS_DONE;
}

/* The headers block head[0..n) (ending in CRLF CRLF) checked by the
 * whole-body parser with an empty part and the closing delimiter added. */
static int head_check(storage_mp_stream *s, size_t n, char err[LC_ERR_LEN])
{
  uint8_t buf[sizeof(s->head) + 80];
  storage_mp_part part;
  int rc;

  memcpy(buf, s->head, n);
  memcpy(buf + n, s->delim, s->dlen);
  memcpy(buf + n + s->dlen, "--", 2);
  rc = storage_mp_parse(s->ct, buf, n + s->dlen + 2, &part, err);
  if (rc != LC_OK)
    return rc;
  s->part = part;
  s->part.data = NULL;
  s->part.len = 0;
  return LC_OK;
}

/* Error detail for an unfinished header block (the whole-body parser's). */
static int head_error(storage_mp_stream *s, char err[LC_ERR_LEN])
{
  storage_mp_part part;

  s->phase = MPS_FAILED;
  if (storage_mp_parse(s->ct, s->head, s->hlen, &part, err) == LC_OK)
    lc_err_set(err, LC_ERR_PARAM, "multipart part is not terminated by the boundary");
  return LC_ERR_PARAM;
}

static int feed_after(storage_mp_stream *s, const uint8_t *p, size_t n, char err[LC_ERR_LEN])
{
  while (n > 0 && s->phase == MPS_AFTER) {
    s->tail[s->ntail++] = *p++;
    n--;
    if (s->ntail < 2)
      continue;
    if (s->tail[0] == '-' && s->tail[1] == '-') {
      s->phase = MPS_DONE; /* the epilogue is ignored */
      return LC_OK;
    }
    s->phase = MPS_FAILED;
    if (s->tail[0] == '\r' && s->tail[1] == '\n')
      return lc_err_set(err, LC_ERR_PARAM, "exactly one part (the file) is expected");
    return lc_err_set(err, LC_ERR_PARAM, "malformed multipart delimiter");
  }
  return LC_OK;
}

static int feed_data(storage_mp_stream *s, const uint8_t *p, size_t n, storage_mp_sink sink,
                     void *ud, char err[LC_ERR_LEN])
{
  while (n > 0) {
    size_t take = n, len, keep;
    const uint8_t *hit;
    int rc;

    if (take > STORAGE_MP_SCRATCH)
      take = STORAGE_MP_SCRATCH;
    memcpy(s->scratch + s->nhold, p, take);
    len = s->nhold + take;
    p += take;
    n -= take;
    hit = memmem(s->scratch, len, s->delim, s->dlen);
    if (hit != NULL) {
      size_t off = (size_t)(hit - s->scratch), rest = len - off - s->dlen;
      s->nhold = 0;
      if (off > 0 && (rc = sink(ud, s->scratch, off)) != LC_OK) {
        s->phase = MPS_FAILED;
        return rc;
      }
      s->phase = MPS_AFTER;
      rc = feed_after(s, hit + s->dlen, rest, err);
      if (rc != LC_OK || s->phase != MPS_AFTER)
        return rc; /* done: the rest is epilogue */
      return feed_after(s, p, n, err);
    }
    keep = len < s->dlen - 1 ? len : s->dlen - 1;
    if (len - keep > 0 && (rc = sink(ud, s->scratch, len - keep)) != LC_OK) {
      s->phase = MPS_FAILED;
      return rc;
    }
    memmove(s->scratch, s->scratch + len - keep, keep);
    s->nhold = keep;
  }
  return LC_OK;
}

int storage_mp_stream_feed(storage_mp_stream *s, const uint8_t *p, size_t n,
                           storage_mp_sink sink, void *ud, char err[LC_ERR_LEN])
{
  size_t bl = s->dlen - 4;

  if (s->phase == MPS_FAILED)
    return lc_err_set(err, LC_ERR_PARAM, "malformed multipart body");
  if (s->phase == MPS_DONE)
    return LC_OK;
  if (s->phase == MPS_AFTER)
    return feed_after(s, p, n, err);
  if (s->phase == MPS_DATA)
    return feed_data(s, p, n, sink, ud, err);
  /* headers: collect up to the blank line */
  while (n > 0) {
    size_t from = s->hlen >= 3 ? s->hlen - 3 : 0, take = sizeof(s->head) - s->hlen;
    const uint8_t *eoh;

    if (take == 0)
      return head_error(s, err);
    if (take > n)
      take = n;
    memcpy(s->head + s->hlen, p, take);
    s->hlen += take;
    p += take;
    n -= take;
    if (s->hlen >= bl + 4 && s->head[0] == '-' && s->head[1] == '-' &&
        memcmp(s->head + 2, s->delim + 4, bl) == 0 && s->head[bl + 2] == '-' &&
        s->head[bl + 3] == '-') {
      s->phase = MPS_FAILED;
      return lc_err_set(err, LC_ERR_PARAM, "multipart body has no part");
    }
    eoh = memmem(s->head + from, s->hlen - from, "\r\n\r\n", 4);
    if (eoh != NULL) {
      size_t end = (size_t)(eoh - s->head) + 4, extra = s->hlen - end;
      int rc;
      if (end > STORAGE_MP_HEAD_MAX)
        return head_error(s, err);
      rc = head_check(s, end, err);
      if (rc != LC_OK) {
        s->phase = MPS_FAILED;
        return rc;
      }
      s->phase = MPS_DATA;
      /* bytes after the blank line, then the rest of this chunk */
      {
        uint8_t tmp[sizeof(s->head)];
        memcpy(tmp, s->head + end, extra);
        rc = feed_data(s, tmp, extra, sink, ud, err);
      }
      if (rc != LC_OK || s->phase != MPS_DATA)
        return rc != LC_OK ? rc : (s->phase == MPS_AFTER ? feed_after(s, p, n, err) : LC_OK);
      return feed_data(s, p, n, sink, ud, err);
    }
  }
  return LC_OK;
}

int storage_mp_stream_finish(storage_mp_stream *s, char err[LC_ERR_LEN])
{
  if (s->phase == MPS_DONE)
    return LC_OK;
  if (s->phase == MPS_HEAD)
    return head_error(s, err);
  if (s->phase == MPS_AFTER)
    return lc_err_set(err, LC_ERR_PARAM, "malformed multipart delimiter");
  if (s->phase == MPS_DATA)
    return lc_err_set(err, LC_ERR_PARAM, "multipart part is not terminated by the boundary");
  return lc_err_set(err, LC_ERR_PARAM, "malformed multipart body");
}
