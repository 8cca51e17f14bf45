/* test_db.c - integration tests of lc/db.h against the real PostgreSQL.
 *
 * Every run works in its own schema lc_test_<hex> (dropped with CASCADE at
 * the end), so runs and other developers never collide. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lc/db.h"
#include "lc/util.h"

Suite *lc_db_suite(void);
const char *itest_pg_url(void);

static char g_schema[40];

/* ------------------------------------------------------------ helpers -- */

static void rand_hex(char *out, size_t nbytes) {
  uint8_t b[16];
  lc_random(b, nbytes);
  lc_hex_encode(b, nbytes, out);
}

static lc_db_pool *new_pool(int size, int timeout_ms) {
  lc_db_pool *p = NULL;
  char err[LC_ERR_LEN];
  int rc = lc_db_pool_new(itest_pg_url(), size, timeout_ms, &p, err);
  ck_assert_msg(rc == LC_OK, "pool_new: %s", err);
  return p;
}

/* Runs sql (one %s = test schema) on a fresh connection; asserts success. */
static void exec_ok(lc_db_pool *p, const char *fmt) {
  char sql[1024];
  char err[LC_ERR_LEN];
  PGconn *c = NULL;
  snprintf(sql, sizeof(sql), fmt, g_schema);
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  int rc = lc_db_exec(c, sql, 0, NULL, NULL, err);
  ck_assert_msg(rc == LC_OK, "%s: %s", sql, err);
  lc_db_release(p, c);
}

/* Single-value query (one %s = test schema); returns new string. */
static char *query1(lc_db_pool *p, const char *fmt) {
  char sql[1024];
  char err[LC_ERR_LEN];
  PGconn *c = NULL;
  PGresult *r = NULL;
  char *v;
  snprintf(sql, sizeof(sql), fmt, g_schema);
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  int rc = lc_db_exec(c, sql, 0, NULL, &r, err);
  ck_assert_msg(rc == LC_OK, "%s: %s", sql, err);
  ck_assert_int_eq(PQntuples(r), 1);
  v = lc_xstrdup(PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0));
  PQclear(r);
  lc_db_release(p, c);
  return v;
}

static void query1_eq(lc_db_pool *p, const char *fmt, const char *want) {
  char *v = query1(p, fmt);
  ck_assert_msg(strcmp(v, want) == 0, "%s -> %s, want %s", fmt, v, want);
  free(v);
}

static void schema_setup(void) {
  char hex[17];
  lc_db_pool *p = NULL;
  char err[LC_ERR_LEN];
  PGconn *c = NULL;
  char sql[128];

  rand_hex(hex, 8);
  snprintf(g_schema, sizeof(g_schema), "lc_test_%s", hex);
  if (lc_db_pool_new(itest_pg_url(), 1, 5000, &p, err) != LC_OK)
    return;
  if (lc_db_acquire(p, &c, err) == LC_OK) {
    snprintf(sql, sizeof(sql), "CREATE SCHEMA \"%s\"", g_schema);
    if (lc_db_exec(c, sql, 0, NULL, NULL, err) != LC_OK)
      fprintf(stderr, "schema_setup: %s\n", err);
    lc_db_release(p, c);
  }
  lc_db_pool_free(p);
}

static void schema_teardown(void) {
  lc_db_pool *p = NULL;
  char err[LC_ERR_LEN];
  PGconn *c = NULL;
  char sql[128];

  if (lc_db_pool_new(itest_pg_url(), 1, 5000, &p, err) != LC_OK)
    return;
  if (lc_db_acquire(p, &c, err) == LC_OK) {
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", g_schema);
    (void)lc_db_exec(c, sql, 0, NULL, NULL, err);
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%s_m\" CASCADE", g_schema);
    (void)lc_db_exec(c, sql, 0, NULL, NULL, err);
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%s_r\" CASCADE", g_schema);
    (void)lc_db_exec(c, sql, 0, NULL, NULL, err);
    lc_db_release(p, c);
  }
  lc_db_pool_free(p);
}

/* -------------------------------------------------------------- tests -- */

START_TEST(test_pool_args) {
  lc_db_pool *p = NULL;
  char err[LC_ERR_LEN];
  ck_assert_int_eq(lc_db_pool_new(itest_pg_url(), 0, 100, &p, err), LC_ERR_PARAM);
  ck_assert_int_eq(lc_db_pool_new(itest_pg_url(), 65, 100, &p, err), LC_ERR_PARAM);
  ck_assert_int_eq(lc_db_pool_new("", 1, 100, &p, err), LC_ERR_PARAM);
  ck_assert_ptr_null(p);
  lc_db_pool_free(NULL);
}
END_TEST

START_TEST(test_acquire_timeout) {
  lc_db_pool *p = new_pool(1, 300);
  PGconn *a = NULL, *b = NULL;
  char err[LC_ERR_LEN];

  ck_assert_int_eq(lc_db_acquire(p, &a, err), LC_OK);
  ck_assert_ptr_nonnull(a);
  int64_t t0 = lc_mono_ms();
  ck_assert_int_eq(lc_db_acquire(p, &b, err), LC_ERR_TIMEOUT);
  int64_t dt = lc_mono_ms() - t0;
  ck_assert_ptr_null(b);
  ck_assert_msg(dt >= 280 && dt < 1500, "timed out after %lld ms", (long long)dt);
  lc_db_release(p, a);
  /* the slot is reused: same connection, no reconnect */
  ck_assert_int_eq(lc_db_acquire(p, &b, err), LC_OK);
  ck_assert_ptr_eq(a, b);
  lc_db_release(p, b);
  ck_assert_int_eq(lc_db_ping(p), 1);
  lc_db_pool_free(p);
}
END_TEST

struct inc_ctx {
  lc_db_pool *pool;
  atomic_int errors;
  atomic_int active;
  atomic_int max_active;
  pthread_mutex_t mu;
  PGconn *seen[16];
  int nseen;
};

static void note_conn(struct inc_ctx *x, PGconn *c) {
  pthread_mutex_lock(&x->mu);
  int found = 0;
  for (int i = 0; i < x->nseen; i++)
    found |= x->seen[i] == c;
  if (!found && x->nseen < 16)
    x->seen[x->nseen++] = c;
  pthread_mutex_unlock(&x->mu);
}

/* Read-modify-write in a transaction: any sharing of a connection between
 * threads would interleave transactions and lose or fail increments. */
static void *inc_thread(void *arg) {
  struct inc_ctx *x = arg;
  char sel[256], upd[256], err[LC_ERR_LEN];
  snprintf(sel, sizeof(sel), "SELECT n FROM \"%s\".counter WHERE id = 1 FOR UPDATE", g_schema);
  snprintf(upd, sizeof(upd), "UPDATE \"%s\".counter SET n = $1::bigint WHERE id = 1", g_schema);
  for (int i = 0; i < 200; i++) {
    PGconn *c = NULL;
    PGresult *r = NULL;
    int64_t n = 0;
    char nb[32];
    const char *prm[1] = {nb};
    if (lc_db_acquire(x->pool, &c, err) != LC_OK) {
      atomic_fetch_add(&x->errors, 1);
      continue;
    }
    int a = atomic_fetch_add(&x->active, 1) + 1;
    int m = atomic_load(&x->max_active);
    while (a > m && !atomic_compare_exchange_weak(&x->max_active, &m, a)) {
    }
    note_conn(x, c);
    int ok = lc_db_begin(c, err) == LC_OK && lc_db_exec(c, sel, 0, NULL, &r, err) == LC_OK &&
             PQntuples(r) == 1 &&
             lc_parse_i64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &n) == LC_OK;
    PQclear(r);
    snprintf(nb, sizeof(nb), "%lld", (long long)(n + 1));
    ok = ok && lc_db_exec(c, upd, 1, prm, NULL, err) == LC_OK && lc_db_commit(c, err) == LC_OK;
    if (!ok)
      atomic_fetch_add(&x->errors, 1);
    atomic_fetch_sub(&x->active, 1);
    lc_db_release(x->pool, c);
  }
  return NULL;
}

START_TEST(test_pool_concurrency) {
  struct inc_ctx x;
  pthread_t th[8];
  memset(&x, 0, sizeof(x));
  pthread_mutex_init(&x.mu, NULL);
  x.pool = new_pool(3, 10000);
  exec_ok(x.pool, "CREATE TABLE \"%s\".counter (id int PRIMARY KEY, n bigint NOT NULL)");
  exec_ok(x.pool, "INSERT INTO \"%s\".counter VALUES (1, 0)");
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, inc_thread, &x), 0);
  for (int i = 0; i < 8; i++)
    pthread_join(th[i], NULL);
  ck_assert_int_eq(atomic_load(&x.errors), 0);
  query1_eq(x.pool, "SELECT n FROM \"%s\".counter WHERE id = 1", "1600");
  ck_assert_int_le(atomic_load(&x.max_active), 3);
  ck_assert_int_le(x.nseen, 3);
  ck_assert_int_ge(x.nseen, 1);
  lc_db_pool_free(x.pool);
  pthread_mutex_destroy(&x.mu);
}
END_TEST

START_TEST(test_exec_errors) {
  lc_db_pool *p = new_pool(2, 2000);
  PGconn *c = NULL;
  PGresult *r = NULL;
  char err[LC_ERR_LEN], sql[256];
  const char *secret = "s3cret-param-value-9f1c";
  const char *prm[1] = {secret};

  exec_ok(p, "CREATE TABLE \"%s\".uniq (k text PRIMARY KEY, n int)");
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  snprintf(sql, sizeof(sql), "INSERT INTO \"%s\".uniq (k) VALUES ($1)", g_schema);
  ck_assert_int_eq(lc_db_exec(c, sql, 1, prm, NULL, err), LC_OK);

  /* unique violation -> conflict, no parameter value in err */
  err[0] = '\0';
  ck_assert_int_eq(lc_db_exec(c, sql, 1, prm, &r, err), LC_ERR_CONFLICT);
  ck_assert_ptr_null(r);
  ck_assert_msg(strcmp(err, "duplicate") == 0, "err: %s", err); /* no table/constraint names */
  ck_assert_msg(strstr(err, secret) == NULL, "param leaked: %s", err);

  /* bad input for an int column: the server quotes the value; err must not */
  snprintf(sql, sizeof(sql), "INSERT INTO \"%s\".uniq (k, n) VALUES ('x', $1)", g_schema);
  ck_assert_int_eq(lc_db_exec(c, sql, 1, prm, &r, err), LC_ERR_DB);
  ck_assert_msg(strstr(err, secret) == NULL, "param leaked: %s", err);
  ck_assert_msg(strstr(err, "22P02") != NULL, "err: %s", err);

  /* syntax error -> LC_ERR_DB, connection still usable */
  ck_assert_int_eq(lc_db_exec(c, "SELEC 1 FRM nowhere", 0, NULL, &r, err), LC_ERR_DB);
  ck_assert_ptr_null(r);
  ck_assert_msg(strstr(err, "42601") != NULL, "err: %s", err);
  ck_assert_int_eq(lc_db_exec(c, "SELECT 41 + 1", 0, NULL, &r, err), LC_OK);
  ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
  PQclear(r);

  /* bad arguments */
  ck_assert_int_eq(lc_db_exec(c, "SELECT $1", 1, NULL, NULL, err), LC_ERR_PARAM);
  ck_assert_int_eq(lc_db_exec(NULL, "SELECT 1", 0, NULL, NULL, err), LC_ERR_PARAM);

  /* COMMIT of an aborted transaction is an error, not a silent rollback */
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  ck_assert_int_eq(lc_db_exec(c, "SELECT 1/0", 0, NULL, NULL, err), LC_ERR_DB);
  ck_assert_int_eq(lc_db_commit(c, err), LC_ERR_DB);
  ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);

  /* serialization failure class is mapped to retry (raised explicitly) */
  ck_assert_int_eq(lc_db_exec(c,
                              "DO $$BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = "
                              "'serialization_failure'; END$$",
                              0, NULL, NULL, err),
                   LC_ERR_RETRY);
  ck_assert_int_eq(lc_db_exec(c,
                              "DO $$BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = "
                              "'deadlock_detected'; END$$",
                              0, NULL, NULL, err),
                   LC_ERR_RETRY);
  lc_db_release(p, c);
  lc_db_pool_free(p);
}
END_TEST

START_TEST(test_release_rolls_back) {
  lc_db_pool *p = new_pool(1, 2000);
  PGconn *c = NULL;
  char err[LC_ERR_LEN], sql[256];

  exec_ok(p, "CREATE TABLE \"%s\".txr (id int PRIMARY KEY)");
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  snprintf(sql, sizeof(sql), "INSERT INTO \"%s\".txr VALUES (1)", g_schema);
  ck_assert_int_eq(lc_db_exec(c, sql, 0, NULL, NULL, err), LC_OK);
  ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INTRANS);
  lc_db_release(p, c); /* no commit */
  query1_eq(p, "SELECT count(*) FROM \"%s\".txr", "0");

  /* failed transaction (INERROR) released: connection comes back idle */
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  ck_assert_int_eq(lc_db_exec(c, sql, 0, NULL, NULL, err), LC_OK);
  ck_assert_int_eq(lc_db_exec(c, sql, 0, NULL, NULL, err), LC_ERR_CONFLICT);
  ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INERROR);
  lc_db_release(p, c);
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
  lc_db_release(p, c);
  query1_eq(p, "SELECT count(*) FROM \"%s\".txr", "0");

  /* explicit commit persists; explicit rollback discards */
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  ck_assert_int_eq(lc_db_exec(c, sql, 0, NULL, NULL, err), LC_OK);
  ck_assert_int_eq(lc_db_commit(c, err), LC_OK);
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  snprintf(sql, sizeof(sql), "INSERT INTO \"%s\".txr VALUES (2)", g_schema);
  ck_assert_int_eq(lc_db_exec(c, sql, 0, NULL, NULL, err), LC_OK);
  ck_assert_int_eq(lc_db_rollback(c), LC_OK);
  lc_db_release(p, c);
  query1_eq(p, "SELECT string_agg(id::text, ',') FROM \"%s\".txr", "1");
  lc_db_pool_free(p);
}
END_TEST

START_TEST(test_broken_connection_recovers) {
  lc_db_pool *p = new_pool(1, 2000);
  PGconn *c = NULL;
  PGresult *r = NULL;
  char err[LC_ERR_LEN], pid[32];
  const char *prm[1] = {pid};

  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  snprintf(pid, sizeof(pid), "%d", PQbackendPID(c));
  lc_db_release(p, c);
  /* kill the pooled backend from another pool */
  lc_db_pool *q = new_pool(1, 2000);
  PGconn *k = NULL;
  ck_assert_int_eq(lc_db_acquire(q, &k, err), LC_OK);
  ck_assert_int_eq(lc_db_exec(k, "SELECT pg_terminate_backend($1::int)", 1, prm, NULL, err),
                   LC_OK);
  lc_db_release(q, k);
  lc_db_pool_free(q);
  usleep(100 * 1000);

  /* first use fails as unavailable; release drops it; next acquire reconnects */
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  int rc = lc_db_exec(c, "SELECT 1", 0, NULL, NULL, err);
  ck_assert_msg(rc == LC_ERR_UNAVAIL, "rc=%d err=%s", rc, err);
  lc_db_release(p, c);
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  ck_assert_int_eq(lc_db_exec(c, "SELECT pg_backend_pid()", 0, NULL, &r, err), LC_OK);
  ck_assert_str_ne(PQgetvalue(r, 0, 0), pid);
  PQclear(r);
  lc_db_release(p, c);
  lc_db_pool_free(p);
}
END_TEST

/* lc_db_exec_prepared: prepares on first use, reuses after, re-prepares
 * when the server lost the statement (reconnect / DEALLOCATE), prepares and
 * reuses inside transactions too, maps errors like lc_db_exec. */
START_TEST(test_exec_prepared) {
  lc_db_pool *p = new_pool(1, 2000);
  PGconn *c = NULL;
  PGresult *r = NULL;
  char err[LC_ERR_LEN];
  const char *prm[1] = {"41"};
  static const char *SQL = "SELECT $1::int + 1";

  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_OK);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(lc_db_exec_prepared(c, "t_plus1", SQL, 1, prm, &r, err), LC_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
  }
  ck_assert_int_eq(lc_db_exec(c, "SELECT count(*) FROM pg_prepared_statements WHERE name = 't_plus1'",
                              0, NULL, &r, err), LC_OK);
  ck_assert_str_eq(PQgetvalue(r, 0, 0), "1");
  PQclear(r);
  /* lost statement: prepared again transparently */
  ck_assert_int_eq(lc_db_exec(c, "DEALLOCATE t_plus1", 0, NULL, NULL, err), LC_OK);
  ck_assert_int_eq(lc_db_exec_prepared(c, "t_plus1", SQL, 1, prm, NULL, err), LC_OK);
  /* first use inside a transaction: prepared there, the transaction stays
   * usable, and a rollback does not take the statement away */
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  ck_assert_int_eq(lc_db_exec_prepared(c, "t_plus1_tx", SQL, 1, prm, &r, err), LC_OK);
  ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
  PQclear(r);
  ck_assert_int_eq(lc_db_exec(c, "SELECT 1", 0, NULL, NULL, err), LC_OK);
  lc_db_rollback(c);
  ck_assert_int_eq(lc_db_exec(c, "SELECT count(*) FROM pg_prepared_statements WHERE name IN "
                              "('t_plus1', 't_plus1_tx')", 0, NULL, &r, err), LC_OK);
  ck_assert_str_eq(PQgetvalue(r, 0, 0), "2");
  PQclear(r);
  /* known statements inside a transaction: executed prepared, not prepared again */
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(lc_db_exec_prepared(c, "t_plus1_tx", SQL, 1, prm, &r, err), LC_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    ck_assert_int_eq(lc_db_exec_prepared(c, "t_plus1", SQL, 1, prm, NULL, err), LC_OK);
  }
  ck_assert_int_eq(lc_db_exec(c, "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
                              "WHERE name = 't_plus1_tx'", 0, NULL, &r, err), LC_OK);
  ck_assert_str_eq(PQgetvalue(r, 0, 0), "3");
  PQclear(r);
  ck_assert_int_eq(lc_db_commit(c, err), LC_OK);
  /* a reset connection is a new server session: the names are forgotten,
   * so the first use inside a transaction prepares again instead of failing */
  PQreset(c);
  ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  ck_assert_int_eq(lc_db_exec_prepared(c, "t_plus1_tx", SQL, 1, prm, &r, err), LC_OK);
  ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
  PQclear(r);
  ck_assert_int_eq(lc_db_commit(c, err), LC_OK);
  /* lost behind our back inside a transaction: the error is returned */
  ck_assert_int_eq(lc_db_exec(c, "DEALLOCATE t_plus1_tx", 0, NULL, NULL, err), LC_OK);
  ck_assert_int_eq(lc_db_begin(c, err), LC_OK);
  ck_assert_int_ne(lc_db_exec_prepared(c, "t_plus1_tx", SQL, 1, prm, &r, err), LC_OK);
  ck_assert_ptr_null(r);
  lc_db_rollback(c);
  /* and outside one it is prepared again */
  ck_assert_int_eq(lc_db_exec_prepared(c, "t_plus1_tx", SQL, 1, prm, NULL, err), LC_OK);
  /* a real error is reported, not retried forever */
  const char *bad[1] = {"x"};
  ck_assert_int_eq(lc_db_exec_prepared(c, "t_plus1", SQL, 1, bad, &r, err), LC_ERR_DB);
  ck_assert_ptr_null(r);
  ck_assert_int_eq(lc_db_exec_prepared(NULL, "t_plus1", SQL, 1, prm, &r, err), LC_ERR_PARAM);
  lc_db_release(p, c);
  lc_db_pool_free(p);
}
END_TEST

START_TEST(test_unreachable) {
  lc_db_pool *p = NULL;
  PGconn *c = NULL;
  char err[LC_ERR_LEN];
  ck_assert_int_eq(
      lc_db_pool_new("postgresql://postgres:pw-not-logged@127.0.0.1:1/saas", 1, 1000, &p, err),
      LC_OK);
  int64_t t0 = lc_mono_ms();
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_ERR_UNAVAIL);
  ck_assert_ptr_null(c);
  ck_assert_msg(strstr(err, "pw-not-logged") == NULL, "password leaked: %s", err);
  /* the slot was put back: a second attempt fails the same way, not with a timeout */
  ck_assert_int_eq(lc_db_acquire(p, &c, err), LC_ERR_UNAVAIL);
  ck_assert_int_eq(lc_db_ping(p), 0);
  ck_assert_int_lt(lc_mono_ms() - t0, 10000);
  lc_db_pool_free(p);
}
END_TEST

static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static void rm_dir(const char *dir, const char *const *names) {
  char path[512];
  for (int i = 0; names[i] != NULL; i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

START_TEST(test_migrate) {
  lc_db_pool *p = new_pool(2, 5000);
  char dir[] = "/tmp/lc_mig_XXXXXX";
  char schema[64];
  char err[LC_ERR_LEN];
  static const char *const files[] = {"0001_init.sql", "0002_more.sql", "0003_bad.sql",
                                      "README.md",     "12_short.sql",  "0004_Upper.sql",
                                      NULL};

  snprintf(schema, sizeof(schema), "%s_m", g_schema);
  ck_assert_ptr_nonnull(mkdtemp(dir));
  write_file(dir, "0001_init.sql",
             "CREATE TABLE t (a int PRIMARY KEY);\n-- comment\nCREATE TABLE u (b text);\n");
  write_file(dir, "0002_more.sql", "INSERT INTO t VALUES (1); INSERT INTO u VALUES ('x');\n");
  write_file(dir, "README.md", "not a migration");
  write_file(dir, "12_short.sql", "SELECT broken syntax here");
  write_file(dir, "0004_Upper.sql", "SELECT broken syntax here");

  ck_assert_int_eq(lc_db_migrate(p, schema, dir, err), LC_OK);
  /* second run is a no-op (would fail on duplicate key / existing table otherwise) */
  ck_assert_int_eq(lc_db_migrate(p, schema, dir, err), LC_OK);
  {
    char q[256];
    snprintf(q, sizeof(q), "SELECT string_agg(version || ':' || name, ',' ORDER BY version) "
                           "FROM \"%s\".schema_migrations", schema);
    char *v = query1(p, q);
    ck_assert_str_eq(v, "1:0001_init.sql,2:0002_more.sql");
    free(v);
    snprintf(q, sizeof(q), "SELECT count(*) FROM \"%s\".t", schema);
    query1_eq(p, q, "1");
  }

  /* a failing file leaves nothing behind */
  write_file(dir, "0003_bad.sql",
             "CREATE TABLE v (a int);\nINSERT INTO t VALUES (2);\nINSERT INTO nope VALUES (1);\n");
  ck_assert_int_ne(lc_db_migrate(p, schema, dir, err), LC_OK);
  ck_assert_msg(strstr(err, "0003_bad.sql") != NULL, "err: %s", err);
  {
    char q[256];
    snprintf(q, sizeof(q), "SELECT to_regclass('%s.v') IS NULL", schema);
    query1_eq(p, q, "t");
    snprintf(q, sizeof(q), "SELECT count(*) FROM \"%s\".t", schema);
    query1_eq(p, q, "1");
    snprintf(q, sizeof(q), "SELECT max(version) FROM \"%s\".schema_migrations", schema);
    query1_eq(p, q, "2");
  }
  /* fixed file applies */
  write_file(dir, "0003_bad.sql", "CREATE TABLE v (a int);\nINSERT INTO t VALUES (2);\n");
  ck_assert_int_eq(lc_db_migrate(p, schema, dir, err), LC_OK);
  {
    char q[256];
    snprintf(q, sizeof(q), "SELECT count(*) FROM \"%s\".t", schema);
    query1_eq(p, q, "2");
  }
  rm_dir(dir, files);
  lc_db_pool_free(p);
}
END_TEST

START_TEST(test_migrate_rejects) {
  lc_db_pool *p = new_pool(1, 5000);
  char dir[] = "/tmp/lc_mig_XXXXXX";
  char schema[64];
  char err[LC_ERR_LEN];
  static const char *const files[] = {"0001_a.sql", "0001_b.sql", "0002_tx.sql", NULL};
  static const char *const bad[] = {"",         "Bad",     "1abc",   "a-b",       "a;drop",
                                    "a b",      "\"x\"",   "public.x",
                                    "a234567890123456789012345678901234567890123456789012345678901234"};

  snprintf(schema, sizeof(schema), "%s_r", g_schema);
  ck_assert_ptr_nonnull(mkdtemp(dir));
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(lc_db_migrate(p, bad[i], dir, err) == LC_ERR_PARAM, "accepted '%s'", bad[i]);
  ck_assert_int_eq(lc_db_migrate(p, NULL, dir, err), LC_ERR_PARAM);
  ck_assert_int_eq(lc_db_migrate(p, schema, "/nonexistent/lc/dir", err), LC_ERR_PARAM);

  /* duplicate version */
  write_file(dir, "0001_a.sql", "SELECT 1;");
  write_file(dir, "0001_b.sql", "SELECT 1;");
  ck_assert_int_eq(lc_db_migrate(p, schema, dir, err), LC_ERR_PARAM);
  ck_assert_msg(strstr(err, "duplicate") != NULL, "err: %s", err);
  {
    char path[512];
    snprintf(path, sizeof(path), "%s/0001_b.sql", dir);
    unlink(path);
  }
  /* a file that commits on its own is refused (and rolled back) */
  write_file(dir, "0002_tx.sql", "CREATE TABLE w (a int); COMMIT;");
  ck_assert_int_ne(lc_db_migrate(p, schema, dir, err), LC_OK);
  {
    char q[256];
    snprintf(q, sizeof(q), "SELECT max(version) FROM \"%s\".schema_migrations", schema);
    query1_eq(p, q, "1");
  }
  rm_dir(dir, files);
  lc_db_pool_free(p);
}
END_TEST

Suite *lc_db_suite(void) {
  Suite *s = suite_create("db");
  TCase *tc = tcase_create("db");
  tcase_add_unchecked_fixture(tc, schema_setup, schema_teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_pool_args);
  tcase_add_test(tc, test_acquire_timeout);
  tcase_add_test(tc, test_pool_concurrency);
  tcase_add_test(tc, test_exec_errors);
  tcase_add_test(tc, test_release_rolls_back);
  tcase_add_test(tc, test_broken_connection_recovers);
  tcase_add_test(tc, test_exec_prepared);
  tcase_add_test(tc, test_unreachable);
  tcase_add_test(tc, test_migrate);
  tcase_add_test(tc, test_migrate_rejects);
  suite_add_tcase(s, tc);
  return s;
}
