/* gw_static.c - see gw_static.h. */
#include "gw_static.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lc/svc.h"
#include "lc/util.h"

/* The only files the gateway will ever read for the web front end. */
static const struct {
  const char *name;
  const char *ctype;
} FILES[GW_STATIC_FILES] = {
    {"index.html", "text/html; charset=utf-8"},
    {"app.js", "text/javascript; charset=utf-8"},
    {"app.css", "text/css; charset=utf-8"},
    {"icon.svg", "image/svg+xml"},
};

static const gw_static_route ROUTES[] = {
    {"/", 0},
    {"/signed-in", 0},        /* AUTH_OAUTH_SUCCESS_URL */
    {"/payments/success", 0}, /* PAYMENTS_SUCCESS_URL */
    {"/payments/cancel", 0},  /* PAYMENTS_CANCEL_URL */
    {"/app/app.js", 1},
    {"/app/app.css", 2},
    {"/app/icon.svg", 3},
};

#define NROUTES (sizeof(ROUTES) / sizeof(ROUTES[0]))

const gw_static_route *gw_static_routes(size_t *n) {
  *n = NROUTES;
  return ROUTES;
}

void gw_static_free(gw_static *st) {
  if (st == NULL)
    return;
  for (size_t i = 0; i < GW_STATIC_FILES; i++) {
    free(st->files[i].body);
    st->files[i].body = NULL;
    st->files[i].len = 0;
  }
  st->loaded = 0;
}

int gw_static_load(gw_static *st, const char *dir, char err[LC_ERR_LEN]) {
  memset(st, 0, sizeof(*st));
  if (dir == NULL || dir[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "web directory not set");
  for (size_t i = 0; i < GW_STATIC_FILES; i++) {
    gw_static_file *f = &st->files[i];
    char path[4352];
    struct stat sb;
    f->name = FILES[i].name;
    f->ctype = FILES[i].ctype;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, f->name) >= sizeof(path)) {
      gw_static_free(st);
      return lc_err_set(err, LC_ERR_PARAM, "web directory path too long");
    }
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      gw_static_free(st);
      return lc_err_set(err, LC_ERR_NOTFOUND, "%s: not a regular file", path);
    }
    char e2[LC_ERR_LEN] = "";
    int rc = lc_read_file(path, GW_STATIC_MAX_FILE, &f->body, &f->len, e2);
    if (rc != LC_OK) {
      gw_static_free(st);
      return lc_err_set(err, rc, "%s: %s", path, e2);
    }
    uint8_t h[32];
    char hex[65];
    lc_sha256(f->body, f->len, h);
    lc_hex_encode(h, 16, hex);
    snprintf(f->etag, sizeof(f->etag), "\"%.32s\"", hex);
  }
  st->loaded = 1;
  return LC_OK;
}

const gw_static_file *gw_static_find(const gw_static *st, const char *path) {
  if (st == NULL || !st->loaded || path == NULL)
    return NULL;
  for (size_t i = 0; i < NROUTES; i++)
    if (strcmp(ROUTES[i].path, path) == 0)
      return &st->files[ROUTES[i].file];
  return NULL;
}

/* 1 when an If-None-Match list names etag (or is "*"). */
static int etag_matches(const char *inm, const char *etag) {
  size_t el = strlen(etag);
  const char *p = inm;
  while (p != NULL && *p != '\0') {
    while (*p == ' ' || *p == ',' || *p == '\t')
      p++;
    if (strncmp(p, "W/", 2) == 0)
      p += 2;
    if (*p == '*')
      return 1;
    if (strncmp(p, etag, el) == 0 && (p[el] == '\0' || p[el] == ',' || p[el] == ' '))
      return 1;
    p = strchr(p, ',');
  }
  return 0;
}

static int cb_static(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const gw_static_file *f = ud;
  /* Replaces the API's default-src 'none' set by the security-header
   * middleware (gw_routes.c); the other security headers stay. */
  u_map_put(resp->map_header, "Content-Security-Policy", GW_STATIC_CSP);
  u_map_put(resp->map_header, "Cross-Origin-Opener-Policy", "same-origin");
  u_map_put(resp->map_header, "Cache-Control", "no-cache");
  u_map_put(resp->map_header, "ETag", f->etag);
  const char *inm = u_map_get_case(req->map_header, "If-None-Match");
  if (inm != NULL && etag_matches(inm, f->etag)) {
    resp->status = 304;
    return U_CALLBACK_COMPLETE;
  }
  u_map_put(resp->map_header, "Content-Type", f->ctype);
  if (f->len == 0)
    resp->status = 200; /* ulfius refuses an empty binary body */
  else if (ulfius_set_binary_body_response(resp, 200, f->body, f->len) != U_OK)
    resp->status = 500;
  lc_metric_add("gateway_static_served_total", 1);
  return U_CALLBACK_COMPLETE;
}

int gw_static_register(struct _u_instance *inst, const gw_static *st, char err[LC_ERR_LEN]) {
  if (st == NULL || !st->loaded)
    return lc_err_set(err, LC_ERR_PARAM, "web front end not loaded");
  for (size_t i = 0; i < NROUTES; i++) {
    const gw_static_file *f = &st->files[ROUTES[i].file];
    if (lc_svc_route(inst, "GET", ROUTES[i].path, LC_PRIO_APP, cb_static, (void *)f) != LC_OK)
      return lc_err_set(err, LC_ERR, "cannot register GET %s", ROUTES[i].path);
  }
  return LC_OK;
}
