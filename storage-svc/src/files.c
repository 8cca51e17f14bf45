/* files.c - uploads, listing, reading, deleting, paid metadata (files.h). */
#include "files.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "idem.h"
#include "lc/log.h"
#include "lc/util.h"
#include "settle.h"

#define TS_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"
#define FILE_COLS                                                                  \
  "id::text, user_id::text, name, content_type, size_bytes::text, sha256, "        \
  "to_char(created_at AT TIME ZONE 'UTC', " TS_FMT "), object_key"
#define FILE_NCOLS 8

static void row_to_file(const PGresult *res, int i, storage_file *f)
{
  int64_t size = 0;

  memset(f, 0, sizeof(*f));
  lc_strlcpy(f->id, PQgetvalue(res, i, 0), sizeof(f->id));
  lc_strlcpy(f->user_id, PQgetvalue(res, i, 1), sizeof(f->user_id));
  lc_strlcpy(f->name, PQgetvalue(res, i, 2), sizeof(f->name));
  lc_strlcpy(f->content_type, PQgetvalue(res, i, 3), sizeof(f->content_type));
  lc_parse_i64(PQgetvalue(res, i, 4), 0, INT64_MAX, &size);
  f->size_bytes = size;
  lc_strlcpy(f->sha256, PQgetvalue(res, i, 5), sizeof(f->sha256));
  lc_strlcpy(f->created_at, PQgetvalue(res, i, 6), sizeof(f->created_at));
  lc_strlcpy(f->object_key, PQgetvalue(res, i, 7), sizeof(f->object_key));
}

json_t *storage_file_to_json(const storage_file *f)
{
  return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "id", f->id, "name", f->name,
                   "content_type", f->content_type, "size_bytes", (json_int_t)f->size_bytes,
                   "sha256", f->sha256, "created_at", f->created_at);
}

void storage_files_request_hash(const char *sha256, const char *name, const char *ctype,
                                char out[65])
{
  char canon[512];
  uint8_t d[32];
  int n = snprintf(canon, sizeof(canon), "file.upload\n%s\n%s\n%s", sha256, name, ctype);

  if (n < 0)
    n = 0;
  if ((size_t)n >= sizeof(canon))
    n = (int)sizeof(canon) - 1;
  lc_sha256(canon, (size_t)n, d);
  lc_hex_encode(d, 32, out);
}

/* ---- reads ----------------------------------------------------------------- */

int storage_files_get(lc_db_pool *pool, const char *user_id, const char *file_id,
                      storage_file *out, char err[LC_ERR_LEN])
{
  const char *params[2] = {file_id, user_id};
  PGresult *res = NULL;
  int rc;

  if (file_id == NULL || !lc_uuid_valid(file_id) || !lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "file not found");
  rc = storage_db_run_named(pool, "storage_file_get",
                            "SELECT " FILE_COLS " FROM storage.files WHERE id = $1::uuid "
                            "AND user_id = $2::uuid AND debit_id IS NOT NULL",
                            2, params, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1) {
    PQclear(res);
    return lc_err_set(err, LC_ERR_NOTFOUND, "file not found");
  }
  row_to_file(res, 0, out);
  PQclear(res);
  return LC_OK;
}

int storage_files_list(lc_db_pool *pool, const char *user_id, int limit, const char *cursor,
                       storage_file *items, size_t *n, char next_cursor[128],
                       char err[LC_ERR_LEN])
{
  PGresult *res = NULL;
  int rc, rows;

  *n = 0;
  rc = storage_page_newest(pool, FILE_COLS, FILE_NCOLS, "storage.files", user_id, limit, cursor, &res, next_cursor, err);
  if (rc != LC_OK)
    return rc;
  rows = PQntuples(res);
  for (int i = 0; i < rows && i < limit; i++)
    row_to_file(res, i, &items[(*n)++]);
  PQclear(res);
  return LC_OK;
}

int storage_files_inventory(lc_db_pool *pool, const char *user_id, int64_t from_ms,
                            int64_t to_ms, size_t max, json_t **out, int *truncated,
                            char err[LC_ERR_LEN])
{
  char from[24], to[24], lim[24];
  const char *params[4];
  PGresult *res = NULL;
  storage_file f;
  json_t *arr;
  int rc, rows;

  *out = NULL;
  *truncated = 0;
  snprintf(from, sizeof(from), "%" PRId64, from_ms);
  snprintf(to, sizeof(to), "%" PRId64, to_ms);
  snprintf(lim, sizeof(lim), "%zu", max + 1);
  params[0] = user_id;
  params[1] = from_ms >= 0 ? from : NULL;
  params[2] = to_ms >= 0 ? to : NULL;
  params[3] = lim;
  rc = storage_db_run(pool,
                      "SELECT " FILE_COLS " FROM storage.files WHERE user_id = $1::uuid "
                      "AND debit_id IS NOT NULL "
                      "AND ($2::bigint IS NULL OR created_at >= timestamptz 'epoch' + "
                      "$2::bigint * interval '1 millisecond') "
                      "AND ($3::bigint IS NULL OR created_at < timestamptz 'epoch' + "
                      "$3::bigint * interval '1 millisecond') "
                      "ORDER BY created_at DESC, id DESC LIMIT $4::int",
                      4, params, &res, err);
  if (rc != LC_OK)
    return rc;
  rows = PQntuples(res);
  arr = json_array();
  for (int i = 0; i < rows && (size_t)i < max; i++) {
    row_to_file(res, i, &f);
    json_array_append_new(arr, storage_file_to_json(&f));
  }
  *truncated = (size_t)rows > max;
  PQclear(res);
  *out = arr;
  return LC_OK;
}

/* ---- streamed read ------------------------------------------------------------ */

struct storage_file_stream {
  pthread_mutex_t mu;
  pthread_cond_t cv;         /* bytes, room or state changed */
  char *ring;
  size_t head, len;          /* ring content: [head, head+len) mod STORAGE_DL_RING */
  int64_t size;              /* stored size: the exact body length */
  int64_t received;          /* bytes put into the ring */
  int64_t delivered;         /* bytes handed to the reader */
  int hdr;                   /* 0 waiting for S3's headers, 1 200 + right length, -1 failed */
  int done;                  /* the transfer is over */
  int ok;                    /* done, whole body received, SHA-256 equal to the stored one */
  int aborted;               /* the reader went away */
  crypto_hash_sha256_state sha;
  char want_sha[65];
  char key[160];
  char id[37];
  char rid[64];              /* the request's id, for the thread's log lines */
  const storage_s3 *s3;
  pthread_t th;
};

static int fs_headers(void *ud, long status, int64_t clen)
{
  storage_file_stream *s = ud;
  int ok = status == 200 && clen == s->size;

  pthread_mutex_lock(&s->mu);
  s->hdr = ok ? 1 : -1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (!ok)
    lc_log_error("storage_files_open - %s: store answered %ld with %" PRId64 " bytes, %" PRId64
                 " stored", s->id, status, clen, s->size);
  return ok ? 0 : 1;
}

static int fs_data(void *ud, const char *buf, size_t n)
{
  storage_file_stream *s = ud;
  size_t off = 0;

  pthread_mutex_lock(&s->mu);
  if (s->received + (int64_t)n > s->size) {
    pthread_mutex_unlock(&s->mu);
    return 1; /* more than stored: never relayed */
  }
  crypto_hash_sha256_update(&s->sha, (const unsigned char *)buf, n);
  while (off < n) {
    while (s->len == STORAGE_DL_RING && !s->aborted)
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->aborted) {
      pthread_mutex_unlock(&s->mu);
      return 1;
    }
    size_t tail = (s->head + s->len) % STORAGE_DL_RING;
    size_t run = STORAGE_DL_RING - tail, room = STORAGE_DL_RING - s->len;
    if (run > room)
      run = room;
    if (run > n - off)
      run = n - off;
    memcpy(s->ring + tail, buf + off, run);
    s->len += run;
    s->received += (int64_t)run;
    off += run;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static int fs_aborted(void *ud)
{
  storage_file_stream *s = ud;
  int a;

  pthread_mutex_lock(&s->mu);
  a = s->aborted;
  pthread_mutex_unlock(&s->mu);
  return a;
}

static void *fs_thread(void *arg)
{
  storage_file_stream *s = arg;
  storage_s3_sink sink = {fs_headers, fs_data, fs_aborted, s};
  char ierr[LC_ERR_LEN] = "", hex[65];
  uint8_t digest[32];
  int rc;

  lc_log_set_rid(s->rid);
  rc = storage_s3_get_stream(s->s3, s->key, 0, &sink, ierr);
  pthread_mutex_lock(&s->mu);
  if (rc == LC_OK && s->received == s->size) {
    crypto_hash_sha256_final(&s->sha, digest);
    lc_hex_encode(digest, 32, hex);
    s->ok = strcmp(hex, s->want_sha) == 0;
    if (!s->ok)
      lc_log_error("storage_files_open - %s: stored object differs from its SHA-256", s->id);
  } else if (!s->aborted) {
    lc_log_error("storage_files_open - %s: %s (%" PRId64 " of %" PRId64 " bytes)", s->id,
                 rc == LC_OK ? "short body" : ierr, s->received, s->size);
  }
  if (s->hdr == 0)
    s->hdr = -1;
  s->done = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

int storage_files_open(const storage_files_ctx *ctx, const char *user_id, const char *file_id,
                       storage_file *meta, storage_file_stream **out, char err[LC_ERR_LEN])
{
  storage_file_stream *s;
  int rc, hdr;

  *out = NULL;
  rc = storage_files_get(ctx->pool, user_id, file_id, meta, err);
  if (rc != LC_OK)
    return rc;
  s = lc_xcalloc(1, sizeof(*s));
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->ring = lc_xmalloc(STORAGE_DL_RING);
  s->size = meta->size_bytes;
  s->s3 = ctx->s3;
  lc_strlcpy(s->key, meta->object_key, sizeof(s->key));
  lc_strlcpy(s->id, meta->id, sizeof(s->id));
  lc_strlcpy(s->rid, lc_log_rid(), sizeof(s->rid));
  lc_strlcpy(s->want_sha, meta->sha256, sizeof(s->want_sha));
  crypto_hash_sha256_init(&s->sha);
  if (pthread_create(&s->th, NULL, fs_thread, s) != 0) {
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->ring);
    free(s);
    return lc_err_set(err, LC_ERR_UNAVAIL, "file storage is temporarily unavailable");
  }
  pthread_mutex_lock(&s->mu);
  while (s->hdr == 0)
    pthread_cond_wait(&s->cv, &s->mu);
  hdr = s->hdr;
  pthread_mutex_unlock(&s->mu);
  if (hdr != 1) {
    storage_file_stream_close(s);
    return lc_err_set(err, LC_ERR_UNAVAIL, "file storage is temporarily unavailable");
  }
  *out = s;
  return LC_OK;
}

long storage_file_stream_read(storage_file_stream *s, char *buf, size_t max)
{
  size_t n = 0;

  pthread_mutex_lock(&s->mu);
  while (s->len == 0 && !s->done)
    pthread_cond_wait(&s->cv, &s->mu);
  if (s->len > 0 && max > 0) {
    n = s->len < max ? s->len : max;
    /* the bytes that complete the body go out only once the digest matched */
    if (s->delivered + (int64_t)n >= s->size) {
      while (!s->done)
        pthread_cond_wait(&s->cv, &s->mu);
      if (!s->ok)
        n = 0;
    }
  }
  if (n == 0) {
    int end = s->done && s->ok && s->delivered == s->size && max > 0;
    pthread_mutex_unlock(&s->mu);
    return end ? 0 : -1;
  }
  for (size_t off = 0; off < n;) {
    size_t run = STORAGE_DL_RING - s->head;
    if (run > n - off)
      run = n - off;
    memcpy(buf + off, s->ring + s->head, run);
    s->head = (s->head + run) % STORAGE_DL_RING;
    s->len -= run;
    off += run;
  }
  s->delivered += (int64_t)n;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return (long)n;
}

void storage_file_stream_close(storage_file_stream *s)
{
  if (s == NULL)
    return;
  pthread_mutex_lock(&s->mu);
  s->aborted = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->th, NULL);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->ring);
  free(s);
}

int storage_files_delete(const storage_files_ctx *ctx, const char *user_id, const char *file_id,
                         char err[LC_ERR_LEN])
{
  const char *params[2] = {file_id, user_id};
  char key[160], ierr[LC_ERR_LEN] = "";
  PGresult *res = NULL;
  int rc;

  if (file_id == NULL || !lc_uuid_valid(file_id) || !lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_NOTFOUND, "file not found");
  rc = storage_db_run(ctx->pool,
                      "DELETE FROM storage.files WHERE id = $1::uuid AND user_id = $2::uuid "
                      "AND debit_id IS NOT NULL RETURNING object_key",
                      2, params, &res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(res) != 1) {
    PQclear(res);
    return lc_err_set(err, LC_ERR_NOTFOUND, "file not found");
  }
  lc_strlcpy(key, PQgetvalue(res, 0, 0), sizeof(key));
  PQclear(res);
  if (storage_s3_delete_object(ctx->s3, key, ierr) != LC_OK)
    lc_log_warn("Event - file %s deleted; orphan object %s left in the store: %s", file_id, key,
                ierr);
  lc_log_info("Event - file %s deleted", file_id);
  return LC_OK;
}

/* ---- paid upload ------------------------------------------------------------- */

typedef struct {
  const uint8_t *p;
  size_t left;
} mem_src;

static size_t mem_read(void *ud, char *dst, size_t n)
{
  mem_src *m = ud;

  if (n > m->left)
    n = m->left;
  memcpy(dst, m->p, n);
  m->p += n;
  m->left -= n;
  return n;
}

static int db_insert(lc_db_pool *pool, const storage_file *f, const char *reservation_id,
                     const char *idem_key, int grace_s, char created_at[32],
                     char err[LC_ERR_LEN])
{
  char size[24], grace[16];
  const char *params[10];
  PGresult *res = NULL;
  int rc;

  snprintf(size, sizeof(size), "%" PRId64, f->size_bytes);
  params[0] = f->id;
  params[1] = f->user_id;
  params[2] = f->name;
  params[3] = f->content_type;
  params[4] = f->object_key;
  params[5] = size;
  params[6] = f->sha256;
  params[7] = reservation_id;
  params[8] = idem_key;
  snprintf(grace, sizeof(grace), "%d", grace_s > 0 ? grace_s : STORAGE_SETTLE_GRACE_DEFAULT);
  params[9] = grace;
  rc = storage_db_run(pool,
                      "INSERT INTO storage.files (id, user_id, name, content_type, object_key, "
                      "size_bytes, sha256, reservation_id, idempotency_key, status, "
                      "settle_after) VALUES ($1::uuid, $2::uuid, $3, $4, "
                      "$5, $6::bigint, $7, $8, $9, 'pending', "
                      "now() + $10::int * interval '1 second') "
                      "RETURNING to_char(created_at AT TIME ZONE 'UTC', " TS_FMT ")",
                      10, params, &res, err);
  if (rc != LC_OK)
    return rc;
  lc_strlcpy(created_at, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "", 32);
  PQclear(res);
  return LC_OK;
}

static int db_delete_pending(lc_db_pool *pool, const char *id, char err[LC_ERR_LEN])
{
  const char *params[1] = {id};

  return storage_db_run(pool, "DELETE FROM storage.files WHERE id = $1::uuid AND debit_id IS NULL",
                        1, params, NULL, err);
}

/* Validates the bytes and fills the content part of f (type, size, sha, name). */
static int prepare(const storage_files_ctx *ctx, const storage_upload *up, storage_file *f,
                   char err[LC_ERR_LEN])
{
  uint8_t digest[32];
  int rc;

  if (up->len > ctx->max_upload)
    return lc_err_set(err, LC_ERR_TOO_LARGE, "the file is larger than %zu bytes",
                      ctx->max_upload);
  if (up->len == 0 || (up->data == NULL && up->read == NULL))
    return lc_err_set(err, LC_ERR_PARAM, "the file is empty");
  if (up->read != NULL) {
    /* streamed: counted, hashed and sniffed on the way in */
    if (up->sha256 == NULL || strlen(up->sha256) != 64)
      return lc_err_set(err, LC_ERR, "streamed upload without its checksum");
    rc = storage_sniff_decide_type(up->sniffed, up->declared_type, f->content_type, err);
    if (rc != LC_OK)
      return rc;
    lc_strlcpy(f->sha256, up->sha256, sizeof(f->sha256));
  } else {
    rc = storage_sniff_decide(up->data, up->len, up->declared_type, f->content_type, err);
    if (rc != LC_OK)
      return rc;
    lc_sha256(up->data, up->len, digest); /* the one pass over the bytes */
    lc_hex_encode(digest, 32, f->sha256);
  }
  storage_name_sanitize(up->raw_name, up->raw_name != NULL ? up->raw_name_len : 0, "file",
                        f->name);
  f->size_bytes = (int64_t)up->len;
  return LC_OK;
}

/* Idempotency-Key: claim, or replay / refuse. Returns LC_OK (claimed),
 * LC_ERR_NOTFOUND after filling *out for a replay, or an error. */
static int claim(const storage_files_ctx *ctx, const lc_identity *id, const char *key,
                 const char *hash, storage_file *out, char err[LC_ERR_LEN])
{
  char done_id[37], ierr[LC_ERR_LEN] = "";
  int rc = storage_idem_claim(ctx->pool, id->user_id, key, hash, done_id, ierr);

  if (rc == LC_OK)
    return LC_OK;
  if (rc == LC_ERR_UNPROCESSABLE)
    return lc_err_set(err, rc, "Idempotency-Key was already used with a different request");
  if (rc == LC_ERR_CONFLICT)
    return lc_err_set(err, rc, "a request with this Idempotency-Key is still in progress or its "
                          "charge is being settled; retry later");
  if (rc == LC_ERR_NOTFOUND) {
    rc = storage_files_get(ctx->pool, id->user_id, done_id, out, ierr);
    if (rc == LC_ERR_NOTFOUND)
      return lc_err_set(err, LC_ERR_CONFLICT,
                        "the file uploaded with this Idempotency-Key was deleted since");
    if (rc != LC_OK) {
      lc_log_error("storage_files_upload - replay of %s: %s", done_id, ierr);
      return lc_err_set(err, LC_ERR_UNAVAIL, "file metadata is temporarily unavailable");
    }
    return LC_ERR_NOTFOUND;
  }
  lc_log_error("storage_files_upload - idempotency claim: %s", ierr);
  return lc_err_set(err, LC_ERR_UNAVAIL, "file metadata is temporarily unavailable");
}

int storage_files_upload(const storage_files_ctx *ctx, const lc_identity *id,
                         const storage_upload *up, const char *idem_key, storage_file *out,
                         int *replayed, char err[LC_ERR_LEN])
{
  storage_reservation resv;
  storage_file f;
  mem_src src;
  char hash[65], debit_id[64], ierr[LC_ERR_LEN] = "";
  int rc, reserved = 0, stored = 0, inserted = 0, claimed = 0;

  *replayed = 0;
  memset(out, 0, sizeof(*out));
  memset(&f, 0, sizeof(f));
  memset(&resv, 0, sizeof(resv));
  if (!lc_uuid_valid(id->user_id))
    return lc_err_set(err, LC_ERR_FORBIDDEN, "a user identity is required");

  /* 1. validate the bytes (nothing reserved yet: a refusal costs nothing) */
  rc = prepare(ctx, up, &f, err);
  if (rc != LC_OK)
    return rc;
  storage_files_request_hash(f.sha256, f.name, f.content_type, hash);

  /* 2. Idempotency-Key */
  if (idem_key != NULL) {
    rc = claim(ctx, id, idem_key, hash, out, err);
    if (rc == LC_ERR_NOTFOUND) {
      *replayed = 1;
      return LC_OK;
    }
    if (rc != LC_OK)
      return rc;
    claimed = 1;
  }

  /* 3. reserve */
  rc = storage_creditc_reserve(ctx->credit, id, "file.upload", idem_key, &resv, ierr);
  if (rc != LC_OK && rc != LC_ERR_FUNDS && rc != LC_ERR_CONFLICT && rc != LC_ERR_UNPROCESSABLE) {
    lc_log_error("storage_files_upload - reserve: %s", ierr);
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

  /* 4. stream to the store under a server-generated key */
  lc_uuid_v4(f.id);
  lc_strlcpy(f.user_id, id->user_id, sizeof(f.user_id));
  snprintf(f.object_key, sizeof(f.object_key), "files/%s/%s", f.user_id, f.id);
  src.p = up->data;
  src.left = up->len;
  if (up->read != NULL)
    rc = storage_s3_put_stream(ctx->s3, f.object_key, up->read, up->read_ud, up->len, f.sha256,
                               f.content_type, ierr);
  else
    rc = storage_s3_put_stream(ctx->s3, f.object_key, mem_read, &src, up->len, f.sha256,
                               f.content_type, ierr);
  if (rc != LC_OK) {
    lc_log_error("storage_files_upload - store: %s", ierr);
    rc = lc_err_set(err, rc == LC_ERR_IO ? LC_ERR_IO : LC_ERR_UNAVAIL,
                    "file storage is temporarily unavailable; nothing was charged");
    goto out;
  }
  stored = 1;

  /* 5. metadata row, invisible until committed */
  rc = db_insert(ctx->pool, &f, resv.reservation_id, idem_key, ctx->settle_grace_s,
                 f.created_at, ierr);
  if (rc != LC_OK) {
    lc_log_error("storage_files_upload - insert: %s", ierr);
    rc = lc_err_set(err, LC_ERR_UNAVAIL,
                    "file metadata is temporarily unavailable; nothing was charged");
    goto out;
  }
  inserted = 1;

  /* 6. commit: the work is deleted only after a definite release */
  rc = storage_settle_commit(ctx->pool, ctx->credit, id, STORAGE_IDEM_FILE, f.id, resv.reservation_id,
                             "file", "storage_files_upload", debit_id, err);
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
  lc_log_info("Event - file %s uploaded (%" PRId64 " bytes, %s) debit %s", f.id, f.size_bytes,
              f.content_type, debit_id);
  if (claimed) {
    storage_idem_finish(ctx->pool, id->user_id, idem_key, STORAGE_IDEM_FILE, f.id);
    claimed = 0;
  }
  *out = f;
  rc = LC_OK;
out:
  if (claimed)
    storage_idem_finish(ctx->pool, id->user_id, idem_key, STORAGE_IDEM_FILE, NULL);
  if (inserted && db_delete_pending(ctx->pool, f.id, ierr) != LC_OK)
    lc_log_error("storage_files_upload - pending row %s not deleted: %s", f.id, ierr);
  if (stored && storage_s3_delete_object(ctx->s3, f.object_key, ierr) != LC_OK)
    lc_log_warn("storage_files_upload - orphan object %s not deleted: %s", f.object_key, ierr);
  if (reserved)
    storage_creditc_release_logged(ctx->credit, id, resv.reservation_id, "storage_files_upload");
  return rc;
}

/* ---- paid metadata fetch -------------------------------------------------------- */

int storage_files_metadata_paid(const storage_files_ctx *ctx, const lc_identity *id,
                                const char *file_id, storage_file *out, char err[LC_ERR_LEN])
{
  storage_reservation resv;
  char debit_id[64], ierr[LC_ERR_LEN] = "";
  int rc;

  /* authorization (ownership) before the charge */
  rc = storage_files_get(ctx->pool, id->user_id, file_id, out, ierr);
  if (rc == LC_ERR_NOTFOUND)
    return lc_err_set(err, rc, "file not found");
  if (rc != LC_OK) {
    lc_log_error("storage_files_metadata_paid - %s", ierr);
    return lc_err_set(err, LC_ERR_UNAVAIL, "file metadata is temporarily unavailable");
  }
  rc = storage_creditc_reserve(ctx->credit, id, "service.metadata", NULL, &resv, ierr);
  if (rc == LC_ERR_FUNDS)
    return lc_err_set(err, rc, "%s", ierr);
  if (rc != LC_OK) {
    lc_log_error("storage_files_metadata_paid - reserve: %s", ierr);
    return lc_err_set(err, LC_ERR_UNAVAIL, "credits service is temporarily unavailable");
  }
  rc = storage_creditc_commit_or_recover(ctx->credit, id, resv.reservation_id, debit_id,
                                         "storage_files_metadata_paid");
  if (rc == LC_ERR_TIMEOUT) {
    /* maybe charged: a charge must leave the work done, so answer it */
    lc_log_warn("Event - metadata of file %s fetched; charge outcome unknown (reservation %s)",
                out->id, resv.reservation_id);
    return LC_OK;
  }
  if (rc != LC_OK) /* definitely released */
    return lc_err_set(err, LC_ERR_UNAVAIL,
                      "credits service is temporarily unavailable; nothing was charged");
  lc_log_info("Event - metadata of file %s fetched by key, debit %s", out->id, debit_id);
  return LC_OK;
}
