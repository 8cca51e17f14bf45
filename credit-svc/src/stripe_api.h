/* stripe_api.h - the part of Stripe's REST API the payment flow uses:
 * creating a Checkout Session (POST {base}/v1/checkout/sessions).
 *
 * Wire format as Stripe expects it: application/x-www-form-urlencoded body
 * with bracketed keys (mode=payment, line_items[0][price_data][currency],
 * line_items[0][price_data][unit_amount], line_items[0][price_data]
 * [product_data][name], line_items[0][quantity]=1, success_url, cancel_url,
 * client_reference_id, metadata[user_id|pack|credits]), headers
 * "Authorization: Bearer <secret key>" and "Idempotency-Key: <key>" (Stripe
 * replays the first result for a repeated key). Response: the Checkout
 * Session object as JSON ({id: "cs_...", url, amount_total, currency, ...}).
 *
 * Thread-safe (lc_http uses a per-thread curl handle). The secret key is
 * never logged nor copied into error text. */
#ifndef STRIPE_API_H
#define STRIPE_API_H

#include <stddef.h>
#include <stdint.h>

#include "lc/err.h"
#include "payments_packs.h"

#define STRIPE_ID_MAX 255
#define STRIPE_URL_MAX 2048
#define STRIPE_FORM_MAX 8192

typedef struct {
  const char *api_base;    /* e.g. "https://api.stripe.com" (no trailing slash needed) */
  const char *secret_key;  /* "sk_..." */
  const char *success_url; /* may contain Stripe's {CHECKOUT_SESSION_ID} template */
  const char *cancel_url;
  long timeout_ms;         /* 0 = 10 s */
} stripe_api_cfg;

typedef struct {
  char id[STRIPE_ID_MAX + 1];   /* "cs_..." */
  char url[STRIPE_URL_MAX + 1]; /* hosted checkout page */
  int64_t amount_total;         /* minor units, as Stripe computed it */
  char currency[8];
} stripe_session;

/* Builds the form body of the session-create call into out (capacity outsz,
 * NUL-terminated); *len = bytes written. LC_ERR_TOO_LARGE when it does not
 * fit, LC_ERR_PARAM for NULL arguments. Exposed for unit tests. */
int stripe_form_build(const payments_pack *pack, const char *user_id, const char *success_url,
                      const char *cancel_url, char *out, size_t outsz, size_t *len,
                      char err[LC_ERR_LEN]);

/* Appends "key=value" (key as given - Stripe's brackets stay literal -
 * value percent-encoded, unreserved characters kept) with a leading '&'
 * when *len > 0. LC_ERR_TOO_LARGE when it does not fit. */
int stripe_form_add(char *out, size_t outsz, size_t *len, const char *key, const char *value);

/* Creates a Checkout Session for pack on behalf of user_id (UUID) with the
 * given Idempotency-Key (1..255 bytes). Checks that Stripe's amount_total and
 * currency equal the pack's. Returns LC_OK; LC_ERR_PARAM (bad arguments),
 * LC_ERR_IO (Stripe refused, answered garbage, or a different amount),
 * LC_ERR_TIMEOUT (no answer in time). */
int stripe_checkout_create(const stripe_api_cfg *cfg, const payments_pack *pack,
                           const char *user_id, const char *idem_key, stripe_session *out,
                           char err[LC_ERR_LEN]);

#endif
