/* reports.c - report requests, the usage report builder, the paid
 * generation flow and storage.reports metadata (see reports.h). */
#include "reports.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvw.h"
#include "cursor.h"
#include "files.h"
#include "idem.h"
#include "lc/log.h"
#include "settle.h"
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

/* Copy of a ledger entry annotated with its debit's chain data. */
static json_t *annotate(const json_t *e, const json_t *debits)
{
  json_t *c = json_copy((json_t *)e), *d = NULL;
  const char *did = json_string_value(json_object_get(e, "debit_id"));

  if (debits == NULL)
    return c;
  if (did != NULL)
    d = json_object_get(debits, did);
  json_object_set(c, "tx_hash", d != NULL && json_object_get(d, "tx_hash") != NULL
                                    ? json_object_get(d, "tx_hash") : json_null());
  json_object_set(c, "chain_status", d != NULL && json_object_get(d, "chain_status") != NULL
                                         ? json_object_get(d, "chain_status") : json_null());
  return c;
}

static const char *jstr(const json_t *o, const char *k)
{
  return json_string_value(json_object_get(o, k));
}

static void csv_usage(storage_csv *w, const json_t *arr)
{
  static const char *const head[] = {"ts", "kind", "action", "delta", "balance_after",
                                     "debit_id", "tx_hash", "chain_status", NULL};
  for (size_t i = 0; head[i] != NULL; i++)
    storage_csv_text(w, head[i]);
  storage_csv_end_row(w);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    const json_t *e = json_array_get(arr, i);
    const char *ts = jstr(e, "ts");
    storage_csv_text(w, ts != NULL ? ts : jstr(e, "created_at"));
    storage_csv_text(w, jstr(e, "kind"));
    storage_csv_text(w, jstr(e, "action"));
    storage_csv_int(w, json_integer_value(json_object_get(e, "delta")));
    if (json_is_integer(json_object_get(e, "balance_after")))
      storage_csv_int(w, json_integer_value(json_object_get(e, "balance_after")));
    else
      storage_csv_text(w, NULL);
    storage_csv_text(w, jstr(e, "debit_id"));
    storage_csv_text(w, jstr(e, "tx_hash"));
    storage_csv_text(w, jstr(e, "chain_status"));
    storage_csv_end_row(w);
  }
}

static void csv_files(storage_csv *w, const json_t *arr)
{
  static const char *const head[] = {"id", "name", "content_type", "size_bytes", "sha256",
                                     "created_at", NULL};
  for (size_t i = 0; head[i] != NULL; i++)
    storage_csv_text(w, head[i]);
  storage_csv_end_row(w);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    const json_t *e = json_array_get(arr, i);
    storage_csv_text(w, jstr(e, "id"));
    storage_csv_text(w, jstr(e, "name"));
    storage_csv_text(w, jstr(e, "content_type"));
    storage_csv_int(w, json_integer_value(json_object_get(e, "size_bytes")));
    storage_csv_text(w, jstr(e, "sha256"));
    storage_csv_text(w, jstr(e, "created_at"));
    storage_csv_end_row(w);
  }
}

/* Totals of a usage report: debited/credited sums and chain-confirmed debits. */
static json_t *usage_totals(const json_t *arr, int chain_known)
{
  json_int_t debited = 0, credited = 0, conf_n = 0, conf_cost = 0;

  for (size_t i = 0; i < json_array_size(arr); i++) {
    const json_t *e = json_array_get(arr, i);
    json_int_t d = json_integer_value(json_object_get(e, "delta"));
    const char *cs = jstr(e, "chain_status");
    if (d < 0)
      debited += -d;
    else
      credited += d;
    if (d < 0 && cs != NULL && strcmp(cs, "confirmed") == 0) {
      conf_n++;
      conf_cost += -d;
    }
  }
  return json_pack("{s:I, s:I, s:o, s:o}", "debited", debited, "credited", credited,
                   "confirmed_debits", chain_known ? json_integer(conf_n) : json_null(),
                   "confirmed_cost", chain_known ? json_integer(conf_cost) : json_null());
}

int storage_reports_build(const storage_report_input *in, char **out, size_t *len,
                          char err[LC_ERR_LEN])
{
  const storage_report_req *req = in->req;
  int usage = strcmp(req->kind, "usage") == 0;
  json_t *doc = NULL, *arr = NULL;
  char *text = NULL;
  size_t tlen = 0;
  int rc;

  *out = NULL;
  *len = 0;
  if (!json_is_array(in->entries))
    return lc_err_set(err, LC_ERR_PARAM, "report entries must be an array");
  arr = json_array();
  for (size_t i = 0; i < json_array_size(in->entries); i++) {
    json_t *e = json_array_get(in->entries, i);
    if (json_is_object(e) && entry_in_range(e, req))
      json_array_append_new(arr, usage ? annotate(e, in->debits) : json_copy(e));
  }
  if (strcmp(req->format, "csv") == 0) {
    storage_csv w;
    storage_csv_init(&w, STORAGE_REPORT_MAX_BYTES);
    if (usage)
      csv_usage(&w, arr);
    else
      csv_files(&w, arr);
    rc = storage_csv_take(&w, &text, &tlen);
    storage_csv_free(&w);
    if (rc != LC_OK) {
      rc = lc_err_set(err, LC_ERR_TOO_LARGE, "report larger than %u bytes",
                      STORAGE_REPORT_MAX_BYTES);
      goto out;
    }
  } else {
    doc = json_object();
    json_object_set_new(doc, "report_id", json_string(in->report_id));
    json_object_set_new(doc, "user_id", json_string(in->user_id));
    json_object_set_new(doc, "kind", json_string(req->kind));
    json_object_set_new(doc, "format", json_string(req->format));
    json_object_set_new(doc, "generated_at", json_string(in->generated_at));
    if (req->from[0] != '\0')
      json_object_set_new(doc, "from", json_string(req->from));
    if (req->to[0] != '\0')
      json_object_set_new(doc, "to", json_string(req->to));
    json_object_set_new(doc, usage ? "entry_count" : "file_count",
                        json_integer((json_int_t)json_array_size(arr)));
    json_object_set_new(doc, "truncated", json_boolean(in->truncated));
    if (usage) {
      json_object_set_new(doc, "chain_data", json_string(in->debits != NULL ? "available"
                                                                             : "unavailable"));
      json_object_set_new(doc, "totals", usage_totals(arr, in->debits != NULL));
    }
    json_object_set(doc, usage ? "entries" : "files", arr);
    text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL) {
      rc = lc_err_set(err, LC_ERR, "cannot encode report (invalid text in the data?)");
      goto out;
    }
    tlen = strlen(text);
    if (tlen > STORAGE_REPORT_MAX_BYTES) {
      rc = lc_err_set(err, LC_ERR_TOO_LARGE, "report larger than %u bytes",
                      STORAGE_REPORT_MAX_BYTES);
      goto out;
    }
  }
  *len = tlen;
  *out = text;
  text = NULL;
  rc = LC_OK;
out:
  free(text);
  json_decref(arr);
  json_decref(doc);
  return rc;
}

int storage_reports_build_usage(const char *report_id, const char *user_id,
                                const char *generated_at, const storage_report_req *req,
                                const json_t *entries, int truncated, char **out, size_t *len,
                                char err[LC_ERR_LEN])
{
  storage_report_input in = {report_id, user_id, generated_at, req, entries, NULL, truncated};

  return storage_reports_build(&in, out, len, err);
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

typedef struct {
  const storage_report *r;
  const char *object_key;
  const char *reservation_id;
  const char *idem_key;
  const char *req_hash;
  int grace_s;              /* settle_after = now() + grace_s ('pending' row) */
} insert_args;

static int db_insert(lc_db_pool *pool, const insert_args *a, char created_at[32],
                     char err[LC_ERR_LEN])
{
  char size[24], grace[16];
  const char *params[13];
  PGresult *res = NULL;
  int rc;

  snprintf(size, sizeof(size), "%" PRId64, a->r->size_bytes);
  snprintf(grace, sizeof(grace), "%d", a->grace_s);
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
  params[12] = grace;
  rc = storage_db_run(pool,
              "INSERT INTO storage.reports (id, user_id, kind, format, object_key, size_bytes, "
              "sha256, from_ts, to_ts, reservation_id, idempotency_key, request_hash, status, "
              "settle_after) "
              "VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::bigint, $7, $8::timestamptz, "
              "$9::timestamptz, $10, $11, $12, 'pending', now() + $13::int * interval '1 second') "
              "RETURNING to_char(created_at AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
              13, params, &res, err);
  if (rc != LC_OK)
    return rc;
  lc_strlcpy(created_at, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "", 32);
  PQclear(res);
  return LC_OK;
}

static int db_delete(lc_db_pool *pool, const char *id, char err[LC_ERR_LEN])
{
  const char *params[1] = {id};

  return storage_db_run(pool, "DELETE FROM storage.reports WHERE id = $1::uuid AND debit_id IS NULL", 1,
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

static void delete_object_logged(const storage_reports_ctx *ctx, const char *key)
{
  char err[LC_ERR_LEN] = "";

  if (storage_s3_delete_object(ctx->s3, key, err) != LC_OK)
    lc_log_warn("storage_reports_create - orphan object %s not deleted: %s", key, err);
}

/* Chain status of the caller's debits over the report period (contract C).
 * A credit-svc without /internal/debits yields *out NULL ("unavailable"). */
static int usage_debits(const storage_reports_ctx *ctx, const lc_identity *id,
                        const storage_report_req *req, const char *generated_at, json_t **out,
                        char err[LC_ERR_LEN])
{
  char until[32];
  int available = 0, truncated = 0, rc;

  *out = NULL;
  if (req->to[0] != '\0')
    lc_strlcpy(until, req->to, sizeof(until));
  else
    storage_reports_format_time(lc_now_ms() + 60000, until);
  (void)generated_at;
  rc = storage_creditc_debits(ctx->credit, id->request_id, id->user_id,
                              req->from[0] != '\0' ? req->from : "1970-01-01T00:00:00.000Z",
                              until, 100000, out, &available, &truncated, err);
  if (rc != LC_OK)
    return rc;
  if (!available)
    lc_log_warn("storage_reports_create - credit-svc has no /internal/debits: "
                "usage report without chain data");
  if (truncated)
    lc_log_warn("storage_reports_create - debit scan truncated for the period");
  return LC_OK;
}

int storage_reports_create(const storage_reports_ctx *ctx, const lc_identity *id,
                           const storage_report_req *req, const char *idem_key,
                           storage_report *out, int *replayed, char err[LC_ERR_LEN])
{
  storage_reservation resv;
  storage_report r;
  insert_args ia;
  json_t *entries = NULL, *debits = NULL;
  size_t max_entries = ctx->max_entries > 0 ? ctx->max_entries : STORAGE_REPORT_MAX_ENTRIES;
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
    rc = storage_idem_claim(ctx->pool, id->user_id, idem_key, hash, done_id, ierr);
    if (rc == LC_ERR_UNPROCESSABLE)
      return lc_err_set(err, rc, "Idempotency-Key was already used with a different request");
    if (rc == LC_ERR_CONFLICT)
      return lc_err_set(err, rc, "a request with this Idempotency-Key is still in progress or its "
                          "charge is being settled; retry later");
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
    if (strcmp(resv.status, "released") == 0 || strcmp(resv.status, "expired") == 0)
      rc = lc_err_set(err, LC_ERR_CONFLICT,
                      "this Idempotency-Key belongs to an earlier request that did not complete "
                      "(nothing was charged); retry with a new key");
    else
      rc = lc_err_set(err, LC_ERR_CONFLICT,
                      "this Idempotency-Key belongs to an earlier request (its reservation is "
                      "%s); retry with a new key", resv.status);
    goto out;
  }
  reserved = 1;

  /* 3. source data -> document */
  lc_uuid_v4(r.id);
  lc_strlcpy(r.user_id, id->user_id, sizeof(r.user_id));
  lc_strlcpy(r.kind, req->kind, sizeof(r.kind));
  lc_strlcpy(r.format, req->format, sizeof(r.format));
  lc_strlcpy(r.from, req->from, sizeof(r.from));
  lc_strlcpy(r.to, req->to, sizeof(r.to));
  lc_rfc3339_now(generated_at);
  if (strcmp(req->kind, "usage") == 0) {
    rc = storage_creditc_ledger(ctx->credit, id, max_entries, &entries, &truncated, ierr);
    if (rc == LC_OK)
      rc = usage_debits(ctx, id, req, generated_at, &debits, ierr);
  } else {
    rc = storage_files_inventory(ctx->pool, id->user_id, req->from_ms, req->to_ms, max_entries,
                                 &entries, &truncated, ierr);
  }
  if (rc != LC_OK) {
    lc_log_error("storage_reports_create - data: %s", ierr);
    rc = lc_err_set(err, LC_ERR_UNAVAIL,
                    "report data is temporarily unavailable; nothing was charged");
    goto out;
  }
  {
    storage_report_input in = {r.id, r.user_id, generated_at, req, entries, debits, truncated};
    rc = storage_reports_build(&in, &doc, &doclen, ierr);
  }
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
  snprintf(object_key, sizeof(object_key), "reports/%s/%s.%s", r.user_id, r.id, r.format);
  rc = storage_s3_put_object(ctx->s3, object_key, doc, doclen,
                             strcmp(r.format, "csv") == 0 ? "text/csv" : "application/json", ierr);
  if (rc != LC_OK) {
    lc_log_error("storage_reports_create - store: %s", ierr);
    rc = lc_err_set(err, rc == LC_ERR_UNAVAIL ? LC_ERR_UNAVAIL : LC_ERR_IO,
                    "report storage is temporarily unavailable; nothing was charged");
    goto out;
  }
  stored = 1;

  /* 5. metadata (invisible until committed) */
  ia = (insert_args){&r, object_key, resv.reservation_id, idem_key, hash,
                     ctx->settle_grace_s > 0 ? ctx->settle_grace_s : STORAGE_SETTLE_GRACE_DEFAULT};
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

  /* 6. commit: the work is deleted only after a definite release */
  rc = storage_settle_commit(ctx->pool, ctx->credit, id, STORAGE_IDEM_REPORT, r.id, resv.reservation_id,
                             "report", "storage_reports_create", debit_id, err);
  reserved = 0; /* committed, released, or handed to the settler */
  if (rc == LC_ERR_UNAVAIL)
    goto out;
  inserted = 0; /* keep the row and the object from here on */
  stored = 0;
  if (rc != LC_OK) {
    claimed = 0; /* the settler completes or drops the claim */
    rc = LC_ERR_UNAVAIL;
    goto out;
  }
  lc_log_info("Event - report %s generated (%" PRId64 " bytes) debit %s", r.id, r.size_bytes,
              debit_id);
  if (claimed) {
    storage_idem_finish(ctx->pool, id->user_id, idem_key, STORAGE_IDEM_REPORT, r.id);
    claimed = 0;
  }
  *out = r;
  rc = LC_OK;
out:
  if (claimed)
    storage_idem_finish(ctx->pool, id->user_id, idem_key, STORAGE_IDEM_REPORT, NULL);
  if (inserted && db_delete(ctx->pool, r.id, ierr) != LC_OK)
    lc_log_error("storage_reports_create - metadata row %s not deleted: %s", r.id, ierr);
  if (stored)
    delete_object_logged(ctx, object_key);
  if (reserved)
    storage_creditc_release_logged(ctx->credit, id, resv.reservation_id, "storage_reports_create");
  free(doc);
  json_decref(entries);
  json_decref(debits);
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
  rc = storage_db_run(pool,
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

int storage_reports_list(lc_db_pool *pool, const char *user_id, int limit, const char *cursor,
                         storage_report *items, size_t *n, char next_cursor[128],
                         char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  int rc, rows;

  *n = 0;
  rc = storage_page_newest(pool, REPORT_COLS, REPORT_NCOLS, "storage.reports", user_id, limit, cursor, &res, next_cursor, err);
  if (rc != LC_OK)
    return rc;
  rows = PQntuples(res);
  for (int i = 0; i < rows && i < limit; i++)
    row_to_report(res, i, &items[(*n)++]);
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

/* ---- paid download ---------------------------------------------------------- */

static int report_object_key(lc_db_pool *pool, const char *user_id, const char *report_id,
                             char key[160], char err[LC_ERR_LEN])
{
  const char *params[2] = {report_id, user_id};
  PGresult *res = NULL;
  int rc;

  rc = storage_db_run(pool,
                      "SELECT object_key FROM storage.reports WHERE id = $1::uuid "
                      "AND user_id = $2::uuid AND debit_id IS NOT NULL",
                      2, params, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1) {
    PQclear(res);
    return lc_err_set(err, LC_ERR_NOTFOUND, "report not found");
  }
  lc_strlcpy(key, PQgetvalue(res, 0, 0), 160);
  PQclear(res);
  return LC_OK;
}

int storage_reports_download(const storage_reports_ctx *ctx, const lc_identity *id,
                             const char *report_id, storage_report *meta, char **body,
                             size_t *len, char err[LC_ERR_LEN])
{
  storage_reservation resv;
  char key[160], debit_id[64], ierr[LC_ERR_LEN] = "";
  int rc;

  *body = NULL;
  *len = 0;
  /* 1. authorization (ownership) before the charge */
  rc = storage_reports_get(ctx->pool, id->user_id, report_id != NULL ? report_id : "", meta,
                           ierr);
  if (rc == LC_OK)
    rc = report_object_key(ctx->pool, id->user_id, report_id, key, ierr);
  if (rc == LC_ERR_NOTFOUND)
    return lc_err_set(err, rc, "report not found");
  if (rc != LC_OK) {
    lc_log_error("storage_reports_download - %s", ierr);
    return lc_err_set(err, LC_ERR_UNAVAIL, "reports are temporarily unavailable");
  }
  /* 2. reserve */
  rc = storage_creditc_reserve(ctx->credit, id, "report.download", NULL, &resv, ierr);
  if (rc == LC_ERR_FUNDS)
    return lc_err_set(err, rc, "%s", ierr);
  if (rc != LC_OK) {
    lc_log_error("storage_reports_download - reserve: %s", ierr);
    return lc_err_set(err, LC_ERR_UNAVAIL, "credits service is temporarily unavailable");
  }
  /* 3. read the object (bounded) */
  rc = storage_s3_get_object(ctx->s3, key, STORAGE_REPORT_MAX_BYTES, body, len, ierr);
  if (rc != LC_OK) {
    lc_log_error("storage_reports_download - read %s: %s", key, ierr);
    storage_creditc_release_logged(ctx->credit, id, resv.reservation_id,
                                   "storage_reports_download");
    return lc_err_set(err, LC_ERR_UNAVAIL,
                      "report storage is temporarily unavailable; nothing was charged");
  }
  /* 4. commit (writes the audit row at credit-svc) */
  rc = storage_creditc_commit_or_recover(ctx->credit, id, resv.reservation_id, debit_id,
                                         "storage_reports_download");
  if (rc == LC_ERR_TIMEOUT) {
    /* maybe charged: a charge must leave the work done, so serve it */
    lc_log_warn("Event - report %s downloaded; charge outcome unknown (reservation %s)",
                meta->id, resv.reservation_id);
    return LC_OK;
  }
  if (rc != LC_OK) { /* definitely released */
    free(*body);
    *body = NULL;
    *len = 0;
    return lc_err_set(err, LC_ERR_UNAVAIL,
                      "credits service is temporarily unavailable; nothing was charged");
  }
  lc_log_info("Event - report %s downloaded, debit %s", meta->id, debit_id);
  return LC_OK;
}
