/* payments_packs.c - the credit pack table; see payments_packs.h. */
#include "payments_packs.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const payments_pack PACKS[] = {
    {"small", 100, 500, "usd", "100 credits"},
    {"medium", 500, 2000, "usd", "500 credits"},
    {"large", 2000, 6000, "usd", "2000 credits"},
};

size_t payments_pack_count(void) { return sizeof(PACKS) / sizeof(PACKS[0]); }

const payments_pack *payments_pack_at(size_t i) {
  return i < payments_pack_count() ? &PACKS[i] : NULL;
}

const payments_pack *payments_pack_find(const char *name) {
  if (name == NULL || strlen(name) > PAYMENTS_PACK_NAME_MAX)
    return NULL;
  for (size_t i = 0; i < payments_pack_count(); i++) {
    if (strcmp(PACKS[i].name, name) == 0)
      return &PACKS[i];
  }
  return NULL;
}

static int currency_valid(const char *c) {
  if (c == NULL || strlen(c) != PAYMENTS_CURRENCY_LEN)
    return 0;
  for (size_t i = 0; i < PAYMENTS_CURRENCY_LEN; i++) {
    if (!isalpha((unsigned char)c[i]))
      return 0;
  }
  return 1;
}

int payments_amount_matches(int64_t expected_amount, const char *expected_currency,
                            int64_t amount, const char *currency) {
  if (expected_amount <= 0 || amount != expected_amount)
    return 0;
  if (!currency_valid(expected_currency) || !currency_valid(currency))
    return 0;
  return strcasecmp(expected_currency, currency) == 0;
}

int payments_currency_upper(const char *currency, char out[PAYMENTS_CURRENCY_LEN + 1]) {
  if (!currency_valid(currency))
    return -1;
  for (size_t i = 0; i < PAYMENTS_CURRENCY_LEN; i++)
    out[i] = (char)toupper((unsigned char)currency[i]);
  out[PAYMENTS_CURRENCY_LEN] = '\0';
  return 0;
}
