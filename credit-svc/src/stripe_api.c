/* stripe_api.c - Checkout Session creation over Stripe's REST API; see stripe_api.h. */
#include "stripe_api.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lc/http.h"
#include "lc/log.h"
#include "lc/util.h"

#define RESP_MAX (256 * 1024)

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

int stripe_form_add(char *out, size_t outsz, size_t *len, const char *key, const char *value) {
  static const char hexd[] = "0123456789ABCDEF";
  size_t n = *len;
  if (out == NULL || key == NULL || value == NULL || outsz == 0)
    return LC_ERR_PARAM;
  if (n > 0) {
    if (n + 1 >= outsz)
      return LC_ERR_TOO_LARGE;
    out[n++] = '&';
  }
  size_t klen = strlen(key);
  if (n + klen + 1 >= outsz)
    return LC_ERR_TOO_LARGE;
  memcpy(out + n, key, klen);
  n += klen;
  out[n++] = '=';
  for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
    if (unreserved(*p)) {
      if (n + 1 >= outsz)
        return LC_ERR_TOO_LARGE;
      out[n++] = (char)*p;
    } else {
      if (n + 3 >= outsz)
        return LC_ERR_TOO_LARGE;
      out[n++] = '%';
      out[n++] = hexd[*p >> 4];
      out[n++] = hexd[*p & 15];
    }
  }
  out[n] = '\0';
  *len = n;
  return LC_OK;
}

int stripe_form_build(const payments_pack *pack, const char *user_id, const char *success_url,
                      const char *cancel_url, char *out, size_t outsz, size_t *len,
                      char err[LC_ERR_LEN]) {
  if (pack == NULL || user_id == NULL || success_url == NULL || cancel_url == NULL ||
      out == NULL || outsz == 0)
    return lc_err_set(err, LC_ERR_PARAM, "missing argument");
  char amount[24], credits[24];
  snprintf(amount, sizeof(amount), "%lld", (long long)pack->amount);
  snprintf(credits, sizeof(credits), "%lld", (long long)pack->credits);
  const char *kv[][2] = {
      {"mode", "payment"},
      {"line_items[0][price_data][currency]", pack->currency},
      {"line_items[0][price_data][unit_amount]", amount},
      {"line_items[0][price_data][product_data][name]", pack->label},
      {"line_items[0][quantity]", "1"},
      {"success_url", success_url},
      {"cancel_url", cancel_url},
      {"client_reference_id", user_id},
      {"metadata[user_id]", user_id},
      {"metadata[pack]", pack->name},
      {"metadata[credits]", credits},
  };
  *len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
    int rc = stripe_form_add(out, outsz, len, kv[i][0], kv[i][1]);
    if (rc != LC_OK)
      return lc_err_set(err, rc, "checkout form too large");
  }
  return LC_OK;
}

/* Fills out from Stripe's Checkout Session JSON. */
static int parse_session(const char *body, size_t len, stripe_session *out,
                         char err[LC_ERR_LEN]) {
  json_error_t jerr;
  json_t *j = json_loadb(body, len, 0, &jerr);
  int rc = LC_ERR_IO;
  if (!json_is_object(j)) {
    lc_err_set(err, rc, "stripe: response is not a JSON object");
    goto out;
  }
  const char *id = json_string_value(json_object_get(j, "id"));
  const char *url = json_string_value(json_object_get(j, "url"));
  const char *cur = json_string_value(json_object_get(j, "currency"));
  json_t *amt = json_object_get(j, "amount_total");
  if (id == NULL || strncmp(id, "cs_", 3) != 0 || strlen(id) > STRIPE_ID_MAX) {
    lc_err_set(err, rc, "stripe: session id missing or malformed");
    goto out;
  }
  if (url == NULL || strlen(url) > STRIPE_URL_MAX ||
      (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)) {
    lc_err_set(err, rc, "stripe: session url missing or malformed");
    goto out;
  }
  if (cur == NULL || strlen(cur) >= sizeof(out->currency) || !json_is_integer(amt)) {
    lc_err_set(err, rc, "stripe: amount_total/currency missing");
    goto out;
  }
  lc_strlcpy(out->id, id, sizeof(out->id));
  lc_strlcpy(out->url, url, sizeof(out->url));
  lc_strlcpy(out->currency, cur, sizeof(out->currency));
  out->amount_total = (int64_t)json_integer_value(amt);
  rc = LC_OK;
out:
  json_decref(j);
  return rc;
}

int stripe_checkout_create(const stripe_api_cfg *cfg, const payments_pack *pack,
                           const char *user_id, const char *idem_key, stripe_session *out,
                           char err[LC_ERR_LEN]) {
  char form[STRIPE_FORM_MAX], url[1100], auth[300], idem[300];
  size_t flen = 0;
  lc_http_resp resp = {0};
  int rc;
  memset(out, 0, sizeof(*out));
  if (cfg == NULL || cfg->api_base == NULL || cfg->secret_key == NULL ||
      cfg->secret_key[0] == '\0' || idem_key == NULL || idem_key[0] == '\0' ||
      strlen(idem_key) > 255 || !lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_PARAM, "stripe: not configured or bad arguments");
  rc = stripe_form_build(pack, user_id, cfg->success_url, cfg->cancel_url, form, sizeof(form),
                         &flen, err);
  if (rc != LC_OK)
    return rc;
  size_t blen = strlen(cfg->api_base);
  while (blen > 0 && cfg->api_base[blen - 1] == '/')
    blen--;
  int n1 = snprintf(url, sizeof(url), "%.*s/v1/checkout/sessions", (int)blen, cfg->api_base);
  int n2 = snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->secret_key);
  int n3 = snprintf(idem, sizeof(idem), "Idempotency-Key: %s", idem_key);
  if (n1 < 0 || (size_t)n1 >= sizeof(url) || n2 < 0 || (size_t)n2 >= sizeof(auth) || n3 < 0 ||
      (size_t)n3 >= sizeof(idem)) {
    rc = lc_err_set(err, LC_ERR_PARAM, "stripe: base url or key too long");
    goto out;
  }
  const char *hdrs[] = {auth, idem, "Content-Type: application/x-www-form-urlencoded",
                        "Accept: application/json", NULL};
  lc_http_req req = {.method = "POST", .url = url, .headers = hdrs, .body = form,
                     .body_len = flen, .timeout_ms = cfg->timeout_ms, .max_resp = RESP_MAX};
  rc = lc_http_do(&req, &resp, err);
  if (rc != LC_OK) {
    if (rc != LC_ERR_TIMEOUT)
      rc = LC_ERR_IO;
    goto out;
  }
  if (resp.status != 200) {
    /* Stripe's error object {error:{type,code,message}}: log type/code only. */
    const char *type = "";
    json_t *j = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    if (json_is_string(json_object_get(e, "type")))
      type = json_string_value(json_object_get(e, "type"));
    rc = lc_err_set(err, LC_ERR_IO, "stripe: HTTP %ld %.60s", resp.status, type);
    json_decref(j);
    goto out;
  }
  rc = parse_session(resp.body ? resp.body : "", resp.len, out, err);
  if (rc != LC_OK)
    goto out;
  if (!payments_amount_matches(pack->amount, pack->currency, out->amount_total, out->currency)) {
    rc = lc_err_set(err, LC_ERR_IO, "stripe: session amount %lld %s differs from the pack",
                    (long long)out->amount_total, out->currency);
    goto out;
  }
out:
  sodium_memzero(auth, sizeof(auth));
  lc_http_resp_free(&resp);
  return rc;
}
