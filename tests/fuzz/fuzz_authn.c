/* fuzz_authn.c - the gateway's credential parsing: the Authorization and
 * X-API-Key headers as ulfius hands them over (gw_authn_headers), then
 * gw_authn_credentials (Bearer JWT / ApiKey / X-API-Key, through the real
 * gw_keycache with a stand-in auth-svc), gw_authn_query_has_credential on
 * the query string and gw_keys_apply_event on a revocation message.
 * Input: "authz\napi_key\nquery\nevent body"; the first byte's low bits say
 * which headers are absent. */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "gw_authn.h"
#include "gw_keys.h"
#include "lc/jwt.h"

static uint8_t g_pk[32];

/* Stand-in for auth-svc: a well-formed key whose last char is 'A' is valid,
 * one ending in 'B' makes auth-svc "unavailable", the rest are unknown. */
static int fake_fetch(void *ud, const char *key, gw_key_info *info, char err[LC_ERR_LEN]) {
  (void)ud;
  size_t n = strlen(key);
  FZ_CHECK(gw_keys_well_formed(key));
  if (key[n - 1] == 'B') return lc_err_set(err, LC_ERR_UNAVAIL, "down");
  if (key[n - 1] != 'A') return lc_err_set(err, LC_ERR_UNAUTH, "unknown key");
  memset(info, 0, sizeof(*info));
  snprintf(info->key_id, sizeof(info->key_id), "%s", "11111111-1111-4111-8111-111111111111");
  snprintf(info->owner_id, sizeof(info->owner_id), "%s", "22222222-2222-4222-8222-222222222222");
  snprintf(info->owner_role, sizeof(info->owner_role), "%s", "user");
  snprintf(info->scope, sizeof(info->scope), "%s", "full");
  memcpy(info->prefix, key, 11);
  return LC_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  uint8_t seed[32], sk[64];
  memset(seed, 7, sizeof seed);
  if (lc_jwt_keypair_from_seed(seed, g_pk, sk) != LC_OK) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned mode = data[0];
  const uint8_t *rest = data + 1, *r2, *r3, *r4;
  size_t n = size - 1, n2, n3, n4;
  char *authz = fz_split(rest, n, &r2, &n2);
  char *key = fz_split(r2, n2, &r3, &n3);
  char *query = fz_split(r3, n3, &r4, &n4);
  char err[LC_ERR_LEN];

  gw_keycache kc;
  FZ_CHECK(gw_keys_init(&kc, 4, 60000, 5000, fake_fetch, NULL) == LC_OK);
  gw_authn_ctx ctx = {.issuer = "https://fuzz.test", .audience = "fuzz-aud", .leeway_s = 30,
                      .rv = NULL, .keys = &kc};
  memcpy(ctx.jwt_pk, g_pk, 32);

  /* headers through a real ulfius request */
  struct _u_request req;
  FZ_CHECK(ulfius_init_request(&req) == U_OK);
  if (!(mode & 1)) u_map_put(req.map_header, "Authorization", authz);
  if (!(mode & 2)) u_map_put(req.map_header, "X-API-Key", key);
  const char *ha = NULL, *hk = NULL;
  int hrc = gw_authn_headers(&req, &ha, &hk, err);
  FZ_CHECK(hrc == LC_OK || hrc == LC_ERR_UNAUTH);
  if (hrc == LC_OK) {
    gw_principal p;
    int rc = gw_authn_credentials(&ctx, ha, hk, 1800000000, 1000000 + (mode >> 2), &p, err);
    FZ_CHECK(rc == LC_OK || rc == LC_ERR_UNAUTH || rc == LC_ERR_UNAVAIL);
    if (rc == LC_OK) {
      FZ_CHECK(memchr(p.id.user_id, '\0', sizeof p.id.user_id) != NULL);
      FZ_CHECK(strcmp(p.id.role, "user") == 0 || strcmp(p.id.role, "admin") == 0);
      /* the same key again comes from the cache with the same answer */
      if (p.is_key) {
        gw_principal p2;
        FZ_CHECK(gw_authn_credentials(&ctx, ha, hk, 1800000000, 1000001, &p2, err) == LC_OK);
        FZ_CHECK(strcmp(p2.id.user_id, p.id.user_id) == 0);
      }
    }
    lc_identity id;
    int vrc = gw_authn_verify(&ctx, ha, 1800000000, &id, err);
    FZ_CHECK(vrc == LC_OK || vrc == LC_ERR_UNAUTH);
  }
  ulfius_clean_request(&req);

  (void)gw_authn_query_has_credential(query);
  (void)gw_keys_well_formed(key);
  int erc = gw_keys_apply_event(&kc, (mode & 4) ? "auth.user.revoked" : "auth.key.revoked",
                                (const char *)r4, n4);
  FZ_CHECK(erc == LC_OK || erc == LC_ERR_PARAM);

  gw_keys_free(&kc);
  free(authz);
  free(key);
  free(query);
  return 0;
}
