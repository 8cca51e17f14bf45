/* wallet.h - BIP-39 seed, BIP-32 derivation (secp256k1) and the BIP-44
 * Ethereum path m/44'/60'/account'/0/index. Keys live only in memory and are
 * wiped (sodium_memzero) after use; never logged. */
#ifndef CHAIN_WALLET_H
#define CHAIN_WALLET_H
#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

/* BIP-39 seed = PBKDF2-HMAC-SHA512(NFKD(mnemonic), "mnemonic"+passphrase,
 * 2048, 64). The mnemonic is normalised to single spaces; words are checked to be
 * lowercase ASCII and the count one of 12/15/18/21/24. */
int wallet_seed_from_mnemonic(const char *mnemonic, const char *passphrase, uint8_t seed[64]);

/* BIP-32 master key from seed (16..64 bytes) then the path
 * m/44'/60'/account'/0/index; writes the private key. */
int wallet_derive_eth(const uint8_t *seed, size_t seed_len, uint32_t account, uint32_t index,
                      uint8_t priv[32]);

/* Generic BIP-32 derivation along path[] (hardened indices have bit 31 set). */
int wallet_bip32_derive(const uint8_t *seed, size_t seed_len, const uint32_t *path,
                        size_t depth, uint8_t priv[32], uint8_t chain_code[32]);

#endif
