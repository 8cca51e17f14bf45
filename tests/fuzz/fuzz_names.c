/* fuzz_names.c - client file names: storage_name_pct_decode (filename*=
 * values), storage_name_sanitize and storage_content_disposition.
 * Invariants: the sanitised name is non-empty, <= STORAGE_NAME_MAX bytes,
 * valid UTF-8 without control characters, '/' or '\'; the header value has
 * no CR/LF and is ASCII. */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "names.h"

static int utf8_valid(const unsigned char *s) {
  while (*s) {
    unsigned c = *s;
    int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (n < 0) return 0;
    s++;
    for (int i = 0; i < n; i++, s++)
      if ((*s & 0xC0) != 0x80) return 0;
  }
  return 1;
}

static void check_name(const char *in, size_t n) {
  char name[STORAGE_NAME_BUF], cd[STORAGE_CD_MAX];
  storage_name_sanitize(in, n, "file", name);
  size_t l = strlen(name);
  FZ_CHECK(l > 0 && l <= STORAGE_NAME_MAX);
  FZ_CHECK(strpbrk(name, "/\\") == NULL);
  for (size_t i = 0; i < l; i++)
    FZ_CHECK((unsigned char)name[i] >= 0x20 && name[i] != 0x7f);
  FZ_CHECK(utf8_valid((const unsigned char *)name));
  if (storage_content_disposition(name, cd, sizeof cd) == LC_OK) {
    for (const unsigned char *p = (const unsigned char *)cd; *p; p++)
      FZ_CHECK(*p >= 0x20 && *p < 0x7f);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fz_strndup(data, size);
  check_name(s, size);
  char *dec = malloc(STORAGE_NAME_RAW_MAX + 1);
  FZ_CHECK(dec != NULL);
  size_t dl = 0;
  int rc = storage_name_pct_decode(s, size, dec, STORAGE_NAME_RAW_MAX + 1, &dl);
  if (rc == LC_OK) {
    FZ_CHECK(dl <= size && dl <= STORAGE_NAME_RAW_MAX);
    check_name(dec, dl);
  } else {
    FZ_CHECK(rc == LC_ERR_PARAM || rc == LC_ERR_TOO_LARGE);
  }
  free(dec);
  free(s);
  return 0;
}
