/* u256.c - 256-bit unsigned arithmetic on 32-byte big-endian arrays.
 *
 * Internally converts to eight 32-bit little-endian limbs so every partial
 * product fits a uint64_t. All functions are pure (thread-safe); every
 * overflow is detected and reported as LC_ERR_PARAM, never wrapped. */
#include "u256.h"

#include <string.h>
#include "lc/err.h"

#define U256_LIMBS 8

static void u256_to_limbs(const uint8_t be[32], uint32_t l[U256_LIMBS])
{
  for (unsigned i = 0; i < U256_LIMBS; i++) {
    const uint8_t *p = be + 32 - 4 * (i + 1);
    l[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  }
}

static void u256_from_limbs(const uint32_t l[U256_LIMBS], uint8_t be[32])
{
  for (unsigned i = 0; i < U256_LIMBS; i++) {
    uint8_t *p = be + 32 - 4 * (i + 1);
    p[0] = (uint8_t)(l[i] >> 24);
    p[1] = (uint8_t)(l[i] >> 16);
    p[2] = (uint8_t)(l[i] >> 8);
    p[3] = (uint8_t)l[i];
  }
}

/* l = l * m + add; returns the carry out of the top limb (0 = no overflow). */
static uint32_t u256_limbs_muladd(uint32_t l[U256_LIMBS], uint32_t m, uint32_t add)
{
  uint64_t carry = add;
  for (unsigned i = 0; i < U256_LIMBS; i++) {
    uint64_t t = (uint64_t)l[i] * m + carry;
    l[i] = (uint32_t)t;
    carry = t >> 32;
  }
  return (uint32_t)carry;
}

/* l = l / d; returns the remainder. d != 0. */
static uint32_t u256_limbs_divmod(uint32_t l[U256_LIMBS], uint32_t d)
{
  uint64_t rem = 0;
  for (unsigned i = U256_LIMBS; i-- > 0;) {
    uint64_t cur = rem << 32 | l[i];
    l[i] = (uint32_t)(cur / d);
    rem = cur % d;
  }
  return (uint32_t)rem;
}

static int u256_limbs_zero(const uint32_t l[U256_LIMBS])
{
  for (unsigned i = 0; i < U256_LIMBS; i++)
    if (l[i] != 0)
      return 0;
  return 1;
}

/* Writes v as 32 big-endian bytes. */
void u256_from_u64(uint64_t v, uint8_t out[32])
{
  memset(out, 0, 32);
  for (unsigned i = 0; i < 8; i++)
    out[31 - i] = (uint8_t)(v >> (8 * i));
}

/* r = a + b. LC_ERR_PARAM on overflow (r is then unspecified). r may alias. */
int u256_add(const uint8_t a[32], const uint8_t b[32], uint8_t r[32])
{
  unsigned carry = 0;
  for (unsigned i = 32; i-- > 0;) {
    unsigned t = (unsigned)a[i] + b[i] + carry;
    r[i] = (uint8_t)t;
    carry = t >> 8;
  }
  return carry ? LC_ERR_PARAM : LC_OK;
}

/* r = a * b. LC_ERR_PARAM on overflow (r is then unspecified). r may alias. */
int u256_mul_u64(const uint8_t a[32], uint64_t b, uint8_t r[32])
{
  uint32_t lo[U256_LIMBS], hi[U256_LIMBS];
  u256_to_limbs(a, lo);
  memcpy(hi, lo, sizeof hi);
  if (u256_limbs_muladd(lo, (uint32_t)b, 0) != 0)
    return LC_ERR_PARAM;
  if (u256_limbs_muladd(hi, (uint32_t)(b >> 32), 0) != 0 || hi[U256_LIMBS - 1] != 0)
    return LC_ERR_PARAM;
  /* r = lo + (hi << 32) */
  uint64_t carry = 0;
  for (unsigned i = 0; i < U256_LIMBS; i++) {
    uint64_t t = (uint64_t)lo[i] + (i > 0 ? hi[i - 1] : 0) + carry;
    lo[i] = (uint32_t)t;
    carry = t >> 32;
  }
  if (carry != 0)
    return LC_ERR_PARAM;
  u256_from_limbs(lo, r);
  return LC_OK;
}

/* out = a * 10^exp. LC_ERR_PARAM on overflow. */
int u256_mul_pow10(uint64_t a, unsigned exp, uint8_t out[32])
{
  u256_from_u64(a, out);
  for (unsigned i = 0; i < exp; i++) {
    if (u256_mul_u64(out, 10, out) != LC_OK)
      return LC_ERR_PARAM;
    if (a == 0)
      break;
  }
  return LC_OK;
}

/* Parses 1..78 decimal digits (leading zeros allowed); LC_ERR_PARAM on any
 * other character, empty input or a value >= 2^256. */
int u256_from_dec(const char *s, uint8_t out[32])
{
  uint32_t l[U256_LIMBS] = {0};
  if (s == NULL || s[0] == '\0')
    return LC_ERR_PARAM;
  size_t n = strlen(s);
  if (n > 78)
    return LC_ERR_PARAM;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return LC_ERR_PARAM;
    if (u256_limbs_muladd(l, 10, (uint32_t)(s[i] - '0')) != 0)
      return LC_ERR_PARAM;
  }
  u256_from_limbs(l, out);
  return LC_OK;
}

/* Writes the minimal decimal form ("0" for zero), NUL-terminated. */
void u256_to_dec(const uint8_t v[32], char out[80])
{
  uint32_t l[U256_LIMBS];
  char tmp[80];
  size_t n = 0;
  u256_to_limbs(v, l);
  do {
    tmp[n++] = (char)('0' + u256_limbs_divmod(l, 10));
  } while (!u256_limbs_zero(l) && n < sizeof tmp - 1);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

static int u256_hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Parses "0x"/"0X" + at least one hex digit (any case; leading zeros
 * allowed); LC_ERR_PARAM on bad syntax or a value >= 2^256. */
int u256_from_hex(const char *s, uint8_t out[32])
{
  if (s == NULL || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || s[2] == '\0')
    return LC_ERR_PARAM;
  s += 2;
  size_t n = strlen(s);
  for (size_t i = 0; i < n; i++)
    if (u256_hexval(s[i]) < 0)
      return LC_ERR_PARAM;
  while (n > 64 && *s == '0') {
    s++;
    n--;
  }
  if (n > 64)
    return LC_ERR_PARAM;
  memset(out, 0, 32);
  /* fill from the least significant nibble */
  for (size_t i = 0; i < n; i++) {
    int v = u256_hexval(s[n - 1 - i]);
    out[31 - i / 2] |= (uint8_t)(i % 2 ? v << 4 : v);
  }
  return LC_OK;
}

/* Writes "0x" + minimal lowercase hex ("0x0" for zero), NUL-terminated. */
void u256_to_hex(const uint8_t v[32], char out[67])
{
  static const char hx[] = "0123456789abcdef";
  size_t o = 0;
  int started = 0;
  out[o++] = '0';
  out[o++] = 'x';
  for (unsigned i = 0; i < 64; i++) {
    unsigned nib = i % 2 ? v[i / 2] & 0x0f : v[i / 2] >> 4;
    if (nib == 0 && !started)
      continue;
    started = 1;
    out[o++] = hx[nib];
  }
  if (!started)
    out[o++] = '0';
  out[o] = '\0';
}

/* Lexicographic compare of big-endian arrays == numeric compare. */
int u256_cmp(const uint8_t a[32], const uint8_t b[32])
{
  int c = memcmp(a, b, 32);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}
