// Shared by tests/browser/ui.mjs and tests/demo/render_gif.mjs: launches the
// Debian chromium (never a downloaded browser) trusting exactly the stack's
// gateway certificate by its SPKI pin (no blanket ignoreHTTPSErrors), plus
// small polling helpers.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { chromium } = await import(path.join(REPO, 'services/node_modules/playwright-core/index.mjs'));

export const GATEWAY_URL = process.env.GATEWAY_URL || process.env.STACK_GATEWAY_URL;
export const GATEWAY_CA = process.env.GATEWAY_CA || process.env.GW_TLS_CERT_FILE;
if (!GATEWAY_URL || !GATEWAY_CA) {
  console.error('GATEWAY_URL and GATEWAY_CA must be set (. services/env.sh)');
  process.exit(2);
}

// base64(SHA-256(SubjectPublicKeyInfo DER)) of the gateway certificate.
export function spkiPin(certFile) {
  const pub = execFileSync('openssl', ['x509', '-in', certFile, '-pubkey', '-noout']);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
  return execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64');
}

// playwright itself starts chromium with a fresh temporary --user-data-dir
// (and refuses one given in args); the SPKI pin needs one, so it applies.
export async function launch() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--ignore-certificate-errors-spki-list=${spkiPin(GATEWAY_CA)}`],
  });
  const close = async () => {
    await browser.close().catch(() => {});
  };
  return { browser, close };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() until it returns a truthy value (returned) or ms pass (null).
export async function until(fn, ms = 10000, every = 200) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (_) { /* retry */ }
    if (Date.now() > end) return null;
    await sleep(every);
  }
}

export async function textIs(page, selector, want, ms = 10000) {
  return until(async () => (await page.locator(selector).textContent()) === want, ms);
}

// Plain HTTPS request to the gateway trusting only GATEWAY_CA.
export function gw(method, p, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(p, GATEWAY_URL), {
      method, headers, ca: readFileSync(GATEWAY_CA), timeout: 15000,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    if (body) req.write(body);
    req.end();
  });
}
