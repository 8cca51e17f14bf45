/* db.h - PostgreSQL connection pool, transactions and schema migrations.
 *
 * A pool owns N libpq connections. A thread acquires one connection for a
 * whole unit of work (possibly a transaction) and releases it; no connection
 * is ever used by two threads at once. Broken connections are reset on
 * acquire. Only parameterised queries (PQexecParams) are used. */
#ifndef LC_DB_H
#define LC_DB_H

#include <libpq-fe.h>
#include "lc/err.h"

typedef struct lc_db_pool lc_db_pool;

/* conninfo: libpq connection string or URI. size in [1,64]. The pool connects
 * lazily; creation fails only on bad arguments. *out is new. */
int lc_db_pool_new(const char *conninfo, int size, int acquire_timeout_ms,
                   lc_db_pool **out, char err[LC_ERR_LEN]);
void lc_db_pool_free(lc_db_pool *pool);

/* Checks out a connection, waiting at most acquire_timeout_ms.
 * Returns LC_OK, LC_ERR_TIMEOUT (pool exhausted) or LC_ERR_UNAVAIL (cannot connect). */
int lc_db_acquire(lc_db_pool *pool, PGconn **conn, char err[LC_ERR_LEN]);
/* Returns the connection. If a transaction is still open it is rolled back. */
void lc_db_release(lc_db_pool *pool, PGconn *conn);

/* Runs a parameterised statement (text params, text results).
 * On success *res is new (PQclear) and status is PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK. On error: LC_ERR_CONFLICT for unique violation (23505),
 * LC_ERR_RETRY for serialization failure/deadlock (40001/40P01),
 * LC_ERR_UNAVAIL for a lost connection, LC_ERR_DB otherwise; *res is NULL and
 * err has a short reason (logged once here at error level for LC_ERR_DB). res may be NULL
 * when the caller does not need the result. */
int lc_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
               PGresult **res, char err[LC_ERR_LEN]);

/* Like lc_db_exec for a hot statement, as a named prepared statement: the
 * first use on a connection prepares `sql` under `name` (one extra round
 * trip), later uses send only Bind/Execute (no parse/plan). Works inside a
 * transaction too: the connection remembers (libpq instance data) which
 * names its server session holds, so nothing is prepared twice; a PQreset
 * forgets them. Outside a transaction a statement the server lost
 * (DEALLOCATE) is prepared again and retried once; inside one, never
 * DEALLOCATE behind its back (the error aborts the transaction).
 * name: a constant, unique per sql. */
int lc_db_exec_prepared(PGconn *conn, const char *name, const char *sql, int nparams,
                        const char *const *params, PGresult **res, char err[LC_ERR_LEN]);

int lc_db_begin(PGconn *conn, char err[LC_ERR_LEN]);     /* BEGIN (read committed) */
int lc_db_commit(PGconn *conn, char err[LC_ERR_LEN]);
int lc_db_rollback(PGconn *conn);

/* 1 when SELECT 1 succeeds on a pooled connection (for /readyz). */
int lc_db_ping(lc_db_pool *pool);

/* Applies migrations from sql_dir: files named NNNN_name.sql, in order, each
 * in its own transaction, recorded in <schema>.schema_migrations(version,
 * name, applied_at). Creates the schema if missing. Serialised across
 * instances with pg_advisory_xact_lock. Already-applied versions are skipped. */
int lc_db_migrate(lc_db_pool *pool, const char *schema, const char *sql_dir,
                  char err[LC_ERR_LEN]);

#endif
