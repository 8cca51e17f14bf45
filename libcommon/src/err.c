/* err.c - the shared status enum: messages, names and the one mapping to
 * HTTP status codes. Pure functions, thread-safe. */
#include "lc/err.h"

#include <stdarg.h>
#include <stdio.h>

/* Formats into err (LC_ERR_LEN bytes) when err is non-NULL; returns code. */
int lc_err_set(char *err, int code, const char *fmt, ...) {
  va_list ap;
  if (err == NULL) return code;
  if (fmt == NULL) {
    err[0] = '\0';
    return code;
  }
  va_start(ap, fmt);
  (void)vsnprintf(err, LC_ERR_LEN, fmt, ap);
  va_end(ap);
  return code;
}

/* Status -> HTTP status code; unknown codes map to 500. */
int lc_err_http_status(int code) {
  switch (code) {
  case LC_OK: return 200;
  case LC_ERR_PARAM: return 400;
  case LC_ERR_NOTFOUND: return 404;
  case LC_ERR_CONFLICT: return 409;
  case LC_ERR_UNAUTH: return 401;
  case LC_ERR_FORBIDDEN: return 403;
  case LC_ERR_FUNDS: return 402;
  case LC_ERR_UNAVAIL: return 503;
  case LC_ERR_TIMEOUT: return 503;
  case LC_ERR_TOO_LARGE: return 413;
  case LC_ERR_MEDIA: return 415;
  case LC_ERR_UNPROCESSABLE: return 422;
  case LC_ERR_RATE: return 429;
  case LC_ERR_IO: return 502;
  case LC_ERR_RETRY: return 503;
  case LC_ERR:
  case LC_ERR_NOMEM:
  case LC_ERR_DB:
  default: return 500;
  }
}

/* Short stable name for logs and problem slugs; never NULL. */
const char *lc_err_name(int code) {
  switch (code) {
  case LC_OK: return "ok";
  case LC_ERR: return "internal";
  case LC_ERR_PARAM: return "invalid_request";
  case LC_ERR_NOMEM: return "no_memory";
  case LC_ERR_NOTFOUND: return "not_found";
  case LC_ERR_CONFLICT: return "conflict";
  case LC_ERR_UNAUTH: return "unauthorized";
  case LC_ERR_FORBIDDEN: return "forbidden";
  case LC_ERR_FUNDS: return "insufficient_credits";
  case LC_ERR_UNAVAIL: return "unavailable";
  case LC_ERR_TIMEOUT: return "timeout";
  case LC_ERR_TOO_LARGE: return "too_large";
  case LC_ERR_MEDIA: return "unsupported_media_type";
  case LC_ERR_UNPROCESSABLE: return "unprocessable";
  case LC_ERR_RATE: return "rate_limited";
  case LC_ERR_DB: return "database";
  case LC_ERR_IO: return "bad_gateway";
  case LC_ERR_RETRY: return "retry";
  default: return "unknown";
  }
}
