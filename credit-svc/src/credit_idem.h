/* credit_idem.h - Idempotency-Key handling with Stripe's semantics for
 * credit-svc's own POSTs (admin credit adjustments):
 *   same key + same request (SHA-256 of method, path and body) -> the first
 *   response is replayed (status + body, "Idempotent-Replayed: true") and
 *   nothing is written again;
 *   same key + different request -> 422;
 *   same key while the first request still runs -> 409;
 *   keys are kept CREDIT_IDEM_TTL_S (24 h) and then swept.
 * Keys are scoped per caller (owner = the caller's user id). Requests that
 * fail validation never claim a key (as Stripe: a 400 is not saved); a
 * request that fails with a server error gives its key back so a retry can
 * run. The stored response is written in the same database transaction as
 * the effect (credit_idem_finish takes the caller's connection), so "effect
 * written" and "response stored" can never disagree. An in-flight claim
 * older than CREDIT_IDEM_STALE_S (crashed worker) may be taken over.
 *
 * Thread-safety: every function uses only its own connection/arguments. */
#ifndef CREDIT_IDEM_H
#define CREDIT_IDEM_H

#include <libpq-fe.h>
#include <stddef.h>

#include "lc/db.h"
#include "lc/err.h"

#define CREDIT_IDEM_TTL_S 86400
#define CREDIT_IDEM_STALE_S 60
#define CREDIT_IDEM_KEY_LEN_MAX 255
#define CREDIT_IDEM_BODY_MAX 8192

/* 1 when key is 1..255 printable ASCII characters (0x21..0x7e). */
int credit_idem_key_valid(const char *key);

/* hex(SHA-256(method "\n" path "\n" body)) into out (65 bytes). Pure. */
void credit_idem_hash(const char *method, const char *path, const void *body, size_t len,
                      char out[65]);

typedef enum {
  CREDIT_IDEM_NEW = 0,  /* no usable record: claim it and run the request */
  CREDIT_IDEM_REPLAY,   /* finished with the same request: replay the response */
  CREDIT_IDEM_MISMATCH, /* the key was used for a different request: 422 */
  CREDIT_IDEM_IN_FLIGHT /* the first request still runs: 409 */
} credit_idem_decision;

/* Pure decision for an existing record (exists = 0: none). state is
 * "in_flight" | "done"; stored_hash/req_hash are 64-hex; expired/stale say
 * whether the record outlived its TTL / its in-flight claim. */
credit_idem_decision credit_idem_decide(int exists, const char *state, const char *stored_hash,
                                        const char *req_hash, int expired, int stale);

typedef struct {
  credit_idem_decision decision;
  int status;   /* REPLAY: stored HTTP status */
  char *body;   /* REPLAY: stored body (new, free()) */
} credit_idem_result;

/* Claims (owner, key) for req_hash, atomically (INSERT ... ON CONFLICT, the
 * decision taken on the locked row). decision NEW means this caller now holds
 * the in-flight claim and must call credit_idem_finish (in its effect's
 * transaction) or credit_idem_abandon. */
int credit_idem_claim(lc_db_pool *pool, const char *owner, const char *key, const char *req_hash,
                      credit_idem_result *out, char err[LC_ERR_LEN]);

/* Stores the response on conn inside the caller's open transaction and marks
 * the key done. LC_ERR_CONFLICT when the claim is no longer ours (taken over
 * after going stale): the caller must roll back. */
int credit_idem_finish(PGconn *conn, const char *owner, const char *key, const char *req_hash,
                       int status, const char *body, char err[LC_ERR_LEN]);

/* Gives an in-flight claim back (server error: the retry may run). */
int credit_idem_abandon(lc_db_pool *pool, const char *owner, const char *key,
                        const char *req_hash, char err[LC_ERR_LEN]);

/* Deletes expired keys (at most 1000 per call); *n = count. */
int credit_idem_sweep(lc_db_pool *pool, int *n, char err[LC_ERR_LEN]);

void credit_idem_result_free(credit_idem_result *r);

#endif
