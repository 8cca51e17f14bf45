/* events.c - see events.h. */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/db.h"
#include "lc/log.h"
#include "lc/msg.h"
#include "lc/util.h"

static const char *current_rid(void) {
  const char *rid = lc_log_rid();
  return (rid == NULL || strcmp(rid, "-") == 0) ? "" : rid;
}

int auth_event_emit(PGconn *c, const char *type, json_t *body, char err[LC_ERR_LEN]) {
  char id[37];
  char *text;
  const char *p[3];
  int rc;

  if (body == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "event body");
  text = lc_msg_build(type, NULL, current_rid(), body, id);
  json_decref(body);
  if (text == NULL)
    return lc_err_set(err, LC_ERR_NOMEM, "event envelope");
  p[0] = id;
  p[1] = type;
  p[2] = text;
  rc = lc_db_exec(c, "INSERT INTO outbox (id, routing_key, payload) VALUES ($1::uuid, $2, $3)", 3,
                  p, NULL, err);
  free(text);
  if (rc == LC_OK)
    rc = lc_db_exec(c, "SELECT pg_notify('" AUTH_OUTBOX_CHANNEL "', '')", 0, NULL, NULL, err);
  return rc;
}

int auth_audit(PGconn *c, const char *user_id, const char *actor, const char *action,
               const char *status, json_t *detail, char err[LC_ERR_LEN]) {
  char eid[37], ts[32];
  json_t *body;

  lc_uuid_v4(eid);
  lc_rfc3339_now(ts);
  if (detail == NULL)
    detail = json_object();
  body = json_pack("{s:s,s:s,s:o,s:s,s:s,s:s,s:s,s:o}", "event_id", eid, "ts", ts, "user_id",
                   user_id != NULL && user_id[0] != '\0' ? json_string(user_id) : json_null(),
                   "actor", actor, "action", action, "status", status, "request_id",
                   current_rid(), "detail", detail);
  lc_log_info("Event - audit %s %s user=%s actor=%s", action, status,
              user_id != NULL && user_id[0] != '\0' ? user_id : "-", actor);
  return auth_event_emit(c, "auth.audit", body, err);
}

int auth_event_token_revoked(PGconn *c, const char *jti, const char *user_id, int64_t exp,
                             char err[LC_ERR_LEN]) {
  return auth_event_emit(c, "auth.token.revoked",
                         json_pack("{s:s,s:s,s:I}", "jti", jti, "user_id", user_id, "exp",
                                   (json_int_t)exp),
                         err);
}

int auth_event_user_revoked(PGconn *c, const char *user_id, int64_t not_before,
                            char err[LC_ERR_LEN]) {
  return auth_event_emit(c, "auth.user.revoked",
                         json_pack("{s:s,s:I}", "user_id", user_id, "not_before",
                                   (json_int_t)not_before),
                         err);
}

int auth_event_key_revoked(PGconn *c, const char *key_id, const char *prefix,
                           const char *owner_id, char err[LC_ERR_LEN]) {
  return auth_event_emit(c, "auth.key.revoked",
                         json_pack("{s:s,s:s,s:s}", "key_id", key_id, "prefix", prefix,
                                   "owner_id", owner_id),
                         err);
}

void auth_actor(char out[64], const char *kind, const char *id) {
  if (id == NULL || id[0] == '\0')
    snprintf(out, 64, "%s", kind);
  else
    snprintf(out, 64, "%s:%s", kind, id);
}
