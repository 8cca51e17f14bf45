/* payments_events.h - parsing of signature-verified provider webhook events
 * into a payments_event (pure functions, no I/O, thread-safe).
 *
 * Stripe (event object): {id: "evt_...", type, data: {object: {...}}}.
 *   checkout.session.completed / checkout.session.async_payment_succeeded
 *   with data.object = Checkout Session {id: "cs_...", payment_status,
 *   amount_total, currency, payment_intent?}: payment_status "paid" ->
 *   APPLY; otherwise NOT_PAID (async methods pay later and send
 *   async_payment_succeeded). Every other type -> IGNORED.
 * Razorpay: {entity: "event", event, payload: {payment: {entity: {...}},
 *   order: {entity: {...}}}} plus the X-Razorpay-Event-Id header.
 *   payment.captured: payment entity {id: "pay_...", order_id, amount,
 *   currency, status "captured"} -> APPLY on order_id;
 *   order.paid: order entity {id: "order_...", amount_paid, currency,
 *   status "paid"} (+ payment entity) -> APPLY on the order id.
 *   Other events -> IGNORED.
 * Malformed JSON or a relevant event missing a required member ->
 * LC_ERR_PARAM. */
#ifndef PAYMENTS_EVENTS_H
#define PAYMENTS_EVENTS_H

#include <jansson.h>
#include <stddef.h>

#include "lc/err.h"
#include "payments_store.h"

typedef enum {
  PAYMENTS_EV_APPLY = 0, /* ev is filled: hand it to payments_apply_event */
  PAYMENTS_EV_IGNORED,   /* event type we do not need */
  PAYMENTS_EV_NOT_PAID,  /* relevant type, but not (yet) paid */
} payments_ev_kind;

typedef struct {
  json_t *root;          /* new; ev's strings are borrowed from it */
  payments_ev_kind kind;
  payments_event ev;     /* provider, event_id, event_type always set on LC_OK */
} payments_parsed;

/* Parses a Stripe event body (len bytes, not necessarily NUL-terminated). */
int payments_parse_stripe(const char *body, size_t len, payments_parsed *out,
                          char err[LC_ERR_LEN]);

/* Parses a Razorpay webhook body; event_id is the X-Razorpay-Event-Id
 * header (borrowed, must outlive out). */
int payments_parse_razorpay(const char *body, size_t len, const char *event_id,
                            payments_parsed *out, char err[LC_ERR_LEN]);

/* Releases out->root; safe on a zeroed or already freed value. */
void payments_parsed_free(payments_parsed *p);

#endif
