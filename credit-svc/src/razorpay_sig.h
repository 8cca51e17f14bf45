/* razorpay_sig.h - verification of Razorpay's webhook signature:
 *   X-Razorpay-Signature: hex(HMAC-SHA256(webhook_secret, raw_body))
 * over the raw request body byte for byte (docs "Validate webhooks").
 * Razorpay signs no timestamp: replays are stopped by deduplication on the
 * X-Razorpay-Event-Id header and on the order id (payments_store).
 * Pure functions, thread-safe. */
#ifndef RAZORPAY_SIG_H
#define RAZORPAY_SIG_H

#include <stddef.h>

#include "lc/err.h"

/* LC_OK when sig_hex (64 hex digits, either case) is the HMAC of body under
 * secret (constant-time compare); LC_ERR_PARAM when the secret is empty or
 * the header is missing/malformed; LC_ERR_UNAUTH when it does not match. */
int razorpay_sig_verify(const char *secret, const char *sig_hex, const void *body,
                        size_t body_len, char err[LC_ERR_LEN]);

/* Lowercase hex signature of body into out (65 bytes), for tests. */
void razorpay_sig_compute(const char *secret, const void *body, size_t body_len, char out[65]);

#endif
