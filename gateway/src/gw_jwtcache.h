/* gw_jwtcache.h - bounded cache of verified access-token claims.
 *
 * Verifying an access JWT (Ed25519 signature + JSON claims) is the largest
 * CPU cost of a gateway request, and a client sends the same token on every
 * request for its lifetime (15 min). This cache remembers, per token, the
 * claims a successful lc_jwt_verify returned, so a repeated token costs one
 * keyed BLAKE2b hash and a compare instead of a signature check.
 *
 * What is cached and what is not:
 *   - key: BLAKE2b-256 (random per-process key) of the verification inputs
 *     (public key, issuer, audience) and the token bytes: a token verified
 *     under other settings never hits, and the token itself is not stored.
 *   - value: sub, role, jti, iat, exp of a token that passed lc_jwt_verify
 *     and the gateway's own claim checks. Failures are never cached.
 *   - time checks are NOT cached: a hit is re-checked against now and the
 *     leeway exactly as lc_jwt_verify checks them (iat <= now + leeway,
 *     now < exp + leeway); an expired entry is dropped and reported a miss.
 *   - revocation is NOT cached: the caller runs gw_revoke_check on every
 *     request, hit or miss, so gw_revoke decisions apply at once.
 *
 * Bounded: a fixed array of `slots` entries (a power of two), 2-way set
 * associative; a new token takes a free way of its set, else replaces the
 * way whose token expires first. Memory is
 * slots * sizeof(entry) (about 160 B), allocated once.
 * Thread-safe: one mutex per set stripe (GW_JWTC_STRIPES), held only for a
 * compare/copy; no global lock on the request path. */
#ifndef GW_JWTCACHE_H
#define GW_JWTCACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "lc/jwt.h"

#define GW_JWTC_STRIPES 64
#define GW_JWTC_HASH 32

typedef struct gw_jwtc_ent gw_jwtc_ent;

typedef struct {
  gw_jwtc_ent *ent; /* slots entries, sets of 2 */
  size_t nsets;     /* slots / 2, a power of two */
  uint8_t key[32];  /* BLAKE2b key (random) */
  pthread_mutex_t locks[GW_JWTC_STRIPES];
  _Atomic uint64_t hits, misses;
} gw_jwtcache;

/* slots: a power of two in [2, 1<<20]. Returns 0, or -1 on bad arguments. */
int gw_jwtcache_init(gw_jwtcache *c, size_t slots);
void gw_jwtcache_free(gw_jwtcache *c); /* NULL-safe; wipes the entries */

/* The cache key of token under (pk, iss, aud). */
void gw_jwtcache_key(const gw_jwtcache *c, const uint8_t pk[32], const char *iss,
                     const char *aud, const char *token, uint8_t out[GW_JWTC_HASH]);

/* 1 and *out filled (sub, role, jti, iat, exp; other fields zero) when h is
 * cached and still valid at now_s with leeway_s; else 0 (an expired entry is
 * dropped). */
int gw_jwtcache_get(gw_jwtcache *c, const uint8_t h[GW_JWTC_HASH], int64_t now_s,
                    int64_t leeway_s, lc_jwt_claims *out);

/* Remembers the claims of a token that has just been verified. */
void gw_jwtcache_put(gw_jwtcache *c, const uint8_t h[GW_JWTC_HASH], const lc_jwt_claims *cl);

void gw_jwtcache_stats(gw_jwtcache *c, uint64_t *hits, uint64_t *misses);

#endif
