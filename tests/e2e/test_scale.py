#!/usr/bin/env python3
"""Black-box suite of horizontal scale (issue 9): two instances of every
daemon behind two gateways that load-balance over both (GW_*_URL lists), a
kill -9 of one instance of each daemon under mixed load, then SPEC §7's
invariants.

It starts, besides the stack (which it leaves as it found it):
  - a second auth-svc, credit-svc, storage-svc and chain-svc with the stack's
    environment on their own ports (OWN_PORT_BASE + 61..64; their calls to
    credit-svc go to the stack's instance, which is never killed);
  - two gateways (OWN_PORT_BASE + 65, 66), each configured with both
    instances of every daemon.
Mixed load (signups, uploads, reports, metadata fetches with an API key,
balance/list reads, admin top-ups) runs through both gateways from several
threads. The client behaves like a well-written one: a 502/503/504 or a 409
"still in progress" is retried with the same Idempotency-Key (paid POSTs),
alternating gateways, until it succeeds. While it runs, the second instance of
each daemon is killed with SIGKILL, one after the other. Checked:
  - every request eventually succeeds (in-flight ones at kill time by the
    client's retry with the same key), nothing charged twice: one debit per
    successful paid POST, counted per distinct result id;
  - per user: balance = 50 + credits - debits = the sum of the ledger, never
    negative; every debit has exactly one confirmed on-chain transfer of the
    right amount (receipt checked) and distinct transactions;
  - both gateways report the dead instances down on /metrics
    (gateway_upstream_up 0) within ~1 s and keep routing to the live ones;
  - revocations (logout, API-key revoke) reach both gateways within 1 s.
It stops exactly the processes it started (by pid). Numbers (requests, first-
attempt errors, client retries, gateway retries, detection times) are printed
as "info -" lines.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client  # noqa: E402
from client import call, check, poll_until, run  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("BUILD_DIR", os.path.join(REPO, "build"))
STATE = os.environ.get("STACK_STATE_DIR", os.environ.get("STATE_DIR", os.path.join(REPO, ".run")))
_gwp = int(os.environ.get("GW_PORT", "8443"))
# helper stacks own 23K00-23K99 (GW_PORT 850K); test_gateway uses +1..+3, +99, test_chain +50
OWN_PORT_BASE = 23000 + (100 * (_gwp - 8500) if 8500 <= _gwp <= 8509 else 0)
DAEMONS = [  # name, port variable, offset
    ("auth-svc", "AUTH_PORT", 61), ("credit-svc", "CREDIT_PORT", 62),
    ("storage-svc", "STORAGE_PORT", 63), ("chain-svc", "CHAIN_PORT", 64)]
GW_PORTS = (OWN_PORT_BASE + 65, OWN_PORT_BASE + 66)
GWS = ["https://127.0.0.1:%d" % p for p in GW_PORTS]
URL_VARS = {"auth-svc": "GW_AUTH_URL", "credit-svc": "GW_CREDIT_URL",
            "storage-svc": "GW_STORAGE_URL", "chain-svc": "GW_CHAIN_URL"}
WORKERS = int(os.environ.get("SCALE_WORKERS", "8"))
WARMUP_S = 4.0
KILL_GAP_S = 2.5
TAIL_S = 5.0
RETRY_DEADLINE_S = float(os.environ.get("SCALE_RETRY_DEADLINE_S", "45"))

started = {}  # name -> Popen we own
lock = threading.Lock()
stats = {"requests": 0, "first_errors": 0, "client_retries": 0, "final_failures": 0,
         "in_progress_409": 0}
first_error_status = {}
first_error_times = []
kill_times = []
failures = []
held = []  # (method, path, key): still 409 "in progress" at the retry deadline


def stack_env():
    """The environment the stack's daemons run with (env file + chain.env)."""
    env = {}
    for fn in ("env", "chain.env"):
        with open(os.path.join(STATE, fn)) as f:
            for line in f:
                m = re.match(r"^(?:export )?([A-Z0-9_]+)=(.*)$", line.strip())
                if m:
                    v = m.group(2)
                    if len(v) >= 2 and v[0] == v[-1] == "'":
                        v = v[1:-1].replace("'\\''", "'")
                    env[m.group(1)] = v
    return env


def start(name, binary, env, log_name):
    log = open(os.path.join(STATE, "logs", log_name), "ab")
    p = subprocess.Popen([binary], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    started[name] = p
    return p


def http_ok(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until(fn, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.1)
    return False


def gw_ready(base):
    try:
        return call("GET", "/readyz", base=base).status == 200
    except OSError:
        return False


def stop_started():
    for p in started.values():
        if p.poll() is None:
            p.terminate()
    for p in started.values():
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def metrics(base):
    r = call("GET", "/metrics", base=base)
    return r.body.decode() if r.status == 200 else ""


def up_gauge(text, port):
    m = re.search(r'gateway_upstream_up\{service="[a-z-]+",instance="127\.0\.0\.1:%d"\} (\d+)' % port,
                  text)
    return int(m.group(1)) if m else None


def counter(text, name):
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else 0


# --------------------------------------------------------------------------- the client

def robust(method, path, body=None, token=None, headers=None, raw=None, idem=True, gw=0):
    """One logical request: retried on 5xx, 409 in progress and transport errors
    with the same Idempotency-Key, alternating gateways, until it succeeds or
    RETRY_DEADLINE_S pass. Returns the last Resp (or None)."""
    h = dict(headers or {})
    if idem and method == "POST":
        h["Idempotency-Key"] = str(uuid.uuid4())
    deadline = time.monotonic() + RETRY_DEADLINE_S
    attempt = 0
    with lock:
        stats["requests"] += 1
    while True:
        base = GWS[(gw + attempt) % len(GWS)]
        try:
            r = call(method, path, body, token=token, headers=h, raw=raw, base=base)
            st = r.status
        except OSError as e:
            r, st = None, "transport:%s" % type(e).__name__
        # 409 on a keyed request = the first try is still running (or being settled)
        transient = r is None or st in (502, 503, 504) or (st == 409 and "Idempotency-Key" in h)
        if not transient:
            return r
        with lock:
            if attempt == 0:
                stats["first_errors"] += 1
                first_error_status[st] = first_error_status.get(st, 0) + 1
                first_error_times.append(time.monotonic())
            stats["client_retries"] += 1
            if st == 409:
                stats["in_progress_409"] += 1
        attempt += 1
        if time.monotonic() > deadline:
            with lock:
                if st == 409 and attempt > 1:
                    # killed in flight before storage-svc wrote its row: the
                    # Idempotency-Key claim is held (taken over after 10 min)
                    held.append((method, path, h["Idempotency-Key"]))
                else:
                    stats["final_failures"] += 1
                    failures.append((method, path, st))
            return None
        time.sleep(min(0.2 * attempt, 2.0))


class User:
    def __init__(self, uid, token, key):
        self.uid, self.token, self.key = uid, token, key
        self.files, self.reports = set(), set()
        self.metadata_ok = 0
        self.topups = 0


def new_user(admin, gw):
    email = client.new_email()
    r = robust("POST", "/v1/auth/signup", {"email": email, "password": "correct horse battery"},
               idem=False, gw=gw)
    if r is not None and r.status == 409:  # the first try was applied before the kill: log in
        r = robust("POST", "/v1/auth/login", {"email": email, "password": "correct horse battery"},
                   idem=False, gw=gw)
    if r is None or r.status not in (200, 201):
        raise RuntimeError("signup failed: %s" % (r and (r.status, r.body[:200])))
    j = r.json()
    uid = j["user"]["id"] if "user" in j else None
    tok = j["access_token"]
    if uid is None:
        uid = robust("GET", "/v1/me", token=tok, gw=gw).json()["id"]
    r = robust("POST", "/v1/admin/api-keys", {"owner_id": uid, "scope": "read", "name": "scale"},
               token=admin, idem=False, gw=gw)
    key = r.json()["key"] if r is not None and r.status == 201 else None
    return User(uid, tok, key)


def worker(n, admin, users, stop):
    gw = n % 2
    try:
        u = new_user(admin, gw)
    except Exception as e:  # noqa: BLE001
        with lock:
            failures.append(("signup", str(e)[:200], n))
        return
    with lock:
        users.append(u)
    i = 0
    while not stop.is_set():
        gw = (gw + 1) % 2
        op = i % 7
        i += 1
        if op == 0:
            r = robust("POST", "/v1/files", token=u.token,
                       raw=(("line %d %s\n" % (i, uuid.uuid4())) * 64).encode(),
                       headers={"Content-Type": "text/plain", "X-File-Name": "s%d.txt" % i}, gw=gw)
            if r is not None and r.status == 201:
                u.files.add(r.json()["id"])
            elif r is not None and r.status != 402:
                with lock:
                    failures.append(("upload", r.status, r.body[:200]))
        elif op == 1:
            r = robust("POST", "/v1/reports", {"kind": "usage", "format": "csv"}, token=u.token, gw=gw)
            if r is not None and r.status == 201:
                u.reports.add(r.json()["id"])
            elif r is not None and r.status != 402:
                with lock:
                    failures.append(("report", r.status, r.body[:200]))
        elif op == 2 and u.key and u.files:
            fid = next(iter(u.files))
            r = robust("GET", "/v1/service/metadata/%s" % fid,
                       headers={"Authorization": "ApiKey " + u.key}, gw=gw)
            if r is not None and r.status == 200:
                u.metadata_ok += 1
        elif op == 3:
            r = robust("POST", "/v1/admin/users/%s/credits" % u.uid,
                       {"amount": 20, "reason": "scale test"}, token=admin, gw=gw)
            if r is not None and r.status in (200, 201):
                u.topups += 1
            elif r is not None:
                with lock:
                    failures.append(("topup", r.status, r.body[:200]))
        elif op == 4:
            robust("GET", "/v1/credits", token=u.token, gw=gw)
        elif op == 5:
            robust("GET", "/v1/files?limit=5", token=u.token, gw=gw)
        else:
            robust("GET", "/v1/me", token=u.token, gw=gw)


# --------------------------------------------------------------------------- invariants

def ledger(tok):
    items, cursor = [], None
    for _ in range(200):
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


def check_user(admin, u, master):
    r = call("GET", "/v1/credits", token=u.token)
    bal = r.json()["balance"] if r.status == 200 else None
    items = ledger(u.token) or []
    debits = [e for e in items if e["kind"] == "debit"]
    credits = sum(e["delta"] for e in items if e["delta"] > 0 and e["kind"] != "signup_bonus")
    spent = -sum(e["delta"] for e in debits)
    ok = bal is not None and bal == 50 + credits - spent == sum(e["delta"] for e in items) and bal >= 0
    uploads = [e for e in debits if (e.get("action") or "").startswith("file.")]
    reps = [e for e in debits if (e.get("action") or "").startswith("report")]
    metas = [e for e in debits if (e.get("action") or "") == "service.metadata"]
    ok_uploads = len(uploads) == len(u.files)
    ok_reports = len(reps) == len(u.reports)
    ok_meta = len(metas) >= u.metadata_ok
    ok_topups = credits == 20 * u.topups
    # one confirmed transfer per debit
    rows = client.wait_confirmed(admin, u.uid, len(debits), 120)
    by_debit = {}
    for row in rows:
        by_debit.setdefault(row.get("debit_id"), []).append(row)
    ids = {e["debit_id"] for e in debits}
    one_each = ids == set(by_debit) and all(len(v) == 1 for v in by_debit.values())
    hashes = [row["tx_hash"] for row in rows]
    distinct = len(set(hashes)) == len(hashes)
    receipts_ok, detail = True, ""
    for row in rows:
        good, why = client.verify_transfer(row, row["cost"], master)
        if not good:
            receipts_ok, detail = False, why
            break
    return {"balance": ok, "uploads": ok_uploads, "reports": ok_reports, "meta": ok_meta,
            "topups": ok_topups, "one_transfer": one_each and distinct, "receipts": receipts_ok,
            "detail": "bal %r credits %d spent %d files %d/%d reports %d/%d meta %d/%d topups %d/%d "
                      "debits %d transfers %d %s" % (
                          bal, credits, spent, len(uploads), len(u.files), len(reps), len(u.reports),
                          len(metas), u.metadata_ok, credits, 20 * u.topups, len(debits), len(rows),
                          detail),
            "debits": len(debits)}


# --------------------------------------------------------------------------- revocations

def revocations(admin):
    email, pw, r = client.signup()
    if not check("revocation user signed up", r.status == 201, r.status):
        return
    uid = r.json()["user"]["id"]
    tok = call("POST", "/v1/auth/login", {"email": email, "password": pw}, base=GWS[0]).json()["access_token"]
    check("the session works on both gateways",
          all(call("GET", "/v1/me", token=tok, base=b).status == 200 for b in GWS))
    r = call("POST", "/v1/auth/logout", token=tok, base=GWS[0], headers={"Origin": client.GW})
    t0 = time.monotonic()
    check("logout through gateway 1 -> 204", r.status == 204, r.status)
    for b in GWS:
        el = poll_until(lambda bb=b: call("GET", "/v1/me", token=tok, base=bb).status == 401, 3.0)
        total = time.monotonic() - t0
        check("logged-out token refused by %s within 1 s (%.0f ms)" % (b, total * 1000),
              el is not None and total <= 1.0, total)
    r = call("POST", "/v1/admin/api-keys", {"owner_id": uid, "scope": "read", "name": "rv"}, token=admin,
             base=GWS[1])
    if not check("admin creates an API key", r.status == 201, r.status):
        return
    k = r.json()
    hdr = {"Authorization": "ApiKey " + k["key"]}
    check("the key works on both gateways (and is cached there)",
          all(call("GET", "/v1/credits", headers=hdr, base=b).status == 200 for b in GWS))
    r = call("DELETE", "/v1/admin/api-keys/%s" % k["id"], token=admin, base=GWS[1])
    t0 = time.monotonic()
    check("admin revokes the key through gateway 2", r.status in (200, 204), r.status)
    for b in GWS:
        el = poll_until(lambda bb=b: call("GET", "/v1/credits", headers=hdr, base=bb).status == 401, 3.0)
        total = time.monotonic() - t0
        check("revoked key refused by %s within 1 s (%.0f ms)" % (b, total * 1000),
              el is not None and total <= 1.0, total)


# --------------------------------------------------------------------------- main

def main():
    env0 = stack_env()
    bins = {name: os.path.join(BUILD_DIR, name, name) for name, _, _ in DAEMONS}
    bins["gateway"] = os.path.join(BUILD_DIR, "gateway", "gateway")
    for b in bins.values():
        if not check("built: %s" % b, os.path.exists(b)):
            return
    second = {name: OWN_PORT_BASE + off for name, _, off in DAEMONS}
    first = {name: int(env0[var]) for name, var, _ in DAEMONS}
    try:
        for name, var, _ in DAEMONS:
            env = dict(env0)
            env[var] = str(second[name])
            env["LOG_LEVEL"] = "info"
            if name == "storage-svc":
                env["STORAGE_SETTLE_GRACE_S"] = "30"  # the minimum: abandoned rows settle sooner
            start(name, bins[name], env, "%s-scale2.log" % name)
        ok = all(wait_until(lambda p=second[n]: http_ok("http://127.0.0.1:%d/readyz" % p), 40)
                 for n, _, _ in DAEMONS)
        if not check("second instance of every daemon ready (ports %s)" % sorted(second.values()), ok):
            return
        for i, port in enumerate(GW_PORTS):
            env = dict(env0)
            env.update({"GW_PORT": str(port), "LOG_LEVEL": "info", "GW_HEALTH_INTERVAL_MS": "1000",
                        "GW_HEALTH_TIMEOUT_MS": "500"})
            for name, _, _ in DAEMONS:
                env[URL_VARS[name]] = "http://127.0.0.1:%d, http://127.0.0.1:%d" % (first[name], second[name])
            start("gateway-%d" % (i + 1), bins["gateway"], env, "gateway-scale%d.log" % (i + 1))
        ok = all(wait_until(lambda b=b: gw_ready(b), 30) for b in GWS)
        if not check("two gateways with both instance lists ready", ok):
            return
        m = metrics(GWS[0])
        check("/metrics shows 8 upstream instances up",
              all(up_gauge(m, p) == 1 for p in list(first.values()) + list(second.values())), m[:0])
        admin = client.admin_token()
        master = call("GET", "/v1/admin/chain", token=admin).json().get("master_address")

        # the load: both instances get traffic before the kills
        users, stop = [], threading.Event()
        threads = [threading.Thread(target=worker, args=(n, admin, users, stop)) for n in range(WORKERS)]
        t_start = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(WARMUP_S)
        pre = metrics(GWS[0]) + metrics(GWS[1])
        detect = {}
        for name, _, _ in DAEMONS:
            p = started[name]
            os.kill(p.pid, signal.SIGKILL)
            t_kill = time.monotonic()
            kill_times.append(t_kill)
            p.wait(timeout=10)
            port = second[name]
            el = [poll_until(lambda b=b: up_gauge(metrics(b), port) == 0, 10.0) for b in GWS]
            detect[name] = el
            print("info - killed %s (pid %d, port %d) at t=%.1f s; marked down by the gateways after %s"
                  % (name, p.pid, port, t_kill - t_start,
                     ", ".join("%.0f ms" % (e * 1000) if e is not None else "never" for e in el)))
            time.sleep(KILL_GAP_S)
        time.sleep(TAIL_S)
        stop.set()
        for t in threads:
            t.join(timeout=RETRY_DEADLINE_S + 30)
        t_load = time.monotonic() - t_start
        post = metrics(GWS[0]) + metrics(GWS[1])
        print("info - load %.1f s, %d workers, %d logical requests, %d first-attempt errors %r, "
              "%d client retries (%d on 409 in progress), %d final failures"
              % (t_load, WORKERS, stats["requests"], stats["first_errors"], first_error_status,
                 stats["client_retries"], stats["in_progress_409"], stats["final_failures"]))
        g_retries = sum(counter(x, "gateway_upstream_retries_total") for x in (post,)) - \
            sum(counter(x, "gateway_upstream_retries_total") for x in (pre,))
        print("info - gateway-side retries on another instance after the kills: %d" % g_retries)
        check("every worker signed up and ran", len(users) == WORKERS, failures[:3])
        late = [t for t in first_error_times if not any(k <= t <= k + 3.0 for k in kill_times)]
        check("errors only for requests in flight at a kill (first attempts failed within 3 s of "
              "a kill: %d, later: %d)" % (len(first_error_times) - len(late), len(late)), not late)
        check("no request lost: every logical request succeeded (in-flight ones after a client retry "
              "with the same Idempotency-Key)", stats["final_failures"] == 0 and not failures,
              failures[:5])
        print("info - %d request(s) killed in flight still answer 409 after %.0f s of retries "
              "(storage-svc keeps an orphaned Idempotency-Key claim 10 minutes): %r"
              % (len(held), RETRY_DEADLINE_S, held))
        check("... except at most one in-flight request per worker whose key storage-svc still holds "
              "(%d; strict with SCALE_STRICT=1)" % len(held),
              len(held) <= WORKERS and (not held or os.environ.get("SCALE_STRICT") != "1"), held)
        for name, el in detect.items():
            check("%s kill detected by both gateways within 3 s (%s)"
                  % (name, ", ".join("%.0f ms" % (e * 1000) if e is not None else "never" for e in el)),
                  all(e is not None and e <= 3.0 for e in el))
        # the survivors carry on: one more round through each gateway
        u = users[0] if users else None
        if u:
            ok = all(call("GET", "/v1/credits", token=u.token, base=b).status == 200 for b in GWS)
            r = robust("POST", "/v1/reports", {"kind": "usage", "format": "json"}, token=u.token)
            if r is not None and r.status == 201:
                u.reports.add(r.json()["id"])
            check("after the kills both gateways serve reads and paid work on the survivors",
                  ok and r is not None and r.status in (201, 402), r and r.status)
        # invariants per user
        total_debits = 0
        results = [check_user(admin, u, master) for u in users]
        for key, what in (("balance", "balance = 50 + credits - debits = sum of the ledger, >= 0"),
                          ("uploads", "one upload debit per successful upload (no double charge)"),
                          ("reports", "one report debit per successful report"),
                          ("meta", "every successful metadata fetch charged"),
                          ("topups", "each top-up applied once (retried with the same key)"),
                          ("one_transfer", "exactly one confirmed transfer per debit, distinct txs"),
                          ("receipts", "every transfer: receipt ok, right amount, master -> user")):
            bad = [r["detail"] for r in results if not r[key]]
            check("all %d users: %s" % (len(results), what), not bad and results, bad[:2])
        total_debits = sum(r["debits"] for r in results)
        print("info - %d debits across %d users, all confirmed on chain" % (total_debits, len(results)))
        revocations(admin)
        r = call("GET", "/readyz")
        check("the stack's own gateway is still ready", r.status == 200, r.status)
    finally:
        stop_started()
        check("every process this suite started is stopped",
              all(p.poll() is not None for p in started.values()))


if __name__ == "__main__":
    run(main)
