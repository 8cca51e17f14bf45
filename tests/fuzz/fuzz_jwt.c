/* fuzz_jwt.c - lc_jwt_verify over arbitrary token text. The key is fixed
 * (seed 0x07 x 32, as in libcommon's unit tests) so that the seed corpus
 * holds validly signed tokens and the fuzzer reaches the claim checks.
 * Invariant: an accepted token has NUL-terminated claims within bounds and
 * passes the documented checks. */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "lc/err.h"
#include "lc/jwt.h"

#define FZ_NOW 1800000000 /* fixed clock: corpus tokens are valid at this time */

static uint8_t g_pk[32];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  uint8_t seed[32], sk[64];
  memset(seed, 7, sizeof seed);
  if (lc_jwt_keypair_from_seed(seed, g_pk, sk) != LC_OK) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *tok = fz_strndup(data, size);
  lc_jwt_claims c;
  char err[LC_ERR_LEN];
  memset(&c, 0xA5, sizeof c);
  int rc = lc_jwt_verify(tok, g_pk, "https://fuzz.test", "fuzz-aud", FZ_NOW, 30, &c, err);
  FZ_CHECK(rc == LC_OK || rc == LC_ERR_UNAUTH);
  FZ_CHECK(memchr(err, '\0', sizeof err) != NULL);
  if (rc == LC_OK) {
    FZ_CHECK(strlen(tok) <= 4096);
    FZ_CHECK(strcmp(c.iss, "https://fuzz.test") == 0 && strcmp(c.aud, "fuzz-aud") == 0);
    FZ_CHECK(strcmp(c.typ, "access") == 0);
    FZ_CHECK(memchr(c.sub, '\0', sizeof c.sub) && memchr(c.role, '\0', sizeof c.role));
    FZ_CHECK(memchr(c.jti, '\0', sizeof c.jti));
    FZ_CHECK(c.iat <= FZ_NOW + 30 && FZ_NOW < c.exp + 30);
  }
  free(tok);
  return 0;
}
