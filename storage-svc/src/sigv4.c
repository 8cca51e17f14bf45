/* sigv4.c - AWS Signature Version 4 signer (see sigv4.h).
 *
 * Steps (AWS "Signature Calculations for the Authorization Header"):
 *   1. canonical request = METHOD \n encoded path \n sorted encoded query \n
 *      canonical headers (lowercase name:trimmed value \n, sorted) \n
 *      signed headers (;-joined) \n payload hash
 *   2. string to sign = "AWS4-HMAC-SHA256" \n amz date \n scope \n hex(sha256(creq))
 *   3. signing key = HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request"
 *   4. signature = hex(HMAC(signing key, string to sign)) */
#include "sigv4.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/util.h"

#define CREQ_MAX 8192
#define FIELD_MAX 1024

/* Bounded text buffer; overflow sets a sticky flag instead of truncating silently. */
typedef struct {
  char *p;
  size_t cap, len;
  int overflow;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
  if (b->overflow || b->len + n + 1 > b->cap) {
    b->overflow = 1;
    return;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
  sb_put(b, s, strlen(s));
}

static int is_unreserved(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

int storage_sigv4_uri_encode(const char *in, int encode_slash, char *out, size_t outsz)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;

  if (in == NULL || out == NULL || outsz == 0)
    return LC_ERR_PARAM;
  for (const unsigned char *s = (const unsigned char *)in; *s != '\0'; s++) {
    if (is_unreserved(*s) || (*s == '/' && !encode_slash)) {
      if (o + 2 > outsz)
        goto toolong;
      out[o++] = (char)*s;
      continue;
    }
    if (o + 4 > outsz)
      goto toolong;
    out[o++] = '%';
    out[o++] = hex[*s >> 4];
    out[o++] = hex[*s & 0x0f];
  }
  out[o] = '\0';
  return LC_OK;
toolong:
  out[0] = '\0';
  return LC_ERR_TOO_LARGE;
}

/* One header or query pair after canonicalisation. */
typedef struct {
  char name[128];
  char value[FIELD_MAX];
} canon_kv;

static int kv_cmp(const void *a, const void *b)
{
  const canon_kv *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c != 0 ? c : strcmp(x->value, y->value);
}

/* Lowercases name; trims value and collapses inner runs of spaces. */
static int canon_header(const char *name, const char *value, canon_kv *out)
{
  size_t n = name != NULL ? strlen(name) : 0, o = 0;
  int in_space = 0;

  if (value == NULL || n == 0 || n >= sizeof(out->name))
    return LC_ERR_PARAM;
  for (size_t i = 0; i <= n; i++)
    out->name[i] = (char)tolower((unsigned char)name[i]);
  while (*value == ' ' || *value == '\t')
    value++;
  for (const char *s = value; *s != '\0'; s++) {
    int sp = (*s == ' ' || *s == '\t');
    if (sp && in_space)
      continue;
    in_space = sp;
    if (o + 2 > sizeof(out->value))
      return LC_ERR_TOO_LARGE;
    out->value[o++] = sp ? ' ' : *s;
  }
  while (o > 0 && out->value[o - 1] == ' ')
    o--;
  out->value[o] = '\0';
  return LC_OK;
}

static int reserved_header(const char *lname)
{
  return strcmp(lname, "host") == 0 || strcmp(lname, "x-amz-date") == 0 ||
         strcmp(lname, "x-amz-content-sha256") == 0 || strcmp(lname, "authorization") == 0;
}

static void hmac_str(const uint8_t *key, size_t keylen, const char *msg, uint8_t out[32])
{
  lc_hmac_sha256(key, keylen, msg, strlen(msg), out);
}

/* Fills the sorted canonical header list (extras + host + x-amz-*). */
static int build_headers(const storage_sigv4_req *req, const char *amz_date, canon_kv *h,
                         size_t *nh, char err[LC_ERR_LEN])
{
  size_t n = 0;
  int rc;

  for (size_t i = 0; i < req->nheaders; i++) {
    rc = canon_header(req->headers[i].name, req->headers[i].value, &h[n]);
    if (rc != LC_OK)
      return lc_err_set(err, rc, "sigv4: bad header %zu", i);
    if (reserved_header(h[n].name))
      return lc_err_set(err, LC_ERR_PARAM, "sigv4: header %s is set by the signer", h[n].name);
    n++;
  }
  if (canon_header("host", req->host, &h[n++]) != LC_OK ||
      canon_header("x-amz-content-sha256", req->payload_sha256, &h[n++]) != LC_OK ||
      canon_header("x-amz-date", amz_date, &h[n++]) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "sigv4: bad host or payload hash");
  qsort(h, n, sizeof(*h), kv_cmp);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(h[i - 1].name, h[i].name) == 0)
      return lc_err_set(err, LC_ERR_PARAM, "sigv4: duplicate header %s", h[i].name);
  }
  *nh = n;
  return LC_OK;
}

static int build_query(const storage_sigv4_req *req, canon_kv *q, char err[LC_ERR_LEN])
{
  for (size_t i = 0; i < req->nquery; i++) {
    const char *name = req->query[i].name, *value = req->query[i].value;
    if (name == NULL || value == NULL)
      return lc_err_set(err, LC_ERR_PARAM, "sigv4: NULL query pair");
    if (storage_sigv4_uri_encode(name, 1, q[i].name, sizeof(q[i].name)) != LC_OK ||
        storage_sigv4_uri_encode(value, 1, q[i].value, sizeof(q[i].value)) != LC_OK)
      return lc_err_set(err, LC_ERR_TOO_LARGE, "sigv4: query pair too long");
  }
  qsort(q, req->nquery, sizeof(*q), kv_cmp);
  return LC_OK;
}

int storage_sigv4_sign(const storage_sigv4_req *req, storage_sigv4_out *out, char *creq,
                       size_t creqsz, char err[LC_ERR_LEN])
{
  canon_kv hdrs[STORAGE_SIGV4_MAX_HDRS + 3];
  canon_kv qry[STORAGE_SIGV4_MAX_QUERY];
  char *cbuf = NULL, *path = NULL;
  char scope[160], sts[512], datestamp[9], hexh[65];
  uint8_t digest[32], k1[32], k2[32], secret_key[FIELD_MAX + 5];
  size_t nh = 0, sklen;
  struct tm tmv;
  sbuf b;
  int rc = LC_OK, n;

  if (req == NULL || out == NULL || req->method == NULL || req->path == NULL ||
      req->host == NULL || req->payload_sha256 == NULL || req->access_key == NULL ||
      req->secret_key == NULL || req->region == NULL || req->service == NULL ||
      req->path[0] != '/')
    return lc_err_set(err, LC_ERR_PARAM, "sigv4: missing request field");
  if (req->nheaders > STORAGE_SIGV4_MAX_HDRS || req->nquery > STORAGE_SIGV4_MAX_QUERY ||
      (req->nheaders > 0 && req->headers == NULL) || (req->nquery > 0 && req->query == NULL))
    return lc_err_set(err, LC_ERR_PARAM, "sigv4: too many headers or query pairs");
  if (strlen(req->secret_key) > FIELD_MAX)
    return lc_err_set(err, LC_ERR_TOO_LARGE, "sigv4: secret key too long");
  memset(out, 0, sizeof(*out));
  if (gmtime_r(&req->now, &tmv) == NULL ||
      strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tmv) != 16)
    return lc_err_set(err, LC_ERR_PARAM, "sigv4: bad time");
  memcpy(datestamp, out->amz_date, 8);
  datestamp[8] = '\0';

  rc = build_headers(req, out->amz_date, hdrs, &nh, err);
  if (rc != LC_OK)
    goto out;
  rc = build_query(req, qry, err);
  if (rc != LC_OK)
    goto out;

  path = lc_xmalloc(CREQ_MAX);
  rc = storage_sigv4_uri_encode(req->path, 0, path, CREQ_MAX);
  if (rc != LC_OK) {
    lc_err_set(err, rc, "sigv4: path too long");
    goto out;
  }

  /* 1. canonical request */
  cbuf = lc_xmalloc(CREQ_MAX);
  b = (sbuf){cbuf, CREQ_MAX, 0, 0};
  cbuf[0] = '\0';
  sb_str(&b, req->method);
  sb_str(&b, "\n");
  sb_str(&b, path);
  sb_str(&b, "\n");
  for (size_t i = 0; i < req->nquery; i++) {
    if (i > 0)
      sb_str(&b, "&");
    sb_str(&b, qry[i].name);
    sb_str(&b, "=");
    sb_str(&b, qry[i].value);
  }
  sb_str(&b, "\n");
  for (size_t i = 0; i < nh; i++) {
    sb_str(&b, hdrs[i].name);
    sb_str(&b, ":");
    sb_str(&b, hdrs[i].value);
    sb_str(&b, "\n");
  }
  sb_str(&b, "\n");
  {
    sbuf sh = {out->signed_headers, sizeof(out->signed_headers), 0, 0};
    for (size_t i = 0; i < nh; i++) {
      if (i > 0)
        sb_str(&sh, ";");
      sb_str(&sh, hdrs[i].name);
    }
    if (sh.overflow) {
      rc = lc_err_set(err, LC_ERR_TOO_LARGE, "sigv4: signed headers too long");
      goto out;
    }
  }
  sb_str(&b, out->signed_headers);
  sb_str(&b, "\n");
  sb_str(&b, req->payload_sha256);
  if (b.overflow) {
    rc = lc_err_set(err, LC_ERR_TOO_LARGE, "sigv4: canonical request too long");
    goto out;
  }
  if (creq != NULL && creqsz > 0 && lc_strlcpy(creq, cbuf, creqsz) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_TOO_LARGE, "sigv4: canonical request buffer too small");
    goto out;
  }
  lc_sha256(cbuf, b.len, digest);
  lc_hex_encode(digest, 32, out->creq_sha256);

  /* 2. string to sign */
  n = snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", datestamp, req->region,
               req->service);
  if (n < 0 || (size_t)n >= sizeof(scope)) {
    rc = lc_err_set(err, LC_ERR_TOO_LARGE, "sigv4: scope too long");
    goto out;
  }
  n = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", out->amz_date, scope,
               out->creq_sha256);
  if (n < 0 || (size_t)n >= sizeof(sts)) {
    rc = lc_err_set(err, LC_ERR_TOO_LARGE, "sigv4: string to sign too long");
    goto out;
  }

  /* 3. signing key */
  sklen = (size_t)snprintf((char *)secret_key, sizeof(secret_key), "AWS4%s", req->secret_key);
  hmac_str(secret_key, sklen, datestamp, k1);
  hmac_str(k1, 32, req->region, k2);
  hmac_str(k2, 32, req->service, k1);
  hmac_str(k1, 32, "aws4_request", k2);

  /* 4. signature + header */
  hmac_str(k2, 32, sts, digest);
  lc_hex_encode(digest, 32, hexh);
  memcpy(out->signature, hexh, sizeof(hexh));
  n = snprintf(out->authorization, sizeof(out->authorization),
               "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
               req->access_key, scope, out->signed_headers, out->signature);
  if (n < 0 || (size_t)n >= sizeof(out->authorization)) {
    rc = lc_err_set(err, LC_ERR_TOO_LARGE, "sigv4: authorization header too long");
    goto out;
  }
  rc = LC_OK;
out:
  /* wipe key material from the stack */
  explicit_bzero(secret_key, sizeof(secret_key));
  explicit_bzero(k1, sizeof(k1));
  explicit_bzero(k2, sizeof(k2));
  free(cbuf);
  free(path);
  return rc;
}
