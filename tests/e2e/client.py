"""Shared helpers for the black-box suites in tests/e2e (HTTP client for the
gateway with TLS verified against the stack's certificate, chain JSON-RPC,
result counting). Environment (services/env.sh + tests/run.sh export it):
  GATEWAY_URL   default https://127.0.0.1:8443
  GATEWAY_CA    PEM of the gateway's self-signed certificate (TLS is verified)
  CHAIN_RPC_URL default http://127.0.0.1:8545
  ADMIN_EMAIL / ADMIN_PASSWORD  the bootstrap admin
  CHAIN_TOKEN_ADDRESS           the deployed token
  AUTH_PORT / CREDIT_PORT / STORAGE_PORT / CHAIN_PORT  the daemons (loopback)
Each suite prints one line per check and ends with "N passed, N failed"
(call client.finish()).
"""
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

GW = os.environ.get("GATEWAY_URL", "https://127.0.0.1:8443")
RPC = os.environ.get("CHAIN_RPC_URL", "http://127.0.0.1:8545")
CA = os.environ.get("GATEWAY_CA")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
DECIMALS = 10 ** 18

ctx = ssl.create_default_context(cafile=CA) if CA else ssl.create_default_context()
passed = 0
failed = 0
PORTS = {name: int(os.environ.get(var, default)) for name, var, default in (
    ("auth", "AUTH_PORT", 21001), ("credit", "CREDIT_PORT", 21002),
    ("storage", "STORAGE_PORT", 21003), ("chain", "CHAIN_PORT", 21004))}


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None


def call(method, path, body=None, token=None, headers=None, raw=None, base=None, tls=True):
    url = (base or GW) + path
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None and raw is None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, context=ctx if tls else None, timeout=60) as r:
            resp = Resp(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        resp = Resp(e.code, e.headers, e.read())
    _record(method, base, path, resp)
    return resp


RECORD = os.environ.get("E2E_RECORD")


def _record(method, base, path, resp):
    """Opt-in (E2E_RECORD=<file>): one JSON line per exchange for
    tests/checks/conformance.py. gateway=false for direct (plain HTTP) daemon calls;
    extra gateways the suites start speak HTTPS and count as the gateway."""
    if not RECORD:
        return
    ct = resp.headers.get("Content-Type", "") if resp.headers is not None else ""
    body = None
    if resp.body and ("json" in ct.split(";")[0]):
        try:
            body = json.loads(resp.body)
        except ValueError:
            body = None
    line = {"method": method, "path": path, "status": resp.status, "content_type": ct,
            "body": body, "gateway": (base or GW).startswith("https:"),
            "body_len": len(resp.body or b"")}
    with open(RECORD, "a") as f:
        f.write(json.dumps(line) + "\n")


def rpc(method, params):
    req = urllib.request.Request(RPC, data=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    if "error" in out:
        raise RuntimeError(out["error"])
    return out["result"]


# E2E_SANITIZED=1: the daemons under test are ASan+UBSan builds
# (tests/e2e/sanitized.sh). Checks that measure the daemons' memory (RSS)
# measure the sanitizer's allocator there, not our code: they are skipped.
SANITIZED = os.environ.get("E2E_SANITIZED") == "1"


def skip(name, why):
    """Reports a check that does not apply to this run; counts neither way."""
    print("skip - %s (%s)" % (name, why))


def poll_until(fn, timeout):
    """Calls fn() every 20 ms until it returns True; returns the elapsed seconds, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if fn():
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   - " + name)
    else:
        failed += 1
        print("FAIL - " + name + (": " + str(detail) if detail else ""))
    return cond


def is_problem(r, status):
    ct = r.headers.get("Content-Type", "")
    try:
        j = r.json()
    except ValueError:
        return False
    return (r.status == status and ct.startswith("application/problem+json")
            and isinstance(j, dict) and j.get("status") == status
            and all(k in j for k in ("type", "title", "status")))


def new_email():
    return "e2e-%s@example.com" % uuid.uuid4().hex[:12]


def signup(email=None, password="correct horse battery"):
    email = email or new_email()
    r = call("POST", "/v1/auth/signup", {"email": email, "password": password})
    return email, password, r


def admin_token():
    r = call("POST", "/v1/auth/login", {"email": os.environ["ADMIN_EMAIL"],
                                        "password": os.environ["ADMIN_PASSWORD"]})
    if r.status != 200:
        raise RuntimeError("admin login failed: %d %s" % (r.status, r.body[:200]))
    return r.json()["access_token"]


def audit_rows(admin, user_id, max_pages=50):
    """Every audit row of user_id (all pages); None when the audit is not readable."""
    rows, cursor = [], None
    for _ in range(max_pages):
        path = "/v1/admin/audit?user_id=%s&limit=100" % user_id
        if cursor:
            path += "&cursor=" + urllib.parse.quote(cursor, safe="")
        r = call("GET", path, token=admin)
        if r.status != 200:
            return None
        j = r.json()
        rows += [row for row in j["items"] if row.get("user_id") == user_id]
        cursor = j.get("next_cursor")
        if not cursor:
            break
    return rows


def wait_confirmed(admin, user_id, n, timeout_s):
    deadline = time.monotonic() + timeout_s
    rows = []
    while time.monotonic() < deadline:
        rows = [x for x in (audit_rows(admin, user_id) or [])
                if x.get("cost", 0) > 0 and x.get("chain_status") == "confirmed" and x.get("tx_hash")]
        if len(rows) >= n:
            return rows
        time.sleep(0.1)
    return rows


def verify_transfer(row, cost, master):
    """Receipt status 1 and exactly one Transfer log of cost*10^18 from master to to_address."""
    rc = rpc("eth_getTransactionReceipt", [row["tx_hash"]])
    if rc is None or rc.get("status") != "0x1":
        return False, "receipt %r" % (rc,)
    logs = [lg for lg in rc["logs"] if lg["topics"] and lg["topics"][0] == TRANSFER_TOPIC]
    if len(logs) != 1 or len(rc["logs"]) != 1:
        return False, "logs %r" % (rc["logs"],)
    lg = logs[0]
    token = os.environ.get("CHAIN_TOKEN_ADDRESS")
    if token and lg["address"].lower() != token.lower():
        return False, "token address %s" % lg["address"]
    frm = "0x" + lg["topics"][1][-40:]
    to = "0x" + lg["topics"][2][-40:]
    amount = int(lg["data"], 16)
    if master and frm.lower() != master.lower():
        return False, "from %s" % frm
    if row.get("to_address") and to.lower() != row["to_address"].lower():
        return False, "to %s != %s" % (to, row["to_address"])
    if amount != cost * DECIMALS:
        return False, "amount %d" % amount
    return True, to




def run(main):
    """Runs a suite's main(); a crash is a failure, never a silent pass."""
    global failed
    try:
        main()
    except Exception as e:  # noqa: BLE001
        failed += 1
        print("FAIL - suite crashed: %r" % (e,))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


def signed_call(port_name, method, path, body=None, user="", role="anon", scope="", headers=None):
    """Calls a daemon directly (loopback) with identity headers signed like the
    gateway does (lc/iauth.h v2, INTERNAL_SECRET from the stack's env; a
    Content-Type / Idempotency-Key in headers is signed too). For fixtures
    that must bypass the gateway's rate limits and for contract tests of
    internal routes; user-visible behaviour is tested through the gateway."""
    data = json.dumps(body).encode() if body is not None else b""
    extra = dict(headers or {})
    if body is not None:
        extra.setdefault("Content-Type", "application/json")
    hdrs = iauth_headers(method, path, data, user=user, role=role, scope=scope,
                         content_type=extra.get("Content-Type"),
                         idempotency_key=extra.get("Idempotency-Key"))
    hdrs.update(extra)
    return call(method, path, raw=data if body is not None else None, tls=False,
                base="http://127.0.0.1:%d" % PORTS[port_name], headers=hdrs)


def iauth_headers(method, path, body=b"", user="", role="anon", scope="", content_type=None,
                  idempotency_key=None, client_ip="", jti="", exp=0, rid=None, ts=None):
    """The signed identity headers of lc_iauth_sign (libcommon/include/lc/iauth.h,
    canonical v2) for one request; the caller sends Content-Type /
    Idempotency-Key itself with exactly the values given here (None = not
    sent). A fresh random X-Auth-Nonce each call: a daemon accepts it once."""
    import hashlib
    import hmac
    secret = os.environ["INTERNAL_SECRET"].encode()  # the hex text itself, not decoded
    rid = rid if rid is not None else str(uuid.uuid4())
    ts = str(int(time.time()) if ts is None else ts)
    nonce = os.urandom(16).hex()
    exps = str(exp) if exp else ""
    canon = "\n".join(["v2", method, path, user, role, scope, rid, ts, nonce,
                       hashlib.sha256(body or b"").hexdigest(), content_type or "",
                       idempotency_key or "", client_ip, jti, exps])
    hdrs = {"X-Request-Id": rid, "X-Auth-User": user, "X-Auth-Role": role,
            "X-Auth-Scope": scope, "X-Auth-Ts": ts, "X-Auth-Nonce": nonce,
            "X-Auth-Sig": hmac.new(secret, canon.encode(), hashlib.sha256).hexdigest()}
    if client_ip:
        hdrs["X-Client-IP"] = client_ip
    if jti:
        hdrs["X-Auth-Jti"] = jti
    if exps:
        hdrs["X-Auth-Exp"] = exps
    return hdrs
