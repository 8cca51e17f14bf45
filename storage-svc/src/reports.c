/* reports.c - report requests, the usage report builder, the paid
 * generation flow and storage.reports metadata (see reports.h). */
#include "reports.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/log.h"
#include "lc/problem.h"
#include "lc/util.h"

#define REPORT_COLS                                                                  \
  "id::text, user_id::text, kind, format, size_bytes::text, sha256, "                \
  "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "     \
  "coalesce(to_char(from_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''), " \
  "coalesce(to_char(to_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '')"
#define REPORT_NCOLS 9

/* ---- time ------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t yy = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yy + (*m <= 2));
}

static int days_in_month(int y, int m)
{
  static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 ? 28 + leap : dim[m - 1];
}

/* Reads exactly n digits at s. */
static int digits(const char *s, int n, int *v)
{
  *v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    *v = *v * 10 + (s[i] - '0');
  }
  return 1;
}

int storage_reports_parse_time(const char *s, int64_t *ms)
{
  int Y, M, D, h = 0, mi = 0, sec = 0, frac = 0, oh = 0, om = 0, sign = 0;
  const char *p;

  if (s == NULL || strlen(s) > 40)
    return LC_ERR_PARAM;
  if (!digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' ||
      !digits(s + 8, 2, &D))
    return LC_ERR_PARAM;
  p = s + 10;
  if (*p != '\0') {
    if ((*p != 'T' && *p != 't') || !digits(p + 1, 2, &h) || p[3] != ':' ||
        !digits(p + 4, 2, &mi) || p[6] != ':' || !digits(p + 7, 2, &sec))
      return LC_ERR_PARAM;
    p += 9;
    if (*p == '.') {
      int nd = 0;
      p++;
      while (*p >= '0' && *p <= '9') {
        if (nd < 3)
          frac = frac * 10 + (*p - '0');
        nd++;
        p++;
      }
      if (nd == 0 || nd > 9)
        return LC_ERR_PARAM;
      for (int i = nd; i < 3; i++)
        frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      sign = *p == '+' ? 1 : -1;
      if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om))
        return LC_ERR_PARAM;
      p += 6;
    } else {
      return LC_ERR_PARAM;
    }
    if (*p != '\0')
      return LC_ERR_PARAM;
  }
  if (Y < 1970 || Y > 9999 || M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M) || h > 23 ||
      mi > 59 || sec > 59 || oh > 23 || om > 59)
    return LC_ERR_PARAM;
  *ms = ((days_from_civil(Y, M, D) * 86400 + h * 3600 + mi * 60 + sec) -
         (int64_t)sign * (oh * 3600 + om * 60)) * 1000 + frac;
  if (*ms < 0)
    return LC_ERR_PARAM;
  return LC_OK;
}

void storage_reports_format_time(int64_t ms, char out[32])
{
  int64_t days = ms / 86400000, rem = ms % 86400000;
  int y, m, d;

  if (rem < 0) {
    rem += 86400000;
    days--;
  }
  civil_from_days(days, &y, &m, &d);
  snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, (int)(rem / 3600000),
           (int)(rem / 60000 % 60), (int)(rem / 1000 % 60), (int)(rem % 1000));
}

/* ---- request validation ---------------------------------------------- */

static int parse_opt_time(const json_t *body, const char *name, char norm[32], int64_t *ms,
                          char err[LC_ERR_LEN])
{
  const json_t *v = json_object_get(body, name);

  norm[0] = '\0';
  *ms = -1;
  if (v == NULL || json_is_null(v))
    return LC_OK;
  if (!json_is_string(v) || storage_reports_parse_time(json_string_value(v), ms) != LC_OK)
    return lc_err_set(err, LC_ERR_PARAM,
                      "%s must be an RFC 3339 timestamp (e.g. 2026-01-31T00:00:00Z) or a date "
                      "YYYY-MM-DD",
                      name);
  storage_reports_format_time(*ms, norm);
  return LC_OK;
}

int storage_reports_parse_req(const json_t *body, storage_report_req *out, char err[LC_ERR_LEN])
{
  static const char *const allowed[] = {"kind", "format", "from", "to", NULL};
  const char *kind, *format;
  int rc;

  memset(out, 0, sizeof(*out));
  out->from_ms = out->to_ms = -1;
  if (!json_is_object(body))
    return lc_err_set(err, LC_ERR_PARAM, "body must be a JSON object");
  rc = lc_json_only_fields(body, allowed, err);
  if (rc != LC_OK)
    return rc;
  kind = json_string_value(json_object_get(body, "kind"));
  format = json_string_value(json_object_get(body, "format"));
  if (kind == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "kind is required and must be a string (\"usage\" or \"files\")");
  if (format == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "format is required and must be a string (\"json\" or \"csv\")");
  if (strcmp(kind, "usage") != 0 && strcmp(kind, "files") != 0)
    return lc_err_set(err, LC_ERR_PARAM, "kind must be \"usage\" or \"files\"");
  if (strcmp(format, "json") != 0 && strcmp(format, "csv") != 0)
    return lc_err_set(err, LC_ERR_PARAM, "format must be \"json\" or \"csv\"");
  if (strcmp(kind, "usage") != 0)
    return lc_err_set(err, LC_ERR_PARAM, "kind \"%s\" is not supported yet; use \"usage\"", kind);
  if (strcmp(format, "json") != 0)
    return lc_err_set(err, LC_ERR_PARAM, "format \"%s\" is not supported yet; use \"json\"", format);
  lc_strlcpy(out->kind, kind, sizeof(out->kind));
  lc_strlcpy(out->format, format, sizeof(out->format));
  rc = parse_opt_time(body, "from", out->from, &out->from_ms, err);
  if (rc != LC_OK)
    return rc;
  rc = parse_opt_time(body, "to", out->to, &out->to_ms, err);
  if (rc != LC_OK)
    return rc;
  if (out->from_ms >= 0 && out->to_ms >= 0 && out->from_ms > out->to_ms)
    return lc_err_set(err, LC_ERR_PARAM, "from must not be after to");
  return LC_OK;
}

/* ---- report document -------------------------------------------------- */

static int entry_in_range(const json_t *e, const storage_report_req *req)
{
  int64_t t;
  const char *ts;

  if (req->from_ms < 0 && req->to_ms < 0)
    return 1;
  ts = json_string_value(json_object_get(e, "ts")); /* credit-svc ledger field */
  if (ts == NULL)
    ts = json_string_value(json_object_get(e, "created_at"));
  if (ts == NULL || storage_reports_parse_time(ts, &t) != LC_OK)
    return 0;
  if (req->from_ms >= 0 && t < req->from_ms)
    return 0;
  if (req->to_ms >= 0 && t >= req->to_ms)
    return 0;
  return 1;
}

int storage_reports_build_usage(const char *report_id, const char *user_id,
                                const char *generated_at, const storage_report_req *req,
                                const json_t *entries, int truncated, char **out, size_t *len,
                                char err[LC_ERR_LEN])
{
  json_t *doc = NULL, *arr = NULL;
  char *text = NULL;
  int rc;

  *out = NULL;
  *len = 0;
  if (!json_is_array(entries))
    return lc_err_set(err, LC_ERR_PARAM, "ledger entries must be an array");
  arr = json_array();
  for (size_t i = 0; i < json_array_size(entries); i++) {
    json_t *e = json_array_get(entries, i);
    if (json_is_object(e) && entry_in_range(e, req))
      json_array_append(arr, e);
  }
  doc = json_object();
  json_object_set_new(doc, "report_id", json_string(report_id));
  json_object_set_new(doc, "user_id", json_string(user_id));
  json_object_set_new(doc, "kind", json_string(req->kind));
  json_object_set_new(doc, "format", json_string(req->format));
  json_object_set_new(doc, "generated_at", json_string(generated_at));
  if (req->from[0] != '\0')
    json_object_set_new(doc, "from", json_string(req->from));
  if (req->to[0] != '\0')
    json_object_set_new(doc, "to", json_string(req->to));
  json_object_set_new(doc, "entry_count", json_integer((json_int_t)json_array_size(arr)));
  json_object_set_new(doc, "truncated", json_boolean(truncated));
  json_object_set(doc, "entries", arr);
  text = json_dumps(doc, JSON_COMPACT);
  if (text == NULL) {
    rc = lc_err_set(err, LC_ERR, "cannot encode report (invalid text in ledger?)");
    goto out;
  }
  if (strlen(text) > STORAGE_REPORT_MAX_BYTES) {
    rc = lc_err_set(err, LC_ERR_TOO_LARGE, "report larger than %u bytes",
                    STORAGE_REPORT_MAX_BYTES);
    goto out;
  }
  *len = strlen(text);
  *out = text;
  text = NULL;
  rc = LC_OK;
out:
  free(text);
  json_decref(arr);
  json_decref(doc);
  return rc;
}

/* ---- metadata (storage.reports) --------------------------------------- */

static void row_to_report(const PGresult *res, int i, storage_report *r)
{
  int64_t size = 0;

  memset(r, 0, sizeof(*r));
  lc_strlcpy(r->id, PQgetvalue(res, i, 0), sizeof(r->id));
  lc_strlcpy(r->user_id, PQgetvalue(res, i, 1), sizeof(r->user_id));
  lc_strlcpy(r->kind, PQgetvalue(res, i, 2), sizeof(r->kind));
  lc_strlcpy(r->format, PQgetvalue(res, i, 3), sizeof(r->format));
  lc_parse_i64(PQgetvalue(res, i, 4), 0, INT64_MAX, &size);
  r->size_bytes = size;
  lc_strlcpy(r->sha256, PQgetvalue(res, i, 5), sizeof(r->sha256));
  lc_strlcpy(r->created_at, PQgetvalue(res, i, 6), sizeof(r->created_at));
  lc_strlcpy(r->from, PQgetvalue(res, i, 7), sizeof(r->from));
  lc_strlcpy(r->to, PQgetvalue(res, i, 8), sizeof(r->to));
}

/* Runs one statement on its own pooled connection. */
static int db_run(lc_db_pool *pool, const char *sql, int n, const char *const *params,
                  PGresult **res, char err[LC_ERR_LEN])
{
  PGconn *conn = NULL;
  int rc;

  rc = lc_db_acquire(pool, &conn, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(conn, sql, n, params, res, err);
  lc_db_release(pool, conn);
  return rc;
}

/* Claims (user, key) for this request. LC_OK = claimed by us; otherwise
 * LC_ERR_CONFLICT (in progress), LC_ERR_UNPROCESSABLE (different request),
 * or LC_ERR_NOTFOUND with report_id filled (completed: replay it). */
static int idem_claim(lc_db_pool *pool, const char *user_id, const char *key, const char *hash,
                      char report_id[37], char err[LC_ERR_LEN])
{
  const char *params[3] = {user_id, key, hash};
  PGresult *res = NULL;
  int rc;

  report_id[0] = '\0';
  rc = db_run(pool,
              "INSERT INTO storage.idempotency_keys (user_id, key, request_hash) "
              "VALUES ($1::uuid, $2, $3) ON CONFLICT (user_id, key) DO UPDATE "
              "SET request_hash = EXCLUDED.request_hash, created_at = now() "
              "WHERE storage.idempotency_keys.report_id IS NULL "
              "AND storage.idempotency_keys.created_at < now() - interval '10 minutes' "
              "RETURNING 1",
              3, params, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) == 1) {
    PQclear(res);
    return LC_OK;
  }
  PQclear(res);
  rc = db_run(pool,
              "SELECT request_hash, coalesce(report_id::text, '') FROM storage.idempotency_keys "
              "WHERE user_id = $1::uuid AND key = $2",
              2, params, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1) {
    PQclear(res);
    return lc_err_set(err, LC_ERR_CONFLICT, "idempotency claim vanished; retry");
  }
  if (strcmp(PQgetvalue(res, 0, 0), hash) != 0)
    rc = LC_ERR_UNPROCESSABLE;
  else if (PQgetvalue(res, 0, 1)[0] == '\0')
    rc = LC_ERR_CONFLICT;
  else
    rc = LC_ERR_NOTFOUND;
  lc_strlcpy(report_id, PQgetvalue(res, 0, 1), 37);
  PQclear(res);
  return rc;
}

/* Marks the claim completed (report_id) or, with report_id NULL, drops it. */
static void idem_finish(lc_db_pool *pool, const char *user_id, const char *key,
                        const char *report_id)
{
  const char *params[3] = {user_id, key, report_id};
  char err[LC_ERR_LEN] = "";
  int rc;

  if (report_id != NULL)
    rc = db_run(pool,
                "UPDATE storage.idempotency_keys SET report_id = $3::uuid "
                "WHERE user_id = $1::uuid AND key = $2",
                3, params, NULL, err);
  else
    rc = db_run(pool,
                "DELETE FROM storage.idempotency_keys "
                "WHERE user_id = $1::uuid AND key = $2 AND report_id IS NULL",
                2, params, NULL, err);
  if (rc != LC_OK)
    lc_log_error("storage_reports_create - idempotency key not %s: %s",
                 report_id != NULL ? "completed" : "released", err);
}

typedef struct {
  const storage_report *r;
  const char *object_key;
  const char *reservation_id;
  const char *idem_key;
  const char *req_hash;
} insert_args;

static int db_insert(lc_db_pool *pool, const insert_args *a, char created_at[32],
                     char err[LC_ERR_LEN])
{
  char size[24];
  const char *params[12];
  PGresult *res = NULL;
  int rc;

  snprintf(size, sizeof(size), "%" PRId64, a->r->size_bytes);
  params[0] = a->r->id;
  params[1] = a->r->user_id;
  params[2] = a->r->kind;
  params[3] = a->r->format;
  params[4] = a->object_key;
  params[5] = size;
  params[6] = a->r->sha256;
  params[7] = a->r->from[0] != '\0' ? a->r->from : NULL;
  params[8] = a->r->to[0] != '\0' ? a->r->to : NULL;
  params[9] = a->reservation_id;
  params[10] = a->idem_key;
  params[11] = a->idem_key != NULL ? a->req_hash : NULL;
  rc = db_run(pool,
              "INSERT INTO storage.reports (id, user_id, kind, format, object_key, size_bytes, "
              "sha256, from_ts, to_ts, reservation_id, idempotency_key, request_hash) "
              "VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::bigint, $7, $8::timestamptz, "
              "$9::timestamptz, $10, $11, $12) "
              "RETURNING to_char(created_at AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
              12, params, &res, err);
  if (rc != LC_OK)
    return rc;
  lc_strlcpy(created_at, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "", 32);
  PQclear(res);
  return LC_OK;
}

static int db_set_debit(lc_db_pool *pool, const char *id, const char *debit_id,
                        char err[LC_ERR_LEN])
{
  const char *params[2] = {id, debit_id};

  return db_run(pool, "UPDATE storage.reports SET debit_id = $2 WHERE id = $1::uuid", 2, params,
                NULL, err);
}

static int db_delete(lc_db_pool *pool, const char *id, char err[LC_ERR_LEN])
{
  const char *params[1] = {id};

  return db_run(pool, "DELETE FROM storage.reports WHERE id = $1::uuid AND debit_id IS NULL", 1,
                params, NULL, err);
}

/* ---- paid flow ---------------------------------------------------------- */

/* SHA-256 over the normalised request, to tell a replay from a different
 * request under the same Idempotency-Key. */
void storage_reports_request_hash(const storage_report_req *req, char out[65])
{
  char canon[128];
  uint8_t d[32];
  int n = snprintf(canon, sizeof(canon), "report.generate\n%s\n%s\n%s\n%s", req->kind,
                   req->format, req->from, req->to);

  lc_sha256(canon, n > 0 ? (size_t)n : 0, d);
  lc_hex_encode(d, 32, out);
}

/* Releases a reservation after a failure; errors are logged (the
 * reservation then expires at credit-svc after its TTL). */
static void release_logged(const storage_reports_ctx *ctx, const lc_identity *id,
                           const char *reservation_id)
{
  char err[LC_ERR_LEN] = "";
  int rc = storage_creditc_release(ctx->credit, id, reservation_id, err);

  if (rc != LC_OK)
    lc_log_error("storage_reports_create - release of reservation %s failed: %s (it expires by TTL)",
                 reservation_id, err);
}

static void delete_object_logged(const storage_reports_ctx *ctx, const char *key)
{
  char err[LC_ERR_LEN] = "";

  if (storage_s3_delete_object(ctx->s3, key, err) != LC_OK)
    lc_log_warn("storage_reports_create - orphan object %s not deleted: %s", key, err);
}

/* Commit with the "maybe it did commit" recovery described in reports.h. */
static int commit_or_recover(const storage_reports_ctx *ctx, const lc_identity *id,
                             const char *reservation_id, char debit_id[64])
{
  char err[LC_ERR_LEN] = "";
  int rc, rel;

  rc = storage_creditc_commit(ctx->credit, id, reservation_id, debit_id, err);
  if (rc == LC_OK)
    return LC_OK;
  lc_log_error("storage_reports_create - commit of reservation %s failed: %s", reservation_id, err);
  rel = storage_creditc_release(ctx->credit, id, reservation_id, err);
  if (rel == LC_ERR_CONFLICT) {
    /* credit-svc says it is committed already: fetch the debit (idempotent). */
    rc = storage_creditc_commit(ctx->credit, id, reservation_id, debit_id, err);
    if (rc == LC_OK)
      return LC_OK;
    lc_log_error("Event - reservation %s is committed but its debit could not be read: %s",
                 reservation_id, err);
    return LC_ERR_UNAVAIL;
  }
  if (rel != LC_OK)
    lc_log_error("storage_reports_create - release of reservation %s failed: %s (it expires by TTL)",
                 reservation_id, err);
  return LC_ERR_UNAVAIL;
}

int storage_reports_create(const storage_reports_ctx *ctx, const lc_identity *id,
                           const storage_report_req *req, const char *idem_key,
                           storage_report *out, int *replayed, char err[LC_ERR_LEN])
{
  storage_reservation resv;
  storage_report r;
  insert_args ia;
  json_t *entries = NULL;
  char *doc = NULL;
  char hash[65], object_key[160], generated_at[32], debit_id[64], ierr[LC_ERR_LEN];
  uint8_t digest[32];
  size_t doclen = 0;
  int rc, truncated = 0, reserved = 0, stored = 0, inserted = 0, claimed = 0;

  *replayed = 0;
  memset(out, 0, sizeof(*out));
  memset(&r, 0, sizeof(r));
  memset(&resv, 0, sizeof(resv));
  object_key[0] = '\0';
  if (!lc_uuid_valid(id->user_id))
    return lc_err_set(err, LC_ERR_FORBIDDEN, "a user identity is required");
  storage_reports_request_hash(req, hash);

  /* 1. Idempotency-Key: claim it, or replay / refuse */
  if (idem_key != NULL) {
    char done_id[37];
    rc = idem_claim(ctx->pool, id->user_id, idem_key, hash, done_id, ierr);
    if (rc == LC_ERR_UNPROCESSABLE)
      return lc_err_set(err, rc, "Idempotency-Key was already used with a different request");
    if (rc == LC_ERR_CONFLICT)
      return lc_err_set(err, rc, "a request with this Idempotency-Key is still in progress");
    if (rc == LC_ERR_NOTFOUND) {
      rc = storage_reports_get(ctx->pool, id->user_id, done_id, out, ierr);
      if (rc != LC_OK) {
        lc_log_error("storage_reports_create - replay of %s: %s", done_id, ierr);
        return lc_err_set(err, LC_ERR_UNAVAIL, "report metadata is temporarily unavailable");
      }
      *replayed = 1;
      return LC_OK;
    }
    if (rc != LC_OK) {
      lc_log_error("storage_reports_create - idempotency claim: %s", ierr);
      return lc_err_set(err, rc == LC_ERR_DB ? LC_ERR_DB : LC_ERR_UNAVAIL,
                        "report metadata is temporarily unavailable");
    }
    claimed = 1;
  }

  /* 2. reserve */
  rc = storage_creditc_reserve(ctx->credit, id, "report.generate", idem_key, &resv, ierr);
  if (rc != LC_OK && rc != LC_ERR_FUNDS && rc != LC_ERR_CONFLICT && rc != LC_ERR_UNPROCESSABLE) {
    lc_log_error("storage_reports_create - reserve: %s", ierr);
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "credits service is temporarily unavailable");
    goto out;
  }
  if (rc != LC_OK) {
    lc_err_set(err, rc, "%s", ierr);
    goto out;
  }
  if (resv.status[0] != '\0' && strcmp(resv.status, "reserved") != 0) {
    /* credit-svc replayed the reservation of an earlier attempt under this key */
    rc = lc_err_set(err, LC_ERR_CONFLICT,
                    "this Idempotency-Key belongs to an earlier request that did not complete "
                    "(nothing was charged); retry with a new key");
    goto out;
  }
  reserved = 1;

  /* 3. ledger -> document */
  rc = storage_creditc_ledger(ctx->credit, id,
                              ctx->max_entries > 0 ? ctx->max_entries : STORAGE_REPORT_MAX_ENTRIES,
                              &entries, &truncated, ierr);
  if (rc != LC_OK) {
    lc_log_error("storage_reports_create - ledger: %s", ierr);
    rc = lc_err_set(err, LC_ERR_UNAVAIL, "usage data is temporarily unavailable; nothing was charged");
    goto out;
  }
  lc_uuid_v4(r.id);
  lc_strlcpy(r.user_id, id->user_id, sizeof(r.user_id));
  lc_strlcpy(r.kind, req->kind, sizeof(r.kind));
  lc_strlcpy(r.format, req->format, sizeof(r.format));
  lc_strlcpy(r.from, req->from, sizeof(r.from));
  lc_strlcpy(r.to, req->to, sizeof(r.to));
  lc_rfc3339_now(generated_at);
  rc = storage_reports_build_usage(r.id, r.user_id, generated_at, req, entries, truncated, &doc,
                                   &doclen, ierr);
  if (rc != LC_OK) {
    lc_log_error("storage_reports_create - build: %s", ierr);
    rc = lc_err_set(err, rc == LC_ERR_TOO_LARGE ? LC_ERR_TOO_LARGE : LC_ERR,
                    "the report could not be built; nothing was charged");
    goto out;
  }
  r.size_bytes = (int64_t)doclen;
  lc_sha256(doc, doclen, digest);
  lc_hex_encode(digest, 32, r.sha256);

  /* 4. store */
  snprintf(object_key, sizeof(object_key), "reports/%s/%s.json", r.user_id, r.id);
  rc = storage_s3_put_object(ctx->s3, object_key, doc, doclen, "application/json", ierr);
  if (rc != LC_OK) {
    lc_log_error("storage_reports_create - store: %s", ierr);
    rc = lc_err_set(err, rc == LC_ERR_UNAVAIL ? LC_ERR_UNAVAIL : LC_ERR_IO,
                    "report storage is temporarily unavailable; nothing was charged");
    goto out;
  }
  stored = 1;

  /* 5. metadata (invisible until committed) */
  ia = (insert_args){&r, object_key, resv.reservation_id, idem_key, hash};
  rc = db_insert(ctx->pool, &ia, r.created_at, ierr);
  if (rc == LC_ERR_CONFLICT) {
    rc = lc_err_set(err, LC_ERR_CONFLICT,
                    "a request with this Idempotency-Key is already in progress");
    goto out;
  }
  if (rc != LC_OK) {
    lc_log_error("storage_reports_create - insert: %s", ierr);
    rc = lc_err_set(err, LC_ERR_UNAVAIL,
                    "report metadata is temporarily unavailable; nothing was charged");
    goto out;
  }
  inserted = 1;

  /* 6. commit */
  rc = commit_or_recover(ctx, id, resv.reservation_id, debit_id);
  reserved = 0; /* commit_or_recover released it on failure */
  if (rc != LC_OK) {
    rc = lc_err_set(err, LC_ERR_UNAVAIL,
                    "credits service is temporarily unavailable; nothing was charged");
    goto out;
  }
  inserted = 0; /* keep the row and the object from here on */
  stored = 0;
  for (int attempt = 0; attempt < 3; attempt++) {
    rc = db_set_debit(ctx->pool, r.id, debit_id, ierr);
    if (rc == LC_OK)
      break;
  }
  if (rc != LC_OK)
    lc_log_error("Event - report %s charged by debit %s but debit_id not stored: %s", r.id,
                 debit_id, ierr);
  lc_log_info("Event - report %s generated (%" PRId64 " bytes) debit %s", r.id, r.size_bytes,
              debit_id);
  if (claimed) {
    idem_finish(ctx->pool, id->user_id, idem_key, r.id);
    claimed = 0;
  }
  *out = r;
  rc = LC_OK;
out:
  if (claimed)
    idem_finish(ctx->pool, id->user_id, idem_key, NULL);
  if (inserted && db_delete(ctx->pool, r.id, ierr) != LC_OK)
    lc_log_error("storage_reports_create - metadata row %s not deleted: %s", r.id, ierr);
  if (stored)
    delete_object_logged(ctx, object_key);
  if (reserved)
    release_logged(ctx, id, resv.reservation_id);
  free(doc);
  json_decref(entries);
  return rc;
}

/* ---- reads ---------------------------------------------------------------- */

int storage_reports_get(lc_db_pool *pool, const char *user_id, const char *report_id,
                        storage_report *out, char err[LC_ERR_LEN])
{
  const char *params[2] = {report_id, user_id};
  PGresult *res = NULL;
  int rc;

  if (!lc_uuid_valid(report_id) || !lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "report not found");
  rc = db_run(pool,
              "SELECT " REPORT_COLS " FROM storage.reports "
              "WHERE id = $1::uuid AND user_id = $2::uuid AND debit_id IS NOT NULL",
              2, params, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1) {
    PQclear(res);
    return lc_err_set(err, LC_ERR_NOTFOUND, "report not found");
  }
  row_to_report(res, 0, out);
  PQclear(res);
  return LC_OK;
}

/* Cursor = base64url("<created_at epoch microseconds>:<id>"). */
static int cursor_decode(const char *cursor, char us[24], char id[37])
{
  uint8_t *raw = NULL;
  size_t rawlen = 0, i;
  int64_t v;
  int rc = LC_ERR_PARAM;

  if (strlen(cursor) > 120 || lc_b64url_decode(cursor, strlen(cursor), &raw, &rawlen) != LC_OK)
    return LC_ERR_PARAM;
  for (i = 0; i < rawlen && i < 23 && raw[i] != ':'; i++)
    us[i] = (char)raw[i];
  us[i] = '\0';
  if (i == rawlen || raw[i] != ':' || rawlen - i - 1 != 36)
    goto out;
  memcpy(id, raw + i + 1, 36);
  id[36] = '\0';
  if (!lc_uuid_valid(id) || lc_parse_i64(us, 0, INT64_MAX, &v) != LC_OK)
    goto out;
  rc = LC_OK;
out:
  free(raw);
  return rc;
}

int storage_reports_list(lc_db_pool *pool, const char *user_id, int limit, const char *cursor,
                         storage_report *items, size_t *n, char next_cursor[128],
                         char err[LC_ERR_LEN])
{
  char us[24] = "", cid[37] = "", lim[16], raw[80];
  const char *params[4];
  PGresult *res = NULL;
  int rc, rows;

  *n = 0;
  /* decode first: cursor may alias next_cursor */
  if (cursor != NULL && cursor[0] != '\0' && cursor_decode(cursor, us, cid) != LC_OK) {
    next_cursor[0] = '\0';
    return lc_err_set(err, LC_ERR_PARAM, "cursor is invalid");
  }
  next_cursor[0] = '\0';
  if (limit < 1 || limit > 100)
    return lc_err_set(err, LC_ERR_PARAM, "limit must be between 1 and 100");
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_FORBIDDEN, "a user identity is required");
  snprintf(lim, sizeof(lim), "%d", limit + 1);
  params[0] = user_id;
  params[1] = us[0] != '\0' ? us : NULL;
  params[2] = cid[0] != '\0' ? cid : NULL;
  params[3] = lim;
  rc = db_run(pool,
              "SELECT " REPORT_COLS ", (extract(epoch FROM created_at) * 1000000)::bigint::text "
              "FROM storage.reports WHERE user_id = $1::uuid AND debit_id IS NOT NULL "
              "AND ($2::bigint IS NULL OR (created_at, id) < "
              "(timestamptz 'epoch' + $2::bigint * interval '1 microsecond', $3::uuid)) "
              "ORDER BY created_at DESC, id DESC LIMIT $4::int",
              4, params, &res, err);
  if (rc != LC_OK)
    return rc;
  rows = PQntuples(res);
  for (int i = 0; i < rows && i < limit; i++)
    row_to_report(res, i, &items[(*n)++]);
  if (rows > limit) {
    char *enc;
    snprintf(raw, sizeof(raw), "%s:%s", PQgetvalue(res, limit - 1, REPORT_NCOLS),
             PQgetvalue(res, limit - 1, 0));
    enc = lc_b64url_encode((const uint8_t *)raw, strlen(raw));
    if (enc != NULL)
      lc_strlcpy(next_cursor, enc, 128);
    free(enc);
  }
  PQclear(res);
  return LC_OK;
}

json_t *storage_report_to_json(const storage_report *r)
{
  json_t *j = json_object();

  json_object_set_new(j, "id", json_string(r->id));
  json_object_set_new(j, "kind", json_string(r->kind));
  json_object_set_new(j, "format", json_string(r->format));
  json_object_set_new(j, "size_bytes", json_integer((json_int_t)r->size_bytes));
  json_object_set_new(j, "sha256", json_string(r->sha256));
  json_object_set_new(j, "created_at", json_string(r->created_at));
  if (r->from[0] != '\0')
    json_object_set_new(j, "from", json_string(r->from));
  if (r->to[0] != '\0')
    json_object_set_new(j, "to", json_string(r->to));
  return j;
}
