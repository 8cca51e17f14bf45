/* gw_ratelimit.h - in-memory token-bucket rate limits of one gateway instance,
 * and the client address used to key them.
 *
 * A limit is "n requests per window": a bucket holds at most n tokens, each
 * request takes one, tokens come back continuously at n per window. Buckets
 * live in a bounded set-associative table (keyed by a keyed BLAKE2b hash of
 * the caller's key text, so keys of any length cost 16 bytes and an attacker
 * cannot aim at one set); a new key evicts, in its set, first a bucket that
 * has refilled completely (no information lost), else the least recently
 * used one. Integer arithmetic only: one token = window_ms units, refill =
 * n units per ms. Thread-safe (a mutex per stripe of sets). */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

#define GW_RL_WAYS 8
#define GW_RL_STRIPES 64

typedef struct {
  uint8_t key[16];
  int64_t units;   /* current level in units (token = window_ms units) */
  int64_t last_ms; /* monotonic time of the last refill */
  int64_t cap;     /* capacity in units (n * window_ms) of the limit last used */
  uint64_t seen;   /* access tick (LRU) */
  int used;
} gw_rl_slot;

typedef struct {
  gw_rl_slot *slots; /* nsets * GW_RL_WAYS */
  size_t nsets;      /* power of two */
  uint8_t hkey[32];  /* random key of the bucket hash */
  _Atomic uint64_t tick; /* access counter for LRU */
  pthread_mutex_t locks[GW_RL_STRIPES];
} gw_rl;

/* One limit: n requests per window_ms (n >= 1, window_ms >= 1). */
typedef struct {
  int64_t n;
  int64_t window_ms;
} gw_rl_limit;

/* Creates a table of about capacity buckets (rounded up to a power of two
 * times GW_RL_WAYS; at least 64). Returns LC_OK or LC_ERR_PARAM. Free with
 * gw_rl_free (NULL-safe, not thread-safe). */
int gw_rl_init(gw_rl *rl, size_t capacity);
void gw_rl_free(gw_rl *rl);

/* Takes one token from the bucket of (scope, key) under limit lim at
 * monotonic time now_ms. Returns LC_OK, or LC_ERR_RATE with *retry_after_s
 * (>= 1) = seconds until a token is back. scope/key are any text (key may
 * be NULL = ""). Thread-safe. */
int gw_rl_take(gw_rl *rl, const char *scope, const char *key, const gw_rl_limit *lim,
               int64_t now_ms, int64_t *retry_after_s);

/* Like gw_rl_take but only tells whether a token is available (consumes
 * nothing): LC_OK or LC_ERR_RATE with *retry_after_s. */
int gw_rl_peek(gw_rl *rl, const char *scope, const char *key, const gw_rl_limit *lim,
               int64_t now_ms, int64_t *retry_after_s);

/* Number of buckets in use (for tests and metrics). Thread-safe. */
size_t gw_rl_count(gw_rl *rl);

/* The client address a limit is keyed on. peer: the socket's peer address
 * as text. trusted_proxy: NULL/"" = none; when peer equals it, the last hop
 * of xff (the X-Forwarded-For value, NULL when absent; the address that
 * connected to the proxy) is used if it is a valid IPv4/IPv6 address.
 * Otherwise (and always without a trusted proxy) the peer. The result is a
 * normalised address text in out (outsz >= 64). */
void gw_rl_client_ip(const char *peer, const char *xff, const char *trusted_proxy, char *out,
                     size_t outsz);

#endif
