/* test_unit.c - pure unit tests for auth-svc: Argon2id hashing and its
 * concurrency bound, email/password validation, access JWT claims and the
 * refresh token format, the refresh decision table (rotate / grace / reuse /
 * reject), the CSRF decision, sealed grace successors and the API key
 * format. No database or network. */
#include <check.h>
#include <valgrind/valgrind.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lc/err.h"
#include "lc/jwt.h"
#include "lc/util.h"
#include "apikeys.h"
#include "passwords.h"
#include "policy.h"
#include "sessions.h"
#include "users.h"

#define MIB ((size_t)1024 * 1024)

/* ---- Argon2id ---- */

/* Reads "m=<n>" and "t=<n>" from a $argon2id$ string. */
static void hash_params(const char *h, long *m, long *t) {
  const char *pm = strstr(h, "$m=");
  const char *pt = strstr(h, ",t=");
  ck_assert_ptr_nonnull(pm);
  ck_assert_ptr_nonnull(pt);
  *m = strtol(pm + 3, NULL, 10);
  *t = strtol(pt + 3, NULL, 10);
}

START_TEST(test_hash_verify) {
  auth_pw *pw = NULL;
  char err[LC_ERR_LEN];
  char h[AUTH_PW_HASH_MAX], h2[AUTH_PW_HASH_MAX];
  const char *good = "correct horse battery staple";
  long m = 0, t = 0;

  ck_assert_int_eq(auth_pw_new(64 * MIB, 2, 2, 5000, &pw, err), LC_OK);
  ck_assert_int_eq(auth_pw_hash(pw, good, strlen(good), h, err), LC_OK);
  ck_assert_msg(strncmp(h, "$argon2id$", 10) == 0, "hash is %s", h);
  hash_params(h, &m, &t);
  ck_assert_int_ge(m, 65536);
  ck_assert_int_ge(t, 2);
  /* Salted: the same password hashes differently. */
  ck_assert_int_eq(auth_pw_hash(pw, good, strlen(good), h2, err), LC_OK);
  ck_assert_str_ne(h, h2);

  ck_assert_int_eq(auth_pw_verify(pw, h, good, strlen(good), err), LC_OK);
  ck_assert_int_eq(auth_pw_verify(pw, h2, good, strlen(good), err), LC_OK);
  ck_assert_int_eq(auth_pw_verify(pw, h, "correct horse battery stapl", 27, err), LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_pw_verify(pw, h, "Correct horse battery staple", 28, err), LC_ERR_UNAUTH);
  /* Length matters (no truncation at NUL or elsewhere). */
  ck_assert_int_eq(auth_pw_verify(pw, h, good, strlen(good) - 1, err), LC_ERR_UNAUTH);
  /* Dummy hash never matches, garbage hashes fail closed. */
  ck_assert_int_eq(auth_pw_verify(pw, NULL, good, strlen(good), err), LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_pw_verify(pw, "", good, strlen(good), err), LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_pw_verify(pw, "$argon2id$garbage", good, strlen(good), err),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_pw_in_use(pw), 0);
  auth_pw_free(pw);
}
END_TEST

START_TEST(test_hash_params_enforced) {
  auth_pw *pw = NULL;
  char err[LC_ERR_LEN];
  char h[AUTH_PW_HASH_MAX];
  long m = 0, t = 0;

  ck_assert_int_eq(auth_pw_new(32 * MIB, 2, 1, 100, &pw, err), LC_ERR_PARAM);
  ck_assert_ptr_null(pw);
  ck_assert_int_eq(auth_pw_new(64 * MIB, 1, 1, 100, &pw, err), LC_ERR_PARAM);
  ck_assert_int_eq(auth_pw_new(64 * MIB, 2, 0, 100, &pw, err), LC_ERR_PARAM);
  ck_assert_int_eq(auth_pw_new(64 * MIB, 2, 1, 0, &pw, err), LC_ERR_PARAM);
  /* Configured parameters show up in the string. */
  ck_assert_int_eq(auth_pw_new(80 * MIB, 3, 1, 5000, &pw, err), LC_OK);
  ck_assert_int_eq(auth_pw_hash(pw, "password1", 9, h, err), LC_OK);
  hash_params(h, &m, &t);
  ck_assert_int_eq(m, 80 * 1024);
  ck_assert_int_eq(t, 3);
  auth_pw_free(pw);
}
END_TEST

/* ---- concurrency bound ---- */

START_TEST(test_concurrency_bound_503) {
  auth_pw *pw = NULL;
  char err[LC_ERR_LEN];
  char h[AUTH_PW_HASH_MAX];
  int64_t t0, dt;

  ck_assert_int_eq(auth_pw_new(64 * MIB, 2, 1, 150, &pw, err), LC_OK);
  /* Occupy the single slot, exactly as a running hash would. */
  ck_assert_int_eq(auth_pw_slot_acquire(pw), LC_OK);
  ck_assert_int_eq(auth_pw_in_use(pw), 1);
  t0 = lc_mono_ms();
  ck_assert_int_eq(auth_pw_hash(pw, "password1", 9, h, err), LC_ERR_UNAVAIL);
  dt = lc_mono_ms() - t0;
  ck_assert_msg(dt >= 140, "gave up after %lld ms, before the 150 ms wait", (long long)dt);
  ck_assert_int_eq(lc_err_http_status(LC_ERR_UNAVAIL), 503);
  ck_assert_int_eq(auth_pw_verify(pw, NULL, "password1", 9, err), LC_ERR_UNAVAIL);
  ck_assert_int_eq(auth_pw_in_use(pw), 1);
  auth_pw_slot_release(pw);
  ck_assert_int_eq(auth_pw_in_use(pw), 0);
  ck_assert_int_eq(auth_pw_hash(pw, "password1", 9, h, err), LC_OK);
  ck_assert_int_eq(auth_pw_in_use(pw), 0);
  auth_pw_free(pw);
}
END_TEST

typedef struct {
  auth_pw *pw;
  int rc;
  int64_t waited_ms;
} hash_job;

static void *hash_thread(void *arg) {
  hash_job *j = arg;
  char err[LC_ERR_LEN];
  char h[AUTH_PW_HASH_MAX];
  int64_t t0 = lc_mono_ms();
  j->rc = auth_pw_hash(j->pw, "password1", 9, h, err);
  j->waited_ms = lc_mono_ms() - t0;
  return NULL;
}

START_TEST(test_concurrency_waits_for_slot) {
  auth_pw *pw = NULL;
  char err[LC_ERR_LEN];
  pthread_t th;
  hash_job j;

  ck_assert_int_eq(auth_pw_new(64 * MIB, 2, 1, 10000, &pw, err), LC_OK);
  ck_assert_int_eq(auth_pw_slot_acquire(pw), LC_OK);
  memset(&j, 0, sizeof(j));
  j.pw = pw;
  j.rc = -1;
  ck_assert_int_eq(pthread_create(&th, NULL, hash_thread, &j), 0);
  usleep(200 * 1000);
  /* Still blocked: the slot is held and the hash has not run. */
  ck_assert_int_eq(auth_pw_in_use(pw), 1);
  auth_pw_slot_release(pw);
  pthread_join(th, NULL);
  ck_assert_int_eq(j.rc, LC_OK);
  ck_assert_int_ge(j.waited_ms, 190);
  ck_assert_int_eq(auth_pw_in_use(pw), 0);
  auth_pw_free(pw);
}
END_TEST

/* A bounded queue: with the slot held and max_waiters callers already
 * waiting, one more caller is refused at once (not after wait_ms). */
START_TEST(test_queue_full_refused_at_once) {
  auth_pw *pw = NULL;
  char err[LC_ERR_LEN];
  char h[AUTH_PW_HASH_MAX];
  pthread_t th;
  hash_job j;

  ck_assert_int_eq(auth_pw_new(64 * MIB, 2, 1, 10000, &pw, err), LC_OK);
  auth_pw_set_max_waiters(pw, 1);
  ck_assert_int_eq(auth_pw_slot_acquire(pw), LC_OK);
  memset(&j, 0, sizeof(j));
  j.pw = pw;
  j.rc = -1;
  ck_assert_int_eq(pthread_create(&th, NULL, hash_thread, &j), 0);
  usleep(200 * 1000); /* the thread now waits: the queue (1) is full */
  int64_t t0 = lc_mono_ms();
  ck_assert_int_eq(auth_pw_saturated(pw), 1);
  ck_assert_int_eq(auth_pw_hash(pw, "password1", 9, h, err), LC_ERR_UNAVAIL);
  ck_assert_int_eq(auth_pw_verify(pw, NULL, "password1", 9, err), LC_ERR_UNAVAIL);
  int64_t dt = lc_mono_ms() - t0;
  ck_assert_msg(dt < 100, "refusal took %lld ms", (long long)dt);
  ck_assert_uint_eq(auth_pw_queue_full(pw), 3);
  auth_pw_slot_release(pw);
  pthread_join(th, NULL);
  ck_assert_int_eq(j.rc, LC_OK); /* the queued caller was served */
  ck_assert_int_eq(auth_pw_saturated(pw), 0);
  /* 0 = unbounded again: a waiter is admitted and times out normally */
  auth_pw_set_max_waiters(pw, 0);
  ck_assert_int_eq(auth_pw_hash(pw, "password1", 9, h, err), LC_OK);
  auth_pw_free(pw);
}
END_TEST

typedef struct {
  auth_pw *pw;
  atomic_bool stop;
  int max_seen;
} sampler;

static void *sample_thread(void *arg) {
  sampler *s = arg;
  while (!atomic_load(&s->stop)) {
    int n = auth_pw_in_use(s->pw);
    if (n > s->max_seen)
      s->max_seen = n;
    usleep(500);
  }
  return NULL;
}

START_TEST(test_concurrency_never_exceeded) {
  auth_pw *pw = NULL;
  char err[LC_ERR_LEN];
  pthread_t th[4], st;
  hash_job j[4];
  sampler s;

  ck_assert_int_eq(auth_pw_new(64 * MIB, 2, 2, 60000, &pw, err), LC_OK);
  memset(&s, 0, sizeof(s));
  s.pw = pw;
  atomic_init(&s.stop, false);
  ck_assert_int_eq(pthread_create(&st, NULL, sample_thread, &s), 0);
  for (int i = 0; i < 4; i++) {
    memset(&j[i], 0, sizeof(j[i]));
    j[i].pw = pw;
    ck_assert_int_eq(pthread_create(&th[i], NULL, hash_thread, &j[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    ck_assert_int_eq(j[i].rc, LC_OK);
  }
  atomic_store(&s.stop, true);
  pthread_join(st, NULL);
  /* never more than the bound; and the bound is reached when threads really
   * run in parallel (valgrind runs one thread at a time) */
  ck_assert_int_le(s.max_seen, 2);
  if (!RUNNING_ON_VALGRIND)
    ck_assert_int_eq(s.max_seen, 2);
  auth_pw_free(pw);
}
END_TEST

/* ---- validation ---- */

START_TEST(test_password_validation) {
  char err[LC_ERR_LEN];
  char big[300];

  ck_assert_int_eq(auth_password_validate("1234567", 7, err), LC_ERR_PARAM);
  ck_assert_int_eq(auth_password_validate("12345678", 8, err), LC_OK);
  ck_assert_int_eq(auth_password_validate(NULL, 0, err), LC_ERR_PARAM);
  ck_assert_int_eq(auth_password_validate("", 0, err), LC_ERR_PARAM);
  memset(big, 'x', sizeof(big));
  ck_assert_int_eq(auth_password_validate(big, 256, err), LC_OK);
  ck_assert_int_eq(auth_password_validate(big, 257, err), LC_ERR_PARAM);
  /* Lengths are UTF-8 bytes: 3 x "é" = 6 bytes is too short, 4 x = 8 is fine. */
  ck_assert_int_eq(auth_password_validate("\xc3\xa9\xc3\xa9\xc3\xa9", 6, err), LC_ERR_PARAM);
  ck_assert_int_eq(auth_password_validate("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, err), LC_OK);
  ck_assert_int_eq(auth_password_validate("abcd\0efgh", 9, err), LC_ERR_PARAM);
}
END_TEST

static const char *const GOOD_EMAILS[][2] = {
  {"user@example.com", "user@example.com"},
  {"User@Example.COM", "user@example.com"},
  {"first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"},
  {"a_b-c'd@x-y.io", "a_b-c'd@x-y.io"},
  {"x@a1.b2", "x@a1.b2"},
};

static const char *const BAD_EMAILS[] = {
  "", "plainaddress", "@example.com", "user@", "user@@example.com", "a@b@example.com",
  ".user@example.com", "user.@example.com", "us..er@example.com", "user@example",
  "user@-example.com", "user@example-.com", "user@exa..mple.com", "user@.example.com",
  "user@example.com.", "us er@example.com", "user@exa mple.com", "user@example.com\n",
  "user@1.2.3.4", "user@exa_mple.com", "\xc3\xa9@example.com", "user@ex\xc3\xa9.com",
  "<user>@example.com", "user\"@example.com", "user@[127.0.0.1]",
};

START_TEST(test_email_good) {
  char out[AUTH_EMAIL_MAX + 1], err[LC_ERR_LEN];
  const char *in = GOOD_EMAILS[_i][0];
  ck_assert_msg(auth_email_normalize(in, out, err) == LC_OK, "%s rejected: %s", in, err);
  ck_assert_str_eq(out, GOOD_EMAILS[_i][1]);
}
END_TEST

START_TEST(test_email_bad) {
  char out[AUTH_EMAIL_MAX + 1], err[LC_ERR_LEN];
  const char *in = BAD_EMAILS[_i];
  ck_assert_msg(auth_email_normalize(in, out, err) == LC_ERR_PARAM, "accepted: '%s'", in);
  ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_email_lengths) {
  char in[400], out[AUTH_EMAIL_MAX + 1], err[LC_ERR_LEN];
  size_t n;

  /* Local part: 64 ok, 65 rejected. */
  memset(in, 'a', 64);
  lc_strlcpy(in + 64, "@example.com", sizeof(in) - 64);
  ck_assert_int_eq(auth_email_normalize(in, out, err), LC_OK);
  memset(in, 'a', 65);
  lc_strlcpy(in + 65, "@example.com", sizeof(in) - 65);
  ck_assert_int_eq(auth_email_normalize(in, out, err), LC_ERR_PARAM);
  /* Total: exactly 254 ok, 255 rejected (labels of 50 chars). */
  snprintf(in, sizeof(in), "u@");
  n = 2;
  while (n + 51 < 254) {
    memset(in + n, 'b', 50);
    in[n + 50] = '.';
    n += 51;
  }
  /* pad the last label to reach exactly 254 */
  while (n < 250)
    in[n++] = 'c';
  lc_strlcpy(in + n, ".com", sizeof(in) - n);
  ck_assert_uint_eq(strlen(in), 254);
  ck_assert_int_eq(auth_email_normalize(in, out, err), LC_OK);
  in[n] = 'c';
  lc_strlcpy(in + n + 1, ".com", sizeof(in) - n - 1);
  ck_assert_uint_eq(strlen(in), 255);
  ck_assert_int_eq(auth_email_normalize(in, out, err), LC_ERR_PARAM);
  /* A 64-char label is rejected. */
  memset(in, 0, sizeof(in));
  in[0] = 'u';
  in[1] = '@';
  memset(in + 2, 'd', 64);
  lc_strlcpy(in + 66, ".com", sizeof(in) - 66);
  ck_assert_int_eq(auth_email_normalize(in, out, err), LC_ERR_PARAM);
  ck_assert_int_eq(auth_email_normalize(NULL, out, err), LC_ERR_PARAM);
}
END_TEST

START_TEST(test_roles) {
  ck_assert(auth_role_valid("admin"));
  ck_assert(auth_role_valid("user"));
  ck_assert(auth_role_valid("service"));
  ck_assert(!auth_role_valid("anon"));
  ck_assert(!auth_role_valid("system"));
  ck_assert(!auth_role_valid("Admin"));
  ck_assert(!auth_role_valid(""));
  ck_assert(!auth_role_valid(NULL));
}
END_TEST

/* ---- tokens ---- */

START_TEST(test_access_token_claims) {
  auth_sessions_cfg cfg;
  uint8_t seed[32], pk[32];
  lc_jwt_claims c;
  char err[LC_ERR_LEN];
  char *tok = NULL;
  const char *uid = "0b6f2a5e-8c1d-4f3a-9b7e-2d4c6a8e0f12";
  int64_t now = lc_now_ms() / 1000;

  memset(&cfg, 0, sizeof(cfg));
  memset(seed, 7, sizeof(seed));
  ck_assert_int_eq(lc_jwt_keypair_from_seed(seed, pk, cfg.sk), LC_OK);
  lc_strlcpy(cfg.iss, "credit-saas", sizeof(cfg.iss));
  lc_strlcpy(cfg.aud, "credit-saas-api", sizeof(cfg.aud));
  cfg.access_ttl = 900;
  cfg.refresh_ttl = 604800;
  ck_assert_int_eq(auth_sessions_access(&cfg, uid, "admin", now, &tok, err), LC_OK);
  ck_assert_int_eq(lc_jwt_verify(tok, pk, "credit-saas", "credit-saas-api", now, 0, &c, err),
                   LC_OK);
  ck_assert_str_eq(c.sub, uid);
  ck_assert_str_eq(c.role, "admin");
  ck_assert_str_eq(c.typ, "access");
  ck_assert_int_eq(c.iat, now);
  ck_assert_int_eq(c.exp - c.iat, 900);
  ck_assert(lc_uuid_valid(c.jti));
  /* Wrong audience / expired are refused by the verifier. */
  ck_assert_int_eq(lc_jwt_verify(tok, pk, "credit-saas", "other", now, 0, &c, err),
                   LC_ERR_UNAUTH);
  ck_assert_int_eq(lc_jwt_verify(tok, pk, "credit-saas", "credit-saas-api", now + 901, 0, &c, err),
                   LC_ERR_UNAUTH);
  free(tok);
}
END_TEST

START_TEST(test_refresh_token_shape) {
  char hex[65], hex2[65];
  ck_assert(auth_sessions_token_wellformed("rt_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO-_"));
  ck_assert(!auth_sessions_token_wellformed("rt_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO-"));
  ck_assert(!auth_sessions_token_wellformed("rx_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO-_"));
  ck_assert(!auth_sessions_token_wellformed("rt_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO+/"));
  ck_assert(!auth_sessions_token_wellformed(""));
  ck_assert(!auth_sessions_token_wellformed(NULL));
  auth_sessions_token_hash("rt_x", hex);
  auth_sessions_token_hash("rt_y", hex2);
  ck_assert_uint_eq(strlen(hex), 64);
  ck_assert_str_ne(hex, hex2);
  /* SHA-256("abc") known answer. */
  auth_sessions_token_hash("abc", hex);
  ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

/* ---- refresh decision table ---- */

static auth_rt_state st(int revoked, int expired, int rotated, int64_t age, int has, int live) {
  auth_rt_state s;
  s.revoked = revoked;
  s.expired = expired;
  s.rotated = rotated;
  s.rotated_age_ms = age;
  s.has_successor = has;
  s.successor_live = live;
  return s;
}

START_TEST(test_rt_decide) {
  auth_rt_state s;
  s = st(0, 0, 0, -1, 0, 0);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_ROTATE);
  s = st(0, 1, 0, -1, 0, 0);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_REJECT);   /* absolute lifetime over */
  s = st(1, 0, 0, -1, 0, 0);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_REJECT);   /* revoked family */
  s = st(1, 0, 1, 10, 1, 1);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_REJECT);   /* revoked beats grace */
  s = st(0, 0, 1, 10, 1, 1);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_GRACE);    /* concurrent refresh */
  s = st(0, 0, 1, 2000, 1, 1);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_GRACE);    /* window edge inclusive */
  s = st(0, 0, 1, 2001, 1, 1);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_REUSE);    /* just outside */
  s = st(0, 0, 1, 10, 0, 1);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_REUSE);    /* successor wiped */
  s = st(0, 0, 1, 10, 1, 0);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_REUSE);    /* successor already used */
  s = st(0, 1, 1, 10, 1, 1);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_REUSE);    /* expired family: no grace */
  s = st(0, 0, 1, 10, 1, 1);
  ck_assert_int_eq(auth_rt_decide(&s, 0), AUTH_RT_REUSE);       /* grace disabled */
  s = st(0, 0, 1, -1, 1, 1);
  ck_assert_int_eq(auth_rt_decide(&s, 2000), AUTH_RT_REUSE);    /* unknown age */
}
END_TEST

/* ---- CSRF decision ---- */

START_TEST(test_csrf) {
  const char *allowed = "https://127.0.0.1:8443, https://app.example.com";
  ck_assert_int_eq(auth_csrf_allowed(NULL, NULL, allowed), 0);
  ck_assert_int_eq(auth_csrf_allowed("", NULL, allowed), 0);
  ck_assert_int_eq(auth_csrf_allowed("https://127.0.0.1:8443", NULL, allowed), 1);
  ck_assert_int_eq(auth_csrf_allowed("https://app.example.com", NULL, allowed), 1);
  ck_assert_int_eq(auth_csrf_allowed("https://evil.example", NULL, allowed), 0);
  ck_assert_int_eq(auth_csrf_allowed("https://127.0.0.1:8443.evil", NULL, allowed), 0);
  ck_assert_int_eq(auth_csrf_allowed("https://127.0.0.1:844", NULL, allowed), 0);
  ck_assert_int_eq(auth_csrf_allowed("http://127.0.0.1:8443", NULL, allowed), 0);
  ck_assert_int_eq(auth_csrf_allowed("null", NULL, "null"), 0);
  ck_assert_int_eq(auth_csrf_allowed("https://evil.example", "fetch", allowed), 1);
  ck_assert_int_eq(auth_csrf_allowed(NULL, "fetch", allowed), 1);
  ck_assert_int_eq(auth_csrf_allowed(NULL, "XMLHttpRequest", allowed), 0);
  ck_assert_int_eq(auth_csrf_allowed(NULL, "Fetch", allowed), 0);
  ck_assert_int_eq(auth_csrf_allowed("https://a", NULL, ""), 0);
  ck_assert_int_eq(auth_csrf_allowed("https://a", NULL, NULL), 0);
  ck_assert_int_eq(auth_csrf_allowed("https://a", NULL, ",,https://a,"), 1);
}
END_TEST

/* ---- sealed grace successor ---- */

START_TEST(test_seal_successor) {
  uint8_t k1[32], k2[32], box[AUTH_SEAL_MAX];
  char out[64];
  size_t n = 0;
  const char *parent = "rt_parentparentparentparentparentparentparen";
  const char *child = "rt_childchildchildchildchildchildchildchildc";

  lc_random(k1, sizeof(k1));
  lc_random(k2, sizeof(k2));
  ck_assert_int_eq(auth_seal_successor(k1, parent, child, box, &n), LC_OK);
  ck_assert_uint_gt(n, strlen(child));
  ck_assert_ptr_null(memmem(box, n, child, strlen(child)));        /* not in clear */
  ck_assert_int_eq(auth_open_successor(k1, parent, box, n, out, sizeof(out)), LC_OK);
  ck_assert_str_eq(out, child);
  /* wrong key, wrong parent, tampered box, truncated box */
  ck_assert_int_eq(auth_open_successor(k2, parent, box, n, out, sizeof(out)), LC_ERR_UNAUTH);
  ck_assert_int_eq(auth_open_successor(k1, child, box, n, out, sizeof(out)), LC_ERR_UNAUTH);
  box[n - 1] ^= 1;
  ck_assert_int_eq(auth_open_successor(k1, parent, box, n, out, sizeof(out)), LC_ERR_UNAUTH);
  ck_assert_str_eq(out, "");
  ck_assert_int_eq(auth_open_successor(k1, parent, box, 10, out, sizeof(out)), LC_ERR_PARAM);
  ck_assert_int_eq(auth_open_successor(k1, parent, box, n, out, 8), LC_ERR_PARAM);
}
END_TEST

/* ---- API keys ---- */

START_TEST(test_key_format) {
  char key[AUTH_KEY_LEN + 1], prefix[AUTH_KEY_PREFIX_LEN + 1], hash[65], p2[9], h2[65];
  uint8_t *raw = NULL;
  size_t rawlen = 0;

  auth_key_generate(key, prefix, hash);
  ck_assert_uint_eq(strlen(key), 55);
  ck_assert(strncmp(key, "sk_", 3) == 0 && key[11] == '_');
  ck_assert_int_eq(auth_key_parse(key, p2), LC_OK);
  ck_assert_str_eq(p2, prefix);
  for (int i = 0; i < 8; i++)
    ck_assert(strchr("abcdefghijklmnopqrstuvwxyz0123456789", prefix[i]) != NULL);
  /* 256 random bits after the prefix */
  ck_assert_int_eq(lc_b64url_decode(key + 12, strlen(key + 12), &raw, &rawlen), LC_OK);
  ck_assert_uint_eq(rawlen, 32);
  free(raw);
  auth_key_hash(key, h2);
  ck_assert_str_eq(h2, hash);
  ck_assert_uint_eq(strlen(hash), 64);
  /* two keys differ */
  {
    char k2[AUTH_KEY_LEN + 1], pf2[9], hh2[65];
    auth_key_generate(k2, pf2, hh2);
    ck_assert_str_ne(k2, key);
    ck_assert_str_ne(hh2, hash);
  }
}
END_TEST

START_TEST(test_key_parse_rejects) {
  char p[9];
  char k[AUTH_KEY_LEN + 1], pf[9], h[65];
  auth_key_generate(k, pf, h);
  ck_assert_int_eq(auth_key_parse(NULL, p), LC_ERR_PARAM);
  ck_assert_int_eq(auth_key_parse("", p), LC_ERR_PARAM);
  ck_assert_int_eq(auth_key_parse("sk_abc", p), LC_ERR_PARAM);
  {
    char bad[AUTH_KEY_LEN + 1];
    memcpy(bad, k, sizeof(bad));
    bad[0] = 'x';                                   /* wrong scheme */
    ck_assert_int_eq(auth_key_parse(bad, p), LC_ERR_PARAM);
    memcpy(bad, k, sizeof(bad));
    bad[4] = 'A';                                   /* uppercase prefix */
    ck_assert_int_eq(auth_key_parse(bad, p), LC_ERR_PARAM);
    memcpy(bad, k, sizeof(bad));
    bad[11] = '-';                                  /* separator */
    ck_assert_int_eq(auth_key_parse(bad, p), LC_ERR_PARAM);
    memcpy(bad, k, sizeof(bad));
    bad[30] = '=';                                  /* alphabet */
    ck_assert_int_eq(auth_key_parse(bad, p), LC_ERR_PARAM);
    memcpy(bad, k, sizeof(bad));
    bad[54] = '\0';                                 /* length */
    ck_assert_int_eq(auth_key_parse(bad, p), LC_ERR_PARAM);
  }
  ck_assert_int_eq(auth_key_scope_valid("read"), 1);
  ck_assert_int_eq(auth_key_scope_valid("write"), 1);
  ck_assert_int_eq(auth_key_scope_valid("admin"), 1);
  ck_assert_int_eq(auth_key_scope_valid("full"), 0);
  ck_assert_int_eq(auth_key_scope_valid("READ"), 0);
  ck_assert_int_eq(auth_key_scope_valid(NULL), 0);
  ck_assert_int_eq(auth_key_name_valid("ci deploy"), 1);
  ck_assert_int_eq(auth_key_name_valid(""), 0);
  ck_assert_int_eq(auth_key_name_valid("a\nb"), 0);
  {
    char longn[102];
    memset(longn, 'a', 101);
    longn[101] = '\0';
    ck_assert_int_eq(auth_key_name_valid(longn), 0);
    longn[100] = '\0';
    ck_assert_int_eq(auth_key_name_valid(longn), 1);
  }
}
END_TEST

static Suite *auth_suite(void) {
  Suite *s = suite_create("auth-svc");
  TCase *pw = tcase_create("passwords");
  TCase *cc = tcase_create("concurrency");
  TCase *val = tcase_create("validation");
  TCase *tok = tcase_create("tokens");

  tcase_set_timeout(pw, 60);
  tcase_add_test(pw, test_hash_verify);
  tcase_add_test(pw, test_hash_params_enforced);
  suite_add_tcase(s, pw);

  tcase_set_timeout(cc, 60);
  tcase_add_test(cc, test_concurrency_bound_503);
  tcase_add_test(cc, test_concurrency_waits_for_slot);
  tcase_add_test(cc, test_queue_full_refused_at_once);
  tcase_add_test(cc, test_concurrency_never_exceeded);
  suite_add_tcase(s, cc);

  tcase_set_timeout(val, 10);
  tcase_add_test(val, test_password_validation);
  tcase_add_loop_test(val, test_email_good, 0, (int)(sizeof(GOOD_EMAILS) / sizeof(GOOD_EMAILS[0])));
  tcase_add_loop_test(val, test_email_bad, 0, (int)(sizeof(BAD_EMAILS) / sizeof(BAD_EMAILS[0])));
  tcase_add_test(val, test_email_lengths);
  tcase_add_test(val, test_roles);
  suite_add_tcase(s, val);

  tcase_set_timeout(tok, 10);
  tcase_add_test(tok, test_access_token_claims);
  tcase_add_test(tok, test_refresh_token_shape);
  tcase_add_test(tok, test_rt_decide);
  tcase_add_test(tok, test_csrf);
  tcase_add_test(tok, test_seal_successor);
  tcase_add_test(tok, test_key_format);
  tcase_add_test(tok, test_key_parse_rejects);
  suite_add_tcase(s, tok);
  return s;
}

int main(void) {
  SRunner *sr;
  int failed;

  if (lc_global_init() != 0)
    return EXIT_FAILURE;
  sr = srunner_create(auth_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
