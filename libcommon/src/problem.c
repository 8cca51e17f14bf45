/* problem.c - RFC 9457 problem+json responses and strict JSON request
 * parsing for ulfius callbacks. Thread-safe (no shared state). */
#include "lc/problem.h"
#include "lc/err.h"
#include "lc/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *status_title(int status) {
  switch (status) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return status >= 500 ? "Server Error" : "Error";
  }
}

static const char *status_slug(int status) {
  switch (status) {
  case 400: return "bad-request";
  case 401: return "unauthorized";
  case 402: return "payment-required";
  case 403: return "forbidden";
  case 404: return "not-found";
  case 405: return "method-not-allowed";
  case 409: return "conflict";
  case 413: return "content-too-large";
  case 415: return "unsupported-media-type";
  case 422: return "unprocessable-content";
  case 429: return "too-many-requests";
  case 500: return "internal-server-error";
  case 502: return "bad-gateway";
  case 503: return "service-unavailable";
  case 504: return "gateway-timeout";
  default: return status >= 500 ? "server-error" : "error";
  }
}

/* Sets resp to a problem+json body; falls back to a fixed body if JSON
 * building fails. Always returns U_CALLBACK_COMPLETE. */
int lc_problem(struct _u_response *resp, int status, const char *slug, const char *detail) {
  char type[160];
  json_t *o;
  char *text = NULL;
  if (resp == NULL) return U_CALLBACK_COMPLETE;
  if (status < 100 || status > 599) status = 500;
  snprintf(type, sizeof type, "urn:problem:%s", slug ? slug : status_slug(status));
  o = json_object();
  if (o != NULL) {
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "title", json_string(status_title(status)));
    json_object_set_new(o, "status", json_integer(status));
    if (detail != NULL) json_object_set_new(o, "detail", json_string(detail));
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
  }
  if (text != NULL) {
    ulfius_set_binary_body_response(resp, (unsigned int)status, text, strlen(text));
    free(text);
  } else {
    static const char fb[] = "{\"type\":\"urn:problem:internal-server-error\","
                             "\"title\":\"Internal Server Error\",\"status\":500}";
    ulfius_set_binary_body_response(resp, 500, fb, sizeof fb - 1);
  }
  u_map_put(resp->map_header, "Content-Type", "application/problem+json");
  u_map_put(resp->map_header, "Cache-Control", "no-store");
  return U_CALLBACK_COMPLETE;
}

int lc_problem_from_err(struct _u_response *resp, int code, const char *detail) {
  return lc_problem(resp, lc_err_http_status(code), NULL, detail);
}

int lc_json_send(struct _u_response *resp, int status, json_t *body) {
  char *text;
  if (resp == NULL) return U_CALLBACK_COMPLETE;
  if (body == NULL || !(json_is_object(body) || json_is_array(body)))
    return lc_problem(resp, 500, NULL, NULL);
  text = json_dumps(body, JSON_COMPACT);
  if (text == NULL) return lc_problem(resp, 500, NULL, NULL);
  ulfius_set_binary_body_response(resp, (unsigned int)status, text, strlen(text));
  free(text);
  u_map_put(resp->map_header, "Content-Type", "application/json");
  return U_CALLBACK_COMPLETE;
}

/* 1 if ct is application/json, optionally followed by parameters. */
static int is_json_ct(const char *ct) {
  static const char want[] = "application/json";
  size_t n = sizeof want - 1;
  if (ct == NULL) return 0;
  while (*ct == ' ' || *ct == '\t') ct++;
  if (strncasecmp(ct, want, n) != 0) return 0;
  ct += n;
  while (*ct == ' ' || *ct == '\t') ct++;
  return *ct == '\0' || *ct == ';';
}

int lc_json_body(const struct _u_request *req, size_t max_len, json_t **out, char err[256]) {
  json_error_t je;
  json_t *j;
  if (out == NULL) return lc_err_set(err, LC_ERR_PARAM, "no output");
  *out = NULL;
  if (req == NULL) return lc_err_set(err, LC_ERR_PARAM, "no request");
  if (!is_json_ct(u_map_get_case(req->map_header, "Content-Type")))
    return lc_err_set(err, LC_ERR_MEDIA, "Content-Type must be application/json");
  if (req->binary_body_length > max_len)
    return lc_err_set(err, LC_ERR_TOO_LARGE, "body larger than %zu bytes", max_len);
  if (req->binary_body == NULL || req->binary_body_length == 0)
    return lc_err_set(err, LC_ERR_PARAM, "empty body");
  j = json_loadb(req->binary_body, req->binary_body_length, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "invalid JSON at line %d column %d", je.line,
                      je.column);
  if (!json_is_object(j)) {
    json_decref(j);
    return lc_err_set(err, LC_ERR_PARAM, "body must be a JSON object");
  }
  *out = j;
  return LC_OK;
}

int lc_json_only_fields(const json_t *obj, const char *const *allowed, char err[256]) {
  const char *key;
  json_t *val;
  if (!json_is_object(obj)) return lc_err_set(err, LC_ERR_PARAM, "body must be a JSON object");
  json_object_foreach((json_t *)obj, key, val) {
    size_t i;
    int ok = 0;
    (void)val;
    for (i = 0; allowed != NULL && allowed[i] != NULL; i++) {
      if (strcmp(allowed[i], key) == 0) {
        ok = 1;
        break;
      }
    }
    if (!ok) return lc_err_set(err, LC_ERR_PARAM, "unknown field '%.64s'", key);
  }
  return LC_OK;
}
