/* razorpay_api.h - the part of Razorpay's REST API the payment flow uses:
 * creating an Order (POST {base}/v1/orders, HTTP basic auth
 * key_id:key_secret, JSON {amount, currency, receipt, notes}). The answer is
 * the Order entity {id: "order_...", entity: "order", amount, currency,
 * receipt, status: "created", ...}; the client then opens Razorpay Checkout
 * with {order_id, key_id, amount, currency}.
 *
 * Thread-safe; the key secret is never logged nor copied into error text. */
#ifndef RAZORPAY_API_H
#define RAZORPAY_API_H

#include <stdint.h>

#include "lc/err.h"
#include "payments_packs.h"

#define RAZORPAY_ID_MAX 64
#define RAZORPAY_RECEIPT_MAX 40

typedef struct {
  const char *api_base;   /* e.g. "https://api.razorpay.com" */
  const char *key_id;     /* "rzp_test_..." (public: also returned to the client) */
  const char *key_secret;
  long timeout_ms;        /* 0 = 10 s */
} razorpay_api_cfg;

typedef struct {
  char id[RAZORPAY_ID_MAX + 1]; /* "order_..." */
  int64_t amount;
  char currency[8];             /* upper case, e.g. "USD" */
} razorpay_order;

/* Builds the order-create JSON body (new string, free()) or NULL on bad
 * arguments. receipt: 1..40 bytes. Exposed for unit tests. */
char *razorpay_order_body(const payments_pack *pack, const char *user_id, const char *receipt);

/* Creates an order for pack on behalf of user_id with the given receipt
 * (our reference, 1..40 bytes). Checks the echoed amount and currency.
 * Returns LC_OK, LC_ERR_PARAM (not configured / bad arguments), LC_ERR_IO
 * (refused, garbage, different amount) or LC_ERR_TIMEOUT. */
int razorpay_order_create(const razorpay_api_cfg *cfg, const payments_pack *pack,
                          const char *user_id, const char *receipt, razorpay_order *out,
                          char err[LC_ERR_LEN]);

#endif
