/* razorpay_api.c - Order creation over Razorpay's REST API; see razorpay_api.h. */
#include "razorpay_api.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/http.h"
#include "lc/util.h"

#define RESP_MAX (256 * 1024)

char *razorpay_order_body(const payments_pack *pack, const char *user_id, const char *receipt) {
  char cur[PAYMENTS_CURRENCY_LEN + 1], credits[24];
  if (pack == NULL || user_id == NULL || receipt == NULL || receipt[0] == '\0' ||
      strlen(receipt) > RAZORPAY_RECEIPT_MAX || payments_currency_upper(pack->currency, cur) != 0)
    return NULL;
  snprintf(credits, sizeof(credits), "%lld", (long long)pack->credits);
  /* notes values are strings (Razorpay: at most 15 pairs of 256 chars). */
  json_t *j = json_pack("{s:I, s:s, s:s, s:{s:s, s:s, s:s}}", "amount", (json_int_t)pack->amount,
                        "currency", cur, "receipt", receipt, "notes", "user_id", user_id, "pack",
                        pack->name, "credits", credits);
  if (j == NULL)
    return NULL;
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}

int razorpay_order_create(const razorpay_api_cfg *cfg, const payments_pack *pack,
                          const char *user_id, const char *receipt, razorpay_order *out,
                          char err[LC_ERR_LEN]) {
  char url[1100], userpwd[400];
  char *body = NULL;
  json_t *j = NULL;
  lc_http_resp resp = {0};
  int rc = LC_ERR_PARAM;
  memset(out, 0, sizeof(*out));
  if (cfg == NULL || cfg->api_base == NULL || cfg->key_id == NULL || cfg->key_id[0] == '\0' ||
      cfg->key_secret == NULL || cfg->key_secret[0] == '\0' || !lc_uuid_valid(user_id) ||
      strchr(cfg->key_id, ':') != NULL)
    return lc_err_set(err, LC_ERR_PARAM, "razorpay: not configured or bad arguments");
  body = razorpay_order_body(pack, user_id, receipt);
  if (body == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "razorpay: bad order arguments");
  size_t blen = strlen(cfg->api_base);
  while (blen > 0 && cfg->api_base[blen - 1] == '/')
    blen--;
  int n1 = snprintf(url, sizeof(url), "%.*s/v1/orders", (int)blen, cfg->api_base);
  int n2 = snprintf(userpwd, sizeof(userpwd), "%s:%s", cfg->key_id, cfg->key_secret);
  if (n1 < 0 || (size_t)n1 >= sizeof(url) || n2 < 0 || (size_t)n2 >= sizeof(userpwd)) {
    rc = lc_err_set(err, LC_ERR_PARAM, "razorpay: base url or keys too long");
    goto out;
  }
  const char *hdrs[] = {"Content-Type: application/json", "Accept: application/json", NULL};
  lc_http_req req = {.method = "POST", .url = url, .headers = hdrs, .body = body,
                     .body_len = strlen(body), .timeout_ms = cfg->timeout_ms,
                     .max_resp = RESP_MAX, .userpwd = userpwd};
  rc = lc_http_do(&req, &resp, err);
  if (rc != LC_OK) {
    if (rc != LC_ERR_TIMEOUT)
      rc = LC_ERR_IO;
    goto out;
  }
  if (resp.status != 200) {
    rc = lc_err_set(err, LC_ERR_IO, "razorpay: HTTP %ld", resp.status);
    goto out;
  }
  j = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
  const char *id = json_string_value(json_object_get(j, "id"));
  const char *cur = json_string_value(json_object_get(j, "currency"));
  json_t *amt = json_object_get(j, "amount");
  if (id == NULL || strncmp(id, "order_", 6) != 0 || strlen(id) > RAZORPAY_ID_MAX ||
      cur == NULL || strlen(cur) >= sizeof(out->currency) || !json_is_integer(amt)) {
    rc = lc_err_set(err, LC_ERR_IO, "razorpay: malformed order response");
    goto out;
  }
  lc_strlcpy(out->id, id, sizeof(out->id));
  lc_strlcpy(out->currency, cur, sizeof(out->currency));
  out->amount = (int64_t)json_integer_value(amt);
  if (!payments_amount_matches(pack->amount, pack->currency, out->amount, out->currency)) {
    rc = lc_err_set(err, LC_ERR_IO, "razorpay: order amount differs from the pack");
    goto out;
  }
  rc = LC_OK;
out:
  sodium_memzero(userpwd, sizeof(userpwd));
  json_decref(j);
  lc_http_resp_free(&resp);
  free(body);
  return rc;
}
