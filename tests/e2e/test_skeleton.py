#!/usr/bin/env python3
"""The skeleton's end-to-end flow, black box: signup -> login -> paid report ->
balance -> debit in the admin audit with a confirmed on-chain transfer; and 11
concurrent paid requests on 50 credits. Run against the running stack."""
import concurrent.futures
import os
import time

from client import (PORTS, admin_token, audit_rows, call, check, is_problem, new_email, rpc, run,
                    signup, verify_transfer, wait_confirmed)


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
    # Within the <= 2 s grace window a concurrent refresh gets the same successor
    # (issue 3); a reuse after it is a replay.
    time.sleep(2.2)
    r = call("POST", "/v1/auth/refresh", {"refresh_token": refresh})
    check("reusing a rotated refresh token after the grace window -> 401", r.status == 401,
          r.status)
    # the replay revoked that session family: continue with a fresh login
    r = call("POST", "/v1/auth/login", {"email": email, "password": pw})
    token = r.json()["access_token"] if r.status == 200 else token
    r = call("GET", "/v1/me", token=token)
    check("GET /v1/me", r.status == 200 and r.json().get("id") == user_id, (r.status, r.body[:200]))
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    r = call("GET", "/v1/credits", token=tampered)
    check("tampered JWT signature -> 401", is_problem(r, 401), r.status)

    # --- daemons refuse unsigned calls ----------------------------------------------------
    for name, port, path in (("auth-svc", PORTS["auth"], "/v1/me"),
                             ("credit-svc", PORTS["credit"], "/v1/credits"),
                             ("storage-svc", PORTS["storage"], "/v1/reports"),
                             ("chain-svc", PORTS["chain"], "/internal/status"),
                             ("credit-svc (unknown path)", PORTS["credit"], "/internal/nothing")):
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
    run(main)
