/* gw_download.h - GET /v1/files/{id}/content relayed while it arrives.
 *
 * gw_proxy buffers the whole upstream answer (lc_http, max_resp cap); a file
 * download would then cost the gateway the file's size in memory. This route
 * is an ordinary ulfius route (security headers and gw_routes_admit run
 * exactly as for every other route), but the forward runs in a thread: a
 * libcurl GET to a storage-svc instance picked from the pool
 * (gw_upstream_pick / gw_upstream_release; a refused connection is retried
 * once on another instance, the GET being harmless to repeat) whose write
 * callback fills a bounded ring (GW_DOWNLOAD_RING bytes) that the client's
 * ulfius stream callback drains. The callback waits for the upstream headers:
 *   - 200: status, Content-Length (the stream size) and the allow-listed
 *     headers (Content-Type, Content-Disposition, X-Content-Type-Options,
 *     Cache-Control) are relayed, the body follows as it arrives;
 *     backpressure: a slow client slows storage-svc down;
 *   - any other status (problem+json, small): buffered whole (at most
 *     GW_DOWNLOAD_ERR_MAX bytes) and relayed as gw_proxy does;
 *   - no answer: 503 (504 on timeout), as other routes.
 * An upstream that fails mid-body ends the client stream with an error: MHD
 * closes the connection and the client sees a short body, never a wrong
 * one. A client that goes away aborts the upstream transfer and the thread
 * is joined (nothing leaks). The whole forward may last 4 x the upstream
 * timeout (the client's idle timeout cuts a stalled client earlier).
 * The paid report download stays on gw_proxy: reports are bounded small. */
#ifndef GW_DOWNLOAD_H
#define GW_DOWNLOAD_H

#include <ulfius.h>
#include "gw_routes.h"
#include "lc/err.h"

#define GW_DOWNLOAD_RING (256u * 1024u)
#define GW_DOWNLOAD_ERR_MAX (64u * 1024u)

/* Registers r (GET /v1/files/:id/content) on inst; ctx and r are borrowed.
 * LC_OK or LC_ERR. */
int gw_download_register(struct _u_instance *inst, const gw_route *r, const gw_ctx *ctx,
                         char err[LC_ERR_LEN]);

#endif
