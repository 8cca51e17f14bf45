"""Black-box suite for credits (issue 4), through the gateway like a client:
  - 50 parallel paid requests with credit for exactly one -> one 201, one debit
    audit row, one confirmed on-chain transfer;
  - admin top-up with Idempotency-Key: replay (same status and body,
    Idempotent-Replayed: true, nothing written twice), 422 for another
    request under the same key, 409 while the first still runs;
  - every bad top-up amount -> 400 with balance, ledger and audit unchanged;
  - low-credit email sent once per crossing (read from the stack's maildev);
  - auth-svc's audit events (signup/login) land in the audit log;
  - after each part: the ledger (GET /v1/credits/ledger) sums to the balance.
Uses its own users; leaves the stack as it found it.
"""
import concurrent.futures as cf
import json
import os
import subprocess
import time
import urllib.request
import uuid

import client
from client import call, check, is_problem

MAILDEV = os.environ.get("STACK_MAILDEV_URL") or "http://127.0.0.1:%s" % os.environ.get(
    "MAILDEV_WEB_PORT", "21080")
THRESHOLD = int(os.environ.get("CREDIT_LOW_BALANCE_THRESHOLD", "10"))


def new_user():
    email, _, r = client.signup()
    if r.status != 201:
        raise RuntimeError("signup failed: %d %s" % (r.status, r.body[:200]))
    j = r.json()
    return j["user"]["id"], email, j["access_token"]


def balance(tok):
    r = call("GET", "/v1/credits", token=tok)
    return r.json()["balance"] if r.status == 200 else None


def ledger(tok):
    items, cursor = [], None
    for _ in range(100):
        path = "/v1/credits/ledger?limit=100" + ("&cursor=" + cursor if cursor else "")
        r = call("GET", path, token=tok)
        if r.status != 200:
            return None
        j = r.json()
        items += j["items"]
        cursor = j.get("next_cursor")
        if not cursor:
            break
    return items


def invariant(name, tok):
    """balance = sum of the ledger deltas; the newest entry's balance_after too."""
    b, items = balance(tok), ledger(tok)
    ok = b is not None and items is not None and sum(e["delta"] for e in items) == b
    ok = ok and items and items[0]["balance_after"] == b and b >= 0
    check("%s: ledger sums to the balance" % name, ok,
          "balance %r, sum %r" % (b, items and sum(e["delta"] for e in items)))


def report(tok):
    return call("POST", "/v1/reports", {"kind": "usage", "format": "json"}, token=tok)


def audit(admin, uid, action=None):
    path = "/v1/admin/audit?user_id=%s&limit=100" % uid + ("&action=" + action if action else "")
    r = call("GET", path, token=admin)
    return r.json()["items"] if r.status == 200 else None


def topup(admin, uid, body=None, key=None, raw=None):
    headers = {"Idempotency-Key": key} if key else {}
    if raw is not None:
        headers["Content-Type"] = "application/json"
    return call("POST", "/v1/admin/users/%s/credits" % uid, body, token=admin, headers=headers,
                raw=raw)


# ---------------------------------------------------------------- concurrency

def test_concurrent_debit(admin):
    uid, _, tok = new_user()
    for _ in range(9):  # 50 -> 5
        r = report(tok)
        if r.status != 201:
            raise RuntimeError("drain failed: %d %s" % (r.status, r.body[:200]))
    check("concurrency: drained to 5", balance(tok) == 5, balance(tok))
    before = [x for x in audit(admin, uid) if x.get("debit_id")]
    with cf.ThreadPoolExecutor(max_workers=50) as ex:
        statuses = list(ex.map(lambda _: report(tok).status, range(50)))
    ok = statuses.count(201)
    check("concurrency: 50 parallel reports with credit for one -> exactly one 201", ok == 1,
          sorted(statuses))
    check("concurrency: the other 49 are 402", statuses.count(402) == 49, sorted(set(statuses)))
    check("concurrency: balance is 0", balance(tok) == 0, balance(tok))
    after = [x for x in audit(admin, uid) if x.get("debit_id")]
    check("concurrency: exactly one new debit audit row", len(after) - len(before) == 1,
          "%d -> %d" % (len(before), len(after)))
    commits = [e for e in ledger(tok) if e["kind"] == "debit"]
    check("concurrency: exactly one new ledger commit", len(commits) == 10, len(commits))
    rows = client.wait_confirmed(admin, uid, 10, 10)
    check("concurrency: within 10 s every debit has a confirmed transfer (10)", len(rows) == 10,
          len(rows))
    time.sleep(1)
    rows = client.wait_confirmed(admin, uid, 11, 0.1)
    check("concurrency: no extra transfer", len(rows) == 10, len(rows))
    hashes = {r["tx_hash"] for r in rows}
    check("concurrency: ten distinct transaction hashes", len(hashes) == 10, len(hashes))
    newest = max(rows, key=lambda x: x["ts"])
    ok, detail = client.verify_transfer(newest, newest["cost"], None)
    check("concurrency: the last debit's transfer is on chain with the right amount", ok, detail)
    invariant("concurrency", tok)


# -------------------------------------------------------------- idempotency

def test_topup_idempotency(admin):
    uid, _, tok = new_user()
    key = "e2e-" + uuid.uuid4().hex
    r1 = topup(admin, uid, {"amount": 7, "reason": "e2e idempotent top-up"}, key)
    check("top-up: 201 {entry_id, balance}", r1.status == 201 and r1.json().get("balance") == 57,
          (r1.status, r1.body[:200]))
    check("top-up: first answer is not marked replayed",
          r1.headers.get("Idempotent-Replayed") is None)
    r2 = topup(admin, uid, {"amount": 7, "reason": "e2e idempotent top-up"}, key)
    check("top-up: same key + same request -> first response replayed",
          r2.status == 201 and r2.body == r1.body, (r2.status, r2.body[:200]))
    check("top-up: replay carries Idempotent-Replayed: true",
          r2.headers.get("Idempotent-Replayed") == "true", dict(r2.headers))
    check("top-up: replay credited nothing", balance(tok) == 57, balance(tok))
    r3 = topup(admin, uid, {"amount": 8, "reason": "e2e idempotent top-up"}, key)
    check("top-up: same key + different request -> 422 problem", is_problem(r3, 422),
          (r3.status, r3.body[:200]))
    check("top-up: 422 credited nothing", balance(tok) == 57, balance(tok))
    rows = audit(admin, uid, "topup")
    check("top-up: exactly one audit row, actor = the admin",
          rows is not None and len(rows) == 1 and rows[0]["actor"] != uid
          and rows[0]["status"] == "ok", rows)
    entries = [e for e in ledger(tok) if e["kind"] == "topup"]
    check("top-up: exactly one ledger entry with reason and actor",
          len(entries) == 1 and entries[0]["reason"] == "e2e idempotent top-up"
          and entries[0]["actor"] and entries[0]["request_id"], entries)
    # In flight: identical requests racing on one fresh key. Exactly one runs;
    # the others get the replay or 409 while it runs. Several rounds so the
    # race window is actually hit.
    seen409, total_new, rounds = 0, 0, 0
    start = balance(tok)
    for rounds in range(1, 9):
        k = "e2e-race-" + uuid.uuid4().hex
        body = {"amount": 1, "reason": "race %d" % rounds}
        with cf.ThreadPoolExecutor(max_workers=24) as ex:
            rs = list(ex.map(lambda _: topup(admin, uid, body, k), range(24)))
        fresh = [r for r in rs if r.status == 201 and r.headers.get("Idempotent-Replayed") is None]
        total_new += len(fresh)
        seen409 += sum(1 for r in rs if is_problem(r, 409))
        bad = [r.status for r in rs if r.status not in (201, 409)]
        if bad or len(fresh) != 1:
            break
        if seen409 and rounds >= 3:
            break
    check("top-up race: exactly one execution per key (%d rounds)" % rounds,
          total_new == rounds and balance(tok) == start + rounds,
          "new %d, balance %s -> %s" % (total_new, start, balance(tok)))
    # In flight, deterministically: hold the account row locked from a
    # superuser session so the first request claims the key and then waits
    # inside its transaction; a duplicate sent meanwhile must get 409.
    k = "e2e-inflight-" + uuid.uuid4().hex
    body = {"amount": 2, "reason": "in flight"}
    before = balance(tok)
    locker = subprocess.Popen(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
         "host=%s port=%s user=postgres dbname=saas" % (os.environ["STACK_STATE_DIR"] + "/pgsock",
                                                        os.environ.get("PG_PORT", "25432")),
         "-c", "BEGIN; SELECT 1 FROM credit.accounts WHERE user_id = '%s' FOR UPDATE; "
               "SELECT pg_sleep(3); COMMIT;" % uid],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.8)
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        first = ex.submit(topup, admin, uid, body, k)
        time.sleep(0.8)
        dup = topup(admin, uid, body, k)
        r1 = first.result()
    locker.wait(timeout=30)
    check("top-up in flight: a duplicate sent while the first runs -> 409 problem",
          is_problem(dup, 409), (dup.status, dup.body[:120]))
    check("top-up in flight: the first one completes once (201, +2)",
          r1.status == 201 and balance(tok) == before + 2, (r1.status, before, balance(tok)))
    invariant("top-up", tok)


def test_bad_amounts(admin):
    uid, _, tok = new_user()
    b0, l0, a0 = balance(tok), len(ledger(tok)), len(audit(admin, uid))
    bad = ['{"amount": -5, "reason": "r"}', '{"amount": 0, "reason": "r"}',
           '{"amount": 1.5, "reason": "r"}', '{"amount": 1e3, "reason": "r"}',
           '{"amount": "10", "reason": "r"}', '{"amount": 1000001, "reason": "r"}',
           '{"amount": 9223372036854775808, "reason": "r"}',
           '{"amount": 100000000000000000000000000000, "reason": "r"}',
           '{"amount": null, "reason": "r"}', '{"amount": {}, "reason": "r"}',
           '{"amount": [1], "reason": "r"}', '{"amount": true, "reason": "r"}',
           '{"reason": "r"}', '{"amount": 5}', '{"amount": 5, "reason": ""}',
           '{"amount": 5, "reason": "%s"}' % ("x" * 201),
           '{"amount": 5, "reason": "r", "extra": 1}', '{"amount": 5, "amount": 6, "reason": "r"}',
           '[5]', '5', 'not json', '']
    for i, raw in enumerate(bad):
        r = topup(admin, uid, raw=raw.encode(), key="e2e-bad-%s-%d" % (uuid.uuid4().hex[:8], i))
        check("bad amount %s -> 400 problem" % raw[:48], is_problem(r, 400), (r.status, r.body[:120]))
    r = call("POST", "/v1/admin/users/%s/credits" % uid, {"amount": 5, "reason": "self"}, token=tok)
    check("top-up by a non-admin -> 403", is_problem(r, 403), r.status)
    r = topup(admin, "not-a-uuid", {"amount": 5, "reason": "r"})
    check("top-up of a malformed user id -> 400 or 404", r.status in (400, 404), r.status)
    check("bad amounts: balance unchanged", balance(tok) == b0, balance(tok))
    check("bad amounts: ledger unchanged", len(ledger(tok)) == l0)
    check("bad amounts: audit unchanged", len(audit(admin, uid)) == a0)
    invariant("bad amounts", tok)


# ------------------------------------------------------------- low-credit mail

def mails_to(addr):
    try:
        with urllib.request.urlopen(MAILDEV + "/email", timeout=10) as r:
            items = json.loads(r.read())
    except OSError:
        return None
    return [m for m in items if any(t.get("address", "").lower() == addr.lower()
                                    for t in m.get("to", []))]


def wait_mails(addr, n, timeout_s):
    deadline = time.monotonic() + timeout_s
    got = mails_to(addr) or []
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.2)
        got = mails_to(addr) or []
    return got


def test_low_credit_email(admin):
    if mails_to("nobody@example.com") is None:
        check("low-credit mail: maildev reachable at %s" % MAILDEV, False)
        return
    uid, email, tok = new_user()
    spend = (50 - THRESHOLD) // 5  # stays >= threshold
    for _ in range(spend):
        report(tok)
    time.sleep(1.0)
    check("low-credit mail: nothing while the balance is >= %d" % THRESHOLD,
          wait_mails(email, 1, 0.5) == [], balance(tok))
    report(tok)  # crosses below
    got = wait_mails(email, 1, 10)
    check("low-credit mail: one email within 10 s of crossing", len(got) == 1, len(got))
    if got:
        m = got[0]
        hdr = {k.lower(): v for k, v in (m.get("headers") or {}).items()}
        check("low-credit mail: subject, sender, Date and Message-ID",
              "low" in m.get("subject", "").lower() and m.get("from") and hdr.get("date")
              and hdr.get("message-id"), (m.get("subject"), hdr))
        check("low-credit mail: tells the balance",
              ("%d credit" % balance(tok)) in (m.get("text") or ""), m.get("text"))
    for _ in range(5):  # spend further below: no new mail
        if balance(tok) < 5:
            break
        report(tok)
    time.sleep(2)
    check("low-credit mail: spending further below sends nothing more",
          len(mails_to(email)) == 1, len(mails_to(email)))
    r = topup(admin, uid, {"amount": THRESHOLD + 10, "reason": "refill"})
    check("low-credit mail: refill above the threshold", r.status == 201, r.status)
    for _ in range(20):
        if balance(tok) < THRESHOLD:
            break
        report(tok)
    got = wait_mails(email, 2, 10)
    check("low-credit mail: crossing again sends a second email", len(got) == 2, len(got))
    time.sleep(1.5)
    check("low-credit mail: exactly one email per crossing", len(mails_to(email)) == 2,
          len(mails_to(email)))
    invariant("low-credit mail", tok)


# ------------------------------------------------------------------- audit

def test_auth_audit(admin):
    uid, email, tok = new_user()
    call("POST", "/v1/auth/login", {"email": email, "password": "wrong password!!"})
    deadline = time.monotonic() + 10
    rows = []
    while time.monotonic() < deadline:
        rows = audit(admin, uid) or []
        if any(x["action"] == "signup" for x in rows):
            break
        time.sleep(0.2)
    everything = call("GET", "/v1/admin/audit?action=signup&limit=1", token=admin).json()["items"]
    if not everything:
        print("skip - auth.audit events: auth-svc published none yet (producer not running)")
        return
    signup = [x for x in rows if x["action"] == "signup"]
    check("audit: auth-svc's signup event is an audit row (cost 0, status ok)",
          len(signup) == 1 and signup[0]["cost"] == 0 and signup[0]["status"] == "ok", signup)
    r = call("GET", "/v1/admin/audit?user_id=%s&action=signup&since=2000-01-01T00:00:00Z"
             "&until=2999-01-01T00:00:00Z" % uid, token=admin)
    check("audit: filters user_id, action, since, until", r.status == 200
          and len(r.json()["items"]) == 1, r.status)


def main():
    admin = client.admin_token()
    test_bad_amounts(admin)
    test_topup_idempotency(admin)
    test_low_credit_email(admin)
    test_concurrent_debit(admin)
    test_auth_audit(admin)


client.run(main)
