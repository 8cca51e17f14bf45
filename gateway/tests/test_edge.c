/* Unit tests of the gateway's edge logic: token-bucket rate limits and
 * Retry-After, client address with/without a trusted proxy, the API-key
 * cache (TTL, negative entries, eviction, a verification racing a
 * revocation), the revocation set (expiry, not-before, events, list,
 * overflow), the scope/route decision table, credentials in the query
 * string, per-account limit keys. No HTTP: the key verifier is a stand-in
 * function with auth-svc's answer shape (the real call is exercised by
 * tests/e2e/test_gateway.py). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_authn.h"
#include "gw_keys.h"
#include "gw_ratelimit.h"
#include "gw_revoke.h"
#include "gw_routes.h"
#include "gw_sync.h"
#include "lc/jwt.h"
#include "lc/util.h"

void add_edge_tests(Suite *s);

static const char *U1 = "0b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
static const char *U2 = "1b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
static const char *J1 = "2b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
static const char *J2 = "3b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
static const char *KEY_A = "sk_abcd1234_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
static const char *KEY_B = "sk_abcd1235_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

static void init_once(void) { ck_assert_int_eq(lc_global_init(), LC_OK); }

/* ------------------------------------------------------------ rate limits -- */

START_TEST(rl_bucket_and_retry_after) {
  gw_rl rl;
  ck_assert_int_eq(gw_rl_init(&rl, 1024), LC_OK);
  gw_rl_limit lim = {10, 60000}; /* 10 per minute: one token every 6 s */
  int64_t t = 1000000, ra = -1;
  for (int i = 0; i < 10; i++)
    ck_assert_int_eq(gw_rl_take(&rl, "login:ip", "10.0.0.1", &lim, t, &ra), LC_OK);
  ck_assert_int_eq(gw_rl_take(&rl, "login:ip", "10.0.0.1", &lim, t, &ra), LC_ERR_RATE);
  ck_assert_int_eq(ra, 6);
  /* another key and another scope have their own buckets */
  ck_assert_int_eq(gw_rl_take(&rl, "login:ip", "10.0.0.2", &lim, t, &ra), LC_OK);
  ck_assert_int_eq(gw_rl_take(&rl, "signup:ip", "10.0.0.1", &lim, t, &ra), LC_OK);
  /* 2.5 s later: still refused, 4 s to wait (rounded up) */
  ck_assert_int_eq(gw_rl_take(&rl, "login:ip", "10.0.0.1", &lim, t + 2500, &ra), LC_ERR_RATE);
  ck_assert_int_eq(ra, 4);
  /* peek consumes nothing */
  ck_assert_int_eq(gw_rl_peek(&rl, "login:ip", "10.0.0.1", &lim, t + 6000, &ra), LC_OK);
  ck_assert_int_eq(gw_rl_peek(&rl, "login:ip", "10.0.0.1", &lim, t + 6000, &ra), LC_OK);
  /* after Retry-After seconds exactly one more request passes */
  ck_assert_int_eq(gw_rl_take(&rl, "login:ip", "10.0.0.1", &lim, t + 6000, &ra), LC_OK);
  ck_assert_int_eq(gw_rl_take(&rl, "login:ip", "10.0.0.1", &lim, t + 6000, &ra), LC_ERR_RATE);
  ck_assert_int_ge(ra, 1);
  /* a full window refills completely, never beyond the capacity */
  int ok = 0;
  for (int i = 0; i < 20; i++)
    ok += gw_rl_take(&rl, "login:ip", "10.0.0.1", &lim, t + 600000, &ra) == LC_OK;
  ck_assert_int_eq(ok, 10);
  /* bad limits are refused */
  gw_rl_limit bad = {0, 1000};
  ck_assert_int_eq(gw_rl_take(&rl, "x", "y", &bad, t, &ra), LC_ERR_PARAM);
  gw_rl_free(&rl);
}
END_TEST

START_TEST(rl_bounded_table_keeps_hot_keys) {
  gw_rl rl;
  ck_assert_int_eq(gw_rl_init(&rl, 64), LC_OK);
  gw_rl_limit lim = {3, 60000};
  int64_t t = 5000000, ra;
  /* the attacker's address exhausts its bucket */
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(gw_rl_take(&rl, "login:ip", "192.0.2.1", &lim, t, &ra), LC_OK);
  ck_assert_int_eq(gw_rl_take(&rl, "login:ip", "192.0.2.1", &lim, t, &ra), LC_ERR_RATE);
  /* 10000 requests with rotating emails: each takes the IP bucket first
   * (as the dispatcher does), then a fresh per-email bucket */
  char key[32];
  int refused = 0;
  for (int i = 0; i < 10000; i++) {
    refused += gw_rl_take(&rl, "login:ip", "192.0.2.1", &lim, t + i / 100, &ra) == LC_ERR_RATE;
    snprintf(key, sizeof(key), "user%d@example.com", i);
    gw_rl_take(&rl, "login:account", key, &lim, t + i / 100, &ra);
  }
  ck_assert_uint_le(gw_rl_count(&rl), 64);
  /* the bucket in use stays (LRU): the IP limit held every time */
  ck_assert_int_eq(refused, 10000);
  gw_rl_free(&rl);
}
END_TEST

START_TEST(client_ip_trusted_proxy) {
  char out[64];
  /* no trusted proxy: X-Forwarded-For is ignored */
  gw_rl_client_ip("127.0.0.1", "203.0.113.9", NULL, out, sizeof(out));
  ck_assert_str_eq(out, "127.0.0.1");
  gw_rl_client_ip("127.0.0.1", "203.0.113.9", "", out, sizeof(out));
  ck_assert_str_eq(out, "127.0.0.1");
  /* trusted proxy but the peer is someone else */
  gw_rl_client_ip("198.51.100.7", "203.0.113.9", "127.0.0.1", out, sizeof(out));
  ck_assert_str_eq(out, "198.51.100.7");
  /* peer is the proxy: its last hop (what connected to it), not the first */
  gw_rl_client_ip("127.0.0.1", "1.1.1.1, 2.2.2.2,203.0.113.9 ", "127.0.0.1", out, sizeof(out));
  ck_assert_str_eq(out, "203.0.113.9");
  /* a forged / garbage last hop falls back to the peer */
  gw_rl_client_ip("127.0.0.1", "203.0.113.9, not-an-ip", "127.0.0.1", out, sizeof(out));
  ck_assert_str_eq(out, "127.0.0.1");
  gw_rl_client_ip("127.0.0.1", NULL, "127.0.0.1", out, sizeof(out));
  ck_assert_str_eq(out, "127.0.0.1");
  /* IPv6 normalised */
  gw_rl_client_ip("::1", "2001:DB8:0:0::1", "0:0:0:0:0:0:0:1", out, sizeof(out));
  ck_assert_str_eq(out, "2001:db8::1");
}
END_TEST

/* ---------------------------------------------------------------- keys -- */

typedef struct {
  int calls;
  int mode; /* 0 = known keys, 1 = auth-svc down, 2 = evict during the call */
  gw_keycache *cache;
} fake_auth;

/* Stand-in for auth-svc's POST /internal/api-keys/verify. */
static int fake_verify(void *ud, const char *key, gw_key_info *info, char err[LC_ERR_LEN]) {
  fake_auth *f = ud;
  f->calls++;
  if (f->mode == 1)
    return lc_err_set(err, LC_ERR_IO, "connection refused");
  if (strcmp(key, KEY_A) != 0)
    return lc_err_set(err, LC_ERR_UNAUTH, "unknown");
  lc_strlcpy(info->key_id, J1, sizeof(info->key_id));
  lc_strlcpy(info->owner_id, U1, sizeof(info->owner_id));
  lc_strlcpy(info->owner_role, "user", sizeof(info->owner_role));
  lc_strlcpy(info->scope, "read", sizeof(info->scope));
  lc_strlcpy(info->prefix, "abcd1234", sizeof(info->prefix));
  if (f->mode == 2)
    gw_keys_evict(f->cache, J1, NULL); /* auth.key.revoked arrives meanwhile */
  return LC_OK;
}

START_TEST(keys_format) {
  ck_assert(gw_keys_well_formed(KEY_A));
  ck_assert(!gw_keys_well_formed("sk_ABCD1234_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
  ck_assert(!gw_keys_well_formed("sk_abcd1234_AAAA"));
  ck_assert(!gw_keys_well_formed("pk_abcd1234_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
  ck_assert(!gw_keys_well_formed("sk_abcd1234_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
  ck_assert(!gw_keys_well_formed(NULL));
}
END_TEST

START_TEST(keys_cache_ttl_negative_and_eviction) {
  fake_auth f = {0, 0, NULL};
  gw_keycache k;
  ck_assert_int_eq(gw_keys_init(&k, 8, 1000, 500, fake_verify, &f), LC_OK);
  f.cache = &k;
  gw_key_info info;
  int cached = -1;
  char err[LC_ERR_LEN];
  int64_t t = 10000;
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_A, t, &info, &cached, err), LC_OK);
  ck_assert_int_eq(cached, 0);
  ck_assert_str_eq(info.owner_id, U1);
  ck_assert_str_eq(info.scope, "read");
  /* within the TTL: from the cache, no call */
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_A, t + 999, &info, &cached, err), LC_OK);
  ck_assert_int_eq(cached, 1);
  ck_assert_int_eq(f.calls, 1);
  /* after the TTL: asked again */
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_A, t + 1000, &info, &cached, err), LC_OK);
  ck_assert_int_eq(cached, 0);
  ck_assert_int_eq(f.calls, 2);
  /* unknown key: negative entry for 500 ms */
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_B, t, &info, &cached, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_B, t + 499, &info, &cached, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(cached, 1);
  ck_assert_int_eq(f.calls, 3);
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_B, t + 500, &info, &cached, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(f.calls, 4);
  /* malformed: refused without asking auth-svc */
  ck_assert_int_eq(gw_keys_resolve(&k, "sk_nope", t, &info, &cached, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(f.calls, 4);
  /* auth.key.revoked evicts at once: the next use asks again */
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_A, t + 1100, &info, &cached, err), LC_OK);
  ck_assert_int_eq(cached, 1);
  const char *ev = "{\"v\":1,\"type\":\"auth.key.revoked\",\"id\":\"x\",\"body\":"
                   "{\"key_id\":\"2b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b\",\"prefix\":\"abcd1234\","
                   "\"owner_id\":\"0b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b\"}}";
  ck_assert_int_eq(gw_keys_apply_event(&k, "auth.key.revoked", ev, strlen(ev)), LC_OK);
  int before = f.calls;
  f.mode = 1; /* and now auth-svc is down: not cached, not accepted */
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_A, t + 1101, &info, &cached, err), LC_ERR_UNAVAIL);
  ck_assert_int_eq(f.calls, before + 1);
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_A, t + 1102, &info, &cached, err), LC_ERR_UNAVAIL);
  ck_assert_int_eq(f.calls, before + 2);
  /* malformed events are reported */
  ck_assert_int_eq(gw_keys_apply_event(&k, "auth.key.revoked", "{}", 2), LC_ERR_PARAM);
  ck_assert_int_eq(gw_keys_apply_event(&k, "auth.audit", "{}", 2), LC_OK);
  gw_keys_free(&k);
}
END_TEST

START_TEST(keys_revocation_racing_a_verification) {
  fake_auth f = {0, 2, NULL};
  gw_keycache k;
  ck_assert_int_eq(gw_keys_init(&k, 8, 1000, 500, fake_verify, &f), LC_OK);
  f.cache = &k;
  gw_key_info info;
  char err[LC_ERR_LEN];
  /* auth-svc said "valid" but the key was revoked while we asked */
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_A, 100, &info, NULL, err), LC_ERR_UNAUTH);
  ck_assert_uint_eq(gw_keys_count(&k), 0);
  gw_keys_free(&k);
}
END_TEST

START_TEST(keys_bounded_and_owner_eviction) {
  fake_auth f = {0, 0, NULL};
  gw_keycache k;
  ck_assert_int_eq(gw_keys_init(&k, 2, 100000, 100000, fake_verify, &f), LC_OK);
  gw_key_info info;
  char err[LC_ERR_LEN];
  char key[64];
  int64_t now = lc_mono_ms();
  for (int i = 0; i < 10; i++) {
    snprintf(key, sizeof(key), "sk_abcd%04d_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", i);
    gw_keys_resolve(&k, key, now + i, &info, NULL, err);
  }
  ck_assert_uint_le(gw_keys_count(&k), 2);
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_A, now + 20, &info, NULL, err), LC_OK);
  ck_assert_uint_eq(gw_keys_evict(&k, NULL, U2), 0);
  ck_assert_uint_eq(gw_keys_evict(&k, NULL, U1), 1); /* auth.user.revoked of the owner */
  gw_keys_free(&k);
}
END_TEST

/* --------------------------------------------------------- revocations -- */

START_TEST(revoke_jti_and_expiry) {
  gw_revoke rv;
  ck_assert_int_eq(gw_revoke_init(&rv, 1000, 30, 3600), LC_OK);
  int64_t now = 1800000000;
  ck_assert_int_eq(gw_revoke_add_jti(&rv, J1, U1, now + 900, now), LC_OK);
  ck_assert(gw_revoke_check(&rv, J1, U1, now - 10, now));
  ck_assert(!gw_revoke_check(&rv, J2, U1, now - 10, now));
  /* still remembered through exp + leeway, dropped afterwards */
  ck_assert(gw_revoke_check(&rv, J1, U1, now - 10, now + 929));
  ck_assert(!gw_revoke_check(&rv, J1, U1, now - 10, now + 930));
  ck_assert_uint_eq(gw_revoke_purge(&rv, now + 930), 1);
  size_t nj = 9, nu = 9;
  gw_revoke_counts(&rv, &nj, &nu);
  ck_assert_uint_eq(nj, 0);
  /* an already expired token is not stored at all */
  ck_assert_int_eq(gw_revoke_add_jti(&rv, J2, U1, now - 100, now), LC_OK);
  gw_revoke_counts(&rv, &nj, &nu);
  ck_assert_uint_eq(nj, 0);
  ck_assert_int_eq(gw_revoke_add_jti(&rv, "not-a-uuid", U1, now + 10, now), LC_ERR_PARAM);
  gw_revoke_free(&rv);
}
END_TEST

START_TEST(revoke_user_not_before) {
  gw_revoke rv;
  ck_assert_int_eq(gw_revoke_init(&rv, 1000, 30, 3600), LC_OK);
  int64_t now = 1800000000;
  ck_assert_int_eq(gw_revoke_add_user(&rv, U1, now, now), LC_OK);
  ck_assert(gw_revoke_check(&rv, J1, U1, now - 1, now));   /* issued before: dead */
  ck_assert(!gw_revoke_check(&rv, J1, U1, now, now));      /* issued at/after: alive */
  ck_assert(!gw_revoke_check(&rv, J1, U2, now - 1, now));  /* other user */
  /* an older not-before never moves it back */
  ck_assert_int_eq(gw_revoke_add_user(&rv, U1, now - 500, now), LC_OK);
  ck_assert(gw_revoke_check(&rv, J1, U1, now - 1, now));
  /* after user_ttl no token it could kill is alive; the entry goes */
  ck_assert(!gw_revoke_check(&rv, J1, U1, now - 1, now + 3600));
  ck_assert_uint_eq(gw_revoke_purge(&rv, now + 3600), 1);
  gw_revoke_free(&rv);
}
END_TEST

START_TEST(revoke_events_and_list) {
  gw_revoke rv;
  ck_assert_int_eq(gw_revoke_init(&rv, 1000, 30, 3600), LC_OK);
  int64_t now = 1800000000;
  char ev[512];
  snprintf(ev, sizeof(ev),
           "{\"v\":1,\"type\":\"auth.token.revoked\",\"id\":\"a\",\"ts\":\"x\",\"request_id\":"
           "\"r\",\"body\":{\"jti\":\"%s\",\"user_id\":\"%s\",\"exp\":%lld}}",
           J1, U1, (long long)(now + 900));
  ck_assert_int_eq(gw_revoke_apply_event(&rv, "auth.token.revoked", ev, strlen(ev), now), LC_OK);
  ck_assert(gw_revoke_check(&rv, J1, U1, now - 5, now));
  /* not_before as RFC 3339 text is accepted too */
  snprintf(ev, sizeof(ev),
           "{\"v\":1,\"type\":\"auth.user.revoked\",\"id\":\"b\",\"body\":{\"user_id\":\"%s\","
           "\"not_before\":\"2027-01-15T08:00:00.250Z\"}}",
           U2);
  ck_assert_int_eq(gw_revoke_apply_event(&rv, "auth.user.revoked", ev, strlen(ev), now), LC_OK);
  ck_assert(gw_revoke_check(&rv, J2, U2, now - 5, now));
  /* malformed revocation events are refused; other types ignored */
  ck_assert_int_eq(gw_revoke_apply_event(&rv, "auth.token.revoked", "{\"body\":{}}", 11, now),
                   LC_ERR_PARAM);
  ck_assert_int_eq(gw_revoke_apply_event(&rv, "auth.token.revoked", "nope", 4, now),
                   LC_ERR_PARAM);
  ck_assert_int_eq(gw_revoke_apply_event(&rv, "auth.audit", "nope", 4, now), LC_OK);

  /* the list: all or nothing */
  char list[512];
  snprintf(list, sizeof(list),
           "{\"tokens\":[{\"jti\":\"%s\",\"exp\":%lld}],\"users\":[{\"user_id\":\"%s\","
           "\"not_before\":%lld}]}",
           J2, (long long)(now + 100), U1, (long long)now);
  ck_assert_int_eq(gw_revoke_apply_list(&rv, list, strlen(list), now), LC_OK);
  ck_assert(gw_revoke_check(&rv, J2, U2, now + 10, now));
  ck_assert(gw_revoke_check(&rv, "4b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", U1, now - 1, now));
  gw_revoke_free(&rv);
  ck_assert_int_eq(gw_revoke_init(&rv, 1000, 30, 3600), LC_OK);
  snprintf(list, sizeof(list),
           "{\"tokens\":[{\"jti\":\"%s\",\"exp\":%lld},{\"jti\":\"bad\",\"exp\":1}],\"users\":[]}",
           J2, (long long)(now + 100));
  ck_assert_int_eq(gw_revoke_apply_list(&rv, list, strlen(list), now), LC_ERR_PARAM);
  ck_assert(!gw_revoke_check(&rv, J2, U2, now, now));
  ck_assert_int_eq(gw_revoke_apply_list(&rv, "[]", 2, now), LC_ERR_PARAM);
  gw_revoke_free(&rv);
}
END_TEST

START_TEST(revoke_overflow_fails_closed) {
  gw_revoke rv;
  ck_assert_int_eq(gw_revoke_init(&rv, 16, 0, 3600), LC_OK);
  int64_t now = 1800000000;
  char jti[37];
  for (int i = 0; i < 16; i++) {
    snprintf(jti, sizeof(jti), "%08x-1c2d-4e5f-8a9b-0c1d2e3f4a5b", i);
    ck_assert_int_eq(gw_revoke_add_jti(&rv, jti, U2, now + 900, now), LC_OK);
  }
  /* table full of live entries: U1's token is still dead, via not-before */
  ck_assert_int_eq(gw_revoke_add_jti(&rv, J1, U1, now + 900, now), LC_OK);
  ck_assert(gw_revoke_check(&rv, J1, U1, now - 5, now));
  size_t nj = 0, nu = 0;
  gw_revoke_counts(&rv, &nj, &nu);
  ck_assert_uint_eq(nj, 16);
  ck_assert_uint_eq(nu, 1);
  ck_assert_uint_ge(rv.overflows, 1);
  gw_revoke_free(&rv);
}
END_TEST

START_TEST(sync_handler_feeds_both) {
  gw_revoke rv;
  fake_auth f = {0, 0, NULL};
  gw_keycache k;
  ck_assert_int_eq(gw_revoke_init(&rv, 100, 30, 3600), LC_OK);
  ck_assert_int_eq(gw_keys_init(&k, 8, 100000, 100, fake_verify, &f), LC_OK);
  gw_sync s;
  memset(&s, 0, sizeof(s));
  s.rv = &rv;
  s.keys = &k;
  gw_key_info info;
  char err[LC_ERR_LEN];
  ck_assert_int_eq(gw_keys_resolve(&k, KEY_A, lc_mono_ms(), &info, NULL, err), LC_OK);
  char ev[512];
  snprintf(ev, sizeof(ev), "{\"v\":1,\"type\":\"auth.user.revoked\",\"body\":{\"user_id\":\"%s\","
           "\"not_before\":%lld}}", U1, (long long)(lc_now_ms() / 1000));
  ck_assert_int_eq(gw_sync_handle(&s, "auth.user.revoked", "m1", ev, strlen(ev)), LC_OK);
  ck_assert(gw_revoke_check(&rv, J1, U1, lc_now_ms() / 1000 - 60, lc_now_ms() / 1000));
  ck_assert_uint_eq(gw_keys_count(&k), 0); /* the owner's keys were evicted too */
  ck_assert_int_eq(gw_sync_handle(&s, "auth.token.revoked", "m2", "{", 1), LC_ERR_PARAM);
  gw_keys_free(&k);
  gw_revoke_free(&rv);
}
END_TEST

/* --------------------------------------------------- authn / decisions -- */

static const gw_route *find_route(const char *method, const char *path) {
  size_t n;
  const gw_route *t = gw_routes_table(&n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(t[i].method, method) == 0 && strcmp(t[i].path, path) == 0)
      return &t[i];
  ck_abort_msg("no route %s %s", method, path);
  return NULL;
}

static lc_identity ident(const char *role, const char *scope) {
  lc_identity id;
  memset(&id, 0, sizeof(id));
  lc_strlcpy(id.user_id, U1, sizeof(id.user_id));
  lc_strlcpy(id.role, role, sizeof(id.role));
  lc_strlcpy(id.scope, scope, sizeof(id.scope));
  return id;
}

START_TEST(scope_route_decision_table) {
  struct {
    const char *method, *path, *role, *scope;
    int want;
  } cases[] = {
      /* read keys read, never write */
      {"GET", "/v1/credits", "user", "read", LC_OK},
      {"GET", "/v1/files/:id", "user", "read", LC_OK},
      {"POST", "/v1/files", "user", "read", LC_ERR_FORBIDDEN},
      {"POST", "/v1/reports", "user", "read", LC_ERR_FORBIDDEN},
      {"GET", "/v1/reports/:id/download", "user", "read", LC_OK},
      /* write keys write, never read */
      {"POST", "/v1/reports", "user", "write", LC_OK},
      {"GET", "/v1/credits", "user", "write", LC_ERR_FORBIDDEN},
      {"GET", "/v1/me", "user", "write", LC_ERR_FORBIDDEN},
      /* admin scope: everything the owner's role allows */
      {"GET", "/v1/credits", "user", "admin", LC_OK},
      {"POST", "/v1/files", "service", "admin", LC_OK},
      {"GET", "/v1/admin/users", "user", "admin", LC_ERR_FORBIDDEN},
      {"GET", "/v1/admin/audit", "service", "admin", LC_ERR_FORBIDDEN},
      {"GET", "/v1/admin/users", "admin", "admin", LC_OK},
      {"GET", "/v1/admin/users", "admin", "read", LC_ERR_FORBIDDEN},
      {"PATCH", "/v1/admin/users/:id", "admin", "write", LC_ERR_FORBIDDEN},
      {"PATCH", "/v1/admin/users/:id", "admin", "admin", LC_OK},
      /* keys never mint or revoke keys, never log out, never pay */
      {"POST", "/v1/admin/api-keys", "admin", "admin", LC_ERR_FORBIDDEN},
      {"DELETE", "/v1/admin/api-keys/:id", "admin", "admin", LC_ERR_FORBIDDEN},
      {"POST", "/v1/auth/logout", "user", "admin", LC_ERR_FORBIDDEN},
      {"POST", "/v1/payments/checkout", "user", "admin", LC_ERR_FORBIDDEN},
      /* the metadata fetch: API keys (read|admin) only */
      {"GET", "/v1/service/metadata/:file_id", "service", "read", LC_OK},
      {"GET", "/v1/service/metadata/:file_id", "service", "admin", LC_OK},
      {"GET", "/v1/service/metadata/:file_id", "service", "write", LC_ERR_FORBIDDEN},
      {"GET", "/v1/service/metadata/:file_id", "user", "full", LC_ERR_FORBIDDEN},
      {"GET", "/v1/service/metadata/:file_id", "admin", "full", LC_ERR_FORBIDDEN},
      /* sessions */
      {"POST", "/v1/files", "user", "full", LC_OK},
      {"POST", "/v1/admin/api-keys", "admin", "full", LC_OK},
      {"POST", "/v1/admin/api-keys", "user", "full", LC_ERR_FORBIDDEN},
      {"GET", "/v1/me", "service", "full", LC_ERR_FORBIDDEN}, /* no service sessions */
      /* unknown scope / role */
      {"GET", "/v1/credits", "user", "root", LC_ERR_FORBIDDEN},
      {"GET", "/v1/credits", "root", "read", LC_ERR_FORBIDDEN},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    lc_identity id = ident(cases[i].role, cases[i].scope);
    int got = gw_routes_authorize(find_route(cases[i].method, cases[i].path), &id);
    ck_assert_msg(got == cases[i].want, "%s %s as %s/%s: got %d want %d", cases[i].method,
                  cases[i].path, cases[i].role, cases[i].scope, got, cases[i].want);
  }
}
END_TEST

START_TEST(query_credentials_refused) {
  ck_assert(gw_authn_query_has_credential("api_key=x"));
  ck_assert(gw_authn_query_has_credential("limit=5&KEY=abc"));
  ck_assert(gw_authn_query_has_credential("access_token=eyJ"));
  ck_assert(gw_authn_query_has_credential("api%5Fkey=1"));
  ck_assert(gw_authn_query_has_credential(
      "x=sk_abcd1234_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
  ck_assert(gw_authn_query_has_credential(
      "x=sk%5Fabcd1234%5FAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
  ck_assert(!gw_authn_query_has_credential("limit=5&cursor=eyJ0cyI6MX0"));
  ck_assert(!gw_authn_query_has_credential("user_id=abc&action=login&since=2026-01-01"));
  ck_assert(!gw_authn_query_has_credential(""));
  ck_assert(!gw_authn_query_has_credential(NULL));
}
END_TEST

START_TEST(authn_api_keys_and_revoked_sessions) {
  uint8_t seed[32], pk[32], sk[64];
  memset(seed, 5, sizeof(seed));
  ck_assert_int_eq(lc_jwt_keypair_from_seed(seed, pk, sk), LC_OK);
  gw_revoke rv;
  ck_assert_int_eq(gw_revoke_init(&rv, 100, 30, 3600), LC_OK);
  fake_auth f = {0, 0, NULL};
  gw_keycache k;
  ck_assert_int_eq(gw_keys_init(&k, 8, 1000, 1000, fake_verify, &f), LC_OK);
  gw_authn_ctx ctx = {.issuer = "credit-saas", .audience = "credit-saas-api", .leeway_s = 30,
                      .rv = &rv, .keys = &k};
  memcpy(ctx.jwt_pk, pk, 32);
  gw_principal p;
  char err[LC_ERR_LEN], hdr[600];
  int64_t now = lc_now_ms() / 1000, ms = lc_mono_ms();

  snprintf(hdr, sizeof(hdr), "ApiKey %s", KEY_A);
  ck_assert_int_eq(gw_authn_credentials(&ctx, hdr, NULL, now, ms, &p, err), LC_OK);
  ck_assert(p.is_key);
  ck_assert_str_eq(p.id.user_id, U1);
  ck_assert_str_eq(p.id.role, "user");
  ck_assert_str_eq(p.id.scope, "read");
  ck_assert_int_eq(gw_authn_credentials(&ctx, NULL, KEY_A, now, ms, &p, err), LC_OK);
  ck_assert_int_eq(gw_authn_credentials(&ctx, NULL, KEY_B, now, ms, &p, err), LC_ERR_UNAUTH);
  /* two credentials at once: refused */
  ck_assert_int_eq(gw_authn_credentials(&ctx, hdr, KEY_A, now, ms, &p, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(gw_authn_credentials(&ctx, NULL, NULL, now, ms, &p, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(gw_authn_credentials(&ctx, "Basic eDp5", NULL, now, ms, &p, err),
                   LC_ERR_UNAUTH);

  /* a session: jti and exp come back; revoked jti / not-before kill it */
  lc_jwt_claims c;
  memset(&c, 0, sizeof(c));
  lc_strlcpy(c.iss, "credit-saas", sizeof(c.iss));
  lc_strlcpy(c.aud, "credit-saas-api", sizeof(c.aud));
  lc_strlcpy(c.sub, U2, sizeof(c.sub));
  lc_strlcpy(c.role, "user", sizeof(c.role));
  lc_strlcpy(c.typ, "access", sizeof(c.typ));
  lc_strlcpy(c.jti, J2, sizeof(c.jti));
  c.iat = now - 10;
  c.exp = now + 890;
  char *tok = NULL;
  ck_assert_int_eq(lc_jwt_sign(sk, &c, &tok, err), LC_OK);
  snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
  ck_assert_int_eq(gw_authn_credentials(&ctx, hdr, NULL, now, ms, &p, err), LC_OK);
  ck_assert(!p.is_key);
  ck_assert_str_eq(p.jti, J2);
  ck_assert_int_eq(p.exp, now + 890);
  ck_assert_str_eq(p.id.scope, "full");
  ck_assert_int_eq(gw_revoke_add_jti(&rv, J2, U2, c.exp, now), LC_OK);
  ck_assert_int_eq(gw_authn_credentials(&ctx, hdr, NULL, now, ms, &p, err), LC_ERR_UNAUTH);
  gw_revoke_free(&rv);
  ck_assert_int_eq(gw_revoke_init(&rv, 100, 30, 3600), LC_OK);
  ck_assert_int_eq(gw_authn_credentials(&ctx, hdr, NULL, now, ms, &p, err), LC_OK);
  ck_assert_int_eq(gw_revoke_add_user(&rv, U2, now - 5, now), LC_OK);
  ck_assert_int_eq(gw_authn_credentials(&ctx, hdr, NULL, now, ms, &p, err), LC_ERR_UNAUTH);
  free(tok);
  gw_keys_free(&k);
  gw_revoke_free(&rv);
}
END_TEST

START_TEST(account_keys) {
  char out[256];
  const char *b = "{\"email\":\"  Ann@Example.COM \",\"password\":\"x\"}";
  gw_routes_account_key(GW_RL_LOGIN, b, strlen(b), NULL, NULL, out, sizeof(out));
  ck_assert_str_eq(out, "ann@example.com");
  gw_routes_account_key(GW_RL_LOGIN, "not json", 8, NULL, NULL, out, sizeof(out));
  ck_assert_str_eq(out, "");
  gw_routes_account_key(GW_RL_LOGIN, NULL, 0, NULL, NULL, out, sizeof(out));
  ck_assert_str_eq(out, "");
  /* refresh: the token hash, from the body or the cookie (same token, same key) */
  char a[256];
  const char *rb = "{\"refresh_token\":\"abc\"}";
  gw_routes_account_key(GW_RL_REFRESH, rb, strlen(rb), NULL, NULL, a, sizeof(a));
  gw_routes_account_key(GW_RL_REFRESH, NULL, 0, "x=1; __Host-refresh=abc; y=2", NULL, out,
                        sizeof(out));
  ck_assert_uint_eq(strlen(a), 64);
  ck_assert_str_eq(a, out);
  gw_routes_account_key(GW_RL_CHECKOUT, NULL, 0, NULL, U1, out, sizeof(out));
  ck_assert_str_eq(out, U1);
  gw_routes_account_key(GW_RL_SIGNUP, b, strlen(b), NULL, U1, out, sizeof(out));
  ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(rate_classes_cover_the_spec) {
  ck_assert_int_eq(find_route("POST", "/v1/auth/signup")->rl, GW_RL_SIGNUP);
  ck_assert_int_eq(find_route("POST", "/v1/auth/login")->rl, GW_RL_LOGIN);
  ck_assert_int_eq(find_route("POST", "/v1/auth/refresh")->rl, GW_RL_REFRESH);
  ck_assert_int_eq(find_route("POST", "/v1/payments/checkout")->rl, GW_RL_CHECKOUT);
  ck_assert_int_eq(find_route("POST", "/v1/payments/webhooks/stripe")->rl, GW_RL_WEBHOOK);
  ck_assert_int_eq(find_route("POST", "/v1/payments/webhooks/razorpay")->rl, GW_RL_WEBHOOK);
}
END_TEST

void add_edge_tests(Suite *s) {
  TCase *tc = tcase_create("edge");
  tcase_add_unchecked_fixture(tc, init_once, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, rl_bucket_and_retry_after);
  tcase_add_test(tc, rl_bounded_table_keeps_hot_keys);
  tcase_add_test(tc, client_ip_trusted_proxy);
  tcase_add_test(tc, keys_format);
  tcase_add_test(tc, keys_cache_ttl_negative_and_eviction);
  tcase_add_test(tc, keys_revocation_racing_a_verification);
  tcase_add_test(tc, keys_bounded_and_owner_eviction);
  tcase_add_test(tc, revoke_jti_and_expiry);
  tcase_add_test(tc, revoke_user_not_before);
  tcase_add_test(tc, revoke_events_and_list);
  tcase_add_test(tc, revoke_overflow_fails_closed);
  tcase_add_test(tc, sync_handler_feeds_both);
  tcase_add_test(tc, scope_route_decision_table);
  tcase_add_test(tc, query_credentials_refused);
  tcase_add_test(tc, authn_api_keys_and_revoked_sessions);
  tcase_add_test(tc, account_keys);
  tcase_add_test(tc, rate_classes_cover_the_spec);
  suite_add_tcase(s, tc);
}
