#!/usr/bin/env node
// services/deploy-token.mjs — compile and deploy chain-svc/contracts/CreditToken.sol.
//
// Contract: `node deploy-token.mjs [outfile]`. Compiles the token with solc-js
// (imports "@openzeppelin/..." resolved from services/node_modules), deploys it
// with eth_sendTransaction from anvil account #0 (unlocked on anvil) with
// initialSupply = 10^9 * 10^18, waits for the receipt, checks that code exists
// at the address and that decimals() answers, then prints
// CHAIN_TOKEN_ADDRESS=0x... and CHAIN_TOKEN_DECIMALS=N and writes them to
// outfile (mode 600) when given. RPC endpoint: $CHAIN_RPC_URL (default
// http://127.0.0.1:8545). Uses only fetch() for JSON-RPC. Exit 0 on success,
// 1 with a message on stderr otherwise.
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const require = createRequire(join(here, 'package.json'));
const solc = require('solc');

const RPC_URL = process.env.CHAIN_RPC_URL || 'http://127.0.0.1:8545';
const DEPLOYER = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
const SOURCE = join(repo, 'chain-svc', 'contracts', 'CreditToken.sol');
const INITIAL_SUPPLY = 10n ** 9n * 10n ** 18n;

let rpcId = 0;
async function rpc(method, params = []) {
  const res = await fetch(RPC_URL, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
  });
  if (!res.ok) throw new Error(`${method}: HTTP ${res.status}`);
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${body.error.message || JSON.stringify(body.error)}`);
  return body.result;
}

function findImport(path) {
  try {
    return { contents: readFileSync(require.resolve(path), 'utf8') };
  } catch (e) {
    return { error: `import not found: ${path}` };
  }
}

function compile() {
  const input = {
    language: 'Solidity',
    sources: { 'CreditToken.sol': { content: readFileSync(SOURCE, 'utf8') } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'paris',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (out.errors || []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    throw new Error('solc: ' + errors.map((e) => e.formattedMessage || e.message).join('\n'));
  }
  const c = out.contracts?.['CreditToken.sol']?.CreditToken;
  if (!c || !c.evm?.bytecode?.object) throw new Error('solc produced no CreditToken bytecode');
  return c.evm.bytecode.object;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function main() {
  const outfile = process.argv[2];
  const chainId = await rpc('eth_chainId');
  const bytecode = compile();
  const arg = INITIAL_SUPPLY.toString(16).padStart(64, '0');
  const hash = await rpc('eth_sendTransaction', [
    { from: DEPLOYER, data: '0x' + bytecode + arg, gas: '0x' + (3_000_000).toString(16) },
  ]);
  let receipt = null;
  for (let i = 0; i < 600 && !receipt; i++) {
    receipt = await rpc('eth_getTransactionReceipt', [hash]);
    if (!receipt) await sleep(100);
  }
  if (!receipt) throw new Error(`no receipt for ${hash} after 60 s (is the node mining?)`);
  if (receipt.status !== '0x1') throw new Error(`deployment ${hash} reverted`);
  const address = receipt.contractAddress;
  const code = await rpc('eth_getCode', [address, 'latest']);
  if (!code || code === '0x') throw new Error(`no code at ${address}`);
  // decimals() selector 0x313ce567
  const dec = BigInt(await rpc('eth_call', [{ to: address, data: '0x313ce567' }, 'latest']));
  const text = `CHAIN_TOKEN_ADDRESS=${address}\nCHAIN_TOKEN_DECIMALS=${dec}\n`;
  if (outfile) {
    const tmp = `${outfile}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, outfile);
  }
  process.stdout.write(text);
  process.stderr.write(`deployed CreditToken at ${address} (chain ${BigInt(chainId)}, tx ${hash})\n`);
}

main().catch((e) => {
  process.stderr.write(`deploy-token: ${e.message}\n`);
  process.exit(1);
});
