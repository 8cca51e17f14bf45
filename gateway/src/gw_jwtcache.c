/* gw_jwtcache.c - see gw_jwtcache.h. */
#include "gw_jwtcache.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "lc/util.h"

struct gw_jwtc_ent {
  uint8_t h[GW_JWTC_HASH];
  int used;
  char sub[37];
  char role[16];
  char jti[37];
  int64_t iat, exp;
};

int gw_jwtcache_init(gw_jwtcache *c, size_t slots) {
  memset(c, 0, sizeof(*c));
  if (slots < 2 || slots > ((size_t)1 << 20) || (slots & (slots - 1)) != 0)
    return -1;
  c->ent = lc_xcalloc(slots, sizeof(*c->ent));
  c->nsets = slots / 2;
  randombytes_buf(c->key, sizeof(c->key));
  for (int i = 0; i < GW_JWTC_STRIPES; i++)
    pthread_mutex_init(&c->locks[i], NULL);
  return 0;
}

void gw_jwtcache_free(gw_jwtcache *c) {
  if (c == NULL || c->ent == NULL)
    return;
  for (int i = 0; i < GW_JWTC_STRIPES; i++)
    pthread_mutex_destroy(&c->locks[i]);
  sodium_memzero(c->ent, c->nsets * 2 * sizeof(*c->ent));
  free(c->ent);
  sodium_memzero(c->key, sizeof(c->key));
  c->ent = NULL;
}

void gw_jwtcache_key(const gw_jwtcache *c, const uint8_t pk[32], const char *iss,
                     const char *aud, const char *token, uint8_t out[GW_JWTC_HASH]) {
  crypto_generichash_state st;
  static const uint8_t zero = 0;
  crypto_generichash_init(&st, c->key, sizeof(c->key), GW_JWTC_HASH);
  crypto_generichash_update(&st, pk, 32);
  crypto_generichash_update(&st, (const uint8_t *)iss, strlen(iss) + 1);
  crypto_generichash_update(&st, (const uint8_t *)aud, strlen(aud) + 1);
  crypto_generichash_update(&st, &zero, 1);
  crypto_generichash_update(&st, (const uint8_t *)token, strlen(token));
  crypto_generichash_final(&st, out, GW_JWTC_HASH);
}

static size_t set_of(const gw_jwtcache *c, const uint8_t h[GW_JWTC_HASH]) {
  uint64_t v;
  memcpy(&v, h, sizeof(v));
  return (size_t)(v & (c->nsets - 1));
}

int gw_jwtcache_get(gw_jwtcache *c, const uint8_t h[GW_JWTC_HASH], int64_t now_s,
                    int64_t leeway_s, lc_jwt_claims *out) {
  size_t set = set_of(c, h);
  pthread_mutex_t *mu = &c->locks[set % GW_JWTC_STRIPES];
  gw_jwtc_ent *w = &c->ent[set * 2];
  int found = 0;
  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(mu);
  for (int i = 0; i < 2; i++) {
    gw_jwtc_ent *e = &w[i];
    if (!e->used || sodium_memcmp(e->h, h, GW_JWTC_HASH) != 0)
      continue;
    /* the time checks of lc_jwt_verify, against this request's clock */
    if (now_s >= e->exp + leeway_s) {
      sodium_memzero(e, sizeof(*e));
      break;
    }
    if (e->iat > now_s + leeway_s)
      break;
    memcpy(out->sub, e->sub, sizeof(out->sub));
    memcpy(out->role, e->role, sizeof(out->role));
    memcpy(out->jti, e->jti, sizeof(out->jti));
    out->iat = e->iat;
    out->exp = e->exp;
    found = 1;
    break;
  }
  pthread_mutex_unlock(mu);
  if (found)
    atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
  else
    atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
  return found;
}

void gw_jwtcache_put(gw_jwtcache *c, const uint8_t h[GW_JWTC_HASH], const lc_jwt_claims *cl) {
  size_t set = set_of(c, h);
  pthread_mutex_t *mu = &c->locks[set % GW_JWTC_STRIPES];
  gw_jwtc_ent *w = &c->ent[set * 2];
  pthread_mutex_lock(mu);
  gw_jwtc_ent *e = NULL;
  for (int i = 0; i < 2 && e == NULL; i++)
    if (w[i].used && sodium_memcmp(w[i].h, h, GW_JWTC_HASH) == 0)
      e = &w[i];
  for (int i = 0; i < 2 && e == NULL; i++)
    if (!w[i].used)
      e = &w[i];
  if (e == NULL)
    e = w[0].exp <= w[1].exp ? &w[0] : &w[1];
  memcpy(e->h, h, GW_JWTC_HASH);
  lc_strlcpy(e->sub, cl->sub, sizeof(e->sub));
  lc_strlcpy(e->role, cl->role, sizeof(e->role));
  lc_strlcpy(e->jti, cl->jti, sizeof(e->jti));
  e->iat = cl->iat;
  e->exp = cl->exp;
  e->used = 1;
  pthread_mutex_unlock(mu);
}

void gw_jwtcache_stats(gw_jwtcache *c, uint64_t *hits, uint64_t *misses) {
  *hits = atomic_load(&c->hits);
  *misses = atomic_load(&c->misses);
}
