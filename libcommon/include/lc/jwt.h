/* jwt.h - EdDSA (Ed25519) JSON Web Tokens, one pinned algorithm.
 *
 * Header must be exactly {"alg":"EdDSA","typ":"JWT"} (members in any order,
 * nothing else: alg none, other algorithms, jwk/jku/kid/x5u/crit... rejected).
 * Claims: iss, aud (string), sub, role, typ ("access"), jti, iat, exp. */
#ifndef LC_JWT_H
#define LC_JWT_H

#include <stdint.h>
#include "lc/err.h"

typedef struct {
  char iss[128];
  char aud[128];
  char sub[37];     /* user UUID */
  char role[16];
  char typ[16];     /* "access" */
  char jti[37];     /* UUID */
  int64_t iat;
  int64_t exp;
} lc_jwt_claims;

/* Signs claims with an Ed25519 secret key (libsodium 64-byte form).
 * *out is new (free()). */
int lc_jwt_sign(const uint8_t sk[64], const lc_jwt_claims *c, char **out, char err[LC_ERR_LEN]);

/* Verifies signature with the public key alone, then iss == expected_iss,
 * aud == expected_aud, typ == "access", iat <= now + leeway, now < exp + leeway,
 * required claims present with the right types, token <= 4096 bytes.
 * Returns LC_OK or LC_ERR_UNAUTH with err saying why. */
int lc_jwt_verify(const char *token, const uint8_t pk[32], const char *expected_iss,
                  const char *expected_aud, int64_t now_s, int64_t leeway_s,
                  lc_jwt_claims *out, char err[LC_ERR_LEN]);

/* Derives an Ed25519 key pair from a 32-byte seed (hex in env). */
int lc_jwt_keypair_from_seed(const uint8_t seed[32], uint8_t pk[32], uint8_t sk[64]);

#endif
