/* msg.h - queue message envelope {v, type, id, ts, request_id, body}
 * (schemas in proto/msg/). */
#ifndef LC_MSG_H
#define LC_MSG_H

#include <jansson.h>
#include "lc/err.h"

/* Builds the envelope JSON text. body is borrowed. id is a UUID (generated
 * when NULL), written to id_out (37 bytes) if non-NULL. Returned string is new (free()). */
char *lc_msg_build(const char *type, const char *id, const char *request_id,
                   json_t *body, char id_out[37]);

/* Parses and validates an envelope: v == 1, type equals expected_type (NULL =
 * any), id is a UUID, body an object. *body_out is new; type/id/rid copied into
 * caller buffers (64/37/64 bytes). Returns LC_ERR_PARAM for anything malformed. */
int lc_msg_parse(const char *text, size_t len, const char *expected_type,
                 char type_out[64], char id_out[37], char rid_out[64],
                 json_t **body_out, char err[LC_ERR_LEN]);

#endif
