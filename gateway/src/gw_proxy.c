/* gw_proxy.c - see gw_proxy.h. */
#include "gw_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "gw_upstream.h"
#include "lc/http.h"
#include "lc/log.h"
#include "lc/util.h"

/* Request headers copied from the client to the daemon. */
/* Content-Type and Idempotency-Key are forwarded separately: they are
 * covered by the internal signature (lc/iauth.h). */
static const char *const FWD_REQ_HEADERS[] = {
    "Origin",               "X-Requested-With",     "Accept",         "Stripe-Signature",
    "X-Razorpay-Signature", "X-Razorpay-Event-Id",  "X-File-Name",    NULL};
/* Response headers copied from the daemon to the client. */
static const char *const FWD_RESP_HEADERS[] = {"Content-Type", "Location",
                                               "Retry-After", "Content-Disposition",
                                               "WWW-Authenticate", "Idempotent-Replayed",
                                               "Cache-Control", NULL};

#define GW_MAX_FWD_HDR 24
#define GW_HDR_LINE 1024

void gw_proxy_client_ip(const struct _u_request *req, char *out, size_t outsz) {
  lc_strlcpy(out, "unknown", outsz);
  if (req->client_address == NULL)
    return;
  if (req->client_address->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)req->client_address;
    inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)outsz);
  } else if (req->client_address->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)req->client_address;
    inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)outsz);
  }
}

/* Adds "Name: value" to lines when the client sent that header with a value free of CR/LF (ulfius already splits headers, this is defence
 * in depth). */
static int add_client_header(const struct _u_request *req, const char *name,
                             char lines[][GW_HDR_LINE], int n) {
  if (n >= GW_MAX_FWD_HDR)
    return n;
  const char *v = u_map_get_case(req->map_header, name);
  if (v == NULL || strpbrk(v, "\r\n") != NULL || strlen(v) > GW_HDR_LINE - 64)
    return n;
  snprintf(lines[n], GW_HDR_LINE, "%s: %s", name, v);
  return n + 1;
}

int gw_proxy_forward(const gw_upstream *up, const struct _u_request *req, const lc_identity *id,
                     int pass_cookie, struct _u_response *resp, char err[LC_ERR_LEN]) {
  return gw_proxy_forward_ex(up, req, id, pass_cookie, NULL, NULL, resp, err);
}

/* Relays every Set-Cookie line of the upstream answer unchanged (OAuth sets
 * the refresh cookie and clears its state cookie in one answer). ulfius keeps
 * one value per header name in a case-sensitive map and MHD sends each entry,
 * so the n-th cookie goes under the n-th spelling of the (case-insensitive)
 * header name; at most GW_MAX_COOKIES are relayed. */
#define GW_MAX_COOKIES 4
static void relay_set_cookies(const lc_http_resp *hres, struct _u_response *resp) {
  static const char *const NAMES[GW_MAX_COOKIES] = {"Set-Cookie", "set-cookie", "SET-COOKIE",
                                                     "Set-cookie"};
  int n = 0;
  for (const struct curl_slist *h = hres->headers; h != NULL && n < GW_MAX_COOKIES; h = h->next) {
    if (strncasecmp(h->data, "Set-Cookie:", 11) != 0)
      continue;
    const char *v = h->data + 11;
    while (*v == ' ' || *v == '\t')
      v++;
    size_t len = strcspn(v, "\r\n");
    if (len == 0 || len >= GW_HDR_LINE)
      continue;
    char val[GW_HDR_LINE];
    memcpy(val, v, len);
    val[len] = '\0';
    u_map_put(resp->map_header, NAMES[n++], val);
  }
}

int gw_proxy_forward_ex(const gw_upstream *up, const struct _u_request *req,
                        const lc_identity *id, int pass_cookie, const char *client_ip,
                        const char *const *extra, struct _u_response *resp,
                        char err[LC_ERR_LEN]) {
  const char *path = req->http_url;
  if (path == NULL || path[0] != '/')
    return lc_err_set(err, LC_ERR_PARAM, "bad request target");

  char url[2048];
  int ul = snprintf(url, sizeof(url), "%s%s", up->base_url, path);
  if (ul < 0 || (size_t)ul >= sizeof(url))
    return lc_err_set(err, LC_ERR_TOO_LARGE, "request target too long");

  /* The identity as signed: the session's jti/exp come from the caller's
   * id, the client address from client_ip (or the socket peer). */
  lc_identity sid = *id;
  if (client_ip != NULL)
    lc_strlcpy(sid.client_ip, client_ip, sizeof(sid.client_ip));
  else
    gw_proxy_client_ip(req, sid.client_ip, sizeof(sid.client_ip));
  /* Content-Type / Idempotency-Key exactly as forwarded (empty = not sent). */
  const char *ct = u_map_get_case(req->map_header, "Content-Type");
  const char *idem = u_map_get_case(req->map_header, "Idempotency-Key");
  if (ct != NULL && ct[0] == '\0')
    ct = NULL;
  if (idem != NULL && idem[0] == '\0')
    idem = NULL;

  lc_iauth_headers ih;
  int rc = lc_iauth_sign(up->secret, up->secret_len, req->http_verb, path, &sid,
                         req->binary_body, req->binary_body_length, ct, idem,
                         (int64_t)time(NULL), &ih);
  if (rc != LC_OK)
    return lc_err_set(err, rc, "cannot sign internal request (bad target or header value)");

  char lines[GW_MAX_FWD_HDR][GW_HDR_LINE];
  int n = 0;
  /* A bare "Content-Type:" stops libcurl adding an unsigned form type. */
  if (ct != NULL)
    snprintf(lines[n++], GW_HDR_LINE, "Content-Type: %s", ct);
  else
    snprintf(lines[n++], GW_HDR_LINE, "Content-Type:");
  if (idem != NULL)
    snprintf(lines[n++], GW_HDR_LINE, "Idempotency-Key: %s", idem);
  for (int i = 0; FWD_REQ_HEADERS[i] != NULL; i++)
    n = add_client_header(req, FWD_REQ_HEADERS[i], lines, n);
  if (pass_cookie)
    n = add_client_header(req, "Cookie", lines, n);
  for (int i = 0; extra != NULL && extra[i] != NULL && n < GW_MAX_FWD_HDR - 1; i++)
    if (strpbrk(extra[i], "\r\n") == NULL)
      snprintf(lines[n++], GW_HDR_LINE, "%s", extra[i]);
  /* Disable curl's "Expect: 100-continue" round trip for bodies. */
  snprintf(lines[n++], GW_HDR_LINE, "Expect:");

  const char *hdrs[LC_IAUTH_NHDR + GW_MAX_FWD_HDR + 1];
  int h = 0;
  for (int i = 0; ih.ptr[i] != NULL; i++)
    hdrs[h++] = ih.ptr[i];
  for (int i = 0; i < n; i++)
    hdrs[h++] = lines[i];
  hdrs[h] = NULL;

  lc_http_req hr = {
      .method = req->http_verb,
      .url = url,
      .headers = hdrs,
      .body = req->binary_body,
      .body_len = req->binary_body_length,
      .timeout_ms = up->timeout_ms,
      .max_resp = up->max_resp,
      .keep_headers = 1,
  };
  lc_http_resp hres = {0};
  /* Instance selection and the connect-failure retry: gw_upstream.h. */
  if (up->pool != NULL)
    rc = gw_upstream_do(up->pool, path, gw_upstream_retry_safe(req->http_verb, path), &hr,
                        &hres, err);
  else
    rc = lc_http_do(&hr, &hres, err);
  if (rc != LC_OK) {
    lc_http_resp_free(&hres);
    return rc;
  }

  /* ulfius refuses an empty body (and then leaves the status alone): set
   * the status ourselves so a 204 stays a 204. */
  if (hres.body != NULL && hres.len > 0)
    ulfius_set_binary_body_response(resp, (unsigned int)hres.status, hres.body, hres.len);
  resp->status = hres.status;
  char val[GW_HDR_LINE];
  for (int i = 0; FWD_RESP_HEADERS[i] != NULL; i++) {
    if (lc_http_resp_header(&hres, FWD_RESP_HEADERS[i], val, sizeof(val)) == LC_OK)
      u_map_put(resp->map_header, FWD_RESP_HEADERS[i], val);
  }
  relay_set_cookies(&hres, resp);
  lc_http_resp_free(&hres);
  return LC_OK;
}
