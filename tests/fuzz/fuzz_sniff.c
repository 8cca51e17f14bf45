/* fuzz_sniff.c - storage-svc's content type sniffer: storage_sniff and
 * storage_sniff_decide with a declared type. Input: "declared\nbytes".
 * Invariants: a detected or decided type is on the allowlist; the
 * incremental sniffer (streamed uploads), fed in pieces, detects the same. */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "sniff.h"

static int allowed(const char *t) {
  static const char *const A[] = {"image/png", "image/jpeg", "image/gif", "application/pdf",
                                  "application/zip", "text/plain", "text/csv",
                                  "application/json", NULL};
  for (int i = 0; A[i]; i++)
    if (strcmp(A[i], t) == 0) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *rest;
  size_t rlen;
  char *declared = fz_split(data, size, &rest, &rlen);
  uint8_t *buf = malloc(rlen ? rlen : 1);
  FZ_CHECK(buf != NULL);
  if (rlen) memcpy(buf, rest, rlen);
  const char *t = storage_sniff(buf, rlen);
  if (t != NULL) FZ_CHECK(allowed(t));
  {
    storage_sniff_stream st;
    size_t off = 0, k = 0;
    storage_sniff_stream_init(&st);
    while (off < rlen) {
      size_t n = 1 + (size_t)buf[k++ % rlen] % 13;
      if (n > rlen - off) n = rlen - off;
      storage_sniff_stream_feed(&st, buf + off, n);
      off += n;
    }
    const char *ts = storage_sniff_stream_type(&st);
    FZ_CHECK((ts == NULL) == (t == NULL));
    FZ_CHECK(ts == NULL || strcmp(ts, t) == 0);
  }
  char out[STORAGE_CT_MAX], err[LC_ERR_LEN];
  for (int i = 0; i < 2; i++) {
    int rc = storage_sniff_decide(buf, rlen, i ? declared : NULL, out, err);
    if (rc == LC_OK) {
      char base[STORAGE_CT_MAX];
      FZ_CHECK(memchr(out, '\0', sizeof out) != NULL);
      snprintf(base, sizeof base, "%s", out);
      char *semi = strchr(base, ';');
      if (semi) *semi = '\0';
      FZ_CHECK(allowed(base));
      FZ_CHECK(t != NULL);
    } else {
      FZ_CHECK(rc == LC_ERR_MEDIA || rc == LC_ERR_PARAM);
    }
  }
  free(buf);
  free(declared);
  return 0;
}
