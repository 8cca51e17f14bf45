/* msg.c - the queue message envelope {v:1, type, id, ts, request_id, body}
 * (proto/CONTRACTS.md "Messages"). Thread-safe. */
#include "lc/msg.h"
#include "lc/util.h"

#include <stdlib.h>
#include <string.h>

#define MSG_MAX_TEXT (1024 * 1024)

char *lc_msg_build(const char *type, const char *id, const char *request_id,
                   json_t *body, char id_out[37]) {
  char uuid[37], ts[32];
  json_t *env;
  char *text;
  if (type == NULL || type[0] == '\0' || strlen(type) >= 64) return NULL;
  if (body != NULL && !json_is_object(body)) return NULL;
  if (id != NULL) {
    if (!lc_uuid_valid(id)) return NULL;
    (void)lc_strlcpy(uuid, id, sizeof uuid);
  } else {
    lc_uuid_v4(uuid);
  }
  lc_rfc3339_now(ts);
  env = json_object();
  if (env == NULL) return NULL;
  json_object_set_new(env, "v", json_integer(1));
  json_object_set_new(env, "type", json_string(type));
  json_object_set_new(env, "id", json_string(uuid));
  json_object_set_new(env, "ts", json_string(ts));
  json_object_set_new(env, "request_id", json_string(request_id ? request_id : ""));
  if (body != NULL)
    json_object_set(env, "body", body);
  else
    json_object_set_new(env, "body", json_object());
  text = json_dumps(env, JSON_COMPACT);
  json_decref(env);
  if (text != NULL && id_out != NULL) memcpy(id_out, uuid, 37);
  return text;
}

int lc_msg_parse(const char *text, size_t len, const char *expected_type,
                 char type_out[64], char id_out[37], char rid_out[64],
                 json_t **body_out, char err[LC_ERR_LEN]) {
  json_error_t je;
  json_t *env = NULL, *jv, *jtype, *jid, *jts, *jrid, *jbody;
  int rc = LC_ERR_PARAM;
  if (body_out != NULL) *body_out = NULL;
  if (text == NULL) return lc_err_set(err, LC_ERR_PARAM, "message: no text");
  if (len > MSG_MAX_TEXT) return lc_err_set(err, LC_ERR_PARAM, "message: too large");
  env = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (env == NULL) return lc_err_set(err, LC_ERR_PARAM, "message: invalid JSON");
  if (!json_is_object(env)) {
    lc_err_set(err, LC_ERR_PARAM, "message: not an object");
    goto out;
  }
  jv = json_object_get(env, "v");
  jtype = json_object_get(env, "type");
  jid = json_object_get(env, "id");
  jts = json_object_get(env, "ts");
  jrid = json_object_get(env, "request_id");
  jbody = json_object_get(env, "body");
  if (!json_is_integer(jv) || json_integer_value(jv) != 1) {
    lc_err_set(err, LC_ERR_PARAM, "message: unsupported version");
    goto out;
  }
  if (!json_is_string(jtype) || json_string_length(jtype) == 0 ||
      json_string_length(jtype) >= 64) {
    lc_err_set(err, LC_ERR_PARAM, "message: bad type");
    goto out;
  }
  if (expected_type != NULL && strcmp(json_string_value(jtype), expected_type) != 0) {
    lc_err_set(err, LC_ERR_PARAM, "message: unexpected type '%.63s'", json_string_value(jtype));
    goto out;
  }
  if (!json_is_string(jid) || !lc_uuid_valid(json_string_value(jid))) {
    lc_err_set(err, LC_ERR_PARAM, "message: bad id");
    goto out;
  }
  if (jts != NULL && !json_is_string(jts)) {
    lc_err_set(err, LC_ERR_PARAM, "message: bad ts");
    goto out;
  }
  if (jrid != NULL && !json_is_null(jrid) &&
      (!json_is_string(jrid) || json_string_length(jrid) >= 64)) {
    lc_err_set(err, LC_ERR_PARAM, "message: bad request_id");
    goto out;
  }
  if (!json_is_object(jbody)) {
    lc_err_set(err, LC_ERR_PARAM, "message: body must be an object");
    goto out;
  }
  if (type_out != NULL) (void)lc_strlcpy(type_out, json_string_value(jtype), 64);
  if (id_out != NULL) (void)lc_strlcpy(id_out, json_string_value(jid), 37);
  if (rid_out != NULL)
    (void)lc_strlcpy(rid_out, json_is_string(jrid) ? json_string_value(jrid) : "", 64);
  if (body_out != NULL) *body_out = json_incref(jbody);
  rc = LC_OK;
out:
  json_decref(env);
  return rc;
}
