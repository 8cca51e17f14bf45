/* fees.h - pure decision logic of the sender (no I/O, unit-tested):
 * EIP-1559 fee bumps for replacing a stuck transaction, the fee cap, and the
 * classification of eth_sendRawTransaction error messages (geth, anvil,
 * reth and erigon wordings). */
#ifndef CHAIN_FEES_H
#define CHAIN_FEES_H

#include <stdint.h>

/* Minimum raise of both fees for a replacement: 12.5 % (1/8), above geth's
 * 10 % price bump so every common client accepts the replacement. */
#define CHAIN_BUMP_DEN 8

typedef enum {
  CHAIN_SEND_OK = 0,
  CHAIN_SEND_ALREADY_KNOWN,  /* this exact tx is already in the pool */
  CHAIN_SEND_NONCE_TOO_LOW,  /* the nonce is used on chain (by us or someone else) */
  CHAIN_SEND_UNDERPRICED,    /* replacement underpriced / below the pool's minimum */
  CHAIN_SEND_FEE_TOO_LOW,    /* max fee below the block base fee */
  CHAIN_SEND_NO_FUNDS,       /* insufficient funds for gas * price + value */
  CHAIN_SEND_REJECTED,       /* anything else: invalid tx, retried with backoff */
} chain_send_class;

/* Classifies the message of a JSON-RPC error answer to eth_sendRawTransaction
 * (case-insensitive substring match). NULL or "" -> CHAIN_SEND_REJECTED. */
chain_send_class chain_classify_send_error(const char *msg);

/* Short stable name of a class ("nonce_too_low", ...). Never NULL. */
const char *chain_send_class_name(chain_send_class c);

/* Initial fees capped: max_fee = min(max_fee, cap), tip = min(tip, max_fee).
 * cap all-zero means "no cap". In place. */
void chain_fee_cap(uint8_t tip[32], uint8_t max_fee[32], const uint8_t cap[32]);

/* Replacement fees for a transaction signed with (old_tip, old_max):
 *   new = max(old + ceil(old / 8), market) for both fees, then capped by cap
 *   (cap all-zero = no cap), tip <= max_fee.
 * Returns 0 with new_tip/new_max set when both new fees are at least
 * old + ceil(old / 8) (a valid replacement), or -1 when the cap forbids such a
 * raise (new_* are then still set to the capped values, for logging). */
int chain_fee_bump(const uint8_t old_tip[32], const uint8_t old_max[32], const uint8_t mkt_tip[32],
                   const uint8_t mkt_max[32], const uint8_t cap[32], uint8_t new_tip[32],
                   uint8_t new_max[32]);

/* v * 10^9 (gwei -> wei) as u256; 0 on success. */
int chain_gwei_to_wei(uint64_t gwei, uint8_t out[32]);

#endif
