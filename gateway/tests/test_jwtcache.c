/* Unit tests for gw_jwtcache and its use by gw_authn: a cached token still
 * honours expiry, the leeway and the revocation state exactly, a token
 * verified under other settings never hits, failures are never cached, and
 * the cache stays bounded. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_authn.h"
#include "gw_jwtcache.h"
#include "gw_revoke.h"
#include "lc/jwt.h"
#include "lc/util.h"

static uint8_t PK[32], SK[64];
static gw_authn_ctx CTX;
static gw_jwtcache JC;
static gw_revoke RV;
static const int64_t NOW = 1800000000;
static const char *SUB = "0b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";

static void setup(void) {
  ck_assert_int_eq(lc_global_init(), LC_OK);
  uint8_t seed[32];
  memset(seed, 7, sizeof(seed));
  ck_assert_int_eq(lc_jwt_keypair_from_seed(seed, PK, SK), LC_OK);
  memset(&CTX, 0, sizeof(CTX));
  memcpy(CTX.jwt_pk, PK, 32);
  CTX.issuer = "credit-saas";
  CTX.audience = "credit-saas-api";
  CTX.leeway_s = 30;
  ck_assert_int_eq(gw_jwtcache_init(&JC, 64), 0);
  ck_assert_int_eq(gw_revoke_init(&RV, 1000, 30, 3600), LC_OK);
  CTX.jwtc = &JC;
  CTX.rv = &RV;
}

static void teardown(void) {
  gw_jwtcache_free(&JC);
  gw_revoke_free(&RV);
}

static char *make_token(int64_t iat, int64_t exp, char jti[37]) {
  lc_jwt_claims c;
  memset(&c, 0, sizeof(c));
  lc_strlcpy(c.iss, "credit-saas", sizeof(c.iss));
  lc_strlcpy(c.aud, "credit-saas-api", sizeof(c.aud));
  lc_strlcpy(c.sub, SUB, sizeof(c.sub));
  lc_strlcpy(c.role, "user", sizeof(c.role));
  lc_strlcpy(c.typ, "access", sizeof(c.typ));
  lc_uuid_v4(c.jti);
  if (jti != NULL)
    memcpy(jti, c.jti, 37);
  c.iat = iat;
  c.exp = exp;
  char *tok = NULL;
  char err[LC_ERR_LEN];
  ck_assert_int_eq(lc_jwt_sign(SK, &c, &tok, err), LC_OK);
  return tok;
}

static int verify_at(const char *tok, int64_t now, gw_principal *p) {
  char hdr[4200], err[LC_ERR_LEN];
  snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
  return gw_authn_credentials(&CTX, hdr, NULL, now, now * 1000, p, err);
}

static uint64_t hits(void) {
  uint64_t h, m;
  gw_jwtcache_stats(&JC, &h, &m);
  return h;
}

START_TEST(second_use_hits_with_same_principal) {
  gw_principal a, b;
  char jti[37];
  char *tok = make_token(NOW - 10, NOW + 900, jti);
  ck_assert_int_eq(verify_at(tok, NOW, &a), LC_OK);
  ck_assert_uint_eq(hits(), 0);
  ck_assert_int_eq(verify_at(tok, NOW + 1, &b), LC_OK);
  ck_assert_uint_eq(hits(), 1);
  ck_assert_str_eq(b.id.user_id, SUB);
  ck_assert_str_eq(b.id.role, "user");
  ck_assert_str_eq(b.id.scope, "full");
  ck_assert_str_eq(b.jti, jti);
  ck_assert_int_eq(b.iat, a.iat);
  ck_assert_int_eq(b.exp, a.exp);
  ck_assert_int_eq(b.is_key, 0);
  free(tok);
}
END_TEST

START_TEST(expiry_and_leeway_checked_on_every_hit) {
  gw_principal p;
  char *tok = make_token(NOW - 10, NOW + 100, NULL);
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_OK);
  /* still inside exp + leeway (30 s): a hit */
  ck_assert_int_eq(verify_at(tok, NOW + 129, &p), LC_OK);
  ck_assert_uint_eq(hits(), 1);
  /* at exp + leeway: refused although cached */
  ck_assert_int_eq(verify_at(tok, NOW + 130, &p), LC_ERR_UNAUTH);
  /* and refused before iat - leeway (clock going back) */
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_OK);
  ck_assert_int_eq(verify_at(tok, NOW - 41, &p), LC_ERR_UNAUTH);
  free(tok);
}
END_TEST

START_TEST(revocation_honoured_after_caching) {
  gw_principal p;
  char jti[37];
  char *tok = make_token(NOW - 10, NOW + 900, jti);
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_OK);
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_OK);
  ck_assert_int_eq(gw_revoke_add_jti(&RV, jti, SUB, NOW + 900, NOW), LC_OK);
  ck_assert_int_eq(verify_at(tok, NOW + 1, &p), LC_ERR_UNAUTH);
  free(tok);

  /* user-wide not-before kills a cached token issued before it */
  tok = make_token(NOW - 10, NOW + 900, NULL);
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_OK);
  ck_assert_int_eq(gw_revoke_add_user(&RV, SUB, NOW - 5, NOW), LC_OK);
  ck_assert_int_eq(verify_at(tok, NOW + 1, &p), LC_ERR_UNAUTH);
  free(tok);
}
END_TEST

START_TEST(other_settings_never_hit) {
  gw_principal p;
  char *tok = make_token(NOW - 10, NOW + 900, NULL);
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_OK);
  uint8_t seed[32], pk2[32], sk2[64];
  memset(seed, 9, sizeof(seed));
  ck_assert_int_eq(lc_jwt_keypair_from_seed(seed, pk2, sk2), LC_OK);
  memcpy(CTX.jwt_pk, pk2, 32);
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_ERR_UNAUTH);
  memcpy(CTX.jwt_pk, PK, 32);
  CTX.audience = "another-api";
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_ERR_UNAUTH);
  CTX.audience = "credit-saas-api";
  CTX.issuer = "someone-else";
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_ERR_UNAUTH);
  CTX.issuer = "credit-saas";
  ck_assert_uint_eq(hits(), 0);
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_OK);
  ck_assert_uint_eq(hits(), 1);
  free(tok);
}
END_TEST

START_TEST(failures_not_cached_and_tamper_misses) {
  gw_principal p;
  char *tok = make_token(NOW - 10, NOW + 900, NULL);
  size_t n = strlen(tok);
  char *bad = lc_xstrdup(tok);
  bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
  ck_assert_int_eq(verify_at(bad, NOW, &p), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_at(bad, NOW, &p), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_at(tok, NOW, &p), LC_OK);
  ck_assert_int_eq(verify_at(bad, NOW, &p), LC_ERR_UNAUTH);
  ck_assert_uint_eq(hits(), 0);
  free(bad);
  free(tok);
}
END_TEST

START_TEST(bounded_with_eviction) {
  gw_jwtcache c;
  ck_assert_int_eq(gw_jwtcache_init(&c, 3), -1);
  ck_assert_int_eq(gw_jwtcache_init(&c, 0), -1);
  ck_assert_int_eq(gw_jwtcache_init(&c, 2), 0); /* one set of two ways */
  lc_jwt_claims cl, out;
  uint8_t h[3][GW_JWTC_HASH];
  memset(&cl, 0, sizeof(cl));
  lc_strlcpy(cl.sub, SUB, sizeof(cl.sub));
  lc_strlcpy(cl.role, "user", sizeof(cl.role));
  for (int i = 0; i < 3; i++) {
    char t[16];
    snprintf(t, sizeof(t), "tok%d", i);
    gw_jwtcache_key(&c, PK, "i", "a", t, h[i]);
    cl.iat = NOW;
    cl.exp = NOW + 100 + i; /* token 0 expires first */
    gw_jwtcache_put(&c, h[i], &cl);
  }
  ck_assert_int_eq(gw_jwtcache_get(&c, h[0], NOW, 0, &out), 0); /* evicted */
  ck_assert_int_eq(gw_jwtcache_get(&c, h[1], NOW, 0, &out), 1);
  ck_assert_int_eq(gw_jwtcache_get(&c, h[2], NOW, 0, &out), 1);
  ck_assert_int_eq(out.exp, NOW + 102);
  gw_jwtcache_free(&c);
  gw_jwtcache_free(&c); /* idempotent */
}
END_TEST

static void *hammer(void *arg) {
  char *tok = arg;
  gw_principal p;
  for (int i = 0; i < 2000; i++)
    if (verify_at(tok, NOW, &p) != LC_OK || strcmp(p.id.user_id, SUB) != 0)
      return (void *)1;
  return NULL;
}

START_TEST(concurrent_readers) {
  char *tok[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    tok[i] = make_token(NOW - 10, NOW + 900, NULL);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, tok[i]), 0);
  for (int i = 0; i < 4; i++) {
    void *r = NULL;
    pthread_join(th[i], &r);
    ck_assert_ptr_null(r);
    free(tok[i]);
  }
  /* One miss per token is the floor; a reader that races another thread's
   * put into the same 2-way set (64-entry test cache) may miss once more.
   * Correctness is the per-call check in hammer(); this bounds the misses. */
  ck_assert_uint_ge(hits(), 4 * 1999 - 4);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gateway-jwtcache");
  TCase *tc = tcase_create("jwtcache");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, second_use_hits_with_same_principal);
  tcase_add_test(tc, expiry_and_leeway_checked_on_every_hit);
  tcase_add_test(tc, revocation_honoured_after_caching);
  tcase_add_test(tc, other_settings_never_hit);
  tcase_add_test(tc, failures_not_cached_and_tamper_misses);
  tcase_add_test(tc, bounded_with_eviction);
  tcase_add_test(tc, concurrent_readers);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
