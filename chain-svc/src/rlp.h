/* rlp.h - Recursive Length Prefix encoder (Ethereum yellow paper, appendix B).
 * A capped growable buffer; any error (cap exceeded) is sticky in b->err and
 * reported by every later call. Integers are big-endian with leading zero
 * bytes dropped (zero encodes as 0x80). */
#ifndef CHAIN_RLP_H
#define CHAIN_RLP_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint8_t *buf;
  size_t len, cap, max;
  int err;            /* LC_OK, LC_ERR_TOO_LARGE (cap), LC_ERR_NOMEM, LC_ERR_PARAM (NULL input, bad mark) */
} rlp_buf;

void rlp_init(rlp_buf *b, size_t max);   /* max: hard cap in bytes */
void rlp_free(rlp_buf *b);               /* NULL-safe */
int rlp_put_bytes(rlp_buf *b, const uint8_t *p, size_t n);  /* byte string item */
int rlp_put_str(rlp_buf *b, const char *s);                 /* string item */
int rlp_put_uint(rlp_buf *b, uint64_t v);                   /* scalar */
int rlp_put_u256(rlp_buf *b, const uint8_t be[32]);         /* 256-bit scalar */
/* Lists: mark = rlp_list_begin(b); ...items...; rlp_list_end(b, mark). Nestable. */
size_t rlp_list_begin(rlp_buf *b);
int rlp_list_end(rlp_buf *b, size_t mark);

#endif
