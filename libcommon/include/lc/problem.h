/* problem.h - RFC 9457 application/problem+json responses and JSON helpers
 * for ulfius callbacks. */
#ifndef LC_PROBLEM_H
#define LC_PROBLEM_H

#include <jansson.h>
#include <ulfius.h>

/* Sets status and a problem body {type,title,status,detail} on resp.
 * type is "urn:problem:<slug>" where slug is derived from status unless
 * given (NULL = derive). title defaults from status. detail may be NULL.
 * Never put SQL text, stack traces or secrets into detail. Returns U_CALLBACK_COMPLETE. */
int lc_problem(struct _u_response *resp, int status, const char *slug, const char *detail);

/* Maps an lc_status code to its HTTP status and sends a problem. Returns U_CALLBACK_COMPLETE. */
int lc_problem_from_err(struct _u_response *resp, int code, const char *detail);

/* Sends JSON (object or array, borrowed: caller keeps its reference) with status
 * and Content-Type application/json. Returns U_CALLBACK_COMPLETE. */
int lc_json_send(struct _u_response *resp, int status, json_t *body);

/* Parses the request body as a JSON object. Requires Content-Type
 * application/json (else LC_ERR_MEDIA), a body of at most max_len bytes
 * (else LC_ERR_TOO_LARGE) and a top-level object (else LC_ERR_PARAM).
 * On success *out is new. */
int lc_json_body(const struct _u_request *req, size_t max_len, json_t **out, char err[256]);

/* Rejects unknown members: every key of obj must appear in the NULL-terminated
 * allowed list. Returns LC_OK or LC_ERR_PARAM naming the first unknown field. */
int lc_json_only_fields(const json_t *obj, const char *const *allowed, char err[256]);

#endif
