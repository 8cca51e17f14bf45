/* Unit tests for the gateway's authentication and authorisation logic. */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_authn.h"
#include "gw_routes.h"
#include "lc/jwt.h"
#include "lc/util.h"

static uint8_t PK[32], SK[64];
static gw_authn_ctx CTX;
static const int64_t NOW = 1800000000;

static void setup(void) {
  ck_assert_int_eq(lc_global_init(), LC_OK);
  uint8_t seed[32];
  memset(seed, 7, sizeof(seed));
  ck_assert_int_eq(lc_jwt_keypair_from_seed(seed, PK, SK), LC_OK);
  memcpy(CTX.jwt_pk, PK, 32);
  CTX.issuer = "credit-saas";
  CTX.audience = "credit-saas-api";
  CTX.leeway_s = 30;
}

static char *make_token(const char *role, int64_t iat, int64_t exp, const char *aud) {
  lc_jwt_claims c;
  memset(&c, 0, sizeof(c));
  lc_strlcpy(c.iss, "credit-saas", sizeof(c.iss));
  lc_strlcpy(c.aud, aud, sizeof(c.aud));
  lc_strlcpy(c.sub, "0b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", sizeof(c.sub));
  lc_strlcpy(c.role, role, sizeof(c.role));
  lc_strlcpy(c.typ, "access", sizeof(c.typ));
  lc_uuid_v4(c.jti);
  c.iat = iat;
  c.exp = exp;
  char *tok = NULL;
  char err[LC_ERR_LEN];
  ck_assert_int_eq(lc_jwt_sign(SK, &c, &tok, err), LC_OK);
  return tok;
}

static int verify_header(const char *hdr, lc_identity *id) {
  char err[LC_ERR_LEN];
  return gw_authn_verify(&CTX, hdr, NOW, id, err);
}

START_TEST(bearer_ok) {
  char *tok = make_token("user", NOW - 10, NOW + 900, "credit-saas-api");
  char hdr[4200];
  snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
  lc_identity id;
  ck_assert_int_eq(verify_header(hdr, &id), LC_OK);
  ck_assert_str_eq(id.user_id, "0b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
  ck_assert_str_eq(id.role, "user");
  ck_assert_str_eq(id.scope, "full");
  free(tok);
}
END_TEST

START_TEST(rejects_missing_and_other_schemes) {
  lc_identity id;
  ck_assert_int_eq(verify_header(NULL, &id), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_header("", &id), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_header("Basic dXNlcjpwYXNz", &id), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_header("Bearer ", &id), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_header("Bearer a.b.c", &id), LC_ERR_UNAUTH);
}
END_TEST

START_TEST(rejects_tampered_expired_wrong_audience) {
  lc_identity id;
  char hdr[4200];
  char *tok = make_token("user", NOW - 10, NOW + 900, "credit-saas-api");
  size_t n = strlen(tok);
  tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A'; /* flip a signature character */
  snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
  ck_assert_int_eq(verify_header(hdr, &id), LC_ERR_UNAUTH);
  free(tok);

  tok = make_token("user", NOW - 2000, NOW - 100, "credit-saas-api");
  snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
  ck_assert_int_eq(verify_header(hdr, &id), LC_ERR_UNAUTH);
  free(tok);

  tok = make_token("user", NOW - 10, NOW + 900, "another-api");
  snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
  ck_assert_int_eq(verify_header(hdr, &id), LC_ERR_UNAUTH);
  free(tok);

  /* a token signed with SK must not verify under another public key */
  uint8_t seed[32], pk2[32], sk2[64];
  memset(seed, 9, sizeof(seed));
  ck_assert_int_eq(lc_jwt_keypair_from_seed(seed, pk2, sk2), LC_OK);
  tok = make_token("user", NOW - 10, NOW + 900, "credit-saas-api");
  snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
  ck_assert_int_eq(verify_header(hdr, &id), LC_OK);
  memcpy(CTX.jwt_pk, pk2, 32);
  ck_assert_int_eq(verify_header(hdr, &id), LC_ERR_UNAUTH);
  memcpy(CTX.jwt_pk, PK, 32);
  free(tok);
}
END_TEST

START_TEST(rejects_unknown_role) {
  lc_identity id;
  char hdr[4200];
  char *tok = make_token("root", NOW - 10, NOW + 900, "credit-saas-api");
  snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
  ck_assert_int_eq(verify_header(hdr, &id), LC_ERR_UNAUTH);
  free(tok);
}
END_TEST

START_TEST(route_table_authorisation) {
  size_t n = 0;
  const gw_route *t = gw_routes_table(&n);
  ck_assert_uint_gt(n, 0);
  lc_identity user = {.user_id = "0b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", .role = "user",
                      .scope = "full"};
  lc_identity admin = {.user_id = "0b8f4a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5c", .role = "admin",
                       .scope = "full"};
  lc_identity anon = {.user_id = "", .role = "anon"};
  int saw_admin = 0;
  for (size_t i = 0; i < n; i++) {
    ck_assert_msg(strncmp(t[i].path, "/v1/", 4) == 0, "route %s outside /v1", t[i].path);
    if (t[i].access == GW_ACCESS_ADMIN) {
      saw_admin = 1;
      ck_assert_int_eq(gw_routes_authorize(&t[i], &user), LC_ERR_FORBIDDEN);
      ck_assert_int_eq(gw_routes_authorize(&t[i], &admin), LC_OK);
    }
    if (t[i].keys == GW_KEYS_ONLY) /* machine endpoint: no sessions */
      ck_assert_int_eq(gw_routes_authorize(&t[i], &admin), LC_ERR_FORBIDDEN);
    if (t[i].access != GW_ACCESS_PUBLIC)
      ck_assert_int_eq(gw_routes_authorize(&t[i], &anon), LC_ERR_UNAUTH);
    /* only the auth routes and the signature-verified webhooks may be public */
    if (t[i].access == GW_ACCESS_PUBLIC)
      ck_assert_msg(strncmp(t[i].path, "/v1/auth/", 9) == 0 ||
                        strncmp(t[i].path, "/v1/payments/webhooks/", 22) == 0,
                    "public route %s", t[i].path);
    /* key minting is never reachable with a key */
    if (strcmp(t[i].path, "/v1/admin/api-keys") == 0 && strcmp(t[i].method, "POST") == 0)
      ck_assert_int_eq(t[i].keys, GW_KEYS_NONE);
    /* the refresh cookie only ever goes to auth-svc */
    if (t[i].pass_cookie)
      ck_assert_int_eq(t[i].up, GW_UP_AUTH);
  }
  ck_assert(saw_admin);
}
END_TEST

/* test_edge.c: rate limits, client IP, key cache, revocations, scopes. */
void add_edge_tests(Suite *s);

int main(void) {
  Suite *s = suite_create("gateway");
  add_edge_tests(s);
  TCase *tc = tcase_create("authn");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, bearer_ok);
  tcase_add_test(tc, rejects_missing_and_other_schemes);
  tcase_add_test(tc, rejects_tampered_expired_wrong_audience);
  tcase_add_test(tc, rejects_unknown_role);
  tcase_add_test(tc, route_table_authorisation);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
