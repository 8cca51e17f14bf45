/* ethtx.h - EIP-1559 (type 2) transactions, addresses, ERC-20 calldata.
 *
 * signing payload = 0x02 || rlp([chainId, nonce, maxPriorityFeePerGas,
 *   maxFeePerGas, gasLimit, to, value, data, accessList=[]])
 * raw = 0x02 || rlp([...same 9..., yParity, r, s]); hash = keccak256(raw).
 * Signatures are secp256k1 recoverable ECDSA (low-s, RFC 6979 nonces). */
#ifndef CHAIN_ETHTX_H
#define CHAIN_ETHTX_H
#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

/* The process-wide libsecp256k1 context (opaque here; <secp256k1.h> names it
 * secp256k1_context). Created with SECP256K1_CONTEXT_NONE and randomized once
 * (thread-safe, pthread_once); safe for concurrent use. NULL if creation failed.
 * Never destroyed (lives for the process). */
struct secp256k1_context_struct;
const struct secp256k1_context_struct *eth_secp_ctx(void);

typedef struct {
  uint64_t chain_id;
  uint64_t nonce;
  uint8_t max_priority_fee[32]; /* wei, big-endian */
  uint8_t max_fee[32];
  uint64_t gas_limit;
  uint8_t to[20];
  int create;                   /* 1 = contract creation: "to" is encoded empty */
  uint8_t value[32];
  const uint8_t *data;          /* borrowed */
  size_t data_len;
} ethtx_1559;

/* Signs tx with priv. *raw is new (free()), hash = keccak256(raw). */
int ethtx_sign(const ethtx_1559 *tx, const uint8_t priv[32], uint8_t **raw, size_t *raw_len,
               uint8_t hash[32], char err[LC_ERR_LEN]);

/* Address = last 20 bytes of keccak256(uncompressed pubkey without 0x04). */
int eth_address_from_priv(const uint8_t priv[32], uint8_t addr[20]);
/* EIP-55 mixed-case checksum form "0x..." (43 bytes incl. NUL). */
void eth_address_checksum(const uint8_t addr[20], char out[43]);
/* Parses "0x" + 40 hex digits (any case). */
int eth_address_parse(const char *s, uint8_t addr[20]);

/* Address of the contract created by sender with nonce:
 * last 20 bytes of keccak256(rlp([sender, nonce])). */
int eth_create_address(const uint8_t sender[20], uint64_t nonce, uint8_t out[20]);

/* ERC-20 transfer(address,uint256) calldata: a9059cbb || pad32(to) || amount. */
void eth_erc20_transfer_data(const uint8_t to[20], const uint8_t amount[32], uint8_t out[68]);

#endif
