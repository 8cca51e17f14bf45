/* chain_ctx.h - the daemon's shared state: DB pool, node client, token and
 * fee settings, and the HD keys (master key in memory only, wiped on free).
 *
 * One chain_ctx is built in main() (or by a test) before any thread starts and
 * is read-only afterwards, except the fee cache which has its own mutex. */
#ifndef CHAIN_CTX_H
#define CHAIN_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lc/db.h"
#include "lc/err.h"
#include "rpc.h"

#define CHAIN_FEE_CACHE_MS 1000
#define CHAIN_RAW_TX_MAX 1024 /* hex text of one signed transfer, with margin */
#define CHAIN_PARK_ETH 1   /* master cannot pay gas for the next transfer */
#define CHAIN_PARK_TOKEN 2 /* master holds fewer tokens than the next transfer */

typedef struct {
  lc_db_pool *db;             /* borrowed */
  rpc_client rpc;
  uint64_t chain_id;
  uint8_t token[20];
  char token_str[43];         /* EIP-55 */
  unsigned decimals;
  uint64_t gas_limit;
  int confirmations;          /* >= 1 */
  int max_in_flight;
  char exchange[64];          /* where transfer events are published */
  const char *amqp_url;       /* borrowed; NULL = do not publish */
  int poll_ms;                /* sender loop period */
  int stuck_after_s;          /* unmined this long after a send -> fee bump (0 = never) */
  int dropped_after_s;        /* unknown to the node this long -> re-broadcast */
  uint8_t fee_cap[32];        /* max fee per gas cap (wei); all-zero = no cap */
  int max_deliveries;         /* failed deliveries of one message before the DLQ */
  int balance_check_ms;       /* how often the master's balances are read */
  const char *credit_url;     /* borrowed; credit-svc base URL (reconciliation) */
  const uint8_t *isecret;     /* borrowed; INTERNAL_SECRET bytes (signing calls) */
  size_t isecret_len;

  /* Funds state, written by the sender, read by routes: CHAIN_PARK_* bits. */
  atomic_int parked;
  /* Balance cache of the sender thread only (never read elsewhere). */
  int64_t funds_at_ms;
  uint8_t funds_eth[32];
  uint8_t funds_tok[32];

  /* keys: never logged, never stored */
  uint8_t seed[64];
  size_t seed_len;
  uint8_t master_priv[32];
  uint8_t master[20];
  char master_str[43];        /* EIP-55 */

  pthread_mutex_t fee_mu;
  int64_t fee_at_ms;          /* lc_mono_ms of the cached values, 0 = none */
  uint8_t fee_tip[32];
  uint8_t fee_max[32];

  /* Consumer threads (CHAIN_CONSUMERS) hand their store step to one batch
   * (consumer.c): one nonce lock and one commit for every debit waiting. */
  int consumers;
  pthread_mutex_t store_mu;
  pthread_cond_t store_cv;
  struct chain_store_req *store_head;
  int store_busy;

  /* Stage wake-ups (sender.c): a stage sleeps until its counter moves or
   * poll_ms passes. CHAIN_WAKE_*: index into wake_seq. */
  pthread_mutex_t wake_mu;
  pthread_cond_t wake_cv;
  unsigned wake_seq[3];
  atomic_ullong last_block;   /* latest block seen by the track stage */
  atomic_int track_open;      /* submitted rows seen by the last track pass */
  atomic_int track_unmined;   /* of which without a receipt */
  int mine_nudge_ms;          /* dev nodes: evm_mine after this long without a block (0 = off) */
} chain_ctx;

#define CHAIN_WAKE_BROADCAST 0 /* a transfer was stored / the window has room */
#define CHAIN_WAKE_TRACK 1     /* a transfer was sent */
#define CHAIN_WAKE_REPORT 2    /* a transfer changed status */

/* Wakes the stage (CHAIN_WAKE_*). Thread-safe, cheap. */
void chain_wake(chain_ctx *ctx, int stage);

/* Waits until stage is woken after *seen (then *seen is updated and 1 is
 * returned) or ms pass (0). Thread-safe. */
int chain_wait(chain_ctx *ctx, int stage, unsigned *seen, int64_t ms);

/* Initialises ctx: copies the seed (16..64 bytes), derives the master key
 * m/44'/60'/0'/0/0 and its address, sets the node client and settings.
 * token is "0x"+40 hex, or NULL when not known yet (zero address; set it with
 * chain_ctx_set_token before any transfer is signed). Defaults: decimals 18, gas 120000, confirmations 1,
 * max_in_flight 64, poll_ms 250, stuck_after_s 60, dropped_after_s 10, no
 * fee cap, max_deliveries 5, balance_check_ms 2000, amqp_url NULL,
 * credit_url NULL, exchange "chain.events" (override the fields afterwards).
 * Returns LC_OK or LC_ERR_PARAM (err says which input, never key material). */
int chain_ctx_init(chain_ctx *ctx, lc_db_pool *db, const char *rpc_url, uint64_t chain_id,
                   const char *token, const uint8_t *seed, size_t seed_len,
                   char err[LC_ERR_LEN]);
/* Sets the token contract address ("0x" + 40 hex). LC_ERR_PARAM otherwise.
 * Only before threads start. */
int chain_ctx_set_token(chain_ctx *ctx, const char *token);
/* Wipes the keys and destroys the mutex. NULL-safe. */
void chain_ctx_free(chain_ctx *ctx);

/* Address of user wallet index idx (m/44'/60'/0'/0/idx), EIP-55 form in out
 * (and raw bytes in addr when non-NULL). idx in [1, 2^31). Thread-safe. */
int chain_user_address(const chain_ctx *ctx, int64_t idx, uint8_t addr[20], char out[43]);

/* Current EIP-1559 fees: tip = eth_maxPriorityFeePerGas, max = 2*baseFee(latest)
 * + tip, cached for CHAIN_FEE_CACHE_MS. LC_ERR_UNAVAIL/IO when the node does
 * not answer. Thread-safe. */
int chain_fees(chain_ctx *ctx, uint8_t tip[32], uint8_t max_fee[32], char err[LC_ERR_LEN]);

/* Forgets the cached fees (after a fee error from the node). Thread-safe. */
void chain_fees_invalidate(chain_ctx *ctx);

/* Master balances from the node at "latest": ETH (wei) and tokens (token
 * units, balanceOf). LC_ERR_UNAVAIL/IO when the node does not answer. */
int chain_master_balances(chain_ctx *ctx, uint8_t eth[32], uint8_t tokens[32],
                          char err[LC_ERR_LEN]);

/* Signs the ERC-20 transfer(to, amount) from the master with nonce and fees
 * (EIP-1559, ctx->gas_limit, to = the token). raw_hex gets "0x" + hex of the
 * raw transaction (raw_hex_sz >= CHAIN_RAW_TX_MAX), hash_hex "0x" + 64 hex.
 * Thread-safe. LC_ERR_TOO_LARGE when raw_hex is too small. */
int chain_sign_transfer(chain_ctx *ctx, const uint8_t to[20], const uint8_t amount[32],
                        int64_t nonce, const uint8_t tip[32], const uint8_t max_fee[32],
                        char *raw_hex, size_t raw_hex_sz, char hash_hex[67],
                        char err[LC_ERR_LEN]);

/* Asks the node for its chain id (LC_OK and *id on success). */
int chain_node_chain_id(chain_ctx *ctx, uint64_t *id, char err[LC_ERR_LEN]);

#endif
