/* gw_authn.c - see gw_authn.h. */
#include "gw_authn.h"

#include <string.h>
#include <strings.h>

#include "lc/jwt.h"
#include "lc/util.h"

int gw_authn_headers(const struct _u_request *req, const char **authz, const char **api_key,
                     char err[LC_ERR_LEN]) {
  *authz = u_map_get_case(req->map_header, "Authorization");
  *api_key = u_map_get_case(req->map_header, "X-API-Key");
  /* ulfius 2.7 keeps one value per header name and joins repeated headers
   * with ","; no valid credential contains a comma, so a comma means the
   * client sent several headers of that name (or garbage). */
  if (*authz != NULL && strchr(*authz, ',') != NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "exactly one Authorization header is allowed");
  if (*api_key != NULL && strchr(*api_key, ',') != NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "exactly one X-API-Key header is allowed");
  return LC_OK;
}

static const char *skip_spaces(const char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

static int verify_bearer(const gw_authn_ctx *ctx, const char *token, int64_t now_s,
                         gw_principal *p, char err[LC_ERR_LEN]) {
  lc_jwt_claims c;
  char jerr[LC_ERR_LEN];
  if (*token == '\0')
    return lc_err_set(err, LC_ERR_UNAUTH, "empty bearer token");
  uint8_t h[GW_JWTC_HASH];
  int cached = 0;
  if (ctx->jwtc != NULL) {
    gw_jwtcache_key(ctx->jwtc, ctx->jwt_pk, ctx->issuer, ctx->audience, token, h);
    cached = gw_jwtcache_get(ctx->jwtc, h, now_s, ctx->leeway_s, &c);
  }
  if (!cached) {
    int rc = lc_jwt_verify(token, ctx->jwt_pk, ctx->issuer, ctx->audience, now_s,
                           ctx->leeway_s, &c, jerr);
    if (rc != LC_OK)
      return lc_err_set(err, LC_ERR_UNAUTH, "invalid access token: %s", jerr);
    if (strcmp(c.role, "admin") != 0 && strcmp(c.role, "user") != 0)
      return lc_err_set(err, LC_ERR_UNAUTH, "invalid access token: role");
    if (!lc_uuid_valid(c.sub))
      return lc_err_set(err, LC_ERR_UNAUTH, "invalid access token: sub");
    if (!lc_uuid_valid(c.jti))
      return lc_err_set(err, LC_ERR_UNAUTH, "invalid access token: jti");
    if (ctx->jwtc != NULL)
      gw_jwtcache_put(ctx->jwtc, h, &c);
  }
  /* revocation: on every request, cached or not */
  if (ctx->rv != NULL && gw_revoke_check(ctx->rv, c.jti, c.sub, c.iat, now_s))
    return lc_err_set(err, LC_ERR_UNAUTH, "access token revoked");
  lc_strlcpy(p->id.user_id, c.sub, sizeof(p->id.user_id));
  lc_strlcpy(p->id.role, c.role, sizeof(p->id.role));
  lc_strlcpy(p->id.scope, "full", sizeof(p->id.scope));
  lc_strlcpy(p->jti, c.jti, sizeof(p->jti));
  p->iat = c.iat;
  p->exp = c.exp;
  p->is_key = 0;
  return LC_OK;
}

static int verify_key(const gw_authn_ctx *ctx, const char *key, int64_t now_ms, gw_principal *p,
                      char err[LC_ERR_LEN]) {
  if (ctx->keys == NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "API keys are not accepted");
  int rc = gw_keys_resolve(ctx->keys, key, now_ms, &p->key, NULL, err);
  if (rc != LC_OK)
    return rc;
  lc_strlcpy(p->id.user_id, p->key.owner_id, sizeof(p->id.user_id));
  lc_strlcpy(p->id.role, p->key.owner_role, sizeof(p->id.role));
  lc_strlcpy(p->id.scope, p->key.scope, sizeof(p->id.scope));
  p->is_key = 1;
  return LC_OK;
}

int gw_authn_credentials(const gw_authn_ctx *ctx, const char *authz, const char *api_key,
                         int64_t now_s, int64_t now_ms, gw_principal *p, char err[LC_ERR_LEN]) {
  memset(p, 0, sizeof(*p));
  int has_authz = authz != NULL && authz[0] != '\0';
  int has_key = api_key != NULL && api_key[0] != '\0';
  if (!has_authz && !has_key)
    return lc_err_set(err, LC_ERR_UNAUTH, "missing credentials");
  if (has_authz && has_key)
    return lc_err_set(err, LC_ERR_UNAUTH, "send either Authorization or X-API-Key, not both");
  if (has_key)
    return verify_key(ctx, skip_spaces(api_key), now_ms, p, err);
  if (strncasecmp(authz, "Bearer ", 7) == 0)
    return verify_bearer(ctx, skip_spaces(authz + 7), now_s, p, err);
  if (strncasecmp(authz, "ApiKey ", 7) == 0)
    return verify_key(ctx, skip_spaces(authz + 7), now_ms, p, err);
  return lc_err_set(err, LC_ERR_UNAUTH, "unsupported authorization scheme");
}

int gw_authn_verify(const gw_authn_ctx *ctx, const char *header, int64_t now_s,
                    lc_identity *id, char err[LC_ERR_LEN]) {
  gw_principal p;
  memset(id, 0, sizeof(*id));
  if (header == NULL || header[0] == '\0')
    return lc_err_set(err, LC_ERR_UNAUTH, "missing credentials");
  if (strncasecmp(header, "Bearer ", 7) != 0)
    return lc_err_set(err, LC_ERR_UNAUTH, "unsupported authorization scheme");
  memset(&p, 0, sizeof(p));
  int rc = verify_bearer(ctx, skip_spaces(header + 7), now_s, &p, err);
  if (rc == LC_OK)
    *id = p.id;
  return rc;
}

/* Percent-decodes in[0..n) into out (bounded); '+' is a space. Returns the
 * decoded length, or -1 when it does not fit. */
static int pct_decode(const char *in, size_t n, char *out, size_t outsz) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c == '%' && i + 2 < n) {
      uint8_t b;
      size_t bl = 0;
      char hx[3] = {in[i + 1], in[i + 2], '\0'};
      if (lc_hex_decode(hx, &b, 1, &bl) == LC_OK && bl == 1) {
        c = (char)b;
        i += 2;
      }
    } else if (c == '+') {
      c = ' ';
    }
    if (o + 1 >= outsz)
      return -1;
    out[o++] = c;
  }
  out[o] = '\0';
  return (int)o;
}

int gw_authn_query_has_credential(const char *query) {
  static const char *const NAMES[] = {"api_key", "apikey", "api-key", "key",
                                      "access_token", "jwt", "x-api-key", NULL};
  if (query == NULL)
    return 0;
  const char *p = query;
  while (*p != '\0') {
    const char *amp = strchr(p, '&');
    size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    size_t nlen = eq != NULL ? (size_t)(eq - p) : len;
    char name[64], val[128];
    if (pct_decode(p, nlen, name, sizeof(name)) >= 0) {
      for (int i = 0; NAMES[i] != NULL; i++)
        if (strcasecmp(name, NAMES[i]) == 0)
          return 1;
    }
    if (eq != NULL && pct_decode(eq + 1, len - nlen - 1, val, sizeof(val)) >= 0 &&
        gw_keys_well_formed(val))
      return 1;
    if (amp == NULL)
      break;
    p = amp + 1;
  }
  return 0;
}
