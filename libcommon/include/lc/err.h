/* err.h - one status enum shared by every module and daemon.
 *
 * Every function that can fail returns an int from this enum (LC_OK == 0) and,
 * where useful, writes a human-readable reason into a caller-supplied
 * char err[LC_ERR_LEN]. Error text never contains secrets. */
#ifndef LC_ERR_H
#define LC_ERR_H

#include <stddef.h>

#define LC_ERR_LEN 256

enum lc_status {
  LC_OK = 0,
  LC_ERR = 1,          /* generic internal failure -> 500 */
  LC_ERR_PARAM,        /* invalid input -> 400 */
  LC_ERR_NOMEM,        /* allocation failed -> 500 */
  LC_ERR_NOTFOUND,     /* -> 404 */
  LC_ERR_CONFLICT,     /* -> 409 */
  LC_ERR_UNAUTH,       /* bad/missing credentials -> 401 */
  LC_ERR_FORBIDDEN,    /* wrong role/scope -> 403 */
  LC_ERR_FUNDS,        /* insufficient credits -> 402 */
  LC_ERR_UNAVAIL,      /* dependency down / pool exhausted -> 503 */
  LC_ERR_TIMEOUT,      /* -> 503 (or 504 at the gateway) */
  LC_ERR_TOO_LARGE,    /* -> 413 */
  LC_ERR_MEDIA,        /* wrong content type -> 415 */
  LC_ERR_UNPROCESSABLE,/* -> 422 */
  LC_ERR_RATE,         /* -> 429 */
  LC_ERR_DB,           /* database error -> 500 */
  LC_ERR_IO,           /* I/O / network error -> 502 */
  LC_ERR_RETRY,        /* transient; caller should retry (serialization failure, deadlock) */
};

/* Writes a formatted message into err (may be NULL); always NUL-terminates.
 * Returns code so callers can write: return lc_err_set(err, LC_ERR_PARAM, "...");  */
int lc_err_set(char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The one mapping from status to HTTP status code. */
int lc_err_http_status(int code);

/* Short stable name, e.g. "not_found"; never NULL. */
const char *lc_err_name(int code);

#endif
