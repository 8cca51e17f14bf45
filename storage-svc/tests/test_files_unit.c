/* test_files_unit.c - storage-svc unit tests for the upload path (no
 * services needed): multipart parser with malformed inputs, content type
 * sniffing, file name sanitising and Content-Disposition, CSV escaping, the
 * report builders (csv/files/chain data), S3 URL composition and SigV4 for
 * path-style / virtual-hosted requests and keys needing encoding.
 *
 * SigV4 expected values were computed independently with a Python
 * implementation of AWS's algorithm (hashlib/hmac/urllib.parse.quote; the
 * script is reproduced in docs/storage.md) and are hard-coded here. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "csvw.h"
#include "lc/util.h"
#include "multipart.h"
#include "names.h"
#include "reports.h"
#include "s3.h"
#include "sigv4.h"
#include "sniff.h"

/* ---- multipart ------------------------------------------------------------ */

#define CT "multipart/form-data; boundary=XyZ"

/* The incremental parser's collected output. */
typedef struct {
  uint8_t buf[4096];
  size_t len;
} mp_sink_buf;

static int mp_collect(void *ud, const uint8_t *p, size_t n)
{
  mp_sink_buf *b = ud;
  ck_assert_uint_le(b->len + n, sizeof(b->buf));
  memcpy(b->buf + b->len, p, n);
  b->len += n;
  return LC_OK;
}

/* Feeds body to the incremental parser in pieces of split bytes (0 = sizes
 * 1, 2, 3, ... cycling to 7) and returns its status; the part's data lands in out. */
static int mp_stream(const char *ct, const char *body, size_t len, size_t split,
                     storage_mp_stream *s, mp_sink_buf *out)
{
  char err[LC_ERR_LEN];
  size_t off = 0, k = 0;
  int rc;

  out->len = 0;
  rc = storage_mp_stream_init(s, ct, err);
  if (rc != LC_OK)
    return rc;
  while (off < len) {
    size_t n = split != 0 ? split : 1 + (k++ % 7);
    if (n > len - off)
      n = len - off;
    rc = storage_mp_stream_feed(s, (const uint8_t *)body + off, n, mp_collect, out, err);
    if (rc != LC_OK)
      return rc;
    off += n;
  }
  return storage_mp_stream_finish(s, err);
}

/* The whole-body parse; every call also checks that the incremental parser
 * agrees (status, data, name, field, type) for many ways to split the body. */
static int mp(const char *ct, const char *body, size_t len, storage_mp_part *p)
{
  static const size_t splits[] = {1, 2, 3, 4, 7, 16, 64, 1000, 0};
  char err[LC_ERR_LEN];
  int rc = storage_mp_parse(ct, (const uint8_t *)body, len, p, err);
  storage_mp_stream *s = malloc(sizeof(*s));
  mp_sink_buf *out = malloc(sizeof(*out));

  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_nonnull(out);
  for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
    int src = mp_stream(ct, body, len, splits[i], s, out);
    ck_assert_msg((src == LC_OK) == (rc == LC_OK), "split %zu: stream %d, whole %d",
                  splits[i], src, rc);
    if (rc == LC_OK) {
      ck_assert_uint_eq(out->len, p->len);
      ck_assert_int_eq(memcmp(out->buf, p->data, p->len), 0);
      ck_assert_str_eq(s->part.field_name, p->field_name);
      ck_assert_str_eq(s->part.content_type, p->content_type);
      ck_assert_uint_eq(s->part.filename_len, p->filename_len);
      ck_assert_int_eq(memcmp(s->part.filename, p->filename, p->filename_len), 0);
      ck_assert_int_eq(s->part.has_filename, p->has_filename);
    }
  }
  free(s);
  free(out);
  return rc;
}

#define MP(ct, lit, p) mp((ct), (lit), sizeof(lit) - 1, (p))

START_TEST(mp_valid)
{
  static const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                             "filename=\"a b.txt\"\r\nContent-Type: text/plain\r\n\r\n"
                             "hello\r\n--Xy not the end\r\n--XyZ--\r\n";
  storage_mp_part p;

  ck_assert_int_eq(MP(CT, body, &p), LC_OK);
  ck_assert_uint_eq(p.len, strlen("hello\r\n--Xy not the end"));
  ck_assert_int_eq(memcmp(p.data, "hello\r\n--Xy not the end", p.len), 0);
  ck_assert_str_eq(p.filename, "a b.txt");
  ck_assert_int_eq(p.has_filename, 1);
  ck_assert_str_eq(p.field_name, "file");
  ck_assert_str_eq(p.content_type, "text/plain");
  /* no trailing CRLF after the close delimiter, quoted boundary, epilogue */
  ck_assert_int_eq(MP("Multipart/Form-Data; boundary=\"a'b(c)+_,-./:=?\"",
                      "--a'b(c)+_,-./:=?\r\ncontent-disposition: form-data; name=f\r\n\r\n"
                      "x\r\n--a'b(c)+_,-./:=?--epilogue", &p), LC_OK);
  ck_assert_uint_eq(p.len, 1);
  ck_assert_int_eq(p.has_filename, 0);
  /* filename* (RFC 5987) wins over filename */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                          "filename=\"fallback\"; filename*=UTF-8''%C3%BC%20x.txt\r\n\r\n"
                          "d\r\n--XyZ--", &p), LC_OK);
  ck_assert_str_eq(p.filename, "\xc3\xbc x.txt");
  /* an empty part is well-formed (the upload flow refuses empty files) */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=file\r\n\r\n"
                          "\r\n--XyZ--", &p), LC_OK);
  ck_assert_uint_eq(p.len, 0);
  /* escaped quote and a NUL byte in the data */
  {
    static const char b2[] = "--XyZ\r\nContent-Disposition: form-data; name=file; "
                             "filename=\"q\\\"x\"\r\n\r\na\0b\r\n--XyZ--";
    ck_assert_int_eq(MP(CT, b2, &p), LC_OK);
    ck_assert_str_eq(p.filename, "q\"x");
    ck_assert_uint_eq(p.len, 3);
  }
}
END_TEST

START_TEST(mp_malformed)
{
  storage_mp_part p;
  char big[3000];

  /* content type */
  ck_assert_int_eq(MP("multipart/form-data", "--XyZ--", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP("multipart/mixed; boundary=XyZ", "--XyZ--", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP("multipart/form-data; boundary=", "--XyZ--", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP("multipart/form-data; boundary=\"a\x01\"", "--XyZ--", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP("multipart/form-data; boundary=XyZ; boundary=abc", "--XyZ--", &p),
                   LC_ERR_PARAM);
  ck_assert_int_eq(MP("multipart/form-data; boundary=XyZ; charset=x", "--XyZ--", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP("multipart/form-data; boundary=\"unterminated", "--XyZ--", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP(NULL, "--XyZ--", &p), LC_ERR_PARAM);
  memset(big, 'b', 71);
  memcpy(big, "multipart/form-data; boundary=", 30);
  memset(big + 30, 'b', 71);
  big[101] = '\0';
  ck_assert_int_eq(MP(big, "--XyZ--", &p), LC_ERR_PARAM);
  /* framing */
  ck_assert_int_eq(MP(CT, "", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP(CT, "--XyZ--\r\n", &p), LC_ERR_PARAM);                    /* no part */
  ck_assert_int_eq(MP(CT, "preamble\r\n--XyZ\r\n", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP(CT, "--XyZx\r\n", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\nabc", &p),
                   LC_ERR_PARAM);                                              /* unterminated */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f", &p),
                   LC_ERR_PARAM);                                              /* headers cut */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\nabc\r\n--XyZ",
                      &p), LC_ERR_PARAM);                                      /* no close */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\nabc\r\n--XyZjunk",
                      &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--XyZ\r\n"
                          "Content-Disposition: form-data; name=b\r\n\r\n2\r\n--XyZ--", &p),
                   LC_ERR_PARAM);                                              /* two parts */
  /* headers */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", &p),
                   LC_ERR_PARAM);                                              /* no CD */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: attachment; name=f\r\n\r\nx\r\n--XyZ--",
                      &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--", &p),
                   LC_ERR_PARAM);                                              /* no name */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f; evil=1\r\n\r\nx\r\n--XyZ--",
                      &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f\r\n"
                          "Content-Disposition: form-data; name=g\r\n\r\nx\r\n--XyZ--", &p),
                   LC_ERR_PARAM);                                              /* duplicate CD */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\neA==\r\n--XyZ--", &p),
                   LC_ERR_PARAM);
  ck_assert_int_eq(MP(CT, "--XyZ\r\nno colon here\r\n\r\nx\r\n--XyZ--", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f; filename*=latin1''x\r\n"
                          "\r\nx\r\n--XyZ--", &p), LC_ERR_PARAM);
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f; filename*=UTF-8''%ZZ\r\n"
                          "\r\nx\r\n--XyZ--", &p), LC_ERR_PARAM);
  {
    static const char nul[] = "--XyZ\r\nContent-Disposition: form-data; name=f\0x\r\n\r\nx\r\n--XyZ--";
    ck_assert_int_eq(MP(CT, nul, &p), LC_ERR_PARAM);
  }
  /* too many headers */
  ck_assert_int_eq(MP(CT, "--XyZ\r\nContent-Disposition: form-data; name=f\r\nA: 1\r\nB: 1\r\n"
                          "C: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\nx\r\n--XyZ--", &p),
                   LC_ERR_PARAM);
  /* a header line longer than the bound */
  {
    size_t o;
    memcpy(big, "--XyZ\r\nX-Long: ", 15);
    o = 15;
    memset(big + o, 'a', 1100);
    o += 1100;
    memcpy(big + o, "\r\n\r\nx\r\n--XyZ--", 14);
    o += 14;
    ck_assert_int_eq(mp(CT, big, o, &p), LC_ERR_PARAM);
  }
}
END_TEST

/* ---- sniffing ------------------------------------------------------------------- */

/* storage_sniff; every call also checks that the incremental sniffer
 * agrees, fed in pieces of 1..5 bytes and in one piece. */
static const char *sn(const char *lit, size_t n)
{
  const char *whole = storage_sniff((const uint8_t *)lit, n);

  for (size_t split = 1; split <= 6; split++) {
    storage_sniff_stream st;
    const char *got;
    storage_sniff_stream_init(&st);
    for (size_t off = 0; off < n; off += split)
      storage_sniff_stream_feed(&st, (const uint8_t *)lit + off, n - off < split ? n - off : split);
    if (split == 6) {
      storage_sniff_stream_init(&st);
      storage_sniff_stream_feed(&st, (const uint8_t *)lit, n);
    }
    got = storage_sniff_stream_type(&st);
    ck_assert_msg((got == NULL && whole == NULL) ||
                  (got != NULL && whole != NULL && strcmp(got, whole) == 0),
                  "split %zu: stream %s, whole %s", split, got ? got : "-", whole ? whole : "-");
  }
  return whole;
}
#define SN(lit) sn((lit), sizeof(lit) - 1)

static int decide(const char *lit, size_t n, const char *declared, char out[STORAGE_CT_MAX])
{
  char err[LC_ERR_LEN];
  return storage_sniff_decide((const uint8_t *)lit, n, declared, out, err);
}
#define DECIDE(lit, d, out) decide((lit), sizeof(lit) - 1, (d), (out))

START_TEST(sniff_types)
{
  char out[STORAGE_CT_MAX];

  ck_assert_str_eq(SN("\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
  ck_assert_str_eq(SN("\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
  ck_assert_str_eq(SN("GIF89a\x01\0"), "image/gif");
  ck_assert_str_eq(SN("GIF87a"), "image/gif");
  ck_assert_str_eq(SN("%PDF-1.7\n"), "application/pdf");
  ck_assert_str_eq(SN("PK\x03\x04\x14\0"), "application/zip");
  ck_assert_str_eq(SN("PK\x05\x06\0\0"), "application/zip");
  ck_assert_str_eq(SN("hello, world\r\n\tcaf\xc3\xa9"), "text/plain");
  ck_assert_str_eq(SN("\xef\xbb\xbf" "BOM text"), "text/plain");
  ck_assert_str_eq(SN("  {\"a\": [1, 2]}\n"), "application/json");
  ck_assert_str_eq(SN("[1,2]"), "application/json");
  ck_assert_str_eq(SN("a,b\n1,2\n"), "text/plain");
  ck_assert_ptr_null(SN("\x7f" "ELF\x02\x01"));           /* executable */
  ck_assert_ptr_null(SN("text with a NUL\0byte"));
  ck_assert_ptr_null(SN("bad utf-8 \xc3\x28"));
  ck_assert_ptr_null(SN("overlong \xc0\xaf"));
  ck_assert_ptr_null(SN("surrogate \xed\xa0\x80"));
  ck_assert_ptr_null(SN("escape \x1b[31m"));
  ck_assert_ptr_null(SN(""));
  ck_assert_ptr_null(SN("\x89PNG"));                       /* truncated magic, binary */

  /* decisions */
  ck_assert_int_eq(DECIDE("%PDF-1.4", NULL, out), LC_OK);
  ck_assert_str_eq(out, "application/pdf");
  ck_assert_int_eq(DECIDE("%PDF-1.4", "application/octet-stream", out), LC_OK);
  ck_assert_str_eq(out, "application/pdf");
  ck_assert_int_eq(DECIDE("%PDF-1.4", "application/pdf", out), LC_OK);
  ck_assert_int_eq(DECIDE("%PDF-1.4", "image/png", out), LC_ERR_MEDIA);   /* lie */
  ck_assert_int_eq(DECIDE("GIF89a", "image/jpeg", out), LC_ERR_MEDIA);
  ck_assert_int_eq(DECIDE("\xff\xd8\xff", "IMAGE/JPG", out), LC_OK);
  ck_assert_str_eq(out, "image/jpeg");
  ck_assert_int_eq(DECIDE("a,b\r\n1,2\r\n", "text/csv", out), LC_OK);
  ck_assert_str_eq(out, "text/csv");
  ck_assert_int_eq(DECIDE("a,b\r\n", "text/csv; charset=UTF-8", out), LC_OK);
  ck_assert_int_eq(DECIDE("a,b\r\n", "text/csv; charset=latin1", out), LC_ERR_MEDIA);
  ck_assert_int_eq(DECIDE("plain", "application/json", out), LC_ERR_MEDIA);
  ck_assert_int_eq(DECIDE("{\"a\":1}", "application/json", out), LC_OK);
  ck_assert_int_eq(DECIDE("{\"a\":1}", "text/plain", out), LC_OK);
  ck_assert_str_eq(out, "text/plain");
  ck_assert_int_eq(DECIDE("hello", NULL, out), LC_OK);
  ck_assert_str_eq(out, "text/plain");
  ck_assert_int_eq(DECIDE("hello", "text/html", out), LC_ERR_MEDIA);      /* not allowed */
  ck_assert_int_eq(DECIDE("<svg/>", "image/svg+xml", out), LC_ERR_MEDIA);
  ck_assert_int_eq(DECIDE("\x89PNG\r\n\x1a\n", "text/plain", out), LC_ERR_MEDIA);
  ck_assert_int_eq(DECIDE("\x7f" "ELF", "application/octet-stream", out), LC_ERR_MEDIA);
  ck_assert_int_eq(DECIDE("PK\x03\x04", "application/zip; x=1", out), LC_ERR_MEDIA);
}
END_TEST

/* A big part streamed in 1 KiB pieces: the data comes out whole while
 * the parser holds only a bounded tail; a sink error stops the parse. */
typedef struct {
  size_t total, limit;
} count_ud;

static int count_sink(void *ud, const uint8_t *p, size_t n)
{
  count_ud *c = ud;
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(p[i], (uint8_t)('a' + (c->total + i) % 26));
  c->total += n;
  return c->total > c->limit ? LC_ERR_TOO_LARGE : LC_OK;
}

START_TEST(mp_stream_large)
{
  static const char head[] = "--XyZ\r\nContent-Disposition: form-data; name=file; filename=big\r\n\r\n";
  static const char tail[] = "\r\n--XyZ--\r\n";
  size_t n = 200000, len = strlen(head) + n + strlen(tail);
  char *body = malloc(len), err[LC_ERR_LEN];
  storage_mp_stream *s = malloc(sizeof(*s));
  count_ud c = {0, 300000};
  int rc = LC_OK;

  memcpy(body, head, strlen(head));
  for (size_t i = 0; i < n; i++)
    body[strlen(head) + i] = (char)('a' + i % 26);
  memcpy(body + strlen(head) + n, tail, strlen(tail));
  ck_assert_int_eq(storage_mp_stream_init(s, CT, err), LC_OK);
  for (size_t off = 0; off < len; off += 1024)
    ck_assert_int_eq(storage_mp_stream_feed(s, (const uint8_t *)body + off,
                                            len - off < 1024 ? len - off : 1024, count_sink,
                                            &c, err), LC_OK);
  ck_assert_int_eq(storage_mp_stream_finish(s, err), LC_OK);
  ck_assert_uint_eq(c.total, n);
  /* the sink refuses past its limit: its status comes back, the parse stops */
  c.total = 0;
  c.limit = 100000;
  ck_assert_int_eq(storage_mp_stream_init(s, CT, err), LC_OK);
  for (size_t off = 0; off < len && rc == LC_OK; off += 4096)
    rc = storage_mp_stream_feed(s, (const uint8_t *)body + off,
                                len - off < 4096 ? len - off : 4096, count_sink, &c, err);
  ck_assert_int_eq(rc, LC_ERR_TOO_LARGE);
  ck_assert_uint_le(c.total, 100000 + 4096 + 80);
  ck_assert_int_ne(storage_mp_stream_feed(s, (const uint8_t *)"x", 1, count_sink, &c, err), LC_OK);
  free(body);
  free(s);
}
END_TEST

/* ---- names ----------------------------------------------------------------------- */

static void san(const char *in, size_t n, char out[STORAGE_NAME_BUF])
{
  storage_name_sanitize(in, n, "file", out);
}
#define SAN(lit, out) san((lit), sizeof(lit) - 1, (out))

START_TEST(names_sanitize)
{
  char out[STORAGE_NAME_BUF], dec[64], big[1200];
  size_t n = 0;

  SAN("report.pdf", out);
  ck_assert_str_eq(out, "report.pdf");
  SAN("../../x", out);
  ck_assert_str_eq(out, "x");
  SAN("..\\..\\windows\\win.ini", out);
  ck_assert_str_eq(out, "win.ini");
  SAN("/etc/passwd", out);
  ck_assert_str_eq(out, "passwd");
  SAN("..", out);
  ck_assert_str_eq(out, "file");
  SAN("", out);
  ck_assert_str_eq(out, "file");
  SAN("dir/", out);
  ck_assert_str_eq(out, "file");
  SAN("a\0b.txt", out);
  ck_assert_str_eq(out, "ab.txt");
  SAN("evil\r\nSet-Cookie: x=1.txt", out);
  ck_assert_str_eq(out, "evilSet-Cookie: x=1.txt");
  SAN("  .hidden. ", out);
  ck_assert_str_eq(out, "hidden");
  SAN("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.txt", out);            /* unicode kept */
  ck_assert_str_eq(out, "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.txt");
  SAN("bad\xff\xfe.txt", out);                                       /* invalid UTF-8 */
  ck_assert_str_eq(out, "bad__.txt");
  SAN("abc\xe2\x80\xaetxt.exe", out);                               /* RLO removed */
  ck_assert_str_eq(out, "abctxt.exe");
  SAN("c1\xc2\x85x", out);                                           /* C1 NEL removed */
  ck_assert_str_eq(out, "c1x");
  /* %2F decodes to '/', which then only cuts the path */
  ck_assert_int_eq(storage_name_pct_decode("..%2F..%2Fetc%2Fx", 17, dec, sizeof(dec), &n), LC_OK);
  san(dec, n, out);
  ck_assert_str_eq(out, "x");
  ck_assert_int_eq(storage_name_pct_decode("a%00b", 5, dec, sizeof(dec), &n), LC_OK);
  ck_assert_uint_eq(n, 3);
  san(dec, n, out);
  ck_assert_str_eq(out, "ab");
  ck_assert_int_eq(storage_name_pct_decode("a%0D%0Ab", 8, dec, sizeof(dec), &n), LC_OK);
  san(dec, n, out);
  ck_assert_str_eq(out, "ab");
  ck_assert_int_eq(storage_name_pct_decode("a+b%2B", 6, dec, sizeof(dec), &n), LC_OK);
  ck_assert_str_eq(dec, "a+b+");
  ck_assert_int_eq(storage_name_pct_decode("bad%2", 5, dec, sizeof(dec), &n), LC_ERR_PARAM);
  ck_assert_int_eq(storage_name_pct_decode("bad%zz", 6, dec, sizeof(dec), &n), LC_ERR_PARAM);
  ck_assert_int_eq(storage_name_pct_decode("abcdef", 6, dec, 4, &n), LC_ERR_TOO_LARGE);
  /* very long: cut to 255 bytes at a character boundary (3-byte chars) */
  for (size_t i = 0; i < 300; i++)
    memcpy(big + 3 * i, "\xe6\x97\xa5", 3);
  san(big, 900, out);
  ck_assert_uint_eq(strlen(out), 255);
  ck_assert_str_eq(out + 252, "\xe6\x97\xa5");
  memset(big, 'a', 1000);
  san(big, 1000, out);
  ck_assert_uint_eq(strlen(out), STORAGE_NAME_MAX);
}
END_TEST

START_TEST(names_disposition)
{
  char cd[STORAGE_CD_MAX], small[40];

  ck_assert_int_eq(storage_content_disposition("a b.txt", cd, sizeof(cd)), LC_OK);
  ck_assert_str_eq(cd, "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt");
  ck_assert_int_eq(storage_content_disposition("caf\xc3\xa9 \"x\";%.pdf", cd, sizeof(cd)), LC_OK);
  ck_assert_str_eq(cd, "attachment; filename=\"caf_ _x___.pdf\"; "
                       "filename*=UTF-8''caf%C3%A9%20%22x%22%3B%25.pdf");
  ck_assert_ptr_null(strpbrk(cd, "\r\n"));
  ck_assert_int_eq(storage_content_disposition("\xe6\x97\xa5.txt", cd, sizeof(cd)), LC_OK);
  ck_assert_str_eq(cd, "attachment; filename=\"_.txt\"; filename*=UTF-8''%E6%97%A5.txt");
  ck_assert_int_eq(storage_content_disposition("long-name.txt", small, sizeof(small)),
                   LC_ERR_TOO_LARGE);
}
END_TEST

/* ---- CSV ------------------------------------------------------------------------- */

START_TEST(csv_escaping)
{
  storage_csv w;
  char *out = NULL;
  size_t len = 0;

  storage_csv_init(&w, 4096);
  storage_csv_text(&w, "plain");
  storage_csv_text(&w, "a,b");
  storage_csv_text(&w, "say \"hi\"");
  storage_csv_text(&w, "two\nlines");
  storage_csv_text(&w, NULL);
  storage_csv_int(&w, -10);
  storage_csv_end_row(&w);
  storage_csv_text(&w, "=HYPERLINK(\"http://x\")");
  storage_csv_text(&w, "+1");
  storage_csv_text(&w, "-2+3");
  storage_csv_text(&w, "@SUM(A1)");
  storage_csv_text(&w, "\tx");
  storage_csv_text(&w, "=1,2");
  storage_csv_text(&w, " pad ");
  storage_csv_end_row(&w);
  ck_assert_int_eq(storage_csv_take(&w, &out, &len), LC_OK);
  ck_assert_str_eq(out, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",,-10\r\n"
                        "\"'=HYPERLINK(\"\"http://x\"\")\",'+1,'-2+3,'@SUM(A1),'\tx,"
                        "\"'=1,2\",\" pad \"\r\n");
  ck_assert_uint_eq(len, strlen(out));
  free(out);
  storage_csv_free(&w);

  /* the cap is an error, never a silent truncation */
  storage_csv_init(&w, 8);
  storage_csv_text(&w, "0123456789");
  ck_assert_int_eq(storage_csv_take(&w, &out, &len), LC_ERR_TOO_LARGE);
  ck_assert_ptr_null(out);
  storage_csv_free(&w);
}
END_TEST

/* ---- report builders --------------------------------------------------------------- */

START_TEST(report_csv_and_chain)
{
  const char *ledger =
      "[{\"id\":\"e2\",\"ts\":\"2026-02-15T10:00:00.000Z\",\"delta\":-10,\"kind\":\"debit\","
      "\"action\":\"file.upload\",\"debit_id\":\"d1\",\"balance_after\":40},"
      " {\"id\":\"e1\",\"ts\":\"2026-01-01T00:00:00.000Z\",\"delta\":50,\"kind\":\"credit\","
      "\"action\":\"=signup_bonus\",\"debit_id\":null,\"balance_after\":50}]";
  json_t *entries = json_loads(ledger, 0, NULL);
  json_t *debits = json_loads("{\"d1\":{\"tx_hash\":\"0xabc\",\"chain_status\":\"confirmed\"}}",
                              0, NULL);
  json_t *files = json_loads("[{\"id\":\"f1\",\"name\":\"-cmd|calc\",\"content_type\":\"text/plain\","
                             "\"size_bytes\":5,\"sha256\":\"aa\",\"created_at\":\"2026-01-02T00:00:00.000Z\"}]",
                             0, NULL);
  storage_report_req req;
  storage_report_input in;
  char err[LC_ERR_LEN], *out = NULL;
  size_t len = 0;
  json_t *doc, *totals;

  memset(&req, 0, sizeof(req));
  req.from_ms = req.to_ms = -1;
  lc_strlcpy(req.kind, "usage", sizeof(req.kind));
  lc_strlcpy(req.format, "csv", sizeof(req.format));
  in = (storage_report_input){"r1", "u1", "2026-03-01T00:00:00.000Z", &req, entries, debits, 0};
  ck_assert_int_eq(storage_reports_build(&in, &out, &len, err), LC_OK);
  ck_assert_str_eq(out, "ts,kind,action,delta,balance_after,debit_id,tx_hash,chain_status\r\n"
                        "2026-02-15T10:00:00.000Z,debit,file.upload,-10,40,d1,0xabc,confirmed\r\n"
                        "2026-01-01T00:00:00.000Z,credit,'=signup_bonus,50,50,,,\r\n");
  free(out);

  lc_strlcpy(req.format, "json", sizeof(req.format));
  ck_assert_int_eq(storage_reports_build(&in, &out, &len, err), LC_OK);
  doc = json_loads(out, 0, NULL);
  free(out);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "chain_data")), "available");
  totals = json_object_get(doc, "totals");
  ck_assert_int_eq(json_integer_value(json_object_get(totals, "debited")), 10);
  ck_assert_int_eq(json_integer_value(json_object_get(totals, "credited")), 50);
  ck_assert_int_eq(json_integer_value(json_object_get(totals, "confirmed_debits")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_array_get(json_object_get(doc, "entries"), 0), "tx_hash")), "0xabc");
  json_decref(doc);

  /* chain data unavailable (credit-svc without /internal/debits) */
  in.debits = NULL;
  ck_assert_int_eq(storage_reports_build(&in, &out, &len, err), LC_OK);
  doc = json_loads(out, 0, NULL);
  free(out);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "chain_data")), "unavailable");
  ck_assert(json_is_null(json_object_get(json_object_get(doc, "totals"), "confirmed_debits")));
  json_decref(doc);

  /* files inventory */
  lc_strlcpy(req.kind, "files", sizeof(req.kind));
  lc_strlcpy(req.format, "csv", sizeof(req.format));
  in.entries = files;
  ck_assert_int_eq(storage_reports_build(&in, &out, &len, err), LC_OK);
  ck_assert_str_eq(out, "id,name,content_type,size_bytes,sha256,created_at\r\n"
                        "f1,'-cmd|calc,text/plain,5,aa,2026-01-02T00:00:00.000Z\r\n");
  free(out);
  lc_strlcpy(req.format, "json", sizeof(req.format));
  ck_assert_int_eq(storage_reports_build(&in, &out, &len, err), LC_OK);
  doc = json_loads(out, 0, NULL);
  free(out);
  ck_assert_int_eq(json_integer_value(json_object_get(doc, "file_count")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(doc, "files"), 0),
                                                     "name")), "-cmd|calc");
  json_decref(doc);
  json_decref(entries);
  json_decref(debits);
  json_decref(files);
}
END_TEST

/* ---- S3 addressing + SigV4 ----------------------------------------------------- */

START_TEST(s3_url_addressing)
{
  storage_s3 s3;
  char err[LC_ERR_LEN], url[512], path[256];

  ck_assert_int_eq(storage_s3_init(&s3, "https://s3.eu-west-1.amazonaws.com", "eu-west-1",
                                   "my-bucket", "AK", "SK", 0, err), LC_OK);
  ck_assert_int_eq(storage_s3_url(&s3, "files/u/id", url, sizeof(url), path, sizeof(path), err),
                   LC_OK);
  ck_assert_str_eq(url, "https://s3.eu-west-1.amazonaws.com/my-bucket/files/u/id");
  ck_assert_str_eq(path, "/my-bucket/files/u/id");
  ck_assert_str_eq(s3.host, "s3.eu-west-1.amazonaws.com");
  ck_assert_int_eq(storage_s3_set_addressing(&s3, "virtual", err), LC_OK);
  ck_assert_str_eq(s3.host, "my-bucket.s3.eu-west-1.amazonaws.com");
  ck_assert_int_eq(storage_s3_url(&s3, "files/u/id", url, sizeof(url), path, sizeof(path), err),
                   LC_OK);
  ck_assert_str_eq(url, "https://my-bucket.s3.eu-west-1.amazonaws.com/files/u/id");
  ck_assert_str_eq(path, "/files/u/id");
  ck_assert_int_eq(storage_s3_url(&s3, NULL, url, sizeof(url), path, sizeof(path), err), LC_OK);
  ck_assert_str_eq(url, "https://my-bucket.s3.eu-west-1.amazonaws.com/");
  ck_assert_int_eq(storage_s3_url(&s3, "../x", url, sizeof(url), path, sizeof(path), err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(storage_s3_set_addressing(&s3, "path", err), LC_OK);
  ck_assert_str_eq(s3.host, "s3.eu-west-1.amazonaws.com");
  ck_assert_int_eq(storage_s3_set_addressing(&s3, "dns", err), LC_ERR_PARAM);
  ck_assert_int_eq(storage_s3_init(&s3, "http://127.0.0.1:9000", "us-east-1", "a.b", "AK", "SK",
                                   0, err), LC_OK);
  ck_assert_int_eq(storage_s3_set_addressing(&s3, "virtual", err), LC_ERR_PARAM);
  storage_s3_clear(&s3);
}
END_TEST

#define AK2 "AKIDEXAMPLE"
#define SK2 "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T_20240102 ((time_t)1704164645) /* 2024-01-02T03:04:05Z */
#define KEY_ENC "files/a b/\xc3\xbc+=.txt"

static storage_sigv4_req ref_req(const char *method, const char *path, const char *host,
                                 const char *sha, const char *region)
{
  storage_sigv4_req r;

  memset(&r, 0, sizeof(r));
  r.method = method;
  r.path = path;
  r.host = host;
  r.payload_sha256 = sha;
  r.access_key = AK2;
  r.secret_key = SK2;
  r.region = region;
  r.service = "s3";
  r.now = T_20240102;
  return r;
}

START_TEST(sigv4_reference_vectors)
{
  storage_sigv4_kv ct[] = {{"Content-Type", "text/plain"}};
  storage_sigv4_kv q[] = {{"prefix", "a b+c=d"}, {"list-type", "2"}};
  storage_sigv4_out o;
  storage_sigv4_req r;
  char creq[2048], err[LC_ERR_LEN];

  /* path-style PUT, key with a space, unicode, '+' and '=' */
  r = ref_req("PUT", "/bucket/" KEY_ENC, "127.0.0.1:9000",
              "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "us-east-1");
  r.headers = ct;
  r.nheaders = 1;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, creq, sizeof(creq), err), LC_OK);
  ck_assert_str_eq(creq, "PUT\n/bucket/files/a%20b/%C3%BC%2B%3D.txt\n\ncontent-type:text/plain\n"
                         "host:127.0.0.1:9000\nx-amz-content-sha256:"
                         "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n"
                         "x-amz-date:20240102T030405Z\n\ncontent-type;host;x-amz-content-sha256;"
                         "x-amz-date\n2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  ck_assert_str_eq(o.creq_sha256, "e17ef8be6620c8a91836efac10c0561f7c28d12aee85e1e3a078b655bd45ad1f");
  ck_assert_str_eq(o.signature, "8f50eab00fb76919b27aba9f375fd905c5f67fc30447a1cef79c672e2fea08f7");

  /* virtual-hosted GET (bucket in the host, not in the path) */
  r = ref_req("GET", "/" KEY_ENC, "bucket.s3.us-west-2.amazonaws.com", STORAGE_SIGV4_EMPTY_SHA256,
              "us-west-2");
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, creq, sizeof(creq), err), LC_OK);
  ck_assert_str_eq(o.creq_sha256, "c0a122dfa9523a40c34125932f3934d26ebf986b575f93b88f58030c6e48e072");
  ck_assert_str_eq(o.signature, "544faec615ac98c1f3de0a02f9fea71ba4cd7f4754a58b2e9de98398abe31fc0");
  ck_assert_str_eq(o.authorization,
                   "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-west-2/s3/aws4_request, "
                   "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                   "Signature=544faec615ac98c1f3de0a02f9fea71ba4cd7f4754a58b2e9de98398abe31fc0");

  /* R2-style virtual-hosted PUT with UNSIGNED-PAYLOAD, region "auto" */
  r = ref_req("PUT", "/" KEY_ENC, "bucket.acc.r2.cloudflarestorage.com", "UNSIGNED-PAYLOAD", "auto");
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, creq, sizeof(creq), err), LC_OK);
  ck_assert_str_eq(o.creq_sha256, "c72dfc136b55007d2655b6327577a211ce66c6940be8366dcc844503298ffe92");
  ck_assert_str_eq(o.signature, "7b4f92d73c69cbf24e92d386af794cdfe8df48074440df7562dd533f2ee35013");

  /* query values with space, '+' and '=' (sorted, encoded) */
  r = ref_req("GET", "/bucket", "minio:9000", STORAGE_SIGV4_EMPTY_SHA256, "us-east-1");
  r.query = q;
  r.nquery = 2;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, creq, sizeof(creq), err), LC_OK);
  ck_assert_ptr_nonnull(strstr(creq, "\nlist-type=2&prefix=a%20b%2Bc%3Dd\n"));
  ck_assert_str_eq(o.creq_sha256, "c495e3c65254e990206bbe4d619d7ab83b0db769e0e2fd13339bfba2bc926b0d");
  ck_assert_str_eq(o.signature, "0eb802c8b3a0364c54a78a1380761ed014e32a6e62b95808fe03886874e7c6e4");
}
END_TEST

static Suite *files_suite(void)
{
  Suite *s = suite_create("storage-files");
  TCase *t = tcase_create("multipart");
  tcase_add_test(t, mp_valid);
  tcase_add_test(t, mp_malformed);
  tcase_add_test(t, mp_stream_large);
  tcase_set_timeout(t, 10);
  suite_add_tcase(s, t);
  t = tcase_create("sniff");
  tcase_add_test(t, sniff_types);
  tcase_set_timeout(t, 10);
  suite_add_tcase(s, t);
  t = tcase_create("names");
  tcase_add_test(t, names_sanitize);
  tcase_add_test(t, names_disposition);
  tcase_set_timeout(t, 10);
  suite_add_tcase(s, t);
  t = tcase_create("csv-reports");
  tcase_add_test(t, csv_escaping);
  tcase_add_test(t, report_csv_and_chain);
  tcase_set_timeout(t, 10);
  suite_add_tcase(s, t);
  t = tcase_create("s3-sigv4");
  tcase_add_test(t, s3_url_addressing);
  tcase_add_test(t, sigv4_reference_vectors);
  tcase_set_timeout(t, 10);
  suite_add_tcase(s, t);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(files_suite());
  int failed;

  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
