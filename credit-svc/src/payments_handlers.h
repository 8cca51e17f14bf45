/* payments_handlers.h - HTTP routes of the payment flow in credit-svc and
 * their configuration (docs/payments.md):
 *
 *   POST /v1/payments/checkout          {pack, provider?: "stripe"|"razorpay"}
 *        session users only (role user|admin, scope full). Stripe: creates a
 *        Checkout Session -> 201 {provider, session_id, checkout_url, pack,
 *        credits, amount, currency}; Razorpay: creates an Order -> 201
 *        {provider, order_id, key_id, pack, credits, amount, currency}.
 *        Optional Idempotency-Key: the same key returns the stored session
 *        (header Idempotent-Replayed: true); another pack with it -> 422.
 *   POST /v1/payments/webhooks/stripe   Stripe-Signature verified (stripe_sig)
 *   POST /v1/payments/webhooks/razorpay X-Razorpay-Signature verified,
 *        X-Razorpay-Event-Id required
 *        -> 400 problem (nothing written) for a bad/missing signature or a
 *        malformed event; 200 {received: true, outcome} otherwise
 *        (credited, duplicate_event, duplicate_session, amount_mismatch,
 *        unknown_session, ignored, not_paid); 5xx when the database is down
 *        (the provider retries, and the retry is applied at most once).
 *
 * The routes sit behind credit-svc's lc_iauth middleware (internal
 * signature checked first); webhooks arrive signed by the gateway as role
 * anon. The raw body is verified byte for byte (never re-serialised). */
#ifndef PAYMENTS_HANDLERS_H
#define PAYMENTS_HANDLERS_H

#include <stdint.h>
#include <ulfius.h>

#include "lc/cfg.h"
#include "lc/db.h"
#include "lc/err.h"

/* Configuration entries for credit-svc's lc_cfg table (docs/payments.md).
 * Secrets unset = that provider's checkout / webhook answers 503. */
#define PAYMENTS_CFG_SPECS                                                                      \
  {"STRIPE_API_BASE", LC_CFG_STR, 8, 1000, "https://api.stripe.com", 1,                         \
   "Stripe REST API base URL (https, or http on loopback for a local stand-in)"},               \
  {"STRIPE_SECRET_KEY", LC_CFG_SECRET, 1, 255, NULL, 0, "Stripe secret API key (sk_...)"},      \
  {"STRIPE_WEBHOOK_SECRET", LC_CFG_SECRET, 1, 255, NULL, 0,                                     \
   "Stripe webhook signing secret (whsec_...)"},                                                \
  {"STRIPE_TOLERANCE_S", LC_CFG_INT, 1, 3600, "300", 1,                                         \
   "accepted |now - t| of a Stripe-Signature, seconds"},                                        \
  {"PAYMENTS_SUCCESS_URL", LC_CFG_STR, 8, 1000,                                                 \
   "https://localhost/payments/success?session_id={CHECKOUT_SESSION_ID}", 1,                    \
   "where Stripe Checkout sends the user after paying"},                                        \
  {"PAYMENTS_CANCEL_URL", LC_CFG_STR, 8, 1000, "https://localhost/payments/cancel", 1,          \
   "where Stripe Checkout sends the user after cancelling"},                                    \
  {"PAYMENTS_HTTP_TIMEOUT_MS", LC_CFG_INT, 500, 60000, "10000", 1,                              \
   "timeout of a call to a provider's API, ms"},                                                \
  {"RAZORPAY_API_BASE", LC_CFG_STR, 8, 1000, "https://api.razorpay.com", 1,                     \
   "Razorpay REST API base URL"},                                                               \
  {"RAZORPAY_KEY_ID", LC_CFG_STR, 1, 64, NULL, 0, "Razorpay key id (rzp_...)"},                 \
  {"RAZORPAY_KEY_SECRET", LC_CFG_SECRET, 1, 255, NULL, 0, "Razorpay key secret"},               \
  {"RAZORPAY_WEBHOOK_SECRET", LC_CFG_SECRET, 1, 255, NULL, 0, "Razorpay webhook secret"}

typedef struct {
  lc_db_pool *pool;                     /* borrowed */
  const char *stripe_api_base;          /* strings borrowed from lc_cfg */
  const char *stripe_secret_key;        /* NULL = Stripe checkout disabled (503) */
  const char *stripe_webhook_secret;    /* NULL = Stripe webhook disabled (503) */
  int64_t stripe_tolerance_s;
  const char *success_url, *cancel_url;
  const char *razorpay_api_base;
  const char *razorpay_key_id, *razorpay_key_secret; /* NULL = Razorpay checkout disabled */
  const char *razorpay_webhook_secret;  /* NULL = Razorpay webhook disabled */
  long http_timeout_ms;
} payments_ctx;

/* Fills ctx from cfg (loaded with PAYMENTS_CFG_SPECS) and validates it: API
 * bases must be https:// URLs, or http:// on 127.0.0.1/localhost/[::1].
 * LC_ERR_PARAM with err naming the variable. */
int payments_ctx_init(const lc_cfg *cfg, lc_db_pool *pool, payments_ctx *ctx,
                      char err[LC_ERR_LEN]);

/* 1 when url is https://..., or http:// to a loopback host. Pure. */
int payments_url_allowed(const char *url);

/* Registers the three routes at LC_PRIO_APP; ctx must outlive inst. The
 * internal-auth middleware is credit-svc's (credit_handlers_register). */
int payments_handlers_register(struct _u_instance *inst, payments_ctx *ctx, char err[LC_ERR_LEN]);

#endif
