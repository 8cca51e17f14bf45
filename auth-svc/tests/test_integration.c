/* test_integration.c - auth-svc use cases against the real PostgreSQL.
 *
 * Each run migrates auth-svc/sql into its own throwaway schema
 * (auth_it_<random>) and drops it at the end; every test creates its own
 * users with random emails, so order does not matter. Database URL:
 * AUTH_TEST_PG_URL (default: the dev stack, postgres superuser). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <jansson.h>
#include <ulfius.h>

#include "accounts.h"
#include "admin.h"
#include "apikeys.h"
#include "handlers.h"
#include "lc/http.h"
#include "lc/iauth.h"
#include "lc/svc.h"
#include "lc/db.h"
#include "lc/jwt.h"
#include "lc/log.h"
#include "lc/problem.h"
#include "lc/util.h"

#ifndef AUTH_SQL_DIR_DEFAULT
#define AUTH_SQL_DIR_DEFAULT "auth-svc/sql"
#endif

#define MIB ((size_t)1024 * 1024)
#define PASSWORD "s3cret-Passw0rd"

static char g_schema[64];
static char g_conninfo[1024];

/* Per-test state (fixture runs inside the forked test process). */
static lc_db_pool *pool;
static auth_pw *pw;
static auth_ctx ctx;
static uint8_t pk[32];

static void setup(void) {
  char err[LC_ERR_LEN];
  uint8_t seed[32];

  ck_assert_msg(lc_db_pool_new(g_conninfo, 4, 5000, &pool, err) == LC_OK, "%s", err);
  ck_assert_msg(auth_pw_new(64 * MIB, 2, 2, 20000, &pw, err) == LC_OK, "%s", err);
  memset(&ctx, 0, sizeof(ctx));
  ctx.pool = pool;
  ctx.pw = pw;
  lc_random(seed, sizeof(seed));
  ck_assert_int_eq(lc_jwt_keypair_from_seed(seed, pk, ctx.tok.sk), LC_OK);
  lc_strlcpy(ctx.tok.iss, "credit-saas", sizeof(ctx.tok.iss));
  lc_strlcpy(ctx.tok.aud, "credit-saas-api", sizeof(ctx.tok.aud));
  ctx.tok.access_ttl = 900;
  ctx.tok.refresh_ttl = 604800;
}

static void teardown(void) {
  auth_pw_free(pw);
  lc_db_pool_free(pool);
  pw = NULL;
  pool = NULL;
}

static void random_email(char out[80], const char *tag) {
  uint8_t r[6];
  char hex[13];
  lc_random(r, sizeof(r));
  lc_hex_encode(r, sizeof(r), hex);
  snprintf(out, 80, "%s-%s@Example.COM", tag, hex);
}

/* Runs a one-row, one-column query with up to 2 text params; returns a new string. */
static char *q1(const char *sql, const char *a, const char *b) {
  char err[LC_ERR_LEN];
  const char *p[2] = {a, b};
  PGconn *c = NULL;
  PGresult *res = NULL;
  char *v;
  int n = b != NULL ? 2 : (a != NULL ? 1 : 0);

  ck_assert_msg(lc_db_acquire(pool, &c, err) == LC_OK, "%s", err);
  ck_assert_msg(lc_db_exec(c, sql, n, p, &res, err) == LC_OK, "%s: %s", sql, err);
  ck_assert_int_eq(PQntuples(res), 1);
  v = lc_xstrdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  lc_db_release(pool, c);
  return v;
}

static void assert_q1(const char *expect, const char *sql, const char *a, const char *b) {
  char *v = q1(sql, a, b);
  ck_assert_msg(strcmp(v, expect) == 0, "%s -> '%s', expected '%s'", sql, v, expect);
  free(v);
}

static void assert_access(const auth_tokens *t, const auth_user *u) {
  char err[LC_ERR_LEN];
  lc_jwt_claims c;
  ck_assert_ptr_nonnull(t->access_token);
  ck_assert_msg(lc_jwt_verify(t->access_token, pk, "credit-saas", "credit-saas-api",
                              lc_now_ms() / 1000, 5, &c, err) == LC_OK, "%s", err);
  ck_assert_str_eq(c.sub, u->id);
  ck_assert_str_eq(c.role, u->role);
  ck_assert_int_eq(c.exp - c.iat, 900);
  ck_assert_int_eq(t->expires_in, 900);
  ck_assert(auth_sessions_token_wellformed(t->refresh_token));
}

/* Signs up a fresh user (random email) and returns its tokens. */
static void signup(const char *tag, char email[80], auth_user *u, auth_tokens *t) {
  char err[LC_ERR_LEN];
  random_email(email, tag);
  ck_assert_msg(auth_account_signup(&ctx, email, PASSWORD, strlen(PASSWORD), NULL, u, t, err) ==
                    LC_OK, "signup: %s", err);
}

START_TEST(test_signup_creates_user) {
  char email[80], lower[80], hex[65], err[LC_ERR_LEN];
  auth_user u, me;
  auth_tokens t;

  signup("signup", email, &u, &t);
  for (size_t i = 0; i <= strlen(email); i++)
    lower[i] = (char)(email[i] >= 'A' && email[i] <= 'Z' ? email[i] + 32 : email[i]);
  ck_assert(lc_uuid_valid(u.id));
  ck_assert_str_eq(u.email, lower);
  ck_assert_str_eq(u.role, "user");
  ck_assert_int_eq(u.disabled, 0);
  assert_access(&t, &u);
  /* Password stored as Argon2id, never in clear. */
  assert_q1("t", "SELECT password_hash LIKE '$argon2id$v=19$m=65536,t=2,p=1$%' "
                 "FROM users WHERE id = $1::uuid", u.id, NULL);
  assert_q1("0", "SELECT count(*) FROM users WHERE password_hash LIKE '%' || $1 || '%'",
            PASSWORD, NULL);
  /* Refresh token stored only as its SHA-256. */
  auth_sessions_token_hash(t.refresh_token, hex);
  assert_q1("1", "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2::uuid "
                 "AND parent_id IS NULL AND rotated_at IS NULL AND revoked_at IS NULL "
                 "AND family_expires_at BETWEEN now() + interval '604790 seconds' "
                 "AND now() + interval '604810 seconds'", hex, u.id);
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1", t.refresh_token,
            NULL);
  ck_assert_int_eq(auth_account_me(&ctx, u.id, &me, err), LC_OK);
  ck_assert_str_eq(me.email, lower);
  ck_assert_int_eq((int)strlen(me.created_at), 24);
  ck_assert_int_eq(me.created_at[23], 'Z');
  auth_tokens_free(&t);
}
END_TEST

START_TEST(test_signup_validation) {
  char err[LC_ERR_LEN], email[80];
  auth_user u;
  auth_tokens t;

  random_email(email, "val");
  ck_assert_int_eq(auth_account_signup(&ctx, "not-an-email", PASSWORD, strlen(PASSWORD), NULL,
                                       &u, &t, err), LC_ERR_PARAM);
  ck_assert_int_eq(auth_account_signup(&ctx, email, "short", 5, NULL, &u, &t, err), LC_ERR_PARAM);
  assert_q1("0", "SELECT count(*) FROM users WHERE email = lower($1)", email, NULL);
}
END_TEST

START_TEST(test_signup_duplicate) {
  char email[80], upper[80], err[LC_ERR_LEN];
  auth_user u, u2;
  auth_tokens t, t2;
  PGconn *c = NULL;

  signup("dup", email, &u, &t);
  ck_assert_int_eq(auth_account_signup(&ctx, email, "another-password", 16, NULL, &u2, &t2, err),
                   LC_ERR_CONFLICT);
  /* Case-insensitive: the stored address is lowercased. */
  for (size_t i = 0; i <= strlen(email); i++)
    upper[i] = (char)(email[i] >= 'a' && email[i] <= 'z' ? email[i] - 32 : email[i]);
  ck_assert_int_eq(auth_account_signup(&ctx, upper, "another-password", 16, NULL, &u2, &t2, err),
                   LC_ERR_CONFLICT);
  /* The race path (unique constraint) also maps to a conflict. */
  ck_assert_int_eq(lc_db_acquire(pool, &c, err), LC_OK);
  ck_assert_int_eq(auth_users_create(c, u.email, NULL, "user", &u2, err), LC_ERR_CONFLICT);
  lc_db_release(pool, c);
  assert_q1("1", "SELECT count(*) FROM users WHERE email = $1", u.email, NULL);
  auth_tokens_free(&t);
}
END_TEST

START_TEST(test_login) {
  char email[80], unknown[80], err[LC_ERR_LEN];
  auth_user u, lu;
  auth_tokens t, lt;

  signup("login", email, &u, &t);
  ck_assert_msg(auth_account_login(&ctx, email, PASSWORD, strlen(PASSWORD), &lu, &lt, err) == LC_OK,
                "%s", err);
  ck_assert_str_eq(lu.id, u.id);
  assert_access(&lt, &lu);
  /* A login starts a new family, distinct from the signup one. */
  ck_assert_str_ne(lt.family_id, t.family_id);
  auth_tokens_free(&lt);

  ck_assert_int_eq(auth_account_login(&ctx, email, "wrong-password", 14, &lu, &lt, err),
                   LC_ERR_UNAUTH);
  ck_assert_ptr_null(lt.access_token);
  random_email(unknown, "nobody");
  ck_assert_int_eq(auth_account_login(&ctx, unknown, PASSWORD, strlen(PASSWORD), &lu, &lt, err),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_account_login(&ctx, "bad email", PASSWORD, strlen(PASSWORD), &lu, &lt, err),
                   LC_ERR_PARAM);
  auth_tokens_free(&t);
}
END_TEST

START_TEST(test_login_unknown_email_costs_a_hash) {
  char email[80], unknown[80], err[LC_ERR_LEN];
  auth_user u, lu;
  auth_tokens t, lt;
  int64_t t0, wrong_ms = 0, unknown_ms = 0;

  signup("timing", email, &u, &t);
  random_email(unknown, "ghost");
  for (int i = 0; i < 3; i++) {
    t0 = lc_mono_ms();
    ck_assert_int_eq(auth_account_login(&ctx, email, "wrong-password", 14, &lu, &lt, err),
                     LC_ERR_UNAUTH);
    wrong_ms += lc_mono_ms() - t0;
    t0 = lc_mono_ms();
    ck_assert_int_eq(auth_account_login(&ctx, unknown, "wrong-password", 14, &lu, &lt, err),
                     LC_ERR_UNAUTH);
    unknown_ms += lc_mono_ms() - t0;
  }
  /* Both paths run one Argon2id verification (tens of ms at 64 MiB): the
   * unknown email must not be answered in a fraction of that time. */
  ck_assert_msg(unknown_ms * 2 >= wrong_ms, "unknown %lld ms vs wrong password %lld ms",
                (long long)unknown_ms, (long long)wrong_ms);
  ck_assert_msg(unknown_ms >= 3 * 10, "unknown email answered too fast: %lld ms",
                (long long)unknown_ms);
  auth_tokens_free(&t);
}
END_TEST

START_TEST(test_login_disabled) {
  char email[80], err[LC_ERR_LEN];
  auth_user u, lu;
  auth_tokens t, lt, rt;
  PGconn *c = NULL;

  signup("disabled", email, &u, &t);
  ck_assert_int_eq(lc_db_acquire(pool, &c, err), LC_OK);
  ck_assert_int_eq(auth_users_set_disabled(c, u.id, 1, err), LC_OK);
  lc_db_release(pool, c);
  ck_assert_int_eq(auth_account_login(&ctx, email, PASSWORD, strlen(PASSWORD), &lu, &lt, err),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_account_me(&ctx, u.id, &lu, err), LC_ERR_UNAUTH);
  /* Refresh of a disabled user's token fails and kills the family. */
  ck_assert_int_eq(auth_account_refresh(&ctx, t.refresh_token, &lu, &rt, err), LC_ERR_UNAUTH);
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND revoked_at IS NULL", t.family_id, NULL);
  auth_tokens_free(&t);
}
END_TEST

START_TEST(test_refresh_rotation_and_reuse) {
  char email[80], err[LC_ERR_LEN];
  auth_user u, lu, ru;
  auth_tokens t0, t1, t2, t3, other, x;

  signup("refresh", email, &u, &t0);
  ck_assert_int_eq(auth_account_login(&ctx, email, PASSWORD, strlen(PASSWORD), &lu, &other, err),
                   LC_OK);
  ck_assert_int_eq(auth_account_refresh(&ctx, t0.refresh_token, &ru, &t1, err), LC_OK);
  assert_access(&t1, &u);
  ck_assert_str_eq(ru.id, u.id);
  ck_assert_str_eq(t1.family_id, t0.family_id);
  ck_assert_str_ne(t1.refresh_token, t0.refresh_token);
  ck_assert_int_eq(auth_account_refresh(&ctx, t1.refresh_token, &ru, &t2, err), LC_OK);
  /* Chain: t0 -> t1 -> t2, parents rotated, same absolute family expiry. */
  assert_q1("3", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid", t0.family_id,
            NULL);
  assert_q1("2", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND rotated_at IS NOT NULL", t0.family_id, NULL);
  assert_q1("1", "SELECT count(DISTINCT family_expires_at) FROM refresh_tokens "
                 "WHERE family_id = $1::uuid", t0.family_id, NULL);
  assert_q1("2", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND parent_id IS NOT NULL", t0.family_id, NULL);

  /* Reuse of t0 (already rotated): 401 and the whole family is revoked. */
  ck_assert_int_eq(auth_account_refresh(&ctx, t0.refresh_token, &ru, &x, err), LC_ERR_UNAUTH);
  ck_assert_ptr_null(x.access_token);
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND revoked_at IS NULL", t0.family_id, NULL);
  /* The newest token of the family no longer works either. */
  ck_assert_int_eq(auth_account_refresh(&ctx, t2.refresh_token, &ru, &t3, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_account_refresh(&ctx, t1.refresh_token, &ru, &t3, err), LC_ERR_UNAUTH);
  /* Another family of the same user is untouched. */
  ck_assert_int_eq(auth_account_refresh(&ctx, other.refresh_token, &ru, &t3, err), LC_OK);
  auth_tokens_free(&t0);
  auth_tokens_free(&t1);
  auth_tokens_free(&t2);
  auth_tokens_free(&t3);
  auth_tokens_free(&other);
}
END_TEST

START_TEST(test_refresh_invalid_and_expired) {
  char email[80], err[LC_ERR_LEN];
  auth_user u, ru;
  auth_tokens t, x;

  ck_assert_int_eq(auth_account_refresh(&ctx, "garbage", &ru, &x, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_account_refresh(&ctx, "rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                        &ru, &x, err), LC_ERR_UNAUTH);
  signup("expired", email, &u, &t);
  assert_q1("1", "WITH u AS (UPDATE refresh_tokens SET issued_at = now() - interval '8 days', "
                 "family_expires_at = now() - interval '1 day' WHERE family_id = $1::uuid "
                 "RETURNING 1) SELECT count(*) FROM u", t.family_id, NULL);
  ck_assert_int_eq(auth_account_refresh(&ctx, t.refresh_token, &ru, &x, err), LC_ERR_UNAUTH);
  /* Expired is not reuse: nothing was rotated. */
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND rotated_at IS NOT NULL", t.family_id, NULL);
  auth_tokens_free(&t);
}
END_TEST

START_TEST(test_bootstrap_admin) {
  char email[80], err[LC_ERR_LEN];
  auth_user a, b, lu;
  auth_tokens lt;
  int created = -1;

  random_email(email, "admin");
  ck_assert_int_eq(auth_account_ensure(&ctx, email, "admin-password-1", "admin", &a, &created, err),
                   LC_OK);
  ck_assert_int_eq(created, 1);
  ck_assert_str_eq(a.role, "admin");
  /* Second start: nothing changes, not even the password. */
  ck_assert_int_eq(auth_account_ensure(&ctx, email, "other-password-2", "admin", &b, &created, err),
                   LC_OK);
  ck_assert_int_eq(created, 0);
  ck_assert_str_eq(a.id, b.id);
  ck_assert_int_eq(auth_account_login(&ctx, email, "admin-password-1", 16, &lu, &lt, err), LC_OK);
  ck_assert_str_eq(lu.role, "admin");
  assert_access(&lt, &lu);
  auth_tokens_free(&lt);
  ck_assert_int_eq(auth_account_ensure(&ctx, "bad", "admin-password-1", "admin", &a, &created, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(auth_account_ensure(&ctx, email, "short", "admin", &a, &created, err),
                   LC_ERR_PARAM);
}
END_TEST


/* ---- HTTP: the real routes behind internal auth, on a local port ---- */

static const uint8_t SECRET[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static char g_base[64];
static pthread_mutex_t g_credit_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_credit_user[37];
static char g_credit_role[16];

/* Stand-in for credit-svc POST /internal/accounts (behind lc_iauth_callback). */
static int fake_credit(const struct _u_request *req, struct _u_response *resp, void *ud) {
  const lc_identity *id = lc_iauth_identity(resp);
  json_t *j = ulfius_get_json_body_request(req, NULL);
  json_t *out;
  (void)ud;
  pthread_mutex_lock(&g_credit_mu);
  if (j != NULL && json_is_string(json_object_get(j, "user_id")))
    lc_strlcpy(g_credit_user, json_string_value(json_object_get(j, "user_id")),
               sizeof(g_credit_user));
  if (id != NULL)
    lc_strlcpy(g_credit_role, id->role, sizeof(g_credit_role));
  pthread_mutex_unlock(&g_credit_mu);
  json_decref(j);
  out = json_pack("{s:s,s:I}", "user_id", g_credit_user, "balance", (json_int_t)50);
  lc_json_send(resp, 201, out);
  json_decref(out);
  return U_CALLBACK_COMPLETE;
}

typedef struct {
  long status;
  char *body;
  char cookie[256];
} hresp;

/* Signed request as (user, role); extra "Cookie: ..." header when cookie != NULL. */
/* One extra request header for the next calls (NULL = none). */
static const char *g_extra_header;

static void call(const char *method, const char *path, const char *body, const char *user,
                 const char *role, const char *cookie, int sign, hresp *out) {
  lc_identity id;
  lc_iauth_headers ih;
  const char *hdrs[LC_IAUTH_NHDR + 4];
  char cookie_line[256], url[256], err[LC_ERR_LEN];
  lc_http_req rq;
  lc_http_resp rs;
  size_t n = 0;

  memset(&id, 0, sizeof(id));
  memset(out, 0, sizeof(*out));
  lc_strlcpy(id.user_id, user, sizeof(id.user_id));
  lc_strlcpy(id.role, role, sizeof(id.role));
  lc_strlcpy(id.scope, user[0] != '\0' ? "full" : "", sizeof(id.scope));
  lc_uuid_v4(id.request_id);
  ck_assert_int_eq(lc_iauth_sign(SECRET, sizeof(SECRET), method, path, &id, body,
                                 body != NULL ? strlen(body) : 0,
                                 body != NULL ? "application/json" : NULL, NULL,
                                 lc_now_ms() / 1000, &ih),
                   LC_OK);
  for (int i = 0; sign && i < ih.count; i++)
    hdrs[n++] = ih.ptr[i];
  /* the signed Content-Type; a bare one keeps libcurl from adding its own */
  hdrs[n++] = body != NULL ? "Content-Type: application/json" : "Content-Type:";
  if (cookie != NULL) {
    snprintf(cookie_line, sizeof(cookie_line), "Cookie: %s", cookie);
    hdrs[n++] = cookie_line;
  }
  if (g_extra_header != NULL)
    hdrs[n++] = g_extra_header;
  hdrs[n] = NULL;
  snprintf(url, sizeof(url), "%s%s", g_base, path);
  memset(&rq, 0, sizeof(rq));
  rq.method = method;
  rq.url = url;
  rq.headers = hdrs;
  rq.body = body;
  rq.body_len = body != NULL ? strlen(body) : 0;
  rq.keep_headers = 1;
  ck_assert_msg(lc_http_do(&rq, &rs, err) == LC_OK, "%s %s: %s", method, path, err);
  out->status = rs.status;
  out->body = rs.body != NULL ? lc_xstrdup(rs.body) : lc_xstrdup("");
  if (lc_http_resp_header(&rs, "Set-Cookie", out->cookie, sizeof(out->cookie)) != LC_OK)
    out->cookie[0] = '\0';
  lc_http_resp_free(&rs);
}

static const char *jstr(const char *body, const char *k1, const char *k2, char out[64]) {
  json_t *j = json_loads(body, 0, NULL), *v;
  ck_assert_ptr_nonnull(j);
  v = json_object_get(j, k1);
  if (k2 != NULL)
    v = json_object_get(v, k2);
  ck_assert_msg(json_is_string(v), "%s.%s missing in %s", k1, k2 ? k2 : "", body);
  ck_assert_int_eq(lc_strlcpy(out, json_string_value(v), 64), LC_OK);
  json_decref(j);
  return out;
}

START_TEST(test_http_routes) {
  struct _u_instance inst;
  lc_iauth_ctx ictx = {SECRET, sizeof(SECRET), LC_IAUTH_SKEW_S, NULL};
  char err[LC_ERR_LEN], email[80], body[512], uid[64], rt[64], rt2[64], tmp[64];
  char expect_cookie[256], cookie[128];
  hresp r, r2;
  int port = 0, started = 0;

  ctx.secret = SECRET;
  ctx.secret_len = sizeof(SECRET);
  for (int attempt = 0; attempt < 20 && !started; attempt++) {
    uint8_t b[2];
    lc_random(b, sizeof(b));
    port = 22000 + (b[0] << 8 | b[1]) % 8000;
    ck_assert_int_eq(lc_svc_instance_init(&inst, "127.0.0.1", port, 16384, err), LC_OK);
    ck_assert_int_eq(auth_handlers_register(&inst, &ctx, &ictx), LC_OK);
    ck_assert_int_eq(lc_svc_route(&inst, "POST", "/internal/accounts", LC_PRIO_AUTH,
                                  lc_iauth_callback, &ictx), LC_OK);
    ck_assert_int_eq(lc_svc_route(&inst, "POST", "/internal/accounts", LC_PRIO_APP, fake_credit,
                                  NULL), LC_OK);
    if (lc_svc_start(&inst, NULL, NULL, 64, 10, err) == LC_OK)
      started = 1;
    else
      ulfius_clean_instance(&inst);
  }
  ck_assert_msg(started, "could not start a test server: %s", err);
  snprintf(g_base, sizeof(g_base), "http://127.0.0.1:%d", port);
  ctx.credit_url = g_base;

  /* Unsigned -> 401 before anything else. */
  call("POST", "/v1/auth/signup", "{}", "", "anon", NULL, 0, &r);
  ck_assert_int_eq(r.status, 401);
  free(r.body);

  random_email(email, "http");
  snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\",\"admin\":true}", email,
           PASSWORD);
  call("POST", "/v1/auth/signup", body, "", "anon", NULL, 1, &r);
  ck_assert_int_eq(r.status, 400);
  ck_assert_ptr_nonnull(strstr(r.body, "admin"));
  free(r.body);

  snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, PASSWORD);
  call("POST", "/v1/auth/signup", body, "", "anon", NULL, 1, &r);
  ck_assert_msg(r.status == 201, "signup %ld %s", r.status, r.body);
  jstr(r.body, "user", "id", uid);
  ck_assert_str_eq(jstr(r.body, "user", "role", tmp), "user");
  ck_assert_str_eq(jstr(r.body, "token_type", NULL, tmp), "Bearer");
  ck_assert_ptr_nonnull(strstr(r.body, "\"expires_in\":900"));
  free(r.body);
  /* The account was opened at credit-svc, signed as role system. */
  pthread_mutex_lock(&g_credit_mu);
  ck_assert_str_eq(g_credit_user, uid);
  ck_assert_str_eq(g_credit_role, "system");
  pthread_mutex_unlock(&g_credit_mu);

  call("POST", "/v1/auth/signup", body, "", "anon", NULL, 1, &r);
  ck_assert_int_eq(r.status, 409);
  free(r.body);

  /* Wrong password and unknown email: same status, byte-identical body. */
  snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"wrong-password\"}", email);
  call("POST", "/v1/auth/login", body, "", "anon", NULL, 1, &r);
  snprintf(body, sizeof(body), "{\"email\":\"zz%s\",\"password\":\"wrong-password\"}", email);
  call("POST", "/v1/auth/login", body, "", "anon", NULL, 1, &r2);
  ck_assert_int_eq(r.status, 401);
  ck_assert_int_eq(r2.status, 401);
  ck_assert_str_eq(r.body, r2.body);
  ck_assert_str_eq(r.cookie, "");
  free(r.body);
  free(r2.body);

  snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, PASSWORD);
  call("POST", "/v1/auth/login", body, "", "anon", NULL, 1, &r);
  ck_assert_int_eq(r.status, 200);
  jstr(r.body, "refresh_token", NULL, rt);
  snprintf(expect_cookie, sizeof(expect_cookie),
           "__Host-refresh=%s; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=604800", rt);
  ck_assert_str_eq(r.cookie, expect_cookie);
  free(r.body);

  /* Refresh from the cookie: without Origin / X-Requested-With it is a
   * possible CSRF (403, token untouched); a foreign Origin too. */
  snprintf(cookie, sizeof(cookie), "__Host-refresh=%s", rt);
  call("POST", "/v1/auth/refresh", NULL, "", "anon", cookie, 1, &r);
  ck_assert_msg(r.status == 403, "csrf refresh %ld %s", r.status, r.body);
  free(r.body);
  g_extra_header = "Origin: https://evil.example";
  call("POST", "/v1/auth/refresh", NULL, "", "anon", cookie, 1, &r);
  ck_assert_int_eq(r.status, 403);
  free(r.body);
  /* then the replay of the rotated one. */
  g_extra_header = "X-Requested-With: fetch";
  call("POST", "/v1/auth/refresh", NULL, "", "anon", cookie, 1, &r);
  g_extra_header = NULL;
  ck_assert_msg(r.status == 200, "refresh %ld %s", r.status, r.body);
  jstr(r.body, "refresh_token", NULL, rt2);
  ck_assert_str_ne(rt, rt2);
  ck_assert_ptr_nonnull(strstr(r.cookie, rt2));
  free(r.body);
  snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", rt);
  call("POST", "/v1/auth/refresh", body, "", "anon", NULL, 1, &r);
  ck_assert_int_eq(r.status, 401);
  free(r.body);
  snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", rt2);
  call("POST", "/v1/auth/refresh", body, "", "anon", NULL, 1, &r);
  ck_assert_int_eq(r.status, 401);
  free(r.body);

  call("GET", "/v1/me", NULL, uid, "user", NULL, 1, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(jstr(r.body, "id", NULL, tmp), uid);
  jstr(r.body, "created_at", NULL, tmp);
  free(r.body);
  call("GET", "/v1/me", NULL, "", "anon", NULL, 1, &r);
  ck_assert_int_eq(r.status, 401);
  free(r.body);

  ulfius_stop_framework(&inst);
  ulfius_clean_instance(&inst);
}
END_TEST

/* ---- grace window, reuse audit, revocation, keys, admin ---- */

static void enable_grace(void) {
  lc_random(ctx.tok.enc_key, sizeof(ctx.tok.enc_key));
  ctx.tok.grace_ms = 2000;
}

static int outbox_count(const char *type, const char *needle) {
  char *v = q1("SELECT count(*) FROM outbox WHERE routing_key = $1 AND strpos(payload, $2) > 0",
               type, needle);
  int64_t n = -1;
  ck_assert_int_eq(lc_parse_i64(v, 0, INT32_MAX, &n), LC_OK);
  free(v);
  return (int)n;
}

typedef struct {
  const char *token;
  char out[AUTH_RT_LEN + 1];
  int rc;
} par_refresh;

static void *par_refresh_main(void *arg) {
  par_refresh *p = arg;
  char err[LC_ERR_LEN];
  auth_user u;
  auth_tokens t;
  p->rc = auth_account_refresh(&ctx, p->token, &u, &t, err);
  if (p->rc == LC_OK)
    lc_strlcpy(p->out, t.refresh_token, sizeof(p->out));
  auth_tokens_free(&t);
  return NULL;
}

START_TEST(test_grace_parallel_same_successor) {
  char email[80], err[LC_ERR_LEN];
  auth_user u, ru;
  auth_tokens t0, t1, t2, x;
  par_refresh p[10];
  pthread_t th[10];

  enable_grace();
  signup("grace", email, &u, &t0);
  for (int i = 0; i < 10; i++) {
    memset(&p[i], 0, sizeof(p[i]));
    p[i].token = t0.refresh_token;
    ck_assert_int_eq(pthread_create(&th[i], NULL, par_refresh_main, &p[i]), 0);
  }
  for (int i = 0; i < 10; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 10; i++) {
    ck_assert_int_eq(p[i].rc, LC_OK);
    ck_assert_str_eq(p[i].out, p[0].out);
  }
  ck_assert_str_ne(p[0].out, t0.refresh_token);
  /* no fork: exactly one child, family live */
  assert_q1("2", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid", t0.family_id,
            NULL);
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND revoked_at IS NOT NULL", t0.family_id, NULL);
  /* the successor is stored only sealed, never in clear */
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid AND "
                 "strpos(encode(successor_enc, 'escape'), $2) > 0", t0.family_id, p[0].out);
  /* the successor rotates normally; then t0 again is reuse (its successor is used) */
  ck_assert_int_eq(auth_account_refresh(&ctx, p[0].out, &ru, &t1, err), LC_OK);
  ck_assert_int_eq(auth_account_refresh(&ctx, t0.refresh_token, &ru, &x, err), LC_ERR_UNAUTH);
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND revoked_at IS NULL", t0.family_id, NULL);
  ck_assert_int_eq(auth_account_refresh(&ctx, t1.refresh_token, &ru, &t2, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(outbox_count("auth.audit", "refresh_reuse_detected") >= 1, 1);
  ck_assert_int_ge(outbox_count("auth.audit", t0.family_id), 1);
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND successor_enc IS NOT NULL", t0.family_id, NULL);
  auth_tokens_free(&t0);
  auth_tokens_free(&t1);
}
END_TEST

START_TEST(test_grace_window_expires) {
  char email[80], err[LC_ERR_LEN];
  auth_user u, ru;
  auth_tokens t0, t1, x;
  PGconn *c = NULL;
  int n = 0;

  enable_grace();
  signup("grace2", email, &u, &t0);
  ck_assert_int_eq(auth_account_refresh(&ctx, t0.refresh_token, &ru, &t1, err), LC_OK);
  /* 3 s later the window is closed and the sealed successor gets wiped */
  assert_q1("1", "WITH x AS (UPDATE refresh_tokens SET rotated_at = rotated_at - interval '3 s' "
                 "WHERE family_id = $1::uuid AND rotated_at IS NOT NULL RETURNING 1) "
                 "SELECT count(*) FROM x", t0.family_id, NULL);
  ck_assert_int_eq(lc_db_acquire(pool, &c, err), LC_OK);
  ck_assert_int_eq(auth_sessions_wipe_successors(c, ctx.tok.grace_ms, &n, err), LC_OK);
  lc_db_release(pool, c);
  ck_assert_int_ge(n, 1);
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND successor_enc IS NOT NULL", t0.family_id, NULL);
  ck_assert_int_eq(auth_account_refresh(&ctx, t0.refresh_token, &ru, &x, err), LC_ERR_UNAUTH);
  assert_q1("0", "SELECT count(*) FROM refresh_tokens WHERE family_id = $1::uuid "
                 "AND revoked_at IS NULL", t0.family_id, NULL);
  auth_tokens_free(&t0);
  auth_tokens_free(&t1);
}
END_TEST

START_TEST(test_logout_revokes_jti_and_family) {
  char email[80], err[LC_ERR_LEN], jti[37];
  auth_user u, ru;
  auth_tokens t0, x;

  signup("logout", email, &u, &t0);
  lc_uuid_v4(jti);
  ck_assert_msg(auth_account_logout(&ctx, u.id, jti, lc_now_ms() / 1000 + 900, t0.refresh_token,
                                    err) == LC_OK, "%s", err);
  assert_q1("1", "SELECT count(*) FROM revoked_tokens WHERE jti = $1::uuid AND user_id = $2::uuid",
            jti, u.id);
  ck_assert_int_eq(outbox_count("auth.token.revoked", jti), 1);
  ck_assert_int_ge(outbox_count("auth.audit", "\"logout\""), 1);
  ck_assert_int_eq(auth_account_refresh(&ctx, t0.refresh_token, &ru, &x, err), LC_ERR_UNAUTH);
  /* idempotent: same jti again, one event only */
  ck_assert_int_eq(auth_account_logout(&ctx, u.id, jti, lc_now_ms() / 1000 + 900, NULL, err),
                   LC_OK);
  ck_assert_int_eq(outbox_count("auth.token.revoked", jti), 1);
  /* someone else's refresh token is not revoked by my logout */
  {
    char e2[80], j2[37];
    auth_user v;
    auth_tokens tv, y;
    signup("logout2", e2, &v, &tv);
    lc_uuid_v4(j2);
    ck_assert_int_eq(auth_account_logout(&ctx, u.id, j2, lc_now_ms() / 1000 + 900,
                                         tv.refresh_token, err), LC_OK);
    ck_assert_int_eq(auth_account_refresh(&ctx, tv.refresh_token, &ru, &y, err), LC_OK);
    auth_tokens_free(&tv);
    auth_tokens_free(&y);
  }
  auth_tokens_free(&t0);
}
END_TEST

START_TEST(test_password_change) {
  char email[80], err[LC_ERR_LEN];
  auth_user u, cu, ru, lu;
  auth_tokens t0, other, nt, x;
  lc_jwt_claims c;
  char *nb;

  signup("pwchange", email, &u, &t0);
  ck_assert_int_eq(auth_account_login(&ctx, email, PASSWORD, strlen(PASSWORD), &lu, &other, err),
                   LC_OK);
  ck_assert_int_eq(auth_account_change_password(&ctx, u.id, "wrong-password", 14,
                                                "n3w-Passw0rd!", 13, &cu, &nt, err),
                   LC_ERR_FORBIDDEN);
  ck_assert_int_eq(auth_account_refresh(&ctx, other.refresh_token, &ru, &x, err), LC_OK);
  lc_strlcpy(other.refresh_token, x.refresh_token, sizeof(other.refresh_token));
  auth_tokens_free(&x);
  ck_assert_int_eq(auth_account_change_password(&ctx, u.id, PASSWORD, strlen(PASSWORD), "short",
                                                5, &cu, &nt, err), LC_ERR_PARAM);
  ck_assert_msg(auth_account_change_password(&ctx, u.id, PASSWORD, strlen(PASSWORD),
                                             "n3w-Passw0rd!", 13, &cu, &nt, err) == LC_OK,
                "%s", err);
  /* every other session is over, the new one works */
  ck_assert_int_eq(auth_account_refresh(&ctx, other.refresh_token, &ru, &x, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_account_refresh(&ctx, t0.refresh_token, &ru, &x, err), LC_ERR_UNAUTH);
  nb = q1("SELECT not_before::text FROM users WHERE id = $1::uuid", u.id, NULL);
  ck_assert_int_eq(lc_jwt_verify(nt.access_token, pk, "credit-saas", "credit-saas-api",
                                 lc_now_ms() / 1000, 5, &c, err), LC_OK);
  ck_assert_int_ge(c.iat, strtoll(nb, NULL, 10)); /* the fresh token survives not_before */
  ck_assert_int_eq(outbox_count("auth.user.revoked", u.id), 1);
  free(nb);
  ck_assert_int_eq(auth_account_refresh(&ctx, nt.refresh_token, &ru, &x, err), LC_OK);
  auth_tokens_free(&x);
  ck_assert_int_eq(auth_account_login(&ctx, email, PASSWORD, strlen(PASSWORD), &lu, &x, err),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_account_login(&ctx, email, "n3w-Passw0rd!", 13, &lu, &x, err), LC_OK);
  auth_tokens_free(&x);
  auth_tokens_free(&nt);
  auth_tokens_free(&t0);
  auth_tokens_free(&other);
}
END_TEST

START_TEST(test_api_keys_and_admin) {
  char email[80], aemail[80], err[LC_ERR_LEN];
  auth_user u, a;
  auth_tokens t, ta, x;
  json_t *out = NULL, *v = NULL;
  char key[AUTH_KEY_LEN + 1], kid[37];

  signup("keyowner", email, &u, &t);
  signup("admin", aemail, &a, &ta);
  ck_assert_int_eq(auth_admin_key_create(&ctx, a.id, u.id, "write", "ci", &out, err), LC_OK);
  lc_strlcpy(key, json_string_value(json_object_get(out, "key")), sizeof(key));
  lc_strlcpy(kid, json_string_value(json_object_get(out, "id")), sizeof(kid));
  json_decref(out);
  /* stored only as a hash */
  assert_q1("0", "SELECT count(*) FROM api_keys WHERE strpos(key_hash || prefix || name, $1) > 0",
            key + 12, NULL);
  ck_assert_int_eq(auth_internal_key_verify(&ctx, key, &v, err), LC_OK);
  ck_assert_str_eq(json_string_value(json_object_get(v, "owner_id")), u.id);
  ck_assert_str_eq(json_string_value(json_object_get(v, "owner_role")), "user");
  ck_assert_str_eq(json_string_value(json_object_get(v, "scope")), "write");
  json_decref(v);
  {
    char saved = key[20];
    key[20] = saved == 'A' ? 'B' : 'A';
    ck_assert_int_eq(auth_internal_key_verify(&ctx, key, &v, err), LC_ERR_UNAUTH);
    key[20] = saved;
  }
  /* role change follows the owner; admin cannot demote himself */
  ck_assert_int_eq(auth_admin_patch_user(&ctx, a.id, u.id, "service", -1, &out, err), LC_OK);
  json_decref(out);
  ck_assert_int_eq(auth_internal_key_verify(&ctx, key, &v, err), LC_OK);
  ck_assert_str_eq(json_string_value(json_object_get(v, "owner_role")), "service");
  json_decref(v);
  ck_assert_int_eq(outbox_count("auth.user.revoked", u.id), 1);
  ck_assert_int_eq(auth_admin_patch_user(&ctx, a.id, a.id, "service", -1, &out, err),
                   LC_ERR_FORBIDDEN);
  ck_assert_int_eq(auth_admin_patch_user(&ctx, a.id, a.id, NULL, 1, &out, err), LC_ERR_FORBIDDEN);
  ck_assert_int_eq(auth_admin_patch_user(&ctx, a.id, u.id, "root", -1, &out, err), LC_ERR_PARAM);
  /* disable: sessions and keys end, events for both */
  ck_assert_int_eq(auth_admin_patch_user(&ctx, a.id, u.id, NULL, 1, &out, err), LC_OK);
  ck_assert(json_is_true(json_object_get(out, "disabled")));
  json_decref(out);
  ck_assert_int_eq(auth_internal_key_verify(&ctx, key, &v, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(outbox_count("auth.key.revoked", kid), 1);
  ck_assert_int_eq(auth_account_refresh(&ctx, t.refresh_token, &u, &x, err), LC_ERR_UNAUTH);
  ck_assert_int_ge(outbox_count("auth.audit", "user_disabled"), 1);
  /* enable: old key stays revoked; new key works; delete revokes once */
  ck_assert_int_eq(auth_admin_patch_user(&ctx, a.id, u.id, NULL, 0, &out, err), LC_OK);
  json_decref(out);
  ck_assert_int_eq(auth_internal_key_verify(&ctx, key, &v, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_admin_key_create(&ctx, a.id, u.id, "read", "ro", &out, err), LC_OK);
  lc_strlcpy(key, json_string_value(json_object_get(out, "key")), sizeof(key));
  lc_strlcpy(kid, json_string_value(json_object_get(out, "id")), sizeof(kid));
  json_decref(out);
  ck_assert_int_eq(auth_internal_key_verify(&ctx, key, &v, err), LC_OK);
  json_decref(v);
  ck_assert_int_eq(auth_admin_key_revoke(&ctx, a.id, kid, err), LC_OK);
  ck_assert_int_eq(auth_admin_key_revoke(&ctx, a.id, kid, err), LC_OK);
  ck_assert_int_eq(outbox_count("auth.key.revoked", kid), 1);
  ck_assert_int_eq(auth_internal_key_verify(&ctx, key, &v, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_admin_key_revoke(&ctx, a.id, "00000000-0000-4000-8000-000000000000",
                                         err), LC_ERR_NOTFOUND);
  ck_assert_int_eq(auth_admin_key_create(&ctx, a.id, "00000000-0000-4000-8000-000000000000",
                                         "read", "x", &out, err), LC_ERR_NOTFOUND);
  ck_assert_int_eq(auth_admin_key_create(&ctx, a.id, u.id, "full", "x", &out, err), LC_ERR_PARAM);
  /* revocation list carries the user */
  ck_assert_int_eq(auth_internal_revocations(&ctx, &v, err), LC_OK);
  {
    size_t i;
    json_t *it;
    int seen = 0;
    json_array_foreach(json_object_get(v, "users"), i, it)
      seen |= strcmp(json_string_value(json_object_get(it, "user_id")), u.id) == 0;
    ck_assert_int_eq(seen, 1);
  }
  json_decref(v);
  auth_tokens_free(&t);
  auth_tokens_free(&ta);
}
END_TEST

START_TEST(test_not_before_strictly_grows) {
  char email[80], err[LC_ERR_LEN];
  auth_user u, cur;
  auth_tokens t;
  int64_t a = 0, b = 0;
  PGconn *c = NULL;
  char *tok = NULL;
  lc_jwt_claims cl;

  signup("notbefore", email, &u, &t);
  ck_assert_int_eq(lc_db_acquire(pool, &c, err), LC_OK);
  ck_assert_int_eq(auth_users_bump_not_before(c, u.id, &a, err), LC_OK);
  ck_assert_int_ge(a, lc_now_ms() / 1000);
  /* a token issued now gets iat = not_before (survives the first bump) ... */
  ck_assert_int_eq(auth_users_by_id(c, u.id, &cur, err), LC_OK);
  ck_assert_int_eq(auth_sessions_access_for(&ctx.tok, &cur, &tok, err), LC_OK);
  ck_assert_int_eq(lc_jwt_verify(tok, pk, "credit-saas", "credit-saas-api", lc_now_ms() / 1000,
                                 5, &cl, err), LC_OK);
  ck_assert_int_eq(cl.iat, a);
  /* ... and a second revocation in the same second still kills it */
  ck_assert_int_eq(auth_users_bump_not_before(c, u.id, &b, err), LC_OK);
  ck_assert_int_gt(b, cl.iat);
  lc_db_release(pool, c);
  free(tok);
  auth_tokens_free(&t);
}
END_TEST

static Suite *itest_suite(void) {
  Suite *s = suite_create("auth-svc-integration");
  TCase *tc = tcase_create("accounts");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_signup_creates_user);
  tcase_add_test(tc, test_signup_validation);
  tcase_add_test(tc, test_signup_duplicate);
  tcase_add_test(tc, test_login);
  tcase_add_test(tc, test_login_unknown_email_costs_a_hash);
  tcase_add_test(tc, test_login_disabled);
  tcase_add_test(tc, test_refresh_rotation_and_reuse);
  tcase_add_test(tc, test_refresh_invalid_and_expired);
  tcase_add_test(tc, test_bootstrap_admin);
  tcase_add_test(tc, test_http_routes);
  tcase_add_test(tc, test_grace_parallel_same_successor);
  tcase_add_test(tc, test_grace_window_expires);
  tcase_add_test(tc, test_logout_revokes_jti_and_family);
  tcase_add_test(tc, test_password_change);
  tcase_add_test(tc, test_api_keys_and_admin);
  tcase_add_test(tc, test_not_before_strictly_grows);
  suite_add_tcase(s, tc);
  return s;
}

/* Creates the run's schema and applies the migrations (parent process). */
static int schema_setup(const char *base, char err[LC_ERR_LEN]) {
  lc_db_pool *p = NULL;
  uint8_t r[4];
  char hex[9];
  int rc;

  lc_random(r, sizeof(r));
  lc_hex_encode(r, sizeof(r), hex);
  snprintf(g_schema, sizeof(g_schema), "auth_it_%s", hex);
  snprintf(g_conninfo, sizeof(g_conninfo), "%s%soptions=-csearch_path%%3D%s", base,
           strchr(base, '?') != NULL ? "&" : "?", g_schema);
  rc = lc_db_pool_new(g_conninfo, 1, 5000, &p, err);
  if (rc == LC_OK)
    rc = lc_db_migrate(p, g_schema, AUTH_SQL_DIR_DEFAULT, err);
  lc_db_pool_free(p);
  return rc;
}

static void schema_drop(void) {
  char err[LC_ERR_LEN], sql[128];
  lc_db_pool *p = NULL;
  PGconn *c = NULL;

  if (lc_db_pool_new(g_conninfo, 1, 5000, &p, err) != LC_OK)
    return;
  snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", g_schema);
  if (lc_db_acquire(p, &c, err) == LC_OK) {
    if (lc_db_exec(c, sql, 0, NULL, NULL, err) != LC_OK)
      fprintf(stderr, "drop schema %s: %s\n", g_schema, err);
    lc_db_release(p, c);
  }
  lc_db_pool_free(p);
}

int main(void) {
  const char *base = getenv("AUTH_TEST_PG_URL");
  char err[LC_ERR_LEN] = "";
  SRunner *sr;
  int failed;

  if (base == NULL || base[0] == '\0')
    base = "postgresql://postgres@127.0.0.1:25432/saas";
  if (lc_global_init() != 0)
    return EXIT_FAILURE;
  lc_log_init("auth-itest", "error");
  if (schema_setup(base, err) != LC_OK) {
    fprintf(stderr, "auth-svc integration: cannot prepare schema %s: %s\n", g_schema, err);
    schema_drop();
    return EXIT_FAILURE;
  }
  sr = srunner_create(itest_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  schema_drop();
  lc_log_close();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
