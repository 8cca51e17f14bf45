/* jwt.c - compact JWS with a single pinned algorithm, EdDSA (Ed25519) via
 * libsodium. The header must be exactly {"alg":"EdDSA","typ":"JWT"}; claims
 * are typed strictly. Thread-safe. */
#include "lc/jwt.h"
#include "lc/util.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#define JWT_MAX_LEN 4096
static const char JWT_HEADER[] = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";

int lc_jwt_keypair_from_seed(const uint8_t seed[32], uint8_t pk[32], uint8_t sk[64]) {
  if (seed == NULL || pk == NULL || sk == NULL) return LC_ERR_PARAM;
  return crypto_sign_seed_keypair(pk, sk, seed) == 0 ? LC_OK : LC_ERR;
}

int lc_jwt_sign(const uint8_t sk[64], const lc_jwt_claims *c, char **out, char err[LC_ERR_LEN]) {
  json_t *cl = NULL;
  char *payload = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL, *tok = NULL;
  uint8_t sig[crypto_sign_BYTES];
  size_t hl, pl, sl;
  int rc = LC_OK;
  if (out == NULL) return lc_err_set(err, LC_ERR_PARAM, "jwt: no output");
  *out = NULL;
  if (sk == NULL || c == NULL) return lc_err_set(err, LC_ERR_PARAM, "jwt: missing key/claims");
  if (memchr(c->iss, 0, sizeof c->iss) == NULL || memchr(c->aud, 0, sizeof c->aud) == NULL ||
      memchr(c->sub, 0, sizeof c->sub) == NULL || memchr(c->role, 0, sizeof c->role) == NULL ||
      memchr(c->typ, 0, sizeof c->typ) == NULL || memchr(c->jti, 0, sizeof c->jti) == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "jwt: unterminated claim");
  cl = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "iss", c->iss, "aud", c->aud,
                 "sub", c->sub, "role", c->role, "typ", c->typ, "jti", c->jti, "iat",
                 (json_int_t)c->iat, "exp", (json_int_t)c->exp);
  if (cl == NULL) {
    rc = lc_err_set(err, LC_ERR_PARAM, "jwt: claims are not valid UTF-8");
    goto out;
  }
  payload = json_dumps(cl, JSON_COMPACT);
  if (payload == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "jwt: json_dumps failed");
    goto out;
  }
  h64 = lc_b64url_encode((const uint8_t *)JWT_HEADER, sizeof JWT_HEADER - 1);
  p64 = lc_b64url_encode((const uint8_t *)payload, strlen(payload));
  hl = strlen(h64);
  pl = strlen(p64);
  tok = lc_xmalloc(hl + 1 + pl + 1 + 100);
  memcpy(tok, h64, hl);
  tok[hl] = '.';
  memcpy(tok + hl + 1, p64, pl);
  tok[hl + 1 + pl] = '\0';
  crypto_sign_detached(sig, NULL, (const uint8_t *)tok, hl + 1 + pl, sk);
  s64 = lc_b64url_encode(sig, sizeof sig);
  sl = strlen(s64);
  tok[hl + 1 + pl] = '.';
  memcpy(tok + hl + 2 + pl, s64, sl + 1);
  *out = tok;
  tok = NULL;
out:
  json_decref(cl);
  free(payload);
  free(h64);
  free(p64);
  free(s64);
  free(tok);
  return rc;
}

static int claim_str(json_t *o, const char *k, char *dst, size_t cap, int required,
                     char *err) {
  json_t *v = json_object_get(o, k);
  if (v == NULL) {
    if (required) return lc_err_set(err, LC_ERR_UNAUTH, "jwt: missing claim %s", k);
    dst[0] = '\0';
    return LC_OK;
  }
  if (!json_is_string(v)) return lc_err_set(err, LC_ERR_UNAUTH, "jwt: claim %s not a string", k);
  if (json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
    return lc_err_set(err, LC_ERR_UNAUTH, "jwt: claim %s malformed", k);
  memcpy(dst, json_string_value(v), json_string_length(v) + 1);
  return LC_OK;
}

static int claim_int(json_t *o, const char *k, int64_t *dst, char *err) {
  json_t *v = json_object_get(o, k);
  if (v == NULL) return lc_err_set(err, LC_ERR_UNAUTH, "jwt: missing claim %s", k);
  if (!json_is_integer(v)) return lc_err_set(err, LC_ERR_UNAUTH, "jwt: claim %s not an integer", k);
  *dst = (int64_t)json_integer_value(v);
  return LC_OK;
}

/* Header must be an object with exactly alg=EdDSA and typ=JWT. */
static int check_header(const uint8_t *h, size_t hl, char *err) {
  json_error_t je;
  json_t *j = json_loadb((const char *)h, hl, JSON_REJECT_DUPLICATES, &je);
  json_t *alg, *typ;
  int rc = LC_OK;
  if (j == NULL || !json_is_object(j)) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "jwt: header is not a JSON object");
    goto out;
  }
  alg = json_object_get(j, "alg");
  typ = json_object_get(j, "typ");
  if (json_object_size(j) != 2 || alg == NULL || typ == NULL) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "jwt: header must hold exactly alg and typ");
    goto out;
  }
  if (!json_is_string(alg) || strcmp(json_string_value(alg), "EdDSA") != 0 ||
      json_string_length(alg) != 5) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "jwt: algorithm not allowed");
    goto out;
  }
  if (!json_is_string(typ) || strcmp(json_string_value(typ), "JWT") != 0 ||
      json_string_length(typ) != 3) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "jwt: bad header typ");
    goto out;
  }
out:
  json_decref(j);
  return rc;
}

int lc_jwt_verify(const char *token, const uint8_t pk[32], const char *expected_iss,
                  const char *expected_aud, int64_t now_s, int64_t leeway_s,
                  lc_jwt_claims *out, char err[LC_ERR_LEN]) {
  size_t tl;
  const char *d1, *d2;
  uint8_t *hdr = NULL, *pay = NULL, *sig = NULL;
  size_t hdrl = 0, payl = 0, sigl = 0;
  json_t *cl = NULL;
  json_error_t je;
  lc_jwt_claims c;
  int rc;
  if (out != NULL) memset(out, 0, sizeof *out);
  if (token == NULL || pk == NULL || out == NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "jwt: missing token");
  tl = strnlen(token, JWT_MAX_LEN + 1);
  if (tl > JWT_MAX_LEN) return lc_err_set(err, LC_ERR_UNAUTH, "jwt: token too long");
  d1 = memchr(token, '.', tl);
  d2 = d1 ? memchr(d1 + 1, '.', tl - (size_t)(d1 + 1 - token)) : NULL;
  if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.', tl - (size_t)(d2 + 1 - token)) != NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "jwt: not a compact JWS");
  if (lc_b64url_decode(token, (size_t)(d1 - token), &hdr, &hdrl) != LC_OK ||
      lc_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &pay, &payl) != LC_OK ||
      lc_b64url_decode(d2 + 1, tl - (size_t)(d2 + 1 - token), &sig, &sigl) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "jwt: bad base64url");
    goto out;
  }
  rc = check_header(hdr, hdrl, err);
  if (rc != LC_OK) goto out;
  if (sigl != crypto_sign_BYTES ||
      crypto_sign_verify_detached(sig, (const uint8_t *)token, (size_t)(d2 - token), pk) != 0) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "jwt: bad signature");
    goto out;
  }
  cl = json_loadb((const char *)pay, payl, JSON_REJECT_DUPLICATES, &je);
  if (cl == NULL || !json_is_object(cl)) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "jwt: claims are not a JSON object");
    goto out;
  }
  memset(&c, 0, sizeof c);
  if ((rc = claim_str(cl, "iss", c.iss, sizeof c.iss, 1, err)) != LC_OK ||
      (rc = claim_str(cl, "aud", c.aud, sizeof c.aud, 1, err)) != LC_OK ||
      (rc = claim_str(cl, "sub", c.sub, sizeof c.sub, 1, err)) != LC_OK ||
      (rc = claim_str(cl, "role", c.role, sizeof c.role, 1, err)) != LC_OK ||
      (rc = claim_str(cl, "typ", c.typ, sizeof c.typ, 1, err)) != LC_OK ||
      (rc = claim_str(cl, "jti", c.jti, sizeof c.jti, 1, err)) != LC_OK ||
      (rc = claim_int(cl, "iat", &c.iat, err)) != LC_OK ||
      (rc = claim_int(cl, "exp", &c.exp, err)) != LC_OK)
    goto out;
  rc = LC_ERR_UNAUTH;
  if (expected_iss == NULL || strcmp(c.iss, expected_iss) != 0) {
    lc_err_set(err, rc, "jwt: wrong issuer");
    goto out;
  }
  if (expected_aud == NULL || strcmp(c.aud, expected_aud) != 0) {
    lc_err_set(err, rc, "jwt: wrong audience");
    goto out;
  }
  if (strcmp(c.typ, "access") != 0) {
    lc_err_set(err, rc, "jwt: not an access token");
    goto out;
  }
  if (!lc_uuid_valid(c.sub) || !lc_uuid_valid(c.jti)) {
    lc_err_set(err, rc, "jwt: sub/jti not UUIDs");
    goto out;
  }
  if (leeway_s < 0) leeway_s = 0;
  if (leeway_s > 86400) leeway_s = 86400;
  if (c.iat > now_s + leeway_s) {
    lc_err_set(err, rc, "jwt: issued in the future");
    goto out;
  }
  if (now_s - leeway_s >= c.exp) {
    lc_err_set(err, rc, "jwt: expired");
    goto out;
  }
  *out = c;
  rc = LC_OK;
out:
  json_decref(cl);
  free(hdr);
  free(pay);
  free(sig);
  return rc;
}
