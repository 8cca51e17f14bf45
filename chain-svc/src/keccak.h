/* keccak.h - Ethereum Keccak-256 (the original Keccak padding 0x01, not
 * SHA3's 0x06), a thin sponge over nettle's Keccak-f[1600] (sha3_permute). */
#ifndef CHAIN_KECCAK_H
#define CHAIN_KECCAK_H
#include <stddef.h>
#include <stdint.h>

void keccak256(const void *in, size_t n, uint8_t out[32]);

#endif
