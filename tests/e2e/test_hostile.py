#!/usr/bin/env python3
"""Hostile input sweep (issue 9): every public route of gateway/src/gw_routes.c,
called as the caller it needs (fresh user session, admin session, API key),
receives wrong JSON types, missing and extra fields, huge and negative numbers,
deep nesting, invalid UTF-8, overlong strings, SQL injection strings, CR/LF in
the headers the gateway forwards (Idempotency-Key, X-File-Name, Stripe and
Razorpay signatures, cookies), wrong Content-Type, bodies over GW_MAX_BODY, bad
path ids and bad query parameters.

Each answer must be a 4xx application/problem+json whose body.status equals the
status, within 1 s; never a 5xx or a dropped connection. After each route group
the victim's balance, ledger length, audit row count, files, reports and API
keys are identical to before (nothing changed).

Every request goes over a raw TLS socket (urllib refuses CR/LF and invalid bytes
in headers and paths), verified against the stack's CA. These exchanges are not
recorded for the conformance check (hostile answers are not the documented
contract); statuses that proto/openapi.yaml does not document for the route are
printed as "note:" lines. A found-but-unfixed bug goes to KNOWN and prints as a
"known:" line (not counted as passed).
"""
import json
import os
import re
import socket
import ssl
import time
import urllib.parse
import uuid

import client
from client import call, check, run

HOST_PORT = urllib.parse.urlsplit(client.GW)
HOST, PORT = HOST_PORT.hostname, HOST_PORT.port or 443
# Time bounds are the product's (normal builds); against ASan+UBSan daemons
# (E2E_SANITIZED=1) every request costs several times more: bounds x 4.
SLOW = 4 if client.SANITIZED else 1
LIMIT_S = 1.0 * SLOW
MAX_BODY = int(os.environ.get("GW_MAX_BODY", str(10 * 1024 * 1024 + 65536)))

# (group, label substring) -> reason: hostile inputs that are known to be
# mis-answered and not fixed here; they print as "known:" and count neither way.
KNOWN = {
    # A NUL inside a header value is cut by libmicrohttpd 0.9.75 itself while it
    # parses ("k\x00x" reaches every callback as "k", exactly like a client that
    # sent "k"; no API shows the rest), so the gateway cannot refuse it. A
    # non-ASCII key, which ulfius dropped, is refused by the gateway's
    # raw-request guard since 2026-12-06 (lc_svc_guard). README "Trade-offs".
    ("admin top-up", "Idempotency-Key 'k\\x00x'"):
        "a NUL in a header value truncates it inside libmicrohttpd (k\\x00x = k): the "
        "top-up runs under key k instead of a 400",
}

SQLI = ["' OR 1=1 --", "'; DROP TABLE users; --", "\" OR \"\"=\"", "1; SELECT pg_sleep(5)"]
HUGE_NUMS = ["9223372036854775808", "-9223372036854775809", "18446744073709551616", "1e308",
             "1" + "0" * 100, "-1", "-1e308", "1.5", "0"]
WRONG = ["null", "true", "0", "-1", "9223372036854775808", "1e308", "\"\"", "[]", "{}",
         "[\"a\"]", "{\"a\":1}", "\"%s\"" % ("x" * 70000)]
BAD_IDS = ["not-a-uuid", "%00", "..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "x" * 5000,
           "%27%20OR%201%3D1%20--", "00000000-0000-0000-0000-00000000000g", "%ff%fe",
           "00000000-0000-0000-0000-000000000000%00", "-1", "9223372036854775808"]
BAD_QUERIES = ["limit=-1", "limit=1e9", "limit=1000000000", "limit=abc", "limit=9223372036854775808",
               "limit=", "cursor=garbage", "cursor=%00%ff", "cursor=" + "A" * 5000,
               "cursor=%27%20OR%201%3D1%20--", "limit=10&limit=20&cursor=x"]
DEEP = b"[" * 10000 + b"]" * 10000
DEEP_OBJ = b'{"a":' * 5000 + b"1" + b"}" * 5000

openapi = None
undocumented = set()
known_hits = []
results = {"n": 0, "slowest": 0.0}


# ------------------------------------------------------------------ raw HTTPS

def raw_request(method, path, headers=None, body=b"", timeout=5.0):
    """Sends one HTTP/1.1 request byte-exactly; returns (status, headers dict
    lower-cased, body bytes, seconds) or (None, error, b"", seconds)."""
    if isinstance(body, str):
        body = body.encode()
    if isinstance(path, str):
        path = path.encode("latin-1", "surrogateescape")
    hs = [(b"Host", ("%s:%d" % (HOST, PORT)).encode()), (b"Connection", b"close")]
    for k, v in (headers or {}).items():
        hs.append((k.encode() if isinstance(k, str) else k,
                   v.encode("latin-1", "surrogateescape") if isinstance(v, str) else v))
    if body or method in ("POST", "PATCH", "PUT"):
        hs.append((b"Content-Length", str(len(body)).encode()))
    head = method.encode() + b" " + path + b" HTTP/1.1\r\n" + b"".join(
        k + b": " + v + b"\r\n" for k, v in hs) + b"\r\n"
    t0 = time.monotonic()
    try:
        s = socket.create_connection((HOST, PORT), timeout=timeout)
        s = client.ctx.wrap_socket(s, server_hostname=HOST)
        s.settimeout(timeout)
    except OSError as e:
        return None, "connect: %r" % (e,), b"", time.monotonic() - t0
    data = b""
    try:
        try:
            s.sendall(head + body)
        except OSError:
            pass  # the server may answer (413) and close before reading everything
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, ssl.SSLError) as e:
                if data:
                    break
                return None, "reset: %r" % (e,), b"", time.monotonic() - t0
            if not chunk:
                break
            data += chunk
            if _complete(data):
                break
    except socket.timeout:
        return None, "timeout after %.1fs (%d bytes)" % (timeout, len(data)), data, time.monotonic() - t0
    finally:
        try:
            s.close()
        except OSError:
            pass
    dt = time.monotonic() - t0
    if not data:
        return None, "connection closed without an answer", b"", dt
    return _parse(data) + (dt,)


def _split(data):
    i = data.find(b"\r\n\r\n")
    return (data, b"") if i < 0 else (data[:i], data[i + 4:])


def _complete(data):
    head, rest = _split(data)
    if head is data:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m:
        return len(rest) >= int(m.group(1))
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        return rest.endswith(b"0\r\n\r\n")
    return False


def _parse(data):
    head, body = _split(data)
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, "bad status line %r" % lines[0][:80], b""
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().decode("latin-1").lower()] = v.strip().decode("latin-1")
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        out, rest = b"", body
        while rest:
            n, _, rest = rest.partition(b"\r\n")
            size = int(n.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return status, hdrs, body


# ------------------------------------------------------------------ the probe

def documented(method, path, status):
    """The OpenAPI template of path when status is NOT documented for it, else None."""
    p = path.split("?")[0]
    for tmpl, item in openapi["paths"].items():
        rx = "^" + re.sub(r"\\\{[^/}]+\\\}", "[^/]+", re.escape(tmpl)) + "$"
        if re.match(rx, p) and method.lower() in item:
            return None if str(status) in item[method.lower()]["responses"] else tmpl
    return None  # unknown path: a 404 is what the conformance check expects


def probe(group, label, method, path, headers=None, body=b"", auth=None, allow=None, fails=None):
    """One hostile request; checks a 4xx problem+json within LIMIT_S.
    allow: statuses accepted besides any 4xx (none by default)."""
    h = dict(headers or {})
    if auth:
        h.update(auth)
    st, hd, bd, dt = raw_request(method, path, h, body)
    if st is not None and dt > LIMIT_S:  # a shared CI host stalls now and then: one retry
        print("note: slow answer %.2fs, retried: %s %s %s" % (dt, method, path[:80], label))
        st, hd, bd, dt = raw_request(method, path, h, body)
    results["n"] += 1
    results["slowest"] = max(results["slowest"], dt)
    why = None
    if st is None:
        why = "no answer: %s" % hd
    elif not (400 <= st < 500) and st not in (allow or ()):
        why = "status %d: %r" % (st, bd[:160])
    elif 400 <= st < 500:
        ct = hd.get("content-type", "")
        try:
            j = json.loads(bd) if bd else None
        except ValueError:
            j = None
        if not ct.startswith("application/problem+json"):
            why = "status %d content-type %r: %r" % (st, ct, bd[:120])
        elif not isinstance(j, dict) or j.get("status") != st or "title" not in j or "type" not in j:
            why = "status %d, problem body %r" % (st, bd[:160])
    if why is None and dt > LIMIT_S:
        why = "slow: %.2fs (status %s)" % (dt, st)
    shown = path if len(path) < 90 else path[:80] + "...(%d)" % len(path)
    name = "%s: %s %s %s" % (group, method, shown, label)
    if st is not None and 400 <= st < 500:
        tmpl = documented(method, path, st)
        if tmpl:
            undocumented.add("%s %s -> %d" % (method, tmpl, st))
    for (kg, klabel), reason in KNOWN.items():
        if kg == group and klabel in label:
            if why is not None:
                known_hits.append("%s -> %s (%s)" % (name, why, reason))
                print("known: %s -> %s [%s]" % (name, why, reason))
                return st
    check(name + " -> 4xx problem < %gs" % LIMIT_S, why is None, why)
    return st


def body_sweep(group, method, path, auth, valid, extra_headers=None, skip=(), no_missing=False,
               optional=()):
    """valid: a dict that would be a well-formed body (never sent as is); each
    field in turn gets wrong types, is dropped; an extra field; hostile shapes."""
    ct = {"Content-Type": "application/json"}
    ct.update(extra_headers or {})
    cases = []
    for k in valid:
        for w in WRONG:
            if k in skip and w in skip[k]:
                continue
            d = dict(valid)
            d[k] = "\x00W"
            cases.append(("%s=%s" % (k, w[:20]), json.dumps(d).replace('"\\u0000W"', w).encode()))
        if no_missing or k in optional:
            continue
        d = dict(valid)
        del d[k]
        cases.append(("missing %s" % k, json.dumps(d).encode()))
    cases += [
        ("extra field", json.dumps(dict(valid, extra_field=1)).encode()),
        ("extra __proto__", json.dumps(dict(valid, __proto__={"admin": True})).encode()),
        ("array body", json.dumps([valid]).encode()),
        ("number body", b"9223372036854775808"),
        ("huge number body", b"1" + b"0" * 100),
        ("string body", b'"x"'),
        ("null body", b"null"),
        ("empty body", b""),
        ("not json", b"not json"),
        ("truncated json", json.dumps(valid).encode()[:-1]),
        ("trailing garbage", json.dumps(valid).encode() + b" x"),
        ("nested 10000 arrays", DEEP),
        ("nested 5000 objects", DEEP_OBJ),
        ("invalid utf-8 key", b'{"\xff\xfe":1}'),
        ("NUL in json", b'{"a\x00":1}'),
        ("BOM + json", b"\xef\xbb\xbf" + json.dumps(dict(valid, extra_field=1)).encode()),
    ]
    for k, v in valid.items():
        if isinstance(v, str):
            for bad in (b'"\xff\xfe\xfd"', b'"\xc0\xaf"', b'"\xed\xa0\x80"'):
                d = dict(valid)
                d[k] = "\x00W"
                cases.append(("%s invalid utf-8 %r" % (k, bad[1:3]),
                              json.dumps(d).encode().replace(b'"\\u0000W"', bad)))
            d = dict(valid)
            d[k] = "y" * 100000
            cases.append(("%s overlong" % k, json.dumps(d).encode()))
    for label, b in cases:
        probe(group, label, method, path, ct, b, auth)
    for label, cth in (("text/plain", "text/plain"), ("no content-type", None),
                       ("form", "application/x-www-form-urlencoded"),
                       ("json; charset=latin1", "application/json; charset=iso-8859-1")):
        hh = dict(extra_headers or {})
        if cth:
            hh["Content-Type"] = cth
        # a body that would be wrong anyway: the answer must still be a 4xx
        probe(group, "Content-Type " + label, method, path, hh,
              json.dumps(dict(valid, extra_field=1)).encode(), auth)
    probe(group, "body > GW_MAX_BODY", method, path, ct, b'{"a":"' + b"x" * (MAX_BODY + 10) + b'"}', auth)


def path_sweep(group, method, tmpl, auth, body=None, headers=None):
    for bad in BAD_IDS:
        h = dict(headers or {})
        b = b""
        if body is not None:
            h["Content-Type"] = "application/json"
            b = json.dumps(body).encode()
        label = "bad id" + (" nil-uuid%00" if bad.startswith("0000") and bad.endswith("%00") else "")
        probe(group, label, method, tmpl.replace(":id", bad), h, b, auth)


def query_sweep(group, path, auth, extra=(), ok200=()):
    """ok200: filters where an empty 200 answer is also right (nothing matches)."""
    for q in list(BAD_QUERIES) + list(extra) + list(ok200):
        probe(group, "?" + q[:40], "GET", path + "?" + q, None, b"", auth,
              allow=(200,) if q in ok200 else None)


# ------------------------------------------------------------------ fixtures

def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def new_user():
    email, pw, r = client.signup()
    if r.status != 201:
        raise RuntimeError("signup failed: %d %s" % (r.status, r.body[:200]))
    j = r.json()
    return j["user"]["id"], email, pw, j["access_token"]


def listing(path, auth_headers):
    items, cursor = [], None
    for _ in range(100):
        p = path + ("&" if "?" in path else "?") + "limit=100" + (
            "&cursor=" + urllib.parse.quote(cursor, safe="") if cursor else "")
        r = call("GET", p, headers=auth_headers)
        if r.status != 200:
            return None
        j = r.json()
        items += j["items"]
        cursor = j.get("next_cursor")
        if not cursor:
            break
    return items


def snapshot(admin, uid, utok):
    r = call("GET", "/v1/credits", token=utok)
    led = listing("/v1/credits/ledger", bearer(utok))
    aud = client.audit_rows(admin, uid)
    files = listing("/v1/files", bearer(utok))
    reps = listing("/v1/reports", bearer(utok))
    keys = listing("/v1/admin/api-keys?owner_id=%s" % uid, bearer(admin))
    u = call("GET", "/v1/admin/users/%s" % uid, token=admin)
    uj = u.json() if u.status == 200 else None
    return {"balance": r.json().get("balance") if r.status == 200 else None,
            "ledger": None if led is None else len(led),
            "audit": None if aud is None else len(aud),
            "files": None if files is None else len(files),
            "reports": None if reps is None else len(reps),
            "keys": None if keys is None else sorted(k.get("id") for k in keys),
            "user": None if uj is None else (uj.get("role"), uj.get("disabled"))}


def unchanged(group, before, admin, uid, utok):
    after = snapshot(admin, uid, utok)
    check("%s: nothing changed (balance, ledger, audit, files, reports, keys, user)" % group,
          after == before and None not in before.values(), "before %r after %r" % (before, after))
    return after


# ------------------------------------------------------------------ the sweep

def main():
    global openapi
    import yaml
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "proto", "openapi.yaml")) as f:
        openapi = yaml.safe_load(f)
    t_start = time.monotonic()

    admin = client.admin_token()
    uid, email, pw, utok = new_user()
    U, A = bearer(utok), bearer(admin)
    r = call("POST", "/v1/admin/api-keys", {"owner_id": uid, "scope": "read", "name": "hostile-read"},
             token=admin)
    check("setup: admin issues a read API key", r.status == 201, (r.status, r.body[:200]))
    kread = {"Authorization": "ApiKey " + r.json()["key"]} if r.status == 201 else None
    r = call("POST", "/v1/admin/api-keys", {"owner_id": uid, "scope": "write", "name": "hostile-write"},
             token=admin)
    kwrite = {"Authorization": "ApiKey " + r.json()["key"]} if r.status == 201 else None
    # a real file and report of the victim, so that id-based routes have a target
    r = call("POST", "/v1/files", raw=b"hello hostile\n", token=utok,
             headers={"Content-Type": "application/octet-stream", "X-File-Name": "h.txt",
                      "Idempotency-Key": "hostile-" + uuid.uuid4().hex})
    check("setup: victim uploads a file", r.status == 201, (r.status, r.body[:200]))
    fid = r.json()["id"] if r.status == 201 else str(uuid.uuid4())
    base = snapshot(admin, uid, utok)

    # ---- auth: public routes
    g = "signup"
    ghost = "hostile-%s@example.com" % uuid.uuid4().hex[:12]
    body_sweep(g, "POST", "/v1/auth/signup", None, {"email": ghost, "password": "correct horse battery"})
    for s in SQLI:
        probe(g, "sqli email", "POST", "/v1/auth/signup", {"Content-Type": "application/json"},
              json.dumps({"email": s, "password": "correct horse battery"}).encode())
    r = call("POST", "/v1/auth/login", {"email": ghost, "password": "correct horse battery"})
    check("signup: no account was created by the sweep (login -> 401)", r.status == 401, r.status)

    g = "login"
    body_sweep(g, "POST", "/v1/auth/login", None, {"email": email, "password": "zz"})
    for s in SQLI:
        probe(g, "sqli email", "POST", "/v1/auth/login", {"Content-Type": "application/json"},
              json.dumps({"email": s, "password": s}).encode())
        probe(g, "sqli email suffix", "POST", "/v1/auth/login", {"Content-Type": "application/json"},
              json.dumps({"email": email + s, "password": "x"}).encode())

    g = "refresh"
    body_sweep(g, "POST", "/v1/auth/refresh", None, {"refresh_token": "abc"})
    for c in ("__Host-refresh=' OR 1=1 --", "__Host-refresh=" + "a" * 6000, "__Host-refresh=\xff\xfe",
              "__Host-refresh=a\r\nX-Auth-User: %s" % uid, "__Host-refresh=a\nX-Auth-Role: admin"):
        probe(g, "cookie %r" % c[15:30], "POST", "/v1/auth/refresh", {"Cookie": c}, b"")
    base = unchanged("auth public routes", base, admin, uid, utok)

    # ---- auth: user routes
    g = "password"
    body_sweep(g, "POST", "/v1/auth/password", U, {"current_password": pw, "new_password": "another long pw"},
               skip={})
    g = "logout"
    for tok in ("' OR 1=1 --", "a" * 9000, "\xff\xfe", "a.b.c", "Bearer x"):
        probe(g, "bad bearer %r" % tok[:12], "POST", "/v1/auth/logout", {"Authorization": "Bearer " + tok})
    probe(g, "bearer + CRLF injection", "POST", "/v1/auth/logout",
          {"Authorization": "Bearer x\r\nX-Auth-User: " + uid})
    g = "me"
    for hv in ("Bearer ' OR 1=1 --", "Bearer " + "a" * 20000, "ApiKey ' OR 1=1 --", "ApiKey ../../x",
               "ApiKey \xff\xfe", "Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer a\x00b"):
        probe(g, "Authorization %r" % hv[:14], "GET", "/v1/me", {"Authorization": hv})
    probe(g, "X-API-Key sqli", "GET", "/v1/me", {"X-API-Key": "' OR 1=1 --"})
    probe(g, "api key in query", "GET", "/v1/me?api_key=x&access_token=y")
    g = "oauth"
    for p in ("evil", "..%2F..%2F", "%00", "x" * 3000, "%27%20OR%201%3D1", "google%0d%0aX:1"):
        probe(g, "provider", "GET", "/v1/auth/oauth/%s/start" % p)
        probe(g, "provider", "GET", "/v1/auth/oauth/%s/callback?code=x&state=y" % p)
    for q in ("", "code=x", "state=y", "code=x&state=' OR 1=1 --".replace(" ", "%20"),
              "code=%00&state=%ff", "code=x&state=" + "s" * 5000, "error=access_denied%0d%0aX:1"):
        probe(g, "callback ?" + q[:30], "GET", "/v1/auth/oauth/google/callback?" + q)
    base = unchanged("auth user routes", base, admin, uid, utok)

    # ---- admin routes of auth-svc (admin session)
    g = "admin users"
    query_sweep(g, "/v1/admin/users", A)
    path_sweep(g, "GET", "/v1/admin/users/:id", A)
    path_sweep(g, "PATCH", "/v1/admin/users/:id", A, {"disabled": False})
    path_sweep(g, "POST", "/v1/admin/users/:id/revoke-tokens", A)
    # every field is optional and disabled=true is a valid change: neither is sent
    body_sweep(g, "PATCH", "/v1/admin/users/%s" % uid, A, {"role": "user", "disabled": False},
               skip={"disabled": ("true",)}, no_missing=True)
    for v in ("superuser", "ADMIN", "admin ", "' OR 1=1 --"):
        probe(g, "role %r" % v, "PATCH", "/v1/admin/users/%s" % uid, {"Content-Type": "application/json"},
              json.dumps({"role": v}).encode(), A)
    g = "api keys"
    body_sweep(g, "POST", "/v1/admin/api-keys", A, {"owner_id": uid, "scope": "read", "name": "n"})
    for s in SQLI + ["x" * 201]:
        probe(g, "owner_id/scope %r" % s[:12], "POST", "/v1/admin/api-keys",
              {"Content-Type": "application/json"},
              json.dumps({"owner_id": s, "scope": "read"}).encode(), A)
        probe(g, "scope %r" % s[:12], "POST", "/v1/admin/api-keys", {"Content-Type": "application/json"},
              json.dumps({"owner_id": uid, "scope": s}).encode(), A)
    probe(g, "name overlong", "POST", "/v1/admin/api-keys", {"Content-Type": "application/json"},
          json.dumps({"owner_id": uid, "scope": "read", "name": "n" * 201}).encode(), A)
    query_sweep(g, "/v1/admin/api-keys", A, ["owner_id=%27%20OR%201%3D1%20--", "owner_id=not-a-uuid",
                                             "owner_id=%00"])
    path_sweep(g, "DELETE", "/v1/admin/api-keys/:id", A)
    if kread:
        probe(g, "read key on admin route", "GET", "/v1/admin/users", None, b"", kread)
        probe(g, "read key issues keys", "POST", "/v1/admin/api-keys", {"Content-Type": "application/json"},
              json.dumps({"owner_id": uid, "scope": "admin"}).encode(), kread)
    base = unchanged("admin routes (auth-svc)", base, admin, uid, utok)

    # ---- credit-svc
    g = "credits"
    query_sweep(g, "/v1/credits/ledger", U)
    if kread:
        query_sweep(g + " (read key)", "/v1/credits/ledger", kread)
    g = "checkout"
    idem = {"Idempotency-Key": "hostile-" + uuid.uuid4().hex}
    body_sweep(g, "POST", "/v1/payments/checkout", U, {"pack": "small", "provider": "stripe"},
               extra_headers=idem, optional=("provider",))
    for v in ("huge", "SMALL", "' OR 1=1 --", "small\x00"):
        probe(g, "pack %r" % v, "POST", "/v1/payments/checkout",
              dict(idem, **{"Content-Type": "application/json"}), json.dumps({"pack": v}).encode(), U)
    probe(g, "provider paypal", "POST", "/v1/payments/checkout",
          dict(idem, **{"Content-Type": "application/json"}),
          json.dumps({"pack": "small", "provider": "paypal"}).encode(), U)
    # Idempotency-Key: CR/LF, overlong, invalid bytes (body wrong too: must never reach a provider)
    bad_body = json.dumps({"pack": "nope"}).encode()
    for k in ("k\r\nX-Auth-User: " + uid, "k\nX-Auth-Role: admin", "k\rx", "k" * 300, "\xff\xfe",
              "' OR 1=1 --", "k\x00x", ""):
        probe(g, "Idempotency-Key %r" % k[:14], "POST", "/v1/payments/checkout",
              {"Content-Type": "application/json", "Idempotency-Key": k}, bad_body, U)
    if kwrite:
        probe(g, "API key cannot check out", "POST", "/v1/payments/checkout",
              dict(idem, **{"Content-Type": "application/json"}), json.dumps({"pack": "small"}).encode(),
              kwrite)
    g = "webhooks"
    for prov, sig in (("stripe", "Stripe-Signature"), ("razorpay", "X-Razorpay-Signature")):
        p = "/v1/payments/webhooks/" + prov
        ev = {"id": "evt_hostile", "type": "checkout.session.completed",
              "data": {"object": {"metadata": {"user_id": uid}, "amount_total": 10 ** 20}}}
        for sv in (None, "", "t=1,v1=deadbeef", "' OR 1=1 --", "t=9223372036854775808,v1=00",
                   "t=-1,v1=" + "0" * 64, "x" * 8000, "t=1\r\nX-Auth-Role: admin", "\xff\xfe"):
            h = {"Content-Type": "application/json"}
            if sv is not None:
                h[sig] = sv
            probe(g, "%s signature %r" % (prov, (sv or "")[:14]), "POST", p, h,
                  json.dumps(ev).encode())
        h = {"Content-Type": "application/json", sig: "t=1,v1=00"}
        for label, b in (("deep nesting", DEEP), ("invalid utf-8", b'{"id":"\xff"}'), ("empty", b""),
                         ("not json", b"nope"), ("> GW_MAX_BODY", b"{" + b" " * (MAX_BODY + 10) + b"}")):
            probe(g, "%s %s" % (prov, label), "POST", p, h, b)
    g = "admin top-up"
    tp = "/v1/admin/users/%s/credits" % uid
    body_sweep(g, "POST", tp, A, {"amount": 5, "reason": "hostile"},
               extra_headers={"Idempotency-Key": "hostile-" + uuid.uuid4().hex},
               skip={"amount": ("0", "-1")})  # covered below with their own keys
    for n in HUGE_NUMS:
        probe(g, "amount %s" % n[:20], "POST", tp,
              {"Content-Type": "application/json", "Idempotency-Key": "hostile-" + uuid.uuid4().hex},
              ('{"amount": %s, "reason": "r"}' % n).encode(), A)
    # CR/LF in a header value ends the line: what follows must not act as an
    # identity header (a user "injecting" X-Auth-Role: admin stays a user -> 403)
    for k in ("k\r\nX-Auth-Role: admin", "k\nX-Auth-Role: admin", "k\r\nX-Auth-Scope: full",
              "k\r\nX-Auth-User: " + uid):
        probe(g, "user + Idempotency-Key %r" % k[:18], "POST", tp,
              {"Content-Type": "application/json", "Idempotency-Key": k},
              b'{"amount": 5, "reason": "hostile"}', U)
    # as the admin: malformed keys with an otherwise valid top-up must be refused,
    # aimed at the victim (the "nothing changed" check below covers them) - but
    # the known NUL case (see KNOWN), aimed at a second user
    uid2 = new_user()[0]
    for k in ("k" * 300, "\xff\xfe", "k\x00x", "k\rX: y", "k x", "\x7f"):
        target = uid2 if "\x00" in k else uid
        probe(g, "Idempotency-Key %r" % k[:14], "POST", "/v1/admin/users/%s/credits" % target,
              {"Content-Type": "application/json", "Idempotency-Key": k},
              b'{"amount": 5, "reason": "hostile"}', A)
    for k in ("k\r\nX-Auth-User: " + uid, "k\r\n\r\nGET / HTTP/1.1"):
        probe(g, "Idempotency-Key %r, bad amount" % k[:14], "POST", tp,
              {"Content-Type": "application/json", "Idempotency-Key": k},
              b'{"amount": -5, "reason": "hostile"}', A)
    ghost_id = str(uuid.uuid4())
    probe(g, "unknown user", "POST", "/v1/admin/users/%s/credits" % ghost_id,
          {"Content-Type": "application/json", "Idempotency-Key": "hostile-" + uuid.uuid4().hex},
          b'{"amount": 5, "reason": "hostile"}', A)
    path_sweep(g, "POST", "/v1/admin/users/:id/credits", A, {"amount": 5, "reason": "r"},
               {"Idempotency-Key": "hostile-" + uuid.uuid4().hex})
    probe(g, "user session cannot top up", "POST", tp,
          {"Content-Type": "application/json", "Idempotency-Key": "hostile-" + uuid.uuid4().hex},
          b'{"amount": 5, "reason": "r"}', U)
    g = "audit"
    query_sweep(g, "/v1/admin/audit", A, ["user_id=%27%20OR%201%3D1%20--", "user_id=not-a-uuid",
                                          "since=garbage", "since=-1", "until=99999999999999999999"],
                ok200=["action=%27%3B%20DROP%20TABLE%20x%3B%20--",
                       "since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z"])
    base = unchanged("credit-svc routes", base, admin, uid, utok)

    # ---- storage-svc
    g = "files"
    up = "/v1/files"
    # (empty bodies: a CR/LF ends the header line, so the rest of the request
    # would be a valid upload; what matters is that nothing is stored or charged)
    for k in ("k\r\nX-Auth-User: " + uid, "k\nX-Auth-Role: admin", "k" * 300, "\xff\xfe", "k\x00x"):
        probe(g, "Idempotency-Key %r" % k[:14], "POST", up,
              {"Content-Type": "application/octet-stream", "Idempotency-Key": k, "X-File-Name": "a.txt"},
              b"", U)
    for n in ("a\r\nX-Auth-User: " + uid, "a\nContent-Disposition: attachment", "a\rb", "x" * 5000,
              "\xff\xfe", "a\x00b", "../../etc/passwd"[:0] + "a\r\n\r\nGET / HTTP/1.1"):
        probe(g, "X-File-Name %r" % n[:14], "POST", up,
              {"Content-Type": "application/octet-stream", "X-File-Name": n,
               "Idempotency-Key": "hostile-" + uuid.uuid4().hex}, b"", U)
    # names are sanitised (a valid upload may answer 201): a second user takes
    # these, and no stored name may keep a control character
    _, _, _, tok2 = new_user()
    U2, g2 = bearer(tok2), "files (2nd user)"
    for q in ("name=%0d%0aX-Injected:%201", "name=" + "n" * 5000, "name=%00", "name=%ff%fe",
              "name=a%0d%0aContent-Disposition:%20inline"):
        probe(g2, "?" + q[:24], "POST", up + "?" + q,
              {"Content-Type": "application/octet-stream", "Idempotency-Key": "hostile-" + uuid.uuid4().hex},
              b"payload", U2, allow=(201,))
    probe(g2, "multipart, no file part", "POST", up,
          {"Content-Type": "multipart/form-data; boundary=x", "Idempotency-Key": "hostile-" + uuid.uuid4().hex},
          b"--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhi\r\n--x--\r\n", U2)
    names = [f.get("name", "") for f in (listing("/v1/files", U2) or [])]
    check("files: no stored name keeps CR, LF or NUL", names and not any(
        c in n for n in names for c in "\r\n\x00"), names)
    for fl in listing("/v1/files", U2) or []:
        st, hd, _, _ = raw_request("GET", "/v1/files/%s/content" % fl["id"], U2)
        check("files: download of %r has one clean Content-Disposition" % fl["name"][:20],
              st == 200 and "\n" not in hd.get("content-disposition", "")
              and "x-injected" not in hd, (st, hd.get("content-disposition")))
    probe(g, "empty upload", "POST", up, {"Content-Type": "application/octet-stream",
                                          "Idempotency-Key": "hostile-" + uuid.uuid4().hex,
                                          "X-File-Name": "e.txt"}, b"", U)
    probe(g, "multipart without a boundary", "POST", up,
          {"Content-Type": "multipart/form-data", "Idempotency-Key": "hostile-" + uuid.uuid4().hex},
          b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhi\r\n--x--\r\n", U)
    probe(g, "multipart truncated", "POST", up,
          {"Content-Type": "multipart/form-data; boundary=x", "Idempotency-Key": "hostile-" + uuid.uuid4().hex},
          b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhi", U)
    probe(g, "upload > GW_MAX_BODY", "POST", up,
          {"Content-Type": "application/octet-stream", "Idempotency-Key": "hostile-" + uuid.uuid4().hex,
           "X-File-Name": "big.bin"}, b"x" * (MAX_BODY + 10), U)
    if kread:
        probe(g, "read key cannot upload", "POST", up,
              {"Content-Type": "application/octet-stream", "Idempotency-Key": "hostile-" + uuid.uuid4().hex,
               "X-File-Name": "a.txt"}, b"payload", kread)
    query_sweep(g, "/v1/files", U)
    path_sweep(g, "GET", "/v1/files/:id", U)
    path_sweep(g, "GET", "/v1/files/:id/content", U)
    path_sweep(g, "DELETE", "/v1/files/:id", U)
    if kread:
        path_sweep(g + " (read key)", "GET", "/v1/files/:id", kread)
    g = "reports"
    rv = {"kind": "usage", "format": "json", "from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}
    body_sweep(g, "POST", "/v1/reports", U, rv,
               extra_headers={"Idempotency-Key": "hostile-" + uuid.uuid4().hex},
               skip={"from": ("null",), "to": ("null",)}, optional=("from", "to"))
    for k, v in (("kind", "' OR 1=1 --"), ("format", "xml"), ("from", "garbage"), ("to", "2020-13-45"),
                 ("from", "99999-01-01T00:00:00Z"), ("from", "2031-01-01T00:00:00Z")):
        probe(g, "%s=%r" % (k, v), "POST", "/v1/reports",
              {"Content-Type": "application/json", "Idempotency-Key": "hostile-" + uuid.uuid4().hex},
              json.dumps(dict(rv, **{k: v})).encode(), U)
    for k in ("k\r\nX-Auth-User: " + uid, "k" * 300, "\xff\xfe"):
        probe(g, "Idempotency-Key %r" % k[:14], "POST", "/v1/reports",
              {"Content-Type": "application/json", "Idempotency-Key": k},
              json.dumps(dict(rv, format="xml")).encode(), U)
    query_sweep(g, "/v1/reports", U)
    path_sweep(g, "GET", "/v1/reports/:id", U)
    path_sweep(g, "GET", "/v1/reports/:id/download", U)
    g = "service metadata"
    if kread:
        path_sweep(g, "GET", "/v1/service/metadata/:id", kread)
    probe(g, "session token refused", "GET", "/v1/service/metadata/%s" % fid, None, b"", U)
    if kwrite:
        probe(g, "write key refused", "GET", "/v1/service/metadata/%s" % fid, None, b"", kwrite)
    base = unchanged("storage-svc routes", base, admin, uid, utok)

    # ---- chain-svc
    g = "chain"
    probe(g, "user session", "GET", "/v1/admin/chain", None, b"", U)
    for q in ("since=garbage", "until=-1", "since=99999999999999999999", "since=%00",
              "since=2030-01-01T00:00:00Z&until=2020-01-01T00:00:00Z", "since=%27%20OR%201%3D1%20--"):
        probe(g, "?" + q[:30], "GET", "/v1/admin/reconcile?" + q, None, b"", A)
    probe(g, "user session", "GET", "/v1/admin/reconcile", None, b"", U)
    base = unchanged("chain-svc routes", base, admin, uid, utok)

    # ---- the whole stack still answers
    r = call("GET", "/v1/me", token=utok)
    check("after the sweep: the victim's session still works", r.status == 200, r.status)
    r = call("GET", "/readyz")
    check("after the sweep: the gateway is ready", r.status == 200, r.status)
    for line in sorted(undocumented):
        print("note: status not documented in proto/openapi.yaml: " + line)
    total = time.monotonic() - t_start
    print("hostile: %d requests, slowest %.3fs, %d known, %.1fs in all"
          % (results["n"], results["slowest"], len(known_hits), total))
    check("the sweep took under %d s" % (90 * SLOW), total < 90 * SLOW, "%.1fs" % total)


if __name__ == "__main__":
    run(main)
