/* gw_routes.c - see gw_routes.h.
 *
 * One dispatch callback per route row, in this order: refuse credentials in
 * the query string (400) -> per-IP rate limit (429) -> authenticate (401 /
 * 503 while an API key cannot be checked) -> authorise (403) -> per-account
 * rate limit (429) -> forward with the signed identity (and, for sessions,
 * X-Auth-Jti / X-Auth-Exp in the signed identity). */
#include "gw_routes.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"
#include "gw_download.h"
#include "gw_upload.h"

/* The public API of SPEC §3: one row per route. */
static const gw_route ROUTES[] = {
    /* auth-svc */
    {"POST", "/v1/auth/signup", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0, GW_RL_SIGNUP, 0},
    {"POST", "/v1/auth/login", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0, GW_RL_LOGIN, 0},
    {"POST", "/v1/auth/refresh", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 1, GW_RL_REFRESH, 0},
    {"POST", "/v1/auth/logout", GW_UP_AUTH, GW_ACCESS_USER, GW_KEYS_NONE, 1, GW_RL_NONE, 1},
    {"POST", "/v1/auth/password", GW_UP_AUTH, GW_ACCESS_USER, GW_KEYS_NONE, 0, GW_RL_PASSWORD, 0},
    {"GET", "/v1/auth/oauth/:provider/start", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0,
     GW_RL_NONE, 0},
    {"GET", "/v1/auth/oauth/:provider/callback", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 1,
     GW_RL_NONE, 0},
    {"GET", "/v1/me", GW_UP_AUTH, GW_ACCESS_USER, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"GET", "/v1/admin/users", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"GET", "/v1/admin/users/:id", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"PATCH", "/v1/admin/users/:id", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_WRITE, 0, GW_RL_NONE, 0},
    {"POST", "/v1/admin/users/:id/revoke-tokens", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_WRITE, 0,
     GW_RL_NONE, 0},
    {"POST", "/v1/admin/api-keys", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_NONE, 0, GW_RL_NONE, 0},
    {"GET", "/v1/admin/api-keys", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"DELETE", "/v1/admin/api-keys/:id", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_NONE, 0, GW_RL_NONE,
     0},
    /* credit-svc */
    {"GET", "/v1/credits", GW_UP_CREDIT, GW_ACCESS_USER, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"GET", "/v1/credits/ledger", GW_UP_CREDIT, GW_ACCESS_USER, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"POST", "/v1/payments/checkout", GW_UP_CREDIT, GW_ACCESS_USER, GW_KEYS_NONE, 0,
     GW_RL_CHECKOUT, 0},
    {"POST", "/v1/payments/webhooks/stripe", GW_UP_CREDIT, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0,
     GW_RL_WEBHOOK, 0},
    {"POST", "/v1/payments/webhooks/razorpay", GW_UP_CREDIT, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0,
     GW_RL_WEBHOOK, 0},
    {"POST", "/v1/admin/users/:id/credits", GW_UP_CREDIT, GW_ACCESS_ADMIN, GW_KEYS_WRITE, 0,
     GW_RL_NONE, 0},
    {"GET", "/v1/admin/audit", GW_UP_CREDIT, GW_ACCESS_ADMIN, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    /* storage-svc */
    {"POST", "/v1/files", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_WRITE, 0, GW_RL_NONE, 0},
    {"GET", "/v1/files", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"GET", "/v1/files/:id", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"GET", "/v1/files/:id/content", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"DELETE", "/v1/files/:id", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_WRITE, 0, GW_RL_NONE, 0},
    {"POST", "/v1/reports", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_WRITE, 0, GW_RL_NONE, 0},
    {"GET", "/v1/reports", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"GET", "/v1/reports/:id", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"GET", "/v1/reports/:id/download", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0,
     GW_RL_NONE, 0},
    {"GET", "/v1/service/metadata/:file_id", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_ONLY, 0,
     GW_RL_NONE, 0},
    /* chain-svc */
    {"GET", "/v1/admin/chain", GW_UP_CHAIN, GW_ACCESS_ADMIN, GW_KEYS_READ, 0, GW_RL_NONE, 0},
    {"GET", "/v1/admin/reconcile", GW_UP_CHAIN, GW_ACCESS_ADMIN, GW_KEYS_READ, 0, GW_RL_NONE, 0},
};

#define NROUTES (sizeof(ROUTES) / sizeof(ROUTES[0]))

typedef struct {
  const gw_route *route;
  const gw_ctx *ctx;
} gw_binding;

static gw_binding BINDINGS[NROUTES];

const gw_route *gw_routes_table(size_t *n) {
  *n = NROUTES;
  return ROUTES;
}

static int is_one_of(const char *s, const char *a, const char *b) {
  return strcmp(s, a) == 0 || (b != NULL && strcmp(s, b) == 0);
}

int gw_routes_authorize(const gw_route *r, const lc_identity *id) {
  if (r->access == GW_ACCESS_PUBLIC)
    return LC_OK;
  if (id == NULL || id->user_id[0] == '\0')
    return LC_ERR_UNAUTH;
  int session = strcmp(id->scope, "full") == 0;
  if (session) {
    if (r->keys == GW_KEYS_ONLY)
      return LC_ERR_FORBIDDEN; /* machine endpoint: API keys only */
    if (!is_one_of(id->role, "admin", "user"))
      return LC_ERR_FORBIDDEN;
  } else {
    switch (r->keys) {
    case GW_KEYS_READ:
    case GW_KEYS_ONLY:
      if (!is_one_of(id->scope, "read", "admin"))
        return LC_ERR_FORBIDDEN;
      break;
    case GW_KEYS_WRITE:
      if (!is_one_of(id->scope, "write", "admin"))
        return LC_ERR_FORBIDDEN;
      break;
    default: /* GW_KEYS_NONE: sessions only */
      return LC_ERR_FORBIDDEN;
    }
    if (!is_one_of(id->role, "admin", "user") && strcmp(id->role, "service") != 0)
      return LC_ERR_FORBIDDEN;
  }
  if (r->access == GW_ACCESS_ADMIN) {
    if (strcmp(id->role, "admin") != 0)
      return LC_ERR_FORBIDDEN;
    if (!session && strcmp(id->scope, "admin") != 0)
      return LC_ERR_FORBIDDEN;
  }
  return LC_OK;
}

/* Value of cookie name in a Cookie header into out; 1 when found. */
static int cookie_value(const char *hdr, const char *name, char *out, size_t outsz) {
  size_t nl = strlen(name);
  const char *p = hdr;
  while (p != NULL && *p != '\0') {
    while (*p == ' ' || *p == ';')
      p++;
    const char *end = strchr(p, ';');
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
    if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
      size_t vl = len - nl - 1;
      if (vl + 1 > outsz)
        return 0;
      memcpy(out, p + nl + 1, vl);
      out[vl] = '\0';
      return 1;
    }
    p = end;
  }
  return 0;
}

void gw_routes_account_key(gw_rl_class cls, const char *body, size_t body_len,
                           const char *cookie_header, const char *user_id, char *out,
                           size_t outsz) {
  out[0] = '\0';
  if (cls == GW_RL_PASSWORD || cls == GW_RL_CHECKOUT) {
    if (user_id != NULL)
      lc_strlcpy(out, user_id, outsz);
    return;
  }
  if (cls != GW_RL_LOGIN && cls != GW_RL_REFRESH)
    return;
  json_t *j = NULL;
  if (body != NULL && body_len > 0) {
    json_error_t jerr;
    j = json_loadb(body, body_len, 0, &jerr);
  }
  const json_t *v = json_object_get(j, cls == GW_RL_LOGIN ? "email" : "refresh_token");
  if (cls == GW_RL_LOGIN && json_is_string(v)) {
    /* lower-cased, trimmed: "Ann@X.com " and "ann@x.com" share a bucket */
    const char *e = json_string_value(v);
    while (*e == ' ' || *e == '\t')
      e++;
    size_t n = 0;
    for (; e[n] != '\0' && n + 1 < outsz; n++)
      out[n] = (char)((e[n] >= 'A' && e[n] <= 'Z') ? e[n] - 'A' + 'a' : e[n]);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
      n--;
    out[n] = '\0';
  } else if (cls == GW_RL_REFRESH) {
    char tok[1024] = "";
    if (json_is_string(v))
      lc_strlcpy(tok, json_string_value(v), sizeof(tok));
    else if (cookie_header != NULL)
      cookie_value(cookie_header, "__Host-refresh", tok, sizeof(tok));
    if (tok[0] != '\0' && outsz >= 65) {
      uint8_t h[32];
      lc_sha256(tok, strlen(tok), h);
      lc_hex_encode(h, 32, out);
    }
  }
  json_decref(j);
}

static const char *const RL_NAMES[GW_RL_COUNT] = {"none",     "signup",   "login",  "refresh",
                                                  "password", "checkout", "webhook"};

/* Takes a token from scope/key under lim; on refusal answers 429 with
 * Retry-After. Returns 1 when the request may go on. */
static int rl_take_or_429(const gw_ctx *ctx, const char *scope, const char *key,
                          const gw_rl_limit *lim, struct _u_response *resp) {
  int64_t retry = 0;
  if (ctx->rl == NULL || lim->n < 1)
    return 1;
  if (gw_rl_take(ctx->rl, scope, key, lim, lc_mono_ms(), &retry) == LC_OK)
    return 1;
  char ra[24];
  snprintf(ra, sizeof(ra), "%lld", (long long)retry);
  lc_problem(resp, 429, "rate-limited", "too many requests; retry later");
  u_map_put(resp->map_header, "Retry-After", ra);
  lc_metric_add("gateway_rate_limited_total", 1);
  lc_log_info("Security - rate limit %s hit", scope);
  return 0;
}

/* Priority LC_PRIO_LIMITS + request id and security headers on every answer. */
static int cb_security_headers(const struct _u_request *req, struct _u_response *resp, void *ud) {
  (void)ud;
  return gw_routes_security_headers(req, resp);
}

int gw_routes_security_headers(const struct _u_request *req, struct _u_response *resp) {
  char rid[37];
  lc_uuid_v4(rid);
  lc_log_set_rid(rid);
  u_map_put(resp->map_header, "X-Request-Id", rid);
  u_map_put(resp->map_header, "Strict-Transport-Security", "max-age=63072000; includeSubDomains");
  u_map_put(resp->map_header, "X-Content-Type-Options", "nosniff");
  u_map_put(resp->map_header, "Referrer-Policy", "no-referrer");
  u_map_put(resp->map_header, "Cache-Control", "no-store");
  /* JSON API: nothing may be loaded, framed or executed from an answer. */
  u_map_put(resp->map_header, "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'");
  u_map_put(resp->map_header, "X-Frame-Options", "DENY");
  /* A percent-encoded NUL would be decoded into C strings and silently cut
   * an id, cursor or name short: refuse it before anything else. */
  if (req->http_url != NULL && strcasestr(req->http_url, "%00") != NULL)
    return lc_problem(resp, 400, "bad-request", "the request target contains an encoded NUL");
  return U_CALLBACK_CONTINUE;
}

int gw_routes_admit(const gw_route *r, const gw_ctx *ctx, const struct _u_request *req,
                    struct _u_response *resp, gw_principal *pp, char *ip, size_t ipsz) {
  char err[LC_ERR_LEN] = "";
  gw_principal p;
  memset(&p, 0, sizeof(p));
  lc_strlcpy(p.id.role, "anon", sizeof(p.id.role));
  const char *rid = u_map_get_case(resp->map_header, "X-Request-Id");
  lc_strlcpy(p.id.request_id, rid ? rid : lc_log_rid(), sizeof(p.id.request_id));

  /* Credentials never travel in the URL (they would land in logs/history). */
  const char *q = req->http_url != NULL ? strchr(req->http_url, '?') : NULL;
  if (q != NULL && gw_authn_query_has_credential(q + 1)) {
    lc_log_info("Security - credential in the query string refused on %s %s", req->http_verb,
                req->url_path);
    return lc_problem(resp, 400, "credential-in-query",
                      "credentials are accepted only in the Authorization or X-API-Key header");
  }

  /* Client address: the socket's peer, or the trusted proxy's last hop. */
  char peer[64];
  gw_proxy_client_ip(req, peer, sizeof(peer));
  gw_rl_client_ip(peer, u_map_get_case(req->map_header, "X-Forwarded-For"), ctx->trusted_proxy,
                  ip, ipsz);

  const gw_rl_rule *rule = &ctx->rules[r->rl];
  char scope[48];
  if (r->rl != GW_RL_NONE) {
    snprintf(scope, sizeof(scope), "%s:ip", RL_NAMES[r->rl]);
    if (!rl_take_or_429(ctx, scope, ip, &rule->ip, resp))
      return U_CALLBACK_COMPLETE;
  }

  if (r->access != GW_ACCESS_PUBLIC) {
    if (ctx->require_revocations && ctx->revocations_loaded != NULL &&
        !ctx->revocations_loaded(ctx->revocations_ud))
      return lc_problem(resp, 503, "not-ready",
                        "the gateway is still loading the revocation list; retry shortly");
    const char *authz = NULL, *apikey = NULL;
    int rc = gw_authn_headers(req, &authz, &apikey, err);
    if (rc == LC_OK)
      rc = gw_authn_credentials(&ctx->authn, authz, apikey, (int64_t)time(NULL), lc_mono_ms(),
                                &p, err);
    if (rc == LC_ERR_UNAVAIL) {
      lc_log_error("gw_dispatch - %s", err);
      return lc_problem(resp, 503, "upstream-unavailable",
                        "credentials cannot be checked right now; retry shortly");
    }
    if (rc != LC_OK) {
      lc_log_info("Security - rejected credentials on %s %s: %s", req->http_verb, req->url_path,
                  err);
      lc_metric_add("gateway_auth_rejected_total", 1);
      u_map_put(resp->map_header, "WWW-Authenticate", "Bearer realm=\"api\"");
      return lc_problem(resp, 401, "unauthorized", "missing, invalid or expired credentials");
    }
    lc_strlcpy(p.id.request_id, rid ? rid : lc_log_rid(), sizeof(p.id.request_id));
  }
  int az = gw_routes_authorize(r, &p.id);
  if (az == LC_ERR_FORBIDDEN) {
    lc_log_info("Security - %s %s refused for role %s scope %s", req->http_verb, req->url_path,
                p.id.role, p.id.scope);
    return lc_problem(resp, 403, "forbidden", "this action needs another role or scope");
  }
  if (az != LC_OK)
    return lc_problem(resp, 401, "unauthorized", "missing, invalid or expired credentials");

  if (r->rl != GW_RL_NONE && rule->account.n > 0) {
    char acct[256];
    gw_routes_account_key(r->rl, req->binary_body, req->binary_body_length,
                          r->pass_cookie ? u_map_get_case(req->map_header, "Cookie") : NULL,
                          p.id.user_id, acct, sizeof(acct));
    snprintf(scope, sizeof(scope), "%s:account", RL_NAMES[r->rl]);
    if (acct[0] != '\0' && !rl_take_or_429(ctx, scope, acct, &rule->account, resp))
      return U_CALLBACK_COMPLETE;
  }

  /* The verified session's token id and expiry (auth-svc's logout revokes
   * exactly this token), signed as part of the identity. Never taken from
   * the client. */
  p.id.jti[0] = '\0';
  p.id.exp = 0;
  if (r->access != GW_ACCESS_PUBLIC && !p.is_key && p.jti[0] != '\0' &&
      lc_strlcpy(p.id.jti, p.jti, sizeof(p.id.jti)) == LC_OK)
    p.id.exp = p.exp;
  *pp = p;
  return U_CALLBACK_CONTINUE;
}

static int cb_dispatch(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const gw_binding *b = ud;
  const gw_route *r = b->route;
  const gw_ctx *ctx = b->ctx;
  char err[LC_ERR_LEN] = "", ip[64];
  gw_principal p;
  int ret = gw_routes_admit(r, ctx, req, resp, &p, ip, sizeof(ip));
  if (ret != U_CALLBACK_CONTINUE)
    return ret;

  const gw_upstream *up = &ctx->up[r->up];
  int rc = gw_proxy_forward_ex(up, req, &p.id, r->pass_cookie, ip, NULL, resp, err);
  if (rc == LC_OK) {
    lc_metric_add("gateway_forwarded_total", 1);
    /* The instance that relayed a logout refuses the token before its
     * answer leaves, not only when auth.token.revoked comes back over the
     * broker (other instances still learn it from the event). */
    if (r->ends_session && resp->status >= 200 && resp->status < 300 && p.id.jti[0] != '\0' &&
        ctx->authn.rv != NULL &&
        gw_revoke_add_jti(ctx->authn.rv, p.id.jti, p.id.user_id, p.id.exp,
                          lc_now_ms() / 1000) != LC_OK)
      lc_log_error("gw_dispatch - cannot record the logged-out token locally");
    return U_CALLBACK_COMPLETE;
  }
  lc_log_error("gw_dispatch - %s unavailable: %s", up->name, err);
  lc_metric_add("gateway_upstream_errors_total", 1);
  if (rc == LC_ERR_TIMEOUT)
    return lc_problem(resp, 504, "upstream-timeout", "the service did not answer in time");
  if (rc == LC_ERR_TOO_LARGE && strlen(req->http_url) > 1024)
    return lc_problem(resp, 414, "uri-too-long", "the request target is too long");
  if (rc == LC_ERR_TOO_LARGE)
    return lc_problem(resp, 502, "bad-gateway", "the service answered more than the gateway relays");
  if (rc == LC_ERR_PARAM)
    return lc_problem(resp, 400, "bad-request",
                      "malformed request target, Content-Type or Idempotency-Key");
  return lc_problem(resp, 503, "upstream-unavailable", "the service is temporarily unavailable");
}

int gw_routes_register(struct _u_instance *inst, const gw_ctx *ctx, char err[LC_ERR_LEN]) {
  if (lc_svc_route(inst, "*", "*", LC_PRIO_LIMITS, cb_security_headers, NULL) != LC_OK)
    return lc_err_set(err, LC_ERR, "cannot register security headers");
  /* Raw-request checks before ulfius buffers a body or drops and cuts header
   * values: an oversized Content-Length is a 413 at once, %00 in the target
   * and an Idempotency-Key that is not 1..255 visible ASCII bytes (NUL,
   * non-ASCII) are 400s; answers carry the security headers. */
  static const char *const strict[] = {"Idempotency-Key", NULL};
  const lc_svc_guard_cfg guard = {strict, 255, cb_security_headers, NULL};
  if (lc_svc_guard(inst, &guard) != LC_OK)
    return lc_err_set(err, LC_ERR, "cannot register the request guard");
  for (size_t i = 0; i < NROUTES; i++) {
    BINDINGS[i].route = &ROUTES[i];
    BINDINGS[i].ctx = ctx;
    /* uploads stream through (gw_upload.h), outside ulfius */
    if (strcmp(ROUTES[i].method, "POST") == 0 && strcmp(ROUTES[i].path, "/v1/files") == 0) {
      if (gw_upload_register(inst, &ROUTES[i], ctx, err) != LC_OK)
        return LC_ERR;
      continue;
    }
    /* file content is relayed while it arrives (gw_download.h) */
    if (strcmp(ROUTES[i].method, "GET") == 0 &&
        strcmp(ROUTES[i].path, "/v1/files/:id/content") == 0) {
      if (gw_download_register(inst, &ROUTES[i], ctx, err) != LC_OK)
        return LC_ERR;
      continue;
    }
    if (lc_svc_route(inst, ROUTES[i].method, ROUTES[i].path, LC_PRIO_APP, cb_dispatch,
                     &BINDINGS[i]) != LC_OK)
      return lc_err_set(err, LC_ERR, "cannot register %s %s", ROUTES[i].method, ROUTES[i].path);
  }
  return LC_OK;
}
