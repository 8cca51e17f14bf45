/* db.c - PostgreSQL connection pool, transactions and schema migrations.
 *
 * The pool is an array of slots (PGconn* + in_use flag) guarded by one mutex
 * and a condition variable bound to CLOCK_MONOTONIC. Connections are opened
 * lazily and outside the mutex; a checked-out connection belongs to exactly
 * one thread until it is released. Release rolls back any transaction left
 * open and drops broken connections, so the next acquire reconnects.
 *
 * Statements go through PQexecParams (text format; lc_db_exec_prepared:
 * PQprepare once per connection + PQexecPrepared). The only
 * non-parameterised execution is lc_db_migrate running a migration file
 * from the repository (never user input). Error texts never contain
 * parameter values. */
#include "lc/db.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <libpq-events.h>

#include "lc/log.h"
#include "lc/util.h"

#define DB_POOL_MAX 64
#define DB_CONNECT_TIMEOUT_S "5"
#define DB_MIGRATION_MAX_BYTES (1024L * 1024L)
#define DB_MIGRATION_MAX_FILES 4096
#define DB_SCHEMA_MAX 63

struct lc_db_pool {
  char *conninfo;
  int size;
  int timeout_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  PGconn **conns;          /* NULL = not connected */
  unsigned char *in_use;   /* 1 = checked out */
};

/* ---------------------------------------------------------------- pool -- */

int lc_db_pool_new(const char *conninfo, int size, int acquire_timeout_ms,
                   lc_db_pool **out, char err[LC_ERR_LEN]) {
  lc_db_pool *p = NULL;
  pthread_condattr_t ca;
  int ca_ok = 0;
  int mu_ok = 0;
  int rc = LC_OK;

  if (out == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_pool_new - out is NULL");
  *out = NULL;
  if (conninfo == NULL || conninfo[0] == '\0')
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_pool_new - empty conninfo");
  if (size < 1 || size > DB_POOL_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_pool_new - size %d not in [1,%d]", size,
                      DB_POOL_MAX);
  if (acquire_timeout_ms < 0)
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_pool_new - negative acquire timeout");

  p = lc_xcalloc(1, sizeof(*p));
  p->conninfo = lc_xstrdup(conninfo);
  p->size = size;
  p->timeout_ms = acquire_timeout_ms;
  p->conns = lc_xcalloc((size_t)size, sizeof(*p->conns));
  p->in_use = lc_xcalloc((size_t)size, sizeof(*p->in_use));

  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    rc = lc_err_set(err, LC_ERR, "lc_db_pool_new - mutex init failed");
    goto out;
  }
  mu_ok = 1;
  if (pthread_condattr_init(&ca) != 0) {
    rc = lc_err_set(err, LC_ERR, "lc_db_pool_new - condattr init failed");
    goto out;
  }
  ca_ok = 1;
  if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
      pthread_cond_init(&p->cv, &ca) != 0) {
    rc = lc_err_set(err, LC_ERR, "lc_db_pool_new - condvar init failed");
    goto out;
  }
  *out = p;
  p = NULL;

out:
  if (ca_ok)
    pthread_condattr_destroy(&ca);
  if (p != NULL) {
    if (mu_ok)
      pthread_mutex_destroy(&p->mu);
    free(p->conns);
    free(p->in_use);
    free(p->conninfo);
    free(p);
  }
  return rc;
}

/* Frees the pool and closes every connection. All connections must have
 * been released; the caller guarantees no thread still uses the pool. */
void lc_db_pool_free(lc_db_pool *pool) {
  if (pool == NULL)
    return;
  for (int i = 0; i < pool->size; i++) {
    if (pool->in_use[i])
      lc_log_warn("lc_db_pool_free - connection %d still checked out", i);
    if (pool->conns[i] != NULL)
      PQfinish(pool->conns[i]);
  }
  pthread_cond_destroy(&pool->cv);
  pthread_mutex_destroy(&pool->mu);
  free(pool->conns);
  free(pool->in_use);
  free(pool->conninfo);
  free(pool);
}

/* Server NOTICEs ("schema already exists, skipping" ...) go to the debug
 * log instead of libpq's default stderr printer. */
static void db_notice(void *arg, const char *message) {
  size_t n = strlen(message);
  (void)arg;
  if (n > 0 && message[n - 1] == '\n')
    n--;
  lc_log_debug("postgres notice - %.*s", (int)n, message);
}

/* Opens one connection. A default connect_timeout comes first so a value in
 * the caller's conninfo overrides it (libpq keeps the last occurrence). */
static PGconn *db_connect(const char *conninfo) {
  const char *const keys[] = {"connect_timeout", "dbname", NULL};
  const char *const vals[] = {DB_CONNECT_TIMEOUT_S, conninfo, NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);
  if (c != NULL)
    PQsetNoticeProcessor(c, db_notice, NULL);
  return c;
}

/* First message line of the connection's error, without the trailing newline. */
static void db_conn_err(PGconn *c, char *buf, size_t n) {
  const char *m = c != NULL ? PQerrorMessage(c) : "out of memory";
  size_t len = 0;
  if (m == NULL)
    m = "";
  while (m[len] != '\0' && m[len] != '\n' && len + 1 < n) {
    buf[len] = m[len];
    len++;
  }
  buf[len] = '\0';
}

static void abs_deadline(struct timespec *ts, int timeout_ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += timeout_ms / 1000;
  ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec += 1;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Picks a free slot, preferring one that already holds a connection.
 * Caller holds the mutex. Returns -1 when every slot is checked out. */
static int pool_pick(lc_db_pool *pool) {
  int empty = -1;
  for (int i = 0; i < pool->size; i++) {
    if (pool->in_use[i])
      continue;
    if (pool->conns[i] != NULL)
      return i;
    if (empty < 0)
      empty = i;
  }
  return empty;
}

static void pool_put_back(lc_db_pool *pool, int slot, PGconn *conn) {
  pthread_mutex_lock(&pool->mu);
  pool->conns[slot] = conn;
  pool->in_use[slot] = 0;
  pthread_cond_signal(&pool->cv);
  pthread_mutex_unlock(&pool->mu);
}

/* Thread-safe. On LC_OK *conn is checked out for the caller alone until
 * lc_db_release. LC_ERR_TIMEOUT when no slot frees up within the pool's
 * acquire timeout; LC_ERR_UNAVAIL when the server cannot be reached. */
int lc_db_acquire(lc_db_pool *pool, PGconn **conn, char err[LC_ERR_LEN]) {
  struct timespec deadline;
  int slot = -1;
  PGconn *c = NULL;
  char msg[160];

  if (pool == NULL || conn == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_acquire - bad arguments");
  *conn = NULL;
  abs_deadline(&deadline, pool->timeout_ms);

  pthread_mutex_lock(&pool->mu);
  for (;;) {
    slot = pool_pick(pool);
    if (slot >= 0)
      break;
    int w = pthread_cond_timedwait(&pool->cv, &pool->mu, &deadline);
    if (w == ETIMEDOUT) {
      slot = pool_pick(pool);
      break;
    }
  }
  if (slot < 0) {
    pthread_mutex_unlock(&pool->mu);
    return lc_err_set(err, LC_ERR_TIMEOUT, "lc_db_acquire - pool exhausted (%d connections)",
                      pool->size);
  }
  pool->in_use[slot] = 1;
  c = pool->conns[slot];
  pthread_mutex_unlock(&pool->mu);

  /* Connect or repair outside the mutex: this may block on the network. */
  if (c == NULL)
    c = db_connect(pool->conninfo);
  else if (PQstatus(c) != CONNECTION_OK)
    PQreset(c);
  if (c == NULL || PQstatus(c) != CONNECTION_OK) {
    db_conn_err(c, msg, sizeof(msg));
    if (c != NULL)
      PQfinish(c);
    pool_put_back(pool, slot, NULL);
    return lc_err_set(err, LC_ERR_UNAVAIL, "lc_db_acquire - cannot connect: %s", msg);
  }
  pthread_mutex_lock(&pool->mu);
  pool->conns[slot] = c;
  pthread_mutex_unlock(&pool->mu);
  *conn = c;
  return LC_OK;
}

/* Thread-safe. Rolls back an open or failed transaction; closes a broken
 * connection so that the slot reconnects on its next acquire. */
void lc_db_release(lc_db_pool *pool, PGconn *conn) {
  int slot = -1;

  if (pool == NULL || conn == NULL)
    return;
  pthread_mutex_lock(&pool->mu);
  for (int i = 0; i < pool->size; i++) {
    if (pool->conns[i] == conn && pool->in_use[i]) {
      slot = i;
      break;
    }
  }
  pthread_mutex_unlock(&pool->mu);
  if (slot < 0) {
    lc_log_error("lc_db_release - connection does not belong to this pool");
    return;
  }

  if (PQstatus(conn) == CONNECTION_OK) {
    PGTransactionStatusType ts = PQtransactionStatus(conn);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
      PGresult *r = PQexec(conn, "ROLLBACK");
      PQclear(r);
    }
  }
  if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
    PQfinish(conn);
    conn = NULL;
  }
  pool_put_back(pool, slot, conn);
}

/* ----------------------------------------------------------- execution -- */

static int sqlstate_is(const char *st, const char *code) {
  return st != NULL && strcmp(st, code) == 0;
}

/* Copies the primary message; for data exceptions (class 22) the message
 * usually quotes the offending value, so it is cut at the first ':'. */
static void db_primary(const PGresult *r, const char *st, char *buf, size_t n) {
  const char *m = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  size_t len = 0;
  int cut = st != NULL && strncmp(st, "22", 2) == 0;
  if (m == NULL)
    m = "unknown error";
  while (m[len] != '\0' && m[len] != '\n' && len + 1 < n) {
    if (cut && m[len] == ':')
      break;
    buf[len] = m[len];
    len++;
  }
  buf[len] = '\0';
}

/* Maps a failed result (or NULL result) to a status, fills err and logs
 * LC_ERR_DB once at error level. Clears r. */
static int db_fail(PGconn *conn, PGresult *r, const char *what, char err[LC_ERR_LEN]) {
  const char *f = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  char stbuf[8];
  const char *st = NULL;
  char msg[160];
  int rc;

  /* copy: the field points into r, which is cleared below */
  if (f != NULL) {
    lc_strlcpy(stbuf, f, sizeof(stbuf));
    st = stbuf;
  }

  if (r == NULL) {
    db_conn_err(conn, msg, sizeof(msg));
  } else {
    db_primary(r, st, msg, sizeof(msg));
  }
  if (sqlstate_is(st, "23505"))
    rc = LC_ERR_CONFLICT;
  else if (sqlstate_is(st, "40001") || sqlstate_is(st, "40P01"))
    rc = LC_ERR_RETRY;
  else if (PQstatus(conn) != CONNECTION_OK ||
           (st != NULL && (strncmp(st, "08", 2) == 0 || strncmp(st, "57P0", 4) == 0)))
    rc = LC_ERR_UNAVAIL;
  else
    rc = LC_ERR_DB;
  PQclear(r);
  if (rc == LC_ERR_CONFLICT) {
    /* A conflict is an expected outcome callers may turn into a 409; keep
     * constraint and table names out of text that could reach a client. */
    lc_log_debug("%s - sqlstate %s: %s", what, st, msg);
    lc_err_set(err, rc, "duplicate");
    return rc;
  }
  lc_err_set(err, rc, "%s - sqlstate %s: %s", what, st != NULL ? st : "-----", msg);
  if (rc == LC_ERR_DB)
    lc_log_error("%s - sqlstate %s: %s", what, st != NULL ? st : "-----", msg);
  return rc;
}

/* Not thread-safe per connection (a connection is owned by one thread).
 * Parameter values are never copied into err or logs. */
int lc_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
               PGresult **res, char err[LC_ERR_LEN]) {
  PGresult *r;
  ExecStatusType st;

  if (res != NULL)
    *res = NULL;
  if (conn == NULL || sql == NULL || nparams < 0 || (nparams > 0 && params == NULL))
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_exec - bad arguments");

  r = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
  st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (r == NULL || (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK))
    return db_fail(conn, r, "lc_db_exec", err);
  if (res != NULL)
    *res = r;
  else
    PQclear(r);
  return LC_OK;
}

/* ------------------------------------------------- prepared statements -- */

/* Which statement names this connection's server session has prepared: a
 * small array hung on the PGconn with libpq's event API (PQinstanceData).
 * A PQreset starts a new server session (PGEVT_CONNRESET empties the list);
 * PQfinish frees it (PGEVT_CONNDESTROY). Prepared statements are not
 * transactional: one prepared inside a transaction that rolls back stays. */
#define DB_PREP_MAX 128
typedef struct {
  int n;
  char *names[DB_PREP_MAX];
} db_prep;

static void prep_clear(db_prep *ps) {
  for (int i = 0; i < ps->n; i++)
    free(ps->names[i]);
  ps->n = 0;
}

static int prep_event(PGEventId id, void *info, void *pass) {
  (void)pass;
  if (id == PGEVT_CONNRESET || id == PGEVT_CONNDESTROY) {
    PGconn *c = id == PGEVT_CONNRESET ? ((PGEventConnReset *)info)->conn
                                      : ((PGEventConnDestroy *)info)->conn;
    db_prep *ps = PQinstanceData(c, prep_event);
    if (ps != NULL) {
      prep_clear(ps);
      if (id == PGEVT_CONNDESTROY) {
        free(ps);
        PQsetInstanceData(c, prep_event, NULL);
      }
    }
  }
  return 1;
}

/* The connection's list, registered on first use; NULL when libpq refuses
 * the registration (then statements run unprepared). */
static db_prep *prep_of(PGconn *conn) {
  db_prep *ps = PQinstanceData(conn, prep_event);
  if (ps != NULL)
    return ps;
  if (!PQregisterEventProc(conn, prep_event, "lc_db_prepared", NULL))
    return NULL;
  ps = lc_xcalloc(1, sizeof(*ps));
  if (!PQsetInstanceData(conn, prep_event, ps)) {
    free(ps);
    return NULL;
  }
  return ps;
}

static int prep_known(const db_prep *ps, const char *name) {
  for (int i = 0; i < ps->n; i++)
    if (strcmp(ps->names[i], name) == 0)
      return 1;
  return 0;
}

static void prep_forget(db_prep *ps, const char *name) {
  for (int i = 0; i < ps->n; i++)
    if (strcmp(ps->names[i], name) == 0) {
      free(ps->names[i]);
      ps->names[i] = ps->names[--ps->n];
      return;
    }
}

static int prep_make(PGconn *conn, db_prep *ps, const char *name, const char *sql, int nparams,
                     char err[LC_ERR_LEN]) {
  PGresult *r = PQprepare(conn, name, sql, nparams, NULL);
  if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK)
    return db_fail(conn, r, "lc_db_exec_prepared - prepare", err);
  PQclear(r);
  ps->names[ps->n++] = lc_xstrdup(name);
  return LC_OK;
}

/* Not thread-safe per connection. A name the list does not hold is prepared
 * first (also inside a transaction: a successful Parse does not disturb
 * it). Outside a transaction, a statement the server lost anyway (someone
 * ran DEALLOCATE) is prepared again and retried once; inside one that
 * error aborts the transaction and is returned. */
int lc_db_exec_prepared(PGconn *conn, const char *name, const char *sql, int nparams,
                        const char *const *params, PGresult **res, char err[LC_ERR_LEN]) {
  db_prep *ps;
  int idle;

  if (res != NULL)
    *res = NULL;
  if (conn == NULL || name == NULL || sql == NULL || nparams < 0 ||
      (nparams > 0 && params == NULL))
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_exec_prepared - bad arguments");
  ps = prep_of(conn);
  if (ps == NULL)
    return lc_db_exec(conn, sql, nparams, params, res, err);
  idle = PQtransactionStatus(conn) == PQTRANS_IDLE;
  for (int attempt = 0;; attempt++) {
    if (!prep_known(ps, name)) {
      if (ps->n >= DB_PREP_MAX) /* list full: this name stays unprepared */
        return lc_db_exec(conn, sql, nparams, params, res, err);
      int rc = prep_make(conn, ps, name, sql, nparams, err);
      if (rc != LC_OK)
        return rc;
    }
    PGresult *r = PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
    ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (r != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
      if (res != NULL)
        *res = r;
      else
        PQclear(r);
      return LC_OK;
    }
    const char *f = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (attempt > 0 || !idle || !sqlstate_is(f, "26000"))
      return db_fail(conn, r, "lc_db_exec_prepared", err);
    PQclear(r);
    prep_forget(ps, name); /* the server lost it: prepare again */
  }
}

int lc_db_begin(PGconn *conn, char err[LC_ERR_LEN]) {
  return lc_db_exec(conn, "BEGIN ISOLATION LEVEL READ COMMITTED", 0, NULL, NULL, err);
}

/* COMMIT of an aborted transaction "succeeds" with tag ROLLBACK: that is an
 * error for the caller (nothing was written). */
int lc_db_commit(PGconn *conn, char err[LC_ERR_LEN]) {
  PGresult *r = NULL;
  int rc = lc_db_exec(conn, "COMMIT", 0, NULL, &r, err);
  if (rc != LC_OK)
    return rc;
  if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
    PQclear(r);
    return lc_err_set(err, LC_ERR_DB, "lc_db_commit - transaction was aborted, rolled back");
  }
  PQclear(r);
  return LC_OK;
}

int lc_db_rollback(PGconn *conn) {
  char err[LC_ERR_LEN];
  return lc_db_exec(conn, "ROLLBACK", 0, NULL, NULL, err);
}

int lc_db_ping(lc_db_pool *pool) {
  PGconn *c = NULL;
  PGresult *r = NULL;
  char err[LC_ERR_LEN];
  int ok = 0;

  if (lc_db_acquire(pool, &c, err) != LC_OK)
    return 0;
  if (lc_db_exec(c, "SELECT 1", 0, NULL, &r, err) == LC_OK && PQntuples(r) == 1)
    ok = 1;
  PQclear(r);
  lc_db_release(pool, c);
  return ok;
}

/* ---------------------------------------------------------- migrations -- */

struct mig_file {
  int version;
  char name[256];
};

static int schema_valid(const char *s) {
  size_t n;
  if (s == NULL)
    return 0;
  n = strlen(s);
  if (n < 1 || n > DB_SCHEMA_MAX)
    return 0;
  if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
    return 0;
  for (size_t i = 1; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
      return 0;
  }
  return 1;
}

/* ^[0-9]{4}_[a-z0-9_]+\.sql$ ; *version gets the 4-digit prefix. */
static int mig_name_match(const char *s, int *version) {
  size_t n = strlen(s);
  int v = 0;
  if (n < 10 || n > 255 || strcmp(s + n - 4, ".sql") != 0 || s[4] != '_')
    return 0;
  for (int i = 0; i < 4; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    v = v * 10 + (s[i] - '0');
  }
  for (size_t i = 5; i < n - 4; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
      return 0;
  }
  *version = v;
  return 1;
}

static int mig_cmp(const void *a, const void *b) {
  const struct mig_file *x = a, *y = b;
  return (x->version > y->version) - (x->version < y->version);
}

/* Lists and sorts migration files. *out is new (free()). */
static int mig_list(const char *dir, struct mig_file **out, size_t *count,
                    char err[LC_ERR_LEN]) {
  DIR *d = opendir(dir);
  struct dirent *de;
  struct mig_file *v = NULL;
  size_t n = 0, cap = 0;
  int rc = LC_OK;

  *out = NULL;
  *count = 0;
  if (d == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_migrate - cannot open sql dir: %s",
                      strerror(errno));
  while ((de = readdir(d)) != NULL) {
    int ver = 0;
    if (!mig_name_match(de->d_name, &ver))
      continue;
    if (n == DB_MIGRATION_MAX_FILES) {
      rc = lc_err_set(err, LC_ERR_TOO_LARGE, "lc_db_migrate - too many migration files");
      goto out;
    }
    if (n == cap) {
      cap = cap == 0 ? 16 : cap * 2;
      v = lc_xrealloc(v, cap * sizeof(*v));
    }
    v[n].version = ver;
    lc_strlcpy(v[n].name, de->d_name, sizeof(v[n].name));
    n++;
  }
  if (n > 0)
    qsort(v, n, sizeof(*v), mig_cmp);
  for (size_t i = 1; i < n; i++) {
    if (v[i].version == v[i - 1].version) {
      rc = lc_err_set(err, LC_ERR_PARAM, "lc_db_migrate - duplicate version %04d (%s, %s)",
                      v[i].version, v[i - 1].name, v[i].name);
      goto out;
    }
  }
  *out = v;
  *count = n;
  v = NULL;
out:
  closedir(d);
  free(v);
  return rc;
}

/* Reads a migration file (bounded, no NUL bytes). *text is new (free()). */
static int mig_read(const char *dir, const char *name, char **text, char err[LC_ERR_LEN]) {
  char path[4096];
  FILE *f = NULL;
  struct stat sb;
  char *buf = NULL;
  size_t got;
  int rc = LC_OK;

  *text = NULL;
  if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_migrate - path too long");
  f = fopen(path, "rb");
  if (f == NULL)
    return lc_err_set(err, LC_ERR_IO, "lc_db_migrate - cannot open %s: %s", name,
                      strerror(errno));
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    rc = lc_err_set(err, LC_ERR_IO, "lc_db_migrate - %s is not a regular file", name);
    goto out;
  }
  if (sb.st_size > DB_MIGRATION_MAX_BYTES) {
    rc = lc_err_set(err, LC_ERR_TOO_LARGE, "lc_db_migrate - %s is larger than 1 MiB", name);
    goto out;
  }
  buf = lc_xmalloc((size_t)sb.st_size + 1);
  got = fread(buf, 1, (size_t)sb.st_size, f);
  if (got != (size_t)sb.st_size || ferror(f)) {
    rc = lc_err_set(err, LC_ERR_IO, "lc_db_migrate - short read on %s", name);
    goto out;
  }
  buf[got] = '\0';
  if (strlen(buf) != got) {
    rc = lc_err_set(err, LC_ERR_PARAM, "lc_db_migrate - %s contains NUL bytes", name);
    goto out;
  }
  *text = buf;
  buf = NULL;
out:
  free(buf);
  fclose(f);
  return rc;
}

/* Executes statements built from a validated schema name. */
static int mig_execf(PGconn *c, char err[LC_ERR_LEN], const char *fmt, const char *schema) {
  char sql[512];
  if (snprintf(sql, sizeof(sql), fmt, schema) >= (int)sizeof(sql))
    return lc_err_set(err, LC_ERR, "lc_db_migrate - statement too long");
  return lc_db_exec(c, sql, 0, NULL, NULL, err);
}

static int mig_lock(PGconn *c, const char *schema, char err[LC_ERR_LEN]) {
  const char *p[1] = {schema};
  return lc_db_exec(c, "SELECT pg_advisory_xact_lock(hashtext('migrate:' || $1))", 1, p, NULL,
                    err);
}

/* 1 applied, 0 not applied, <0 error (err set, status negated). */
static int mig_applied(PGconn *c, const char *schema, int version, char err[LC_ERR_LEN]) {
  char sql[256];
  char vbuf[16];
  const char *p[1] = {vbuf};
  PGresult *r = NULL;
  int rc;

  snprintf(sql, sizeof(sql), "SELECT 1 FROM \"%s\".schema_migrations WHERE version = $1",
           schema);
  snprintf(vbuf, sizeof(vbuf), "%d", version);
  rc = lc_db_exec(c, sql, 1, p, &r, err);
  if (rc != LC_OK)
    return -rc;
  rc = PQntuples(r) > 0 ? 1 : 0;
  PQclear(r);
  return rc;
}

/* Applies one file in its own transaction. *applied is set to 1 when it ran. */
static int mig_apply_one(PGconn *c, const char *schema, const char *dir,
                         const struct mig_file *m, int *applied, char err[LC_ERR_LEN]) {
  char *text = NULL;
  char sql[256];
  char vbuf[16];
  const char *p[2] = {vbuf, m->name};
  PGresult *r = NULL;
  ExecStatusType st;
  int rc, a;

  *applied = 0;
  rc = mig_read(dir, m->name, &text, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    goto out;
  rc = mig_lock(c, schema, err);
  if (rc != LC_OK)
    goto out;
  a = mig_applied(c, schema, m->version, err);
  if (a < 0) {
    rc = -a;
    goto out;
  }
  if (a == 1)
    goto out; /* another instance applied it meanwhile; COMMIT below is harmless */
  rc = mig_execf(c, err, "SET LOCAL search_path TO \"%s\"", schema);
  if (rc != LC_OK)
    goto out;

  /* The one multi-statement, non-parameterised execution: repo content only. */
  r = PQexec(c, text);
  st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (r == NULL || (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)) {
    char inner[LC_ERR_LEN];
    rc = db_fail(c, r, "lc_db_migrate", inner);
    r = NULL;
    lc_err_set(err, rc == LC_ERR_UNAVAIL ? LC_ERR_UNAVAIL : LC_ERR_DB, "%s: %.180s", m->name,
               inner);
    rc = rc == LC_ERR_UNAVAIL ? LC_ERR_UNAVAIL : LC_ERR_DB;
    goto out;
  }
  PQclear(r);
  r = NULL;
  if (PQtransactionStatus(c) != PQTRANS_INTRANS) {
    rc = lc_err_set(err, LC_ERR_DB,
                    "lc_db_migrate - %s must not contain transaction control statements",
                    m->name);
    goto out;
  }
  snprintf(sql, sizeof(sql),
           "INSERT INTO \"%s\".schema_migrations(version, name) VALUES ($1::int, $2)", schema);
  snprintf(vbuf, sizeof(vbuf), "%d", m->version);
  rc = lc_db_exec(c, sql, 2, p, NULL, err);
  if (rc != LC_OK)
    goto out;
  *applied = 1;

out:
  if (rc == LC_OK) {
    rc = lc_db_commit(c, err);
    if (rc != LC_OK)
      *applied = 0;
  } else if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
    lc_db_rollback(c);
  }
  PQclear(r);
  free(text);
  return rc;
}

/* Thread-safe (checks out one connection of the pool). Serialised across
 * processes by a transaction-level advisory lock per schema. On error the
 * failing file's transaction is rolled back; earlier files stay applied. */
int lc_db_migrate(lc_db_pool *pool, const char *schema, const char *sql_dir,
                  char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  struct mig_file *files = NULL;
  size_t nfiles = 0;
  int rc;

  if (pool == NULL || sql_dir == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_migrate - bad arguments");
  if (!schema_valid(schema))
    return lc_err_set(err, LC_ERR_PARAM, "lc_db_migrate - invalid schema name");

  rc = mig_list(sql_dir, &files, &nfiles, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    goto out;

  /* Schema and bookkeeping table, under the same lock as the files so that
   * concurrent first starts do not race on CREATE SCHEMA. */
  rc = lc_db_begin(c, err);
  if (rc == LC_OK)
    rc = mig_lock(c, schema, err);
  /* CREATE SCHEMA needs CREATE on the database even with IF NOT EXISTS, and
   * a daemon's role usually only owns its pre-created schema: create it
   * only when it is missing. */
  int have_schema = 0;
  if (rc == LC_OK) {
    const char *sp[1] = {schema};
    PGresult *sr = NULL;
    rc = lc_db_exec(c, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, sp, &sr, err);
    if (rc == LC_OK)
      have_schema = PQntuples(sr) > 0;
    PQclear(sr);
  }
  if (rc == LC_OK && !have_schema)
    rc = mig_execf(c, err, "CREATE SCHEMA IF NOT EXISTS \"%s\"", schema);
  if (rc == LC_OK)
    rc = mig_execf(c, err,
                   "CREATE TABLE IF NOT EXISTS \"%s\".schema_migrations ("
                   "version int PRIMARY KEY, name text NOT NULL, "
                   "applied_at timestamptz NOT NULL DEFAULT now())",
                   schema);
  if (rc == LC_OK)
    rc = lc_db_commit(c, err);
  if (rc != LC_OK)
    goto out;

  for (size_t i = 0; i < nfiles; i++) {
    int applied = 0;
    int a = mig_applied(c, schema, files[i].version, err);
    if (a < 0) {
      rc = -a;
      goto out;
    }
    if (a == 1)
      continue;
    rc = mig_apply_one(c, schema, sql_dir, &files[i], &applied, err);
    if (rc != LC_OK)
      goto out;
    if (applied)
      lc_log_info("lc_db_migrate - %s: applied %s", schema, files[i].name);
  }

out:
  if (c != NULL)
    lc_db_release(pool, c);
  free(files);
  return rc;
}
