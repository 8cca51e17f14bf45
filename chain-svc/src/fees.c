/* fees.c - fee bump math and send-error classification (see fees.h). */
#include "fees.h"

#include <string.h>
#include <strings.h>

#include "lc/err.h"
#include "u256.h"

static const struct {
  const char *needle;
  chain_send_class cls;
} PATTERNS[] = {
    {"already known", CHAIN_SEND_ALREADY_KNOWN},
    {"known transaction", CHAIN_SEND_ALREADY_KNOWN},
    {"already imported", CHAIN_SEND_ALREADY_KNOWN},
    {"already exists", CHAIN_SEND_ALREADY_KNOWN},
    {"alreadyknown", CHAIN_SEND_ALREADY_KNOWN},
    {"nonce too low", CHAIN_SEND_NONCE_TOO_LOW},
    {"nonce is too low", CHAIN_SEND_NONCE_TOO_LOW},
    {"noncetoolow", CHAIN_SEND_NONCE_TOO_LOW},
    {"replacement transaction underpriced", CHAIN_SEND_UNDERPRICED},
    {"replacementunderpriced", CHAIN_SEND_UNDERPRICED},
    {"transaction underpriced", CHAIN_SEND_UNDERPRICED},
    {"underpriced", CHAIN_SEND_UNDERPRICED},
    {"less than block base fee", CHAIN_SEND_FEE_TOO_LOW},
    {"fee cap less than", CHAIN_SEND_FEE_TOO_LOW},
    {"feecaptoolow", CHAIN_SEND_FEE_TOO_LOW},
    {"max fee per gas less than", CHAIN_SEND_FEE_TOO_LOW},
    {"insufficient funds", CHAIN_SEND_NO_FUNDS},
    {"insufficientfunds", CHAIN_SEND_NO_FUNDS},
    {"lack of funds", CHAIN_SEND_NO_FUNDS},
};

chain_send_class chain_classify_send_error(const char *msg)
{
  if (msg == NULL || msg[0] == '\0')
    return CHAIN_SEND_REJECTED;
  for (size_t i = 0; i < sizeof(PATTERNS) / sizeof(PATTERNS[0]); i++)
    if (strcasestr(msg, PATTERNS[i].needle) != NULL)
      return PATTERNS[i].cls;
  return CHAIN_SEND_REJECTED;
}

const char *chain_send_class_name(chain_send_class c)
{
  switch (c) {
  case CHAIN_SEND_OK: return "ok";
  case CHAIN_SEND_ALREADY_KNOWN: return "already_known";
  case CHAIN_SEND_NONCE_TOO_LOW: return "nonce_too_low";
  case CHAIN_SEND_UNDERPRICED: return "underpriced";
  case CHAIN_SEND_FEE_TOO_LOW: return "fee_too_low";
  case CHAIN_SEND_NO_FUNDS: return "no_funds";
  case CHAIN_SEND_REJECTED: return "rejected";
  }
  return "rejected";
}

static int is_zero(const uint8_t v[32])
{
  for (int i = 0; i < 32; i++)
    if (v[i] != 0)
      return 0;
  return 1;
}

/* out = v + ceil(v / 8); saturates at 2^256 - 1 (never reached by real fees). */
static void plus_eighth(const uint8_t v[32], uint8_t out[32])
{
  uint8_t q[32], one[32];
  int rem = v[31] & 7;
  unsigned carry = 0;

  /* q = v >> 3 */
  for (int i = 0; i < 32; i++) {
    q[i] = (uint8_t)((v[i] >> 3) | carry);
    carry = (unsigned)(v[i] & 7) << 5;
  }
  if (rem != 0) {
    u256_from_u64(1, one);
    if (u256_add(q, one, q) != LC_OK)
      memset(q, 0xff, 32);
  }
  if (u256_add(v, q, out) != LC_OK)
    memset(out, 0xff, 32);
}

static void max_of(const uint8_t a[32], const uint8_t b[32], uint8_t out[32])
{
  memcpy(out, u256_cmp(a, b) >= 0 ? a : b, 32);
}

void chain_fee_cap(uint8_t tip[32], uint8_t max_fee[32], const uint8_t cap[32])
{
  if (!is_zero(cap) && u256_cmp(max_fee, cap) > 0)
    memcpy(max_fee, cap, 32);
  if (u256_cmp(tip, max_fee) > 0)
    memcpy(tip, max_fee, 32);
}

int chain_fee_bump(const uint8_t old_tip[32], const uint8_t old_max[32], const uint8_t mkt_tip[32],
                   const uint8_t mkt_max[32], const uint8_t cap[32], uint8_t new_tip[32],
                   uint8_t new_max[32])
{
  uint8_t min_tip[32], min_max[32];

  plus_eighth(old_tip, min_tip);
  plus_eighth(old_max, min_max);
  max_of(min_tip, mkt_tip, new_tip);
  max_of(min_max, mkt_max, new_max);
  /* The max fee must also cover the new tip. */
  if (u256_cmp(new_tip, new_max) > 0)
    memcpy(new_max, new_tip, 32);
  chain_fee_cap(new_tip, new_max, cap);
  if (u256_cmp(new_tip, min_tip) < 0 || u256_cmp(new_max, min_max) < 0)
    return -1;
  return 0;
}

int chain_gwei_to_wei(uint64_t gwei, uint8_t out[32])
{
  return u256_mul_pow10(gwei, 9, out) == LC_OK ? 0 : -1;
}
