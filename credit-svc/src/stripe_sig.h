/* stripe_sig.h - verification of Stripe's webhook signature header, exactly
 * as Stripe signs it (docs "Verify webhook signatures manually"):
 *
 *   Stripe-Signature: t=<unix seconds>,v1=<hex>,v1=<hex>,v0=<hex>...
 *
 * The header is a comma-separated list of key=value elements. t is the
 * signing time; every v1 element is a candidate signature (several appear
 * while a secret is being rolled); v0 and any other scheme are ignored. The
 * expected signature is hex(HMAC-SHA256(secret, t + "." + raw_body)) where
 * secret is the endpoint secret string as configured ("whsec_..." included)
 * and raw_body is the request body byte for byte (never re-serialised).
 * A request is authentic when some v1 equals it (constant-time comparison)
 * and |now - t| <= tolerance.
 *
 * Pure functions, no allocation, thread-safe. */
#ifndef STRIPE_SIG_H
#define STRIPE_SIG_H

#include <stddef.h>
#include <stdint.h>

#include "lc/err.h"

#define STRIPE_SIG_HEADER_MAX 4096
#define STRIPE_SIG_DEFAULT_TOLERANCE_S 300

/* Verifies header against body. secret must be non-empty; tolerance_s >= 0.
 * Returns LC_OK when authentic; LC_ERR_PARAM for a missing/malformed header
 * (no t, t not a decimal integer, duplicate t, element without '=', too
 * long) or an empty secret; LC_ERR_UNAUTH when no v1 signature is present,
 * none matches, or t is outside the tolerance. err says which, without
 * echoing any signature or the secret. */
int stripe_sig_verify(const char *secret, const char *header, const void *body, size_t body_len,
                      int64_t now_s, int64_t tolerance_s, char err[LC_ERR_LEN]);

/* Computes the v1 signature of (t, body) as lowercase hex into out (65
 * bytes). Used by the verifier and by tests that sign their own payloads. */
void stripe_sig_compute(const char *secret, int64_t t, const void *body, size_t body_len,
                        char out[65]);

#endif
