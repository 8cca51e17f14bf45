// Browser test of the web front end (web/, served by the gateway), in the
// Debian chromium driven by playwright-core:
//   a user signs up, uploads a file, generates and downloads a report and sees
//   the balance fall 50 -> 40 -> 35 -> 33; a reload keeps the session (cookie
//   refresh, token in memory only); buying credits goes through checkout; an
//   admin logs in and sees the user's debits in the audit view with their tx
//   hashes once confirmed on chain; an API key is issued (shown once) and
//   revoked. The page's CSP is checked to be served and enforced.
// Env: GATEWAY_URL, GATEWAY_CA, ADMIN_EMAIL, ADMIN_PASSWORD; optional
// UI_SCREENSHOT_DIR (PNG of the main pages), STRIPE_API_BASE +
// STRIPE_SECRET_KEY + STRIPE_WEBHOOK_SECRET (checkout through the local
// Stripe stand-in). Ends with "N passed, N failed".
import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY_URL, REPO, gw, launch, sleep, textIs, until } from './lib.mjs';

const SHOTS = process.env.UI_SCREENSHOT_DIR || '';
const ADMIN_EMAIL = process.env.ADMIN_EMAIL;
const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD;
const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log(`PASS ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail !== undefined ? ': ' + String(detail).slice(0, 300) : ''}`);
  }
}

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name + '.png') });
}

// Watches a page for script errors and CSP violations.
function watch(page, bag) {
  page.on('pageerror', (e) => bag.push('pageerror: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) bag.push(m.text());
  });
}

// Local Stripe stand-in on STRIPE_API_BASE's port (as tests/e2e/test_payments.py
// starts it); null when not configured or the port is taken.
async function startStripe() {
  const base = process.env.STRIPE_API_BASE || '';
  const u = base ? new URL(base) : null;
  if (!u || u.hostname !== '127.0.0.1' || !process.env.STRIPE_SECRET_KEY) return null;
  const proc = spawn('python3', [path.join(REPO, 'tests/e2e/standins/stripe_standin.py'),
    '--port', u.port, '--secret-key', process.env.STRIPE_SECRET_KEY], { stdio: 'ignore' });
  let exited = false;
  proc.on('exit', () => { exited = true; });
  const up = await until(async () => !exited && (await fetch(base + '/__standin/requests')).ok, 5000, 100);
  if (!up || exited) {
    proc.kill();
    return null;
  }
  return proc;
}

function stripeWebhook(sessionId, amount, userId) {
  const body = JSON.stringify({
    id: 'evt_' + randomUUID().replace(/-/g, ''), object: 'event', api_version: '2024-06-20',
    created: Math.floor(Date.now() / 1000), livemode: false, type: 'checkout.session.completed',
    data: { object: { id: sessionId, object: 'checkout.session', amount_subtotal: amount,
      amount_total: amount, currency: 'usd', mode: 'payment', payment_status: 'paid',
      status: 'complete', client_reference_id: userId, metadata: { user_id: userId } } },
  });
  const t = Math.floor(Date.now() / 1000);
  const mac = createHmac('sha256', process.env.STRIPE_WEBHOOK_SECRET).update(`${t}.${body}`).digest('hex');
  return gw('POST', '/v1/payments/webhooks/stripe', {
    body, headers: { 'Content-Type': 'application/json; charset=utf-8', 'Stripe-Signature': `t=${t},v1=${mac}` },
  });
}

async function userFlow(browser, email, password) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 }, acceptDownloads: true });
  const page = await ctx.newPage();
  const bad = [];
  watch(page, bad);

  const resp = await page.goto(GATEWAY_URL + '/');
  const h = resp ? resp.headers() : {};
  check('GET / answers the page with the page CSP', resp && resp.status() === 200
    && h['content-security-policy'] === PAGE_CSP && h['x-frame-options'] === 'DENY', JSON.stringify(h));
  const js = await gw('GET', '/app/app.js');
  check('the API keeps its own CSP; app.js is JavaScript under the page CSP',
    js.status === 200 && /javascript/.test(js.headers['content-type'])
    && js.headers['content-security-policy'] === PAGE_CSP
    && (await gw('GET', '/v1/credits')).headers['content-security-policy'] === "default-src 'none'; frame-ancestors 'none'");
  const trav = await gw('GET', '/app/..%2f..%2fREADME.md');
  check('paths outside the allow-list are 404', trav.status === 404 && (await gw('GET', '/app/secret')).status === 404, trav.status);
  await page.locator('#signup-form').waitFor({ state: 'visible' });
  check('the login page offers Google and GitHub sign-in',
    await page.locator('#oauth-google').getAttribute('href') === '/v1/auth/oauth/google/start'
    && await page.locator('#oauth-github').getAttribute('href') === '/v1/auth/oauth/github/start');
  const inlineRan = await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.__inline = 1';
    document.body.appendChild(s);
    return window.__inline === 1;
  });
  const reported = await until(async () => bad.some((m) => /inline script/.test(m)), 3000, 100);
  check('the CSP blocks (and reports) an injected inline script', !inlineRan && !!reported, bad.join(' | '));
  bad.length = 0; /* that violation was the point */
  await shot(page, 'login');

  await page.fill('#signup-email', email);
  await page.fill('#signup-password', password);
  await page.click('#signup-submit');
  check('sign up: balance 50', await textIs(page, '#balance', '50'), await page.locator('#status').textContent());
  check('the signed-in page shows the email', (await page.locator('#me-email').textContent()) === email);

  await page.setInputFiles('#upload-file', { name: 'notes.txt', mimeType: 'text/plain',
    buffer: Buffer.from('quarterly notes\nline two\n') });
  await page.click('#upload-submit');
  check('upload: balance 40', await textIs(page, '#balance', '40'), await page.locator('#status').textContent());
  check('the file list shows the upload',
    await until(async () => (await page.locator('#files-table tbody').textContent()).includes('notes.txt')));
  await shot(page, 'files');

  await page.click('.tab[data-tab="reports-tab"]');
  await page.selectOption('#report-kind', 'usage');
  await page.selectOption('#report-format', 'csv');
  await page.click('#report-submit');
  check('generate report: balance 35', await textIs(page, '#balance', '35'), await page.locator('#status').textContent());
  const dlButton = page.locator('#reports-table button.download').first();
  check('the report list shows the report', await until(async () => (await dlButton.count()) === 1));
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15000 }), dlButton.click()]);
  const content = readFileSync(await download.path(), 'utf8');
  check('download: the report is the usage CSV', content.startsWith('ts,kind,action') && content.includes('file.upload'),
    content.slice(0, 120));
  check('download: balance 33', await textIs(page, '#balance', '33'), await page.locator('#status').textContent());
  await shot(page, 'reports');

  const stored = await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie);
  check('no token in web storage or script-readable cookies', !/eyJ|rt_/.test(stored), stored);
  await page.reload();
  check('after a reload the session continues through the refresh cookie',
    await textIs(page, '#balance', '33') && (await page.locator('#me-email').textContent()) === email);

  // Buy credits: checkout, follow checkout_url (the provider page is
  // intercepted: no network), the provider's webhook, back to the app.
  const stripe = await startStripe();
  if (stripe) {
    try {
      await page.route('https://checkout.stripe.com/**', (route) => route.fulfill({
        status: 200, contentType: 'text/html', body: '<!doctype html><title>Stripe Checkout (stand-in)</title><h1>Pay</h1>',
      }));
      await page.click('.tab[data-tab="buy-tab"]');
      await page.selectOption('#buy-pack', 'small');
      await shot(page, 'buy');
      await Promise.all([page.waitForURL(/checkout\.stripe\.com/, { timeout: 15000 }), page.click('#buy-submit')]);
      const sid = new URL(page.url()).pathname.split('/').pop();
      check('buy credits: the browser follows checkout_url', /^cs_test_/.test(sid), page.url());
      const who = await gw('GET', '/v1/admin/users?limit=100', { headers: { Authorization: 'Bearer ' + (await adminToken()) } });
      const uid = (who.json.items.find((u) => u.email === email) || {}).id;
      const wh = await stripeWebhook(sid, 500, uid);
      check('the provider webhook credits the purchase', wh.status === 200, wh.text);
      await page.goto(GATEWAY_URL + '/payments/success?session_id=' + sid);
      check('back on /payments/success: balance 133', await textIs(page, '#balance', '133'));
    } finally {
      stripe.kill();
    }
  } else {
    console.log('SKIP buy credits: no local Stripe stand-in (STRIPE_API_BASE unset or its port busy)');
  }

  await page.click('#logout');
  await page.locator('#login-form').waitFor({ state: 'visible' });
  const after = await page.evaluate(() => fetch('/v1/auth/refresh', { method: 'POST', headers: { 'X-Requested-With': 'fetch' } }).then((r) => r.status));
  check('log out ends the session (refresh refused)', after === 401, after);
  check('no script errors or CSP violations on the user pages', bad.length === 0, bad.join(' | '));
  await ctx.close();
}

let adminTok = null;
async function adminToken() {
  if (!adminTok) {
    const r = await gw('POST', '/v1/auth/login', { headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }) });
    adminTok = r.json && r.json.access_token;
  }
  return adminTok;
}

async function adminFlow(browser, email) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await ctx.newPage();
  const bad = [];
  watch(page, bad);
  await page.goto(GATEWAY_URL + '/');
  await page.fill('#login-email', ADMIN_EMAIL);
  await page.fill('#login-password', ADMIN_PASSWORD);
  await page.click('#login-submit');
  check('admin logs in and sees the admin tabs',
    await until(async () => (await page.locator('#me-role').textContent()) === 'admin'
      && await page.locator('.tab[data-tab="audit-tab"]').isVisible()));

  await page.click('.tab[data-tab="users-tab"]');
  const row = page.locator('#users-table tbody tr', { hasText: email });
  check('the users view lists the user', await until(async () => (await row.count()) === 1));
  const uid = (await row.locator('td').nth(5).textContent()).trim();
  check('the users view shows the user\'s balance', /^(33|133)$/.test((await row.locator('td').nth(2).textContent()).trim()));
  await shot(page, 'admin-users');

  await page.click('.tab[data-tab="audit-tab"]');
  await page.fill('#audit-user', uid);
  const want = [10, 5, 2];
  let rows = [];
  const ok = await until(async () => {
    await page.click('#audit-submit');
    await sleep(300);
    rows = await page.locator('#audit-table tbody tr').evaluateAll((trs) => trs.map((tr) =>
      Array.from(tr.querySelectorAll('td'), (td) => td.textContent)));
    const debits = rows.filter((r) => r[4] === 'committed');
    return debits.length === 3
      && want.every((c) => debits.some((r) => Number(r[3]) === c))
      && debits.every((r) => /^0x[0-9a-f]{64}$/.test(r[5]) && r[6] === 'confirmed');
  }, 60000, 500);
  check('the audit view shows the three debits (10, 5, 2) with tx hashes, confirmed on chain', ok,
    JSON.stringify(rows.filter((r) => r[4] === 'committed')));
  check('the audit view shows the chain status',
    /confirmed, \d+ pending, \d+ failed/.test(await page.locator('#chain-status').textContent()));
  await shot(page, 'admin-audit');

  await page.click('.tab[data-tab="keys-tab"]');
  await until(async () => (await page.locator('#key-owner option').count()) > 0);
  await page.selectOption('#key-owner', uid);
  await page.selectOption('#key-scope', 'read');
  await page.fill('#key-name', 'ui-test');
  await page.click('#key-submit');
  const key = await until(async () => {
    const t = await page.locator('#key-value').textContent();
    return /^sk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$/.test(t) ? t : null;
  });
  check('issuing an API key shows it once', !!key);
  await shot(page, 'admin-keys');
  const meta = key ? await gw('GET', '/v1/files', { headers: { 'X-API-Key': key } }) : { status: 0 };
  check('the shown key works', meta.status === 200, meta.status);
  await page.click('#key-dismiss');
  check('the key is gone from the page after "Done"', !(await page.content()).includes(key || 'sk_'));
  const krow = page.locator('#keys-table tbody tr', { hasText: 'ui-test' });
  await krow.locator('button').click();
  check('revoking marks the key revoked', await until(async () =>
    (await krow.locator('td').nth(5).textContent()).trim() !== '' && (await krow.locator('button').count()) === 0));
  const gone = await until(async () => (await gw('GET', '/v1/files', { headers: { 'X-API-Key': key } })).status === 401, 5000);
  check('the revoked key is refused', !!gone);
  check('no script errors or CSP violations on the admin pages', bad.length === 0, bad.join(' | '));
  await ctx.close();
}

const { browser, close } = await launch();
try {
  const email = `ui-${randomUUID().slice(0, 8)}@example.com`;
  await userFlow(browser, email, 'a long browser password 1');
  if (ADMIN_EMAIL && ADMIN_PASSWORD) await adminFlow(browser, email);
  else check('ADMIN_EMAIL / ADMIN_PASSWORD set', false);
} catch (e) {
  check('browser run completed', false, e.stack || e);
} finally {
  await close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
