/* fuzz_util.h - helpers shared by the libFuzzer targets: NUL-terminated
 * copies of the input and splitting it at the first newline (two fields). */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* New NUL-terminated copy of data[0..n) (free()). */
static inline char *fz_strndup(const uint8_t *data, size_t n) {
  char *s = malloc(n + 1);
  if (s == NULL) abort();
  if (n > 0) memcpy(s, data, n);
  s[n] = '\0';
  return s;
}

/* Splits data at the first '\n': returns the NUL-terminated head (new), *b and *blen =
 * the rest (borrowed). No newline: head is everything, rest empty. */
static inline char *fz_split(const uint8_t *data, size_t n, const uint8_t **b, size_t *blen) {
  const uint8_t *nl = n > 0 ? memchr(data, '\n', n) : NULL;
  size_t hl = nl != NULL ? (size_t)(nl - data) : n;
  *b = nl != NULL ? nl + 1 : data + n;
  *blen = nl != NULL ? n - hl - 1 : 0;
  return fz_strndup(data, hl);
}

#define FZ_CHECK(cond)                                                                        \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);      \
      abort();                                                                                \
    }                                                                                         \
  } while (0)

#endif
