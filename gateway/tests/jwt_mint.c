/* jwt_mint - TEST-ONLY tool: prints an EdDSA access JWT with the given claims,
 * signed with the key derived from AUTH_JWT_SEED (hex, 32 bytes). The e2e
 * suite uses it to build tokens with a valid signature but wrong claims
 * (expired, not yet valid, wrong aud/iss/typ, unknown role).
 *
 * Usage: jwt-mint sub=<uuid> [role=user] [iss=credit-saas]
 *                 [aud=credit-saas-api] [typ=access] [jti=<uuid>]
 *                 [iat=<unix s>] [exp=<unix s>]
 * Defaults: iss/aud from JWT_ISSUER/JWT_AUDIENCE (or the values above),
 * iat = now, exp = iat + 900, jti random. Exit 2 on bad usage. Never built
 * into a daemon; never installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/jwt.h"
#include "lc/util.h"

static int set_str(char *dst, size_t n, const char *v) { return lc_strlcpy(dst, v, n); }

int main(int argc, char **argv) {
  const char *seed_hex = getenv("AUTH_JWT_SEED");
  uint8_t seed[32], pk[32], sk[64];
  size_t n = 0;
  lc_jwt_claims c;
  char err[LC_ERR_LEN];
  char *tok = NULL;
  int64_t now;

  if (lc_global_init() != LC_OK)
    return 1;
  if (seed_hex == NULL || lc_hex_decode(seed_hex, seed, sizeof(seed), &n) != LC_OK || n != 32) {
    fprintf(stderr, "jwt-mint: AUTH_JWT_SEED must be 32 bytes of hex\n");
    return 2;
  }
  lc_jwt_keypair_from_seed(seed, pk, sk);
  memset(&c, 0, sizeof(c));
  now = lc_now_ms() / 1000;
  set_str(c.iss, sizeof(c.iss), getenv("JWT_ISSUER") ? getenv("JWT_ISSUER") : "credit-saas");
  set_str(c.aud, sizeof(c.aud),
          getenv("JWT_AUDIENCE") ? getenv("JWT_AUDIENCE") : "credit-saas-api");
  set_str(c.role, sizeof(c.role), "user");
  set_str(c.typ, sizeof(c.typ), "access");
  lc_uuid_v4(c.jti);
  c.iat = now;
  c.exp = 0;
  for (int i = 1; i < argc; i++) {
    const char *eq = strchr(argv[i], '=');
    int rc = LC_OK;
    if (eq == NULL) {
      fprintf(stderr, "jwt-mint: expected name=value, got '%s'\n", argv[i]);
      return 2;
    }
    size_t kl = (size_t)(eq - argv[i]);
    const char *v = eq + 1;
    if (kl == 3 && strncmp(argv[i], "sub", 3) == 0)
      rc = set_str(c.sub, sizeof(c.sub), v);
    else if (kl == 4 && strncmp(argv[i], "role", 4) == 0)
      rc = set_str(c.role, sizeof(c.role), v);
    else if (kl == 3 && strncmp(argv[i], "iss", 3) == 0)
      rc = set_str(c.iss, sizeof(c.iss), v);
    else if (kl == 3 && strncmp(argv[i], "aud", 3) == 0)
      rc = set_str(c.aud, sizeof(c.aud), v);
    else if (kl == 3 && strncmp(argv[i], "typ", 3) == 0)
      rc = set_str(c.typ, sizeof(c.typ), v);
    else if (kl == 3 && strncmp(argv[i], "jti", 3) == 0)
      rc = set_str(c.jti, sizeof(c.jti), v);
    else if (kl == 3 && strncmp(argv[i], "iat", 3) == 0)
      rc = lc_parse_i64(v, 0, INT64_MAX / 2, &c.iat);
    else if (kl == 3 && strncmp(argv[i], "exp", 3) == 0)
      rc = lc_parse_i64(v, 0, INT64_MAX / 2, &c.exp);
    else
      rc = LC_ERR_PARAM;
    if (rc != LC_OK) {
      fprintf(stderr, "jwt-mint: bad argument '%.*s'\n", (int)kl, argv[i]);
      return 2;
    }
  }
  if (c.exp == 0)
    c.exp = c.iat + 900;
  if (c.sub[0] == '\0') {
    fprintf(stderr, "jwt-mint: sub=<uuid> is required\n");
    return 2;
  }
  if (lc_jwt_sign(sk, &c, &tok, err) != LC_OK) {
    fprintf(stderr, "jwt-mint: %s\n", err);
    return 1;
  }
  printf("%s\n", tok);
  free(tok);
  lc_global_cleanup();
  return 0;
}
