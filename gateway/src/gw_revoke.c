/* gw_revoke.c - see gw_revoke.h. */
#include "gw_revoke.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"

struct gw_rv_ent {
  char key[37];
  int64_t val;
  int64_t expires;
  gw_rv_ent *next;
};

static int tbl_init(gw_rv_table *t, size_t max) {
  size_t nb = 16;
  while (nb < max && nb < ((size_t)1 << 30))
    nb <<= 1;
  t->buckets = lc_xcalloc(nb, sizeof(gw_rv_ent *));
  t->nbuckets = nb;
  t->count = 0;
  t->max = max;
  return LC_OK;
}

static void tbl_free(gw_rv_table *t) {
  if (t->buckets == NULL)
    return;
  for (size_t i = 0; i < t->nbuckets; i++) {
    gw_rv_ent *e = t->buckets[i];
    while (e != NULL) {
      gw_rv_ent *n = e->next;
      free(e);
      e = n;
    }
  }
  free(t->buckets);
  t->buckets = NULL;
}

static size_t bucket_of(const gw_revoke *rv, const gw_rv_table *t, const char *key) {
  uint8_t h[crypto_shorthash_BYTES];
  uint64_t v;
  crypto_shorthash(h, (const uint8_t *)key, strlen(key), rv->hkey);
  memcpy(&v, h, sizeof(v));
  return (size_t)(v & (t->nbuckets - 1));
}

static gw_rv_ent *tbl_get(const gw_revoke *rv, const gw_rv_table *t, const char *key) {
  for (gw_rv_ent *e = t->buckets[bucket_of(rv, t, key)]; e != NULL; e = e->next)
    if (strcmp(e->key, key) == 0)
      return e;
  return NULL;
}

static size_t tbl_purge(gw_rv_table *t, int64_t now_s) {
  size_t n = 0;
  for (size_t i = 0; i < t->nbuckets; i++) {
    gw_rv_ent **pp = &t->buckets[i];
    while (*pp != NULL) {
      gw_rv_ent *e = *pp;
      if (e->expires <= now_s) {
        *pp = e->next;
        free(e);
        t->count--;
        n++;
      } else {
        pp = &e->next;
      }
    }
  }
  return n;
}

/* Removes the entry expiring first (table full of live entries). */
static void tbl_drop_first_expiring(gw_rv_table *t) {
  gw_rv_ent **best = NULL;
  for (size_t i = 0; i < t->nbuckets; i++)
    for (gw_rv_ent **pp = &t->buckets[i]; *pp != NULL; pp = &(*pp)->next)
      if (best == NULL || (*pp)->expires < (*best)->expires)
        best = pp;
  if (best != NULL) {
    gw_rv_ent *e = *best;
    *best = e->next;
    free(e);
    t->count--;
  }
}

/* Inserts or updates (keeping the larger val). Returns 1 when stored, 0 when
 * the table is full. Write lock held. */
static int tbl_put(gw_revoke *rv, gw_rv_table *t, const char *key, int64_t val, int64_t expires,
                   int64_t now_s) {
  gw_rv_ent *e = tbl_get(rv, t, key);
  if (e != NULL) {
    if (val > e->val)
      e->val = val;
    if (expires > e->expires)
      e->expires = expires;
    return 1;
  }
  if (t->count >= t->max)
    tbl_purge(t, now_s);
  if (t->count >= t->max)
    return 0;
  e = lc_xcalloc(1, sizeof(*e));
  lc_strlcpy(e->key, key, sizeof(e->key));
  e->val = val;
  e->expires = expires;
  size_t b = bucket_of(rv, t, key);
  e->next = t->buckets[b];
  t->buckets[b] = e;
  t->count++;
  return 1;
}

int gw_revoke_init(gw_revoke *rv, size_t max_entries, int64_t leeway_s, int64_t user_ttl_s) {
  if (rv == NULL || max_entries < 16 || leeway_s < 0 || user_ttl_s < 1)
    return LC_ERR_PARAM;
  memset(rv, 0, sizeof(*rv));
  if (pthread_rwlock_init(&rv->lock, NULL) != 0)
    return LC_ERR;
  tbl_init(&rv->jti, max_entries);
  tbl_init(&rv->users, max_entries);
  lc_random(rv->hkey, sizeof(rv->hkey));
  rv->leeway_s = leeway_s;
  rv->user_ttl_s = user_ttl_s;
  return LC_OK;
}

void gw_revoke_free(gw_revoke *rv) {
  if (rv == NULL || rv->jti.buckets == NULL)
    return;
  tbl_free(&rv->jti);
  tbl_free(&rv->users);
  pthread_rwlock_destroy(&rv->lock);
}

static int user_put_locked(gw_revoke *rv, const char *user_id, int64_t nb, int64_t now_s) {
  int64_t expires = nb + rv->user_ttl_s;
  if (tbl_put(rv, &rv->users, user_id, nb, expires, now_s))
    return LC_OK;
  /* full of live entries: make room (bounded memory wins; counted and logged) */
  tbl_drop_first_expiring(&rv->users);
  rv->overflows++;
  lc_metric_add("gateway_revocation_overflow_total", 1);
  lc_log_error("gw_revoke - user revocation table full (%zu), dropped the oldest entry",
               rv->users.max);
  tbl_put(rv, &rv->users, user_id, nb, expires, now_s);
  return LC_OK;
}

int gw_revoke_add_jti(gw_revoke *rv, const char *jti, const char *user_id, int64_t exp,
                      int64_t now_s) {
  if (rv == NULL || jti == NULL || !lc_uuid_valid(jti))
    return LC_ERR_PARAM;
  if (exp + rv->leeway_s <= now_s)
    return LC_OK; /* already expired: nothing to remember */
  int rc = LC_OK;
  pthread_rwlock_wrlock(&rv->lock);
  if (!tbl_put(rv, &rv->jti, jti, exp, exp + rv->leeway_s, now_s)) {
    rv->overflows++;
    lc_metric_add("gateway_revocation_overflow_total", 1);
    if (user_id != NULL && lc_uuid_valid(user_id)) {
      /* fail closed: every current token of that user ends */
      lc_log_warn("gw_revoke - jti table full (%zu): revoking all sessions of the user",
                  rv->jti.max);
      rc = user_put_locked(rv, user_id, now_s + 1, now_s);
    } else {
      tbl_drop_first_expiring(&rv->jti);
      tbl_put(rv, &rv->jti, jti, exp, exp + rv->leeway_s, now_s);
      lc_log_error("gw_revoke - jti table full (%zu), dropped the oldest entry", rv->jti.max);
    }
  }
  pthread_rwlock_unlock(&rv->lock);
  return rc;
}

int gw_revoke_add_user(gw_revoke *rv, const char *user_id, int64_t not_before, int64_t now_s) {
  if (rv == NULL || user_id == NULL || !lc_uuid_valid(user_id) || not_before <= 0)
    return LC_ERR_PARAM;
  if (not_before + rv->user_ttl_s <= now_s)
    return LC_OK;
  pthread_rwlock_wrlock(&rv->lock);
  int rc = user_put_locked(rv, user_id, not_before, now_s);
  pthread_rwlock_unlock(&rv->lock);
  return rc;
}

int gw_revoke_check(gw_revoke *rv, const char *jti, const char *user_id, int64_t iat,
                    int64_t now_s) {
  int revoked = 0;
  pthread_rwlock_rdlock(&rv->lock);
  if (jti != NULL && jti[0] != '\0') {
    const gw_rv_ent *e = tbl_get(rv, &rv->jti, jti);
    if (e != NULL && e->expires > now_s)
      revoked = 1;
  }
  if (!revoked && user_id != NULL && user_id[0] != '\0') {
    const gw_rv_ent *e = tbl_get(rv, &rv->users, user_id);
    if (e != NULL && e->expires > now_s && iat < e->val)
      revoked = 1;
  }
  pthread_rwlock_unlock(&rv->lock);
  return revoked;
}

size_t gw_revoke_purge(gw_revoke *rv, int64_t now_s) {
  pthread_rwlock_wrlock(&rv->lock);
  size_t n = tbl_purge(&rv->jti, now_s) + tbl_purge(&rv->users, now_s);
  pthread_rwlock_unlock(&rv->lock);
  return n;
}

void gw_revoke_counts(gw_revoke *rv, size_t *njti, size_t *nusers) {
  pthread_rwlock_rdlock(&rv->lock);
  if (njti != NULL)
    *njti = rv->jti.count;
  if (nusers != NULL)
    *nusers = rv->users.count;
  pthread_rwlock_unlock(&rv->lock);
}

/* ------------------------------------------------------------- parsing -- */

static int parse_rfc3339(const char *s, int64_t *out) {
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (p == NULL)
    return LC_ERR_PARAM;
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9')
      return LC_ERR_PARAM;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0 && strcmp(p, "+00") != 0)
    return LC_ERR_PARAM;
  time_t t = timegm(&tm);
  if (t == (time_t)-1)
    return LC_ERR_PARAM;
  *out = (int64_t)t;
  return LC_OK;
}

int gw_revoke_parse_time(const json_t *v, int64_t *out) {
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    if (i <= 0)
      return LC_ERR_PARAM;
    *out = (int64_t)i;
    return LC_OK;
  }
  if (json_is_string(v))
    return parse_rfc3339(json_string_value(v), out);
  return LC_ERR_PARAM;
}

static const char *str_member(const json_t *o, const char *name) {
  const json_t *v = json_object_get(o, name);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

int gw_revoke_apply_event(gw_revoke *rv, const char *rk, const char *body, size_t len,
                          int64_t now_s) {
  if (rk == NULL || body == NULL)
    return LC_ERR_PARAM;
  int is_token = strcmp(rk, "auth.token.revoked") == 0;
  int is_user = strcmp(rk, "auth.user.revoked") == 0;
  if (!is_token && !is_user)
    return LC_OK;
  json_error_t jerr;
  json_t *env = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  int rc = LC_ERR_PARAM;
  if (!json_is_object(env))
    goto out;
  const json_t *b = json_object_get(env, "body");
  if (!json_is_object(b))
    goto out;
  if (is_token) {
    const char *jti = str_member(b, "jti");
    const char *uid = str_member(b, "user_id");
    int64_t exp;
    if (jti == NULL || gw_revoke_parse_time(json_object_get(b, "exp"), &exp) != LC_OK)
      goto out;
    rc = gw_revoke_add_jti(rv, jti, uid, exp, now_s);
  } else {
    const char *uid = str_member(b, "user_id");
    int64_t nb;
    if (uid == NULL || gw_revoke_parse_time(json_object_get(b, "not_before"), &nb) != LC_OK)
      goto out;
    rc = gw_revoke_add_user(rv, uid, nb, now_s);
  }
out:
  json_decref(env);
  return rc;
}

int gw_revoke_apply_list(gw_revoke *rv, const char *body, size_t len, int64_t now_s) {
  json_error_t jerr;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  int rc = LC_ERR_PARAM;
  if (!json_is_object(root))
    goto out;
  const json_t *toks = json_object_get(root, "tokens");
  const json_t *users = json_object_get(root, "users");
  if (!json_is_array(toks) || !json_is_array(users))
    goto out;
  /* validate everything first: all or nothing */
  size_t i;
  const json_t *it;
  json_array_foreach(toks, i, it) {
    int64_t t;
    const char *jti = str_member(it, "jti");
    if (!json_is_object(it) || jti == NULL || !lc_uuid_valid(jti) ||
        gw_revoke_parse_time(json_object_get(it, "exp"), &t) != LC_OK)
      goto out;
  }
  json_array_foreach(users, i, it) {
    int64_t t;
    const char *uid = str_member(it, "user_id");
    if (!json_is_object(it) || uid == NULL || !lc_uuid_valid(uid) ||
        gw_revoke_parse_time(json_object_get(it, "not_before"), &t) != LC_OK)
      goto out;
  }
  json_array_foreach(toks, i, it) {
    int64_t t = 0;
    gw_revoke_parse_time(json_object_get(it, "exp"), &t);
    gw_revoke_add_jti(rv, str_member(it, "jti"), str_member(it, "user_id"), t, now_s);
  }
  json_array_foreach(users, i, it) {
    int64_t t = 0;
    gw_revoke_parse_time(json_object_get(it, "not_before"), &t);
    gw_revoke_add_user(rv, str_member(it, "user_id"), t, now_s);
  }
  rc = LC_OK;
out:
  json_decref(root);
  return rc;
}
