/* iauth.c - HMAC-SHA256 signed identity headers for daemon-to-daemon calls
 * (see lc/iauth.h for the canonical string). Verification is constant-time
 * on the MAC, checks clock skew and binds method, raw path+query as
 * received (ulfius request->http_url), identity, request id, nonce, a
 * SHA-256 of the raw body, Content-Type, Idempotency-Key, client IP and the
 * session's jti/exp; a nonce is accepted once per skew window (replay cache
 * below). Thread-safe. */
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/svc.h"
#include "lc/util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>
#include <time.h>

#include <sodium.h>

#define H_RID "X-Request-Id"
#define H_USER "X-Auth-User"
#define H_ROLE "X-Auth-Role"
#define H_SCOPE "X-Auth-Scope"
#define H_TS "X-Auth-Ts"
#define H_NONCE "X-Auth-Nonce"
#define H_SIG "X-Auth-Sig"
#define H_JTI "X-Auth-Jti"
#define H_EXP "X-Auth-Exp"
#define H_CIP "X-Client-IP"
#define H_CT "Content-Type"
#define H_IDEM "Idempotency-Key"
#define PATH_MAX_LEN 4096
#define METHOD_MAX_LEN 16
#define NONCE_BYTES 16

/* ---- replay cache ---------------------------------------------------- */

typedef struct {
  uint8_t nonce[NONCE_BYTES];
  int64_t exp;     /* remembered until now > exp */
  uint32_t next;   /* next entry in the bucket chain, index + 1 (0 = end) */
  uint32_t bucket; /* bucket holding this entry */
} rp_ent;

struct lc_iauth_replay {
  pthread_mutex_t mu;
  size_t cap;         /* ring capacity (entries) */
  size_t mask;        /* buckets - 1 (power of two) */
  uint32_t *buckets;  /* chain heads, index + 1 (0 = empty) */
  rp_ent *ent;        /* ring in arrival order: head .. head+count-1 */
  size_t head, count;
  size_t page;        /* system page size (rp_release_behind) */
  uint8_t key[crypto_shorthash_KEYBYTES]; /* SipHash key: chains stay short */
};

/* Memory flatness (issue 8): the ring is its own anonymous mapping, and
 * every RP_RELEASE entries the head passes, the whole pages behind it are
 * handed back (MADV_DONTNEED: they read as zeros again, like popped
 * entries). Without it the head sweeping the ring touches every page in
 * turn and RSS climbs by the full ring (32 MiB at the default capacity)
 * although only the live window (rate x 2 x skew) is in use. */
#define RP_RELEASE 1024

static void rp_release_behind(lc_iauth_replay *r) {
  if (r->head == 0 || r->head % RP_RELEASE != 0) return;
  uintptr_t page = (uintptr_t)r->page;
  uintptr_t lo = (uintptr_t)&r->ent[r->head - RP_RELEASE], hi = (uintptr_t)&r->ent[r->head];
  lo = (lo + page - 1) & ~(page - 1);
  hi &= ~(page - 1);
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

lc_iauth_replay *lc_iauth_replay_new(size_t capacity) {
  lc_iauth_replay *r;
  size_t nb = 16;
  if (capacity == 0 || capacity > ((size_t)1 << 31)) return NULL;
  while (nb < capacity) nb <<= 1;
  r = lc_xcalloc(1, sizeof *r);
  if (pthread_mutex_init(&r->mu, NULL) != 0) {
    free(r);
    return NULL;
  }
  r->cap = capacity;
  r->mask = nb - 1;
  long pg = sysconf(_SC_PAGESIZE);
  r->page = pg > 0 ? (size_t)pg : 4096;
  r->buckets = lc_xcalloc(nb, sizeof *r->buckets);
  r->ent = mmap(NULL, capacity * sizeof *r->ent, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r->ent == MAP_FAILED) {
    pthread_mutex_destroy(&r->mu);
    free(r->buckets);
    free(r);
    return NULL;
  }
  crypto_shorthash_keygen(r->key);
  return r;
}

void lc_iauth_replay_free(lc_iauth_replay *r) {
  if (r == NULL) return;
  pthread_mutex_destroy(&r->mu);
  free(r->buckets);
  munmap(r->ent, r->cap * sizeof *r->ent);
  sodium_memzero(r->key, sizeof r->key);
  free(r);
}

static uint32_t rp_bucket(const lc_iauth_replay *r, const uint8_t nonce[NONCE_BYTES]) {
  uint8_t h[crypto_shorthash_BYTES];
  uint64_t v = 0;
  size_t i;
  crypto_shorthash(h, nonce, NONCE_BYTES, r->key);
  for (i = 0; i < sizeof h && i < sizeof v; i++) v = (v << 8) | h[i];
  return (uint32_t)(v & r->mask);
}

/* Drops the entry at the ring head from its bucket chain and the ring. */
static void rp_pop_head(lc_iauth_replay *r) {
  rp_ent *e = &r->ent[r->head];
  uint32_t *p = &r->buckets[e->bucket];
  uint32_t want = (uint32_t)r->head + 1;
  while (*p != 0 && *p != want) p = &r->ent[*p - 1].next;
  if (*p == want) *p = e->next;
  memset(e, 0, sizeof *e);
  r->head = (r->head + 1) % r->cap;
  r->count--;
  rp_release_behind(r);
}

int lc_iauth_replay_check(lc_iauth_replay *r, const uint8_t nonce[16], int64_t expires_s,
                          int64_t now_s) {
  uint32_t b, i;
  size_t slot;
  int rc = LC_OK;
  if (r == NULL || nonce == NULL) return LC_ERR_PARAM;
  b = rp_bucket(r, nonce);
  pthread_mutex_lock(&r->mu);
  while (r->count > 0 && r->ent[r->head].exp < now_s) rp_pop_head(r);
  for (i = r->buckets[b]; i != 0; i = r->ent[i - 1].next) {
    if (sodium_memcmp(r->ent[i - 1].nonce, nonce, NONCE_BYTES) == 0) {
      rc = LC_ERR_CONFLICT;
      goto out;
    }
  }
  if (r->count == r->cap) {
    rc = LC_ERR_UNAVAIL;
    goto out;
  }
  slot = (r->head + r->count) % r->cap;
  memcpy(r->ent[slot].nonce, nonce, NONCE_BYTES);
  r->ent[slot].exp = expires_s;
  r->ent[slot].bucket = b;
  r->ent[slot].next = r->buckets[b];
  r->buckets[b] = (uint32_t)slot + 1;
  r->count++;
out:
  pthread_mutex_unlock(&r->mu);
  return rc;
}

size_t lc_iauth_replay_count(lc_iauth_replay *r) {
  size_t n;
  if (r == NULL) return 0;
  pthread_mutex_lock(&r->mu);
  n = r->count;
  pthread_mutex_unlock(&r->mu);
  return n;
}

static pthread_mutex_t g_def_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(lc_iauth_replay *) g_def = NULL;

int lc_iauth_replay_default_init(size_t capacity) {
  lc_iauth_replay *r;
  int rc = LC_OK;
  pthread_mutex_lock(&g_def_mu);
  if (atomic_load(&g_def) != NULL) {
    rc = LC_ERR;
    goto out;
  }
  r = lc_iauth_replay_new(capacity);
  if (r == NULL) {
    rc = LC_ERR_PARAM;
    goto out;
  }
  atomic_store(&g_def, r);
out:
  pthread_mutex_unlock(&g_def_mu);
  return rc;
}

lc_iauth_replay *lc_iauth_replay_default(void) {
  lc_iauth_replay *r = atomic_load(&g_def);
  if (r != NULL) return r;
  pthread_mutex_lock(&g_def_mu);
  r = atomic_load(&g_def);
  if (r == NULL) {
    r = lc_iauth_replay_new(LC_IAUTH_REPLAY_CAP);
    atomic_store(&g_def, r);
  }
  pthread_mutex_unlock(&g_def_mu);
  return r;
}

/* ---- value rules ------------------------------------------------------ */

static int valid_role(const char *r) {
  static const char *const roles[] = {"admin", "user", "service", "anon", "system"};
  size_t i;
  for (i = 0; i < sizeof roles / sizeof roles[0]; i++)
    if (strcmp(r, roles[i]) == 0) return 1;
  return 0;
}

/* Scope: "" or lowercase letters, at most 15. */
static int valid_scope(const char *s) {
  size_t n = strlen(s), i;
  if (n > 15) return 0;
  for (i = 0; i < n; i++)
    if (s[i] < 'a' || s[i] > 'z') return 0;
  return 1;
}

/* Token: "" or up to max of [A-Za-z0-9._:-] (request ids, jti). */
static int valid_token(const char *s, size_t max) {
  size_t n = strlen(s), i;
  if (n > max) return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_' || c == '.' || c == ':'))
      return 0;
  }
  return 1;
}

/* Client IP: "" or up to 45 of [0-9A-Za-z.:] (IPv4/IPv6 text, "unknown"). */
static int valid_ip(const char *s) {
  size_t n = strlen(s), i;
  if (n > 45) return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == ':'))
      return 0;
  }
  return 1;
}

/* Content-Type / Idempotency-Key: 1..LC_IAUTH_HVAL_MAX printable ASCII,
 * no leading or trailing space (HTTP parsers trim those in transit). */
static int valid_hval(const char *s) {
  size_t n = strlen(s), i;
  if (n == 0 || n > LC_IAUTH_HVAL_MAX || s[0] == ' ' || s[n - 1] == ' ') return 0;
  for (i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return 0;
  return 1;
}

static int valid_method(const char *m) {
  size_t n = strlen(m), i;
  if (n == 0 || n > METHOD_MAX_LEN) return 0;
  for (i = 0; i < n; i++)
    if (m[i] < 'A' || m[i] > 'Z') return 0;
  return 1;
}

/* Path+query: starts with '/', printable ASCII without spaces. */
static int valid_path(const char *p) {
  size_t n = strlen(p), i;
  if (n == 0 || n > PATH_MAX_LEN || p[0] != '/') return 0;
  for (i = 0; i < n; i++)
    if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f) return 0;
  return 1;
}

static int valid_identity(const lc_identity *id) {
  if (memchr(id->user_id, '\0', sizeof id->user_id) == NULL ||
      memchr(id->role, '\0', sizeof id->role) == NULL ||
      memchr(id->scope, '\0', sizeof id->scope) == NULL ||
      memchr(id->request_id, '\0', sizeof id->request_id) == NULL ||
      memchr(id->jti, '\0', sizeof id->jti) == NULL ||
      memchr(id->client_ip, '\0', sizeof id->client_ip) == NULL)
    return 0;
  if (id->user_id[0] != '\0' && !lc_uuid_valid(id->user_id)) return 0;
  if (id->exp < 0) return 0;
  return valid_role(id->role) && valid_scope(id->scope) && valid_token(id->request_id, 63) &&
         valid_token(id->jti, 36) && valid_ip(id->client_ip);
}

/* ---- canonical string ------------------------------------------------- */

/* The v2 fields, each the header text as sent ("" = header absent). */
typedef struct {
  const char *method, *path, *user, *role, *scope, *rid, *ts, *nonce, *ct, *idem, *cip, *jti,
      *exp;
} canon_fields;

/* The body field of an unsigned-payload signature (see iauth.h). */
static void unsigned_marker(const char *content_length, char out[65]) {
  snprintf(out, 65, "%s%s", LC_IAUTH_UNSIGNED_PAYLOAD,
           content_length != NULL ? content_length : "");
}

/* hex(HMAC(secret, canonical v2)) into sig_hex[65]; marker != NULL replaces
 * the body hash (unsigned payload). */
static void compute_sig(const uint8_t *secret, size_t secret_len, const canon_fields *f,
                        const void *body, size_t body_len, const char *marker,
                        char sig_hex[65]) {
  uint8_t bh[32], mac[32];
  char bh_hex[65];
  size_t cap;
  char *canon;
  int n;
  if (marker != NULL) {
    (void)lc_strlcpy(bh_hex, marker, sizeof bh_hex);
  } else {
    lc_sha256(body, body_len, bh);
    lc_hex_encode(bh, 32, bh_hex);
  }
  cap = strlen(f->method) + strlen(f->path) + strlen(f->user) + strlen(f->role) +
        strlen(f->scope) + strlen(f->rid) + strlen(f->ts) + strlen(f->nonce) + 64 +
        strlen(f->ct) + strlen(f->idem) + strlen(f->cip) + strlen(f->jti) + strlen(f->exp) + 32;
  canon = lc_xmalloc(cap);
  n = snprintf(canon, cap, "v2\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s",
               f->method, f->path, f->user, f->role, f->scope, f->rid, f->ts, f->nonce, bh_hex,
               f->ct, f->idem, f->cip, f->jti, f->exp);
  lc_hmac_sha256(secret, secret_len, canon, (size_t)n, mac);
  free(canon);
  lc_hex_encode(mac, 32, sig_hex);
  sodium_memzero(mac, sizeof mac);
}

/* "Name: value", or "Name;" for an empty value (libcurl drops "Name:"). */
static void put_line(lc_iauth_headers *h, const char *name, const char *value) {
  char *line = h->line[h->count];
  if (value[0] == '\0')
    snprintf(line, sizeof h->line[0], "%s;", name);
  else
    snprintf(line, sizeof h->line[0], "%s: %s", name, value);
  h->ptr[h->count] = line;
  h->count++;
  h->ptr[h->count] = NULL;
}

static int sign_common(const uint8_t *secret, size_t secret_len, const char *method,
                       const char *path_query, const lc_identity *id, const void *body,
                       size_t body_len, const char *marker, const char *content_type,
                       const char *idempotency_key, int64_t now_s, lc_iauth_headers *out);

int lc_iauth_sign(const uint8_t *secret, size_t secret_len, const char *method,
                  const char *path_query, const lc_identity *id, const void *body,
                  size_t body_len, const char *content_type, const char *idempotency_key,
                  int64_t now_s, lc_iauth_headers *out) {
  return sign_common(secret, secret_len, method, path_query, id, body, body_len, NULL,
                     content_type, idempotency_key, now_s, out);
}

int lc_iauth_sign_unsigned(const uint8_t *secret, size_t secret_len, const char *method,
                           const char *path_query, const lc_identity *id,
                           int64_t content_length, const char *content_type,
                           const char *idempotency_key, int64_t now_s, lc_iauth_headers *out) {
  char cl[24] = "", marker[65];
  if (content_length >= 0) snprintf(cl, sizeof cl, "%" PRId64, content_length);
  unsigned_marker(cl, marker);
  return sign_common(secret, secret_len, method, path_query, id, NULL, 0, marker, content_type,
                     idempotency_key, now_s, out);
}

static int sign_common(const uint8_t *secret, size_t secret_len, const char *method,
                       const char *path_query, const lc_identity *id, const void *body,
                       size_t body_len, const char *marker, const char *content_type,
                       const char *idempotency_key, int64_t now_s, lc_iauth_headers *out) {
  char ts[24], sig[65], nonce[2 * NONCE_BYTES + 1], exps[24] = "";
  uint8_t nb[NONCE_BYTES];
  canon_fields f;
  if (secret == NULL || secret_len == 0 || method == NULL || path_query == NULL ||
      id == NULL || out == NULL || (body == NULL && body_len > 0))
    return LC_ERR_PARAM;
  if (!valid_method(method) || !valid_path(path_query) || !valid_identity(id) ||
      (content_type != NULL && !valid_hval(content_type)) ||
      (idempotency_key != NULL && !valid_hval(idempotency_key)))
    return LC_ERR_PARAM;
  snprintf(ts, sizeof ts, "%" PRId64, now_s);
  if (id->exp > 0) snprintf(exps, sizeof exps, "%" PRId64, id->exp);
  randombytes_buf(nb, sizeof nb);
  lc_hex_encode(nb, sizeof nb, nonce);
  f.method = method;
  f.path = path_query;
  f.user = id->user_id;
  f.role = id->role;
  f.scope = id->scope;
  f.rid = id->request_id;
  f.ts = ts;
  f.nonce = nonce;
  f.ct = content_type != NULL ? content_type : "";
  f.idem = idempotency_key != NULL ? idempotency_key : "";
  f.cip = id->client_ip;
  f.jti = id->jti;
  f.exp = exps;
  compute_sig(secret, secret_len, &f, body, body_len, marker, sig);
  memset(out, 0, sizeof *out);
  put_line(out, H_RID, id->request_id);
  put_line(out, H_USER, id->user_id);
  put_line(out, H_ROLE, id->role);
  put_line(out, H_SCOPE, id->scope);
  put_line(out, H_TS, ts);
  put_line(out, H_NONCE, nonce);
  put_line(out, H_SIG, sig);
  if (id->jti[0] != '\0') put_line(out, H_JTI, id->jti);
  if (exps[0] != '\0') put_line(out, H_EXP, exps);
  if (id->client_ip[0] != '\0') put_line(out, H_CIP, id->client_ip);
  sodium_memzero(sig, sizeof sig);
  return LC_OK;
}

/* Exactly one header named name (ulfius joins repeats with ','). */
static const char *one_header(const struct _u_request *req, const char *name) {
  const char *v = u_map_get_case(req->map_header, name);
  if (v == NULL || strchr(v, ',') != NULL) return NULL;
  return v;
}

/* Optional signed header: 0 absent (*v = ""), 1 present and non-empty,
 * -1 present but empty or (commas = 0) repeated. */
static int opt_header(const struct _u_request *req, const char *name, int commas,
                      const char **v) {
  const char *x = u_map_get_case(req->map_header, name);
  *v = "";
  if (x == NULL) return 0;
  if (x[0] == '\0' || (!commas && strchr(x, ',') != NULL)) return -1;
  *v = x;
  return 1;
}

/* 32 lowercase hex digits -> 16 bytes. */
static int parse_nonce(const char *s, uint8_t out[NONCE_BYTES]) {
  size_t i, len = 0;
  if (strlen(s) != 2 * NONCE_BYTES) return 0;
  for (i = 0; i < 2 * NONCE_BYTES; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return lc_hex_decode(s, out, NONCE_BYTES, &len) == LC_OK && len == NONCE_BYTES;
}

static int verify_common(const struct _u_request *req, const lc_iauth_ctx *ctx, int64_t now_s,
                         int unsigned_payload, lc_identity *out, char err[LC_ERR_LEN]);

int lc_iauth_verify(const struct _u_request *req, const lc_iauth_ctx *ctx, int64_t now_s,
                    lc_identity *out, char err[LC_ERR_LEN]) {
  return verify_common(req, ctx, now_s, 0, out, err);
}

int lc_iauth_verify_unsigned(const struct _u_request *req, const lc_iauth_ctx *ctx,
                             int64_t now_s, lc_identity *out, char err[LC_ERR_LEN]) {
  return verify_common(req, ctx, now_s, 1, out, err);
}

static int verify_common(const struct _u_request *req, const lc_iauth_ctx *ctx, int64_t now_s,
                         int unsigned_payload, lc_identity *out, char err[LC_ERR_LEN]) {
  char marker[65];
  const char *rid, *user, *role, *scope, *ts, *nonce, *sig, *method, *path;
  const char *ct, *idem, *cip, *jti, *exps;
  char want[65];
  uint8_t nb[NONCE_BYTES];
  int64_t t, exp = 0;
  int skew, rc;
  lc_identity id;
  canon_fields f;
  lc_iauth_replay *cache;
  if (out != NULL) memset(out, 0, sizeof *out);
  if (req == NULL || ctx == NULL || ctx->secret == NULL || ctx->secret_len == 0 || out == NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad arguments");
  rid = one_header(req, H_RID);
  user = one_header(req, H_USER);
  role = one_header(req, H_ROLE);
  scope = one_header(req, H_SCOPE);
  ts = one_header(req, H_TS);
  nonce = one_header(req, H_NONCE);
  sig = one_header(req, H_SIG);
  if (rid == NULL || user == NULL || role == NULL || scope == NULL || ts == NULL ||
      nonce == NULL || sig == NULL)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: missing or repeated header");
  /* Content-Type / Idempotency-Key are signed as received (a repeat changes
   * the value), so commas are allowed there. */
  if (opt_header(req, H_CT, 1, &ct) < 0 || opt_header(req, H_IDEM, 1, &idem) < 0 ||
      opt_header(req, H_CIP, 0, &cip) < 0 || opt_header(req, H_JTI, 0, &jti) < 0 ||
      opt_header(req, H_EXP, 0, &exps) < 0)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: empty or repeated header");
  method = req->http_verb;
  path = req->http_url;
  if (method == NULL || path == NULL || !valid_method(method) || !valid_path(path))
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad method or path");
  if ((ct[0] != '\0' && !valid_hval(ct)) || (idem[0] != '\0' && !valid_hval(idem)))
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: malformed Content-Type or Idempotency-Key");
  if (exps[0] != '\0' &&
      (strlen(exps) > 19 || lc_parse_i64(exps, 1, INT64_MAX, &exp) != LC_OK))
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: malformed identity");
  memset(&id, 0, sizeof id);
  if (lc_strlcpy(id.user_id, user, sizeof id.user_id) != LC_OK ||
      lc_strlcpy(id.role, role, sizeof id.role) != LC_OK ||
      lc_strlcpy(id.scope, scope, sizeof id.scope) != LC_OK ||
      lc_strlcpy(id.request_id, rid, sizeof id.request_id) != LC_OK ||
      lc_strlcpy(id.jti, jti, sizeof id.jti) != LC_OK ||
      lc_strlcpy(id.client_ip, cip, sizeof id.client_ip) != LC_OK || !valid_identity(&id))
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: malformed identity");
  id.exp = exp;
  if (strlen(ts) > 19 || lc_parse_i64(ts, 0, INT64_MAX, &t) != LC_OK)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad timestamp");
  skew = ctx->max_skew_s > 0 ? ctx->max_skew_s : LC_IAUTH_SKEW_S;
  if (t > now_s + skew || t < now_s - skew)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: timestamp outside the allowed skew");
  if (!parse_nonce(nonce, nb))
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad nonce format");
  if (strlen(sig) != 64)
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad signature format");
  f.method = method;
  f.path = path;
  f.user = user;
  f.role = role;
  f.scope = scope;
  f.rid = rid;
  f.ts = ts;
  f.nonce = nonce;
  f.ct = ct;
  f.idem = idem;
  f.cip = cip;
  f.jti = jti;
  f.exp = exps;
  if (unsigned_payload) {
    /* The received Content-Length text ("" for a chunked body). */
    const char *cl = u_map_get_case(req->map_header, "Content-Length");
    if (cl != NULL && (strlen(cl) > 19 || strspn(cl, "0123456789") != strlen(cl)))
      return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: bad Content-Length");
    unsigned_marker(cl, marker);
  }
  compute_sig(ctx->secret, ctx->secret_len, &f, req->binary_body,
              req->binary_body ? req->binary_body_length : 0,
              unsigned_payload ? marker : NULL, want);
  if (!lc_ct_eq(want, sig, 64)) {
    sodium_memzero(want, sizeof want);
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: signature mismatch");
  }
  sodium_memzero(want, sizeof want);
  /* Only a correctly signed, fresh request reaches the cache, so it cannot
   * be filled by unauthenticated traffic. */
  cache = ctx->replay != NULL ? ctx->replay : lc_iauth_replay_default();
  if (cache == NULL)
    return lc_err_set(err, LC_ERR_UNAVAIL, "internal auth: no replay cache");
  rc = lc_iauth_replay_check(cache, nb, t + skew, now_s);
  if (rc == LC_ERR_CONFLICT) {
    lc_metric_add("internal_auth_replayed_total", 1);
    return lc_err_set(err, LC_ERR_UNAUTH, "internal auth: replayed (nonce already used)");
  }
  if (rc != LC_OK) {
    lc_metric_add("internal_auth_replay_cache_full_total", 1);
    return lc_err_set(err, LC_ERR_UNAVAIL, "internal auth: replay cache full");
  }
  *out = id;
  return LC_OK;
}

static int is_ops_path(const struct _u_request *req) {
  const char *p = req->url_path;
  if (req->http_verb == NULL || strcmp(req->http_verb, "GET") != 0 || p == NULL) return 0;
  return strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0 || strcmp(p, "/metrics") == 0;
}

int lc_iauth_callback(const struct _u_request *req, struct _u_response *resp, void *user_data) {
  const lc_iauth_ctx *ctx = user_data;
  lc_identity *id;
  char err[LC_ERR_LEN] = "";
  int rc;
  if (is_ops_path(req)) return U_CALLBACK_CONTINUE;
  /* Already verified by an earlier registration of this callback on the
   * same request (e.g. "*" plus a route): checking again would see the
   * nonce as replayed. */
  if (lc_iauth_identity(resp) != NULL) return U_CALLBACK_CONTINUE;
  if (ctx == NULL) return lc_problem(resp, 500, NULL, NULL);
  id = lc_xcalloc(1, sizeof *id);
  rc = lc_iauth_verify(req, ctx, (int64_t)time(NULL), id, err);
  if (rc != LC_OK) {
    free(id);
    lc_log_set_rid(NULL);
    lc_log_warn("Security - internal auth rejected %s %.128s: %s",
                req->http_verb ? req->http_verb : "?", req->url_path ? req->url_path : "?", err);
    if (rc == LC_ERR_UNAVAIL) {
      u_map_put(resp->map_header, "Retry-After", "1");
      return lc_problem(resp, 503, NULL, "internal replay cache full, retry later");
    }
    return lc_problem(resp, 401, NULL, "invalid internal credentials");
  }
  lc_log_set_rid(id->request_id);
  if (ulfius_set_response_shared_data(resp, id, free) != U_OK) {
    free(id);
    return lc_problem(resp, 500, NULL, NULL);
  }
  return U_CALLBACK_CONTINUE;
}

const lc_identity *lc_iauth_identity(const struct _u_response *resp) {
  if (resp == NULL || resp->free_shared_data != free) return NULL;
  return (const lc_identity *)resp->shared_data;
}

/* Value of "Name: value" in line when its name is name (any case), else NULL. */
static const char *line_value(const char *line, const char *name) {
  size_t n = strlen(name);
  if (strncasecmp(line, name, n) != 0 || line[n] != ':') return NULL;
  line += n + 1;
  while (*line == ' ') line++;
  return line;
}

int lc_iauth_call(const uint8_t *secret, size_t secret_len, const char *base_url,
                  const char *method, const char *path_query, const lc_identity *id,
                  const char *const *extra_headers, const char *body, size_t body_len,
                  long timeout_ms, lc_http_resp *resp, char err[LC_ERR_LEN]) {
  lc_iauth_headers ih;
  const char **hdrs = NULL;
  const char *ct = NULL, *idem = NULL, *v;
  char *url = NULL;
  size_t next = 0, i, n = 0, ulen;
  lc_http_req hr;
  int rc, k, ct_in_extra = 0;
  if (resp != NULL) memset(resp, 0, sizeof *resp);
  if (base_url == NULL || method == NULL || path_query == NULL || id == NULL || resp == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "iauth call: missing argument");
  if (body == NULL) body_len = 0;
  /* The Content-Type and Idempotency-Key actually sent are signed. */
  while (extra_headers != NULL && extra_headers[next] != NULL) {
    if ((v = line_value(extra_headers[next], H_CT)) != NULL) {
      ct = v;
      ct_in_extra = 1;
    }
    if ((v = line_value(extra_headers[next], H_IDEM)) != NULL) idem = v;
    next++;
  }
  if (!ct_in_extra && body != NULL) ct = "application/json";
  rc = lc_iauth_sign(secret, secret_len, method, path_query, id, body, body_len, ct, idem,
                     (int64_t)time(NULL), &ih);
  if (rc != LC_OK)
    return lc_err_set(err, rc, "iauth call: cannot sign (bad identity, path or header value)");
  hdrs = lc_xcalloc(LC_IAUTH_NHDR + 2 + next, sizeof *hdrs);
  for (k = 0; k < ih.count; k++) hdrs[n++] = ih.ptr[k];
  /* A bare "Content-Type:" stops libcurl adding its own form content type
   * to a POST without body (it would not be covered by the signature). */
  if (!ct_in_extra)
    hdrs[n++] = body != NULL ? "Content-Type: application/json" : "Content-Type:";
  for (i = 0; i < next; i++) hdrs[n++] = extra_headers[i];
  hdrs[n] = NULL;
  ulen = strlen(base_url);
  while (ulen > 0 && base_url[ulen - 1] == '/') ulen--;
  url = lc_xmalloc(ulen + strlen(path_query) + 1);
  memcpy(url, base_url, ulen);
  memcpy(url + ulen, path_query, strlen(path_query) + 1);
  memset(&hr, 0, sizeof hr);
  hr.method = method;
  hr.url = url;
  hr.headers = hdrs;
  hr.body = body;
  hr.body_len = body_len;
  hr.timeout_ms = timeout_ms;
  rc = lc_http_do(&hr, resp, err);
  free(url);
  free(hdrs);
  sodium_memzero(&ih, sizeof ih);
  return rc;
}
