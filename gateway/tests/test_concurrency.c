/* Concurrency tests of the gateway's shared in-memory state: rate-limit
 * buckets, the API-key cache (with evictions racing verifications) and the
 * revocation list (events racing checks and purges), and libcommon's iauth
 * replay cache that every daemon applies to the gateway's signed requests.
 * Each test hammers one
 * structure from several threads and then checks the totals; under
 * ThreadSanitizer (tests/checks/tsan.sh) they prove the locking. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_keys.h"
#include "gw_ratelimit.h"
#include "gw_revoke.h"
#include "lc/iauth.h"
#include "lc/util.h"

#define NTHREADS 4

/* ---- rate limits: exactly n tokens granted per bucket, whatever the threads */

static gw_rl g_rl;
static atomic_int g_granted;

static void *rl_main(void *arg) {
  (void)arg;
  gw_rl_limit lim = {100, 3600000}; /* 100 per hour: no refill during the test */
  for (int i = 0; i < 2000; i++) {
    char key[16];
    snprintf(key, sizeof(key), "k%d", i % 8);
    int64_t retry = 0;
    if (gw_rl_take(&g_rl, "login:ip", key, &lim, 1000, &retry) == LC_OK)
      atomic_fetch_add(&g_granted, 1);
    else
      ck_assert_int_ge(retry, 1);
    (void)gw_rl_peek(&g_rl, "login:ip", key, &lim, 1000, &retry);
  }
  return NULL;
}

START_TEST(rate_limit_grants_exactly_n) {
  ck_assert_int_eq(gw_rl_init(&g_rl, 1024), LC_OK);
  atomic_store(&g_granted, 0);
  pthread_t th[NTHREADS];
  for (int t = 0; t < NTHREADS; t++)
    ck_assert_int_eq(pthread_create(&th[t], NULL, rl_main, NULL), 0);
  for (int t = 0; t < NTHREADS; t++)
    pthread_join(th[t], NULL);
  ck_assert_int_eq(atomic_load(&g_granted), 8 * 100);
  ck_assert_uint_eq(gw_rl_count(&g_rl), 8);
  gw_rl_free(&g_rl);
}
END_TEST

/* ---- key cache: lookups, negative answers and evictions from several threads */

static atomic_int g_fetches;
static gw_keycache g_kc;

static int fake_fetch(void *ud, const char *key, gw_key_info *info, char err[LC_ERR_LEN]) {
  (void)ud;
  atomic_fetch_add(&g_fetches, 1);
  if (key[3] == 'x') /* "sk_x..." unknown */
    return lc_err_set(err, LC_ERR_UNAUTH, "unknown key");
  memset(info, 0, sizeof(*info));
  snprintf(info->key_id, sizeof(info->key_id), "00000000-0000-4000-8000-0000000000%c%c", key[3],
           key[4]);
  lc_strlcpy(info->owner_id, "11111111-1111-4111-8111-111111111111", sizeof(info->owner_id));
  lc_strlcpy(info->owner_role, "user", sizeof(info->owner_role));
  lc_strlcpy(info->scope, "read", sizeof(info->scope));
  return LC_OK;
}

/* A well-formed key "sk_<8>_<43>" whose 4th/5th characters pick the answer. */
static void make_key(char out[GW_KEY_LEN + 1], char a, char b) {
  memset(out, 'A', GW_KEY_LEN);
  memset(out, 'a', 11);
  memcpy(out, "sk_", 3);
  out[3] = a;
  out[4] = b;
  out[11] = '_';
  out[GW_KEY_LEN] = '\0';
}

static void *kc_main(void *arg) {
  long id = (long)arg;
  char err[LC_ERR_LEN];
  for (int i = 0; i < 3000; i++) {
    char key[GW_KEY_LEN + 1];
    gw_key_info info;
    int cached = 0;
    int which = (int)((i + id) % 6);
    make_key(key, which == 5 ? 'x' : (char)('0' + which), '1');
    int rc = gw_keys_resolve(&g_kc, key, lc_mono_ms(), &info, &cached, err);
    if (which == 5)
      ck_assert_int_eq(rc, LC_ERR_UNAUTH);
    else
      ck_assert_int_eq(rc, LC_OK);
    if (i % 250 == 0 && id == 0)
      gw_keys_evict(&g_kc, "00000000-0000-4000-8000-000000000099", NULL); /* revoked, never used */
    if (i % 400 == 0 && id == 1)
      gw_keys_evict(&g_kc, NULL, "11111111-1111-4111-8111-111111111111");
  }
  return NULL;
}

START_TEST(key_cache_concurrent_resolve_and_evict) {
  char probe[GW_KEY_LEN + 1];
  make_key(probe, 'x', '1');
  ck_assert(gw_keys_well_formed(probe));
  atomic_store(&g_fetches, 0);
  ck_assert_int_eq(gw_keys_init(&g_kc, 64, 60000, 60000, fake_fetch, NULL), LC_OK);
  pthread_t th[NTHREADS];
  for (long t = 0; t < NTHREADS; t++)
    ck_assert_int_eq(pthread_create(&th[t], NULL, kc_main, (void *)t), 0);
  for (int t = 0; t < NTHREADS; t++)
    pthread_join(th[t], NULL);
  /* the cache answered most lookups */
  ck_assert_int_lt(atomic_load(&g_fetches), NTHREADS * 3000 / 4);
  ck_assert_uint_le(gw_keys_count(&g_kc), 64);
  gw_keys_free(&g_kc);
}
END_TEST

/* ---- revocation list: adds, checks and purges from several threads */

static gw_revoke g_rv;

static void uuid_n(char out[37], int n) {
  snprintf(out, 37, "%08x-0000-4000-8000-000000000000", (unsigned)n);
}

static void *rv_main(void *arg) {
  long id = (long)arg;
  char jti[37], user[37];
  for (int i = 0; i < 2000; i++) {
    int n = (int)(id * 100000 + i);
    uuid_n(jti, n);
    uuid_n(user, 900000000 + (int)id);
    ck_assert_int_eq(gw_revoke_add_jti(&g_rv, jti, user, 2000000000, 1000), LC_OK);
    ck_assert_int_eq(gw_revoke_check(&g_rv, jti, user, 999, 1000), 1);
    if (i % 100 == 0) {
      ck_assert_int_eq(gw_revoke_add_user(&g_rv, user, 500, 1000), LC_OK);
      gw_revoke_purge(&g_rv, 1000);
      size_t nj = 0, nu = 0;
      gw_revoke_counts(&g_rv, &nj, &nu);
    }
  }
  return NULL;
}

START_TEST(revoke_list_concurrent_add_check_purge) {
  ck_assert_int_eq(gw_revoke_init(&g_rv, 100000, 30, 3600), LC_OK);
  pthread_t th[NTHREADS];
  for (long t = 0; t < NTHREADS; t++)
    ck_assert_int_eq(pthread_create(&th[t], NULL, rv_main, (void *)t), 0);
  for (int t = 0; t < NTHREADS; t++)
    pthread_join(th[t], NULL);
  size_t nj = 0, nu = 0;
  gw_revoke_counts(&g_rv, &nj, &nu);
  ck_assert_uint_eq(nj, NTHREADS * 2000);
  ck_assert_uint_eq(nu, NTHREADS);
  gw_revoke_free(&g_rv);
}
END_TEST

/* ---- lc_iauth replay cache (every daemon's, behind the gateway's signed
 * requests): the same nonces offered by several threads are accepted once */

static lc_iauth_replay *g_replay;
static atomic_int g_accepted;

static void *replay_main(void *arg) {
  (void)arg;
  for (int i = 0; i < 5000; i++) {
    uint8_t nonce[16] = {0};
    memcpy(nonce, &i, sizeof(i));
    int rc = lc_iauth_replay_check(g_replay, nonce, 2000 + i / 1000, 1000 + i / 1000);
    if (rc == LC_OK)
      atomic_fetch_add(&g_accepted, 1);
    else
      ck_assert_int_eq(rc, LC_ERR_CONFLICT);
    if (i % 500 == 0)
      (void)lc_iauth_replay_count(g_replay);
  }
  return NULL;
}

START_TEST(replay_cache_accepts_each_nonce_once) {
  g_replay = lc_iauth_replay_new(100000);
  ck_assert_ptr_nonnull(g_replay);
  atomic_store(&g_accepted, 0);
  pthread_t th[NTHREADS];
  for (int t = 0; t < NTHREADS; t++)
    ck_assert_int_eq(pthread_create(&th[t], NULL, replay_main, NULL), 0);
  for (int t = 0; t < NTHREADS; t++)
    pthread_join(th[t], NULL);
  ck_assert_int_eq(atomic_load(&g_accepted), 5000);
  ck_assert_uint_eq(lc_iauth_replay_count(g_replay), 5000);
  lc_iauth_replay_free(g_replay);
}
END_TEST

int main(void) {
  if (lc_global_init() != LC_OK)
    return EXIT_FAILURE;
  Suite *s = suite_create("gateway-concurrency");
  TCase *tc = tcase_create("shared state");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, rate_limit_grants_exactly_n);
  tcase_add_test(tc, key_cache_concurrent_resolve_and_evict);
  tcase_add_test(tc, revoke_list_concurrent_add_check_purge);
  tcase_add_test(tc, replay_cache_accepts_each_nonce_once);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  lc_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
