/* keccak.c - Ethereum Keccak-256: the Keccak sponge (rate 136 bytes,
 * capacity 512 bits) with the original multi-rate padding 0x01 .. 0x80,
 * over nettle's vetted Keccak-f[1600] permutation (sha3_permute).
 * Pure function, no state, thread-safe. */
#include "keccak.h"

#include <string.h>
#include <nettle/sha3.h>
#include <sodium.h>

#define KECCAK256_RATE 136

/* XORs one rate-sized block into the state; lanes are little-endian
 * (nettle's sha3_state.a[x + 5y] layout, as in FIPS 202). */
static void keccak_absorb_block(struct sha3_state *st, const uint8_t *blk)
{
  for (size_t i = 0; i < KECCAK256_RATE / 8; i++) {
    uint64_t lane = 0;
    for (unsigned j = 0; j < 8; j++)
      lane |= (uint64_t)blk[8 * i + j] << (8 * j);
    st->a[i] ^= lane;
  }
  sha3_permute(st);
}

/* Keccak-256 of in[0..n). out receives 32 bytes. in may be NULL when n == 0. */
void keccak256(const void *in, size_t n, uint8_t out[32])
{
  struct sha3_state st;
  uint8_t last[KECCAK256_RATE];
  const uint8_t *p = in;

  memset(&st, 0, sizeof st);
  while (n >= KECCAK256_RATE) {
    keccak_absorb_block(&st, p);
    p += KECCAK256_RATE;
    n -= KECCAK256_RATE;
  }
  memset(last, 0, sizeof last);
  if (n > 0)
    memcpy(last, p, n);
  last[n] ^= 0x01;
  last[KECCAK256_RATE - 1] ^= 0x80;
  keccak_absorb_block(&st, last);
  for (unsigned i = 0; i < 32; i++)
    out[i] = (uint8_t)(st.a[i / 8] >> (8 * (i % 8)));
  /* the input may be secret (e.g. key material being hashed) */
  sodium_memzero(&st, sizeof st);
  sodium_memzero(last, sizeof last);
}
