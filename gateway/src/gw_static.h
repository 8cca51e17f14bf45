/* gw_static.h - the web front end (web/: index.html, app.js, app.css, icon.svg)
 * served by the gateway.
 *
 * A fixed allow-list maps request paths to file names; the files are read
 * once at start into memory (gw_static_load) and each allowed path becomes
 * one exact GET route. Nothing of the request path ever reaches the file
 * system, so no traversal is possible: an unlisted path (including
 * "/app/../x", "/app/%2e%2e/x") simply matches no route and gets the usual
 * 404. Answers carry the page's Content-Security-Policy (GW_STATIC_CSP; the
 * API keeps default-src 'none'), an ETag (If-None-Match -> 304) and
 * Cache-Control: no-cache. */
#ifndef GW_STATIC_H
#define GW_STATIC_H

#include <stddef.h>
#include <ulfius.h>
#include "lc/err.h"

/* The page's policy: its own scripts, styles and API only; no inline code,
 * no framing, no foreign form targets or <base>. */
#define GW_STATIC_CSP                                                                        \
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "         \
  "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

#define GW_STATIC_MAX_FILE (1u << 20) /* bytes per file */

typedef struct {
  const char *name;  /* file name in the web directory (from the allow-list) */
  const char *ctype; /* Content-Type */
  char *body;        /* NULL until loaded */
  size_t len;
  char etag[36];     /* "\"" + 32 hex + "\"" */
} gw_static_file;

typedef struct {
  const char *path; /* request path, exact */
  size_t file;      /* index into gw_static.files */
} gw_static_route;

#define GW_STATIC_FILES 4

typedef struct {
  gw_static_file files[GW_STATIC_FILES];
  int loaded;
} gw_static;

/* The allow-list of request paths (borrowed, n entries). "/" and the pages
 * the browser is sent back to (OAuth success, payment success/cancel) all
 * answer index.html. */
const gw_static_route *gw_static_routes(size_t *n);

/* Reads every file of the allow-list from dir (each must exist, be a regular
 * file of at most GW_STATIC_MAX_FILE bytes). On failure nothing stays
 * allocated and err names the file. */
int gw_static_load(gw_static *st, const char *dir, char err[LC_ERR_LEN]);
void gw_static_free(gw_static *st);

/* The file served for exactly this request path, or NULL (not listed). */
const gw_static_file *gw_static_find(const gw_static *st, const char *path);

/* Registers one GET route per allowed path (priority LC_PRIO_APP) on inst.
 * st must be loaded and outlive the instance. */
int gw_static_register(struct _u_instance *inst, const gw_static *st, char err[LC_ERR_LEN]);

#endif
