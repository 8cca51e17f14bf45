/* u256.h - 256-bit unsigned integers as 32-byte big-endian arrays (token
 * amounts, fees). Never floating point. */
#ifndef CHAIN_U256_H
#define CHAIN_U256_H
#include <stddef.h>
#include <stdint.h>

void u256_from_u64(uint64_t v, uint8_t out[32]);
/* out = a * 10^exp; LC_ERR_PARAM on overflow. */
int u256_mul_pow10(uint64_t a, unsigned exp, uint8_t out[32]);
/* Decimal string <-> u256 (no sign, no leading '+'; <= 78 digits). */
int u256_from_dec(const char *s, uint8_t out[32]);
void u256_to_dec(const uint8_t v[32], char out[80]);
/* "0x..." quantity (JSON-RPC) <-> u256. to_hex writes minimal form ("0x0" for zero). */
int u256_from_hex(const char *s, uint8_t out[32]);
void u256_to_hex(const uint8_t v[32], char out[67]);
/* r = a + b, r = a * small; LC_ERR_PARAM on overflow. */
int u256_add(const uint8_t a[32], const uint8_t b[32], uint8_t r[32]);
int u256_mul_u64(const uint8_t a[32], uint64_t b, uint8_t r[32]);
int u256_cmp(const uint8_t a[32], const uint8_t b[32]); /* -1, 0, 1 */

#endif
