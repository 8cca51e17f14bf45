/* fuzz_multipart.c - storage-svc's upload path: storage_mp_parse (the
 * multipart/form-data parser) and, on the part it returns, what the upload
 * handler does next: storage_name_sanitize + storage_content_disposition on
 * the file name and storage_sniff_decide on the bytes.
 * The incremental parser (storage_mp_stream_*, streamed uploads) is fed the
 * same body in pieces whose sizes come from the body's bytes and must agree.
 * Input: "content-type\nbody". Invariant: the part's data lies inside the
 * body; names fit their buffers; both parsers give the same result. */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "multipart.h"
#include "names.h"
#include "sniff.h"

typedef struct {
  uint8_t *buf;
  size_t len, cap;
} fz_acc;

static int fz_acc_sink(void *ud, const uint8_t *p, size_t n) {
  fz_acc *a = ud;
  FZ_CHECK(a->len + n <= a->cap);
  memcpy(a->buf + a->len, p, n);
  a->len += n;
  return LC_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *rest;
  size_t rlen;
  char *ct = fz_split(data, size, &rest, &rlen);
  /* a private copy: ASan then catches any read past the body's end */
  uint8_t *body = malloc(rlen ? rlen : 1);
  FZ_CHECK(body != NULL);
  if (rlen) memcpy(body, rest, rlen);
  char err[LC_ERR_LEN];
  (void)storage_mp_is_multipart(ct);
  storage_mp_part *part = malloc(sizeof(*part));
  FZ_CHECK(part != NULL);
  int rc = storage_mp_parse(ct, body, rlen, part, err);
  if (rc == LC_OK) {
    FZ_CHECK(part->len <= rlen);
    FZ_CHECK(part->len == 0 || (part->data >= body && part->data + part->len <= body + rlen));
    FZ_CHECK(part->filename_len <= STORAGE_MP_MAX_NAME);
    FZ_CHECK(memchr(part->field_name, '\0', sizeof part->field_name) != NULL);
    FZ_CHECK(memchr(part->content_type, '\0', sizeof part->content_type) != NULL);
    char name[STORAGE_NAME_BUF], cd[STORAGE_CD_MAX], out[STORAGE_CT_MAX];
    storage_name_sanitize(part->filename, part->filename_len, "file", name);
    FZ_CHECK(name[0] != '\0' && strlen(name) <= STORAGE_NAME_MAX);
    if (storage_content_disposition(name, cd, sizeof cd) == LC_OK)
      FZ_CHECK(strpbrk(cd, "\r\n") == NULL);
    (void)storage_sniff_decide(part->data, part->len, part->content_type, out, err);
  } else {
    FZ_CHECK(rc == LC_ERR_PARAM);
  }
  /* the incremental parser agrees, whatever the split */
  {
    storage_mp_stream *st = malloc(sizeof(*st));
    fz_acc acc = {malloc(rlen ? rlen : 1), 0, rlen};
    FZ_CHECK(st != NULL && acc.buf != NULL);
    int src = storage_mp_stream_init(st, ct, err);
    size_t off = 0, k = 0;
    while (src == LC_OK && off < rlen) {
      size_t n = 1 + (size_t)body[k++ % rlen] % 97;
      if (n > rlen - off) n = rlen - off;
      src = storage_mp_stream_feed(st, body + off, n, fz_acc_sink, &acc, err);
      off += n;
    }
    if (src == LC_OK) src = storage_mp_stream_finish(st, err);
    FZ_CHECK((src == LC_OK) == (rc == LC_OK));
    if (rc == LC_OK) {
      FZ_CHECK(acc.len == part->len);
      FZ_CHECK(part->len == 0 || memcmp(acc.buf, part->data, part->len) == 0);
      FZ_CHECK(strcmp(st->part.field_name, part->field_name) == 0);
      FZ_CHECK(st->part.filename_len == part->filename_len);
    }
    free(acc.buf);
    free(st);
  }
  free(part);
  free(body);
  free(ct);
  return 0;
}
