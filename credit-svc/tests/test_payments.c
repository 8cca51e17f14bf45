/* test_payments.c - Check unit tests of the payment flow's pure logic:
 * Stripe-Signature and X-Razorpay-Signature verification (with known-answer
 * vectors computed independently with Python's hmac), the credit pack table
 * and amount matching, Stripe's form encoding, Razorpay's order body,
 * webhook event parsing and the API-base URL policy. No network, no DB. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lc/util.h"
#include "payments_events.h"
#include "payments_handlers.h"
#include "payments_packs.h"
#include "razorpay_api.h"
#include "razorpay_sig.h"
#include "stripe_api.h"
#include "stripe_sig.h"

#define SECRET "whsec_test_secret"
#define BODY "{\"id\":\"evt_1\",\"object\":\"event\"}"
#define T0 1700000000LL
/* hmac.new(b"whsec_test_secret", b"1700000000." + BODY, sha256).hexdigest() */
#define KAT_V1 "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"
#define OTHER_V1 "1111111111111111111111111111111111111111111111111111111111111111"

static int verify(const char *hdr, const char *body, int64_t now, int64_t tol) {
  char err[LC_ERR_LEN];
  return stripe_sig_verify(SECRET, hdr, body, strlen(body), now, tol, err);
}

/* ---- Stripe-Signature ---- */

START_TEST(stripe_known_answer) {
  char out[65];
  stripe_sig_compute(SECRET, T0, BODY, strlen(BODY), out);
  ck_assert_str_eq(out, KAT_V1);
}
END_TEST

START_TEST(stripe_valid) {
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, BODY, T0, 300), LC_OK);
  /* spaces around elements, uppercase hex, v0 alongside, unknown schemes */
  ck_assert_int_eq(verify(" t=1700000000 , v1=0C8670ED117751CC551A20E35839447075C42800EA3CF3E8A2FBDA99CD1E6EDD", BODY, T0, 300), LC_OK);
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1 ",v0=" OTHER_V1 ",v2=abc", BODY, T0, 300),
                   LC_OK);
  /* inside the tolerance on both sides, and exactly at its edges */
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, BODY, T0 + 300, 300), LC_OK);
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, BODY, T0 - 300, 300), LC_OK);
}
END_TEST

START_TEST(stripe_tampered_body) {
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, "{\"id\":\"evt_1\",\"object\":\"event\" }",
                          T0, 300),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, "", T0, 300), LC_ERR_UNAUTH);
}
END_TEST

START_TEST(stripe_tampered_timestamp) {
  /* the signature covers t: moving t (e.g. to look fresh) breaks it */
  ck_assert_int_eq(verify("t=1700000001,v1=" KAT_V1, BODY, T0, 300), LC_ERR_UNAUTH);
}
END_TEST

START_TEST(stripe_wrong_secret) {
  char err[LC_ERR_LEN];
  ck_assert_int_eq(stripe_sig_verify("whsec_other", "t=1700000000,v1=" KAT_V1, BODY,
                                     strlen(BODY), T0, 300, err),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(stripe_sig_verify("", "t=1700000000,v1=" KAT_V1, BODY, strlen(BODY), T0, 300,
                                     err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(stripe_sig_verify(NULL, "t=1700000000,v1=" KAT_V1, BODY, strlen(BODY), T0,
                                     300, err),
                   LC_ERR_PARAM);
}
END_TEST

START_TEST(stripe_stale_and_future) {
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, BODY, T0 + 301, 300), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, BODY, T0 + 86400, 300), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, BODY, T0 - 301, 300), LC_ERR_UNAUTH);
  /* configurable tolerance */
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, BODY, T0 + 10, 5), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1, BODY, T0 + 10, 10), LC_OK);
}
END_TEST

START_TEST(stripe_v0_only) {
  ck_assert_int_eq(verify("t=1700000000,v0=" KAT_V1, BODY, T0, 300), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify("t=1700000000,v2=" KAT_V1, BODY, T0, 300), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify("t=1700000000,V1=" KAT_V1, BODY, T0, 300), LC_ERR_UNAUTH);
}
END_TEST

START_TEST(stripe_multiple_v1) {
  ck_assert_int_eq(verify("t=1700000000,v1=" OTHER_V1 ",v1=" KAT_V1, BODY, T0, 300), LC_OK);
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1 ",v1=" OTHER_V1, BODY, T0, 300), LC_OK);
  ck_assert_int_eq(verify("t=1700000000,v1=" OTHER_V1 ",v1=" OTHER_V1, BODY, T0, 300),
                   LC_ERR_UNAUTH);
  /* a truncated or over-long candidate never matches */
  ck_assert_int_eq(verify("t=1700000000,v1=0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6ed",
                          BODY, T0, 300),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(verify("t=1700000000,v1=" KAT_V1 "00", BODY, T0, 300), LC_ERR_UNAUTH);
}
END_TEST

START_TEST(stripe_malformed) {
  const char *bad[] = {
      "",                                     /* empty */
      "v1=" KAT_V1,                           /* no t */
      "t=,v1=" KAT_V1,                        /* empty t */
      "t=abc,v1=" KAT_V1,                     /* t not a number */
      "t=-1700000000,v1=" KAT_V1,             /* signed */
      "t=01700000000,v1=" KAT_V1,             /* leading zero */
      "t=1700000000.5,v1=" KAT_V1,            /* fraction */
      "t=99999999999999999999,v1=" KAT_V1,    /* overflow */
      "t=1700000000,t=1700000000,v1=" KAT_V1, /* duplicate t */
      "t=1700000000,v1=" KAT_V1 ",",          /* trailing comma */
      "t=1700000000,,v1=" KAT_V1,             /* empty element */
      "t=1700000000,garbage,v1=" KAT_V1,      /* element without '=' */
      "t=1700000000;v1=" KAT_V1,              /* wrong separator */
      "=1700000000,v1=" KAT_V1,               /* empty name */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rc = verify(bad[i], BODY, T0, 300);
    ck_assert_msg(rc != LC_OK, "accepted malformed header #%zu", i);
  }
  char err[LC_ERR_LEN];
  ck_assert_int_eq(stripe_sig_verify(SECRET, NULL, BODY, strlen(BODY), T0, 300, err),
                   LC_ERR_PARAM);
  /* an over-long header is refused before any work */
  size_t n = STRIPE_SIG_HEADER_MAX + 10;
  char *big = malloc(n + 1);
  memset(big, 'a', n);
  memcpy(big, "t=1700000000,v1=", 16);
  big[n] = '\0';
  ck_assert_int_eq(stripe_sig_verify(SECRET, big, BODY, strlen(BODY), T0, 300, err),
                   LC_ERR_PARAM);
  free(big);
  /* no v1 at all */
  ck_assert_int_eq(verify("t=1700000000", BODY, T0, 300), LC_ERR_UNAUTH);
}
END_TEST

/* ---- X-Razorpay-Signature ---- */

#define RZP_SECRET "rzp_webhook_secret"
#define RZP_BODY "{\"entity\":\"event\",\"event\":\"payment.captured\"}"
#define RZP_KAT "6f1d2291843878c4afa36db712dcb75555eeec13e91624e8ca94976a18e2312e"

START_TEST(razorpay_valid_and_tampered) {
  char err[LC_ERR_LEN], out[65];
  razorpay_sig_compute(RZP_SECRET, RZP_BODY, strlen(RZP_BODY), out);
  ck_assert_str_eq(out, RZP_KAT);
  ck_assert_int_eq(razorpay_sig_verify(RZP_SECRET, RZP_KAT, RZP_BODY, strlen(RZP_BODY), err),
                   LC_OK);
  ck_assert_int_eq(razorpay_sig_verify(RZP_SECRET,
                                       "6F1D2291843878C4AFA36DB712DCB75555EEEC13E91624E8CA94976A18E2312E",
                                       RZP_BODY, strlen(RZP_BODY), err),
                   LC_OK);
  const char *tampered = "{\"entity\":\"event\",\"event\":\"payment.captured\" }";
  ck_assert_int_eq(razorpay_sig_verify(RZP_SECRET, RZP_KAT, tampered, strlen(tampered), err),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(razorpay_sig_verify("other", RZP_KAT, RZP_BODY, strlen(RZP_BODY), err),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(razorpay_sig_verify(RZP_SECRET, NULL, RZP_BODY, strlen(RZP_BODY), err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(razorpay_sig_verify(RZP_SECRET, "abc", RZP_BODY, strlen(RZP_BODY), err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(razorpay_sig_verify(RZP_SECRET, "0x6f1d2291843878c4afa36db712dcb75555eeec13e91624e8ca94976a18e231",
                                       RZP_BODY, strlen(RZP_BODY), err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(razorpay_sig_verify("", RZP_KAT, RZP_BODY, strlen(RZP_BODY), err),
                   LC_ERR_PARAM);
}
END_TEST

/* ---- packs and amounts ---- */

START_TEST(packs_table) {
  ck_assert_uint_eq(payments_pack_count(), 3);
  const payments_pack *s = payments_pack_find("small"), *m = payments_pack_find("medium"),
                      *l = payments_pack_find("large");
  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_nonnull(m);
  ck_assert_ptr_nonnull(l);
  ck_assert_int_eq(s->credits, 100);
  ck_assert_int_eq(s->amount, 500);
  ck_assert_int_eq(m->credits, 500);
  ck_assert_int_eq(m->amount, 2000);
  ck_assert_int_eq(l->credits, 2000);
  ck_assert_int_eq(l->amount, 6000);
  for (size_t i = 0; i < payments_pack_count(); i++) {
    const payments_pack *p = payments_pack_at(i);
    ck_assert(p->credits > 0 && p->amount > 0 && strlen(p->currency) == 3);
  }
  ck_assert_ptr_null(payments_pack_at(3));
  ck_assert_ptr_null(payments_pack_find("SMALL"));
  ck_assert_ptr_null(payments_pack_find("huge"));
  ck_assert_ptr_null(payments_pack_find(""));
  ck_assert_ptr_null(payments_pack_find(NULL));
  ck_assert_ptr_null(payments_pack_find("small "));
}
END_TEST

START_TEST(amount_matching) {
  ck_assert(payments_amount_matches(500, "usd", 500, "usd"));
  ck_assert(payments_amount_matches(500, "usd", 500, "USD"));
  ck_assert(!payments_amount_matches(500, "usd", 499, "usd"));
  ck_assert(!payments_amount_matches(500, "usd", 501, "usd"));
  ck_assert(!payments_amount_matches(500, "usd", 50000, "usd"));
  ck_assert(!payments_amount_matches(500, "usd", 500, "eur"));
  ck_assert(!payments_amount_matches(500, "usd", 500, "us"));
  ck_assert(!payments_amount_matches(500, "usd", 500, "usdd"));
  ck_assert(!payments_amount_matches(500, "usd", 500, NULL));
  ck_assert(!payments_amount_matches(0, "usd", 0, "usd"));
  ck_assert(!payments_amount_matches(-5, "usd", -5, "usd"));
  char up[4];
  ck_assert_int_eq(payments_currency_upper("usd", up), 0);
  ck_assert_str_eq(up, "USD");
  ck_assert_int_eq(payments_currency_upper("u1d", up), -1);
}
END_TEST

/* ---- wire formats ---- */

START_TEST(stripe_form) {
  char out[STRIPE_FORM_MAX], err[LC_ERR_LEN];
  size_t len = 0;
  const char *uid = "0b9a1c4e-1d2f-4a5b-8c9d-0e1f2a3b4c5d";
  ck_assert_int_eq(stripe_form_build(payments_pack_find("medium"), uid,
                                     "https://app.example/ok?session_id={CHECKOUT_SESSION_ID}",
                                     "https://app.example/cancel", out, sizeof(out), &len, err),
                   LC_OK);
  ck_assert_str_eq(out,
                   "mode=payment"
                   "&line_items[0][price_data][currency]=usd"
                   "&line_items[0][price_data][unit_amount]=2000"
                   "&line_items[0][price_data][product_data][name]=500%20credits"
                   "&line_items[0][quantity]=1"
                   "&success_url=https%3A%2F%2Fapp.example%2Fok%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D"
                   "&cancel_url=https%3A%2F%2Fapp.example%2Fcancel"
                   "&client_reference_id=0b9a1c4e-1d2f-4a5b-8c9d-0e1f2a3b4c5d"
                   "&metadata[user_id]=0b9a1c4e-1d2f-4a5b-8c9d-0e1f2a3b4c5d"
                   "&metadata[pack]=medium&metadata[credits]=500");
  ck_assert_uint_eq(len, strlen(out));
  /* a buffer that is too small is an error, never a silent truncation */
  char small[64];
  ck_assert_int_eq(stripe_form_build(payments_pack_find("small"), uid, "https://a/", "https://b/",
                                     small, sizeof(small), &len, err),
                   LC_ERR_TOO_LARGE);
  size_t l2 = 0;
  char b2[16];
  ck_assert_int_eq(stripe_form_add(b2, sizeof(b2), &l2, "k", "a&b=c"), LC_OK);
  ck_assert_str_eq(b2, "k=a%26b%3Dc");
}
END_TEST

START_TEST(razorpay_body) {
  const char *uid = "0b9a1c4e-1d2f-4a5b-8c9d-0e1f2a3b4c5d";
  char *s = razorpay_order_body(payments_pack_find("large"), uid, "rcpt_1");
  ck_assert_ptr_nonnull(s);
  json_t *j = json_loads(s, 0, NULL);
  free(s);
  ck_assert(json_is_object(j));
  ck_assert(json_is_integer(json_object_get(j, "amount")));
  ck_assert_int_eq(json_integer_value(json_object_get(j, "amount")), 6000);
  ck_assert_str_eq(json_string_value(json_object_get(j, "currency")), "USD");
  ck_assert_str_eq(json_string_value(json_object_get(j, "receipt")), "rcpt_1");
  json_t *notes = json_object_get(j, "notes");
  ck_assert_str_eq(json_string_value(json_object_get(notes, "user_id")), uid);
  ck_assert_str_eq(json_string_value(json_object_get(notes, "pack")), "large");
  ck_assert_str_eq(json_string_value(json_object_get(notes, "credits")), "2000");
  json_decref(j);
  ck_assert_ptr_null(razorpay_order_body(payments_pack_find("large"), uid, ""));
  ck_assert_ptr_null(razorpay_order_body(payments_pack_find("large"), uid,
                                         "0123456789012345678901234567890123456789x"));
}
END_TEST

/* ---- event parsing ---- */

static int parse_s(const char *body, payments_parsed *pp) {
  char err[LC_ERR_LEN];
  return payments_parse_stripe(body, strlen(body), pp, err);
}

START_TEST(stripe_events) {
  payments_parsed pp;
  ck_assert_int_eq(parse_s("{\"id\":\"evt_1\",\"type\":\"checkout.session.completed\",\"data\":"
                           "{\"object\":{\"id\":\"cs_test_1\",\"payment_status\":\"paid\","
                           "\"amount_total\":500,\"currency\":\"usd\"}}}",
                           &pp),
                   LC_OK);
  ck_assert_int_eq(pp.kind, PAYMENTS_EV_APPLY);
  ck_assert_str_eq(pp.ev.event_id, "evt_1");
  ck_assert_str_eq(pp.ev.session_id, "cs_test_1");
  ck_assert_int_eq(pp.ev.amount, 500);
  ck_assert_str_eq(pp.ev.currency, "usd");
  payments_parsed_free(&pp);
  ck_assert_int_eq(parse_s("{\"id\":\"evt_2\",\"type\":\"checkout.session.async_payment_succeeded\","
                           "\"data\":{\"object\":{\"id\":\"cs_test_1\",\"payment_status\":\"paid\","
                           "\"amount_total\":500,\"currency\":\"usd\"}}}",
                           &pp),
                   LC_OK);
  ck_assert_int_eq(pp.kind, PAYMENTS_EV_APPLY);
  payments_parsed_free(&pp);
  ck_assert_int_eq(parse_s("{\"id\":\"evt_3\",\"type\":\"checkout.session.completed\",\"data\":"
                           "{\"object\":{\"id\":\"cs_test_1\",\"payment_status\":\"unpaid\","
                           "\"amount_total\":500,\"currency\":\"usd\"}}}",
                           &pp),
                   LC_OK);
  ck_assert_int_eq(pp.kind, PAYMENTS_EV_NOT_PAID);
  payments_parsed_free(&pp);
  ck_assert_int_eq(parse_s("{\"id\":\"evt_4\",\"type\":\"invoice.paid\",\"data\":{}}", &pp),
                   LC_OK);
  ck_assert_int_eq(pp.kind, PAYMENTS_EV_IGNORED);
  payments_parsed_free(&pp);
  const char *bad[] = {
      "not json", "[]", "{\"type\":\"checkout.session.completed\"}",
      "{\"id\":\"evt_5\",\"type\":\"checkout.session.completed\",\"data\":{}}",
      "{\"id\":\"evt_5\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
      "{\"id\":\"cs_1\",\"payment_status\":\"paid\",\"amount_total\":\"500\",\"currency\":\"usd\"}}}",
      "{\"id\":\"evt_5\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
      "{\"id\":\"cs_1\",\"payment_status\":\"paid\",\"amount_total\":5.0,\"currency\":\"usd\"}}}",
      "{\"id\":\"evt_5\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
      "{\"id\":\"cs_1\",\"payment_status\":\"paid\",\"amount_total\":-500,\"currency\":\"usd\"}}}",
      "{\"id\":\"evt_5\",\"id\":\"evt_6\",\"type\":\"invoice.paid\"}", /* duplicate key */
      "{\"id\":\"evt_5\",\"type\":\"checkout.session.completed\",\"data\":{\"object\":"
      "{\"id\":\"pi_1\",\"payment_status\":\"paid\",\"amount_total\":500,\"currency\":\"usd\"}}}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rc = parse_s(bad[i], &pp);
    ck_assert_msg(rc == LC_ERR_PARAM, "accepted bad event #%zu", i);
    ck_assert_ptr_null(pp.root);
  }
}
END_TEST

START_TEST(razorpay_events) {
  payments_parsed pp;
  char err[LC_ERR_LEN];
  const char *cap =
      "{\"entity\":\"event\",\"event\":\"payment.captured\",\"contains\":[\"payment\"],"
      "\"payload\":{\"payment\":{\"entity\":{\"id\":\"pay_1\",\"entity\":\"payment\","
      "\"amount\":500,\"currency\":\"USD\",\"status\":\"captured\",\"order_id\":\"order_1\"}}}}";
  ck_assert_int_eq(payments_parse_razorpay(cap, strlen(cap), "ev_1", &pp, err), LC_OK);
  ck_assert_int_eq(pp.kind, PAYMENTS_EV_APPLY);
  ck_assert_str_eq(pp.ev.session_id, "order_1");
  ck_assert_str_eq(pp.ev.paid_ref, "pay_1");
  ck_assert_str_eq(pp.ev.event_id, "ev_1");
  ck_assert_int_eq(pp.ev.amount, 500);
  payments_parsed_free(&pp);
  const char *paid =
      "{\"entity\":\"event\",\"event\":\"order.paid\",\"payload\":{\"payment\":{\"entity\":"
      "{\"id\":\"pay_1\",\"amount\":500,\"currency\":\"USD\",\"status\":\"captured\","
      "\"order_id\":\"order_1\"}},\"order\":{\"entity\":{\"id\":\"order_1\",\"amount\":500,"
      "\"amount_paid\":500,\"currency\":\"USD\",\"status\":\"paid\"}}}}";
  ck_assert_int_eq(payments_parse_razorpay(paid, strlen(paid), "ev_2", &pp, err), LC_OK);
  ck_assert_int_eq(pp.kind, PAYMENTS_EV_APPLY);
  ck_assert_str_eq(pp.ev.session_id, "order_1");
  payments_parsed_free(&pp);
  const char *failed = "{\"entity\":\"event\",\"event\":\"payment.failed\",\"payload\":{}}";
  ck_assert_int_eq(payments_parse_razorpay(failed, strlen(failed), "ev_3", &pp, err), LC_OK);
  ck_assert_int_eq(pp.kind, PAYMENTS_EV_IGNORED);
  payments_parsed_free(&pp);
  ck_assert_int_eq(payments_parse_razorpay(cap, strlen(cap), NULL, &pp, err), LC_ERR_PARAM);
  ck_assert_int_eq(payments_parse_razorpay(cap, strlen(cap), "", &pp, err), LC_ERR_PARAM);
  const char *noorder =
      "{\"entity\":\"event\",\"event\":\"payment.captured\",\"payload\":{\"payment\":{\"entity\":"
      "{\"id\":\"pay_1\",\"amount\":500,\"currency\":\"USD\",\"status\":\"captured\"}}}}";
  ck_assert_int_eq(payments_parse_razorpay(noorder, strlen(noorder), "ev_4", &pp, err),
                   LC_ERR_PARAM);
}
END_TEST

START_TEST(url_policy) {
  ck_assert(payments_url_allowed("https://api.stripe.com"));
  ck_assert(payments_url_allowed("http://127.0.0.1:23501"));
  ck_assert(payments_url_allowed("http://localhost:8080/x"));
  ck_assert(payments_url_allowed("http://[::1]:99"));
  ck_assert(!payments_url_allowed("http://api.stripe.com"));
  ck_assert(!payments_url_allowed("http://127.0.0.1.evil.com"));
  ck_assert(!payments_url_allowed("http://localhost.evil.com"));
  ck_assert(!payments_url_allowed("ftp://x"));
  ck_assert(!payments_url_allowed("https://"));
  ck_assert(!payments_url_allowed(NULL));
}
END_TEST

static Suite *payments_suite(void) {
  Suite *s = suite_create("payments");
  TCase *sig = tcase_create("stripe_signature");
  tcase_add_test(sig, stripe_known_answer);
  tcase_add_test(sig, stripe_valid);
  tcase_add_test(sig, stripe_tampered_body);
  tcase_add_test(sig, stripe_tampered_timestamp);
  tcase_add_test(sig, stripe_wrong_secret);
  tcase_add_test(sig, stripe_stale_and_future);
  tcase_add_test(sig, stripe_v0_only);
  tcase_add_test(sig, stripe_multiple_v1);
  tcase_add_test(sig, stripe_malformed);
  tcase_set_timeout(sig, 10);
  suite_add_tcase(s, sig);
  TCase *rz = tcase_create("razorpay_signature");
  tcase_add_test(rz, razorpay_valid_and_tampered);
  tcase_set_timeout(rz, 10);
  suite_add_tcase(s, rz);
  TCase *pk = tcase_create("packs");
  tcase_add_test(pk, packs_table);
  tcase_add_test(pk, amount_matching);
  tcase_set_timeout(pk, 10);
  suite_add_tcase(s, pk);
  TCase *wire = tcase_create("wire");
  tcase_add_test(wire, stripe_form);
  tcase_add_test(wire, razorpay_body);
  tcase_add_test(wire, stripe_events);
  tcase_add_test(wire, razorpay_events);
  tcase_add_test(wire, url_policy);
  tcase_set_timeout(wire, 10);
  suite_add_tcase(s, wire);
  return s;
}

int main(void) {
  if (lc_global_init() != 0)
    return EXIT_FAILURE;
  SRunner *sr = srunner_create(payments_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  lc_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
