/* oauth_handlers.h - GET /v1/auth/oauth/{google|github}/start and
 * /callback (SPEC §3), and the OAuth part of the auth-svc configuration.
 *
 * start: 302 to the provider's authorization endpoint with response_type=
 * code, client_id, redirect_uri, scope, state (256-bit), PKCE S256
 * code_challenge and (Google) nonce. The state hash, verifier, nonce,
 * provider and the hash of a random browser-binding value are stored in
 * oauth_states (~10 min, single use); the binding value goes to the browser
 * in "__Host-oauth" (HttpOnly, Secure, SameSite=Lax - the callback is a
 * top-level cross-site redirect - Path=/).
 * callback: consumes the state (unknown, used, expired, other provider or
 * cookie mismatch -> 400 invalid_state), exchanges the code with the
 * verifier, identifies the user (oauth_provider.h), signs in / links /
 * creates (oauth_store.h), sets "__Host-refresh" exactly like login, clears
 * "__Host-oauth" and answers 302 to AUTH_OAUTH_SUCCESS_URL. No token is ever
 * put in a URL. Failures: problem+json 400/401/503, or - when
 * AUTH_OAUTH_ERROR_URL is set - 302 to it with "error=<code>" only.
 * A provider without configuration answers 404 on both routes. */
#ifndef AUTH_OAUTH_HANDLERS_H
#define AUTH_OAUTH_HANDLERS_H

#include <ulfius.h>

#include "accounts.h"
#include "lc/cfg.h"
#include "oauth_provider.h"

#define AUTH_OAUTH_COOKIE "__Host-oauth"

typedef struct {
  const auth_ctx *auth;              /* borrowed */
  oauth_provider google;
  oauth_provider github;
  char success_url[OAUTH_URL_MAX];
  char error_url[OAUTH_URL_MAX];     /* "" = answer problem+json */
  int64_t state_ttl;                 /* seconds */
} oauth_ctx;

/* Configuration entries (append to the daemon's lc_cfg_spec table). */
#define OAUTH_CFG_SPECS                                                                        \
  {"AUTH_GOOGLE_DISCOVERY_URL", LC_CFG_STR, 8, 1000, NULL, 0,                                \
   "Google OpenID discovery document URL (https; http only for 127.0.0.1)"},                  \
  {"AUTH_GOOGLE_CLIENT_ID", LC_CFG_STR, 1, 255, NULL, 0, "Google OAuth client id"},          \
  {"AUTH_GOOGLE_CLIENT_SECRET", LC_CFG_SECRET, 1, 255, NULL, 0, "Google OAuth client secret"}, \
  {"AUTH_GOOGLE_REDIRECT_URI", LC_CFG_STR, 8, 1000, NULL, 0,                                 \
   "public URL of GET /v1/auth/oauth/google/callback"},                                       \
  {"AUTH_GITHUB_AUTHORIZE_URL", LC_CFG_STR, 8, 1000, NULL, 0,                                \
   "GitHub authorize URL (https://github.com/login/oauth/authorize)"},                        \
  {"AUTH_GITHUB_TOKEN_URL", LC_CFG_STR, 8, 1000, NULL, 0,                                    \
   "GitHub token URL (https://github.com/login/oauth/access_token)"},                         \
  {"AUTH_GITHUB_API_URL", LC_CFG_STR, 8, 1000, NULL, 0,                                      \
   "GitHub REST API base (https://api.github.com)"},                                          \
  {"AUTH_GITHUB_CLIENT_ID", LC_CFG_STR, 1, 255, NULL, 0, "GitHub OAuth app client id"},      \
  {"AUTH_GITHUB_CLIENT_SECRET", LC_CFG_SECRET, 1, 255, NULL, 0, "GitHub OAuth app secret"},  \
  {"AUTH_GITHUB_REDIRECT_URI", LC_CFG_STR, 8, 1000, NULL, 0,                                 \
   "public URL of GET /v1/auth/oauth/github/callback"},                                       \
  {"AUTH_OAUTH_SUCCESS_URL", LC_CFG_STR, 1, 1000, "/", 1,                                    \
   "page the browser lands on after an OAuth sign-in (path or https URL)"},                   \
  {"AUTH_OAUTH_ERROR_URL", LC_CFG_STR, 1, 1000, NULL, 0,                                     \
   "page for OAuth failures (gets ?error=<code>); unset = problem+json"},                     \
  {"AUTH_OAUTH_STATE_TTL", LC_CFG_INT, 60, 3600, "600", 1,                                   \
   "lifetime of a started OAuth login (s)"}

/* Reads the OAUTH_CFG_SPECS settings from cfg into *o (auth borrowed).
 * LC_ERR_PARAM with err naming the variable on a bad or partial provider
 * configuration. Free with oauth_ctx_free. */
int oauth_ctx_init(oauth_ctx *o, const lc_cfg *cfg, const auth_ctx *auth, char err[LC_ERR_LEN]);
void oauth_ctx_free(oauth_ctx *o);

/* The two route handlers (user_data = oauth_ctx*). */
int oauth_h_start(const struct _u_request *req, struct _u_response *resp, void *ud);
int oauth_h_callback(const struct _u_request *req, struct _u_response *resp, void *ud);

/* Registers both routes at LC_PRIO_APP (the internal-auth middleware is
 * registered on "*" by auth_handlers_register). o must outlive inst.
 * LC_OK or LC_ERR. */
int oauth_handlers_register(struct _u_instance *inst, oauth_ctx *o);

#endif
