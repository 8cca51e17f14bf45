/* events.h - auth.events producer side: envelope rows in auth.outbox,
 * written in the caller's transaction (so an event exists exactly when the
 * change it announces committed) and relayed by lc_outbox_thread.
 *
 * Types and bodies (proto/msg/auth.*.json, contract A):
 *   auth.token.revoked {jti, user_id, exp}
 *   auth.user.revoked  {user_id, not_before}        (Unix seconds: iat < not_before is dead)
 *   auth.key.revoked   {key_id, prefix, owner_id}
 *   auth.audit         {event_id, ts, user_id|null, actor, action, status, request_id, detail}
 * The envelope's request_id is the thread's log request id (set from the
 * gateway's signed X-Request-Id by lc_iauth_callback). Thread-safe: each
 * call uses the caller's connection only. */
#ifndef AUTH_EVENTS_H
#define AUTH_EVENTS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "lc/err.h"

#define AUTH_EVENTS_EXCHANGE "auth.events"
#define AUTH_OUTBOX_CHANNEL "auth_outbox"

/* Inserts one envelope of type with body (steals the reference; NULL ->
 * LC_ERR_NOMEM) and NOTIFYs the relay. */
int auth_event_emit(PGconn *c, const char *type, json_t *body, char err[LC_ERR_LEN]);

/* auth.audit: user_id (UUID or NULL), actor ("user:<id>", "admin:<id>",
 * "anonymous", "system"), action (contract A list), status
 * "ok"|"failed"|"denied", detail small object without secrets (steals, may
 * be NULL = {}). */
int auth_audit(PGconn *c, const char *user_id, const char *actor, const char *action,
               const char *status, json_t *detail, char err[LC_ERR_LEN]);

/* Convenience wrappers for the three revocation events. */
int auth_event_token_revoked(PGconn *c, const char *jti, const char *user_id, int64_t exp,
                             char err[LC_ERR_LEN]);
int auth_event_user_revoked(PGconn *c, const char *user_id, int64_t not_before,
                            char err[LC_ERR_LEN]);
int auth_event_key_revoked(PGconn *c, const char *key_id, const char *prefix,
                           const char *owner_id, char err[LC_ERR_LEN]);

/* Writes "user:<id>" / "admin:<id>" style actor strings. */
void auth_actor(char out[64], const char *kind, const char *id);

#endif
