/* gw_ratelimit.c - see gw_ratelimit.h. */
#include "gw_ratelimit.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

#include "lc/util.h"

static size_t pow2_at_least(size_t n) {
  size_t p = 1;
  while (p < n && p < ((size_t)1 << 40))
    p <<= 1;
  return p;
}

int gw_rl_init(gw_rl *rl, size_t capacity) {
  if (rl == NULL)
    return LC_ERR_PARAM;
  memset(rl, 0, sizeof(*rl));
  size_t sets = pow2_at_least((capacity + GW_RL_WAYS - 1) / GW_RL_WAYS);
  if (sets < 8)
    sets = 8;
  rl->nsets = sets;
  rl->slots = lc_xcalloc(sets * GW_RL_WAYS, sizeof(gw_rl_slot));
  lc_random(rl->hkey, sizeof(rl->hkey));
  for (int i = 0; i < GW_RL_STRIPES; i++)
    pthread_mutex_init(&rl->locks[i], NULL);
  return LC_OK;
}

void gw_rl_free(gw_rl *rl) {
  if (rl == NULL || rl->slots == NULL)
    return;
  for (int i = 0; i < GW_RL_STRIPES; i++)
    pthread_mutex_destroy(&rl->locks[i]);
  free(rl->slots);
  rl->slots = NULL;
}

/* 16-byte keyed hash of scope "\0" key. */
static void rl_hash(const gw_rl *rl, const char *scope, const char *key, uint8_t out[16]) {
  crypto_generichash_state st;
  static const uint8_t zero = 0;
  crypto_generichash_init(&st, rl->hkey, sizeof(rl->hkey), 16);
  crypto_generichash_update(&st, (const uint8_t *)scope, strlen(scope));
  crypto_generichash_update(&st, &zero, 1);
  if (key != NULL)
    crypto_generichash_update(&st, (const uint8_t *)key, strlen(key));
  crypto_generichash_final(&st, out, 16);
}

/* Refills s to now under limit lim. */
static void refill(gw_rl_slot *s, const gw_rl_limit *lim, int64_t now_ms) {
  int64_t cap = lim->n * lim->window_ms;
  if (s->cap != cap) { /* limit changed (reconfigured): clamp to the new capacity */
    s->cap = cap;
    if (s->units > cap)
      s->units = cap;
  }
  int64_t dt = now_ms - s->last_ms;
  if (dt > 0) {
    /* dt * n may overflow only after ~centuries of idleness; clamp first. */
    if (dt > lim->window_ms)
      dt = lim->window_ms;
    s->units += dt * lim->n;
    if (s->units > cap)
      s->units = cap;
    s->last_ms = now_ms;
  }
}

/* Finds or creates the slot of h in its set (lock held). */
static gw_rl_slot *find_slot(gw_rl *rl, const uint8_t h[16], const gw_rl_limit *lim,
                             int64_t now_ms) {
  uint64_t idx;
  memcpy(&idx, h, sizeof(idx));
  gw_rl_slot *set = &rl->slots[(idx & (rl->nsets - 1)) * GW_RL_WAYS];
  gw_rl_slot *victim = NULL, *lru = NULL;
  for (int w = 0; w < GW_RL_WAYS; w++) {
    gw_rl_slot *s = &set[w];
    if (s->used && memcmp(s->key, h, 16) == 0) {
      s->seen = atomic_fetch_add(&rl->tick, 1);
      return s;
    }
  }
  for (int w = 0; w < GW_RL_WAYS && victim == NULL; w++) {
    gw_rl_slot *s = &set[w];
    if (!s->used) {
      victim = s;
      break;
    }
    /* a bucket that is full again is the same as no bucket */
    int64_t dt = now_ms - s->last_ms;
    if (dt >= lim->window_ms || s->units + dt * lim->n >= s->cap)
      victim = s;
    else if (lru == NULL || s->seen < lru->seen)
      lru = s;
  }
  if (victim == NULL)
    victim = lru;
  memset(victim, 0, sizeof(*victim));
  memcpy(victim->key, h, 16);
  victim->used = 1;
  victim->cap = lim->n * lim->window_ms;
  victim->units = victim->cap;
  victim->last_ms = now_ms;
  victim->seen = atomic_fetch_add(&rl->tick, 1);
  return victim;
}

static int rl_do(gw_rl *rl, const char *scope, const char *key, const gw_rl_limit *lim,
                 int64_t now_ms, int consume, int64_t *retry_after_s) {
  if (retry_after_s != NULL)
    *retry_after_s = 0;
  if (rl == NULL || rl->slots == NULL || scope == NULL || lim == NULL || lim->n < 1 ||
      lim->window_ms < 1)
    return LC_ERR_PARAM;
  uint8_t h[16];
  rl_hash(rl, scope, key, h);
  uint64_t idx;
  memcpy(&idx, h, sizeof(idx));
  pthread_mutex_t *mx = &rl->locks[(idx & (rl->nsets - 1)) % GW_RL_STRIPES];
  int rc = LC_OK;

  pthread_mutex_lock(mx);
  gw_rl_slot *s = find_slot(rl, h, lim, now_ms);
  refill(s, lim, now_ms);
  if (s->units >= lim->window_ms) {
    if (consume)
      s->units -= lim->window_ms;
  } else {
    int64_t missing = lim->window_ms - s->units;
    int64_t ms = (missing + lim->n - 1) / lim->n;
    if (retry_after_s != NULL)
      *retry_after_s = (ms + 999) / 1000 < 1 ? 1 : (ms + 999) / 1000;
    rc = LC_ERR_RATE;
  }
  pthread_mutex_unlock(mx);
  return rc;
}

int gw_rl_take(gw_rl *rl, const char *scope, const char *key, const gw_rl_limit *lim,
               int64_t now_ms, int64_t *retry_after_s) {
  return rl_do(rl, scope, key, lim, now_ms, 1, retry_after_s);
}

int gw_rl_peek(gw_rl *rl, const char *scope, const char *key, const gw_rl_limit *lim,
               int64_t now_ms, int64_t *retry_after_s) {
  return rl_do(rl, scope, key, lim, now_ms, 0, retry_after_s);
}

size_t gw_rl_count(gw_rl *rl) {
  size_t n = 0;
  if (rl == NULL || rl->slots == NULL)
    return 0;
  for (int i = 0; i < GW_RL_STRIPES; i++)
    pthread_mutex_lock(&rl->locks[i]);
  for (size_t i = 0; i < rl->nsets * GW_RL_WAYS; i++)
    n += rl->slots[i].used ? 1 : 0;
  for (int i = GW_RL_STRIPES - 1; i >= 0; i--)
    pthread_mutex_unlock(&rl->locks[i]);
  return n;
}

/* Normalises an address text; 1 when it is a valid IPv4/IPv6 address. */
static int norm_ip(const char *in, size_t len, char *out, size_t outsz) {
  char buf[64];
  unsigned char bin[16];
  if (len == 0 || len >= sizeof(buf))
    return 0;
  memcpy(buf, in, len);
  buf[len] = '\0';
  if (inet_pton(AF_INET, buf, bin) == 1)
    return inet_ntop(AF_INET, bin, out, (socklen_t)outsz) != NULL;
  if (inet_pton(AF_INET6, buf, bin) == 1)
    return inet_ntop(AF_INET6, bin, out, (socklen_t)outsz) != NULL;
  return 0;
}

void gw_rl_client_ip(const char *peer, const char *xff, const char *trusted_proxy, char *out,
                     size_t outsz) {
  char p[64] = "";
  if (peer == NULL || !norm_ip(peer, strlen(peer), p, sizeof(p)))
    lc_strlcpy(p, peer != NULL ? peer : "unknown", sizeof(p));
  lc_strlcpy(out, p, outsz);
  if (trusted_proxy == NULL || trusted_proxy[0] == '\0' || xff == NULL)
    return;
  char t[64];
  if (!norm_ip(trusted_proxy, strlen(trusted_proxy), t, sizeof(t)) || strcmp(t, p) != 0)
    return;
  /* last hop: text after the last comma, trimmed */
  const char *last = strrchr(xff, ',');
  last = last != NULL ? last + 1 : xff;
  while (*last == ' ' || *last == '\t')
    last++;
  size_t len = strlen(last);
  while (len > 0 && (last[len - 1] == ' ' || last[len - 1] == '\t'))
    len--;
  char hop[64];
  if (norm_ip(last, len, hop, sizeof(hop)))
    lc_strlcpy(out, hop, outsz);
}
