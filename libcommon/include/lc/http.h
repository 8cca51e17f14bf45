/* http.h - libcurl HTTP client.
 *
 * Each thread reuses its own CURL easy handle (thread-local, reset between
 * requests) so keep-alive connections are reused without sharing a handle
 * across threads. Response bodies are capped (max_resp) - exceeding the cap
 * is an error, never a silent truncation. */
#ifndef LC_HTTP_H
#define LC_HTTP_H

#include <stddef.h>
#include <curl/curl.h>
#include "lc/err.h"

typedef struct {
  const char *method;          /* "GET", "POST", "PUT", "DELETE", "HEAD" */
  const char *url;
  const char *const *headers;  /* NULL-terminated "Name: value" lines, may be NULL */
  const void *body;            /* may be NULL */
  size_t body_len;
  long timeout_ms;             /* total; 0 = 10000 */
  size_t max_resp;             /* response body cap; 0 = 16 MiB */
  const char *aws_sigv4;       /* e.g. "aws:amz:us-east-1:s3", NULL = none */
  const char *userpwd;         /* "access:secret" for SigV4/basic, NULL = none */
  int keep_headers;            /* 1 = collect response headers */
} lc_http_req;

typedef struct {
  long status;                 /* HTTP status, 0 when no response */
  char *body;                  /* new, NUL-terminated (len excludes NUL); may be NULL when empty */
  size_t len;
  struct curl_slist *headers;  /* "Name: value" lines when keep_headers, else NULL */
  int connect_failed;          /* 1 = no connection was made (refused, unresolvable, connect
                                * timeout): nothing of the request was sent */
} lc_http_resp;

/* Performs the request. Transport failure -> LC_ERR_IO (or LC_ERR_TIMEOUT);
 * body over cap -> LC_ERR_TOO_LARGE. Any HTTP status is LC_OK (check status). */
int lc_http_do(const lc_http_req *req, lc_http_resp *resp, char err[LC_ERR_LEN]);
void lc_http_resp_free(lc_http_resp *resp);

/* Value of the first response header named name (case-insensitive), copied
 * into out (trimmed); returns LC_ERR_NOTFOUND when absent, LC_ERR_TOO_LARGE
 * (out = "") when the value does not fit in outsz. */
int lc_http_resp_header(const lc_http_resp *resp, const char *name, char *out, size_t outsz);

/* Frees the calling thread's cached CURL handle now (it is otherwise freed
 * when the thread exits; call it at the end of main() for clean valgrind
 * runs). The next lc_http_do in this thread creates a new one. */
void lc_http_thread_cleanup(void);

#endif
