/* test_oauth.c - Check unit tests of the OAuth building blocks (no
 * services): PKCE S256 (RFC 7636 appendix B known answer), random values,
 * state/cookie binding, provider URL rules, query encoding, GitHub email
 * choice, JWKS refetch pacing, and every id_token check against tokens
 * signed here with a fresh RSA key (GnuTLS). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <sodium.h>

#include "lc/util.h"
#include "oauth_crypto.h"
#include "oauth_provider.h"

#define ISS "http://127.0.0.1:23300"
#define CID "client-abc"
#define NONCE "n-0S6_WzA2Mj-nonce-value-1234567890abcdefg"
#define NOW 1700000000

static gnutls_privkey_t g_key;      /* 2048-bit signing key */
static gnutls_privkey_t g_small;    /* 1024-bit key (must be refused) */
static json_t *g_jwks;              /* JWKS with kid "k1" (g_key) and "small" (g_small) */

static json_t *jwk_of(gnutls_privkey_t k, const char *kid) {
  gnutls_datum_t m, e;
  char *n64, *e64;
  json_t *j;

  ck_assert_int_ge(gnutls_privkey_export_rsa_raw(k, &m, &e, NULL, NULL, NULL, NULL, NULL, NULL),
                   0);
  /* strip a leading zero byte as real JWKS do */
  n64 = m.data[0] == 0 ? lc_b64url_encode(m.data + 1, m.size - 1)
                       : lc_b64url_encode(m.data, m.size);
  e64 = lc_b64url_encode(e.data, e.size);
  j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "kid", kid, "use", "sig", "alg",
                "RS256", "n", n64, "e", e64);
  free(n64);
  free(e64);
  gnutls_free(m.data);
  gnutls_free(e.data);
  return j;
}

static void setup_keys(void) {
  json_t *keys;
  ck_assert_int_ge(gnutls_privkey_init(&g_key), 0);
  ck_assert_int_ge(gnutls_privkey_generate(g_key, GNUTLS_PK_RSA, 2048, 0), 0);
  ck_assert_int_ge(gnutls_privkey_init(&g_small), 0);
  ck_assert_int_ge(gnutls_privkey_generate(g_small, GNUTLS_PK_RSA, 1024, 0), 0);
  keys = json_array();
  json_array_append_new(keys, jwk_of(g_key, "k1"));
  json_array_append_new(keys, jwk_of(g_small, "small"));
  g_jwks = json_pack("{s:o}", "keys", keys);
}

static void teardown_keys(void) {
  gnutls_privkey_deinit(g_key);
  gnutls_privkey_deinit(g_small);
  json_decref(g_jwks);
}

static char *b64_json(json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  char *out = lc_b64url_encode((const uint8_t *)s, strlen(s));
  free(s);
  return out;
}

/* Signs header.claims with key (RS256); steals hdr and claims. New string. */
static char *make_jwt(json_t *hdr, json_t *claims, gnutls_privkey_t key) {
  char *h = b64_json(hdr), *c = b64_json(claims), *s64, *out;
  size_t n = strlen(h) + strlen(c) + 2;
  char *input = malloc(n);
  gnutls_datum_t data, sig;

  snprintf(input, n, "%s.%s", h, c);
  data.data = (unsigned char *)input;
  data.size = (unsigned int)strlen(input);
  ck_assert_int_ge(gnutls_privkey_sign_data(key, GNUTLS_DIG_SHA256, 0, &data, &sig), 0);
  s64 = lc_b64url_encode(sig.data, sig.size);
  n = strlen(input) + strlen(s64) + 2;
  out = malloc(n);
  snprintf(out, n, "%s.%s", input, s64);
  gnutls_free(sig.data);
  free(h);
  free(c);
  free(s64);
  free(input);
  json_decref(hdr);
  json_decref(claims);
  return out;
}

static json_t *std_header(void) {
  return json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "kid", "k1");
}

static json_t *std_claims(void) {
  return json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:b}", "iss", ISS, "aud", CID, "sub",
                   "google-sub-1", "iat", (json_int_t)(NOW - 10), "exp",
                   (json_int_t)(NOW + 3600), "nonce", NONCE, "email", "Alice@Example.com",
                   "email_verified", 1);
}

static int verify(const char *jwt, oauth_idt_claims *c, char *err) {
  oauth_idt_expect x = {ISS, CID, NONCE};
  return oauth_idtoken_verify(jwt, g_jwks, &x, NOW, c, err);
}

/* Verifies the standard token with one claim replaced (value stolen). */
static int verify_with_claim(const char *name, json_t *value, char *err) {
  json_t *c = std_claims();
  oauth_idt_claims out;
  char *jwt;
  int rc;

  if (value == NULL)
    json_object_del(c, name);
  else
    json_object_set_new(c, name, value);
  jwt = make_jwt(std_header(), c, g_key);
  rc = verify(jwt, &out, err);
  free(jwt);
  return rc;
}

/* RFC 7636 appendix B. (The value E9Melhoa2OwvFrEMTJguCHoeS2c4d4mB2Gn4o4ywY4
 * quoted in our brief is 42 characters, not a SHA-256 in base64url: the RFC
 * text and an independent SHA-256 give the value below.) */
START_TEST(pkce_rfc7636_appendix_b) {
  char ch[OAUTH_RAND_LEN + 1];
  ck_assert_int_eq(oauth_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", ch), LC_OK);
  ck_assert_str_eq(ch, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}
END_TEST

START_TEST(pkce_verifier_rules) {
  char ch[OAUTH_RAND_LEN + 1];
  char longv[130];
  ck_assert_int_eq(oauth_pkce_challenge("short", ch), LC_ERR_PARAM);
  ck_assert_int_eq(oauth_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX+", ch),
                   LC_ERR_PARAM);
  memset(longv, 'a', 129);
  longv[129] = '\0';
  ck_assert_int_eq(oauth_pkce_challenge(longv, ch), LC_ERR_PARAM);
  longv[128] = '\0';
  ck_assert_int_eq(oauth_pkce_challenge(longv, ch), LC_OK);
  ck_assert_int_eq(oauth_pkce_challenge(NULL, ch), LC_ERR_PARAM);
}
END_TEST

START_TEST(random_values) {
  char a[OAUTH_RAND_LEN + 1], b[OAUTH_RAND_LEN + 1], ch[OAUTH_RAND_LEN + 1];
  oauth_random_b64(a);
  oauth_random_b64(b);
  ck_assert_uint_eq(strlen(a), 43);
  ck_assert(oauth_is_rand_b64(a));
  ck_assert_str_ne(a, b);
  /* a random value is a valid PKCE verifier (43 chars, 256 bits) */
  ck_assert_int_eq(oauth_pkce_challenge(a, ch), LC_OK);
  ck_assert(!oauth_is_rand_b64("abc"));
  ck_assert(!oauth_is_rand_b64(NULL));
  b[10] = '=';
  ck_assert(!oauth_is_rand_b64(b));
}
END_TEST

START_TEST(state_cookie_binding) {
  char cookie[OAUTH_RAND_LEN + 1], other[OAUTH_RAND_LEN + 1], h[65], h2[65];
  oauth_random_b64(cookie);
  oauth_random_b64(other);
  oauth_hash_hex(cookie, h);
  ck_assert_uint_eq(strlen(h), 64);
  ck_assert(oauth_binding_ok(h, cookie));
  ck_assert(!oauth_binding_ok(h, other));
  ck_assert(!oauth_binding_ok(h, NULL));
  ck_assert(!oauth_binding_ok(h, ""));
  ck_assert(!oauth_binding_ok(h, h)); /* the stored hash itself is not the cookie */
  ck_assert(!oauth_binding_ok("", cookie));
  oauth_hash_hex(other, h2);
  ck_assert(oauth_hash_eq(h, h));
  ck_assert(!oauth_hash_eq(h, h2));
  /* SHA-256("abc") */
  oauth_hash_hex("abc", h);
  ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(url_rules) {
  ck_assert(oauth_url_allowed("https://accounts.google.com/.well-known/openid-configuration"));
  ck_assert(oauth_url_allowed("https://api.github.com"));
  ck_assert(oauth_url_allowed("http://127.0.0.1:23300/authorize"));
  ck_assert(oauth_url_allowed("http://127.0.0.1"));
  ck_assert(!oauth_url_allowed("http://example.com/token"));
  ck_assert(!oauth_url_allowed("http://127.0.0.1.evil.com/token"));
  ck_assert(!oauth_url_allowed("http://localhost:23300/"));
  ck_assert(!oauth_url_allowed("https://"));
  ck_assert(!oauth_url_allowed("https://user@evil.com/"));
  ck_assert(!oauth_url_allowed("https://a.com/ x"));
  ck_assert(!oauth_url_allowed("ftp://a.com/"));
  ck_assert(!oauth_url_allowed(NULL));
}
END_TEST

START_TEST(query_encoding) {
  char buf[128] = "https://p/authorize?";
  ck_assert_int_eq(oauth_query_add(buf, sizeof(buf), "scope", "openid email"), LC_OK);
  ck_assert_int_eq(oauth_query_add(buf, sizeof(buf), "redirect_uri", "https://a/b?c=d&e"), LC_OK);
  ck_assert_str_eq(buf, "https://p/authorize?scope=openid%20email&redirect_uri=https%3A%2F%2Fa%2F"
                        "b%3Fc%3Dd%26e");
  char tiny[12] = "";
  ck_assert_int_eq(oauth_query_add(tiny, sizeof(tiny), "abcdef", "ghijk"), LC_ERR_TOO_LARGE);
}
END_TEST

START_TEST(github_primary_email) {
  char email[OAUTH_EMAIL_MAX + 1];
  int v = -1;
  ck_assert_int_eq(
      oauth_github_primary_email(
          "[{\"email\":\"old@x.com\",\"primary\":false,\"verified\":true,\"visibility\":null},"
          "{\"email\":\"me@x.com\",\"primary\":true,\"verified\":true,\"visibility\":\"public\"}]",
          email, &v),
      LC_OK);
  ck_assert_str_eq(email, "me@x.com");
  ck_assert_int_eq(v, 1);
  ck_assert_int_eq(
      oauth_github_primary_email(
          "[{\"email\":\"me@x.com\",\"primary\":true,\"verified\":false,\"visibility\":null}]",
          email, &v),
      LC_ERR_NOTFOUND);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(oauth_github_primary_email("{\"message\":\"Bad credentials\"}", email, &v),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(oauth_github_primary_email("[]", email, &v), LC_ERR_NOTFOUND);
}
END_TEST

START_TEST(jwks_refetch_pacing) {
  ck_assert(oauth_jwks_may_refetch(0, 5));
  ck_assert(!oauth_jwks_may_refetch(1000, 1000 + OAUTH_JWKS_REFETCH_MS - 1));
  ck_assert(oauth_jwks_may_refetch(1000, 1000 + OAUTH_JWKS_REFETCH_MS));
}
END_TEST

START_TEST(idt_valid) {
  char err[LC_ERR_LEN] = "";
  oauth_idt_claims c;
  char *jwt = make_jwt(std_header(), std_claims(), g_key);
  ck_assert_msg(verify(jwt, &c, err) == LC_OK, "%s", err);
  ck_assert_str_eq(c.sub, "google-sub-1");
  ck_assert_str_eq(c.email, "Alice@Example.com");
  ck_assert_int_eq(c.email_verified, 1);
  free(jwt);
}
END_TEST

START_TEST(idt_email_unverified_reported) {
  char err[LC_ERR_LEN] = "";
  oauth_idt_claims c;
  json_t *cl = std_claims();
  char *jwt;
  json_object_set_new(cl, "email_verified", json_false());
  jwt = make_jwt(std_header(), cl, g_key);
  ck_assert_int_eq(verify(jwt, &c, err), LC_OK);
  ck_assert_int_eq(c.email_verified, 0);
  free(jwt);
}
END_TEST

START_TEST(idt_wrong_alg) {
  char err[LC_ERR_LEN] = "";
  oauth_idt_claims c;
  const char *algs[] = {"HS256", "none", "RS512", "PS256", "ES256", "rs256"};
  for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
    json_t *h = std_header();
    json_object_set_new(h, "alg", json_string(algs[i]));
    char *jwt = make_jwt(h, std_claims(), g_key); /* RSA signature, lying header */
    ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_UNAUTH);
    ck_assert_ptr_nonnull(strstr(err, "alg"));
    free(jwt);
  }
}
END_TEST

START_TEST(idt_alg_none_unsigned) {
  char err[LC_ERR_LEN] = "";
  oauth_idt_claims c;
  json_t *h = json_pack("{s:s,s:s}", "alg", "none", "kid", "k1");
  char *hb = b64_json(h), *cb;
  json_t *cl = std_claims();
  char jwt[4096];
  cb = b64_json(cl);
  snprintf(jwt, sizeof(jwt), "%s.%s.", hb, cb);
  ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_UNAUTH);
  free(hb);
  free(cb);
  json_decref(h);
  json_decref(cl);
}
END_TEST

START_TEST(idt_hs256_confusion) {
  /* HS256 "signed" with the public modulus as the HMAC key is refused. */
  char err[LC_ERR_LEN] = "";
  oauth_idt_claims c;
  json_t *h = std_header(), *cl = std_claims();
  char *hb, *cb, *sb, input[4096], jwt[4200];
  const char *n64 = json_string_value(json_object_get(json_array_get(json_object_get(g_jwks, "keys"), 0), "n"));
  uint8_t mac[32];
  json_object_set_new(h, "alg", json_string("HS256"));
  hb = b64_json(h);
  cb = b64_json(cl);
  snprintf(input, sizeof(input), "%s.%s", hb, cb);
  lc_hmac_sha256((const uint8_t *)n64, strlen(n64), input, strlen(input), mac);
  sb = lc_b64url_encode(mac, sizeof(mac));
  snprintf(jwt, sizeof(jwt), "%s.%s", input, sb);
  ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_UNAUTH);
  free(hb);
  free(cb);
  free(sb);
  json_decref(h);
  json_decref(cl);
}
END_TEST

START_TEST(idt_wrong_iss) {
  char err[LC_ERR_LEN] = "";
  ck_assert_int_eq(verify_with_claim("iss", json_string("https://evil.example"), err),
                   LC_ERR_UNAUTH);
  ck_assert_ptr_nonnull(strstr(err, "iss"));
  ck_assert_int_eq(verify_with_claim("iss", NULL, err), LC_ERR_UNAUTH);
}
END_TEST

START_TEST(idt_wrong_aud) {
  char err[LC_ERR_LEN] = "";
  ck_assert_int_eq(verify_with_claim("aud", json_string("other-client"), err), LC_ERR_UNAUTH);
  ck_assert_ptr_nonnull(strstr(err, "aud"));
  ck_assert_int_eq(verify_with_claim("aud", NULL, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_with_claim("aud", json_pack("[s]", "other"), err), LC_ERR_UNAUTH);
  /* several audiences without azp == client id */
  ck_assert_int_eq(verify_with_claim("aud", json_pack("[s,s]", CID, "other"), err),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_with_claim("aud", json_pack("[s]", CID), err), LC_OK);
}
END_TEST

START_TEST(idt_expired_and_future) {
  char err[LC_ERR_LEN] = "";
  ck_assert_int_eq(verify_with_claim("exp", json_integer(NOW - OAUTH_LEEWAY_S - 1), err),
                   LC_ERR_UNAUTH);
  ck_assert_ptr_nonnull(strstr(err, "expired"));
  ck_assert_int_eq(verify_with_claim("exp", NULL, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_with_claim("exp", json_string("9999999999"), err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_with_claim("iat", json_integer(NOW + 3600), err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_with_claim("iat", NULL, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_with_claim("nbf", json_integer(NOW + 3600), err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_with_claim("nbf", json_integer(NOW - 5), err), LC_OK);
}
END_TEST

START_TEST(idt_bad_nonce) {
  char err[LC_ERR_LEN] = "";
  ck_assert_int_eq(verify_with_claim("nonce", json_string("attacker-chosen-nonce-value-xx"), err),
                   LC_ERR_UNAUTH);
  ck_assert_ptr_nonnull(strstr(err, "nonce"));
  ck_assert_int_eq(verify_with_claim("nonce", NULL, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify_with_claim("nonce", json_string(NONCE "x"), err), LC_ERR_UNAUTH);
}
END_TEST

START_TEST(idt_bad_signature) {
  char err[LC_ERR_LEN] = "";
  oauth_idt_claims c;
  char *jwt = make_jwt(std_header(), std_claims(), g_key);
  size_t n = strlen(jwt);
  char *dot1 = strchr(jwt, '.');
  /* flip one character of the signature */
  jwt[n - 5] = jwt[n - 5] == 'A' ? 'B' : 'A';
  ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_UNAUTH);
  free(jwt);
  /* payload changed after signing */
  jwt = make_jwt(std_header(), std_claims(), g_key);
  dot1 = strchr(jwt, '.');
  dot1[3] = dot1[3] == 'x' ? 'y' : 'x';
  ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_UNAUTH);
  free(jwt);
  /* signed by another key under kid k1 */
  {
    gnutls_privkey_t other;
    ck_assert_int_ge(gnutls_privkey_init(&other), 0);
    ck_assert_int_ge(gnutls_privkey_generate(other, GNUTLS_PK_RSA, 2048, 0), 0);
    jwt = make_jwt(std_header(), std_claims(), other);
    ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_UNAUTH);
    free(jwt);
    gnutls_privkey_deinit(other);
  }
  ck_assert_int_eq(verify("a.b", &c, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify("a.b.c.d", &c, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(verify("", &c, err), LC_ERR_UNAUTH);
}
END_TEST

START_TEST(idt_unknown_kid) {
  char err[LC_ERR_LEN] = "";
  oauth_idt_claims c;
  json_t *h = std_header();
  char *jwt;
  json_object_set_new(h, "kid", json_string("rotated-key"));
  jwt = make_jwt(h, std_claims(), g_key);
  ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_NOTFOUND);
  free(jwt);
  /* no kid at all is refused outright */
  h = std_header();
  json_object_del(h, "kid");
  jwt = make_jwt(h, std_claims(), g_key);
  ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_UNAUTH);
  free(jwt);
}
END_TEST

START_TEST(idt_header_tricks) {
  char err[LC_ERR_LEN] = "";
  oauth_idt_claims c;
  const char *bad[] = {"jku", "jwk", "x5u", "x5c", "crit"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_t *h = std_header();
    json_object_set_new(h, bad[i], json_string("https://evil.example/jwks"));
    char *jwt = make_jwt(h, std_claims(), g_key);
    ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_UNAUTH);
    free(jwt);
  }
}
END_TEST

START_TEST(idt_small_key_refused) {
  char err[LC_ERR_LEN] = "";
  oauth_idt_claims c;
  json_t *h = std_header();
  char *jwt;
  json_object_set_new(h, "kid", json_string("small"));
  jwt = make_jwt(h, std_claims(), g_small);
  ck_assert_int_eq(verify(jwt, &c, err), LC_ERR_UNAUTH);
  ck_assert_ptr_nonnull(strstr(err, "2048"));
  free(jwt);
}
END_TEST

static Suite *oauth_suite(void) {
  Suite *s = suite_create("oauth");
  TCase *tc = tcase_create("primitives");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, pkce_rfc7636_appendix_b);
  tcase_add_test(tc, pkce_verifier_rules);
  tcase_add_test(tc, random_values);
  tcase_add_test(tc, state_cookie_binding);
  tcase_add_test(tc, url_rules);
  tcase_add_test(tc, query_encoding);
  tcase_add_test(tc, github_primary_email);
  tcase_add_test(tc, jwks_refetch_pacing);
  suite_add_tcase(s, tc);

  tc = tcase_create("id_token");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, setup_keys, teardown_keys);
  tcase_add_test(tc, idt_valid);
  tcase_add_test(tc, idt_email_unverified_reported);
  tcase_add_test(tc, idt_wrong_alg);
  tcase_add_test(tc, idt_alg_none_unsigned);
  tcase_add_test(tc, idt_hs256_confusion);
  tcase_add_test(tc, idt_wrong_iss);
  tcase_add_test(tc, idt_wrong_aud);
  tcase_add_test(tc, idt_expired_and_future);
  tcase_add_test(tc, idt_bad_nonce);
  tcase_add_test(tc, idt_bad_signature);
  tcase_add_test(tc, idt_unknown_kid);
  tcase_add_test(tc, idt_header_tricks);
  tcase_add_test(tc, idt_small_key_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr;
  int failed;

  if (sodium_init() < 0 || gnutls_global_init() < 0)
    return EXIT_FAILURE;
  sr = srunner_create(oauth_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  gnutls_global_deinit();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
