// oidc.mjs - local OpenID Connect provider standing in for Google in the
// e2e suite: oauth2-mock-server 8.2.3 (services/node_modules) used as a
// library, with a fixed issuer http://127.0.0.1:<port> and an RS256 key.
//
// Usage: node tests/e2e/standins/oidc.mjs <port>   (prints "ready <port>")
//
// The test chooses the claims of one login by adding parameters to the
// /authorize URL it visits (a real browser would not; they never reach
// auth-svc): test_sub, test_email, test_email_verified (true|false),
// test_iss, test_aud, test_exp (seconds from now, may be negative),
// test_kid (header kid), test_nonce (replaces the nonce). The choice is
// remembered per authorization code and applied in beforeTokenSigning to
// the id_token (and access token) issued for that code. The mock itself
// checks the PKCE code_verifier against the challenge it saw and echoes
// the nonce given to /authorize.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modDir = process.env.NODE_MODULES ||
  path.resolve(here, '..', '..', '..', 'services', 'node_modules');
const { OAuth2Server } = await import(
  pathToFileURL(path.join(modDir, 'oauth2-mock-server', 'dist', 'index.mjs')).href);

const port = Number(process.argv[2] || process.env.OAUTH_OIDC_PORT || 24590);
const server = new OAuth2Server();
// One signing key per local stack (kept in its state dir, never in the
// repository): auth-svc caches the JWKS and refetches on an unknown kid at
// most once a minute, so a fresh key on every start would make reruns fail.
const keyFile = process.env.OIDC_KEY_FILE ||
  (process.env.STACK_STATE_DIR ? path.join(process.env.STACK_STATE_DIR, 'oidc-standin-key.json') : '');
let jwk = null;
if (keyFile && fs.existsSync(keyFile)) jwk = JSON.parse(fs.readFileSync(keyFile, 'utf8'));
if (jwk) {
  await server.issuer.keys.add(jwk);
} else {
  jwk = await server.issuer.keys.generate('RS256');
  if (keyFile) fs.writeFileSync(keyFile, JSON.stringify(jwk), { mode: 0o600 });
}
server.issuer.url = `http://127.0.0.1:${port}`;

const byCode = new Map();

server.service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const code = redirect.url.searchParams.get('code');
  const q = req.query || {};
  const pick = {};
  for (const k of ['sub', 'email', 'email_verified', 'iss', 'aud', 'exp', 'kid', 'nonce']) {
    if (typeof q[`test_${k}`] === 'string') pick[k] = q[`test_${k}`];
  }
  if (code) byCode.set(code, pick);
  if (byCode.size > 1000) byCode.delete(byCode.keys().next().value);
});

server.service.on('beforeTokenSigning', (token, req) => {
  const code = req.body && req.body.code;
  const pick = (code && byCode.get(code)) || {};
  const p = token.payload;
  p.sub = pick.sub || 'oidc-default-sub';
  if (pick.email) p.email = pick.email;
  if (pick.email_verified !== undefined) p.email_verified = pick.email_verified === 'true';
  if (pick.iss) p.iss = pick.iss;
  if (pick.aud && p.aud !== undefined) p.aud = pick.aud;
  if (pick.exp) p.exp = Math.floor(Date.now() / 1000) + Number(pick.exp);
  if (pick.nonce && p.nonce !== undefined) p.nonce = pick.nonce;
  if (pick.kid) token.header.kid = pick.kid;
});

server.service.on('beforeUserinfo', (resp, req) => {
  resp.body = { sub: 'oidc-default-sub' };
});

await server.start(port, '127.0.0.1');
process.stdout.write(`ready ${port}\n`);
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, async () => { await server.stop(); process.exit(0); });
}
