// compile_token.mjs - compiles chain-svc/contracts/CreditToken.sol with
// solc-js and prints its creation bytecode (hex, no 0x) on stdout.
// Used by the chain-svc integration test to deploy a private token on anvil.
// Modules (solc, @openzeppelin/contracts) come from $CHAIN_NODE_MODULES, else
// <repo>/services/node_modules (installed by services/setup), else
// /work/devrun/node_modules (the development machine's install).
// (services/deploy-token.mjs always deploys from anvil account #0; the test
// needs the bytecode alone to deploy from its own random master.)
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const candidates = [
  process.env.CHAIN_NODE_MODULES,
  path.join(here, '..', '..', 'services', 'node_modules'),
  '/work/devrun/node_modules',
].filter(Boolean);
const nm = candidates.find((d) => fs.existsSync(path.join(d, 'solc', 'package.json')));
if (!nm) {
  process.stderr.write('compile_token: solc not found in ' + candidates.join(', ') + '\n');
  process.exit(1);
}
const require = createRequire(path.join(nm, 'noop.js'));
const solc = require('solc');
const srcPath = path.join(here, '..', 'contracts', 'CreditToken.sol');

const input = {
  language: 'Solidity',
  sources: { 'CreditToken.sol': { content: fs.readFileSync(srcPath, 'utf8') } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'paris',
    outputSelection: { '*': { '*': ['evm.bytecode.object'] } },
  },
};
function findImports(p) {
  try {
    return { contents: fs.readFileSync(path.join(nm, p), 'utf8') };
  } catch (e) {
    return { error: 'not found: ' + p };
  }
}
const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errs = (out.errors || []).filter((e) => e.severity === 'error');
if (errs.length > 0) {
  for (const e of errs) process.stderr.write(e.formattedMessage + '\n');
  process.exit(1);
}
process.stdout.write(out.contracts['CreditToken.sol'].CreditToken.evm.bytecode.object + '\n');
