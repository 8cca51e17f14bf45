/* gw_keys.c - see gw_keys.h. */
#include "gw_keys.h"
#include "gw_upstream.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/util.h"

#define RECENT_REVOKED_MS 60000

struct gw_key_ent {
  uint8_t hash[32];
  int used;
  int valid; /* 1 = positive answer */
  int64_t expires_ms;
  gw_key_info info;
};


int gw_keys_init(gw_keycache *k, size_t max, int64_t pos_ttl_ms, int64_t neg_ttl_ms,
                 gw_keys_fetch_fn fetch, void *fetch_ud) {
  if (k == NULL || max < 1 || pos_ttl_ms < 0 || neg_ttl_ms < 0 || fetch == NULL)
    return LC_ERR_PARAM;
  memset(k, 0, sizeof(*k));
  if (pthread_mutex_init(&k->lock, NULL) != 0)
    return LC_ERR;
  k->ents = lc_xcalloc(max, sizeof(gw_key_ent));
  k->max = max;
  k->pos_ttl_ms = pos_ttl_ms;
  k->neg_ttl_ms = neg_ttl_ms;
  k->fetch = fetch;
  k->fetch_ud = fetch_ud;
  return LC_OK;
}

void gw_keys_free(gw_keycache *k) {
  if (k == NULL || k->ents == NULL)
    return;
  memset(k->ents, 0, k->max * sizeof(gw_key_ent));
  free(k->ents);
  k->ents = NULL;
  pthread_mutex_destroy(&k->lock);
}

static int is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static int is_b64url(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

int gw_keys_well_formed(const char *key) {
  if (key == NULL || strlen(key) != GW_KEY_LEN || strncmp(key, "sk_", 3) != 0 || key[11] != '_')
    return 0;
  for (int i = 3; i < 11; i++)
    if (!is_lower_alnum(key[i]))
      return 0;
  for (int i = 12; i < GW_KEY_LEN; i++)
    if (!is_b64url(key[i]))
      return 0;
  return 1;
}

/* Lock held. */
static gw_key_ent *find(gw_keycache *k, const uint8_t h[32], int64_t now_ms) {
  for (size_t i = 0; i < k->max; i++) {
    gw_key_ent *e = &k->ents[i];
    if (e->used && e->expires_ms > now_ms && memcmp(e->hash, h, 32) == 0)
      return e;
  }
  return NULL;
}

/* Lock held: a free, expired or first-expiring slot. */
static gw_key_ent *victim(gw_keycache *k, int64_t now_ms) {
  gw_key_ent *best = &k->ents[0];
  for (size_t i = 0; i < k->max; i++) {
    gw_key_ent *e = &k->ents[i];
    if (!e->used || e->expires_ms <= now_ms)
      return e;
    if (e->expires_ms < best->expires_ms)
      best = e;
  }
  return best;
}

static int recently_revoked(const gw_keycache *k, const char *key_id, int64_t now_ms) {
  for (size_t i = 0; i < GW_KEYS_RECENT; i++)
    if (k->recent[i].key_id[0] != '\0' && now_ms - k->recent[i].at_ms < RECENT_REVOKED_MS &&
        strcmp(k->recent[i].key_id, key_id) == 0)
      return 1;
  return 0;
}

static int info_ok(const gw_key_info *in) {
  int role_ok = strcmp(in->owner_role, "admin") == 0 || strcmp(in->owner_role, "user") == 0 ||
                strcmp(in->owner_role, "service") == 0;
  int scope_ok = strcmp(in->scope, "read") == 0 || strcmp(in->scope, "write") == 0 ||
                 strcmp(in->scope, "admin") == 0;
  return role_ok && scope_ok && lc_uuid_valid(in->owner_id) && in->key_id[0] != '\0';
}

int gw_keys_resolve(gw_keycache *k, const char *key, int64_t now_ms, gw_key_info *info, int *cached,
                    char err[LC_ERR_LEN]) {
  uint8_t h[32];
  int rc;
  if (cached != NULL)
    *cached = 0;
  memset(info, 0, sizeof(*info));
  if (!gw_keys_well_formed(key))
    return lc_err_set(err, LC_ERR_UNAUTH, "malformed API key");
  lc_sha256(key, strlen(key), h);

  pthread_mutex_lock(&k->lock);
  gw_key_ent *e = find(k, h, now_ms);
  uint64_t epoch = k->epoch;
  if (e != NULL) {
    rc = e->valid ? LC_OK : LC_ERR_UNAUTH;
    if (e->valid)
      *info = e->info;
    pthread_mutex_unlock(&k->lock);
    if (cached != NULL)
      *cached = 1;
    return rc == LC_OK ? LC_OK : lc_err_set(err, LC_ERR_UNAUTH, "unknown or revoked API key");
  }
  pthread_mutex_unlock(&k->lock);

  char ferr[LC_ERR_LEN] = "";
  rc = k->fetch(k->fetch_ud, key, info, ferr);
  if (rc == LC_OK && !info_ok(info)) {
    lc_log_error("gw_keycache - auth-svc answered an invalid key record");
    memset(info, 0, sizeof(*info));
    return lc_err_set(err, LC_ERR_UNAVAIL, "invalid answer from auth-svc");
  }
  if (rc != LC_OK && rc != LC_ERR_UNAUTH) {
    memset(info, 0, sizeof(*info));
    return lc_err_set(err, LC_ERR_UNAVAIL, "key verification unavailable: %s", ferr);
  }

  pthread_mutex_lock(&k->lock);
  if (rc == LC_OK && recently_revoked(k, info->key_id, lc_mono_ms()))
    rc = LC_ERR_UNAUTH; /* revoked while we were asking */
  if (k->epoch == epoch) {
    int64_t ttl = rc == LC_OK ? k->pos_ttl_ms : k->neg_ttl_ms;
    if (ttl > 0) {
      e = victim(k, now_ms);
      memset(e, 0, sizeof(*e));
      memcpy(e->hash, h, 32);
      e->used = 1;
      e->valid = rc == LC_OK;
      e->expires_ms = now_ms + ttl;
      if (rc == LC_OK)
        e->info = *info;
    }
  }
  pthread_mutex_unlock(&k->lock);
  if (rc != LC_OK) {
    memset(info, 0, sizeof(*info));
    return lc_err_set(err, LC_ERR_UNAUTH, "unknown or revoked API key");
  }
  return LC_OK;
}

size_t gw_keys_evict(gw_keycache *k, const char *key_id, const char *owner_id) {
  size_t n = 0;
  pthread_mutex_lock(&k->lock);
  k->epoch++;
  if (key_id != NULL && key_id[0] != '\0') {
    lc_strlcpy(k->recent[k->recent_next].key_id, key_id, sizeof(k->recent[0].key_id));
    k->recent[k->recent_next].at_ms = lc_mono_ms();
    k->recent_next = (k->recent_next + 1) % GW_KEYS_RECENT;
  }
  for (size_t i = 0; i < k->max; i++) {
    gw_key_ent *e = &k->ents[i];
    if (!e->used || !e->valid)
      continue;
    if ((key_id != NULL && key_id[0] != '\0' && strcmp(e->info.key_id, key_id) == 0) ||
        (owner_id != NULL && owner_id[0] != '\0' && strcmp(e->info.owner_id, owner_id) == 0)) {
      memset(e, 0, sizeof(*e));
      n++;
    }
  }
  pthread_mutex_unlock(&k->lock);
  return n;
}

int gw_keys_apply_event(gw_keycache *k, const char *rk, const char *body, size_t len) {
  int is_key = strcmp(rk, "auth.key.revoked") == 0;
  int is_user = strcmp(rk, "auth.user.revoked") == 0;
  if (!is_key && !is_user)
    return LC_OK;
  json_error_t jerr;
  json_t *env = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  const json_t *b = json_object_get(env, "body");
  int rc = LC_ERR_PARAM;
  if (!json_is_object(b))
    goto out;
  const json_t *kid = json_object_get(b, is_key ? "key_id" : "user_id");
  const json_t *own = json_object_get(b, is_key ? "owner_id" : "user_id");
  if (!json_is_string(kid))
    goto out;
  gw_keys_evict(k, is_key ? json_string_value(kid) : NULL,
                json_is_string(own) && is_user ? json_string_value(own) : NULL);
  rc = LC_OK;
out:
  json_decref(env);
  return rc;
}

size_t gw_keys_count(gw_keycache *k) {
  size_t n = 0;
  int64_t now = lc_mono_ms();
  pthread_mutex_lock(&k->lock);
  for (size_t i = 0; i < k->max; i++)
    n += k->ents[i].used && k->ents[i].expires_ms > now ? 1 : 0;
  pthread_mutex_unlock(&k->lock);
  return n;
}

static int copy_member(const json_t *o, const char *name, char *out, size_t outsz) {
  const json_t *v = json_object_get(o, name);
  if (!json_is_string(v))
    return LC_ERR_PARAM;
  return lc_strlcpy(out, json_string_value(v), outsz);
}

int gw_keys_verify_http(void *ud, const char *key, gw_key_info *info, char err[LC_ERR_LEN]) {
  const gw_keys_upstream *up = ud;
  lc_identity sys;
  memset(&sys, 0, sizeof(sys));
  lc_strlcpy(sys.role, "system", sizeof(sys.role));
  lc_strlcpy(sys.request_id, lc_log_rid(), sizeof(sys.request_id));
  json_t *req = json_pack("{s:s}", "key", key);
  char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  if (body == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "cannot build request");
  lc_http_resp resp = {0};
  /* verify only reads: safe to repeat on another auth-svc instance */
  int rc = up->auth_pool != NULL
               ? gw_upstream_iauth_call(up->auth_pool, 1, up->secret, up->secret_len, "POST",
                                        "/internal/api-keys/verify", &sys, NULL, body,
                                        strlen(body), up->timeout_ms, &resp, err)
               : lc_iauth_call(up->secret, up->secret_len, up->auth_url, "POST",
                               "/internal/api-keys/verify", &sys, NULL, body, strlen(body),
                               up->timeout_ms, &resp, err);
  memset(body, 0, strlen(body));
  free(body);
  if (rc != LC_OK)
    goto out;
  if (resp.status == 401 || resp.status == 404) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "unknown key");
    goto out;
  }
  if (resp.status != 200) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "auth-svc answered %ld", resp.status);
    goto out;
  }
  json_error_t jerr;
  json_t *j = json_loadb(resp.body ? resp.body : "", resp.len, 0, &jerr);
  rc = LC_ERR_UNAVAIL;
  if (json_is_object(j) && copy_member(j, "key_id", info->key_id, sizeof(info->key_id)) == LC_OK &&
      copy_member(j, "owner_id", info->owner_id, sizeof(info->owner_id)) == LC_OK &&
      copy_member(j, "owner_role", info->owner_role, sizeof(info->owner_role)) == LC_OK &&
      copy_member(j, "scope", info->scope, sizeof(info->scope)) == LC_OK) {
    copy_member(j, "prefix", info->prefix, sizeof(info->prefix));
    rc = LC_OK;
  } else {
    lc_err_set(err, LC_ERR_UNAVAIL, "malformed verify answer");
  }
  json_decref(j);
out:
  lc_http_resp_free(&resp);
  return rc;
}
