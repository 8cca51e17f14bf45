/* payments_handlers.c - checkout and webhook routes; see payments_handlers.h. */
#include "payments_handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "payments_events.h"
#include "payments_packs.h"
#include "payments_store.h"
#include "razorpay_api.h"
#include "razorpay_sig.h"
#include "stripe_api.h"
#include "stripe_sig.h"

#define CHECKOUT_BODY_MAX 4096
#define IDEM_KEY_MAX 255

/* ---- configuration ---- */

int payments_url_allowed(const char *url) {
  if (url == NULL)
    return 0;
  if (strncmp(url, "https://", 8) == 0)
    return url[8] != '\0' && url[8] != '/';
  static const char *const loop[] = {"http://127.0.0.1", "http://localhost", "http://[::1]",
                                     NULL};
  for (size_t i = 0; loop[i]; i++) {
    size_t n = strlen(loop[i]);
    if (strncmp(url, loop[i], n) == 0 && (url[n] == '\0' || url[n] == ':' || url[n] == '/'))
      return 1;
  }
  return 0;
}

int payments_ctx_init(const lc_cfg *cfg, lc_db_pool *pool, payments_ctx *ctx,
                      char err[LC_ERR_LEN]) {
  memset(ctx, 0, sizeof(*ctx));
  ctx->pool = pool;
  ctx->stripe_api_base = lc_cfg_str(cfg, "STRIPE_API_BASE");
  ctx->stripe_secret_key = lc_cfg_str(cfg, "STRIPE_SECRET_KEY");
  ctx->stripe_webhook_secret = lc_cfg_str(cfg, "STRIPE_WEBHOOK_SECRET");
  ctx->stripe_tolerance_s = lc_cfg_int(cfg, "STRIPE_TOLERANCE_S");
  ctx->success_url = lc_cfg_str(cfg, "PAYMENTS_SUCCESS_URL");
  ctx->cancel_url = lc_cfg_str(cfg, "PAYMENTS_CANCEL_URL");
  ctx->http_timeout_ms = (long)lc_cfg_int(cfg, "PAYMENTS_HTTP_TIMEOUT_MS");
  ctx->razorpay_api_base = lc_cfg_str(cfg, "RAZORPAY_API_BASE");
  ctx->razorpay_key_id = lc_cfg_str(cfg, "RAZORPAY_KEY_ID");
  ctx->razorpay_key_secret = lc_cfg_str(cfg, "RAZORPAY_KEY_SECRET");
  ctx->razorpay_webhook_secret = lc_cfg_str(cfg, "RAZORPAY_WEBHOOK_SECRET");
  if (!payments_url_allowed(ctx->stripe_api_base))
    return lc_err_set(err, LC_ERR_PARAM,
                      "STRIPE_API_BASE: must be https:// (http:// only on loopback)");
  if (!payments_url_allowed(ctx->razorpay_api_base))
    return lc_err_set(err, LC_ERR_PARAM,
                      "RAZORPAY_API_BASE: must be https:// (http:// only on loopback)");
  if (strncmp(ctx->success_url, "http", 4) != 0)
    return lc_err_set(err, LC_ERR_PARAM, "PAYMENTS_SUCCESS_URL: must be an http(s) URL");
  if (strncmp(ctx->cancel_url, "http", 4) != 0)
    return lc_err_set(err, LC_ERR_PARAM, "PAYMENTS_CANCEL_URL: must be an http(s) URL");
  if (ctx->razorpay_key_id && strchr(ctx->razorpay_key_id, ':'))
    return lc_err_set(err, LC_ERR_PARAM, "RAZORPAY_KEY_ID: must not contain ':'");
  return LC_OK;
}

/* ---- helpers ---- */

static const lc_identity *caller(const struct _u_response *resp) {
  static const lc_identity anon = {.role = "anon"};
  const lc_identity *id = lc_iauth_identity(resp);
  return id ? id : &anon;
}

static int send_err(struct _u_response *resp, const char *where, int rc, const char *err) {
  if (lc_err_http_status(rc) >= 500) {
    lc_log_error("%s - %s: %s", where, lc_err_name(rc), err);
    return lc_problem_from_err(resp, rc, "the request could not be completed, try again later");
  }
  return lc_problem_from_err(resp, rc, err && err[0] ? err : NULL);
}

static void metric(const char *provider, const char *what, const char *outcome) {
  char series[160];
  snprintf(series, sizeof(series), "credit_payments_%s_total{provider=\"%s\",outcome=\"%s\"}",
           what, provider, outcome);
  lc_metric_add(series, 1);
}

static int idem_key_valid(const char *k) {
  size_t n = k ? strlen(k) : 0;
  if (n == 0 || n > IDEM_KEY_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    if (k[i] < '!' || k[i] > '~')
      return 0;
  }
  return 1;
}

/* Key sent to the provider: stable for (user, client key) so a retried
 * checkout reuses Stripe's first answer; random without a client key. */
static void provider_idem_key(const char *user_id, const char *client_key, char out[80]) {
  if (client_key == NULL) {
    char u[37];
    lc_uuid_v4(u);
    snprintf(out, 80, "chk-%s", u);
    return;
  }
  char buf[300], hex[65];
  uint8_t h[32];
  int n = snprintf(buf, sizeof(buf), "%s\n%s", user_id, client_key);
  lc_sha256(buf, (size_t)n, h);
  lc_hex_encode(h, sizeof(h), hex);
  snprintf(out, 80, "chk-%s", hex);
}

static json_t *session_json(const payments_session *s, const char *razorpay_key_id) {
  if (strcmp(s->provider, "razorpay") == 0) {
    char cur[4] = "";
    payments_currency_upper(s->currency, cur);
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "provider", "razorpay", "order_id",
                     s->id, "key_id", razorpay_key_id ? razorpay_key_id : "", "pack", s->pack,
                     "credits", (json_int_t)s->credits, "amount", (json_int_t)s->amount,
                     "currency", cur);
  }
  return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "provider", "stripe", "session_id",
                   s->id, "checkout_url", s->checkout_url, "pack", s->pack, "credits",
                   (json_int_t)s->credits, "amount", (json_int_t)s->amount, "currency",
                   s->currency);
}

static int send_session(struct _u_response *resp, const payments_session *s,
                        const payments_ctx *ctx, int replayed) {
  json_t *o = session_json(s, ctx->razorpay_key_id);
  if (replayed)
    u_map_put(resp->map_header, "Idempotent-Replayed", "true");
  int r = lc_json_send(resp, 201, o);
  json_decref(o);
  return r;
}

/* Replays the session stored for the client's key; 422 for another pack. */
static int replay_or_422(struct _u_response *resp, const payments_session *s, const char *pack,
                         const payments_ctx *ctx) {
  if (strcmp(s->pack, pack) != 0)
    return lc_problem(resp, 422, "idempotency-key-reused",
                      "this Idempotency-Key was used for a different request");
  return send_session(resp, s, ctx, 1);
}

/* ---- POST /v1/payments/checkout ---- */

static int create_with_provider(const payments_ctx *ctx, const char *provider,
                                const payments_pack *pack, const char *uid,
                                const char *client_key, payments_session *s,
                                char err[LC_ERR_LEN]) {
  memset(s, 0, sizeof(*s));
  lc_strlcpy(s->provider, provider, sizeof(s->provider));
  lc_strlcpy(s->user_id, uid, sizeof(s->user_id));
  lc_strlcpy(s->pack, pack->name, sizeof(s->pack));
  lc_strlcpy(s->currency, pack->currency, sizeof(s->currency));
  s->credits = pack->credits;
  s->amount = pack->amount;
  lc_strlcpy(s->status, "open", sizeof(s->status));
  if (strcmp(provider, "stripe") == 0) {
    char idem[80];
    stripe_session ss;
    stripe_api_cfg sc = {ctx->stripe_api_base, ctx->stripe_secret_key, ctx->success_url,
                         ctx->cancel_url, ctx->http_timeout_ms};
    provider_idem_key(uid, client_key, idem);
    int rc = stripe_checkout_create(&sc, pack, uid, idem, &ss, err);
    if (rc != LC_OK)
      return rc;
    lc_strlcpy(s->id, ss.id, sizeof(s->id));
    lc_strlcpy(s->checkout_url, ss.url, sizeof(s->checkout_url));
    return LC_OK;
  }
  /* Razorpay: our receipt is a fresh reference (Razorpay has no idempotency
   * header; a retried checkout with the same client key is answered from
   * our table before we get here). */
  char u[37], receipt[RAZORPAY_RECEIPT_MAX + 1];
  size_t j = 0;
  lc_uuid_v4(u);
  j = (size_t)snprintf(receipt, sizeof(receipt), "rcpt_");
  for (size_t i = 0; u[i] && j + 1 < sizeof(receipt); i++) {
    if (u[i] != '-')
      receipt[j++] = u[i];
  }
  receipt[j] = '\0';
  razorpay_api_cfg rc_cfg = {ctx->razorpay_api_base, ctx->razorpay_key_id,
                             ctx->razorpay_key_secret, ctx->http_timeout_ms};
  razorpay_order ro;
  int rc = razorpay_order_create(&rc_cfg, pack, uid, receipt, &ro, err);
  if (rc != LC_OK)
    return rc;
  lc_strlcpy(s->id, ro.id, sizeof(s->id));
  return LC_OK;
}

static int cb_checkout(const struct _u_request *req, struct _u_response *resp, void *ud) {
  payments_ctx *ctx = ud;
  const lc_identity *id = caller(resp);
  static const char *const allowed[] = {"pack", "provider", NULL};
  char err[LC_ERR_LEN] = "";
  json_t *b = NULL;
  payments_session s, prev;
  int rc = LC_OK;

  if (id->user_id[0] == '\0' || !lc_uuid_valid(id->user_id))
    return lc_problem_from_err(resp, LC_ERR_UNAUTH, "authentication required");
  if ((strcmp(id->role, "user") != 0 && strcmp(id->role, "admin") != 0) ||
      strcmp(id->scope, "full") != 0)
    return lc_problem_from_err(resp, LC_ERR_FORBIDDEN, "checkout needs a signed-in user");
  rc = lc_json_body(req, CHECKOUT_BODY_MAX, &b, err);
  if (rc == LC_OK)
    rc = lc_json_only_fields(b, allowed, err);
  if (rc != LC_OK) {
    json_decref(b);
    return send_err(resp, "checkout", rc, err);
  }
  const json_t *jp = json_object_get(b, "pack"), *jv = json_object_get(b, "provider");
  const payments_pack *pack = json_is_string(jp) ? payments_pack_find(json_string_value(jp)) : NULL;
  /* provider points at a static literal, never into b (freed below). */
  const char *provider = "stripe";
  if (jv != NULL) {
    const char *v = json_string_value(jv);
    provider = v == NULL ? NULL
               : strcmp(v, "stripe") == 0   ? "stripe"
               : strcmp(v, "razorpay") == 0 ? "razorpay"
                                            : NULL;
  }
  const char *client_key = u_map_get_case(req->map_header, "Idempotency-Key");
  if (pack == NULL)
    rc = lc_err_set(err, LC_ERR_PARAM, "pack must be one of small, medium, large");
  else if (provider == NULL)
    rc = lc_err_set(err, LC_ERR_PARAM, "provider must be \"stripe\" or \"razorpay\"");
  else if (client_key != NULL && !idem_key_valid(client_key))
    rc = lc_err_set(err, LC_ERR_PARAM, "Idempotency-Key must be 1..255 visible ASCII characters");
  if (rc == LC_OK) {
    int configured = strcmp(provider, "stripe") == 0
                         ? ctx->stripe_secret_key != NULL
                         : ctx->razorpay_key_id != NULL && ctx->razorpay_key_secret != NULL;
    if (!configured)
      rc = lc_err_set(err, LC_ERR_UNAVAIL, "payment provider %s is not configured", provider);
  }
  if (rc != LC_OK) {
    json_decref(b);
    return rc == LC_ERR_UNAVAIL ? lc_problem(resp, 503, NULL, err)
                                : send_err(resp, "checkout", rc, err);
  }
  /* A retried checkout with the same Idempotency-Key gets the same session. */
  if (client_key != NULL) {
    rc = payments_find_by_client_key(ctx->pool, id->user_id, provider, client_key, &prev, err);
    if (rc == LC_OK) {
      int r = replay_or_422(resp, &prev, pack->name, ctx);
      json_decref(b);
      return r;
    }
    if (rc != LC_ERR_NOTFOUND) {
      json_decref(b);
      return send_err(resp, "checkout", rc, err);
    }
  }
  rc = create_with_provider(ctx, provider, pack, id->user_id, client_key, &s, err);
  if (rc == LC_OK)
    rc = payments_store_session(ctx->pool, &s, client_key, id->request_id, err);
  if (rc == LC_ERR_CONFLICT && client_key != NULL &&
      payments_find_by_client_key(ctx->pool, id->user_id, provider, client_key, &prev, err) ==
          LC_OK) {
    int r = replay_or_422(resp, &prev, pack->name, ctx); /* a concurrent twin won */
    json_decref(b);
    return r;
  }
  json_decref(b);
  if (rc != LC_OK) {
    metric(provider, "checkouts", "failed");
    if (rc == LC_ERR_IO || rc == LC_ERR_TIMEOUT) {
      lc_log_error("checkout - %s: %s", provider, err);
      return lc_problem(resp, rc == LC_ERR_IO ? 502 : 504, NULL,
                        "the payment provider is not available, try again later");
    }
    return send_err(resp, "checkout", rc, err);
  }
  metric(provider, "checkouts", "created");
  lc_log_info("Event - checkout created provider=%s session=%s user=%s pack=%s", provider, s.id,
              id->user_id, pack->name);
  return send_session(resp, &s, ctx, 0);
}

/* ---- webhooks ---- */

static int webhook_reply(struct _u_response *resp, const char *provider, const char *outcome) {
  metric(provider, "webhooks", outcome);
  json_t *o = json_pack("{s:b, s:s}", "received", 1, "outcome", outcome);
  int r = lc_json_send(resp, 200, o);
  json_decref(o);
  return r;
}

static int bad_signature(struct _u_response *resp, const char *provider, const char *err) {
  metric(provider, "webhooks", "bad_signature");
  lc_log_warn("Security - %s webhook refused: %s", provider, err);
  return lc_problem(resp, 400, "invalid-signature", "webhook signature verification failed");
}

static int apply_parsed(struct _u_response *resp, payments_ctx *ctx, payments_parsed *pp,
                        const lc_identity *id) {
  char err[LC_ERR_LEN] = "";
  const char *provider = pp->ev.provider;
  if (pp->kind == PAYMENTS_EV_IGNORED) {
    payments_parsed_free(pp);
    return webhook_reply(resp, provider, "ignored");
  }
  if (pp->kind == PAYMENTS_EV_NOT_PAID) {
    payments_parsed_free(pp);
    return webhook_reply(resp, provider, "not_paid");
  }
  pp->ev.request_id = id->request_id[0] ? id->request_id : NULL;
  payments_outcome oc = PAYMENTS_UNKNOWN_SESSION;
  int rc = payments_apply_event(ctx->pool, &pp->ev, &oc, NULL, NULL, err);
  if (rc == LC_OK && oc == PAYMENTS_UNKNOWN_SESSION)
    lc_log_warn("Security - %s event %s names unknown session %s", provider, pp->ev.event_id,
                pp->ev.session_id);
  payments_parsed_free(pp);
  if (rc == LC_ERR_PARAM)
    return lc_problem(resp, 400, NULL, err);
  if (rc != LC_OK)
    return send_err(resp, "webhook", rc, err);
  return webhook_reply(resp, provider, payments_outcome_name(oc));
}

static int cb_webhook_stripe(const struct _u_request *req, struct _u_response *resp, void *ud) {
  payments_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  if (ctx->stripe_webhook_secret == NULL)
    return lc_problem(resp, 503, NULL, "Stripe webhooks are not configured");
  const char *sig = u_map_get_case(req->map_header, "Stripe-Signature");
  int rc = stripe_sig_verify(ctx->stripe_webhook_secret, sig, req->binary_body,
                             req->binary_body_length, lc_now_ms() / 1000,
                             ctx->stripe_tolerance_s, err);
  if (rc != LC_OK)
    return bad_signature(resp, "stripe", err);
  payments_parsed pp;
  rc = payments_parse_stripe(req->binary_body, req->binary_body_length, &pp, err);
  if (rc != LC_OK)
    return lc_problem(resp, 400, NULL, err);
  return apply_parsed(resp, ctx, &pp, caller(resp));
}

static int cb_webhook_razorpay(const struct _u_request *req, struct _u_response *resp,
                               void *ud) {
  payments_ctx *ctx = ud;
  char err[LC_ERR_LEN] = "";
  if (ctx->razorpay_webhook_secret == NULL)
    return lc_problem(resp, 503, NULL, "Razorpay webhooks are not configured");
  const char *sig = u_map_get_case(req->map_header, "X-Razorpay-Signature");
  int rc = razorpay_sig_verify(ctx->razorpay_webhook_secret, sig, req->binary_body,
                               req->binary_body_length, err);
  if (rc != LC_OK)
    return bad_signature(resp, "razorpay", err);
  const char *event_id = u_map_get_case(req->map_header, "X-Razorpay-Event-Id");
  if (event_id == NULL || event_id[0] == '\0')
    return lc_problem(resp, 400, NULL, "missing X-Razorpay-Event-Id header");
  payments_parsed pp;
  rc = payments_parse_razorpay(req->binary_body, req->binary_body_length, event_id, &pp, err);
  if (rc != LC_OK)
    return lc_problem(resp, 400, NULL, err);
  return apply_parsed(resp, ctx, &pp, caller(resp));
}

/* ---- route table ---- */

static const struct {
  const char *method, *path;
  int (*cb)(const struct _u_request *, struct _u_response *, void *);
} ROUTES[] = {
    {"POST", "/v1/payments/checkout", cb_checkout},
    {"POST", "/v1/payments/webhooks/stripe", cb_webhook_stripe},
    {"POST", "/v1/payments/webhooks/razorpay", cb_webhook_razorpay},
};

int payments_handlers_register(struct _u_instance *inst, payments_ctx *ctx, char err[LC_ERR_LEN]) {
  for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
    if (lc_svc_route(inst, ROUTES[i].method, ROUTES[i].path, LC_PRIO_APP, ROUTES[i].cb, ctx) !=
        LC_OK)
      return lc_err_set(err, LC_ERR, "cannot register %s %s", ROUTES[i].method, ROUTES[i].path);
  }
  return LC_OK;
}
