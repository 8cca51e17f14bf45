/* rpc.h - minimal Ethereum JSON-RPC 2.0 client over lc_http_do.
 *
 * One rpc_client per process is enough: calls are thread-safe (lc_http keeps
 * one CURL handle per thread; the request id is an atomic counter). Responses
 * are capped at RPC_MAX_RESP bytes. Nothing secret ever goes through here
 * except signed raw transactions, which are public by nature. */
#ifndef CHAIN_RPC_H
#define CHAIN_RPC_H

#include <stdatomic.h>
#include <stdint.h>
#include <jansson.h>
#include "lc/err.h"

#define RPC_MAX_RESP (4u * 1024u * 1024u)
#define RPC_URL_MAX 512

typedef struct {
  char url[RPC_URL_MAX];
  long timeout_ms;
  atomic_llong next_id;
} rpc_client;

/* Initialises c for url (copied). timeout_ms <= 0 means 5000.
 * LC_ERR_PARAM when the url is empty or too long. */
int rpc_init(rpc_client *c, const char *url, long timeout_ms, char err[LC_ERR_LEN]);

/* Calls method with params (a JSON array; STOLEN: the reference is always
 * consumed, also on error; NULL means []). On LC_OK *result is new (may be a
 * JSON null: the caller checks). Errors:
 *   LC_ERR_UNAVAIL / LC_ERR_TIMEOUT - node unreachable (transport failure),
 *   LC_ERR_IO      - HTTP status other than 200 or a malformed response,
 *   LC_ERR_TOO_LARGE - response over RPC_MAX_RESP,
 *   LC_ERR_UNPROCESSABLE - the node answered with a JSON-RPC error object;
 *                    *rpc_code (may be NULL) gets its code, err its message.
 * Thread-safe. */
int rpc_call(rpc_client *c, const char *method, json_t *params, json_t **result,
             long *rpc_code, char err[LC_ERR_LEN]);

/* One call of a JSON-RPC batch. Set method and params (a JSON array, STOLEN
 * by rpc_batch; NULL means []). rpc_batch sets result (new, may be JSON
 * null) when rc == LC_OK; rc LC_ERR_UNPROCESSABLE = the node answered this
 * call with an error object (code, err); LC_ERR_IO = no usable answer for it. */
typedef struct {
  const char *method;
  json_t *params;
  json_t *result;
  int rc;
  long code;
  char err[LC_ERR_LEN];
} rpc_batch_item;

/* Sends items[0..n) as one JSON-RPC batch (one HTTP request) and matches the
 * answers by id. Returns LC_OK when the node answered the batch (check each
 * item's rc), LC_ERR_UNAVAIL / LC_ERR_TIMEOUT when it could not be reached,
 * LC_ERR_IO for a non-200 or non-array answer (then every item has rc
 * LC_ERR_IO). Free the results with rpc_batch_free. Thread-safe. */
int rpc_batch(rpc_client *c, rpc_batch_item *items, size_t n, char err[LC_ERR_LEN]);

/* Releases params and results of items[0..n). */
void rpc_batch_free(rpc_batch_item *items, size_t n);

/* Parses one JSON-RPC response text (exposed for tests). expect_id is the id
 * sent. Same result/error contract as rpc_call. */
int rpc_parse_response(const char *text, size_t len, long long expect_id, json_t **result,
                       long *rpc_code, char err[LC_ERR_LEN]);

/* Parses a JSON-RPC quantity ("0x..." hex, no leading zeros required) that
 * fits in 64 bits. LC_ERR_PARAM otherwise. v is borrowed. */
int rpc_quantity_u64(const json_t *v, uint64_t *out);

/* Same for a 256-bit quantity (big-endian 32 bytes). */
int rpc_quantity_u256(const json_t *v, uint8_t out[32]);

#endif
