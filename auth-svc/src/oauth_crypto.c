/* oauth_crypto.c - see oauth_crypto.h. */
#include "oauth_crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "lc/util.h"

static int is_b64url_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

static int is_unreserved(char c) {
  return is_b64url_char(c) || c == '.' || c == '~';
}

void oauth_random_b64(char out[OAUTH_RAND_LEN + 1]) {
  uint8_t raw[32];
  char *s;

  lc_random(raw, sizeof(raw));
  s = lc_b64url_encode(raw, sizeof(raw));
  lc_strlcpy(out, s, OAUTH_RAND_LEN + 1);
  free(s);
  lc_random(raw, sizeof(raw)); /* overwrite the copy on the stack */
}

int oauth_is_rand_b64(const char *s) {
  if (s == NULL)
    return 0;
  for (size_t i = 0; i < OAUTH_RAND_LEN; i++)
    if (!is_b64url_char(s[i]))
      return 0;
  return s[OAUTH_RAND_LEN] == '\0';
}

int oauth_pkce_challenge(const char *verifier, char out[OAUTH_RAND_LEN + 1]) {
  uint8_t h[32];
  size_t n;
  char *s;

  out[0] = '\0';
  if (verifier == NULL)
    return LC_ERR_PARAM;
  n = strnlen(verifier, 129);
  if (n < 43 || n > 128)
    return LC_ERR_PARAM;
  for (size_t i = 0; i < n; i++)
    if (!is_unreserved(verifier[i]))
      return LC_ERR_PARAM;
  lc_sha256(verifier, n, h);
  s = lc_b64url_encode(h, sizeof(h));
  lc_strlcpy(out, s, OAUTH_RAND_LEN + 1);
  free(s);
  return LC_OK;
}

void oauth_hash_hex(const char *s, char hex[65]) {
  uint8_t h[32];
  lc_sha256(s, strlen(s), h);
  lc_hex_encode(h, sizeof(h), hex);
}

int oauth_hash_eq(const char *a, const char *b) {
  if (a == NULL || b == NULL || strnlen(a, 65) != 64 || strnlen(b, 65) != 64)
    return 0;
  return lc_ct_eq(a, b, 64);
}

int oauth_binding_ok(const char *stored_hash, const char *cookie) {
  char h[65];
  if (!oauth_is_rand_b64(cookie))
    return 0;
  oauth_hash_hex(cookie, h);
  return oauth_hash_eq(stored_hash, h);
}

int oauth_url_allowed(const char *url) {
  const char *host;
  size_t n;

  if (url == NULL)
    return 0;
  n = strnlen(url, 1025);
  if (n == 0 || n > 1024)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
      return 0;
  if (strncmp(url, "https://", 8) == 0) {
    host = url + 8;
    /* a host must follow, and no userinfo */
    if (host[0] == '\0' || host[0] == '/' || host[0] == ':' || host[0] == '?')
      return 0;
    for (const char *p = host; *p != '\0' && *p != '/' && *p != '?' && *p != '#'; p++)
      if (*p == '@')
        return 0;
    return 1;
  }
  if (strncmp(url, "http://127.0.0.1", 16) == 0) {
    char c = url[16];
    return c == '\0' || c == ':' || c == '/';
  }
  return 0;
}

int oauth_query_add(char *buf, size_t cap, const char *name, const char *value) {
  static const char hexd[] = "0123456789ABCDEF";
  size_t len = strnlen(buf, cap);

  if (len >= cap)
    return LC_ERR_TOO_LARGE;
  if (len > 0 && buf[len - 1] != '?' && buf[len - 1] != '&') {
    if (len + 1 >= cap)
      return LC_ERR_TOO_LARGE;
    buf[len++] = '&';
  }
  for (const char *p = name; *p != '\0'; p++) {
    if (len + 1 >= cap)
      return LC_ERR_TOO_LARGE;
    buf[len++] = *p;
  }
  if (len + 1 >= cap)
    return LC_ERR_TOO_LARGE;
  buf[len++] = '=';
  for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
    if (is_unreserved((char)*p)) {
      if (len + 1 >= cap)
        return LC_ERR_TOO_LARGE;
      buf[len++] = (char)*p;
    } else {
      if (len + 3 >= cap)
        return LC_ERR_TOO_LARGE;
      buf[len++] = '%';
      buf[len++] = hexd[*p >> 4];
      buf[len++] = hexd[*p & 15];
    }
  }
  buf[len] = '\0';
  return LC_OK;
}

/* Number of significant bits of a big-endian unsigned integer. */
static size_t bit_length(const uint8_t *n, size_t len) {
  size_t i = 0;
  while (i < len && n[i] == 0)
    i++;
  if (i == len)
    return 0;
  size_t bits = (len - i) * 8;
  for (uint8_t top = n[i]; (top & 0x80) == 0; top = (uint8_t)(top << 1))
    bits--;
  return bits;
}

int oauth_rsa_sha256_verify(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
                            const void *msg, size_t msglen, const uint8_t *sig, size_t siglen,
                            char err[LC_ERR_LEN]) {
  gnutls_pubkey_t key = NULL;
  gnutls_datum_t dn, de, dm, ds;
  int rc = LC_ERR_UNAUTH;
  int g;

  if (n == NULL || e == NULL || nlen == 0 || elen == 0 || elen > 8 || nlen > 1024)
    return lc_err_set(err, LC_ERR_UNAUTH, "unusable RSA key");
  if (bit_length(n, nlen) < OAUTH_RSA_MIN_BITS)
    return lc_err_set(err, LC_ERR_UNAUTH, "RSA key shorter than %d bits", OAUTH_RSA_MIN_BITS);
  if (sig == NULL || siglen == 0 || siglen > 1024)
    return lc_err_set(err, LC_ERR_UNAUTH, "bad signature length");
  if (gnutls_pubkey_init(&key) < 0)
    return lc_err_set(err, LC_ERR_NOMEM, "gnutls_pubkey_init failed");
  dn.data = (unsigned char *)(uintptr_t)n;
  dn.size = (unsigned int)nlen;
  de.data = (unsigned char *)(uintptr_t)e;
  de.size = (unsigned int)elen;
  g = gnutls_pubkey_import_rsa_raw(key, &dn, &de);
  if (g < 0) {
    lc_err_set(err, LC_ERR_UNAUTH, "RSA key import failed");
    goto out;
  }
  dm.data = (unsigned char *)(uintptr_t)msg;
  dm.size = (unsigned int)msglen;
  ds.data = (unsigned char *)(uintptr_t)sig;
  ds.size = (unsigned int)siglen;
  g = gnutls_pubkey_verify_data2(key, GNUTLS_SIGN_RSA_SHA256, 0, &dm, &ds);
  if (g < 0) {
    lc_err_set(err, LC_ERR_UNAUTH, "bad signature");
    goto out;
  }
  rc = LC_OK;
out:
  gnutls_pubkey_deinit(key);
  return rc;
}

/* Decodes one base64url JWT segment [p, p+len) as a JSON object (new). */
static json_t *segment_json(const char *p, size_t len) {
  uint8_t *raw = NULL;
  size_t rawlen = 0;
  json_t *j;

  if (lc_b64url_decode(p, len, &raw, &rawlen) != LC_OK)
    return NULL;
  j = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
  free(raw);
  if (j != NULL && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

/* Base64url member of a JWK decoded into a new buffer. */
static int jwk_bytes(const json_t *jwk, const char *name, uint8_t **out, size_t *outlen) {
  const json_t *v = json_object_get(jwk, name);
  if (!json_is_string(v))
    return LC_ERR_PARAM;
  return lc_b64url_decode(json_string_value(v), json_string_length(v), out, outlen);
}

/* Finds the RSA signing key with kid. LC_OK (borrowed *key), LC_ERR_NOTFOUND. */
static int jwks_find(const json_t *jwks, const char *kid, const json_t **key) {
  const json_t *keys = json_is_object(jwks) ? json_object_get(jwks, "keys") : NULL;
  size_t i;
  const json_t *k;

  *key = NULL;
  if (!json_is_array(keys))
    return LC_ERR_NOTFOUND;
  json_array_foreach(keys, i, k) {
    const json_t *kk = json_object_get(k, "kid");
    const json_t *kty = json_object_get(k, "kty");
    const json_t *use = json_object_get(k, "use");
    const json_t *alg = json_object_get(k, "alg");
    if (!json_is_string(kk) || strcmp(json_string_value(kk), kid) != 0)
      continue;
    if (!json_is_string(kty) || strcmp(json_string_value(kty), "RSA") != 0)
      continue;
    if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
      continue;
    if (alg != NULL && (!json_is_string(alg) || strcmp(json_string_value(alg), "RS256") != 0))
      continue;
    *key = k;
    return LC_OK;
  }
  return LC_ERR_NOTFOUND;
}

/* Checks the JOSE header; copies kid. */
static int check_header(const json_t *hdr, char kid[129], char err[LC_ERR_LEN]) {
  static const char *const banned[] = {"jku", "jwk", "x5u", "x5c", "crit", NULL};
  const json_t *alg = json_object_get(hdr, "alg");
  const json_t *k = json_object_get(hdr, "kid");

  if (!json_is_string(alg) || strcmp(json_string_value(alg), "RS256") != 0)
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token alg is not RS256");
  for (int i = 0; banned[i] != NULL; i++)
    if (json_object_get(hdr, banned[i]) != NULL)
      return lc_err_set(err, LC_ERR_UNAUTH, "id_token header carries %s", banned[i]);
  if (!json_is_string(k) || json_string_length(k) == 0 ||
      lc_strlcpy(kid, json_string_value(k), 129) != LC_OK)
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token kid missing or too long");
  return LC_OK;
}

static int check_aud(const json_t *claims, const char *client_id, char err[LC_ERR_LEN]) {
  const json_t *aud = json_object_get(claims, "aud");
  const json_t *azp = json_object_get(claims, "azp");
  size_t i;
  const json_t *a;
  int found = 0;

  if (json_is_string(aud)) {
    if (strcmp(json_string_value(aud), client_id) != 0)
      return lc_err_set(err, LC_ERR_UNAUTH, "id_token aud mismatch");
  } else if (json_is_array(aud) && json_array_size(aud) > 0) {
    json_array_foreach(aud, i, a) {
      if (!json_is_string(a))
        return lc_err_set(err, LC_ERR_UNAUTH, "id_token aud malformed");
      if (strcmp(json_string_value(a), client_id) == 0)
        found = 1;
    }
    if (!found)
      return lc_err_set(err, LC_ERR_UNAUTH, "id_token aud mismatch");
    if (json_array_size(aud) > 1 &&
        (!json_is_string(azp) || strcmp(json_string_value(azp), client_id) != 0))
      return lc_err_set(err, LC_ERR_UNAUTH, "id_token azp mismatch");
  } else {
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token aud missing");
  }
  if (azp != NULL && (!json_is_string(azp) || strcmp(json_string_value(azp), client_id) != 0))
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token azp mismatch");
  return LC_OK;
}

/* Numeric date claim as int64 (integer or real). 0 = absent/invalid. */
static int num_claim(const json_t *claims, const char *name, int64_t *out) {
  const json_t *v = json_object_get(claims, name);
  if (json_is_integer(v)) {
    *out = (int64_t)json_integer_value(v);
    return 1;
  }
  if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 9e15) {
    *out = (int64_t)json_real_value(v);
    return 1;
  }
  return 0;
}

static int check_claims(const json_t *c, const oauth_idt_expect *x, int64_t now,
                        oauth_idt_claims *out, char err[LC_ERR_LEN]) {
  const json_t *iss = json_object_get(c, "iss");
  const json_t *nonce = json_object_get(c, "nonce");
  const json_t *sub = json_object_get(c, "sub");
  const json_t *email = json_object_get(c, "email");
  const json_t *ev = json_object_get(c, "email_verified");
  int64_t expv = 0, iat = 0, nbf = 0;
  int rc;

  if (!json_is_string(iss) || strcmp(json_string_value(iss), x->issuer) != 0)
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token iss mismatch");
  rc = check_aud(c, x->client_id, err);
  if (rc != LC_OK)
    return rc;
  if (!num_claim(c, "exp", &expv))
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token exp missing");
  if (now >= expv + OAUTH_LEEWAY_S)
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token expired");
  if (!num_claim(c, "iat", &iat))
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token iat missing");
  if (iat > now + OAUTH_LEEWAY_S)
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token issued in the future");
  if (json_object_get(c, "nbf") != NULL &&
      (!num_claim(c, "nbf", &nbf) || nbf > now + OAUTH_LEEWAY_S))
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token not yet valid");
  if (x->nonce == NULL || x->nonce[0] == '\0' || !json_is_string(nonce) ||
      json_string_length(nonce) != strlen(x->nonce) ||
      !lc_ct_eq(json_string_value(nonce), x->nonce, strlen(x->nonce)))
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token nonce mismatch");
  if (!json_is_string(sub) || json_string_length(sub) == 0 ||
      json_string_length(sub) > OAUTH_SUB_MAX ||
      strlen(json_string_value(sub)) != json_string_length(sub))
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token sub missing or malformed");
  lc_strlcpy(out->sub, json_string_value(sub), sizeof(out->sub));
  if (json_is_string(email) && json_string_length(email) <= OAUTH_EMAIL_MAX &&
      strlen(json_string_value(email)) == json_string_length(email))
    lc_strlcpy(out->email, json_string_value(email), sizeof(out->email));
  out->email_verified = json_is_true(ev) ||
                        (json_is_string(ev) && strcmp(json_string_value(ev), "true") == 0);
  return LC_OK;
}

int oauth_idtoken_verify(const char *jwt, const json_t *jwks, const oauth_idt_expect *x,
                         int64_t now_s, oauth_idt_claims *out, char err[LC_ERR_LEN]) {
  const char *dot1, *dot2;
  size_t len;
  json_t *hdr = NULL, *claims = NULL;
  const json_t *key = NULL;
  uint8_t *n = NULL, *e = NULL, *sig = NULL;
  size_t nlen = 0, elen = 0, siglen = 0;
  char kid[129];
  int rc;

  memset(out, 0, sizeof(*out));
  if (jwt == NULL || x == NULL || x->issuer == NULL || x->client_id == NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token missing");
  len = strnlen(jwt, OAUTH_IDTOKEN_MAX + 1);
  if (len == 0 || len > OAUTH_IDTOKEN_MAX)
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token missing or too large");
  dot1 = strchr(jwt, '.');
  dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
  if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL || dot2[1] == '\0')
    return lc_err_set(err, LC_ERR_UNAUTH, "id_token is not a compact JWS");
  hdr = segment_json(jwt, (size_t)(dot1 - jwt));
  if (hdr == NULL) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "id_token header malformed");
    goto out;
  }
  rc = check_header(hdr, kid, err);
  if (rc != LC_OK)
    goto out;
  rc = jwks_find(jwks, kid, &key);
  if (rc != LC_OK) {
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "no JWKS key with the id_token's kid");
    goto out;
  }
  if (jwk_bytes(key, "n", &n, &nlen) != LC_OK || jwk_bytes(key, "e", &e, &elen) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "JWKS key malformed");
    goto out;
  }
  if (lc_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - jwt), &sig, &siglen) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "id_token signature malformed");
    goto out;
  }
  rc = oauth_rsa_sha256_verify(n, nlen, e, elen, jwt, (size_t)(dot2 - jwt), sig, siglen, err);
  if (rc != LC_OK)
    goto out;
  /* Only a signed payload is parsed. */
  claims = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
  if (claims == NULL) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "id_token payload malformed");
    goto out;
  }
  rc = check_claims(claims, x, now_s, out, err);
out:
  if (rc != LC_OK)
    memset(out, 0, sizeof(*out));
  json_decref(hdr);
  json_decref(claims);
  free(n);
  free(e);
  free(sig);
  return rc;
}

int oauth_jwks_may_refetch(int64_t last_fetch_ms, int64_t now_ms) {
  return last_fetch_ms == 0 || now_ms - last_fetch_ms >= OAUTH_JWKS_REFETCH_MS;
}
