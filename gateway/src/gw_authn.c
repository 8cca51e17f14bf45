/* gw_authn.c - see gw_authn.h. */
#include "gw_authn.h"

#include <string.h>
#include <strings.h>

#include "lc/jwt.h"
#include "lc/util.h"

int gw_authn_header(const struct _u_request *req, const char **value, char err[LC_ERR_LEN]) {
  *value = u_map_get_case(req->map_header, "Authorization");
  /* ulfius 2.7 keeps one value per header name and joins repeated headers
   * with ","; no valid credential contains a comma, so a comma means the
   * client sent several Authorization headers (or garbage). */
  if (*value != NULL && strchr(*value, ',') != NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "exactly one Authorization header is allowed");
  return LC_OK;
}

int gw_authn_verify(const gw_authn_ctx *ctx, const char *header, int64_t now_s,
                    lc_identity *id, char err[LC_ERR_LEN]) {
  memset(id, 0, sizeof(*id));
  if (header == NULL || header[0] == '\0')
    return lc_err_set(err, LC_ERR_UNAUTH, "missing credentials");
  if (strncasecmp(header, "Bearer ", 7) != 0)
    return lc_err_set(err, LC_ERR_UNAUTH, "unsupported authorization scheme");
  const char *token = header + 7;
  while (*token == ' ')
    token++;
  if (*token == '\0')
    return lc_err_set(err, LC_ERR_UNAUTH, "empty bearer token");

  lc_jwt_claims c;
  char jerr[LC_ERR_LEN];
  int rc = lc_jwt_verify(token, ctx->jwt_pk, ctx->issuer, ctx->audience, now_s, ctx->leeway_s,
                         &c, jerr);
  if (rc != LC_OK)
    return lc_err_set(err, LC_ERR_UNAUTH, "invalid access token: %s", jerr);
  if (strcmp(c.role, "admin") != 0 && strcmp(c.role, "user") != 0)
    return lc_err_set(err, LC_ERR_UNAUTH, "invalid access token: role");
  if (!lc_uuid_valid(c.sub))
    return lc_err_set(err, LC_ERR_UNAUTH, "invalid access token: sub");
  lc_strlcpy(id->user_id, c.sub, sizeof(id->user_id));
  lc_strlcpy(id->role, c.role, sizeof(id->role));
  lc_strlcpy(id->scope, "full", sizeof(id->scope));
  return LC_OK;
}
