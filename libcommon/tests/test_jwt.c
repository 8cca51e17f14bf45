/* test_jwt.c - EdDSA JWT signing/verification and every rejection path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lc/jwt.h"
#include "lc/util.h"
#include "lc_tests.h"

static uint8_t g_pk[32], g_sk[64];
static const int64_t NOW = 1800000000;
#define ISS "credit-saas"
#define AUD "credit-saas-api"

static void setup(void) {
  uint8_t seed[32];
  memset(seed, 7, sizeof seed);
  ck_assert_int_eq(lc_jwt_keypair_from_seed(seed, g_pk, g_sk), LC_OK);
}

static void claims(lc_jwt_claims *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->iss, sizeof c->iss, "%s", ISS);
  snprintf(c->aud, sizeof c->aud, "%s", AUD);
  snprintf(c->sub, sizeof c->sub, "%s", "5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11");
  snprintf(c->role, sizeof c->role, "%s", "user");
  snprintf(c->typ, sizeof c->typ, "%s", "access");
  snprintf(c->jti, sizeof c->jti, "%s", "0f8c6a52-4a1b-4f3e-8d1e-6c0a5b9e2d33");
  c->iat = NOW - 10;
  c->exp = NOW + 900;
}

/* Builds b64(header).b64(payload).b64(sig) signed with g_sk. */
static char *forge(const char *header, const char *payload) {
  char *h = lc_b64url_encode((const uint8_t *)header, strlen(header));
  char *p = lc_b64url_encode((const uint8_t *)payload, strlen(payload));
  size_t n = strlen(h) + strlen(p) + 200;
  char *tok = malloc(n), *s;
  uint8_t sig[64];
  snprintf(tok, n, "%s.%s", h, p);
  crypto_sign_detached(sig, NULL, (const uint8_t *)tok, strlen(tok), g_sk);
  s = lc_b64url_encode(sig, 64);
  snprintf(tok, n, "%s.%s.%s", h, p, s);
  free(h);
  free(p);
  free(s);
  return tok;
}

static const char *GOOD_PAYLOAD =
    "{\"iss\":\"credit-saas\",\"aud\":\"credit-saas-api\","
    "\"sub\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\",\"role\":\"user\",\"typ\":\"access\","
    "\"jti\":\"0f8c6a52-4a1b-4f3e-8d1e-6c0a5b9e2d33\",\"iat\":1799999990,\"exp\":1800000900}";

static int verify(const char *tok, char *err) {
  lc_jwt_claims out;
  return lc_jwt_verify(tok, g_pk, ISS, AUD, NOW, 30, &out, err);
}

START_TEST(sign_verify_ok) {
  lc_jwt_claims c, out;
  char *tok = NULL, err[LC_ERR_LEN] = "", *hdr;
  uint8_t *raw;
  size_t rl;
  claims(&c);
  ck_assert_int_eq(lc_jwt_sign(g_sk, &c, &tok, err), LC_OK);
  ck_assert_int_eq(lc_jwt_verify(tok, g_pk, ISS, AUD, NOW, 30, &out, err), LC_OK);
  ck_assert_str_eq(out.sub, c.sub);
  ck_assert_str_eq(out.role, "user");
  ck_assert_str_eq(out.jti, c.jti);
  ck_assert(out.iat == c.iat && out.exp == c.exp);
  /* compact header exactly */
  hdr = strndup(tok, (size_t)(strchr(tok, '.') - tok));
  ck_assert_int_eq(lc_b64url_decode(hdr, strlen(hdr), &raw, &rl), LC_OK);
  ck_assert_uint_eq(rl, 27);
  ck_assert(memcmp(raw, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", 27) == 0);
  free(raw);
  free(hdr);
  /* forged with the same key and a reordered header is still fine */
  free(tok);
  tok = forge("{\"typ\":\"JWT\",\"alg\":\"EdDSA\"}", GOOD_PAYLOAD);
  ck_assert_int_eq(verify(tok, err), LC_OK);
  free(tok);
}
END_TEST

START_TEST(tampered_signature) {
  lc_jwt_claims c;
  char *tok = NULL, err[LC_ERR_LEN] = "";
  size_t n;
  claims(&c);
  ck_assert_int_eq(lc_jwt_sign(g_sk, &c, &tok, err), LC_OK);
  n = strlen(tok);
  tok[n - 5] = tok[n - 5] == 'A' ? 'B' : 'A';
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  free(tok);
  /* other key */
  {
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    ck_assert_int_eq(lc_jwt_sign(sk2, &c, &tok, err), LC_OK);
    ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
    free(tok);
  }
}
END_TEST

START_TEST(tampered_payload) {
  lc_jwt_claims c;
  char *tok = NULL, err[LC_ERR_LEN] = "", *p2, *out;
  char *d1, *d2;
  size_t n;
  claims(&c);
  ck_assert_int_eq(lc_jwt_sign(g_sk, &c, &tok, err), LC_OK);
  /* swap the payload for an admin one, keep header and signature */
  p2 = lc_b64url_encode((const uint8_t *)"{\"role\":\"admin\"}", 16);
  d1 = strchr(tok, '.');
  d2 = strchr(d1 + 1, '.');
  n = strlen(tok) + strlen(p2) + 1;
  out = malloc(n);
  snprintf(out, n, "%.*s.%s%s", (int)(d1 - tok), tok, p2, d2);
  ck_assert_int_eq(verify(out, err), LC_ERR_UNAUTH);
  ck_assert_str_eq(err, "jwt: bad signature");
  free(out);
  free(p2);
  free(tok);
}
END_TEST

START_TEST(alg_none_and_hs256) {
  char err[LC_ERR_LEN] = "", *tok;
  char *h = lc_b64url_encode((const uint8_t *)"{\"alg\":\"none\",\"typ\":\"JWT\"}", 26);
  char *p = lc_b64url_encode((const uint8_t *)GOOD_PAYLOAD, strlen(GOOD_PAYLOAD));
  size_t n = strlen(h) + strlen(p) + 3;
  tok = malloc(n);
  snprintf(tok, n, "%s.%s.", h, p);
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  free(tok);
  free(h);
  free(p);
  tok = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD_PAYLOAD);
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  ck_assert_str_eq(err, "jwt: algorithm not allowed");
  free(tok);
  tok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", GOOD_PAYLOAD);
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  free(tok);
  tok = forge("{\"alg\":\"eddsa\",\"typ\":\"JWT\"}", GOOD_PAYLOAD);
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  free(tok);
}
END_TEST

START_TEST(extra_header_keys) {
  static const char *const hdrs[] = {
      "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"1\"}",
      "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"jwk\":{\"kty\":\"OKP\"}}",
      "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"jku\":\"http://x\"}",
      "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"crit\":[\"b64\"]}",
      "{\"alg\":\"EdDSA\"}",
      "{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\",\"typ\":\"JWT\"}",
      "[\"EdDSA\"]",
  };
  char err[LC_ERR_LEN] = "";
  size_t i;
  for (i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
    char *tok = forge(hdrs[i], GOOD_PAYLOAD);
    ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
    free(tok);
  }
}
END_TEST

START_TEST(wrong_typ_header_and_claim) {
  lc_jwt_claims c;
  char err[LC_ERR_LEN] = "", *tok = forge("{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\"}", GOOD_PAYLOAD);
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  free(tok);
  claims(&c);
  snprintf(c.typ, sizeof c.typ, "refresh");
  ck_assert_int_eq(lc_jwt_sign(g_sk, &c, &tok, err), LC_OK);
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  ck_assert_str_eq(err, "jwt: not an access token");
  free(tok);
}
END_TEST

START_TEST(expired_and_future) {
  lc_jwt_claims c, out;
  char err[LC_ERR_LEN] = "", *tok;
  claims(&c);
  c.exp = NOW - 31;
  ck_assert_int_eq(lc_jwt_sign(g_sk, &c, &tok, err), LC_OK);
  ck_assert_int_eq(lc_jwt_verify(tok, g_pk, ISS, AUD, NOW, 30, &out, err), LC_ERR_UNAUTH);
  ck_assert_str_eq(err, "jwt: expired");
  /* within leeway */
  ck_assert_int_eq(lc_jwt_verify(tok, g_pk, ISS, AUD, NOW - 2, 30, &out, err), LC_OK);
  free(tok);
  claims(&c);
  c.iat = NOW + 3600;
  c.exp = NOW + 7200;
  ck_assert_int_eq(lc_jwt_sign(g_sk, &c, &tok, err), LC_OK);
  ck_assert_int_eq(lc_jwt_verify(tok, g_pk, ISS, AUD, NOW, 30, &out, err), LC_ERR_UNAUTH);
  free(tok);
}
END_TEST

START_TEST(wrong_audience_issuer) {
  lc_jwt_claims c, out;
  char err[LC_ERR_LEN] = "", *tok;
  claims(&c);
  ck_assert_int_eq(lc_jwt_sign(g_sk, &c, &tok, err), LC_OK);
  ck_assert_int_eq(lc_jwt_verify(tok, g_pk, ISS, "other-api", NOW, 30, &out, err),
                   LC_ERR_UNAUTH);
  ck_assert_str_eq(err, "jwt: wrong audience");
  ck_assert_int_eq(lc_jwt_verify(tok, g_pk, "evil", AUD, NOW, 30, &out, err), LC_ERR_UNAUTH);
  ck_assert_str_eq(err, "jwt: wrong issuer");
  free(tok);
}
END_TEST

START_TEST(claim_types_strict) {
  char err[LC_ERR_LEN] = "", *tok;
  tok = forge("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}",
              "{\"iss\":\"credit-saas\",\"aud\":\"credit-saas-api\","
              "\"sub\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\",\"role\":\"user\",\"typ\":\"access\","
              "\"jti\":\"0f8c6a52-4a1b-4f3e-8d1e-6c0a5b9e2d33\",\"iat\":1799999990,"
              "\"exp\":\"1800000900\"}");
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  free(tok);
  tok = forge("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}",
              "{\"iss\":\"credit-saas\",\"aud\":[\"credit-saas-api\"],"
              "\"sub\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\",\"role\":\"user\",\"typ\":\"access\","
              "\"jti\":\"0f8c6a52-4a1b-4f3e-8d1e-6c0a5b9e2d33\",\"iat\":1799999990,"
              "\"exp\":1800000900}");
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  free(tok);
  tok = forge("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}",
              "{\"iss\":\"credit-saas\",\"aud\":\"credit-saas-api\","
              "\"sub\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\",\"role\":\"user\",\"typ\":\"access\","
              "\"iat\":1799999990,\"exp\":1800000900}");
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  free(tok);
  tok = forge("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}",
              "{\"iss\":\"credit-saas\",\"aud\":\"credit-saas-api\","
              "\"sub\":\"5b1e9c1e-0c1a-4c1e-9a43-3f2a7c1d0e11\",\"role\":\"user\",\"typ\":\"access\","
              "\"jti\":\"0f8c6a52-4a1b-4f3e-8d1e-6c0a5b9e2d33\",\"iat\":1799999990.5,"
              "\"exp\":1800000900}");
  ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
  free(tok);
}
END_TEST

START_TEST(garbage_and_too_long) {
  char err[LC_ERR_LEN] = "", *big;
  static const char *const bad[] = {"",     "abc",   "a.b",   "a.b.c.d", "...",
                                    "@@.@@.@@", "eyJ.eyJ.", ".eyJhbGciOiJFZERTQSJ9."};
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_int_eq(verify(bad[i], err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify(NULL, err), LC_ERR_UNAUTH);
  big = malloc(5000);
  memset(big, 'A', 4999);
  big[4999] = '\0';
  big[100] = '.';
  big[200] = '.';
  ck_assert_int_eq(verify(big, err), LC_ERR_UNAUTH);
  ck_assert_str_eq(err, "jwt: token too long");
  free(big);
  {
    /* a validly signed token just over 4096 bytes is refused by size */
    char pay[4200];
    char *tok;
    snprintf(pay, sizeof pay, "{\"pad\":\"%03000d\",%s", 0, GOOD_PAYLOAD + 1);
    tok = forge("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", pay);
    ck_assert_uint_gt(strlen(tok), 4096);
    ck_assert_int_eq(verify(tok, err), LC_ERR_UNAUTH);
    ck_assert_str_eq(err, "jwt: token too long");
    free(tok);
  }
}
END_TEST

Suite *jwt_suite(void) {
  Suite *s = suite_create("jwt");
  TCase *tc = tcase_create("eddsa");
  tcase_set_timeout(tc, 10);
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, sign_verify_ok);
  tcase_add_test(tc, tampered_signature);
  tcase_add_test(tc, tampered_payload);
  tcase_add_test(tc, alg_none_and_hs256);
  tcase_add_test(tc, extra_header_keys);
  tcase_add_test(tc, wrong_typ_header_and_claim);
  tcase_add_test(tc, expired_and_future);
  tcase_add_test(tc, wrong_audience_issuer);
  tcase_add_test(tc, claim_types_strict);
  tcase_add_test(tc, garbage_and_too_long);
  suite_add_tcase(s, tc);
  return s;
}
