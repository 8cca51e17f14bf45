/* iauth.c - HMAC-SHA256 signed identity headers for daemon-to-daemon calls
 * (see lc/iauth.h for the canonical string). Verification is constant-time
 * on the MAC, checks clock skew and binds method, raw path+query as
 * received (ulfius request->http_url), identity, request id and a SHA-256
 * of the raw body. Thread-safe. */
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define H_RID "X-Request-Id"
#define H_USER "X-Auth-User"
#define H_ROLE "X-Auth-Role"
#define H_SCOPE "X-Auth-Scope"
#define H_TS "X-Auth-Ts"
#define H_SIG "X-Auth-Sig"
#define PATH_MAX_LEN 4096
#define METHOD_MAX_LEN 16

static int valid_role(const char *r) {
  static const char *const roles[] = {"admin", "user", "service", "anon", "system"};
  size_t i;
  for (i = 0; i < sizeof roles / sizeof roles[0]; i++)
    if (strcmp(r, roles[i]) == 0) return 1;
  return 0;
}

/* Scope: "" or lowercase letters, at most 15. */
static int valid_scope(const char *s) {
  size_t n = strlen(s), i;
  if (n > 15) return 0;
  for (i = 0; i < n; i++)
    if (s[i] < 'a' || s[i] > 'z') return 0;
  return 1;
}

/* Request id: "" or up to 63 of [A-Za-z0-9._:-]. */
static int valid_rid(const char *s) {
  size_t n = strlen(s), i;
  if (n > 63) return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_' || c == '.' || c == ':'))
      return 0;
  }
  return 1;
}

static int valid_method(const char *m) {
  size_t n = strlen(m), i;
  if (n == 0 || n > METHOD_MAX_LEN) return 0;
  for (i = 0; i < n; i++)
    if (m[i] < 'A' || m[i] > 'Z') return 0;
  return 1;
}

/* Path+query: starts with '/', printable ASCII without spaces. */
static int valid_path(const char *p) {
  size_t n = strlen(p), i;
  if (n == 0 || n > PATH_MAX_LEN || p[0] != '/') return 0;
  for (i = 0; i < n; i++)
    if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f) return 0;
  return 1;
}

static int valid_identity(const lc_identity *id) {
  if (memchr(id->user_id, '\0', sizeof id->user_id) == NULL ||
      memchr(id->role, '\0', sizeof id->role) == NULL ||
      memchr(id->scope, '\0', sizeof id->scope) == NULL ||
      memchr(id->request_id, '\0', sizeof id->request_id) == NULL)
    return 0;
  if (id->user_id[0] != '\0' && !lc_uuid_valid(id->user_id)) return 0;
  return valid_role(id->role) && valid_scope(id->scope) && valid_rid(id->request_id);
}

/* hex(HMAC(secret, canonical)) into sig_hex[65]. */
static void compute_sig(const uint8_t *secret, size_t secret_len, const char *method,
                        const char *path, const lc_identity *id, const char *ts,
                        const void *body, size_t body_len, char sig_hex[65]) {
  uint8_t bh[32], mac[32];
  char bh_hex[65];
  lc_sha256(body, body_len, bh);
  lc_hex_encode(bh, 32, bh_hex);
  {
    size_t cap = strlen(method) + strlen(path) + strlen(id->user_id) + strlen(id->role) +
                 strlen(id->scope) + strlen(id->request_id) + strlen(ts) + 64 + 16;
    char *canon = lc_xmalloc(cap);
    int n = snprintf(canon, cap, "v1\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s", method, path,
                     id->user_id, id->role, id->scope, id->request_id, ts, bh_hex);
    lc_hmac_sha256(secret, secret_len, canon, (size_t)n, mac);
    free(canon);
  }
  lc_hex_encode(mac, 32, sig_hex);
}

/* "Name: value", or "Name;" for an empty value (libcurl drops "Name:"). */
static void put_line(char line[160], const char *name, const char *value) {
  if (value[0] == '\0')
    snprintf(line, 160, "%s;", name);
  else
    snprintf(line, 160, "%s: %s", name, value);
}

int lc_iauth_sign(const uint8_t *secret, size_t secret_len, const char *method,
                  const char *path_query, const lc_identity *id, const void *body,
                  size_t body_len, int64_t now_s, lc_iauth_headers *out) {
  char ts[24], sig[65];
  int i;
  if (secret == NULL || secret_len == 0 || method == NULL || path_query == NULL ||
      id == NULL || out == NULL || (body == NULL && body_len > 0))
    return LC_ERR_PARAM;
  if (!valid_method(method) || !valid_path(path_query) || !valid_identity(id))
    return LC_ERR_PARAM;
  snprintf(ts, sizeof ts, "%" PRId64, now_s);
  compute_sig(secret, secret_len, method, path_query, id, ts, body, body_len, sig);
  memset(out, 0, sizeof *out);
  put_line(out->line[0], H_RID, id->request_id);
  put_line(out->line[1], H_USER, id->user_id);
  put_line(out->line[2], H_ROLE, id->role);
  put_line(out->line[3], H_SCOPE, id->scope);
  put_line(out->line[4], H_TS, ts);
  put_line(out->line[5], H_SIG, sig);
  for (i = 0; i < LC_IAUTH_NHDR; i++) out->ptr[i] = out->line[i];
  out->ptr[LC_IAUTH_NHDR] = NULL;
  sodium_memzero(sig, sizeof sig);
  return LC_OK;
}

/* Exactly one header named name (ulfius joins repeats with ','). */
static const char *one_header(const struct _u_request *req, const char *name) {
  const char *v = u_map_get_case(req->map_header, name);
  if (v == NULL || strchr(v, ',') != NULL) return NULL;
  return v;
}

int lc_iauth_verify(const struct _u_request *req, const uint8_t *secret, size_t secret_len,
                    int max_skew_s, int64_t now_s, lc_identity *out, char err[LC_ERR_LEN]) {
  const char *rid, *user, *role, *scope, *ts, *sig, *method, *path;
  char want[65];
  int64_t t;
  lc_identity id;
  if (out != NULL) memset(out, 0, sizeof *out);
  if (req == NULL || secret == NULL || secret_len == 0 || out == NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad arguments");
  rid = one_header(req, H_RID);
  user = one_header(req, H_USER);
  role = one_header(req, H_ROLE);
  scope = one_header(req, H_SCOPE);
  ts = one_header(req, H_TS);
  sig = one_header(req, H_SIG);
  if (rid == NULL || user == NULL || role == NULL || scope == NULL || ts == NULL || sig == NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: missing or repeated header");
  method = req->http_verb;
  path = req->http_url;
  if (method == NULL || path == NULL || !valid_method(method) || !valid_path(path))
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad method or path");
  memset(&id, 0, sizeof id);
  if (lc_strlcpy(id.user_id, user, sizeof id.user_id) != LC_OK ||
      lc_strlcpy(id.role, role, sizeof id.role) != LC_OK ||
      lc_strlcpy(id.scope, scope, sizeof id.scope) != LC_OK ||
      lc_strlcpy(id.request_id, rid, sizeof id.request_id) != LC_OK || !valid_identity(&id))
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: malformed identity");
  if (strlen(ts) > 19 || lc_parse_i64(ts, 0, INT64_MAX, &t) != LC_OK)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad timestamp");
  if (max_skew_s < 0) max_skew_s = 0;
  if (t > now_s + max_skew_s || t < now_s - max_skew_s)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: timestamp outside the allowed skew");
  if (strlen(sig) != 64)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad signature format");
  compute_sig(secret, secret_len, method, path, &id, ts, req->binary_body,
              req->binary_body ? req->binary_body_length : 0, want);
  if (!lc_ct_eq(want, sig, 64)) {
    sodium_memzero(want, sizeof want);
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: signature mismatch");
  }
  sodium_memzero(want, sizeof want);
  *out = id;
  return LC_OK;
}

static int is_ops_path(const struct _u_request *req) {
  const char *p = req->url_path;
  if (req->http_verb == NULL || strcmp(req->http_verb, "GET") != 0 || p == NULL) return 0;
  return strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0 || strcmp(p, "/metrics") == 0;
}

int lc_iauth_callback(const struct _u_request *req, struct _u_response *resp, void *user_data) {
  const lc_iauth_ctx *ctx = user_data;
  lc_identity *id;
  char err[LC_ERR_LEN] = "";
  int rc;
  if (is_ops_path(req)) return U_CALLBACK_CONTINUE;
  if (ctx == NULL) return lc_problem(resp, 500, NULL, NULL);
  id = lc_xcalloc(1, sizeof *id);
  rc = lc_iauth_verify(req, ctx->secret, ctx->secret_len, ctx->max_skew_s, (int64_t)time(NULL),
                       id, err);
  if (rc != LC_OK) {
    free(id);
    lc_log_set_rid(NULL);
    lc_log_warn("Security - internal auth rejected %s %.128s: %s",
                req->http_verb ? req->http_verb : "?", req->url_path ? req->url_path : "?", err);
    return lc_problem(resp, 401, NULL, "invalid internal credentials");
  }
  lc_log_set_rid(id->request_id);
  if (ulfius_set_response_shared_data(resp, id, free) != U_OK) {
    free(id);
    return lc_problem(resp, 500, NULL, NULL);
  }
  return U_CALLBACK_CONTINUE;
}

const lc_identity *lc_iauth_identity(const struct _u_response *resp) {
  if (resp == NULL || resp->free_shared_data != free) return NULL;
  return (const lc_identity *)resp->shared_data;
}

int lc_iauth_call(const uint8_t *secret, size_t secret_len, const char *base_url,
                  const char *method, const char *path_query, const lc_identity *id,
                  const char *const *extra_headers, const char *body, size_t body_len,
                  long timeout_ms, lc_http_resp *resp, char err[LC_ERR_LEN]) {
  lc_iauth_headers ih;
  const char **hdrs = NULL;
  char *url = NULL;
  size_t next = 0, i, n = 0, ulen;
  lc_http_req hr;
  int rc;
  if (resp != NULL) memset(resp, 0, sizeof *resp);
  if (base_url == NULL || method == NULL || path_query == NULL || id == NULL || resp == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "iauth call: missing argument");
  if (body == NULL) body_len = 0;
  rc = lc_iauth_sign(secret, secret_len, method, path_query, id, body, body_len,
                     (int64_t)time(NULL), &ih);
  if (rc != LC_OK) return lc_err_set(err, rc, "iauth call: cannot sign (bad identity/path)");
  while (extra_headers != NULL && extra_headers[next] != NULL) next++;
  hdrs = lc_xcalloc(LC_IAUTH_NHDR + 2 + next, sizeof *hdrs);
  for (i = 0; i < LC_IAUTH_NHDR; i++) hdrs[n++] = ih.ptr[i];
  if (body != NULL) hdrs[n++] = "Content-Type: application/json";
  for (i = 0; i < next; i++) hdrs[n++] = extra_headers[i];
  hdrs[n] = NULL;
  ulen = strlen(base_url);
  while (ulen > 0 && base_url[ulen - 1] == '/') ulen--;
  url = lc_xmalloc(ulen + strlen(path_query) + 1);
  memcpy(url, base_url, ulen);
  memcpy(url + ulen, path_query, strlen(path_query) + 1);
  memset(&hr, 0, sizeof hr);
  hr.method = method;
  hr.url = url;
  hr.headers = hdrs;
  hr.body = body;
  hr.body_len = body_len;
  hr.timeout_ms = timeout_ms;
  rc = lc_http_do(&hr, resp, err);
  free(url);
  free(hdrs);
  sodium_memzero(&ih, sizeof ih);
  return rc;
}
