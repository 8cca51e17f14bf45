/* oauth_provider.h - the two identity providers as seen from auth-svc:
 * configuration, Google's discovery document and JWKS cache, the
 * authorization-code exchange (client_secret_post, PKCE code_verifier) and
 * the identity lookups (Google: verified id_token; GitHub: GET /user and
 * GET /user/emails with the access token, which is then dropped - provider
 * tokens are never stored).
 *
 * Every provider URL must pass oauth_url_allowed (https, or plain http to
 * 127.0.0.1 for the local stand-ins); endpoints learned from discovery are
 * checked the same way. A provider struct is shared by all request threads:
 * its discovery/JWKS cache is guarded by its own mutex; the network is never
 * used while holding it. */
#ifndef AUTH_OAUTH_PROVIDER_H
#define AUTH_OAUTH_PROVIDER_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>

#include "lc/err.h"
#include "oauth_crypto.h"
#include "oauth_store.h"

#define OAUTH_URL_MAX 1024
#define OAUTH_HTTP_TIMEOUT_MS 5000

typedef struct {
  char name[8];                     /* "google" | "github" */
  int oidc;                         /* 1 = Google (OpenID Connect) */
  int configured;                   /* 0 -> routes answer 404 */
  char client_id[256];
  char client_secret[256];
  char redirect_uri[OAUTH_URL_MAX];
  const char *scope;                /* static string */
  /* GitHub: configured endpoints. Google: filled from discovery. */
  char authorize_url[OAUTH_URL_MAX];
  char token_url[OAUTH_URL_MAX];
  char api_url[OAUTH_URL_MAX];      /* GitHub REST base, no trailing '/' */
  /* Google only. */
  char discovery_url[OAUTH_URL_MAX];
  pthread_mutex_t mu;               /* guards the fields below */
  int discovered;
  char issuer[OAUTH_URL_MAX];
  char jwks_uri[OAUTH_URL_MAX];
  json_t *jwks;                     /* owned; NULL until fetched */
  int64_t jwks_fetched_ms;          /* monotonic ms of the last fetch start, 0 = never */
} oauth_provider;

/* Sets up a provider. All strings may be NULL; the provider is configured
 * when client id, secret and redirect URI are set together with, for
 * Google, discovery_url and, for GitHub, authorize/token/api URLs. A partial
 * configuration or a URL failing oauth_url_allowed is LC_ERR_PARAM (err
 * names the variable). Unconfigured is LC_OK with configured = 0. */
int oauth_provider_init(oauth_provider *p, const char *name, const char *client_id,
                        const char *client_secret, const char *redirect_uri,
                        const char *discovery_url, const char *authorize_url,
                        const char *token_url, const char *api_url, char err[LC_ERR_LEN]);
/* Frees the JWKS cache and the mutex; safe on a zeroed struct after init. */
void oauth_provider_free(oauth_provider *p);

/* Copies the authorization endpoint (Google: from the discovery document,
 * fetched on first use and cached). LC_ERR_UNAVAIL when discovery fails. */
int oauth_provider_authorize_url(oauth_provider *p, char out[OAUTH_URL_MAX],
                                 char err[LC_ERR_LEN]);

/* Exchanges code (with the PKCE verifier) and establishes who the user is.
 * nonce: the stored nonce (Google), ignored for GitHub. On LC_OK *id is
 * filled (id->provider = p->name). LC_ERR_UNAUTH when the provider refuses
 * the code or any token/identity check fails, LC_ERR_UNAVAIL / LC_ERR_IO
 * when it cannot be reached. */
int oauth_provider_identify(oauth_provider *p, const char *code, const char *verifier,
                            const char *nonce, oauth_identity *id, char err[LC_ERR_LEN]);

/* Picks the primary verified address from a GitHub GET /user/emails body
 * (array of {email, primary, verified, visibility}). LC_OK with email and
 * *verified = 1; LC_ERR_NOTFOUND when there is no primary verified address
 * (email then holds the primary address if any, *verified = 0);
 * LC_ERR_UNAUTH when the body is not such an array. */
int oauth_github_primary_email(const char *body, char email[OAUTH_EMAIL_MAX + 1],
                               int *verified);

#endif
