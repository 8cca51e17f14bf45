/* rlp.c - Recursive Length Prefix encoder (Ethereum yellow paper, appendix B).
 *
 * The buffer grows geometrically up to a hard cap (b->max); exceeding it is a
 * sticky LC_ERR_TOO_LARGE, never a truncation. Lists reserve one header byte
 * at rlp_list_begin; rlp_list_end writes the short header in place or, for a
 * payload > 55 bytes, moves the payload right by the length-of-length and
 * writes the long header. Not thread-safe per buffer (one owner). */
#include "rlp.h"

#include <stdlib.h>
#include <string.h>
#include "lc/err.h"

/* Makes room for `extra` more bytes; sets the sticky error on failure. */
static int rlp_reserve(rlp_buf *b, size_t extra)
{
  if (b->err != LC_OK)
    return b->err;
  if (extra > b->max || b->len > b->max - extra) {
    b->err = LC_ERR_TOO_LARGE;
    return b->err;
  }
  size_t need = b->len + extra;
  if (need <= b->cap)
    return LC_OK;
  size_t ncap = b->cap ? b->cap : 64;
  while (ncap < need)
    ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
  if (ncap > b->max)
    ncap = b->max;
  uint8_t *nb = realloc(b->buf, ncap);
  if (nb == NULL) {
    b->err = LC_ERR_NOMEM;
    return b->err;
  }
  b->buf = nb;
  b->cap = ncap;
  return LC_OK;
}

/* Number of bytes of n in minimal big-endian form (0 for n == 0). */
static unsigned rlp_be_len(uint64_t n)
{
  unsigned k = 0;
  while (n != 0) {
    k++;
    n >>= 8;
  }
  return k;
}

static void rlp_write_be(uint8_t *dst, uint64_t n, unsigned k)
{
  for (unsigned i = 0; i < k; i++)
    dst[i] = (uint8_t)(n >> (8 * (k - 1 - i)));
}

void rlp_init(rlp_buf *b, size_t max)
{
  b->buf = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
  b->err = LC_OK;
}

void rlp_free(rlp_buf *b)
{
  if (b == NULL)
    return;
  free(b->buf);
  b->buf = NULL;
  b->len = b->cap = 0;
}

int rlp_put_bytes(rlp_buf *b, const uint8_t *p, size_t n)
{
  if (b->err != LC_OK)
    return b->err;
  if (p == NULL && n > 0) {
    b->err = LC_ERR_PARAM;
    return b->err;
  }
  if (n == 1 && p[0] < 0x80) {
    if (rlp_reserve(b, 1) != LC_OK)
      return b->err;
    b->buf[b->len++] = p[0];
    return LC_OK;
  }
  unsigned ll = n <= 55 ? 0 : rlp_be_len((uint64_t)n);
  if (n > b->max) {
    b->err = LC_ERR_TOO_LARGE;
    return b->err;
  }
  if (rlp_reserve(b, 1 + ll + n) != LC_OK)
    return b->err;
  if (ll == 0) {
    b->buf[b->len++] = (uint8_t)(0x80 + n);
  } else {
    b->buf[b->len++] = (uint8_t)(0xb7 + ll);
    rlp_write_be(b->buf + b->len, (uint64_t)n, ll);
    b->len += ll;
  }
  if (n > 0)
    memcpy(b->buf + b->len, p, n);
  b->len += n;
  return LC_OK;
}

int rlp_put_str(rlp_buf *b, const char *s)
{
  if (s == NULL) {
    if (b->err == LC_OK)
      b->err = LC_ERR_PARAM;
    return b->err;
  }
  return rlp_put_bytes(b, (const uint8_t *)s, strlen(s));
}

int rlp_put_uint(rlp_buf *b, uint64_t v)
{
  uint8_t tmp[8];
  unsigned k = rlp_be_len(v);
  rlp_write_be(tmp, v, k);
  return rlp_put_bytes(b, tmp, k);
}

int rlp_put_u256(rlp_buf *b, const uint8_t be[32])
{
  size_t i = 0;
  while (i < 32 && be[i] == 0)
    i++;
  return rlp_put_bytes(b, be + i, 32 - i);
}

size_t rlp_list_begin(rlp_buf *b)
{
  size_t mark = b->len;
  if (rlp_reserve(b, 1) == LC_OK)
    b->buf[b->len++] = 0xc0; /* placeholder, fixed by rlp_list_end */
  return mark;
}

int rlp_list_end(rlp_buf *b, size_t mark)
{
  if (b->err != LC_OK)
    return b->err;
  if (mark >= b->len) {
    b->err = LC_ERR_PARAM;
    return b->err;
  }
  size_t payload = b->len - mark - 1;
  if (payload <= 55) {
    b->buf[mark] = (uint8_t)(0xc0 + payload);
    return LC_OK;
  }
  unsigned ll = rlp_be_len((uint64_t)payload);
  if (rlp_reserve(b, ll) != LC_OK)
    return b->err;
  memmove(b->buf + mark + 1 + ll, b->buf + mark + 1, payload);
  b->buf[mark] = (uint8_t)(0xf7 + ll);
  rlp_write_be(b->buf + mark + 1, (uint64_t)payload, ll);
  b->len += ll;
  return LC_OK;
}
