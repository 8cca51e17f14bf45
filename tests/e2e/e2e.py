#!/usr/bin/env python3
"""Black-box end-to-end tests against the running local stack.

Drives only the public HTTPS API (gateway) and the chain's JSON-RPC, exactly as
an outside client would. Environment (services/env.sh exports it):
  GATEWAY_URL   default https://127.0.0.1:8443
  GATEWAY_CA    PEM of the gateway's self-signed certificate (TLS is verified)
  CHAIN_RPC_URL default http://127.0.0.1:8545
  ADMIN_EMAIL / ADMIN_PASSWORD  the bootstrap admin
  CHAIN_TOKEN_ADDRESS           the deployed token
Prints one line per check and ends with "N passed, N failed".
"""
import concurrent.futures
import json
import os
import ssl
import sys
import time
import urllib.error
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
            return Resp(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Resp(e.code, e.headers, e.read())


def rpc(method, params):
    req = urllib.request.Request(RPC, data=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    if "error" in out:
        raise RuntimeError(out["error"])
    return out["result"]


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


def audit_rows(admin, user_id):
    r = call("GET", "/v1/admin/audit?user_id=%s&limit=100" % user_id, token=admin)
    if r.status != 200:
        return None
    return [row for row in r.json()["items"] if row.get("user_id") == user_id]


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


def main():
    master = os.environ.get("CHAIN_MASTER_ADDRESS", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")

    # --- transport and error format -------------------------------------------------------
    r = call("GET", "/healthz")
    check("gateway /healthz over TLS (certificate verified)", r.status == 200)
    check("HSTS header on every answer", "max-age" in (r.headers.get("Strict-Transport-Security") or ""))
    r = call("GET", "/v1/credits")
    check("no credentials -> 401 problem+json", is_problem(r, 401), r.status)
    r = call("GET", "/v1/credits", token="eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.e30.")
    check("alg:none token -> 401", is_problem(r, 401), r.status)
    r = call("GET", "/v1/no-such-route")
    check("unknown route -> 404 problem+json", is_problem(r, 404), (r.status, r.body[:100]))

    # --- signup / login / refresh ---------------------------------------------------------
    email, pw, r = signup()
    ok = check("signup -> 201", r.status == 201, (r.status, r.body[:200]))
    if not ok:
        return
    j = r.json()
    check("signup body has user, access_token, refresh_token, token_type, expires_in",
          all(k in j for k in ("user", "access_token", "refresh_token", "token_type", "expires_in"))
          and j["user"]["email"] == email and j["user"]["role"] == "user"
          and j["token_type"] == "Bearer" and j["expires_in"] == 900, j)
    user_id = j["user"]["id"]
    _, _, r = signup(email)
    check("duplicate signup -> 409 problem", is_problem(r, 409), r.status)
    r = call("POST", "/v1/auth/signup", {"email": new_email(), "password": pw, "role": "admin"})
    check("signup with unknown field -> 400", is_problem(r, 400), r.status)
    r = call("POST", "/v1/auth/login", {"email": email, "password": pw})
    check("login -> 200", r.status == 200, r.status)
    cookie = r.headers.get("Set-Cookie") or ""
    check("login sets __Host-refresh cookie HttpOnly; Secure; SameSite=Strict; Path=/",
          cookie.startswith("__Host-refresh=") and "HttpOnly" in cookie and "Secure" in cookie
          and "SameSite=Strict" in cookie and "Path=/" in cookie, cookie)
    token = r.json()["access_token"]
    refresh = r.json()["refresh_token"]
    r1 = call("POST", "/v1/auth/login", {"email": email, "password": "wrong password!"})
    r2 = call("POST", "/v1/auth/login", {"email": new_email(), "password": "wrong password!"})
    check("wrong password and unknown email answer identically (401, same body)",
          r1.status == 401 and r2.status == 401 and r1.body == r2.body, (r1.status, r2.status))
    r = call("POST", "/v1/auth/refresh", {"refresh_token": refresh})
    check("refresh -> 200 with a new pair", r.status == 200 and r.json()["refresh_token"] != refresh,
          r.status)
    if r.status == 200:
        token = r.json()["access_token"]
    r = call("POST", "/v1/auth/refresh", {"refresh_token": refresh})
    check("reusing a rotated refresh token -> 401", r.status == 401, r.status)
    r = call("GET", "/v1/me", token=token)
    check("GET /v1/me", r.status == 200 and r.json().get("id") == user_id, (r.status, r.body[:200]))
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    r = call("GET", "/v1/credits", token=tampered)
    check("tampered JWT signature -> 401", is_problem(r, 401), r.status)

    # --- daemons refuse unsigned calls ----------------------------------------------------
    for name, port, path in (("auth-svc", 21001, "/v1/me"), ("credit-svc", 21002, "/v1/credits"),
                             ("storage-svc", 21003, "/v1/reports"),
                             ("chain-svc", 21004, "/internal/status"),
                             ("credit-svc (unknown path)", 21002, "/internal/nothing")):
        try:
            r = call("GET", path, base="http://127.0.0.1:%d" % port, tls=False,
                     headers={"X-Auth-User": user_id, "X-Auth-Role": "admin"})
            check("%s called directly without a valid signature -> 401" % name, r.status == 401,
                  r.status)
        except OSError as e:
            check("%s reachable on loopback" % name, False, e)

    # --- the paid action, end to end ------------------------------------------------------
    r = call("GET", "/v1/credits", token=token)
    check("new account starts with 50 credits", r.status == 200 and r.json()["balance"] == 50,
          (r.status, r.body[:200]))
    admin = admin_token()
    r = call("GET", "/v1/admin/audit", token=token)
    check("user calling admin audit -> 403", is_problem(r, 403), r.status)

    t0 = time.monotonic()
    r = call("POST", "/v1/reports", {"kind": "usage", "format": "json"}, token=token)
    check("POST /v1/reports -> 201", r.status == 201, (r.status, r.body[:300]))
    r = call("GET", "/v1/credits", token=token)
    check("balance 45 after the report", r.status == 200 and r.json()["balance"] == 45, r.body[:200])
    rows = wait_confirmed(admin, user_id, 1, 10)
    latency = time.monotonic() - t0
    if check("within 10 s the admin audit shows the debit with a confirmed tx hash", len(rows) == 1,
             audit_rows(admin, user_id)):
        row = rows[0]
        check("audit row: action, cost 5, debit_id, request_id",
              row.get("cost") == 5 and row.get("debit_id") and row.get("request_id")
              and row.get("action") == "report.generate", row)
        ok, detail = verify_transfer(row, 5, master)
        check("on-chain receipt status 1, one Transfer of 5*10^18 from master to the user's address",
              ok, detail)
        print("info - request -> confirmed tx hash in audit: %.0f ms" % (latency * 1000))
    r = call("GET", "/v1/reports", token=token)
    check("GET /v1/reports lists the report", r.status == 200 and len(r.json()["items"]) == 1,
          r.body[:200])

    # --- 11 concurrent paid requests on 50 credits ----------------------------------------
    email2, _, r = signup()
    tok2 = r.json()["access_token"]
    uid2 = r.json()["user"]["id"]

    def report(_):
        return call("POST", "/v1/reports", {"kind": "usage", "format": "json"}, token=tok2).status

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=11) as ex:
        statuses = list(ex.map(report, range(11)))
    check("11 concurrent reports on 50 credits -> exactly 10 x 201 and 1 x 402",
          statuses.count(201) == 10 and statuses.count(402) == 1, sorted(statuses))
    r = call("GET", "/v1/credits", token=tok2)
    check("balance 0 afterwards", r.status == 200 and r.json()["balance"] == 0, r.body[:200])
    rows = wait_confirmed(admin, uid2, 10, 30)
    print("info - 10 concurrent debits confirmed on chain in %.0f ms" % ((time.monotonic() - t0) * 1000))
    debits = [x for x in (audit_rows(admin, uid2) or []) if x.get("cost", 0) > 0]
    check("ten audit rows for ten debits", len(debits) == 10, len(debits))
    hashes = {x["tx_hash"] for x in rows}
    check("ten distinct confirmed transfers", len(rows) == 10 and len(hashes) == 10, len(rows))
    good = 0
    nonces = []
    for row in rows:
        ok, _ = verify_transfer(row, 5, master)
        good += ok
        tx = rpc("eth_getTransactionByHash", [row["tx_hash"]])
        nonces.append(int(tx["nonce"], 16))
    check("each transfer: status 1, one Transfer of 5*10^18 to the user's address", good == 10, good)
    nonces.sort()
    check("contiguous master-wallet nonces", len(nonces) == 10 and
          nonces == list(range(nonces[0], nonces[0] + 10)), nonces)
    addrs = {x.get("to_address", "").lower() for x in rows}
    check("all transfers of one user go to one custodial address, not the first user's",
          len(addrs) == 1 and "" not in addrs, addrs)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure, never a silent pass
        failed += 1
        print("FAIL - e2e crashed: %r" % (e,))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
