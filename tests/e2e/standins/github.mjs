// github.mjs - GitHub-shaped OAuth 2 stand-in for the e2e suite (Node, no
// dependencies). Speaks GitHub's wire format on one port:
//   GET  /login/oauth/authorize   -> 302 redirect_uri?code=..&state=..
//   POST /login/oauth/access_token (form: client_id, client_secret, code,
//        redirect_uri, code_verifier; Accept: application/json)
//        -> 200 {access_token, token_type:"bearer", scope}; refusals are
//        200 {error:"bad_verification_code"|"incorrect_client_credentials"|
//        "redirect_uri_mismatch", error_description, error_uri} as GitHub does.
//        The code_verifier is checked against the S256 challenge seen at
//        /authorize (RFC 7636): a mismatch is refused.
//   GET  /user, /user/emails       (Authorization: Bearer|token <access_token>,
//        User-Agent required like api.github.com) in GitHub's JSON shapes.
//
// Usage: GITHUB_CLIENT_ID=.. GITHUB_CLIENT_SECRET=.. node github.mjs <port>
// The test picks the account of one login with extra /authorize parameters:
// test_id (numeric user id), test_login, test_email, test_verified
// (true|false, of the primary email), test_public_email.
import crypto from 'node:crypto';
import http from 'node:http';

const port = Number(process.argv[2] || process.env.OAUTH_GITHUB_PORT || 24591);
const clientId = process.env.GITHUB_CLIENT_ID || '';
const clientSecret = process.env.GITHUB_CLIENT_SECRET || '';
const codes = new Map();   // code -> {challenge, method, redirectUri, user, exp}
const tokens = new Map();  // access token -> user

const b64url = (buf) => buf.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function oauthError(res, error, description) {
  // GitHub answers token errors with 200 and an error object.
  json(res, 200, { error, error_description: description,
    error_uri: 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors' });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (c) => { data += c; if (data.length > 65536) reject(new Error('too large')); });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

function userFor(q) {
  const id = Number(q.get('test_id') || 1000001);
  const login = q.get('test_login') || `octo${id}`;
  const email = q.get('test_email') || `${login}@users.example.com`;
  return {
    id, login, email,
    verified: (q.get('test_verified') || 'true') === 'true',
    publicEmail: q.get('test_public_email') || null,
  };
}

function authorize(req, res, url) {
  const q = url.searchParams;
  const redirectUri = q.get('redirect_uri');
  if (q.get('client_id') !== clientId || !redirectUri) {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('Not Found');
    return;
  }
  const code = crypto.randomBytes(10).toString('hex');
  codes.set(code, {
    challenge: q.get('code_challenge'), method: q.get('code_challenge_method'),
    redirectUri, user: userFor(q), exp: Date.now() + 600000,
  });
  const to = new URL(redirectUri);
  to.searchParams.set('code', code);
  if (q.get('state') !== null) to.searchParams.set('state', q.get('state'));
  res.writeHead(302, { Location: to.href });
  res.end();
}

async function accessToken(req, res) {
  const body = new URLSearchParams(await readBody(req));
  if (body.get('client_id') !== clientId || body.get('client_secret') !== clientSecret) {
    oauthError(res, 'incorrect_client_credentials', 'The client_id and/or client_secret passed are incorrect.');
    return;
  }
  const code = body.get('code');
  const entry = codes.get(code);
  codes.delete(code); // single use
  if (!entry || entry.exp < Date.now()) {
    oauthError(res, 'bad_verification_code', 'The code passed is incorrect or expired.');
    return;
  }
  if (body.get('redirect_uri') && body.get('redirect_uri') !== entry.redirectUri) {
    oauthError(res, 'redirect_uri_mismatch', 'The redirect_uri MUST match the registered callback URL for this application.');
    return;
  }
  if (entry.challenge) {
    const verifier = body.get('code_verifier') || '';
    const ok = entry.method === 'S256' && /^[A-Za-z0-9._~-]{43,128}$/.test(verifier) &&
      b64url(crypto.createHash('sha256').update(verifier).digest()) === entry.challenge;
    if (!ok) {
      oauthError(res, 'bad_verification_code', 'The code_verifier does not match the code_challenge.');
      return;
    }
  }
  const token = `gho_${crypto.randomBytes(18).toString('hex')}`;
  tokens.set(token, entry.user);
  json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
}

function bearer(req) {
  const h = req.headers.authorization || '';
  const m = /^(?:Bearer|token) (\S+)$/i.exec(h);
  return m ? tokens.get(m[1]) : undefined;
}

function api(req, res, path) {
  if (!req.headers['user-agent']) {
    res.writeHead(403, { 'Content-Type': 'text/plain' });
    res.end('Request forbidden by administrative rules. Please make sure your request has a User-Agent header.');
    return;
  }
  const u = bearer(req);
  if (!u) {
    json(res, 401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' });
    return;
  }
  if (path === '/user') {
    json(res, 200, {
      login: u.login, id: u.id, node_id: `MDQ6VXNlcj${u.id}`,
      avatar_url: `https://avatars.githubusercontent.com/u/${u.id}?v=4`,
      html_url: `https://github.com/${u.login}`, type: 'User', site_admin: false,
      name: u.login, company: null, blog: '', location: null, email: u.publicEmail,
      hireable: null, bio: null, public_repos: 0, followers: 0, following: 0,
      created_at: '2020-01-01T00:00:00Z', updated_at: '2024-01-01T00:00:00Z',
    });
    return;
  }
  json(res, 200, [
    { email: `${u.id}+${u.login}@users.noreply.github.com`, primary: false, verified: true, visibility: null },
    { email: u.email, primary: true, verified: u.verified, visibility: 'public' },
  ]);
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') return authorize(req, res, url);
    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') return await accessToken(req, res);
    if (req.method === 'GET' && (url.pathname === '/user' || url.pathname === '/user/emails')) return api(req, res, url.pathname);
    json(res, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
  } catch (e) {
    json(res, 500, { message: String(e) });
  }
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`ready ${port}\n`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
