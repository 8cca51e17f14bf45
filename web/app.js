// Credit SaaS web front end: plain JS, no build step, no dependencies.
// - The access token lives in this closure only (never in storage); the
//   refresh token is the HttpOnly __Host-refresh cookie, exchanged with
//   POST /v1/auth/refresh + X-Requested-With: fetch (auth-svc's CSRF check).
// - Every piece of server data reaches the page through textContent or
//   element properties: no innerHTML, no inline scripts or styles (CSP).
'use strict';
(() => {
  let token = null;
  let me = null;
  let refreshing = null;

  const $ = (id) => document.getElementById(id);

  function status(text, kind) {
    const s = $('status');
    s.textContent = text || '';
    s.className = 'status' + (kind ? ' ' + kind : '');
  }

  // One element with text (never HTML).
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function fillTable(id, rows, cells) {
    const tbody = $(id).querySelector('tbody');
    tbody.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement('tr');
      for (const c of cells(r)) tr.appendChild(c instanceof Node ? c : el('td', c));
      tbody.appendChild(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = el('td', 'nothing yet', 'hint');
      td.colSpan = $(id).querySelectorAll('thead th').length;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  const when = (ts) => (ts ? String(ts).replace('T', ' ').replace(/\.\d+Z?$|Z$/, '') : '');
  const size = (n) => (n >= 1048576 ? (n / 1048576).toFixed(1) + ' MiB'
    : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B');

  async function problemText(r) {
    try {
      const j = await r.json();
      return j.detail || j.title || ('HTTP ' + r.status);
    } catch (_) {
      return 'HTTP ' + r.status;
    }
  }

  // Cookie refresh (single flight). Returns true when a new access token arrived.
  function refresh() {
    if (!refreshing) {
      refreshing = fetch('/v1/auth/refresh', {
        method: 'POST', credentials: 'same-origin', headers: { 'X-Requested-With': 'fetch' },
      }).then(async (r) => {
        if (!r.ok) return false;
        const j = await r.json();
        token = j.access_token;
        me = j.user;
        return true;
      }).catch(() => false).finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  // API call with the bearer token; one refresh + retry on 401.
  async function api(method, path, opts = {}) {
    const send = () => {
      const headers = Object.assign({}, opts.headers || {});
      if (token) headers.Authorization = 'Bearer ' + token;
      let body = opts.body;
      if (opts.json !== undefined) {
        headers['Content-Type'] = 'application/json';
        body = JSON.stringify(opts.json);
      }
      return fetch(path, { method, headers, body, credentials: 'same-origin' });
    };
    let r = await send();
    if (r.status === 401 && token && await refresh()) r = await send();
    if (r.status === 401 && !opts.noLogout) {
      showAuth();
      throw new Error('your session ended; please log in again');
    }
    if (!r.ok) throw new Error(await problemText(r));
    return r;
  }
  const getJSON = async (path) => (await api('GET', path)).json();

  // ---------------------------------------------------------------- views
  function showAuth() {
    token = null;
    me = null;
    $('who').hidden = true;
    $('app-view').hidden = true;
    $('auth-view').hidden = false;
  }

  async function showApp() {
    if (!me || !me.email) me = await getJSON('/v1/me');
    $('me-email').textContent = me.email;
    $('me-role').textContent = me.role;
    $('who').hidden = false;
    $('auth-view').hidden = true;
    $('app-view').hidden = false;
    const admin = me.role === 'admin';
    for (const t of document.querySelectorAll('.admin-only')) t.hidden = !admin;
    const page = location.pathname;
    if (page === '/payments/success') status('Payment received; credits appear once the provider confirms it.', 'ok');
    else if (page === '/payments/cancel') status('Payment cancelled.');
    if (page !== '/') history.replaceState(null, '', '/');
    await Promise.all([loadBalance(), loadFiles(), loadReports()]);
    selectTab(location.hash.slice(1) || 'files-tab');
  }

  function selectTab(id) {
    const tab = document.querySelector('.tab[data-tab="' + CSS.escape(id) + '"]');
    if (!tab || tab.hidden) id = 'files-tab';
    for (const t of document.querySelectorAll('.tab')) t.classList.toggle('active', t.dataset.tab === id);
    for (const p of document.querySelectorAll('.panel')) p.hidden = p.id !== id;
    const loaders = { 'users-tab': loadUsers, 'keys-tab': loadKeys, 'audit-tab': loadAudit };
    if (loaders[id]) loaders[id]().catch((e) => status(e.message, 'error'));
  }

  async function loadBalance() {
    const j = await getJSON('/v1/credits');
    $('balance').textContent = String(j.balance);
  }

  async function loadFiles() {
    const j = await getJSON('/v1/files?limit=50');
    fillTable('files-table', j.items, (f) => [f.name, f.content_type, size(f.size_bytes),
      el('td', String(f.sha256).slice(0, 16) + '…', 'mono'), when(f.created_at)]);
  }

  async function loadReports() {
    const j = await getJSON('/v1/reports?limit=50');
    fillTable('reports-table', j.items, (rep) => {
      const td = document.createElement('td');
      const b = el('button', 'Download');
      b.type = 'button';
      b.className = 'download';
      b.dataset.id = rep.id;
      b.addEventListener('click', () => download(rep).catch((e) => status(e.message, 'error')));
      td.appendChild(b);
      return [when(rep.created_at), rep.kind, rep.format, size(rep.size_bytes), td];
    });
  }

  async function download(rep) {
    const r = await api('GET', '/v1/reports/' + encodeURIComponent(rep.id) + '/download');
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = 'report-' + rep.id + '.' + (rep.format === 'json' ? 'json' : 'csv');
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status('Report downloaded (2 credits).', 'ok');
    await loadBalance();
  }

  // ---------------------------------------------------------------- admin
  let users = [];
  async function loadUsers() {
    const j = await getJSON('/v1/admin/users?limit=100');
    users = j.items;
    fillTable('users-table', users, (u) => [u.email, u.role, u.balance, u.disabled ? 'yes' : 'no',
      when(u.created_at), el('td', u.id, 'mono')]);
    const sel = $('key-owner');
    const keep = sel.value;
    sel.replaceChildren();
    for (const u of users) {
      const o = el('option', u.email + ' (' + u.role + ')');
      o.value = u.id;
      sel.appendChild(o);
    }
    if (keep) sel.value = keep;
  }

  const emailOf = (id) => {
    const u = users.find((x) => x.id === id);
    return u ? u.email : id;
  };

  async function loadKeys() {
    if (users.length === 0) await loadUsers();
    const j = await getJSON('/v1/admin/api-keys');
    fillTable('keys-table', j.items, (k) => {
      const td = document.createElement('td');
      if (!k.revoked_at) {
        const b = el('button', 'Revoke');
        b.type = 'button';
        b.addEventListener('click', async () => {
          try {
            await api('DELETE', '/v1/admin/api-keys/' + encodeURIComponent(k.id));
            status('Key ' + k.prefix + ' revoked.', 'ok');
            await loadKeys();
          } catch (e) { status(e.message, 'error'); }
        });
        td.appendChild(b);
      }
      return [el('td', k.prefix, 'mono'), k.name, k.scope, emailOf(k.owner_id), when(k.created_at),
        k.revoked_at ? when(k.revoked_at) : '', td];
    });
  }

  async function loadAudit() {
    if (users.length === 0) await loadUsers();
    const q = new URLSearchParams({ limit: '100' });
    if ($('audit-user').value.trim()) q.set('user_id', $('audit-user').value.trim());
    if ($('audit-action').value.trim()) q.set('action', $('audit-action').value.trim());
    const [j, chain] = await Promise.all([getJSON('/v1/admin/audit?' + q),
      getJSON('/v1/admin/chain').catch(() => null)]);
    fillTable('audit-table', j.items, (a) => [when(a.ts), emailOf(a.user_id), a.action, a.cost,
      a.status, el('td', a.tx_hash || '', 'mono tx'),
      el('td', a.chain_status || '', 'chain chain-' + (a.chain_status || 'none'))]);
    $('chain-status').textContent = chain
      ? 'Chain ' + chain.chain_id + ': ' + chain.confirmed + ' confirmed, ' + chain.pending
        + ' pending, ' + chain.failed + ' failed transfers; token ' + chain.token_address
      : '';
  }

  // ---------------------------------------------------------------- events
  function on(id, ev, fn) {
    $(id).addEventListener(ev, async (e) => {
      e.preventDefault();
      const btn = e.target.querySelector ? e.target.querySelector('button[type=submit]') : null;
      if (btn) btn.disabled = true;
      try {
        await fn(e);
      } catch (err) {
        status(err.message, 'error');
      } finally {
        if (btn) btn.disabled = false;
      }
    });
  }

  async function enter(email, password, signup) {
    const r = await fetch(signup ? '/v1/auth/signup' : '/v1/auth/login', {
      method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password }),
    });
    if (!r.ok) throw new Error(await problemText(r));
    const j = await r.json();
    token = j.access_token;
    me = j.user;
    if (signup) {
      // Signup answers the refresh token in the body only: trade it once for
      // the HttpOnly cookie (the body copy is rotated out and dies).
      await fetch('/v1/auth/refresh', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'fetch' },
        body: JSON.stringify({ refresh_token: j.refresh_token }),
      }).then(async (rr) => {
        if (rr.ok) token = (await rr.json()).access_token;
      });
    }
    status(signup ? 'Welcome! Your account has 50 credits.' : 'Logged in.', 'ok');
    await showApp();
  }

  function init() {
    on('login-form', 'submit', () => enter($('login-email').value, $('login-password').value, false));
    on('signup-form', 'submit', () => enter($('signup-email').value, $('signup-password').value, true));
    $('logout').addEventListener('click', async () => {
      try { await api('POST', '/v1/auth/logout', { noLogout: true }); } catch (_) { /* ends anyway */ }
      showAuth();
      status('Logged out.');
    });
    for (const t of document.querySelectorAll('.tab')) {
      t.addEventListener('click', () => {
        history.replaceState(null, '', '#' + t.dataset.tab);
        selectTab(t.dataset.tab);
      });
    }
    on('upload-form', 'submit', async () => {
      const f = $('upload-file').files[0];
      if (!f) throw new Error('choose a file first');
      const r = await api('POST', '/v1/files', {
        body: f,
        headers: { 'Content-Type': f.type || 'application/octet-stream',
          'X-File-Name': encodeURIComponent(f.name), 'Idempotency-Key': crypto.randomUUID() },
      });
      const j = await r.json();
      status('Uploaded ' + j.name + ' (10 credits).', 'ok');
      $('upload-file').value = '';
      await Promise.all([loadBalance(), loadFiles()]);
    });
    on('report-form', 'submit', async () => {
      await api('POST', '/v1/reports', {
        json: { kind: $('report-kind').value, format: $('report-format').value },
        headers: { 'Idempotency-Key': crypto.randomUUID() },
      });
      status('Report generated (5 credits).', 'ok');
      await Promise.all([loadBalance(), loadReports()]);
    });
    on('buy-form', 'submit', async () => {
      const r = await api('POST', '/v1/payments/checkout', {
        json: { pack: $('buy-pack').value }, headers: { 'Idempotency-Key': crypto.randomUUID() },
      });
      const j = await r.json();
      const u = new URL(j.checkout_url, location.href);
      if (u.protocol !== 'https:' && u.hostname !== '127.0.0.1' && u.hostname !== 'localhost') {
        throw new Error('unexpected checkout address');
      }
      status('Redirecting to checkout…');
      location.assign(u.href);
    });
    $('users-reload').addEventListener('click', () => loadUsers().catch((e) => status(e.message, 'error')));
    on('key-form', 'submit', async () => {
      const r = await api('POST', '/v1/admin/api-keys', {
        json: { owner_id: $('key-owner').value, scope: $('key-scope').value, name: $('key-name').value },
      });
      const j = await r.json();
      $('key-value').textContent = j.key;
      $('key-once').hidden = false;
      status('Key ' + j.prefix + ' issued; it is shown only once.', 'ok');
      await loadKeys();
    });
    $('key-dismiss').addEventListener('click', () => {
      $('key-value').textContent = '';
      $('key-once').hidden = true;
    });
    on('audit-form', 'submit', loadAudit);

    refresh().then((ok) => (ok ? showApp() : showAuth())).catch((e) => {
      showAuth();
      status(e.message, 'error');
    });
  }

  document.addEventListener('DOMContentLoaded', init);
})();
