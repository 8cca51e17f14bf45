#!/usr/bin/env python3
"""Internal request signature (libcommon/include/lc/iauth.h, canonical v2), black
box against credit-svc on loopback, as someone on the internal network would
try it: nothing is captured; requests are signed here with the stack's
INTERNAL_SECRET exactly as the gateway signs them, then replayed or altered.
  - a signed request is accepted once: the identical request again -> 401
    (GET /v1/credits, and a POST /internal/reservations that would hold credits
    a second time: the balance shows one hold only);
  - Idempotency-Key, Content-Type, X-Client-IP, X-Auth-Jti / X-Auth-Exp are
    covered: changing, adding or removing one after signing -> 401 and the
    admin top-up it carried changed nothing;
  - the untouched request still passes once (the rejected copies did not use
    up its nonce), and its replay changes nothing.
Run against the running stack (tests/run.sh exports the env)."""
import json
import time
import uuid

from client import PORTS, call, check, iauth_headers, is_problem, run, signup

BASE = "http://127.0.0.1:%d" % PORTS["credit"]


def send(method, path, hdrs, data=None):
    return call(method, path, raw=data, headers=hdrs, base=BASE, tls=False)


def credits(uid):
    r = send("GET", "/v1/credits", iauth_headers("GET", "/v1/credits", user=uid, role="user",
                                                 scope="full"))
    return r.json() if r.status == 200 else {"status": r.status}


def main():
    _, _, r = signup()
    if not check("signup through the gateway -> 201", r.status == 201, (r.status, r.body[:200])):
        return
    uid = r.json()["user"]["id"]

    # --- replay of a read -----------------------------------------------------------------
    h = iauth_headers("GET", "/v1/credits", user=uid, role="user", scope="full")
    r1 = send("GET", "/v1/credits", h)
    check("signed GET /v1/credits straight to credit-svc -> 200",
          r1.status == 200 and "balance" in (r1.json() or {}), (r1.status, r1.body[:200]))
    r2 = send("GET", "/v1/credits", h)
    check("the identical signed request sent again -> 401 problem (replayed)",
          is_problem(r2, 401), (r2.status, r2.body[:200]))
    r3 = send("GET", "/v1/credits", iauth_headers("GET", "/v1/credits", user=uid, role="user",
                                                  scope="full"))
    check("a fresh signing of the same request -> 200", r3.status == 200, r3.status)

    # --- replay of a write: credits are held once -----------------------------------------
    before = credits(uid)
    body = json.dumps({"user_id": uid, "action": "report.download"}).encode()
    h = iauth_headers("POST", "/internal/reservations", body, user=uid, role="user",
                      scope="full", content_type="application/json")
    h["Content-Type"] = "application/json"
    r1 = send("POST", "/internal/reservations", h, body)
    ok = check("signed POST /internal/reservations -> 201", r1.status == 201,
               (r1.status, r1.body[:200]))
    r2 = send("POST", "/internal/reservations", h, body)
    check("the same signed POST replayed -> 401", is_problem(r2, 401), (r2.status, r2.body[:200]))
    after = credits(uid)
    cost = (r1.json() or {}).get("cost") if ok else None
    check("the replay held nothing: available dropped by one reservation's cost only",
          ok and isinstance(cost, int) and after.get("available") == before.get("available") - cost
          and after.get("balance") == before.get("balance"), (before, after, cost))
    if ok:
        rid = r1.json()["reservation_id"]
        p = "/internal/reservations/%s/release" % rid
        r = send("POST", p, iauth_headers("POST", p, user=uid, role="user", scope="full"))
        check("the reservation is released again (stack left as found)", r.status == 200,
              (r.status, r.body[:200]))

    # --- covered headers: Idempotency-Key, Content-Type, X-Client-IP, X-Auth-Jti/Exp --------
    admin = str(uuid.uuid4())
    path = "/v1/admin/users/%s/credits" % uid
    body = json.dumps({"amount": 7, "reason": "e2e internal signature"}).encode()
    key = "e2e-internal-" + uuid.uuid4().hex
    signed = iauth_headers("POST", path, body, user=admin, role="admin", scope="full",
                           content_type="application/json", idempotency_key=key,
                           client_ip="203.0.113.9")
    genuine = dict(signed, **{"Content-Type": "application/json", "Idempotency-Key": key})
    start = credits(uid)

    def variant(name, change):
        hh = dict(genuine)
        change(hh)
        r = send("POST", path, hh, body)
        check("signed admin top-up with %s after signing -> 401" % name, is_problem(r, 401),
              (r.status, r.body[:200]))

    variant("Idempotency-Key altered",
            lambda hh: hh.__setitem__("Idempotency-Key", key + "-x"))
    variant("Idempotency-Key removed", lambda hh: hh.pop("Idempotency-Key"))
    variant("Content-Type altered",
            lambda hh: hh.__setitem__("Content-Type", "application/json; charset=utf-8"))
    variant("X-Client-IP altered", lambda hh: hh.__setitem__("X-Client-IP", "198.51.100.1"))
    variant("X-Client-IP removed", lambda hh: hh.pop("X-Client-IP"))
    variant("X-Auth-Jti / X-Auth-Exp added",
            lambda hh: hh.update({"X-Auth-Jti": str(uuid.uuid4()), "X-Auth-Exp": "9999999999"}))
    mid = credits(uid)
    check("the rejected top-ups changed nothing",
          mid.get("balance") == start.get("balance"), (start, mid))
    r = send("POST", path, genuine, body)
    check("the untouched signed top-up -> 2xx (rejected copies did not use up its nonce)",
          r.status in (200, 201), (r.status, r.body[:200]))
    r2 = send("POST", path, genuine, body)
    check("the top-up replayed (same Idempotency-Key, same signature) -> 401",
          is_problem(r2, 401), (r2.status, r2.body[:200]))
    end = credits(uid)
    check("balance rose by 7 exactly once",
          isinstance(start.get("balance"), int) and end.get("balance") == start["balance"] + 7,
          (start, end))

    # --- unsigned or stale --------------------------------------------------------------------
    h = iauth_headers("GET", "/v1/credits", user=uid, role="user", scope="full")
    h.pop("X-Auth-Nonce")
    r = send("GET", "/v1/credits", h)
    check("no X-Auth-Nonce -> 401", is_problem(r, 401), r.status)
    h = iauth_headers("GET", "/v1/credits", user=uid, role="user", scope="full",
                      ts=int(time.time()) - 45)
    r = send("GET", "/v1/credits", h)
    check("signed 45 s ago (default skew 30 s) -> 401", is_problem(r, 401), r.status)


if __name__ == "__main__":
    run(main)
