/* payments_events.c - webhook event parsing; see payments_events.h. */
#include "payments_events.h"

#include <string.h>

#define BODY_MAX (256 * 1024)

static const char *str_of(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

/* Integer member >= 0, or -1 when absent / not an integer. */
static json_int_t int_of(const json_t *o, const char *k) {
  const json_t *v = json_object_get(o, k);
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return -1;
  return json_integer_value(v);
}

static int id_ok(const char *s, const char *prefix) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > PAYMENTS_ID_MAX || strncmp(s, prefix, strlen(prefix)) != 0)
    return 0;
  for (const char *p = s; *p; p++) {
    if (*p <= ' ' || *p > '~')
      return 0;
  }
  return 1;
}

static int load(const char *body, size_t len, payments_parsed *out, char err[LC_ERR_LEN]) {
  memset(out, 0, sizeof(*out));
  if (body == NULL || len == 0 || len > BODY_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "empty or oversized event body");
  json_error_t jerr;
  out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object(out->root)) {
    payments_parsed_free(out);
    return lc_err_set(err, LC_ERR_PARAM, "event body is not a JSON object");
  }
  return LC_OK;
}

static int fail(payments_parsed *out, char err[LC_ERR_LEN], const char *why) {
  payments_parsed_free(out);
  return lc_err_set(err, LC_ERR_PARAM, "%s", why);
}

int payments_parse_stripe(const char *body, size_t len, payments_parsed *out,
                          char err[LC_ERR_LEN]) {
  int rc = load(body, len, out, err);
  if (rc != LC_OK)
    return rc;
  const char *id = str_of(out->root, "id"), *type = str_of(out->root, "type");
  if (!id_ok(id, "evt_") || type == NULL || type[0] == '\0' || strlen(type) > 100)
    return fail(out, err, "event id or type missing");
  out->ev.provider = "stripe";
  out->ev.event_id = id;
  out->ev.event_type = type;
  if (strcmp(type, "checkout.session.completed") != 0 &&
      strcmp(type, "checkout.session.async_payment_succeeded") != 0) {
    out->kind = PAYMENTS_EV_IGNORED;
    return LC_OK;
  }
  const json_t *obj = json_object_get(json_object_get(out->root, "data"), "object");
  const char *sid = str_of(obj, "id"), *ps = str_of(obj, "payment_status");
  const char *cur = str_of(obj, "currency"), *pi = str_of(obj, "payment_intent");
  json_int_t amount = int_of(obj, "amount_total");
  if (!json_is_object(obj) || !id_ok(sid, "cs_") || ps == NULL)
    return fail(out, err, "checkout session missing in event");
  if (strcmp(ps, "paid") != 0) {
    out->kind = PAYMENTS_EV_NOT_PAID;
    out->ev.session_id = sid;
    return LC_OK;
  }
  if (amount < 0 || cur == NULL)
    return fail(out, err, "amount_total/currency missing in paid session");
  out->kind = PAYMENTS_EV_APPLY;
  out->ev.session_id = sid;
  out->ev.amount = (int64_t)amount;
  out->ev.currency = cur;
  out->ev.paid_ref = (pi && id_ok(pi, "pi_")) ? pi : NULL;
  return LC_OK;
}

int payments_parse_razorpay(const char *body, size_t len, const char *event_id,
                            payments_parsed *out, char err[LC_ERR_LEN]) {
  int rc = load(body, len, out, err);
  if (rc != LC_OK)
    return rc;
  const char *type = str_of(out->root, "event");
  if (!id_ok(event_id, "") || type == NULL || type[0] == '\0' || strlen(type) > 100)
    return fail(out, err, "event id or type missing");
  out->ev.provider = "razorpay";
  out->ev.event_id = event_id;
  out->ev.event_type = type;
  const json_t *payload = json_object_get(out->root, "payload");
  const json_t *pay = json_object_get(json_object_get(payload, "payment"), "entity");
  const json_t *ord = json_object_get(json_object_get(payload, "order"), "entity");
  if (strcmp(type, "payment.captured") == 0) {
    const char *pid = str_of(pay, "id"), *oid = str_of(pay, "order_id");
    const char *cur = str_of(pay, "currency"), *st = str_of(pay, "status");
    json_int_t amount = int_of(pay, "amount");
    if (!id_ok(pid, "pay_") || !id_ok(oid, "order_") || cur == NULL || amount < 0 || st == NULL)
      return fail(out, err, "payment entity incomplete");
    out->kind = strcmp(st, "captured") == 0 ? PAYMENTS_EV_APPLY : PAYMENTS_EV_NOT_PAID;
    out->ev.session_id = oid;
    out->ev.paid_ref = pid;
    out->ev.amount = (int64_t)amount;
    out->ev.currency = cur;
    return LC_OK;
  }
  if (strcmp(type, "order.paid") == 0) {
    const char *oid = str_of(ord, "id"), *cur = str_of(ord, "currency");
    const char *st = str_of(ord, "status"), *pid = str_of(pay, "id");
    json_int_t amount = int_of(ord, "amount_paid");
    if (!id_ok(oid, "order_") || cur == NULL || amount < 0 || st == NULL)
      return fail(out, err, "order entity incomplete");
    out->kind = strcmp(st, "paid") == 0 ? PAYMENTS_EV_APPLY : PAYMENTS_EV_NOT_PAID;
    out->ev.session_id = oid;
    out->ev.paid_ref = id_ok(pid, "pay_") ? pid : NULL;
    out->ev.amount = (int64_t)amount;
    out->ev.currency = cur;
    return LC_OK;
  }
  out->kind = PAYMENTS_EV_IGNORED;
  return LC_OK;
}

void payments_parsed_free(payments_parsed *p) {
  if (p == NULL)
    return;
  json_decref(p->root);
  p->root = NULL;
}
