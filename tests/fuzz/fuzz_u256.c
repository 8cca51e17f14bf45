/* fuzz_u256.c - chain-svc's number and address parsers: u256_from_dec,
 * u256_from_hex (JSON-RPC quantities) and eth_address_parse, with round
 * trips through u256_to_dec/u256_to_hex and eth_address_checksum.
 * chain-svc has an RLP encoder only (it never decodes RLP), so there is no
 * RLP decoder to fuzz; these are its parsers of outside input. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ethtx.h"
#include "fuzz_util.h"
#include "lc/err.h"
#include "u256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fz_strndup(data, size);
  uint8_t v[32], w[32], addr[20], addr2[20];
  char dec[80], hex[67], cs[43];
  if (u256_from_dec(s, v) == LC_OK) {
    u256_to_dec(v, dec);
    FZ_CHECK(u256_from_dec(dec, w) == LC_OK && memcmp(v, w, 32) == 0);
    u256_to_hex(v, hex);
    FZ_CHECK(u256_from_hex(hex, w) == LC_OK && memcmp(v, w, 32) == 0);
  }
  if (u256_from_hex(s, v) == LC_OK) {
    u256_to_hex(v, hex);
    FZ_CHECK(u256_from_hex(hex, w) == LC_OK && memcmp(v, w, 32) == 0);
    u256_to_dec(v, dec);
    FZ_CHECK(u256_from_dec(dec, w) == LC_OK && memcmp(v, w, 32) == 0);
    uint8_t r[32];
    (void)u256_add(v, w, r);
    (void)u256_mul_u64(v, 1000000007ULL, r);
  }
  if (eth_address_parse(s, addr) == LC_OK) {
    FZ_CHECK(strlen(s) == 42);
    eth_address_checksum(addr, cs);
    FZ_CHECK(strcasecmp(cs, s) == 0);
    FZ_CHECK(eth_address_parse(cs, addr2) == LC_OK && memcmp(addr, addr2, 20) == 0);
  }
  free(s);
  return 0;
}
