/* test_crypto.c - Check unit tests of the chain-svc crypto core: Keccak-256,
 * RLP, u256, BIP-39/32/44 wallets, EIP-55 addresses, EIP-1559 signing and
 * ERC-20 calldata.
 *
 * Every expected value comes from an independent source: the Ethereum wiki
 * (RLP), the BIPs' published vectors (BIP-32 vectors 1-3, BIP-39 "TREZOR"),
 * EIP-55's examples, and the local anvil node (web3_sha3 for Keccak and
 * eth_signTransaction for the EIP-1559 raw transactions; RFC 6979 makes the
 * signatures deterministic, so the raw bytes must match exactly). */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include "ethtx.h"
#include "keccak.h"
#include "lc/err.h"
#include "rlp.h"
#include "u256.h"
#include "wallet.h"

/* ---- helpers ---------------------------------------------------------- */

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decodes hex (optional 0x) into a new buffer; aborts the test on bad input. */
static uint8_t *unhex(const char *h, size_t *n)
{
  if (h[0] == '0' && h[1] == 'x')
    h += 2;
  size_t l = strlen(h);
  ck_assert_uint_eq(l % 2, 0);
  uint8_t *p = malloc(l / 2 + 1);
  ck_assert_ptr_nonnull(p);
  for (size_t i = 0; i < l / 2; i++) {
    int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);
    ck_assert(a >= 0 && b >= 0);
    p[i] = (uint8_t)(a << 4 | b);
  }
  *n = l / 2;
  return p;
}

static void unhex_fixed(const char *h, uint8_t *out, size_t n)
{
  size_t got = 0;
  uint8_t *p = unhex(h, &got);
  ck_assert_uint_eq(got, n);
  memcpy(out, p, n);
  free(p);
}

/* Lowercase hex of p[0..n) into a new string. */
static char *tohex(const uint8_t *p, size_t n)
{
  static const char hx[] = "0123456789abcdef";
  char *s = malloc(2 * n + 1);
  ck_assert_ptr_nonnull(s);
  for (size_t i = 0; i < n; i++) {
    s[2 * i] = hx[p[i] >> 4];
    s[2 * i + 1] = hx[p[i] & 0x0f];
  }
  s[2 * n] = '\0';
  return s;
}

#define ck_assert_hex(p, n, expect)                                                            \
  do {                                                                                         \
    char *hx_ = tohex((p), (n));                                                               \
    ck_assert_str_eq(hx_, (expect));                                                           \
    free(hx_);                                                                                 \
  } while (0)

/* ---- Keccak-256 ------------------------------------------------------- */

static void keccak_rep(uint8_t byte, size_t n, const char *expect)
{
  uint8_t *in = malloc(n ? n : 1);
  uint8_t h[32];
  ck_assert_ptr_nonnull(in);
  memset(in, byte, n);
  keccak256(in, n, h);
  ck_assert_hex(h, 32, expect);
  free(in);
}

START_TEST(test_keccak_known)
{
  uint8_t h[32];
  keccak256("", 0, h);
  ck_assert_hex(h, 32, "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
  keccak256(NULL, 0, h);
  ck_assert_hex(h, 32, "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
  keccak256("abc", 3, h);
  ck_assert_hex(h, 32, "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
}
END_TEST

/* Expected values from anvil's web3_sha3 on n bytes of 0xa3. */
START_TEST(test_keccak_blocks)
{
  keccak_rep(0xa3, 200, "3a57666b048777f2c953dc4456f45a2588e1cb6f2da760122d530ac2ce607d4a");
  keccak_rep(0xa3, 135, "3d28d08c3dacab77392064a939f3e7f8d03f2e02e2c664ac08a05f63ac652626");
  keccak_rep(0xa3, 136, "b82d89d96e5575d11a9e1f4cabb2a45e60899e69a19a724cd796bdcf13511018");
  keccak_rep(0xa3, 137, "ec8008a74e50bc7d6b22c3ad85402bf10e6d4449f3c8618e36c461b8a44eeafb");
}
END_TEST

/* ---- RLP -------------------------------------------------------------- */

static const char *LOREM = "Lorem ipsum dolor sit amet, consectetur adipisicing elit";
static const char *LOREM_RLP =
    "b8384c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e7365637465747572206164"
    "697069736963696e6720656c6974";

static void rlp_expect(rlp_buf *b, const char *expect)
{
  ck_assert_int_eq(b->err, LC_OK);
  ck_assert_hex(b->buf, b->len, expect);
  rlp_free(b);
}

START_TEST(test_rlp_wiki)
{
  rlp_buf b;
  size_t m, m1, m2, m3;

  rlp_init(&b, 1024);
  ck_assert_int_eq(rlp_put_str(&b, "dog"), LC_OK);
  rlp_expect(&b, "83646f67");

  rlp_init(&b, 1024);
  m = rlp_list_begin(&b);
  rlp_put_str(&b, "cat");
  rlp_put_str(&b, "dog");
  ck_assert_int_eq(rlp_list_end(&b, m), LC_OK);
  rlp_expect(&b, "c88363617483646f67");

  rlp_init(&b, 1024);
  rlp_put_str(&b, "");
  rlp_expect(&b, "80");

  rlp_init(&b, 1024);
  m = rlp_list_begin(&b);
  rlp_list_end(&b, m);
  rlp_expect(&b, "c0");

  rlp_init(&b, 1024);
  rlp_put_uint(&b, 0);
  rlp_expect(&b, "80");

  rlp_init(&b, 1024);
  rlp_put_bytes(&b, (const uint8_t *)"\0", 1);
  rlp_expect(&b, "00");

  rlp_init(&b, 1024);
  rlp_put_uint(&b, 15);
  rlp_expect(&b, "0f");

  rlp_init(&b, 1024);
  rlp_put_uint(&b, 1024);
  rlp_expect(&b, "820400");

  /* set-theoretic three: [ [], [[]], [ [], [[]] ] ] */
  rlp_init(&b, 1024);
  m = rlp_list_begin(&b);
  m1 = rlp_list_begin(&b);
  rlp_list_end(&b, m1);
  m1 = rlp_list_begin(&b);
  m2 = rlp_list_begin(&b);
  rlp_list_end(&b, m2);
  rlp_list_end(&b, m1);
  m1 = rlp_list_begin(&b);
  m2 = rlp_list_begin(&b);
  rlp_list_end(&b, m2);
  m2 = rlp_list_begin(&b);
  m3 = rlp_list_begin(&b);
  rlp_list_end(&b, m3);
  rlp_list_end(&b, m2);
  rlp_list_end(&b, m1);
  ck_assert_int_eq(rlp_list_end(&b, m), LC_OK);
  rlp_expect(&b, "c7c0c1c0c3c0c1c0");

  rlp_init(&b, 1024);
  rlp_put_str(&b, LOREM);
  rlp_expect(&b, LOREM_RLP);
}
END_TEST

START_TEST(test_rlp_integers)
{
  rlp_buf b;
  uint8_t v[32];

  rlp_init(&b, 64);
  rlp_put_uint(&b, 0x7f);
  rlp_put_uint(&b, 0x80);
  rlp_put_uint(&b, UINT64_MAX);
  rlp_expect(&b, "7f818088ffffffffffffffff");

  rlp_init(&b, 128);
  ck_assert_int_eq(u256_mul_pow10(5, 18, v), LC_OK);
  rlp_put_u256(&b, v);
  memset(v, 0, 32);
  rlp_put_u256(&b, v);
  v[31] = 1;
  rlp_put_u256(&b, v);
  memset(v, 0xff, 32);
  rlp_put_u256(&b, v);
  rlp_expect(&b, "884563918244f400008001a0ffffffffffffffffffffffffffffffffffffffffffffffffffffff"
                 "ffffffffff");
}
END_TEST

static char *rep_str(char c, size_t n)
{
  char *s = malloc(n + 1);
  ck_assert_ptr_nonnull(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

START_TEST(test_rlp_long)
{
  rlp_buf b;
  size_t m, m1;
  char *s54 = rep_str('a', 54), *s55 = rep_str('a', 55), *s56 = rep_str('a', 56);
  char *exp;
  size_t cap = 4096;

  /* string boundary 55 / 56 */
  rlp_init(&b, cap);
  rlp_put_str(&b, s55);
  ck_assert_int_eq(b.buf[0], 0xb7);
  ck_assert_uint_eq(b.len, 56);
  rlp_free(&b);
  rlp_init(&b, cap);
  rlp_put_str(&b, s56);
  ck_assert_int_eq(b.buf[0], 0xb8);
  ck_assert_int_eq(b.buf[1], 56);
  ck_assert_uint_eq(b.len, 58);
  rlp_free(&b);

  /* list payload of exactly 55 bytes keeps the short form */
  rlp_init(&b, cap);
  m = rlp_list_begin(&b);
  rlp_put_str(&b, s54);
  rlp_list_end(&b, m);
  ck_assert_int_eq(b.err, LC_OK);
  ck_assert_uint_eq(b.len, 56);
  ck_assert_int_eq(b.buf[0], 0xf7);
  ck_assert_int_eq(b.buf[1], 0xb6);
  rlp_free(&b);

  /* list payload of 56 bytes takes the long form */
  rlp_init(&b, cap);
  m = rlp_list_begin(&b);
  rlp_put_str(&b, s55);
  ck_assert_int_eq(rlp_list_end(&b, m), LC_OK);
  ck_assert_uint_eq(b.len, 58);
  ck_assert_int_eq(b.buf[0], 0xf8);
  ck_assert_int_eq(b.buf[1], 56);
  ck_assert_int_eq(b.buf[2], 0xb7);
  rlp_free(&b);

  /* [LOREM, "dog"]: payload 62 -> f83e */
  rlp_init(&b, cap);
  m = rlp_list_begin(&b);
  rlp_put_str(&b, LOREM);
  rlp_put_str(&b, "dog");
  ck_assert_int_eq(rlp_list_end(&b, m), LC_OK);
  exp = malloc(2048);
  ck_assert_ptr_nonnull(exp);
  snprintf(exp, 2048, "f83e%s83646f67", LOREM_RLP);
  rlp_expect(&b, exp);

  /* nested long lists: [[LOREM], "dog"] -> f840 f83a <lorem> 83646f67 */
  rlp_init(&b, cap);
  m = rlp_list_begin(&b);
  m1 = rlp_list_begin(&b);
  rlp_put_str(&b, LOREM);
  rlp_list_end(&b, m1);
  rlp_put_str(&b, "dog");
  ck_assert_int_eq(rlp_list_end(&b, m), LC_OK);
  snprintf(exp, 2048, "f840f83a%s83646f67", LOREM_RLP);
  rlp_expect(&b, exp);
  free(exp);

  /* a 300-byte payload needs a two-byte length: f9 012c */
  rlp_init(&b, cap);
  m = rlp_list_begin(&b);
  for (int i = 0; i < 100; i++)
    rlp_put_str(&b, "ab");
  ck_assert_int_eq(rlp_list_end(&b, m), LC_OK);
  ck_assert_uint_eq(b.len, 303);
  ck_assert_int_eq(b.buf[0], 0xf9);
  ck_assert_int_eq(b.buf[1], 0x01);
  ck_assert_int_eq(b.buf[2], 0x2c);
  ck_assert_int_eq(b.buf[3], 0x82);
  ck_assert_int_eq(b.buf[302], 'b');
  rlp_free(&b);

  free(s54);
  free(s55);
  free(s56);
}
END_TEST

START_TEST(test_rlp_cap)
{
  rlp_buf b;
  size_t m;

  /* "dog" needs 4 bytes */
  rlp_init(&b, 3);
  ck_assert_int_eq(rlp_put_str(&b, "dog"), LC_ERR_TOO_LARGE);
  /* sticky */
  ck_assert_int_eq(rlp_put_uint(&b, 1), LC_ERR_TOO_LARGE);
  ck_assert_int_eq(b.err, LC_ERR_TOO_LARGE);
  rlp_free(&b);

  rlp_init(&b, 4);
  ck_assert_int_eq(rlp_put_str(&b, "dog"), LC_OK);
  ck_assert_uint_eq(b.len, 4);
  ck_assert_int_eq(rlp_put_uint(&b, 0), LC_ERR_TOO_LARGE);
  rlp_free(&b);

  /* [LOREM] encodes as 60 bytes; the items fit in 59 but the long list
   * header does not, so rlp_list_end must fail */
  rlp_init(&b, 59);
  m = rlp_list_begin(&b);
  ck_assert_int_eq(rlp_put_str(&b, LOREM), LC_OK);
  ck_assert_int_eq(rlp_list_end(&b, m), LC_ERR_TOO_LARGE);
  ck_assert_int_eq(rlp_put_str(&b, ""), LC_ERR_TOO_LARGE);
  rlp_free(&b);

  rlp_init(&b, 60);
  m = rlp_list_begin(&b);
  rlp_put_str(&b, LOREM);
  ck_assert_int_eq(rlp_list_end(&b, m), LC_OK);
  ck_assert_uint_eq(b.len, 60);
  rlp_free(&b);

  /* cap 0: even a list header fails */
  rlp_init(&b, 0);
  m = rlp_list_begin(&b);
  ck_assert_int_eq(rlp_list_end(&b, m), LC_ERR_TOO_LARGE);
  rlp_free(&b);
  rlp_free(NULL);
}
END_TEST

/* ---- u256 ------------------------------------------------------------- */

static const char *U256_MAX_DEC =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

START_TEST(test_u256_convert)
{
  uint8_t v[32], w[32];
  char dec[80], hex[67];

  ck_assert_int_eq(u256_mul_pow10(5, 18, v), LC_OK);
  u256_to_hex(v, hex);
  ck_assert_str_eq(hex, "0x4563918244f40000");
  u256_to_dec(v, dec);
  ck_assert_str_eq(dec, "5000000000000000000");
  u256_from_u64(5000000000000000000ull, w);
  ck_assert_int_eq(u256_cmp(v, w), 0);

  ck_assert_int_eq(u256_from_dec(U256_MAX_DEC, v), LC_OK);
  u256_to_hex(v, hex);
  ck_assert_str_eq(hex, "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
  u256_to_dec(v, dec);
  ck_assert_str_eq(dec, U256_MAX_DEC);
  ck_assert_int_eq(u256_from_hex(hex, w), LC_OK);
  ck_assert_int_eq(u256_cmp(v, w), 0);

  ck_assert_int_eq(u256_from_dec("0", v), LC_OK);
  u256_to_dec(v, dec);
  ck_assert_str_eq(dec, "0");
  u256_to_hex(v, hex);
  ck_assert_str_eq(hex, "0x0");
  ck_assert_int_eq(u256_from_hex("0x0", w), LC_OK);
  ck_assert_int_eq(u256_cmp(v, w), 0);

  ck_assert_int_eq(u256_from_dec("000123456789", v), LC_OK);
  u256_to_dec(v, dec);
  ck_assert_str_eq(dec, "123456789");
  u256_to_hex(v, hex);
  ck_assert_str_eq(hex, "0x75bcd15");

  ck_assert_int_eq(u256_from_hex("0XDE0B6B3A7640000", v), LC_OK);
  u256_to_dec(v, dec);
  ck_assert_str_eq(dec, "1000000000000000000");
  /* 64 digits of eth_call output, and extra leading zeros */
  ck_assert_int_eq(
      u256_from_hex("0x0000000000000000000000000000000000000000000000000de0b6b3a7640000", w),
      LC_OK);
  ck_assert_int_eq(u256_cmp(v, w), 0);
  ck_assert_int_eq(
      u256_from_hex("0x000000000000000000000000000000000000000000000000000de0b6b3a7640000", w),
      LC_OK);
  ck_assert_int_eq(u256_cmp(v, w), 0);
}
END_TEST

START_TEST(test_u256_errors)
{
  uint8_t v[32], one[32], r[32];
  char dec[80];

  /* 2^256 overflows */
  ck_assert_int_eq(u256_from_dec("115792089237316195423570985008687907853269984665640564039457"
                                 "584007913129639936",
                                 v),
                   LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_dec("", v), LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_dec("+1", v), LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_dec("-1", v), LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_dec("12a", v), LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_dec("1.5", v), LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_dec(NULL, v), LC_ERR_PARAM);
  /* 79 digits, even if zeros */
  ck_assert_int_eq(u256_from_dec("0000000000000000000000000000000000000000000000000000000000"
                                 "000000000000000000001",
                                 v),
                   LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_hex("0x", v), LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_hex("1234", v), LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_hex("0xg1", v), LC_ERR_PARAM);
  ck_assert_int_eq(u256_from_hex("0x1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
                                 "ff",
                                 v),
                   LC_ERR_PARAM);

  /* add */
  u256_from_u64(1, one);
  ck_assert_int_eq(u256_from_dec(U256_MAX_DEC, v), LC_OK);
  ck_assert_int_eq(u256_add(v, one, r), LC_ERR_PARAM);
  ck_assert_int_eq(u256_add(one, one, r), LC_OK);
  u256_to_dec(r, dec);
  ck_assert_str_eq(dec, "2");
  u256_from_u64(UINT64_MAX, v);
  ck_assert_int_eq(u256_add(v, one, r), LC_OK);
  u256_to_dec(r, dec);
  ck_assert_str_eq(dec, "18446744073709551616");

  /* mul_u64 */
  ck_assert_int_eq(u256_from_dec(U256_MAX_DEC, v), LC_OK);
  ck_assert_int_eq(u256_mul_u64(v, 2, r), LC_ERR_PARAM);
  ck_assert_int_eq(u256_mul_u64(v, 1, r), LC_OK);
  ck_assert_int_eq(u256_cmp(v, r), 0);
  ck_assert_int_eq(u256_mul_u64(v, 0, r), LC_OK);
  u256_to_dec(r, dec);
  ck_assert_str_eq(dec, "0");
  /* 2^192 * (2^64 - 1) fits; 2^193 * (2^64 - 1) does not */
  ck_assert_int_eq(u256_from_hex("0x1000000000000000000000000000000000000000000000000", v), LC_OK);
  ck_assert_int_eq(u256_mul_u64(v, UINT64_MAX, r), LC_OK);
  u256_to_dec(r, dec);
  ck_assert_str_eq(dec, "115792089237316195417293883273301227089434195242432897623355228563449"
                        "095127040");
  ck_assert_int_eq(u256_mul_u64(v, 2, v), LC_OK);
  ck_assert_int_eq(u256_mul_u64(v, UINT64_MAX, r), LC_ERR_PARAM);
  /* a 192-bit value times a 64-bit multiplier with both halves set */
  ck_assert_int_eq(u256_from_hex("0x123456789abcdef0fedcba98765432100f1e2d3c4b5a6978", v), LC_OK);
  ck_assert_int_eq(u256_mul_u64(v, 0xfedcba9876543210ull, r), LC_OK);
  u256_to_dec(r, dec);
  ck_assert_str_eq(dec, "8197508105215629418130098640203957655936077711195003821827952785426932"
                        "041600");

  /* pow10 */
  ck_assert_int_eq(u256_mul_pow10(1, 77, r), LC_OK);
  ck_assert_int_eq(u256_mul_pow10(1, 78, r), LC_ERR_PARAM);
  ck_assert_int_eq(u256_mul_pow10(2, 77, r), LC_ERR_PARAM);
  ck_assert_int_eq(u256_mul_pow10(0, 1000, r), LC_OK);
  u256_to_dec(r, dec);
  ck_assert_str_eq(dec, "0");

  /* cmp */
  u256_from_u64(5, v);
  u256_from_u64(6, r);
  ck_assert_int_eq(u256_cmp(v, r), -1);
  ck_assert_int_eq(u256_cmp(r, v), 1);
}
END_TEST

/* ---- wallet ----------------------------------------------------------- */

static const char *ANVIL_MNEMONIC = "test test test test test test test test test test test junk";

START_TEST(test_bip39_trezor)
{
  uint8_t seed[64], seed2[64];
  ck_assert_int_eq(wallet_seed_from_mnemonic("abandon abandon abandon abandon abandon abandon "
                                             "abandon abandon abandon abandon abandon about",
                                             "TREZOR", seed),
                   LC_OK);
  ck_assert_hex(seed, 64,
                "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18"
                "264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04");
  /* whitespace is normalised */
  ck_assert_int_eq(wallet_seed_from_mnemonic("  abandon abandon\tabandon abandon abandon  abandon "
                                             "abandon abandon abandon abandon abandon\nabout\n",
                                             "TREZOR", seed2),
                   LC_OK);
  ck_assert_int_eq(memcmp(seed, seed2, 64), 0);
  /* different passphrase, different seed; NULL == "" */
  ck_assert_int_eq(wallet_seed_from_mnemonic(ANVIL_MNEMONIC, NULL, seed), LC_OK);
  ck_assert_int_eq(wallet_seed_from_mnemonic(ANVIL_MNEMONIC, "", seed2), LC_OK);
  ck_assert_int_eq(memcmp(seed, seed2, 64), 0);
  ck_assert_int_eq(wallet_seed_from_mnemonic(ANVIL_MNEMONIC, "x", seed2), LC_OK);
  ck_assert_int_ne(memcmp(seed, seed2, 64), 0);
  /* rejected input */
  ck_assert_int_eq(wallet_seed_from_mnemonic("test test test", NULL, seed), LC_ERR_PARAM);
  ck_assert_int_eq(wallet_seed_from_mnemonic("Test test test test test test test test test test "
                                             "test junk",
                                             NULL, seed),
                   LC_ERR_PARAM);
  ck_assert_int_eq(wallet_seed_from_mnemonic("test test test test test test test test test test "
                                             "test junk test",
                                             NULL, seed),
                   LC_ERR_PARAM);
  ck_assert_int_eq(wallet_seed_from_mnemonic("test test test test test test test test test test "
                                             "test jünk",
                                             NULL, seed),
                   LC_ERR_PARAM);
  ck_assert_int_eq(wallet_seed_from_mnemonic(ANVIL_MNEMONIC, "pässword", seed), LC_ERR_PARAM);
  ck_assert_int_eq(wallet_seed_from_mnemonic("", NULL, seed), LC_ERR_PARAM);
  ck_assert_int_eq(wallet_seed_from_mnemonic(NULL, NULL, seed), LC_ERR_PARAM);
}
END_TEST

static void bip32_expect(const char *seed_hex, const uint32_t *path, size_t depth,
                         const char *priv_hex, const char *cc_hex)
{
  size_t sl = 0;
  uint8_t *seed = unhex(seed_hex, &sl);
  uint8_t priv[32], cc[32];
  ck_assert_int_eq(wallet_bip32_derive(seed, sl, path, depth, priv, cc), LC_OK);
  ck_assert_hex(priv, 32, priv_hex);
  if (cc_hex != NULL)
    ck_assert_hex(cc, 32, cc_hex);
  free(seed);
}

#define H(i) ((uint32_t)(i) | 0x80000000u)

/* Official BIP-32 test vectors 1, 2 (64-byte seed, max indices) and 3 (a
 * master key with a leading zero byte). */
START_TEST(test_bip32_vectors)
{
  const char *tv1 = "000102030405060708090a0b0c0d0e0f";
  const uint32_t p1[] = {H(0), 1, H(2), 2, 1000000000};
  bip32_expect(tv1, p1, 0, "e8f32e723decf4051aefac8e2c93c9c5b214313817cdb01a1494b917c8436b35",
               "873dff81c02f525623fd1fe5167eac3a55a049de3d314bb42ee227ffed37d508");
  bip32_expect(tv1, p1, 1, "edb2e14f9ee77d26dd93b4ecede8d16ed408ce149b6cd80b0715a2d911a0afea",
               "47fdacbd0f1097043b78c63c20c34ef4ed9a111d980047ad16282c7ae6236141");
  bip32_expect(tv1, p1, 2, "3c6cb8d0f6a264c91ea8b5030fadaa8e538b020f0a387421a12de9319dc93368",
               "2a7857631386ba23dacac34180dd1983734e444fdbf774041578e9b6adb37c19");
  bip32_expect(tv1, p1, 3, "cbce0d719ecf7431d88e6a89fa1483e02e35092af60c042b1df2ff59fa424dca",
               NULL);
  bip32_expect(tv1, p1, 4, "0f479245fb19a38a1954c5c7c0ebab2f9bdfd96a17563ef28a6a4b1a2a764ef4",
               NULL);
  bip32_expect(tv1, p1, 5, "471b76e389e528d6de6d816857e012c5455051cad6660850e58372a6c3e6e7c8",
               NULL);

  const char *tv2 = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693"
                    "908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542";
  const uint32_t p2[] = {0, H(2147483647), 1, H(2147483646), 2};
  bip32_expect(tv2, p2, 5, "bb7d39bdb83ecf58f2fd82b6d918341cbef428661ef01ab97c28a4842125ac23",
               "9452b549be8cea3ecb7a84bec10dcfd94afe4d129ebfd3b3cb58eedf394ed271");

  const char *tv3 = "4b381541583be4423346c643850da4b320e46a87ae3d2a4e6da11eba819cd4acba45d2393"
                    "19ac14f863b8d5ab5a0d0c64d2e8a1e7d1457df2e5a3c51c73235be";
  const uint32_t p3[] = {H(0)};
  bip32_expect(tv3, p3, 0, "00ddb80b067e0d4993197fe10f2657a844a384589847602d56f0c629c81aae32",
               "01d28a3e53cffa419ec122c968b3259e16b65076495494d97cae10bbfec3c36f");
  bip32_expect(tv3, p3, 1, "491f7a2eebc7b57028e0d3faa0acda02e75c33b03c48fb288c41e2ea44e1daef",
               "e5fea12a97b927fc9dc3d2cb0d1ea1cf50aa5a1fdc1f933e8906bb38df3377bd");
}
END_TEST

START_TEST(test_bip32_errors)
{
  uint8_t seed[65] = {1}, priv[32], cc[32];
  const uint32_t p[] = {H(0)};
  ck_assert_int_eq(wallet_bip32_derive(seed, 15, p, 1, priv, cc), LC_ERR_PARAM);
  ck_assert_int_eq(wallet_bip32_derive(seed, 65, p, 1, priv, cc), LC_ERR_PARAM);
  ck_assert_int_eq(wallet_bip32_derive(NULL, 16, p, 1, priv, cc), LC_ERR_PARAM);
  ck_assert_int_eq(wallet_bip32_derive(seed, 16, NULL, 1, priv, cc), LC_ERR_PARAM);
  ck_assert_int_eq(wallet_derive_eth(seed, 64, 0x80000000u, 0, priv), LC_ERR_PARAM);
  ck_assert_int_eq(wallet_derive_eth(seed, 64, 0, 0x80000000u, priv), LC_ERR_PARAM);
  ck_assert_int_eq(wallet_derive_eth(seed, 64, 0, 0x7fffffffu, priv), LC_OK);
}
END_TEST

/* anvil's accounts #0..#2 from its default mnemonic (m/44'/60'/0'/0/i). */
START_TEST(test_bip44_anvil)
{
  static const char *expect[] = {
      "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
      "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
  };
  uint8_t seed[64], priv[32], addr[20];
  char cs[43];
  ck_assert_int_eq(wallet_seed_from_mnemonic(ANVIL_MNEMONIC, "", seed), LC_OK);
  for (uint32_t i = 0; i < 3; i++) {
    ck_assert_int_eq(wallet_derive_eth(seed, 64, 0, i, priv), LC_OK);
    ck_assert_int_eq(eth_address_from_priv(priv, addr), LC_OK);
    eth_address_checksum(addr, cs);
    ck_assert_str_eq(cs, expect[i]);
    if (i == 0)
      ck_assert_hex(priv, 32, "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
  }
}
END_TEST

/* ---- addresses -------------------------------------------------------- */

START_TEST(test_eip55)
{
  static const char *vec[] = {
      "0x52908400098527886E0F7030069857D2E4169EE7", "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
      "0xde709f2102306220921060314715629080e2fb77", "0x27b1fdb04752bbc536007a920d24acb045561c26",
      "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
      "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
  };
  uint8_t a[20], b[20];
  char cs[43], lower[43];
  for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
    ck_assert_int_eq(eth_address_parse(vec[i], a), LC_OK);
    eth_address_checksum(a, cs);
    ck_assert_str_eq(cs, vec[i]);
    /* case-insensitive parse gives the same bytes */
    for (size_t j = 0; j < 43; j++)
      lower[j] = (char)((vec[i][j] >= 'A' && vec[i][j] <= 'F') ? vec[i][j] + 32 : vec[i][j]);
    ck_assert_int_eq(eth_address_parse(lower, b), LC_OK);
    ck_assert_int_eq(memcmp(a, b, 20), 0);
  }
  ck_assert_int_eq(eth_address_parse("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", a), LC_ERR_PARAM);
  ck_assert_int_eq(eth_address_parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", a), LC_ERR_PARAM);
  ck_assert_int_eq(eth_address_parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed0", a),
                   LC_ERR_PARAM);
  ck_assert_int_eq(eth_address_parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg", a),
                   LC_ERR_PARAM);
  ck_assert_int_eq(eth_address_parse("", a), LC_ERR_PARAM);
  ck_assert_int_eq(eth_address_parse(NULL, a), LC_ERR_PARAM);
}
END_TEST

/* ---- ERC-20 + EIP-1559 ------------------------------------------------ */

static const char *ANVIL0_PRIV = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
static const char *ERC20_DATA =
    "a9059cbb00000000000000000000000070997970c51812dc3a010c7d01b50e0d17dc79c8000000000000000000"
    "0000000000000000000000000000004563918244f40000";

START_TEST(test_erc20_calldata)
{
  uint8_t to[20], amount[32], out[68];
  ck_assert_int_eq(eth_address_parse("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", to), LC_OK);
  ck_assert_int_eq(u256_mul_pow10(5, 18, amount), LC_OK);
  eth_erc20_transfer_data(to, amount, out);
  ck_assert_hex(out, 68, ERC20_DATA);
  ck_assert_int_eq(out[0], 0xa9);
  ck_assert_int_eq(out[3], 0xbb);
  ck_assert_int_eq(memcmp(out + 16, to, 20), 0);
  ck_assert_int_eq(memcmp(out + 36, amount, 32), 0);
}
END_TEST

/* ERC-20 transfer tx; raw from anvil eth_signTransaction (account #0,
 * chainId 31337, nonce 7, tip 1 gwei, maxFee 2 gwei, gas 60000,
 * to 0x5FbDB2315678afecb367f032d93F642f64180aa3, value 0, accessList []). */
static const char *KAT1_RAW =
    "02f8b1827a6907843b9aca00847735940082ea60945fbdb2315678afecb367f032d93f642f64180aa380b844a90"
    "59cbb00000000000000000000000070997970c51812dc3a010c7d01b50e0d17dc79c8000000000000000000000000"
    "0000000000000000000000004563918244f40000c001a04e8a153823090db3dd087c78a4e014905b654c08a7a0ad"
    "140e704b88395749f5a02201fc8030985315ead2986fbb5a31d6993181f1df8e5a5243138b8989d6f327";
static const char *KAT1_HASH = "9fdc5456e98593a7442c0dfce14d1463ea38bedfa3d89b1da02f773ac63ccfc2";

static void kat1_tx(ethtx_1559 *tx, uint8_t data[68])
{
  uint8_t to[20], amount[32];
  memset(tx, 0, sizeof *tx);
  tx->chain_id = 31337;
  tx->nonce = 7;
  ck_assert_int_eq(u256_mul_pow10(1, 9, tx->max_priority_fee), LC_OK);
  ck_assert_int_eq(u256_mul_pow10(2, 9, tx->max_fee), LC_OK);
  tx->gas_limit = 60000;
  ck_assert_int_eq(eth_address_parse("0x5FbDB2315678afecb367f032d93F642f64180aa3", tx->to), LC_OK);
  u256_from_u64(0, tx->value);
  ck_assert_int_eq(eth_address_parse("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", to), LC_OK);
  ck_assert_int_eq(u256_mul_pow10(5, 18, amount), LC_OK);
  eth_erc20_transfer_data(to, amount, data);
  tx->data = data;
  tx->data_len = 68;
}

/* Recovers the signer of a type-2 raw tx whose r and s are 32 bytes and whose
 * signed list has a long (0xf8, one length byte) header: the unsigned payload
 * is rebuilt from the raw bytes by hand, independently of ethtx/rlp. */
static void recover_sender(const uint8_t *raw, size_t raw_len, uint8_t addr[20])
{
  const secp256k1_context *ctx = eth_secp_ctx();
  secp256k1_ecdsa_recoverable_signature sig;
  secp256k1_pubkey pk;
  uint8_t rs[64], h[32], pub[65];
  size_t pub_len = sizeof pub;
  ck_assert_ptr_nonnull(ctx);
  ck_assert_int_eq(raw[0], 0x02);
  ck_assert_int_eq(raw[1], 0xf8);
  ck_assert_uint_eq(raw[2], raw_len - 3);
  /* tail: yParity(1) a0 r(32) a0 s(32) */
  const uint8_t *tail = raw + raw_len - 67;
  ck_assert_int_eq(tail[1], 0xa0);
  ck_assert_int_eq(tail[34], 0xa0);
  int recid = tail[0] == 0x80 ? 0 : tail[0];
  ck_assert(recid == 0 || recid == 1);
  memcpy(rs, tail + 2, 32);
  memcpy(rs + 32, tail + 35, 32);
  size_t flen = raw_len - 3 - 67;
  uint8_t *u = malloc(flen + 3);
  ck_assert_ptr_nonnull(u);
  size_t ul;
  u[0] = 0x02;
  if (flen <= 55) {
    u[1] = (uint8_t)(0xc0 + flen);
    memcpy(u + 2, raw + 3, flen);
    ul = flen + 2;
  } else {
    u[1] = 0xf8;
    u[2] = (uint8_t)flen;
    memcpy(u + 3, raw + 3, flen);
    ul = flen + 3;
  }
  keccak256(u, ul, h);
  free(u);
  ck_assert_int_eq(secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, &sig, rs, recid), 1);
  ck_assert_int_eq(secp256k1_ecdsa_recover(ctx, &pk, &sig, h), 1);
  ck_assert_int_eq(
      secp256k1_ec_pubkey_serialize(ctx, pub, &pub_len, &pk, SECP256K1_EC_UNCOMPRESSED), 1);
  keccak256(pub + 1, 64, h);
  memcpy(addr, h + 12, 20);
}

START_TEST(test_eip1559_kat_erc20)
{
  ethtx_1559 tx;
  uint8_t data[68], priv[32], hash[32], h2[32], addr[20];
  uint8_t *raw = NULL;
  size_t raw_len = 0;
  char err[LC_ERR_LEN] = "";
  char cs[43];

  kat1_tx(&tx, data);
  unhex_fixed(ANVIL0_PRIV, priv, 32);
  ck_assert_int_eq(ethtx_sign(&tx, priv, &raw, &raw_len, hash, err), LC_OK);
  ck_assert_ptr_nonnull(raw);
  ck_assert_hex(raw, raw_len, KAT1_RAW);
  ck_assert_hex(hash, 32, KAT1_HASH);
  keccak256(raw, raw_len, h2);
  ck_assert_int_eq(memcmp(hash, h2, 32), 0);
  recover_sender(raw, raw_len, addr);
  eth_address_checksum(addr, cs);
  ck_assert_str_eq(cs, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
  free(raw);
}
END_TEST

/* Plain ETH transfers of 1 ether to account #1 (tip 0, maxFee 1 gwei,
 * gas 21000, empty data): nonce 0 (yParity 1) and nonce 9 (yParity 0). */
START_TEST(test_eip1559_kat_eth)
{
  static const struct {
    uint64_t nonce;
    const char *raw;
  } kat[] = {
      {0, "02f870827a698080843b9aca008252089470997970c51812dc3a010c7d01b50e0d17dc79c8880de0b6b3a76"
          "4000080c001a08f6df62ae4c4f6bff996af726c7a01ab380c0d2ea22896c5f567eddba4ae643ba04fc0140"
          "42cf20b2af9599372e7a8cc4866ef7c57b0b38ec1bca323384c174b44"},
      {9, "02f870827a690980843b9aca008252089470997970c51812dc3a010c7d01b50e0d17dc79c8880de0b6b3a76"
          "4000080c080a070483673c3be603d96cc64ba1cdb99ae8c18082da1092b05300995c60b0985b8a003296f0"
          "ea0b9e18a4a08af920779dc53666d40f52214ebb91d5463fffbacd846"},
  };
  uint8_t priv[32], hash[32], h2[32], addr[20], me[20];
  unhex_fixed(ANVIL0_PRIV, priv, 32);
  ck_assert_int_eq(eth_address_from_priv(priv, me), LC_OK);
  for (size_t i = 0; i < 2; i++) {
    ethtx_1559 tx;
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    memset(&tx, 0, sizeof tx);
    tx.chain_id = 31337;
    tx.nonce = kat[i].nonce;
    ck_assert_int_eq(u256_mul_pow10(1, 9, tx.max_fee), LC_OK);
    tx.gas_limit = 21000;
    ck_assert_int_eq(eth_address_parse("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", tx.to),
                     LC_OK);
    ck_assert_int_eq(u256_from_dec("1000000000000000000", tx.value), LC_OK);
    ck_assert_int_eq(ethtx_sign(&tx, priv, &raw, &raw_len, hash, NULL), LC_OK);
    ck_assert_hex(raw, raw_len, kat[i].raw);
    keccak256(raw, raw_len, h2);
    ck_assert_int_eq(memcmp(hash, h2, 32), 0);
    recover_sender(raw, raw_len, addr);
    ck_assert_int_eq(memcmp(addr, me, 20), 0);
    free(raw);
  }
}
END_TEST

START_TEST(test_eip1559_errors)
{
  ethtx_1559 tx;
  uint8_t data[68], priv[32], hash[32];
  uint8_t *raw = (uint8_t *)&tx; /* must be reset to NULL */
  size_t raw_len = 99;
  char err[LC_ERR_LEN] = "";

  kat1_tx(&tx, data);
  memset(priv, 0, 32);
  ck_assert_int_eq(ethtx_sign(&tx, priv, &raw, &raw_len, hash, err), LC_ERR_PARAM);
  ck_assert_ptr_null(raw);
  ck_assert_uint_eq(raw_len, 0);
  ck_assert(strlen(err) > 0);
  /* the group order n is not a valid key either */
  unhex_fixed("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", priv, 32);
  ck_assert_int_eq(ethtx_sign(&tx, priv, &raw, &raw_len, hash, err), LC_ERR_PARAM);
  unhex_fixed(ANVIL0_PRIV, priv, 32);
  tx.data = NULL;
  ck_assert_int_eq(ethtx_sign(&tx, priv, &raw, &raw_len, hash, err), LC_ERR_PARAM);
  ck_assert_ptr_null(raw);
  /* no data at all is fine */
  tx.data_len = 0;
  ck_assert_int_eq(ethtx_sign(&tx, priv, &raw, &raw_len, hash, err), LC_OK);
  free(raw);
  /* large calldata (3-byte RLP lengths) */
  size_t big = 100000;
  uint8_t *bd = calloc(1, big);
  ck_assert_ptr_nonnull(bd);
  tx.data = bd;
  tx.data_len = big;
  ck_assert_int_eq(ethtx_sign(&tx, priv, &raw, &raw_len, hash, err), LC_OK);
  ck_assert_int_eq(raw[0], 0x02);
  ck_assert_int_eq(raw[1], 0xfa); /* list with a 3-byte length */
  ck_assert_uint_eq(((size_t)raw[2] << 16 | (size_t)raw[3] << 8 | raw[4]), raw_len - 5);
  free(raw);
  free(bd);
}
END_TEST

/* Concurrent signing from several threads (shared context, pthread_once). */
#define SIGN_THREADS 4
#define SIGN_ITERS 200

static void *sign_worker(void *arg)
{
  int *ok = arg;
  ethtx_1559 tx;
  uint8_t data[68], priv[32], hash[32];
  size_t n = 0;
  uint8_t *want = unhex(KAT1_RAW, &n);
  unhex_fixed(ANVIL0_PRIV, priv, 32);
  kat1_tx(&tx, data);
  *ok = 1;
  for (int i = 0; i < SIGN_ITERS; i++) {
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (ethtx_sign(&tx, priv, &raw, &raw_len, hash, NULL) != LC_OK || raw_len != n ||
        memcmp(raw, want, n) != 0)
      *ok = 0;
    free(raw);
  }
  free(want);
  return NULL;
}

START_TEST(test_eip1559_threads)
{
  pthread_t th[SIGN_THREADS];
  int ok[SIGN_THREADS];
  for (int i = 0; i < SIGN_THREADS; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, sign_worker, &ok[i]), 0);
  for (int i = 0; i < SIGN_THREADS; i++) {
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(ok[i], 1);
  }
}
END_TEST

/* ---- runner ----------------------------------------------------------- */

static Suite *crypto_suite(void)
{
  Suite *s = suite_create("chain-crypto");
  TCase *tc;

  tc = tcase_create("keccak");
  tcase_add_test(tc, test_keccak_known);
  tcase_add_test(tc, test_keccak_blocks);
  suite_add_tcase(s, tc);

  tc = tcase_create("rlp");
  tcase_add_test(tc, test_rlp_wiki);
  tcase_add_test(tc, test_rlp_integers);
  tcase_add_test(tc, test_rlp_long);
  tcase_add_test(tc, test_rlp_cap);
  suite_add_tcase(s, tc);

  tc = tcase_create("u256");
  tcase_add_test(tc, test_u256_convert);
  tcase_add_test(tc, test_u256_errors);
  suite_add_tcase(s, tc);

  tc = tcase_create("wallet");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_bip39_trezor);
  tcase_add_test(tc, test_bip32_vectors);
  tcase_add_test(tc, test_bip32_errors);
  tcase_add_test(tc, test_bip44_anvil);
  suite_add_tcase(s, tc);

  tc = tcase_create("eth");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_eip55);
  tcase_add_test(tc, test_erc20_calldata);
  tcase_add_test(tc, test_eip1559_kat_erc20);
  tcase_add_test(tc, test_eip1559_kat_eth);
  tcase_add_test(tc, test_eip1559_errors);
  tcase_add_test(tc, test_eip1559_threads);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(crypto_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
