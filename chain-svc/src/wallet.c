/* wallet.c - BIP-39 seed (PBKDF2-HMAC-SHA512, nettle), BIP-32 private
 * derivation over secp256k1 (HMAC-SHA512 from nettle, key arithmetic from
 * libsecp256k1) and the BIP-44 Ethereum path m/44'/60'/account'/0/index.
 *
 * Pure functions over caller buffers, thread-safe (the shared secp256k1
 * context is safe for concurrent use, see ethtx.h). Every intermediate
 * secret (normalised mnemonic, salt, HMAC outputs, parent keys, chain codes)
 * is wiped with sodium_memzero before returning; nothing is logged. */
#include "wallet.h"

#include <string.h>
#include <nettle/hmac.h>
#include <nettle/pbkdf2.h>
#include <secp256k1.h>
#include <sodium.h>

#include "ethtx.h"

#define WALLET_MAX_WORDS 24
#define WALLET_MAX_WORD_LEN 16 /* BIP-39 English words have <= 8 letters */
#define WALLET_MNEMONIC_CAP (WALLET_MAX_WORDS * (WALLET_MAX_WORD_LEN + 1))
#define WALLET_PASS_MAX 512
#define WALLET_PBKDF2_ITER 2048
#define WALLET_HARDENED 0x80000000u

static int wallet_is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Copies the words of m into out separated by single spaces; checks the
 * word alphabet (a-z), length and count. Returns LC_OK or LC_ERR_PARAM. */
static int wallet_normalise(const char *m, char out[WALLET_MNEMONIC_CAP], size_t *out_len)
{
  size_t o = 0, words = 0;
  const char *p = m;
  for (;;) {
    while (wallet_is_space(*p))
      p++;
    if (*p == '\0')
      break;
    if (words == WALLET_MAX_WORDS)
      return LC_ERR_PARAM;
    if (words > 0)
      out[o++] = ' ';
    size_t wl = 0;
    while (*p != '\0' && !wallet_is_space(*p)) {
      if (*p < 'a' || *p > 'z' || wl == WALLET_MAX_WORD_LEN)
        return LC_ERR_PARAM;
      out[o++] = *p++;
      wl++;
    }
    words++;
  }
  if (words < 12 || words % 3 != 0)
    return LC_ERR_PARAM;
  *out_len = o;
  return LC_OK;
}

/* BIP-39 seed = PBKDF2-HMAC-SHA512(mnemonic, "mnemonic" + passphrase, 2048, 64).
 * mnemonic: 12/15/18/21/24 lowercase ASCII words separated by any whitespace
 * (normalised to single spaces; for such input NFKD is the identity). The
 * word-list checksum is not verified. passphrase: NULL or ASCII (<= 512
 * bytes; non-ASCII is rejected since this code does not implement NFKD).
 * Returns LC_OK or LC_ERR_PARAM (seed untouched on error). */
int wallet_seed_from_mnemonic(const char *mnemonic, const char *passphrase, uint8_t seed[64])
{
  char norm[WALLET_MNEMONIC_CAP];
  uint8_t salt[8 + WALLET_PASS_MAX];
  size_t norm_len = 0, pass_len;
  int rc = LC_OK;

  if (mnemonic == NULL || seed == NULL)
    return LC_ERR_PARAM;
  if (passphrase == NULL)
    passphrase = "";
  pass_len = strnlen(passphrase, WALLET_PASS_MAX + 1);
  if (pass_len > WALLET_PASS_MAX)
    return LC_ERR_PARAM;
  for (size_t i = 0; i < pass_len; i++)
    if ((unsigned char)passphrase[i] >= 0x80)
      return LC_ERR_PARAM;
  rc = wallet_normalise(mnemonic, norm, &norm_len);
  if (rc != LC_OK)
    goto out;
  memcpy(salt, "mnemonic", 8);
  memcpy(salt + 8, passphrase, pass_len);
  pbkdf2_hmac_sha512(norm_len, (const uint8_t *)norm, WALLET_PBKDF2_ITER, 8 + pass_len, salt,
                     64, seed);
out:
  sodium_memzero(norm, sizeof norm);
  sodium_memzero(salt, sizeof salt);
  return rc;
}

static void wallet_hmac512(const uint8_t *key, size_t key_len, const uint8_t *data,
                           size_t data_len, uint8_t out[64])
{
  struct hmac_sha512_ctx h;
  hmac_sha512_set_key(&h, key_len, key);
  hmac_sha512_update(&h, data_len, data);
  hmac_sha512_digest(&h, 64, out);
  sodium_memzero(&h, sizeof h);
}

/* Generic BIP-32 private derivation: master key from seed (16..64 bytes)
 * with HMAC-SHA512("Bitcoin seed"), then each path[i] (bit 31 = hardened).
 * depth 0 yields the master key. Returns LC_OK, LC_ERR_PARAM (bad
 * arguments), LC_ERR_UNPROCESSABLE (an invalid key at some level: IL >= n or
 * zero key, probability ~2^-127; the caller must choose another index) or
 * LC_ERR (secp256k1 unavailable). priv/chain_code are zeroed on error. */
int wallet_bip32_derive(const uint8_t *seed, size_t seed_len, const uint32_t *path,
                        size_t depth, uint8_t priv[32], uint8_t chain_code[32])
{
  static const uint8_t master_key[] = "Bitcoin seed";
  uint8_t I[64], k[32], c[32], data[37];
  size_t data_len;
  secp256k1_pubkey pk;
  int rc = LC_OK;

  if (seed == NULL || seed_len < 16 || seed_len > 64 || (path == NULL && depth > 0) ||
      priv == NULL || chain_code == NULL)
    return LC_ERR_PARAM;
  const secp256k1_context *ctx = eth_secp_ctx();
  if (ctx == NULL)
    return LC_ERR;

  wallet_hmac512(master_key, sizeof master_key - 1, seed, seed_len, I);
  memcpy(k, I, 32);
  memcpy(c, I + 32, 32);
  if (!secp256k1_ec_seckey_verify(ctx, k)) {
    rc = LC_ERR_UNPROCESSABLE;
    goto out;
  }
  for (size_t d = 0; d < depth; d++) {
    uint32_t idx = path[d];
    if (idx & WALLET_HARDENED) {
      data[0] = 0x00;
      memcpy(data + 1, k, 32);
      data_len = 33;
    } else {
      size_t pl = 33;
      if (!secp256k1_ec_pubkey_create(ctx, &pk, k) ||
          !secp256k1_ec_pubkey_serialize(ctx, data, &pl, &pk, SECP256K1_EC_COMPRESSED)) {
        rc = LC_ERR;
        goto out;
      }
      data_len = 33;
    }
    data[data_len++] = (uint8_t)(idx >> 24);
    data[data_len++] = (uint8_t)(idx >> 16);
    data[data_len++] = (uint8_t)(idx >> 8);
    data[data_len++] = (uint8_t)idx;
    wallet_hmac512(c, 32, data, data_len, I);
    /* child = IL + k mod n; fails when IL >= n or the result is zero */
    if (!secp256k1_ec_seckey_tweak_add(ctx, k, I)) {
      rc = LC_ERR_UNPROCESSABLE;
      goto out;
    }
    memcpy(c, I + 32, 32);
  }
  memcpy(priv, k, 32);
  memcpy(chain_code, c, 32);
out:
  if (rc != LC_OK) {
    sodium_memzero(priv, 32);
    sodium_memzero(chain_code, 32);
  }
  sodium_memzero(I, sizeof I);
  sodium_memzero(k, sizeof k);
  sodium_memzero(c, sizeof c);
  sodium_memzero(data, sizeof data);
  sodium_memzero(&pk, sizeof pk);
  return rc;
}

/* BIP-44 Ethereum key m/44'/60'/account'/0/index. account and index must
 * be < 2^31. Same returns as wallet_bip32_derive. */
int wallet_derive_eth(const uint8_t *seed, size_t seed_len, uint32_t account, uint32_t index,
                      uint8_t priv[32])
{
  uint8_t cc[32];
  if (account >= WALLET_HARDENED || index >= WALLET_HARDENED || priv == NULL)
    return LC_ERR_PARAM;
  const uint32_t path[5] = {44 | WALLET_HARDENED, 60 | WALLET_HARDENED,
                            account | WALLET_HARDENED, 0, index};
  int rc = wallet_bip32_derive(seed, seed_len, path, 5, priv, cc);
  sodium_memzero(cc, sizeof cc);
  return rc;
}
