/* gw_keys.h - API-key verification at the gateway (contract B).
 *
 * A key ("sk_" + 8 lowercase letters/digits + "_" + 43 base64url chars) is
 * checked by auth-svc at POST /internal/api-keys/verify {key} (signed as
 * role "system", user "") -> 200 {key_id, owner_id, owner_role, scope,
 * prefix} or 401. Answers are cached in memory keyed by SHA-256(key) (the
 * key itself is never stored): a valid key for pos_ttl_ms, an unknown one
 * for neg_ttl_ms. auth.key.revoked {key_id} (and auth.user.revoked for the
 * owner) evicts at once; a verification that was in flight while an
 * eviction happened is not cached (epoch check), so a revoked key stops
 * working on this gateway as soon as the event arrives, and within
 * pos_ttl_ms even if the event is lost.
 *
 * The cache is bounded (max entries; a full cache evicts the entry that
 * expires first after dropping expired ones). Thread-safe (mutex). */
#ifndef GW_KEYS_H
#define GW_KEYS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

#define GW_KEY_LEN 55 /* "sk_" 8 "_" 43 */
#define GW_KEYS_RECENT 64

typedef struct {
  char key_id[37];
  char owner_id[37];
  char owner_role[16];
  char scope[16];
  char prefix[16];
} gw_key_info;

typedef struct gw_key_ent gw_key_ent;

/* Performs the verification call (the real one is gw_keys_verify_http);
 * returns LC_OK with *info, LC_ERR_UNAUTH for an unknown/revoked key, or
 * another code when auth-svc could not answer (not cached). */
typedef int (*gw_keys_fetch_fn)(void *ud, const char *key, gw_key_info *info,
                                char err[LC_ERR_LEN]);

typedef struct {
  pthread_mutex_t lock;
  gw_key_ent *ents; /* max entries, linear table (small) */
  size_t max;
  int64_t pos_ttl_ms;
  int64_t neg_ttl_ms;
  uint64_t epoch; /* bumped on every eviction */
  struct {
    char key_id[37];
    int64_t at_ms;
  } recent[GW_KEYS_RECENT]; /* key ids evicted recently (races with a verification) */
  size_t recent_next;
  gw_keys_fetch_fn fetch;
  void *fetch_ud;
} gw_keycache;

/* Upstream for gw_keys_verify_http (borrowed strings; must outlive use). */
typedef struct {
  const char *auth_url;
  struct gw_pool *auth_pool; /* auth-svc instances (gw_upstream.h); NULL = auth_url */
  const uint8_t *secret;
  size_t secret_len;
  long timeout_ms;
} gw_keys_upstream;

int gw_keys_init(gw_keycache *k, size_t max, int64_t pos_ttl_ms, int64_t neg_ttl_ms,
                 gw_keys_fetch_fn fetch, void *fetch_ud);
void gw_keys_free(gw_keycache *k); /* NULL-safe */

/* 1 when key has the contract's shape. */
int gw_keys_well_formed(const char *key);

/* Resolves key at monotonic time now_ms, from the cache or through fetch.
 * *cached (may be NULL) tells whether the answer came from the cache.
 * Returns LC_OK with *info, LC_ERR_UNAUTH (malformed, unknown, revoked),
 * or LC_ERR_UNAVAIL when auth-svc could not be asked. */
int gw_keys_resolve(gw_keycache *k, const char *key, int64_t now_ms, gw_key_info *info, int *cached,
                    char err[LC_ERR_LEN]);

/* Evicts every cached answer for key_id (auth.key.revoked) or for keys of
 * owner_id (auth.user.revoked); either may be NULL. Returns the count. */
size_t gw_keys_evict(gw_keycache *k, const char *key_id, const char *owner_id);

/* Applies one auth.events message: auth.key.revoked evicts by key_id (and
 * owner when given), auth.user.revoked by owner; others ignored (LC_OK). */
int gw_keys_apply_event(gw_keycache *k, const char *rk, const char *body, size_t len);

/* Number of cached entries (tests). */
size_t gw_keys_count(gw_keycache *k);

/* gw_keys_fetch_fn calling auth-svc (ud = gw_keys_upstream*). */
int gw_keys_verify_http(void *ud, const char *key, gw_key_info *info, char err[LC_ERR_LEN]);

#endif
