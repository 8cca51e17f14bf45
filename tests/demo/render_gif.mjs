// Renders docs/demo.gif: browser screenshots of the web front end at each step
// of the core flow (sign up -> upload -> the debit -> the on-chain transfer,
// with the receipt read from the chain node), stitched by ImageMagick
// (`convert -delay 120 -loop 0`). Not part of the test command; run by hand
// against the local stack (see tests/demo/README.md):
//   bash services/up && . services/env.sh && node tests/demo/render_gif.mjs [out.gif]
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GATEWAY_URL, REPO, launch, textIs, until } from '../browser/lib.mjs';

const OUT = path.resolve(process.argv[2] || path.join(REPO, 'docs/demo.gif'));
const RPC = process.env.CHAIN_RPC_URL;
const { ADMIN_EMAIL, ADMIN_PASSWORD } = process.env;
if (!RPC || !ADMIN_EMAIL || !ADMIN_PASSWORD) {
  console.error('needs the stack env: . services/env.sh');
  process.exit(2);
}
const frames = mkdtempSync(path.join(tmpdir(), 'demo-frames-'));
let n = 0;

// A caption bar at the bottom of the page (DOM + CSSOM only: the page's CSP
// forbids inline style attributes in markup, not style set from script).
async function frame(page, caption) {
  await page.evaluate((text) => {
    let bar = document.getElementById('demo-caption');
    if (!bar) {
      bar = document.createElement('div');
      bar.id = 'demo-caption';
      Object.assign(bar.style, { position: 'fixed', left: '0', right: '0', bottom: '0', padding: '12px 20px',
        background: '#1d2433', color: '#fff', font: '600 17px system-ui, sans-serif', zIndex: '9' });
      document.body.appendChild(bar);
    }
    bar.textContent = text;
  }, caption);
  const file = path.join(frames, String(++n).padStart(2, '0') + '.png');
  await page.screenshot({ path: file });
  console.log('frame', n, caption);
}

async function rpc(method, params) {
  const r = await fetch(RPC, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  return (await r.json()).result;
}

const { browser, close } = await launch();
try {
  const view = { viewport: { width: 960, height: 560 } };
  const email = `demo-${randomUUID().slice(0, 6)}@example.com`;
  const user = await (await browser.newContext(view)).newPage();
  await user.goto(GATEWAY_URL + '/');
  await user.locator('#signup-form').waitFor({ state: 'visible' });
  await user.fill('#signup-email', email);
  await user.fill('#signup-password', 'a long demo password');
  await frame(user, '1. Sign up (plain HTML/JS page served by the gateway, strict CSP)');
  await user.click('#signup-submit');
  await textIs(user, '#balance', '50');
  await frame(user, '1. Signed in: a new account starts with 50 credits');

  await user.setInputFiles('#upload-file', { name: 'invoice.txt', mimeType: 'text/plain',
    buffer: Buffer.from('demo invoice\n') });
  await frame(user, '2. A paid action: upload a file (10 credits)');
  await user.click('#upload-submit');
  await textIs(user, '#balance', '40');
  await frame(user, '3. The debit: balance 50 → 40 (reserve → store in S3 → commit)');

  const admin = await (await browser.newContext(view)).newPage();
  await admin.goto(GATEWAY_URL + '/');
  await admin.locator('#login-form').waitFor({ state: 'visible' });
  await admin.fill('#login-email', ADMIN_EMAIL);
  await admin.fill('#login-password', ADMIN_PASSWORD);
  await admin.click('#login-submit');
  await until(async () => (await admin.locator('#me-role').textContent()) === 'admin');
  await admin.click('.tab[data-tab="users-tab"]');
  const row = admin.locator('#users-table tbody tr', { hasText: email });
  await until(async () => (await row.count()) === 1);
  const uid = (await row.locator('td').nth(5).textContent()).trim();
  await admin.click('.tab[data-tab="audit-tab"]');
  await admin.fill('#audit-user', uid);
  await admin.fill('#audit-action', 'file.upload');
  let tx = null;
  await until(async () => {
    await admin.click('#audit-submit');
    await new Promise((r) => setTimeout(r, 300));
    const cells = await admin.locator('#audit-table tbody tr').first().locator('td').allTextContents();
    tx = cells[6] === 'confirmed' ? cells[5] : null;
    return tx;
  }, 60000, 500);
  await frame(admin, '4. Admin audit: the debit became an ERC-20 transfer, confirmed on chain');

  const receipt = await rpc('eth_getTransactionReceipt', [tx]);
  const log = receipt.logs.find((l) => l.topics[0].startsWith('0xddf252ad'));
  const decimals = Number(process.env.CHAIN_TOKEN_DECIMALS || 18);
  const tokens = (BigInt(log.data) / 10n ** BigInt(decimals)).toString();
  const lines = [
    `$ curl $CHAIN_RPC_URL -d '{"method":"eth_getTransactionReceipt",`,
    `         "params":["${tx}"]}'`, '',
    `status     ${receipt.status === '0x1' ? 'success' : receipt.status}`,
    `block      ${Number(receipt.blockNumber)}`,
    `token      ${receipt.to}`,
    `Transfer   from 0x${log.topics[1].slice(26)}`,
    `           to   0x${log.topics[2].slice(26)}  (the user's custodial address)`,
    `           ${tokens} tokens  =  the 10 credits of the upload`,
  ];
  const term = await (await browser.newContext(view)).newPage();
  await term.setContent('<!doctype html><body></body>');
  await term.evaluate((text) => {
    Object.assign(document.body.style, { margin: '0', background: '#0f1320', color: '#d6f5d6',
      font: '15px/1.6 "DejaVu Sans Mono", monospace', padding: '40px 28px', whiteSpace: 'pre' });
    document.body.textContent = text;
  }, lines.join('\n'));
  await frame(term, '5. The receipt, read straight from the chain node');

  execFileSync('convert', ['-delay', '120', '-loop', '0', path.join(frames, '*.png'),
    '+dither', '-colors', '96', '-layers', 'Optimize', OUT]);
  const size = statSync(OUT).size;
  console.log(`wrote ${OUT} (${(size / 1024).toFixed(0)} KiB, ${n} frames)`);
  if (size > 2 * 1024 * 1024) {
    console.error('demo.gif is over 2 MB');
    process.exitCode = 1;
  }
} finally {
  await close();
  rmSync(frames, { recursive: true, force: true });
}
