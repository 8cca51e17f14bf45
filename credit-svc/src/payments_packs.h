/* payments_packs.h - the credit packs a user can buy: the one server-side
 * price table of the payment flow (SPEC §3: the price is computed on the
 * server, never taken from the client).
 *
 * Amounts are int64 minor units of an ISO 4217 currency (500 = USD 5.00);
 * credits are int64. No floating point anywhere. The table is static and
 * read-only, so every function here is thread-safe and allocation-free. */
#ifndef PAYMENTS_PACKS_H
#define PAYMENTS_PACKS_H

#include <stddef.h>
#include <stdint.h>

#define PAYMENTS_PACK_NAME_MAX 16
#define PAYMENTS_CURRENCY_LEN 3

typedef struct {
  const char *name;     /* client-facing id, e.g. "small" */
  int64_t credits;      /* credits granted when paid, > 0 */
  int64_t amount;       /* price in minor units, > 0 */
  const char *currency; /* ISO 4217, lowercase (Stripe's form; compare case-insensitively) */
  const char *label;    /* product name shown on the provider's checkout page */
} payments_pack;

/* The pack named name (exact, case-sensitive), or NULL when unknown or name
 * is NULL/too long. Returned pointer is borrowed from the static table. */
const payments_pack *payments_pack_find(const char *name);

/* Number of packs and the i-th pack (NULL when i is out of range). */
size_t payments_pack_count(void);
const payments_pack *payments_pack_at(size_t i);

/* 1 when a provider-reported payment (amount in minor units, currency code
 * in any case) is exactly the expected amount and currency; 0 otherwise
 * (also for a NULL or malformed currency or a non-positive amount). */
int payments_amount_matches(int64_t expected_amount, const char *expected_currency,
                            int64_t amount, const char *currency);

/* Copies currency in upper case into out (4 bytes) - Razorpay's form.
 * Returns 0 on success, -1 when currency is not three ASCII letters. */
int payments_currency_upper(const char *currency, char out[PAYMENTS_CURRENCY_LEN + 1]);

#endif
