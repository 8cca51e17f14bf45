/* gw_revoke.h - the gateway's in-memory revocation state (contract A/B of
 * the identity work): revoked access-token ids (jti -> exp) and per-user
 * not-before times (every token of that user with iat < not_before is dead).
 *
 * Fed by the auth.events consumer (auth.token.revoked, auth.user.revoked)
 * and by the list auth-svc serves at GET /internal/revocations, which the
 * gateway loads after subscribing (both are unions: applying an event twice,
 * or an event and the list in any order, gives the same state).
 *
 * Entries expire on their own: a jti at its exp (+ leeway), a user's
 * not-before after user_ttl_s (>= the longest access-token lifetime +
 * leeway, so no token it kills can still be valid). Both tables are bounded
 * (max entries each). Overflow fails closed: when the jti table is full even
 * after purging expired entries, the token's user gets a not-before of
 * "now" instead (ends all of that user's current sessions - more than asked,
 * never less); when the user table is full, the entry expiring first is
 * dropped and counted (gateway_revocation_overflow_total).
 *
 * Thread-safe: a rwlock; readers (every authenticated request) share it. */
#ifndef GW_REVOKE_H
#define GW_REVOKE_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

typedef struct gw_rv_ent gw_rv_ent;

typedef struct {
  gw_rv_ent **buckets;
  size_t nbuckets;
  size_t count;
  size_t max;
} gw_rv_table;

typedef struct {
  pthread_rwlock_t lock;
  gw_rv_table jti;   /* key jti, val exp, expires exp + leeway */
  gw_rv_table users; /* key user id, val not_before, expires not_before + user_ttl */
  uint8_t hkey[16];  /* SipHash key (random) */
  int64_t leeway_s;
  int64_t user_ttl_s;
  uint64_t overflows;
} gw_revoke;

/* max_entries bounds each table (>= 16). Returns LC_OK / LC_ERR_PARAM. */
int gw_revoke_init(gw_revoke *rv, size_t max_entries, int64_t leeway_s, int64_t user_ttl_s);
void gw_revoke_free(gw_revoke *rv); /* NULL-safe */

/* Records a revoked jti (UUID text) of user_id (UUID, may be "" / NULL) valid
 * until exp (unix s). now_s is used for purging. LC_ERR_PARAM on bad input. */
int gw_revoke_add_jti(gw_revoke *rv, const char *jti, const char *user_id, int64_t exp,
                      int64_t now_s);
/* Records not_before for user_id (keeps the later of old and new). */
int gw_revoke_add_user(gw_revoke *rv, const char *user_id, int64_t not_before, int64_t now_s);

/* 1 when a token (jti, user, iat) is revoked at now_s, else 0. */
int gw_revoke_check(gw_revoke *rv, const char *jti, const char *user_id, int64_t iat,
                    int64_t now_s);

/* Drops every expired entry; returns how many were dropped. */
size_t gw_revoke_purge(gw_revoke *rv, int64_t now_s);

/* Entry counts (tests, metrics). */
void gw_revoke_counts(gw_revoke *rv, size_t *njti, size_t *nusers);

/* Applies one auth.events message (the JSON envelope {v,type,id,ts,
 * request_id,body}; routing key rk). auth.token.revoked / auth.user.revoked
 * update the state; other types (auth.key.revoked, auth.audit, ...) are
 * LC_OK and ignored here. Malformed -> LC_ERR_PARAM. */
int gw_revoke_apply_event(gw_revoke *rv, const char *rk, const char *body, size_t len,
                          int64_t now_s);

/* Applies the body of GET /internal/revocations
 * {tokens:[{jti,exp}], users:[{user_id,not_before}]}. LC_ERR_PARAM when it is
 * not that shape (nothing applied then). */
int gw_revoke_apply_list(gw_revoke *rv, const char *body, size_t len, int64_t now_s);

/* Parses a time value: a JSON integer (unix seconds) or an RFC 3339 UTC text
 * ("2026-11-28T12:00:00Z", optional fraction, "Z" or "+00:00"). */
int gw_revoke_parse_time(const json_t *v, int64_t *out);

#endif
