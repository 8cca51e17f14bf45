/* oauth_provider.c - see oauth_provider.h. */
#include "oauth_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lc/http.h"
#include "lc/log.h"
#include "lc/util.h"

#define RESP_MAX (256 * 1024)
#define TOKEN_MAX 2048
#define UA "User-Agent: credit-saas-auth/1"

static int set_str(char *dst, size_t cap, const char *v) {
  return lc_strlcpy(dst, v != NULL ? v : "", cap);
}

int oauth_provider_init(oauth_provider *p, const char *name, const char *client_id,
                        const char *client_secret, const char *redirect_uri,
                        const char *discovery_url, const char *authorize_url,
                        const char *token_url, const char *api_url, char err[LC_ERR_LEN]) {
  int oidc = strcmp(name, "google") == 0;
  int any, all;
  size_t n;

  memset(p, 0, sizeof(*p));
  lc_strlcpy(p->name, name, sizeof(p->name));
  p->oidc = oidc;
  p->scope = oidc ? "openid email profile" : "read:user user:email";
  pthread_mutex_init(&p->mu, NULL);
  any = client_id != NULL || client_secret != NULL || redirect_uri != NULL;
  all = client_id != NULL && client_secret != NULL && redirect_uri != NULL;
  if (oidc) {
    any = any || discovery_url != NULL;
    all = all && discovery_url != NULL;
  } else {
    any = any || authorize_url != NULL || token_url != NULL || api_url != NULL;
    all = all && authorize_url != NULL && token_url != NULL && api_url != NULL;
  }
  if (!any)
    return LC_OK;
  if (!all)
    return lc_err_set(err, LC_ERR_PARAM,
                      "%s OAuth is partly configured: set every AUTH_%s_* variable or none",
                      name, oidc ? "GOOGLE" : "GITHUB");
  if (set_str(p->client_id, sizeof(p->client_id), client_id) != LC_OK ||
      set_str(p->client_secret, sizeof(p->client_secret), client_secret) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "%s client id/secret too long", name);
  if (!oauth_url_allowed(redirect_uri) ||
      set_str(p->redirect_uri, sizeof(p->redirect_uri), redirect_uri) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM, "%s redirect URI must be https (or http://127.0.0.1)",
                      name);
  if (oidc) {
    if (!oauth_url_allowed(discovery_url) ||
        set_str(p->discovery_url, sizeof(p->discovery_url), discovery_url) != LC_OK)
      return lc_err_set(err, LC_ERR_PARAM,
                        "AUTH_GOOGLE_DISCOVERY_URL must be https (or http://127.0.0.1)");
  } else {
    if (!oauth_url_allowed(authorize_url) || !oauth_url_allowed(token_url) ||
        !oauth_url_allowed(api_url) ||
        set_str(p->authorize_url, sizeof(p->authorize_url), authorize_url) != LC_OK ||
        set_str(p->token_url, sizeof(p->token_url), token_url) != LC_OK ||
        set_str(p->api_url, sizeof(p->api_url), api_url) != LC_OK)
      return lc_err_set(err, LC_ERR_PARAM,
                        "AUTH_GITHUB_*_URL must be https (or http://127.0.0.1)");
    n = strlen(p->api_url);
    while (n > 0 && p->api_url[n - 1] == '/')
      p->api_url[--n] = '\0';
  }
  p->configured = 1;
  return LC_OK;
}

void oauth_provider_free(oauth_provider *p) {
  if (p == NULL)
    return;
  json_decref(p->jwks);
  p->jwks = NULL;
  sodium_memzero(p->client_secret, sizeof(p->client_secret));
  pthread_mutex_destroy(&p->mu);
}

/* GET/POST returning a parsed JSON value (new) and the status. */
static int http_json(const char *method, const char *url, const char *const *headers,
                     const char *body, long *status, json_t **out, char err[LC_ERR_LEN]) {
  lc_http_req rq;
  lc_http_resp rs;
  int rc;

  *out = NULL;
  *status = 0;
  if (!oauth_url_allowed(url))
    return lc_err_set(err, LC_ERR_PARAM, "provider URL not allowed");
  memset(&rq, 0, sizeof(rq));
  memset(&rs, 0, sizeof(rs));
  rq.method = method;
  rq.url = url;
  rq.headers = headers;
  rq.body = body;
  rq.body_len = body != NULL ? strlen(body) : 0;
  rq.timeout_ms = OAUTH_HTTP_TIMEOUT_MS;
  rq.max_resp = RESP_MAX;
  rc = lc_http_do(&rq, &rs, err);
  if (rc != LC_OK) {
    lc_http_resp_free(&rs);
    return rc == LC_ERR_TIMEOUT ? LC_ERR_UNAVAIL : rc;
  }
  *status = rs.status;
  if (rs.body != NULL && rs.len > 0)
    *out = json_loadb(rs.body, rs.len, JSON_REJECT_DUPLICATES, NULL);
  if (rs.body != NULL)
    sodium_memzero(rs.body, rs.len); /* may hold provider tokens */
  lc_http_resp_free(&rs);
  if (*out == NULL)
    return lc_err_set(err, LC_ERR_IO, "provider answered %ld without JSON", *status);
  return LC_OK;
}

static int copy_url_member(const json_t *doc, const char *name, char out[OAUTH_URL_MAX],
                           char err[LC_ERR_LEN]) {
  const json_t *v = json_object_get(doc, name);
  if (!json_is_string(v) || !oauth_url_allowed(json_string_value(v)) ||
      lc_strlcpy(out, json_string_value(v), OAUTH_URL_MAX) != LC_OK)
    return lc_err_set(err, LC_ERR_UNAVAIL, "discovery %s missing or not allowed", name);
  return LC_OK;
}

/* Loads the discovery document once (Google). */
static int discover(oauth_provider *p, char err[LC_ERR_LEN]) {
  static const char *const hdrs[] = {"Accept: application/json", UA, NULL};
  static const char suffix[] = "/.well-known/openid-configuration";
  char issuer[OAUTH_URL_MAX], authz[OAUTH_URL_MAX], token[OAUTH_URL_MAX], jwks[OAUTH_URL_MAX];
  char expect[OAUTH_URL_MAX + sizeof(suffix)];
  json_t *doc = NULL;
  long status = 0;
  int done, rc;

  pthread_mutex_lock(&p->mu);
  done = p->discovered;
  pthread_mutex_unlock(&p->mu);
  if (done)
    return LC_OK;
  rc = http_json("GET", p->discovery_url, hdrs, NULL, &status, &doc, err);
  if (rc != LC_OK) {
    rc = LC_ERR_UNAVAIL;
    goto out;
  }
  if (status != 200 || !json_is_object(doc)) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "discovery answered %ld", status);
    goto out;
  }
  rc = copy_url_member(doc, "issuer", issuer, err);
  if (rc == LC_OK)
    rc = copy_url_member(doc, "authorization_endpoint", authz, err);
  if (rc == LC_OK)
    rc = copy_url_member(doc, "token_endpoint", token, err);
  if (rc == LC_OK)
    rc = copy_url_member(doc, "jwks_uri", jwks, err);
  if (rc != LC_OK)
    goto out;
  /* OpenID Connect Discovery 1.0 §4.3: the issuer is the URL the document
   * was fetched under, minus the well-known suffix. */
  snprintf(expect, sizeof(expect), "%s%s", issuer, suffix);
  if (strcmp(expect, p->discovery_url) != 0) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "discovery issuer does not match its URL");
    goto out;
  }
  pthread_mutex_lock(&p->mu);
  lc_strlcpy(p->issuer, issuer, sizeof(p->issuer));
  lc_strlcpy(p->authorize_url, authz, sizeof(p->authorize_url));
  lc_strlcpy(p->token_url, token, sizeof(p->token_url));
  lc_strlcpy(p->jwks_uri, jwks, sizeof(p->jwks_uri));
  p->discovered = 1;
  pthread_mutex_unlock(&p->mu);
out:
  json_decref(doc);
  return rc;
}

int oauth_provider_authorize_url(oauth_provider *p, char out[OAUTH_URL_MAX],
                                 char err[LC_ERR_LEN]) {
  int rc;
  if (p->oidc) {
    rc = discover(p, err);
    if (rc != LC_OK)
      return rc;
  }
  pthread_mutex_lock(&p->mu);
  lc_strlcpy(out, p->authorize_url, OAUTH_URL_MAX);
  pthread_mutex_unlock(&p->mu);
  return LC_OK;
}

/* POSTs the code to the token endpoint; copies access_token and (OIDC)
 * id_token. Refusals (non-200 or an "error" member) are LC_ERR_UNAUTH. */
static int exchange(oauth_provider *p, const char *code, const char *verifier,
                    char access[TOKEN_MAX], char *idt, size_t idtcap, char err[LC_ERR_LEN]) {
  static const char *const hdrs[] = {"Content-Type: application/x-www-form-urlencoded",
                                     "Accept: application/json", UA, NULL};
  char body[4096] = "", url[OAUTH_URL_MAX];
  json_t *doc = NULL;
  const json_t *at, *it;
  long status = 0;
  int rc;

  access[0] = '\0';
  if (idt != NULL)
    idt[0] = '\0';
  pthread_mutex_lock(&p->mu);
  lc_strlcpy(url, p->token_url, sizeof(url));
  pthread_mutex_unlock(&p->mu);
  rc = oauth_query_add(body, sizeof(body), "grant_type", "authorization_code");
  if (rc == LC_OK)
    rc = oauth_query_add(body, sizeof(body), "code", code);
  if (rc == LC_OK)
    rc = oauth_query_add(body, sizeof(body), "redirect_uri", p->redirect_uri);
  if (rc == LC_OK)
    rc = oauth_query_add(body, sizeof(body), "client_id", p->client_id);
  if (rc == LC_OK)
    rc = oauth_query_add(body, sizeof(body), "client_secret", p->client_secret);
  if (rc == LC_OK)
    rc = oauth_query_add(body, sizeof(body), "code_verifier", verifier);
  if (rc != LC_OK) {
    rc = lc_err_set(err, LC_ERR_PARAM, "token request too large");
    goto out;
  }
  rc = http_json("POST", url, hdrs, body, &status, &doc, err);
  if (rc != LC_OK)
    goto out;
  if (status != 200 || !json_is_object(doc) || json_object_get(doc, "error") != NULL) {
    const json_t *e = json_is_object(doc) ? json_object_get(doc, "error") : NULL;
    rc = lc_err_set(err, LC_ERR_UNAUTH, "token endpoint refused the code (%ld, %.40s)", status,
                    json_is_string(e) ? json_string_value(e) : "-");
    goto out;
  }
  at = json_object_get(doc, "access_token");
  if (!json_is_string(at) || json_string_length(at) == 0 ||
      lc_strlcpy(access, json_string_value(at), TOKEN_MAX) != LC_OK) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "token response without a usable access_token");
    goto out;
  }
  if (idt != NULL) {
    it = json_object_get(doc, "id_token");
    if (!json_is_string(it) || lc_strlcpy(idt, json_string_value(it), idtcap) != LC_OK) {
      rc = lc_err_set(err, LC_ERR_UNAUTH, "token response without a usable id_token");
      goto out;
    }
  }
out:
  sodium_memzero(body, sizeof(body));
  json_decref(doc);
  if (rc != LC_OK)
    sodium_memzero(access, TOKEN_MAX);
  return rc;
}

/* Fetches the JWKS and replaces the cache; *out is a new reference. */
static int fetch_jwks(oauth_provider *p, json_t **out, char err[LC_ERR_LEN]) {
  static const char *const hdrs[] = {"Accept: application/json", UA, NULL};
  char url[OAUTH_URL_MAX];
  json_t *doc = NULL;
  long status = 0;
  int rc;

  *out = NULL;
  pthread_mutex_lock(&p->mu);
  lc_strlcpy(url, p->jwks_uri, sizeof(url));
  p->jwks_fetched_ms = lc_mono_ms();
  if (p->jwks_fetched_ms == 0)
    p->jwks_fetched_ms = 1;
  pthread_mutex_unlock(&p->mu);
  rc = http_json("GET", url, hdrs, NULL, &status, &doc, err);
  if (rc != LC_OK)
    return LC_ERR_UNAVAIL;
  if (status != 200 || !json_is_array(json_object_get(doc, "keys"))) {
    json_decref(doc);
    return lc_err_set(err, LC_ERR_UNAVAIL, "JWKS answered %ld without keys", status);
  }
  pthread_mutex_lock(&p->mu);
  json_decref(p->jwks);
  p->jwks = json_incref(doc);
  pthread_mutex_unlock(&p->mu);
  *out = doc;
  lc_log_info("oauth - %s JWKS fetched (%zu keys)", p->name,
              json_array_size(json_object_get(doc, "keys")));
  return LC_OK;
}

static int google_identity(oauth_provider *p, const char *idt, const char *nonce,
                           oauth_identity *id, char err[LC_ERR_LEN]) {
  char issuer[OAUTH_URL_MAX];
  oauth_idt_expect x;
  oauth_idt_claims c;
  json_t *jwks = NULL;
  int may, rc;

  pthread_mutex_lock(&p->mu);
  jwks = json_incref(p->jwks);
  lc_strlcpy(issuer, p->issuer, sizeof(issuer));
  pthread_mutex_unlock(&p->mu);
  if (jwks == NULL) {
    rc = fetch_jwks(p, &jwks, err);
    if (rc != LC_OK)
      return rc;
  }
  x.issuer = issuer;
  x.client_id = p->client_id;
  x.nonce = nonce;
  rc = oauth_idtoken_verify(idt, jwks, &x, lc_now_ms() / 1000, &c, err);
  if (rc == LC_ERR_NOTFOUND) {
    /* Unknown kid: the provider may have rotated keys. Refetch at most once
     * a minute so forged kids cannot make us hammer the provider. */
    pthread_mutex_lock(&p->mu);
    may = oauth_jwks_may_refetch(p->jwks_fetched_ms, lc_mono_ms());
    pthread_mutex_unlock(&p->mu);
    if (may) {
      json_decref(jwks);
      jwks = NULL;
      rc = fetch_jwks(p, &jwks, err);
      if (rc == LC_OK)
        rc = oauth_idtoken_verify(idt, jwks, &x, lc_now_ms() / 1000, &c, err);
    }
    if (rc == LC_ERR_NOTFOUND)
      rc = lc_err_set(err, LC_ERR_UNAUTH, "id_token signed with an unknown key");
  }
  json_decref(jwks);
  if (rc != LC_OK)
    return rc;
  lc_strlcpy(id->subject, c.sub, sizeof(id->subject));
  lc_strlcpy(id->email, c.email, sizeof(id->email));
  id->email_verified = c.email_verified;
  return LC_OK;
}

int oauth_github_primary_email(const char *body, char email[OAUTH_EMAIL_MAX + 1],
                               int *verified) {
  json_t *doc = body != NULL ? json_loads(body, JSON_REJECT_DUPLICATES, NULL) : NULL;
  size_t i;
  const json_t *e;
  int rc = LC_ERR_NOTFOUND;

  email[0] = '\0';
  *verified = 0;
  if (!json_is_array(doc)) {
    json_decref(doc);
    return LC_ERR_UNAUTH;
  }
  json_array_foreach(doc, i, e) {
    const json_t *addr = json_object_get(e, "email");
    if (!json_is_true(json_object_get(e, "primary")) || !json_is_string(addr) ||
        json_string_length(addr) > OAUTH_EMAIL_MAX)
      continue;
    lc_strlcpy(email, json_string_value(addr), OAUTH_EMAIL_MAX + 1);
    if (json_is_true(json_object_get(e, "verified"))) {
      *verified = 1;
      rc = LC_OK;
    }
    break;
  }
  json_decref(doc);
  return rc;
}

/* GET api_url + path with the user's token; *out new on LC_OK. */
static int github_get(oauth_provider *p, const char *path, const char *access, json_t **out,
                      char err[LC_ERR_LEN]) {
  char url[OAUTH_URL_MAX + 32], auth[TOKEN_MAX + 32];
  const char *hdrs[] = {"Accept: application/vnd.github+json", "X-GitHub-Api-Version: 2022-11-28",
                        UA, auth, NULL};
  long status = 0;
  int rc;

  snprintf(url, sizeof(url), "%s%s", p->api_url, path);
  snprintf(auth, sizeof(auth), "Authorization: Bearer %s", access);
  rc = http_json("GET", url, hdrs, NULL, &status, out, err);
  sodium_memzero(auth, sizeof(auth));
  if (rc != LC_OK)
    return rc;
  if (status != 200) {
    json_decref(*out);
    *out = NULL;
    return lc_err_set(err, LC_ERR_UNAUTH, "GitHub %s answered %ld", path, status);
  }
  return LC_OK;
}

static int github_identity(oauth_provider *p, const char *access, oauth_identity *id,
                           char err[LC_ERR_LEN]) {
  json_t *user = NULL, *emails = NULL;
  const json_t *uid;
  char *text = NULL;
  int rc;

  rc = github_get(p, "/user", access, &user, err);
  if (rc != LC_OK)
    goto out;
  uid = json_object_get(user, "id");
  if (!json_is_integer(uid) || json_integer_value(uid) <= 0) {
    rc = lc_err_set(err, LC_ERR_UNAUTH, "GitHub /user without a numeric id");
    goto out;
  }
  snprintf(id->subject, sizeof(id->subject), "%lld", (long long)json_integer_value(uid));
  rc = github_get(p, "/user/emails", access, &emails, err);
  if (rc != LC_OK)
    goto out;
  text = json_dumps(emails, JSON_COMPACT);
  rc = oauth_github_primary_email(text, id->email, &id->email_verified);
  if (rc == LC_ERR_NOTFOUND)
    rc = LC_OK; /* no verified primary: signin refuses unless already linked */
  else if (rc != LC_OK)
    lc_err_set(err, LC_ERR_UNAUTH, "GitHub /user/emails malformed");
out:
  free(text);
  json_decref(user);
  json_decref(emails);
  return rc;
}

int oauth_provider_identify(oauth_provider *p, const char *code, const char *verifier,
                            const char *nonce, oauth_identity *id, char err[LC_ERR_LEN]) {
  char access[TOKEN_MAX];
  char *idt = NULL;
  int rc;

  memset(id, 0, sizeof(*id));
  id->provider = p->name;
  if (p->oidc) {
    rc = discover(p, err);
    if (rc != LC_OK)
      return rc;
    idt = lc_xmalloc(OAUTH_IDTOKEN_MAX + 1);
  }
  rc = exchange(p, code, verifier, access, idt, OAUTH_IDTOKEN_MAX + 1, err);
  if (rc != LC_OK)
    goto out;
  if (p->oidc)
    rc = google_identity(p, idt, nonce, id, err);
  else
    rc = github_identity(p, access, id, err);
out:
  /* The provider's access token is used for this request only and never stored. */
  sodium_memzero(access, sizeof(access));
  if (idt != NULL) {
    sodium_memzero(idt, OAUTH_IDTOKEN_MAX + 1);
    free(idt);
  }
  if (rc != LC_OK) {
    const char *name = p->name;
    memset(id, 0, sizeof(*id));
    id->provider = name;
  }
  return rc;
}
