/* store.h - chain schema access: custodial wallet indexes, the persistent
 * nonce allocator of the master wallet, transfer counts.
 *
 * Every function takes a connection checked out by the caller (never shared
 * between threads) and uses parameterised SQL only. Table names are
 * unqualified: the connection's search_path selects the schema. */
#ifndef CHAIN_STORE_H
#define CHAIN_STORE_H

#include <stdint.h>
#include <libpq-fe.h>

#include "chain_ctx.h"
#include "lc/err.h"

/* Returns the wallet index and EIP-55 address of user_id (a UUID), creating
 * them on first use (index from wallet_idx_seq; concurrent creators agree on
 * one row; a lost race only skips a sequence value). Works in autocommit or
 * inside the caller's transaction. */
int chain_store_wallet(chain_ctx *ctx, PGconn *conn, const char *user_id, int64_t *idx,
                       char address[43], char err[LC_ERR_LEN]);

/* Makes sure the nonces row of the master address exists, initialising it from
 * eth_getTransactionCount(master, "pending") when missing. Call outside a
 * transaction. LC_ERR_UNAVAIL when the node cannot be reached. */
int chain_store_nonce_ensure(chain_ctx *ctx, PGconn *conn, char err[LC_ERR_LEN]);

/* Inside an open transaction: locks the master's nonces row (FOR UPDATE) and
 * returns next_nonce. LC_ERR_NOTFOUND when the row is missing. */
int chain_store_nonce_lock(chain_ctx *ctx, PGconn *conn, int64_t *nonce, char err[LC_ERR_LEN]);

/* Inside the same transaction: sets next_nonce = used + 1. */
int chain_store_nonce_advance(chain_ctx *ctx, PGconn *conn, int64_t used, char err[LC_ERR_LEN]);

/* 1 in *exists when a transfer row for debit_id exists. */
int chain_store_transfer_exists(PGconn *conn, const char *debit_id, int *exists,
                                char err[LC_ERR_LEN]);

/* Counts of transfers: pending (signed + submitted), confirmed, failed. */
int chain_store_counts(PGconn *conn, int64_t *pending, int64_t *confirmed, int64_t *failed,
                       char err[LC_ERR_LEN]);

#endif
