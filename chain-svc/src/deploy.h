/* deploy.h - deploys the project's ERC-20 (CreditToken) from the master
 * wallet with chain-svc's own EIP-1559 signing, and remembers its address.
 *
 * The creation bytecode is the solc output produced at build time
 * (<build>/chain-svc/CreditToken.bin, hex; CHAIN_TOKEN_BIN overrides it). The
 * constructor argument is the initial supply, 10^9 * 10^decimals, minted to
 * the master. The deployment uses the master's nonce allocator (so it never
 * collides with transfers), is stored in chain.token_deployments before it is
 * broadcast, and a rerun after a crash re-broadcasts the stored transaction
 * instead of deploying twice. One deployment per chain id. */
#ifndef CHAIN_DEPLOY_H
#define CHAIN_DEPLOY_H

#include "chain_ctx.h"

#define CHAIN_TOKEN_SUPPLY_UNITS 1000000000u /* whole tokens minted to the master */
#define CHAIN_BYTECODE_MAX (256u * 1024u)   /* hex characters */

/* Address of the token deployed by chain-svc on ctx->chain_id, if any:
 * LC_OK and address ("0x" + 40, EIP-55) when a deployment is recorded as
 * deployed, LC_ERR_NOTFOUND otherwise. */
int chain_deploy_lookup(chain_ctx *ctx, char address[43], char err[LC_ERR_LEN]);

/* Deploys (or finishes a stored deployment of) the token and waits up to
 * timeout_s for its receipt; checks the receipt's status, the contract
 * address and that code exists there. On LC_OK address holds the token and
 * ctx->token is set. bytecode_path: file with the creation bytecode in hex
 * (optional "0x", trailing whitespace ignored). */
int chain_deploy_token(chain_ctx *ctx, const char *bytecode_path, int timeout_s,
                       char address[43], char err[LC_ERR_LEN]);

#endif
