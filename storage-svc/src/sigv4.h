/* sigv4.h - AWS Signature Version 4 (header-based, AWS4-HMAC-SHA256) for S3.
 *
 * Written here (not libcurl's CURLOPT_AWS_SIGV4) so that the path encoding,
 * query sorting and x-amz-content-sha256 handling are ours and testable
 * against AWS's published examples. Pure functions: no I/O, no clock (the
 * caller passes the time), thread-safe. */
#ifndef STORAGE_SIGV4_H
#define STORAGE_SIGV4_H

#include <stddef.h>
#include <time.h>
#include "lc/err.h"

#define STORAGE_SIGV4_MAX_HDRS 16
#define STORAGE_SIGV4_MAX_QUERY 16
#define STORAGE_SIGV4_AUTH_LEN 512
#define STORAGE_SIGV4_EMPTY_SHA256 \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct {
  const char *name;  /* header name, any case (lowercased when signed) */
  const char *value; /* raw value (trimmed, inner runs of spaces collapsed) */
} storage_sigv4_kv;

typedef struct {
  const char *method;      /* "GET", "PUT", ... */
  const char *path;        /* raw absolute path, e.g. "/bucket/reports/u/id.json";
                              each segment is URI-encoded here ('/' kept) */
  const storage_sigv4_kv *query; /* raw (unencoded) name/value pairs, any order; may be NULL */
  size_t nquery;
  const char *host;        /* Host header value exactly as sent (with :port if non-default) */
  const storage_sigv4_kv *headers; /* extra headers to sign (e.g. range, content-type); may be NULL.
                              host, x-amz-date, x-amz-content-sha256 are added here */
  size_t nheaders;
  const char *payload_sha256; /* lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
  const char *access_key;
  const char *secret_key;
  const char *region;      /* e.g. "us-east-1" */
  const char *service;     /* "s3" */
  time_t now;              /* request time (UTC seconds) */
} storage_sigv4_req;

typedef struct {
  char amz_date[17];        /* "20130524T000000Z" - send as x-amz-date */
  char signed_headers[256]; /* "host;range;x-amz-content-sha256;x-amz-date" */
  char creq_sha256[65];     /* hex SHA-256 of the canonical request (for tests/debug) */
  char signature[65];       /* hex signature */
  char authorization[STORAGE_SIGV4_AUTH_LEN]; /* full Authorization header value */
} storage_sigv4_out;

/* URI-encodes in per AWS rules: unreserved A-Z a-z 0-9 - . _ ~ are kept,
 * every other byte becomes %XX (uppercase hex); '/' is kept unless
 * encode_slash. Writes a NUL-terminated string into out.
 * Returns LC_OK or LC_ERR_TOO_LARGE when out is too small. */
int storage_sigv4_uri_encode(const char *in, int encode_slash, char *out, size_t outsz);

/* Builds the canonical request, string to sign, signing key and
 * Authorization header for req. If creq/creqsz are non-NULL/non-zero the
 * canonical request text is also copied there (tests). Secrets are never
 * written to err. Returns LC_OK, LC_ERR_PARAM (missing field, too many
 * headers, bad time) or LC_ERR_TOO_LARGE (a field exceeds internal bounds). */
int storage_sigv4_sign(const storage_sigv4_req *req, storage_sigv4_out *out, char *creq,
                       size_t creqsz, char err[LC_ERR_LEN]);

#endif
