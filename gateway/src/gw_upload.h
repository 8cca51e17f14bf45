/* gw_upload.h - POST /v1/files streamed through the gateway.
 *
 * ulfius would read the whole upload into memory first; this route is an
 * lc_svc stream route instead. At begin (headers only) the request passes
 * gw_routes_admit exactly like every other route (401/403/429 before a body
 * byte is read; a Content-Length over GW_MAX_BODY is a 413 from svc.c), then
 * a forwarding thread starts a libcurl POST to storage-svc whose read
 * callback takes the body from a bounded ring buffer (GW_UPLOAD_RING bytes)
 * that the connection thread fills as the body arrives: memory per upload is
 * bounded and a slow storage-svc slows the client down (backpressure).
 * The internal signature covers the Content-Length instead of the body hash
 * (lc_iauth_sign_unsigned; storage-svc accepts that on this route only).
 * A client that goes away mid-body aborts the forward, so storage-svc sees a
 * cut body and charges nothing. The answer is relayed as gw_proxy does. */
#ifndef GW_UPLOAD_H
#define GW_UPLOAD_H

#include <ulfius.h>
#include "gw_routes.h"
#include "lc/err.h"

#define GW_UPLOAD_RING (256u * 1024u)

/* Registers r (POST /v1/files) as a stream route of inst; ctx and r are
 * borrowed. LC_OK or LC_ERR. */
int gw_upload_register(struct _u_instance *inst, const gw_route *r, const gw_ctx *ctx,
                       char err[LC_ERR_LEN]);

#endif
