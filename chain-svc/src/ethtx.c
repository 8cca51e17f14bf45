/* ethtx.c - EIP-1559 (type 2) transaction signing, Ethereum addresses
 * (derivation, EIP-55 checksum, parsing) and ERC-20 transfer calldata.
 *
 * Signing uses one process-wide libsecp256k1 context created with
 * SECP256K1_CONTEXT_NONE and randomized once (pthread_once) with 32 bytes
 * from libsodium's CSPRNG; per <secp256k1.h>, a context randomized only at
 * creation can be used from many threads at once without locking, so every
 * function here is thread-safe. Nonces are RFC 6979 (deterministic) and
 * signatures are low-s, as Ethereum requires. Secrets are wiped. */
#include "ethtx.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <sodium.h>

#include "keccak.h"
#include "rlp.h"

#define ETHTX_TYPE_1559 0x02
/* RLP of the fixed fields is < 300 bytes; the data is bounded by the caller */
#define ETHTX_RLP_OVERHEAD 512

static pthread_once_t g_secp_once = PTHREAD_ONCE_INIT;
static secp256k1_context *g_secp;

static void eth_secp_init(void)
{
  uint8_t seed[32];
  if (sodium_init() < 0)
    return;
  secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  if (ctx == NULL)
    return;
  randombytes_buf(seed, sizeof seed);
  if (!secp256k1_context_randomize(ctx, seed)) {
    secp256k1_context_destroy(ctx);
    sodium_memzero(seed, sizeof seed);
    return;
  }
  sodium_memzero(seed, sizeof seed);
  g_secp = ctx;
}

const secp256k1_context *eth_secp_ctx(void)
{
  pthread_once(&g_secp_once, eth_secp_init);
  return g_secp;
}

static int ethtx_err(char *err, int code, const char *msg)
{
  if (err != NULL)
    snprintf(err, LC_ERR_LEN, "%s", msg);
  return code;
}

/* Appends the 9 EIP-1559 body fields (without the list header). */
static void ethtx_put_fields(rlp_buf *b, const ethtx_1559 *tx)
{
  rlp_put_uint(b, tx->chain_id);
  rlp_put_uint(b, tx->nonce);
  rlp_put_u256(b, tx->max_priority_fee);
  rlp_put_u256(b, tx->max_fee);
  rlp_put_uint(b, tx->gas_limit);
  rlp_put_bytes(b, tx->to, tx->create ? 0 : 20);
  rlp_put_u256(b, tx->value);
  rlp_put_bytes(b, tx->data, tx->data_len);
  size_t al = rlp_list_begin(b); /* accessList = [] */
  rlp_list_end(b, al);
}

/* Returns 0x02 || b->buf as a new heap block. */
static int ethtx_typed(const rlp_buf *b, uint8_t **out, size_t *out_len)
{
  uint8_t *p = malloc(b->len + 1);
  if (p == NULL)
    return LC_ERR_NOMEM;
  p[0] = ETHTX_TYPE_1559;
  memcpy(p + 1, b->buf, b->len);
  *out = p;
  *out_len = b->len + 1;
  return LC_OK;
}

/* Signs tx with priv (EIP-1559, RFC 6979, low-s). On LC_OK *raw is new
 * (caller free()s), *raw_len its length and hash = keccak256(raw). On error
 * *raw is NULL and err (may be NULL) says why (never key material):
 * LC_ERR_PARAM bad input/key, LC_ERR_TOO_LARGE, LC_ERR_NOMEM, LC_ERR. */
int ethtx_sign(const ethtx_1559 *tx, const uint8_t priv[32], uint8_t **raw, size_t *raw_len,
               uint8_t hash[32], char err[LC_ERR_LEN])
{
  int rc = LC_OK;
  rlp_buf b;
  uint8_t *unsigned_tx = NULL;
  size_t unsigned_len = 0;
  uint8_t sighash[32], sig64[64];
  int recid = 0;
  secp256k1_ecdsa_recoverable_signature sig;

  *raw = NULL;
  *raw_len = 0;
  rlp_init(&b, 0);
  if (tx == NULL || priv == NULL || (tx->data == NULL && tx->data_len > 0))
    return ethtx_err(err, LC_ERR_PARAM, "ethtx_sign - invalid arguments");
  if (tx->data_len > SIZE_MAX / 2 - ETHTX_RLP_OVERHEAD)
    return ethtx_err(err, LC_ERR_TOO_LARGE, "ethtx_sign - data too large");
  const secp256k1_context *ctx = eth_secp_ctx();
  if (ctx == NULL)
    return ethtx_err(err, LC_ERR, "ethtx_sign - secp256k1 context unavailable");
  if (!secp256k1_ec_seckey_verify(ctx, priv))
    return ethtx_err(err, LC_ERR_PARAM, "ethtx_sign - invalid private key");

  rlp_init(&b, tx->data_len + ETHTX_RLP_OVERHEAD);
  size_t m = rlp_list_begin(&b);
  ethtx_put_fields(&b, tx);
  rlp_list_end(&b, m);
  if (b.err != LC_OK) {
    rc = ethtx_err(err, b.err, "ethtx_sign - encoding the payload failed");
    goto out;
  }
  rc = ethtx_typed(&b, &unsigned_tx, &unsigned_len);
  if (rc != LC_OK) {
    ethtx_err(err, rc, "ethtx_sign - out of memory");
    goto out;
  }
  keccak256(unsigned_tx, unsigned_len, sighash);
  if (!secp256k1_ecdsa_sign_recoverable(ctx, &sig, sighash, priv, NULL, NULL)) {
    rc = ethtx_err(err, LC_ERR, "ethtx_sign - signing failed");
    goto out;
  }
  if (!secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, sig64, &recid, &sig)) {
    rc = ethtx_err(err, LC_ERR, "ethtx_sign - signature serialisation failed");
    goto out;
  }

  b.len = 0;
  m = rlp_list_begin(&b);
  ethtx_put_fields(&b, tx);
  rlp_put_uint(&b, (uint64_t)recid); /* yParity */
  rlp_put_u256(&b, sig64);           /* r */
  rlp_put_u256(&b, sig64 + 32);      /* s */
  rlp_list_end(&b, m);
  if (b.err != LC_OK) {
    rc = ethtx_err(err, b.err, "ethtx_sign - encoding the signed transaction failed");
    goto out;
  }
  rc = ethtx_typed(&b, raw, raw_len);
  if (rc != LC_OK) {
    ethtx_err(err, rc, "ethtx_sign - out of memory");
    goto out;
  }
  keccak256(*raw, *raw_len, hash);
out:
  free(unsigned_tx);
  rlp_free(&b);
  return rc;
}

/* Address = last 20 bytes of keccak256(uncompressed pubkey without 0x04).
 * LC_ERR_PARAM for an invalid key, LC_ERR if secp256k1 is unavailable. */
int eth_address_from_priv(const uint8_t priv[32], uint8_t addr[20])
{
  secp256k1_pubkey pk;
  uint8_t ser[65], h[32];
  size_t ser_len = sizeof ser;
  const secp256k1_context *ctx = eth_secp_ctx();
  if (ctx == NULL)
    return LC_ERR;
  if (!secp256k1_ec_pubkey_create(ctx, &pk, priv))
    return LC_ERR_PARAM;
  if (!secp256k1_ec_pubkey_serialize(ctx, ser, &ser_len, &pk, SECP256K1_EC_UNCOMPRESSED))
    return LC_ERR;
  keccak256(ser + 1, 64, h);
  memcpy(addr, h + 12, 20);
  return LC_OK;
}

/* EIP-55: hex digit i is upper-cased when it is a letter and nibble i of
 * keccak256(lowercase hex address) is >= 8. out = "0x" + 40 chars + NUL. */
void eth_address_checksum(const uint8_t addr[20], char out[43])
{
  static const char hx[] = "0123456789abcdef";
  char lower[40];
  uint8_t h[32];
  for (unsigned i = 0; i < 20; i++) {
    lower[2 * i] = hx[addr[i] >> 4];
    lower[2 * i + 1] = hx[addr[i] & 0x0f];
  }
  keccak256(lower, sizeof lower, h);
  out[0] = '0';
  out[1] = 'x';
  for (unsigned i = 0; i < 40; i++) {
    unsigned nib = i % 2 ? h[i / 2] & 0x0f : h[i / 2] >> 4;
    char c = lower[i];
    if (c >= 'a' && c <= 'f' && nib >= 8)
      c = (char)(c - 'a' + 'A');
    out[2 + i] = c;
  }
  out[42] = '\0';
}

static int eth_hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Parses exactly "0x"/"0X" + 40 hex digits (case not checked against
 * EIP-55). LC_ERR_PARAM otherwise; addr untouched on error. */
int eth_address_parse(const char *s, uint8_t addr[20])
{
  uint8_t tmp[20];
  if (s == NULL || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
    return LC_ERR_PARAM;
  s += 2;
  for (unsigned i = 0; i < 20; i++) {
    int hi = eth_hexval(s[2 * i]);
    if (hi < 0)
      return LC_ERR_PARAM;
    int lo = eth_hexval(s[2 * i + 1]);
    if (lo < 0)
      return LC_ERR_PARAM;
    tmp[i] = (uint8_t)(hi << 4 | lo);
  }
  if (s[40] != '\0')
    return LC_ERR_PARAM;
  memcpy(addr, tmp, 20);
  return LC_OK;
}

/* transfer(address,uint256): selector a9059cbb || 12 zero bytes || to ||
 * amount (32 bytes big-endian). */
void eth_erc20_transfer_data(const uint8_t to[20], const uint8_t amount[32], uint8_t out[68])
{
  static const uint8_t sel[4] = {0xa9, 0x05, 0x9c, 0xbb};
  memcpy(out, sel, 4);
  memset(out + 4, 0, 12);
  memcpy(out + 16, to, 20);
  memcpy(out + 36, amount, 32);
}

int eth_create_address(const uint8_t sender[20], uint64_t nonce, uint8_t out[20])
{
  rlp_buf b;
  uint8_t h[32];
  size_t m;
  int rc;

  rlp_init(&b, 64);
  m = rlp_list_begin(&b);
  rlp_put_bytes(&b, sender, 20);
  rlp_put_uint(&b, nonce);
  rlp_list_end(&b, m);
  rc = b.err;
  if (rc == LC_OK) {
    keccak256(b.buf, b.len, h);
    memcpy(out, h + 12, 20);
  }
  rlp_free(&b);
  return rc;
}
