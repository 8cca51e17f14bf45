/* gw_routes.c - see gw_routes.h. */
#include "gw_routes.h"

#include <string.h>
#include <time.h>

#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"

/* The public API of SPEC §3: one row per route. */
static const gw_route ROUTES[] = {
    /* auth-svc */
    {"POST", "/v1/auth/signup", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0},
    {"POST", "/v1/auth/login", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0},
    {"POST", "/v1/auth/refresh", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 1},
    {"POST", "/v1/auth/logout", GW_UP_AUTH, GW_ACCESS_USER, GW_KEYS_NONE, 1},
    {"POST", "/v1/auth/password", GW_UP_AUTH, GW_ACCESS_USER, GW_KEYS_NONE, 0},
    {"GET", "/v1/auth/oauth/:provider/start", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0},
    {"GET", "/v1/auth/oauth/:provider/callback", GW_UP_AUTH, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 1},
    {"GET", "/v1/me", GW_UP_AUTH, GW_ACCESS_USER, GW_KEYS_READ, 0},
    {"GET", "/v1/admin/users", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_READ, 0},
    {"GET", "/v1/admin/users/:id", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_READ, 0},
    {"PATCH", "/v1/admin/users/:id", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_WRITE, 0},
    {"POST", "/v1/admin/users/:id/revoke-tokens", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_WRITE, 0},
    {"POST", "/v1/admin/api-keys", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_NONE, 0},
    {"GET", "/v1/admin/api-keys", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_READ, 0},
    {"DELETE", "/v1/admin/api-keys/:id", GW_UP_AUTH, GW_ACCESS_ADMIN, GW_KEYS_NONE, 0},
    /* credit-svc */
    {"GET", "/v1/credits", GW_UP_CREDIT, GW_ACCESS_USER, GW_KEYS_READ, 0},
    {"GET", "/v1/credits/ledger", GW_UP_CREDIT, GW_ACCESS_USER, GW_KEYS_READ, 0},
    {"POST", "/v1/payments/checkout", GW_UP_CREDIT, GW_ACCESS_USER, GW_KEYS_NONE, 0},
    {"POST", "/v1/payments/webhooks/stripe", GW_UP_CREDIT, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0},
    {"POST", "/v1/payments/webhooks/razorpay", GW_UP_CREDIT, GW_ACCESS_PUBLIC, GW_KEYS_NONE, 0},
    {"POST", "/v1/admin/users/:id/credits", GW_UP_CREDIT, GW_ACCESS_ADMIN, GW_KEYS_WRITE, 0},
    {"GET", "/v1/admin/audit", GW_UP_CREDIT, GW_ACCESS_ADMIN, GW_KEYS_READ, 0},
    /* storage-svc */
    {"POST", "/v1/files", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_WRITE, 0},
    {"GET", "/v1/files", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0},
    {"GET", "/v1/files/:id", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0},
    {"GET", "/v1/files/:id/content", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0},
    {"DELETE", "/v1/files/:id", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_WRITE, 0},
    {"POST", "/v1/reports", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_WRITE, 0},
    {"GET", "/v1/reports", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0},
    {"GET", "/v1/reports/:id", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0},
    {"GET", "/v1/reports/:id/download", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_READ, 0},
    {"GET", "/v1/service/metadata/:file_id", GW_UP_STORAGE, GW_ACCESS_USER, GW_KEYS_ONLY, 0},
    /* chain-svc */
    {"GET", "/v1/admin/chain", GW_UP_CHAIN, GW_ACCESS_ADMIN, GW_KEYS_READ, 0},
    {"GET", "/v1/admin/reconcile", GW_UP_CHAIN, GW_ACCESS_ADMIN, GW_KEYS_READ, 0},
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

int gw_routes_authorize(const gw_route *r, const lc_identity *id) {
  if (r->access == GW_ACCESS_PUBLIC)
    return LC_OK;
  if (id == NULL || id->user_id[0] == '\0')
    return LC_ERR_UNAUTH;
  if (r->access == GW_ACCESS_ADMIN && strcmp(id->role, "admin") != 0)
    return LC_ERR_FORBIDDEN;
  return LC_OK;
}

/* Priority LC_PRIO_LIMITS + request id and security headers on every answer. */
static int cb_security_headers(const struct _u_request *req, struct _u_response *resp, void *ud) {
  (void)req;
  (void)ud;
  char rid[37];
  lc_uuid_v4(rid);
  lc_log_set_rid(rid);
  u_map_put(resp->map_header, "X-Request-Id", rid);
  u_map_put(resp->map_header, "Strict-Transport-Security", "max-age=63072000; includeSubDomains");
  u_map_put(resp->map_header, "X-Content-Type-Options", "nosniff");
  u_map_put(resp->map_header, "Referrer-Policy", "no-referrer");
  u_map_put(resp->map_header, "Cache-Control", "no-store");
  return U_CALLBACK_CONTINUE;
}

static int cb_dispatch(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const gw_binding *b = ud;
  const gw_route *r = b->route;
  const gw_ctx *ctx = b->ctx;
  char err[LC_ERR_LEN] = "";

  lc_identity id;
  memset(&id, 0, sizeof(id));
  lc_strlcpy(id.role, "anon", sizeof(id.role));
  const char *rid = u_map_get_case(resp->map_header, "X-Request-Id");
  lc_strlcpy(id.request_id, rid ? rid : lc_log_rid(), sizeof(id.request_id));

  if (r->access != GW_ACCESS_PUBLIC) {
    const char *authz = NULL;
    int rc = gw_authn_header(req, &authz, err);
    if (rc == LC_OK)
      rc = gw_authn_verify(&ctx->authn, authz, (int64_t)time(NULL), &id, err);
    if (rc != LC_OK) {
      lc_log_info("Security - rejected credentials on %s %s: %s", req->http_verb, req->url_path,
                  err);
      u_map_put(resp->map_header, "WWW-Authenticate", "Bearer realm=\"api\"");
      return lc_problem(resp, 401, "unauthorized", "missing, invalid or expired credentials");
    }
    lc_strlcpy(id.request_id, rid ? rid : lc_log_rid(), sizeof(id.request_id));
  }
  int az = gw_routes_authorize(r, &id);
  if (az == LC_ERR_FORBIDDEN)
    return lc_problem(resp, 403, "forbidden", "this action needs another role or scope");
  if (az != LC_OK)
    return lc_problem(resp, 401, "unauthorized", "missing, invalid or expired credentials");

  const gw_upstream *up = &ctx->up[r->up];
  int rc = gw_proxy_forward(up, req, &id, r->pass_cookie, resp, err);
  if (rc == LC_OK) {
    lc_metric_add("gateway_forwarded_total", 1);
    return U_CALLBACK_COMPLETE;
  }
  lc_log_error("gw_dispatch - %s unavailable: %s", up->name, err);
  lc_metric_add("gateway_upstream_errors_total", 1);
  if (rc == LC_ERR_TIMEOUT)
    return lc_problem(resp, 504, "upstream-timeout", "the service did not answer in time");
  if (rc == LC_ERR_PARAM)
    return lc_problem(resp, 400, "bad-request", "malformed request target");
  return lc_problem(resp, 503, "upstream-unavailable", "the service is temporarily unavailable");
}

int gw_routes_register(struct _u_instance *inst, const gw_ctx *ctx, char err[LC_ERR_LEN]) {
  if (lc_svc_route(inst, "*", "*", LC_PRIO_LIMITS, cb_security_headers, NULL) != LC_OK)
    return lc_err_set(err, LC_ERR, "cannot register security headers");
  for (size_t i = 0; i < NROUTES; i++) {
    BINDINGS[i].route = &ROUTES[i];
    BINDINGS[i].ctx = ctx;
    if (lc_svc_route(inst, ROUTES[i].method, ROUTES[i].path, LC_PRIO_APP, cb_dispatch,
                     &BINDINGS[i]) != LC_OK)
      return lc_err_set(err, LC_ERR, "cannot register %s %s", ROUTES[i].method, ROUTES[i].path);
  }
  return LC_OK;
}
