/* rpc.c - Ethereum JSON-RPC 2.0 client (see rpc.h). */
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/http.h"
#include "lc/util.h"
#include "u256.h"

int rpc_init(rpc_client *c, const char *url, long timeout_ms, char err[LC_ERR_LEN])
{
  if (c == NULL || url == NULL || url[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "rpc_init - empty url");
  memset(c, 0, sizeof(*c));
  if (lc_strlcpy(c->url, url, sizeof(c->url)) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "rpc_init - url too long");
  c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
  atomic_init(&c->next_id, 1);
  return LC_OK;
}

/* One response object (borrowed) -> result / error, for id expect_id. */
static int parse_obj(json_t *root, long long expect_id, json_t **result, long *rpc_code,
                     char err[LC_ERR_LEN])
{
  json_t *id, *res, *jerrobj;

  *result = NULL;
  if (rpc_code != NULL)
    *rpc_code = 0;
  if (!json_is_object(root))
    return lc_err_set(err, LC_ERR_IO, "rpc - response is not a JSON object");
  id = json_object_get(root, "id");
  if (!json_is_integer(id) || json_integer_value(id) != expect_id)
    return lc_err_set(err, LC_ERR_IO, "rpc - response id mismatch");
  jerrobj = json_object_get(root, "error");
  if (jerrobj != NULL && !json_is_null(jerrobj)) {
    const char *msg = json_string_value(json_object_get(jerrobj, "message"));
    json_t *code = json_object_get(jerrobj, "code");
    if (rpc_code != NULL && json_is_integer(code))
      *rpc_code = (long)json_integer_value(code);
    return lc_err_set(err, LC_ERR_UNPROCESSABLE, "%.200s", msg != NULL ? msg : "rpc error");
  }
  res = json_object_get(root, "result");
  if (res == NULL)
    return lc_err_set(err, LC_ERR_IO, "rpc - response has neither result nor error");
  *result = json_incref(res);
  return LC_OK;
}

int rpc_parse_response(const char *text, size_t len, long long expect_id, json_t **result,
                       long *rpc_code, char err[LC_ERR_LEN])
{
  json_error_t jerr;
  json_t *root;
  int rc;

  *result = NULL;
  if (rpc_code != NULL)
    *rpc_code = 0;
  if (text == NULL || len == 0)
    return lc_err_set(err, LC_ERR_IO, "rpc - empty response");
  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  rc = parse_obj(root, expect_id, result, rpc_code, err);
  json_decref(root);
  return rc;
}

/* POSTs body; transport failure -> LC_ERR_UNAVAIL, non-200 -> LC_ERR_IO. */
static int post(rpc_client *c, const char *body, const char *what, lc_http_resp *resp,
                char err[LC_ERR_LEN])
{
  static const char *const headers[] = {"Content-Type: application/json", NULL};
  lc_http_req hreq;
  int rc;

  memset(&hreq, 0, sizeof(hreq));
  hreq.method = "POST";
  hreq.url = c->url;
  hreq.headers = headers;
  hreq.body = body;
  hreq.body_len = strlen(body);
  hreq.timeout_ms = c->timeout_ms;
  hreq.max_resp = RPC_MAX_RESP;
  rc = lc_http_do(&hreq, resp, err);
  if (rc == LC_ERR_IO)
    return LC_ERR_UNAVAIL; /* transport failure: node down */
  if (rc != LC_OK)
    return rc;
  if (resp->status != 200)
    return lc_err_set(err, LC_ERR_IO, "rpc - %s: HTTP status %ld", what, resp->status);
  return LC_OK;
}

int rpc_batch(rpc_client *c, rpc_batch_item *items, size_t n, char err[LC_ERR_LEN])
{
  json_t *req = NULL, *root = NULL;
  char *body = NULL;
  lc_http_resp resp = {0};
  json_error_t jerr;
  long long base;
  size_t i;
  int rc = LC_OK;

  for (i = 0; i < n; i++) {
    items[i].result = NULL;
    items[i].rc = LC_ERR_IO;
    items[i].code = 0;
    lc_strlcpy(items[i].err, "rpc - no answer for this call", sizeof(items[i].err));
  }
  if (n == 0) {
    return LC_OK;
  }
  base = atomic_fetch_add(&c->next_id, (long long)n);
  req = json_array();
  for (i = 0; i < n; i++) {
    json_t *params = items[i].params != NULL ? items[i].params : json_array();
    items[i].params = NULL;
    /* "o" steals params, also when json_pack fails. */
    json_t *one = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id",
                            (json_int_t)(base + (long long)i), "method", items[i].method, "params",
                            params);
    if (one == NULL || json_array_append_new(req, one) != 0) {
      for (size_t j = i + 1; j < n; j++) {
        json_decref(items[j].params);
        items[j].params = NULL;
      }
      json_decref(req);
      return lc_err_set(err, LC_ERR_PARAM, "rpc - cannot build batch request");
    }
  }
  body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  if (body == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "rpc - cannot serialise batch request");
  rc = post(c, body, "batch", &resp, err);
  if (rc != LC_OK)
    goto out;
  root = json_loadb(resp.body != NULL ? resp.body : "", resp.len, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_array(root)) {
    /* A node without batch support answers one error object. */
    rc = lc_err_set(err, LC_ERR_IO, "rpc - batch answer is not an array");
    goto out;
  }
  for (i = 0; i < json_array_size(root); i++) {
    json_t *o = json_array_get(root, i);
    json_t *id = json_object_get(o, "id");
    long long k;
    if (!json_is_integer(id))
      continue;
    k = json_integer_value(id) - base;
    if (k < 0 || (size_t)k >= n || items[k].result != NULL)
      continue;
    items[k].rc = parse_obj(o, base + k, &items[k].result, &items[k].code, items[k].err);
  }
out:
  json_decref(root);
  lc_http_resp_free(&resp);
  free(body);
  return rc;
}

void rpc_batch_free(rpc_batch_item *items, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    json_decref(items[i].params);
    items[i].params = NULL;
    json_decref(items[i].result);
    items[i].result = NULL;
  }
}

int rpc_call(rpc_client *c, const char *method, json_t *params, json_t **result,
             long *rpc_code, char err[LC_ERR_LEN])
{
  json_t *req = NULL;
  char *body = NULL;
  lc_http_resp resp = {0};
  long long id;
  int rc;

  *result = NULL;
  if (rpc_code != NULL)
    *rpc_code = 0;
  if (params == NULL)
    params = json_array();
  id = atomic_fetch_add(&c->next_id, 1);
  /* "o" steals params, also when json_pack fails. */
  req = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)id, "method",
                  method, "params", params);
  if (req == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "rpc - cannot build request for %s", method);
  body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  if (body == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "rpc - cannot serialise request");
  rc = post(c, body, method, &resp, err);
  if (rc == LC_OK)
    rc = rpc_parse_response(resp.body, resp.len, id, result, rpc_code, err);
  lc_http_resp_free(&resp);
  free(body);
  return rc;
}

int rpc_quantity_u64(const json_t *v, uint64_t *out)
{
  const char *s = json_string_value(v);
  uint64_t acc = 0;
  size_t i, n;

  if (s == NULL || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
    return LC_ERR_PARAM;
  n = strlen(s + 2);
  if (n == 0 || n > 16)
    return LC_ERR_PARAM;
  for (i = 0; i < n; i++) {
    char ch = s[2 + i];
    unsigned d;
    if (ch >= '0' && ch <= '9')
      d = (unsigned)(ch - '0');
    else if (ch >= 'a' && ch <= 'f')
      d = (unsigned)(ch - 'a' + 10);
    else if (ch >= 'A' && ch <= 'F')
      d = (unsigned)(ch - 'A' + 10);
    else
      return LC_ERR_PARAM;
    acc = (acc << 4) | d;
  }
  *out = acc;
  return LC_OK;
}

int rpc_quantity_u256(const json_t *v, uint8_t out[32])
{
  const char *s = json_string_value(v);
  if (s == NULL)
    return LC_ERR_PARAM;
  return u256_from_hex(s, out) == LC_OK ? LC_OK : LC_ERR_PARAM;
}
