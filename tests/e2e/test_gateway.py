#!/usr/bin/env python3
"""Black-box suite of the gateway (issue 3, edge): what an attacker sees at the
public listener. JWT tricks (alg none, HS256 with the public key, header
jwk/jku/kid, expired, not yet valid, wrong aud/iss/typ, a refresh token as an
access token), API keys (never in the query string, scopes, never above the
owner, revoked within 1 s on every gateway), logout and admin revocation seen
at once by every gateway instance, identity headers a client cannot forge,
cookies that are never a session, rate limits against rotating
X-Forwarded-For with Retry-After, TLS 1.2+ only, HSTS and security headers,
readiness before the revocation list is loaded.

Besides the stack's gateway it starts its own gateway instances (same
upstreams, ports 23200-23299 range offset by the stack: see OWN_PORT_BASE)
with the production rate limits, so that limits are proved without slowing
other suites, and several instances prove that revocations reach every one.
It stops exactly the processes it started. Tokens with a valid signature
but wrong claims come from the test-only tool $BUILD_DIR/gateway/jwt-mint.
"""
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import client
from client import call, check, is_problem, new_email, poll_until, run, signup

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("BUILD_DIR", os.path.join(REPO, "build"))
GW_BIN = os.path.join(BUILD_DIR, "gateway", "gateway")
MINT = os.path.join(BUILD_DIR, "gateway", "jwt-mint")
STATE_DIR = os.environ.get("STACK_STATE_DIR", os.environ.get("STATE_DIR", os.path.join(REPO, ".run")))
# Own instances: 23K01.. where K is the stack's helper digit (GW_PORT 850K);
# the default stack (8443) uses 23001...
_gwp = int(os.environ.get("GW_PORT", "8443"))
OWN_PORT_BASE = 23000 + (100 * (_gwp - 8500) if 8500 <= _gwp <= 8509 else 0)

started = []  # Popen objects we own


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_json(o):
    return b64u(json.dumps(o, separators=(",", ":")).encode())


def jwt_payload(tok):
    p = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def mint(**claims):
    args = [MINT] + ["%s=%s" % kv for kv in claims.items()]
    out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=True)
    return out.stdout.strip()


def start_gateway(port, extra_env, log_name):
    env = dict(os.environ)
    env.update({"GW_PORT": str(port), "LOG_LEVEL": "info"})
    # production limits unless the caller overrides: drop the stack's relaxed ones
    for k in list(env):
        if k.startswith("GW_RL_"):
            del env[k]
    env.update(extra_env)
    log = open(os.path.join(STATE_DIR, "logs", log_name), "ab")
    p = subprocess.Popen([GW_BIN], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    started.append(p)
    return p


def wait_ready(base, timeout=20, path="/readyz"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = call("GET", path, base=base)
            if r.status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def stop_started():
    for p in started:
        if p.poll() is None:
            p.terminate()
    for p in started:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def balance(tok):
    r = call("GET", "/v1/credits", token=tok)
    return r.json().get("balance") if r.status == 200 else None


def nreports(tok):
    r = call("GET", "/v1/reports", token=tok)
    if r.status != 200:
        return None
    j = r.json()
    return len(j.get("items", j) if isinstance(j, dict) else j)


def login(email, pw, base=None, headers=None):
    return call("POST", "/v1/auth/login", {"email": email, "password": pw}, base=base,
                headers=headers)


def keyhdr(key):
    return {"Authorization": "ApiKey " + key}


# ---------------------------------------------------------------------------------------------


def transport():
    r = call("GET", "/healthz")
    hsts = r.headers.get("Strict-Transport-Security") or ""
    check("HSTS on answers (max-age >= 1 year)", "max-age=" in hsts
          and int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000, hsts)
    r = call("GET", "/v1/credits")
    h = r.headers
    check("401 answers carry HSTS, CSP default-src 'none', nosniff, frame denial, no-store",
          is_problem(r, 401) and "max-age" in (h.get("Strict-Transport-Security") or "")
          and "default-src 'none'" in (h.get("Content-Security-Policy") or "")
          and "frame-ancestors 'none'" in (h.get("Content-Security-Policy") or "")
          and h.get("X-Content-Type-Options") == "nosniff" and h.get("X-Frame-Options") == "DENY"
          and "no-store" in (h.get("Cache-Control") or ""), dict(h))

    host, port = client.GW.split("://")[1].split(":")
    port = int(port.split("/")[0])

    def handshake(maxv, minv=None):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        try:
            c.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        c.minimum_version = minv or ssl.TLSVersion.MINIMUM_SUPPORTED
        c.maximum_version = maxv
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                with c.wrap_socket(s, server_hostname=host) as t:
                    return t.version()
        except (ssl.SSLError, OSError) as e:
            return "error: %s" % e

    v = handshake(ssl.TLSVersion.TLSv1_1)
    check("TLS 1.1 refused by the server", v.startswith("error")
          and "no protocols available" not in v, v)
    v = handshake(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1)
    check("TLS 1.0 refused by the server", v.startswith("error")
          and "no protocols available" not in v, v)
    check("TLS 1.2 accepted", handshake(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2) == "TLSv1.2")
    check("TLS 1.3 accepted", handshake(ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3) == "TLSv1.3")
    # plain HTTP on the TLS port never gets an HTTP answer
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET /v1/credits HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(5)
            data = s.recv(100)
    except OSError:
        data = b""
    check("plain HTTP on the HTTPS port gets no HTTP answer", not data.startswith(b"HTTP/"), data)


def jwt_attacks(user_id, token, refresh, pubkey_hex):
    payload = jwt_payload(token)
    body = b64u_json(payload)
    garbage = b64u(os.urandom(64))
    before = balance(token)
    cases = []
    cases.append(("alg none", b64u_json({"alg": "none", "typ": "JWT"}) + "." + body + "."))
    cases.append(("alg None with signature", b64u_json({"alg": "None", "typ": "JWT"}) + "." + body
                  + "." + garbage))
    pk_raw = bytes.fromhex(pubkey_hex)
    for label, secret in (("raw public key", pk_raw), ("hex public key", pubkey_hex.encode()),
                          ("base64url public key", b64u(pk_raw).encode())):
        h = b64u_json({"alg": "HS256", "typ": "JWT"})
        sig = hmac.new(secret, (h + "." + body).encode(), hashlib.sha256).digest()
        cases.append(("HS256 signed with the " + label + " (algorithm confusion)",
                      h + "." + body + "." + b64u(sig)))
    for extra in ({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64u(os.urandom(32))}},
                  {"jku": "https://attacker.example/jwks.json"},
                  {"kid": "../../../../dev/null"},
                  {"kid": "' OR '1'='1"},
                  {"x5u": "https://attacker.example/cert.pem"},
                  {"crit": ["exp"]}):
        h = dict({"alg": "EdDSA", "typ": "JWT"}, **extra)
        cases.append(("header " + list(extra)[0] + " trick", b64u_json(h) + "." + body + "." + garbage))
    # the real signature with a modified header or payload
    hp, pp, sp = token.split(".")
    cases.append(("valid signature, header with kid added",
                  b64u_json({"alg": "EdDSA", "typ": "JWT", "kid": "x"}) + "." + pp + "." + sp))
    tampered = dict(payload, role="admin")
    cases.append(("valid signature, payload role changed to admin",
                  hp + "." + b64u_json(tampered) + "." + sp))
    now = int(time.time())
    cases.append(("expired (exp 10 min ago)", mint(sub=user_id, iat=now - 1500, exp=now - 600)))
    cases.append(("not yet valid (iat 10 min in the future)",
                  mint(sub=user_id, iat=now + 600, exp=now + 1500)))
    cases.append(("wrong audience", mint(sub=user_id, aud="another-api")))
    cases.append(("wrong issuer", mint(sub=user_id, iss="https://attacker.example")))
    cases.append(("typ refresh", mint(sub=user_id, typ="refresh")))
    cases.append(("unknown role", mint(sub=user_id, role="root")))
    cases.append(("service role in a session token", mint(sub=user_id, role="service")))
    cases.append(("refresh token used as an access token", refresh))
    for name, tok in cases:
        r = call("GET", "/v1/me", token=tok)
        check("JWT: %s -> 401" % name, is_problem(r, 401), (r.status, r.body[:120]))
    # a paid POST with a forged token changes nothing
    r = call("POST", "/v1/reports", {"kind": "usage", "format": "json"},
             token=b64u_json({"alg": "none", "typ": "JWT"}) + "." + body + ".")
    check("paid POST with alg none -> 401 and balance unchanged",
          is_problem(r, 401) and balance(token) == before, (r.status, before, balance(token)))
    # control: the tool's tokens are valid when the claims are right
    r = call("GET", "/v1/me", token=mint(sub=user_id))
    check("control: a correctly minted token is accepted", r.status == 200, r.status)
    # several Authorization headers / a cookie are never a session
    r = call("GET", "/v1/me", headers={"Authorization": "Bearer %s, Bearer %s" % (token, token)})
    check("two credentials in Authorization -> 401", is_problem(r, 401), r.status)
    for ck in ("__Host-refresh=" + refresh, "access_token=" + token, "session=" + token):
        r = call("GET", "/v1/me", headers={"Cookie": ck})
        check("cookie %s... is not a session -> 401" % ck.split("=")[0], is_problem(r, 401),
              r.status)


def identity_headers(user_id, token, admin_id):
    # a client cannot speak for someone else through internal headers
    r = call("GET", "/v1/me", token=token,
             headers={"X-Auth-User": admin_id, "X-Auth-Role": "admin", "X-Auth-Scope": "full",
                      "X-Internal-Secret": "x", "X-Client-IP": "10.9.8.7"})
    check("client-sent X-Auth-* / X-Internal-* are not forwarded (identity stays the caller's)",
          r.status == 200 and r.json().get("id") == user_id and r.json().get("role") == "user",
          (r.status, r.body[:200]))
    r = call("GET", "/v1/admin/users", token=token, headers={"X-Auth-Role": "admin"})
    check("X-Auth-Role: admin from a client does not open admin routes -> 403",
          is_problem(r, 403), r.status)


def api_keys(admin, user_id, user_tok, admin_id):
    def issue(owner, scope, tok=admin):
        r = call("POST", "/v1/admin/api-keys", {"owner_id": owner, "scope": scope,
                                                "name": "e2e-gw-" + scope}, token=tok)
        return r
    ks = {}
    for scope in ("read", "write", "admin"):
        r = issue(user_id, scope)
        if not check("admin issues a %s key for a user -> 201" % scope, r.status == 201,
                     (r.status, r.body[:200])):
            return
        ks[scope] = r.json()
    r = issue(admin_id, "admin")
    check("admin issues an admin key for itself -> 201", r.status == 201, r.status)
    admin_key = r.json()["key"] if r.status == 201 else None

    read, write, akey = ks["read"]["key"], ks["write"]["key"], ks["admin"]["key"]
    bal0, rep0 = balance(user_tok), nreports(user_tok)

    # never in the query string
    for q in ("api_key=" + read, "key=" + read, "x=" + read, "access_token=" + user_tok):
        r = call("GET", "/v1/credits?" + q)
        check("credential in the query string (%s...) -> 400" % q.split("=")[0], is_problem(r, 400),
              r.status)
    r = call("POST", "/v1/reports?api_key=" + write, {"kind": "usage", "format": "json"})
    check("paid POST with the key in the query -> 400, nothing charged",
          is_problem(r, 400) and balance(user_tok) == bal0 and nreports(user_tok) == rep0,
          (r.status, balance(user_tok)))

    r = call("GET", "/v1/credits", headers=keyhdr(read))
    check("read key reads (Authorization: ApiKey)", r.status == 200 and r.json().get("balance") == bal0,
          (r.status, r.body[:100]))
    r = call("GET", "/v1/credits", headers={"X-API-Key": read})
    check("read key reads (X-API-Key)", r.status == 200, r.status)
    r = call("GET", "/v1/me", headers=keyhdr(read))
    check("key identity is the owner", r.status == 200 and r.json().get("id") == user_id,
          (r.status, r.body[:100]))
    r = call("GET", "/v1/credits", headers=dict(keyhdr(read), **{"X-API-Key": read}))
    check("Authorization and X-API-Key together -> 401", is_problem(r, 401), r.status)
    r = call("GET", "/v1/credits", headers=keyhdr("sk_abcdefgh_" + b64u(os.urandom(32))))
    check("unknown key -> 401", is_problem(r, 401), r.status)
    r = call("GET", "/v1/credits", headers=keyhdr("sk_short"))
    check("malformed key -> 401", is_problem(r, 401), r.status)

    for path, body in (("/v1/reports", {"kind": "usage", "format": "json"}),
                       ("/v1/files", None)):
        r = call("POST", path, body, headers=keyhdr(read),
                 raw=b"hello" if body is None else None)
        check("read key cannot write %s -> 403" % path, is_problem(r, 403), r.status)
    check("read key's refused writes charged nothing and created nothing",
          balance(user_tok) == bal0 and nreports(user_tok) == rep0,
          (balance(user_tok), bal0, nreports(user_tok), rep0))

    for path in ("/v1/credits", "/v1/me", "/v1/reports", "/v1/credits/ledger"):
        r = call("GET", path, headers=keyhdr(write))
        check("write key cannot read %s -> 403" % path, is_problem(r, 403), r.status)
    r = call("POST", "/v1/reports", {"kind": "usage", "format": "json"}, headers=keyhdr(write))
    check("write key writes (paid report) -> 201", r.status == 201, (r.status, r.body[:200]))
    if r.status == 201:
        check("... and it cost the owner 5 credits", balance(user_tok) == bal0 - 5,
              (balance(user_tok), bal0))

    # never above the owner
    for method, path in (("GET", "/v1/admin/users"), ("GET", "/v1/admin/audit"),
                         ("GET", "/v1/admin/api-keys")):
        r = call(method, path, headers=keyhdr(akey))
        check("user's admin-scope key cannot %s %s -> 403" % (method, path), is_problem(r, 403),
              r.status)
    r = call("POST", "/v1/admin/api-keys", {"owner_id": user_id, "scope": "admin", "name": "x"},
             headers=keyhdr(akey))
    check("a key cannot mint keys -> 403", is_problem(r, 403), r.status)
    r = call("POST", "/v1/auth/logout", headers=keyhdr(akey))
    check("a key cannot log out (sessions only) -> 403", is_problem(r, 403), r.status)
    if admin_key:
        r = call("GET", "/v1/admin/users?limit=1", headers=keyhdr(admin_key))
        check("admin's admin-scope key reads admin routes", r.status == 200, r.status)
        r = call("POST", "/v1/admin/api-keys", {"owner_id": user_id, "scope": "read", "name": "x"},
                 headers=keyhdr(admin_key))
        check("even the admin's admin key cannot mint keys -> 403", is_problem(r, 403), r.status)
    r = call("GET", "/v1/service/metadata/%s" % uuid.uuid4(), token=user_tok)
    check("session on the API-key-only metadata route -> 403", is_problem(r, 403), r.status)
    return ks


def key_revocation(admin, ks, user_tok, gateways):
    """Revoked key refused within 1 s on every gateway (each had it cached)."""
    k = ks["read"]
    for base in gateways:
        r = call("GET", "/v1/credits", headers=keyhdr(k["key"]), base=base)
        check("read key works on %s before revocation" % base, r.status == 200, r.status)
    r = call("DELETE", "/v1/admin/api-keys/%s" % k["id"], token=admin)
    t_revoke = time.monotonic()
    check("admin revokes the key", r.status in (200, 204), (r.status, r.body[:200]))
    for base in gateways:
        el = poll_until(lambda b=base: call("GET", "/v1/credits", headers=keyhdr(k["key"]),
                                            base=b).status == 401, 3.0)
        total = time.monotonic() - t_revoke
        check("revoked key refused on %s within 1 s (%.0f ms)" % (base, (el or 9) * 1000),
              el is not None and total <= 1.0 + 0.2 * gateways.index(base), total)
    # stays refused after the cache TTL
    time.sleep(1.2)
    r = call("GET", "/v1/credits", headers=keyhdr(k["key"]))
    check("revoked key still refused after the cache lifetime", is_problem(r, 401), r.status)


def logout_and_revocation(admin, gateways):
    email, pw, r = signup()
    uid = r.json()["user"]["id"]
    s1 = login(email, pw).json()
    s2 = login(email, pw).json()
    t1, t2 = s1["access_token"], s2["access_token"]
    ok = all(call("GET", "/v1/me", token=t1, base=b).status == 200 for b in gateways)
    check("a fresh session works on every gateway instance", ok)
    # a client-sent X-Auth-Jti naming session 2 must not make logout revoke session 2
    r = call("POST", "/v1/auth/logout", token=t1,
             headers={"X-Auth-Jti": jwt_payload(t2)["jti"], "X-Auth-Exp": "9999999999",
                      "Origin": client.GW})
    t0 = time.monotonic()
    check("logout -> 204", r.status == 204, (r.status, r.body[:200]))
    for c in r.headers.get_all("Set-Cookie") or []:
        check("logout Set-Cookie flags (%s...)" % c[:20], cookie_ok(c), c)
    r = call("GET", "/v1/me", token=t1)
    check("the logged-out access token is refused at once by the gateway that saw the logout",
          is_problem(r, 401), r.status)
    for b in gateways[1:]:
        el = poll_until(lambda bb=b: call("GET", "/v1/me", token=t1, base=bb).status == 401, 3.0)
        total = time.monotonic() - t0
        check("... and by instance %s (%.0f ms after the logout)" % (b, total * 1000),
              el is not None and total <= 1.0, total)
    r = call("GET", "/v1/me", token=t2)
    check("the other session of that user still works (X-Auth-Jti from the client ignored)",
          r.status == 200, r.status)
    # admin revoke-tokens: every session of the user dies on every gateway
    r = call("POST", "/v1/admin/users/%s/revoke-tokens" % uid, token=admin)
    t0 = time.monotonic()
    check("admin revoke-tokens -> 2xx", 200 <= r.status < 300, (r.status, r.body[:200]))
    for b in gateways:
        el = poll_until(lambda bb=b: call("GET", "/v1/me", token=t2, base=bb).status == 401, 3.0)
        total = time.monotonic() - t0
        check("revoke-tokens kills the live access token on %s (%.0f ms)" % (b, total * 1000),
              el is not None and total <= 1.0, total)
    # a gateway started after the revocations loads the list first
    return uid, t1, t2


def cookie_ok(c):
    parts = [p.strip() for p in c.split(";")]
    attrs = {p.split("=")[0].lower(): p for p in parts[1:]}
    return (parts[0].startswith("__Host-") and "httponly" in attrs and "secure" in attrs
            and attrs.get("samesite", "").lower() == "samesite=strict"
            and attrs.get("path", "").lower() == "path=/" and "domain" not in attrs)


def cookies():
    email, pw, r = signup()
    seen = []
    for c in r.headers.get_all("Set-Cookie") or []:
        seen.append(("signup", c))
    r = login(email, pw)
    for c in r.headers.get_all("Set-Cookie") or []:
        seen.append(("login", c))
    rt = r.json()["refresh_token"]
    r = call("POST", "/v1/auth/refresh", {"refresh_token": rt})
    for c in r.headers.get_all("Set-Cookie") or []:
        seen.append(("refresh", c))
    check("login and refresh set cookies", any(w == "login" for w, _ in seen)
          and any(w == "refresh" for w, _ in seen), seen)
    for where, c in seen:
        check("%s Set-Cookie is __Host-, HttpOnly, Secure, SameSite=Strict, Path=/, no Domain"
              % where, cookie_ok(c), c)


def rate_limits(base_a, base_b):
    # --- instance A: no trusted proxy; X-Forwarded-For must not matter ---------------------
    statuses, retry = [], None
    for i in range(14):
        r = call("POST", "/v1/auth/login", {"email": new_email(), "password": "wrong password!"},
                 base=base_a, headers={"X-Forwarded-For": "198.51.100.%d" % (i + 1)})
        statuses.append(r.status)
        if r.status == 429 and retry is None:
            retry = r.headers.get("Retry-After")
            first429 = r
    n_ok = sum(1 for s in statuses[:10] if s == 401)
    check("login per IP: the first 10 pass to auth-svc (401 for unknown emails)", n_ok == 10,
          statuses)
    check("login per IP: requests 11..14 with rotating X-Forwarded-For -> 429",
          statuses[10:] == [429] * 4, statuses)
    check("429 is problem+json with Retry-After in whole seconds",
          retry is not None and retry.isdigit() and int(retry) >= 1 and is_problem(first429, 429),
          retry)
    r = call("POST", "/v1/payments/webhooks/stripe", raw=b"{}", base=base_a,
             headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"})
    check("webhooks have their own bucket (not limited by the login bucket)", r.status != 429,
          r.status)
    if retry is not None:
        time.sleep(int(retry) + 0.2)
        r = call("POST", "/v1/auth/login", {"email": new_email(), "password": "wrong password!"},
                 base=base_a)
        check("after Retry-After the next request is allowed again", r.status == 401, r.status)
        r = call("POST", "/v1/auth/login", {"email": new_email(), "password": "wrong password!"},
                 base=base_a)
        check("... and only that one (bucket refills at the configured rate)", r.status == 429,
              r.status)

    # signup per IP (invalid bodies: counted, nothing created)
    st = [call("POST", "/v1/auth/signup", {"email": "x"}, base=base_a).status for _ in range(6)]
    check("signup per IP: 5 pass, the 6th -> 429", st[:5] == [400] * 5 and st[5] == 429, st)

    # refresh per token (bogus token: 401 each, no state anywhere)
    bogus = b64u(os.urandom(32))
    st = [call("POST", "/v1/auth/refresh", {"refresh_token": bogus}, base=base_a).status
          for _ in range(11)]
    check("refresh per token: 10 pass, the 11th -> 429", st[:10] == [401] * 10 and st[10] == 429, st)

    # --- instance B: trusted proxy 127.0.0.1, so the last X-Forwarded-For hop is the client -----
    st = [call("POST", "/v1/auth/login", {"email": new_email(), "password": "wrong password!"},
               base=base_b, headers={"X-Forwarded-For": "203.0.113.%d" % (i + 1)}).status
          for i in range(12)]
    check("behind a trusted proxy, distinct clients get distinct buckets (12 x 401)",
          st == [401] * 12, st)
    victim = "victim-%s@example.com" % uuid.uuid4().hex[:8]
    st = [call("POST", "/v1/auth/login",
               {"email": victim.upper() if i % 2 else victim, "password": "guess%d" % i},
               base=base_b, headers={"X-Forwarded-For": "192.0.2.%d" % (i + 1)}).status
          for i in range(6)]
    check("login per email (case-insensitive) holds across rotating client addresses: "
          "5 pass, the 6th -> 429", all(s in (400, 401) for s in st[:5]) and st[5] == 429, st)
    st = [call("POST", "/v1/auth/login", {"email": new_email(), "password": "x"}, base=base_b,
               headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.200"}).status for _ in range(11)]
    check("behind a trusted proxy only the last hop counts (forged first hops ignored)",
          st[:10] == [401] * 10 and st[10] == 429, st)


def readiness(base_c):
    r = call("GET", "/healthz", base=base_c)
    check("a gateway that cannot load the revocation list is alive (/healthz 200)",
          r.status == 200, r.status)
    r = call("GET", "/readyz", base=base_c)
    check("... but not ready (/readyz 503)", r.status == 503, r.status)
    email, pw, _ = signup()
    tok = login(email, pw).json()["access_token"]
    r = call("GET", "/v1/me", token=tok, base=base_c)
    check("... and refuses authenticated requests until it has the list (503)",
          is_problem(r, 503), r.status)
    r = call("GET", "/readyz")
    check("the stack's gateway is ready (list loaded, upstreams up)", r.status == 200, r.status)


def main():
    for path in (GW_BIN, MINT):
        if not check("built: %s" % path, os.path.exists(path)):
            return
    port_a, port_b, port_c = OWN_PORT_BASE + 1, OWN_PORT_BASE + 2, OWN_PORT_BASE + 3
    base_a = "https://127.0.0.1:%d" % port_a
    base_b = "https://127.0.0.1:%d" % port_b
    base_c = "https://127.0.0.1:%d" % port_c
    try:
        start_gateway(port_a, {}, "gateway-e2e-a.log")
        start_gateway(port_b, {"GW_TRUSTED_PROXY": "127.0.0.1"},
                      "gateway-e2e-b.log")
        start_gateway(port_c, {"GW_AUTH_URL": "http://127.0.0.1:%d" % (OWN_PORT_BASE + 99)},
                      "gateway-e2e-c.log")
        ready = wait_ready(base_a) and wait_ready(base_b) and wait_ready(base_c, path="/healthz")
        if not check("own gateway instances started (A: production limits, B: trusted proxy, "
                     "C: auth-svc unreachable)", ready):
            return
        transport()
        admin = client.admin_token()
        admin_id = jwt_payload(admin)["sub"]
        email, pw, r = signup()
        user_id = r.json()["user"]["id"]
        lr = login(email, pw).json()
        token, refresh = lr["access_token"], lr["refresh_token"]
        jwt_attacks(user_id, token, refresh, os.environ["GW_JWT_PUBLIC_KEY"])
        identity_headers(user_id, token, admin_id)
        ks = api_keys(admin, user_id, token, admin_id)
        if ks:
            key_revocation(admin, ks, token, [client.GW, base_a, base_b])
        logout_and_revocation(admin, [client.GW, base_a, base_b])
        cookies()
        readiness(base_c)
        rate_limits(base_a, base_b)
    finally:
        stop_started()
        check("own gateway instances stopped", all(p.poll() is not None for p in started))


if __name__ == "__main__":
    run(main)
