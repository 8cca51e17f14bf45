#!/usr/bin/env python3
"""chain-svc black-box and fault suite (issue 6), against the running local stack.

Drives real committed debits through credit-svc's internal API (signed like the
gateway signs), and breaks things with anvil's controls and by killing
processes of THIS stack by pid:
  admin views; duplicate deliveries of a real debit envelope (+ a corrupt
  duplicate and a malformed message -> DLQ); kill -9 chain-svc after broadcast
  before the receipt -> one transfer, same hash; a transfer stuck under a raised
  base fee -> replaced, the audit shows the final hash; a dropped transaction ->
  re-sent unchanged; master low on ETH / tokens -> parked, alert, gauge, drained
  after top-up; node stopped 30 s mid-stream -> everything lands, contiguous
  nonces; two chain-svc instances on one wallet under 500 debits -> contiguous
  nonces, no duplicates (+ throughput and commit->confirmed latency);
  reconciliation zero differences after each test and detection of injected
  mismatches; `chain-svc keyfile-create` + `chain-svc deploy-token`.
Always restores automine, balances and processes. Needs: STACK_STATE_DIR,
STACK_PG_ADMIN, INTERNAL_SECRET, AMQP_URL, BUILD_DIR (default <repo>/build) and
the port variables (services/env.sh + tests/run.sh export them)."""
import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

from client import PORTS, admin_token, audit_rows, call, check, is_problem, rpc, run, signup

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STATE = os.environ.get("STACK_STATE_DIR") or os.environ.get("STATE_DIR") or os.path.join(REPO, ".run")
BUILD = os.environ.get("BUILD_DIR") or os.path.join(REPO, "build")
SECRET = os.environ.get("INTERNAL_SECRET", "").encode()
MASTER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
PSQL = "/usr/lib/postgresql/15/bin/psql"
CHAIN_BIN = os.path.join(BUILD, "chain-svc", "chain-svc")
AMQP_PUB = os.path.join(BUILD, "chain-svc", "amqp_pub")
SECOND_PORT = int(os.environ.get("CHAIN_TEST_SECOND_PORT", "0")) or None


# ------------------------------------------------------------------ helpers

def sql(q, *args):
    """Runs q as the stack's superuser (psql over the socket); rows of '|'-split text."""
    cmd = [PSQL, os.environ["STACK_PG_ADMIN"], "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
    for i, a in enumerate(args):
        cmd += ["-v", "p%d=%s" % (i + 1, a)]
    out = subprocess.run(cmd, input=q, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError("psql: %s" % out.stderr.strip())
    return [line.split("|") for line in out.stdout.splitlines() if line != ""]


def sql1(q, *args):
    rows = sql(q, *args)
    return rows[0][0] if rows else None


def internal(port, method, path, body=None, user="", role="system", scope=""):
    """A request signed with INTERNAL_SECRET exactly as lc_iauth_sign does."""
    data = json.dumps(body).encode() if body is not None else b""
    rid = "e2e-chain-" + uuid.uuid4().hex[:12]
    ts = str(int(time.time()))
    nonce = os.urandom(16).hex()
    ctype = "application/json" if body is not None else ""
    canon = "\n".join(["v2", method, path, user, role, scope, rid, ts, nonce,
                       hashlib.sha256(data).hexdigest(), ctype, "", "", "", ""]).encode()
    sig = hmac.new(SECRET, canon, hashlib.sha256).hexdigest()
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=data if body is not None else None, method=method)
    for k, v in (("X-Request-Id", rid), ("X-Auth-User", user), ("X-Auth-Role", role),
                 ("X-Auth-Scope", scope), ("X-Auth-Ts", ts), ("X-Auth-Nonce", nonce),
                 ("X-Auth-Sig", sig)):
        req.add_header(k, v)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw


def new_user(credits=0):
    """A signed-up user (50 credits) topped up by `credits` through the admin API."""
    _, _, r = signup()
    uid = r.json()["user"]["id"]
    if credits:
        # straight to credit-svc as an admin identity (signed like the gateway signs)
        st, j = internal(PORTS["credit"], "POST", "/v1/admin/users/%s/credits" % uid,
                         {"amount": credits, "reason": "e2e chain"}, user=str(uuid.uuid4()),
                         role="admin", scope="full")
        if st not in (200, 201):
            raise RuntimeError("top-up failed: %d %r" % (st, j))
    return uid


def debit(uid, action="report.download"):
    """One committed debit (reserve + commit on credit-svc); returns its debit_id."""
    st, j = internal(PORTS["credit"], "POST", "/internal/reservations",
                     {"user_id": uid, "action": action}, user=uid, role="user", scope="full")
    if st != 201:
        raise RuntimeError("reserve: %d %r" % (st, j))
    st, j2 = internal(PORTS["credit"], "POST", "/internal/reservations/%s/commit" % j["reservation_id"],
                      user=uid, role="user", scope="full")
    if st != 200:
        raise RuntimeError("commit: %d %r" % (st, j2))
    return j2["debit_id"]


def debits(uid, n, workers=8, action="report.download"):
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(lambda _: debit(uid, action), range(n)))


def transfers(ids):
    """debit_id -> (status, tx_hash, nonce) from chain.transfers."""
    if not ids:
        return {}
    arr = "{" + ",".join(ids) + "}"
    rows = sql("SELECT debit_id, status, tx_hash, nonce FROM chain.transfers "
               "WHERE debit_id = ANY(:'p1'::uuid[])", arr)
    return {r[0]: (r[1], r[2], int(r[3])) for r in rows}


def wait_status(ids, statuses, timeout):
    deadline = time.monotonic() + timeout
    t = {}
    while time.monotonic() < deadline:
        t = transfers(ids)
        if len(t) == len(ids) and all(v[0] in statuses for v in t.values()):
            return t
        time.sleep(0.2)
    return t


def automine(on):
    rpc("evm_setAutomine", [bool(on)])


def db_now():
    return sql1("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")


def reconcile(since, until=None):
    until = until or db_now()
    r = call("GET", "/v1/admin/reconcile?since=%s&until=%s" % (since, until), token=ADMIN[0])
    return r.status, (r.json() if r.status == 200 else r.body[:300])


def reconcile_ok(name, since):
    # in-flight transfers are "not confirmed yet": give them time to settle
    deadline = time.monotonic() + 30
    st, rep = reconcile(since)
    while time.monotonic() < deadline and not (st == 200 and rep.get("ok")):
        time.sleep(1)
        st, rep = reconcile(since)
    check("reconciliation after %s: zero differences (%s debits)" % (
        name, rep.get("debits") if isinstance(rep, dict) else "?"),
        st == 200 and rep.get("ok") is True and rep["debits"] == rep["transfers"] == rep["onchain"],
        rep if not isinstance(rep, dict) else {k: rep[k] for k in ("missing", "duplicates", "mismatched",
                                                                      "debits", "transfers", "onchain")})


def pid_of(name):
    try:
        with open(os.path.join(STATE, "pids", name + ".pid")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def services_up():
    env = dict(os.environ, STATE_DIR=STATE, SERVICES_SKIP_BUILD="1", BUILD_DIR=BUILD)
    out = subprocess.run(["bash", os.path.join(REPO, "services", "up")], env=env,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError("services/up failed: " + out.stderr[-800:])


def chain_nonces(hashes):
    return sorted(int(rpc("eth_getTransactionByHash", [h])["nonce"], 16) for h in hashes)


def contiguous(ns):
    return len(ns) > 0 and len(set(ns)) == len(ns) and ns[-1] - ns[0] + 1 == len(ns)


def stack_env():
    """The environment chain-svc runs with (env file + chain.env)."""
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


def metrics():
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % PORTS["chain"], timeout=10) as r:
        return r.read().decode()


def gauge(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


ADMIN = [None]


# -------------------------------------------------------------------- tests

def test_admin_views(uid):
    r = call("GET", "/v1/admin/chain", token=ADMIN[0])
    j = r.json() if r.status == 200 else {}
    check("GET /v1/admin/chain (admin) -> chain id, token, master, balances, counts",
          r.status == 200 and j.get("chain_id") == 31337 and j.get("master_address") == MASTER
          and int(j["master_balances"]["eth"]) > 0 and int(j["master_balances"]["token"]) > 0
          and all(k in j for k in ("token_address", "pending", "confirmed", "failed")), r.body[:300])
    _, _, r = signup()
    tok = r.json()["access_token"]
    r = call("GET", "/v1/admin/chain", token=tok)
    check("GET /v1/admin/chain as a user -> 403", is_problem(r, 403), r.status)
    r = call("GET", "/v1/admin/reconcile", token=tok)
    check("GET /v1/admin/reconcile as a user -> 403", is_problem(r, 403), r.status)
    r = call("GET", "/v1/admin/reconcile?since=yesterday", token=ADMIN[0])
    check("reconcile with a malformed since -> 400", is_problem(r, 400), r.status)
    st, _ = internal(PORTS["chain"], "GET", "/v1/admin/chain", user=uid, role="user", scope="full")
    check("chain-svc itself refuses a user identity on admin routes (403)", st == 403, st)


def test_duplicates(uid):
    d = debit(uid)
    t = wait_status([d], {"confirmed"}, 30)
    if not check("a real debit is confirmed on chain", t.get(d, ("",))[0] == "confirmed", t):
        return
    payload = sql1("SELECT payload FROM credit.outbox WHERE payload LIKE :'p1'", "%" + d + "%")
    msg_id = json.loads(payload)["id"]
    nonce_before = sql1("SELECT next_nonce FROM chain.nonces")
    env = dict(os.environ)
    out = subprocess.run([AMQP_PUB, "credit.events", "credit.debit.committed", msg_id, "5"],
                         input=payload, capture_output=True, text=True, env=env, timeout=60)
    check("5 duplicate deliveries of the real envelope published (confirmed)", out.returncode == 0,
          out.stderr)
    # a duplicate with another id (a republished outbox row) too
    env2 = json.loads(payload)
    env2["id"] = str(uuid.uuid4())
    subprocess.run([AMQP_PUB, "credit.events", "credit.debit.committed", env2["id"], "3"],
                   input=json.dumps(env2), capture_output=True, text=True, env=env, timeout=60)
    time.sleep(3)
    t2 = transfers([d])
    check("duplicates -> still exactly one transfer, same hash, no nonce used",
          int(sql1("SELECT count(*) FROM chain.transfers WHERE debit_id = :'p1'", d)) == 1
          and t2[d][1] == t[d][1] and sql1("SELECT next_nonce FROM chain.nonces") == nonce_before,
          (t, t2))
    logs = rpc("eth_getLogs", [{"address": os.environ.get("CHAIN_TOKEN_ADDRESS"), "fromBlock": "0x0",
                                "topics": [None, None, "0x" + "0" * 24 + sql1(
                                    "SELECT lower(substr(to_address, 3)) FROM chain.transfers "
                                    "WHERE debit_id = :'p1'", d)]}])
    check("on chain: exactly one Transfer to the user's address",
          len([lg for lg in logs if lg["transactionHash"] == t[d][1]]) == 1 and len(logs) == 1,
          len(logs))

    # a corrupt duplicate (same debit id, another cost): poison -> DLQ after 5 deliveries
    bad = json.loads(payload)
    bad["id"] = str(uuid.uuid4())
    bad["body"]["cost"] = bad["body"]["cost"] + 7
    subprocess.run([AMQP_PUB, "credit.events", "credit.debit.committed", bad["id"]],
                   input=json.dumps(bad), capture_output=True, text=True, env=env, timeout=60)
    deadline = time.monotonic() + 30
    n = None
    while time.monotonic() < deadline:
        n = sql1("SELECT failures FROM chain.deliveries WHERE msg_id = :'p1'", bad["id"])
        if n is not None and int(n) >= 5:
            break
        time.sleep(0.3)
    time.sleep(2)
    n2 = sql1("SELECT failures FROM chain.deliveries WHERE msg_id = :'p1'", bad["id"])
    check("corrupt duplicate (other cost): 5 failed deliveries, then dead-lettered (no more)",
          n is not None and int(n) == 5 and int(n2) == 5, (n, n2))
    check("... and the stored transfer is unchanged",
          transfers([d])[d] == t2[d] and int(sql1("SELECT count(*) FROM chain.transfers "
                                                  "WHERE debit_id = :'p1'", d)) == 1)
    # malformed body -> DLQ at once, nothing stored
    before = sql1("SELECT count(*) FROM chain.transfers")
    mid = str(uuid.uuid4())
    out = subprocess.run([AMQP_PUB, "credit.events", "credit.debit.committed", mid],
                         input='{"v":1,"type":"credit.debit.committed","id":"%s","body":{"cost":"x"}}' % mid,
                         capture_output=True, text=True, env=env, timeout=60)
    time.sleep(1)
    check("malformed debit message -> rejected, nothing stored",
          out.returncode == 0 and sql1("SELECT count(*) FROM chain.transfers") == before)


def test_kill9(uid):
    """kill -9 after broadcast, before the receipt/ack of the result."""
    automine(False)
    try:
        ids = debits(uid, 4)
        t = wait_status(ids, {"submitted"}, 30)
        ok = check("automine off: 4 transfers broadcast and pending",
                   len(t) == 4 and all(v[0] == "submitted" for v in t.values()), t)
        pid = pid_of("chain-svc")
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
        # more debits while chain-svc is dead: they wait in the queue
        more = debits(uid, 3)
    finally:
        automine(True)
        rpc("evm_mine", [])
    services_up()
    if not ok:
        return
    t2 = wait_status(ids + more, {"confirmed"}, 60)
    check("after restart: every debit confirmed",
          len(t2) == 7 and all(v[0] == "confirmed" for v in t2.values()), t2)
    check("killed mid-flight: one transfer each, the same hash and nonce as before the kill",
          all(t2[d][1] == t[d][1] and t2[d][2] == t[d][2] for d in ids), (t, t2))
    rc_ok = all(rpc("eth_getTransactionReceipt", [t2[d][1]])["status"] == "0x1" for d in ids + more)
    check("receipts status 1 for all 7", rc_ok)
    check("nonces of the 7 contiguous on chain", contiguous(chain_nonces([t2[d][1] for d in ids + more])))


def test_stuck(uid):
    automine(False)
    ok = False
    d = None
    try:
        d = debit(uid)
        t = wait_status([d], {"submitted"}, 30)
        ok = check("stuck: transfer broadcast while automine is off", t.get(d, ("",))[0] == "submitted", t)
        first = t[d][1] if ok else None
        rpc("anvil_setNextBlockBaseFeePerGas", [hex(80 * 10 ** 9)])
        rpc("evm_mine", [])
        check("base fee raised to 80 gwei: the transfer is not mined",
              rpc("eth_getTransactionReceipt", [first]) is None if first else False)
    finally:
        automine(True)
    if not ok:
        return
    t2 = wait_status([d], {"confirmed"}, 60)
    final = t2.get(d, ("", ""))[1]
    attempts = sql("SELECT reason, outcome, tx_hash FROM chain.transfer_attempts "
                   "WHERE debit_id = :'p1' ORDER BY id", d)
    check("stuck transfer replaced (same nonce, raised fees) and confirmed",
          t2.get(d, ("",))[0] == "confirmed" and final != first and len(attempts) >= 2
          and attempts[0][0] == "initial" and attempts[-1][0] == "fee_bump", attempts)
    fees = sql("SELECT max_fee, tip FROM chain.transfer_attempts WHERE debit_id = :'p1' ORDER BY id", d)
    check("each replacement raised max fee and tip by >= 12.5 %",
          all(int(b[0]) * 8 >= int(a[0]) * 9 and int(b[1]) * 8 >= int(a[1]) * 9
              for a, b in zip(fees, fees[1:])), fees)
    tx = rpc("eth_getTransactionByHash", [final])
    check("the mined tx is the replacement with the original nonce",
          tx and int(tx["nonce"], 16) == t[d][2] and rpc("eth_getTransactionReceipt", [first]) is None)
    deadline = time.monotonic() + 15
    row = {}
    while time.monotonic() < deadline:
        rows = [x for x in (audit_rows(ADMIN[0], uid) or []) if x.get("debit_id") == d]
        row = rows[0] if rows else {}
        if row.get("chain_status") == "confirmed" and row.get("tx_hash") == final:
            break
        time.sleep(0.3)
    check("the admin audit shows the final (replacement) hash, confirmed",
          row.get("tx_hash") == final and row.get("chain_status") == "confirmed", row)


def test_dropped(uid):
    automine(False)
    ok = False
    try:
        d = debit(uid)
        t = wait_status([d], {"submitted"}, 30)
        ok = check("dropped: transfer pending", t.get(d, ("",))[0] == "submitted", t)
        if ok:
            rpc("anvil_dropTransaction", [t[d][1]])
            check("anvil_dropTransaction removed it from the pool",
                  rpc("eth_getTransactionByHash", [t[d][1]]) is None)
            time.sleep(5)  # > CHAIN_DROPPED_AFTER_S of the stack (3 s)
            check("chain-svc re-sent the dropped tx (the node knows the same hash again)",
                  rpc("eth_getTransactionByHash", [t[d][1]]) is not None)
    finally:
        automine(True)
        rpc("evm_mine", [])
    if not ok:
        return
    t2 = wait_status([d], {"confirmed"}, 30)
    check("dropped tx re-sent unchanged: confirmed with the same hash, one attempt",
          t2[d][0] == "confirmed" and t2[d][1] == t[d][1]
          and sql1("SELECT count(*) FROM chain.transfer_attempts WHERE debit_id = :'p1'", d) == "1", t2)


def test_rollback(uid):
    """The node loses blocks after transfers were confirmed (evm_snapshot before
    the debits, evm_revert after their confirmation: a deterministic rollback
    deeper than CHAIN_CONFIRMATIONS). chain-svc must notice the on-chain nonce
    fell behind, put the vanished transfers back to submitted and re-send the
    same signed transactions until every one is on chain again."""
    before = gauge(metrics(), "chain_rollbacks_total") or 0
    snap = rpc("evm_snapshot", [])
    ds = debits(uid, 6, workers=3)
    t = wait_status(ds, {"confirmed"}, 60)
    ok = check("rollback: 6 debits confirmed before the revert",
               len(t) == 6 and all(v[0] == "confirmed" for v in t.values()), t)
    if not ok:
        return
    hashes = {d: v[1] for d, v in t.items()}
    head = int(rpc("eth_blockNumber", []), 16)
    check("evm_revert to the snapshot taken before the debits", rpc("evm_revert", [snap]) is True)
    check("the confirmed transfers are no longer on chain (no receipts, head went back)",
          all(rpc("eth_getTransactionReceipt", [h]) is None for h in hashes.values())
          and int(rpc("eth_blockNumber", []), 16) < head)
    t0 = time.monotonic()
    deadline = t0 + 60
    on_chain = False
    t2 = {}
    while time.monotonic() < deadline:
        t2 = transfers(ds)
        if all(v[0] == "confirmed" for v in t2.values()) and \
                all(rpc("eth_getTransactionReceipt", [h]) is not None for h in hashes.values()):
            on_chain = True
            break
        time.sleep(0.3)
    check("rollback recovered in %.1f s: every debit confirmed again with a receipt on chain"
          % (time.monotonic() - t0), on_chain, t2)
    check("same signed transactions re-sent (same hashes, one attempt each)",
          all(t2.get(d, ("", ""))[1] == h for d, h in hashes.items())
          and sql1("SELECT count(*) FROM chain.transfer_attempts WHERE debit_id = ANY(:'p1'::uuid[])",
                   "{" + ",".join(ds) + "}") == "6", t2)
    check("one transfer per debit, nonces contiguous on chain",
          len(t2) == 6 and contiguous(chain_nonces(list(hashes.values()))))
    pending = int(rpc("eth_getTransactionCount", [MASTER, "pending"]), 16)
    latest = int(rpc("eth_getTransactionCount", [MASTER, "latest"]), 16)
    nxt = int(sql1("SELECT max(nonce) FROM chain.transfers") or -1) + 1
    check("master's on-chain nonce caught up with the allocator (no gap)",
          latest == pending == nxt, (latest, pending, nxt))
    check("chain_rollbacks_total counted the rollback",
          (gauge(metrics(), "chain_rollbacks_total") or 0) >= before + 1)
    log = open(os.path.join(STATE, "logs", "chain-svc.log")).read() \
        if os.path.exists(os.path.join(STATE, "logs", "chain-svc.log")) else ""
    check("error event 'chain rollback detected' logged", "chain rollback detected" in log)
    # the audit's chain_status is confirmed again with the same hash
    deadline = time.monotonic() + 30
    rows = []
    while time.monotonic() < deadline:
        rows = [r for r in (audit_rows(ADMIN[0], uid) or []) if r.get("debit_id") in hashes]
        if len(rows) == 6 and all(r.get("chain_status") == "confirmed"
                                  and r.get("tx_hash") == hashes[r["debit_id"]] for r in rows):
            break
        time.sleep(0.5)
    check("audit: confirmed with the same tx hash after the rollback",
          len(rows) == 6 and all(r.get("chain_status") == "confirmed"
                                 and r.get("tx_hash") == hashes[r["debit_id"]] for r in rows),
          rows[:2])


def test_reinclusion(uid):
    """A reorg that keeps the transactions: the blocks holding confirmed
    transfers are replaced by others (evm_revert, two empty blocks, the same
    signed transactions sent again and mined in one later block), so the
    master's nonce never falls behind. chain-svc must notice by the recorded
    block hash and record each transfer at the block that holds it now."""
    before = gauge(metrics(), "chain_rollbacks_total") or 0
    snap = rpc("evm_snapshot", [])
    ds = debits(uid, 4, workers=2)
    t = wait_status(ds, {"confirmed"}, 60)
    ok = check("re-inclusion: 4 debits confirmed before the reorg",
               len(t) == 4 and all(v[0] == "confirmed" for v in t.values()), t)
    if not ok:
        return
    arr = "{" + ",".join(ds) + "}"
    raws = [r[0] for r in sql("SELECT raw_tx FROM chain.transfers WHERE debit_id = ANY(:'p1'::uuid[]) "
                              "ORDER BY nonce", arr)]
    old = {r[0]: (int(r[1]), r[2]) for r in sql(
        "SELECT debit_id, block_number, block_hash FROM chain.transfers "
        "WHERE debit_id = ANY(:'p1'::uuid[])", arr)}
    check("re-inclusion: block number and block hash recorded from the receipts",
          all(h and rpc("eth_getTransactionReceipt", [t[d][1]])["blockHash"] == h
              for d, (_, h) in old.items()), old)
    automine(False)
    try:
        check("re-inclusion: evm_revert to the snapshot", rpc("evm_revert", [snap]) is True)
        rpc("evm_mine", [])
        rpc("evm_mine", [])
        for raw in raws:
            rpc("eth_sendRawTransaction", [raw])
        rpc("evm_mine", [])
    finally:
        automine(True)
    rc = {d: rpc("eth_getTransactionReceipt", [t[d][1]]) for d in ds}
    check("re-inclusion: the same transactions are on chain again, in other blocks",
          all(r is not None and (int(r["blockNumber"], 16), r["blockHash"]) != old[d]
              for d, r in rc.items()))
    want = {d: (int(r["blockNumber"], 16), r["blockHash"]) for d, r in rc.items() if r}
    deadline = time.monotonic() + 30
    now = {}
    while time.monotonic() < deadline:
        now = {r[0]: (r[1], int(r[2] or -1), r[3]) for r in sql(
            "SELECT debit_id, status, block_number, block_hash FROM chain.transfers "
            "WHERE debit_id = ANY(:'p1'::uuid[])", arr)}
        if len(now) == 4 and all(v[0] == "confirmed" and (v[1], v[2]) == want.get(d)
                                 for d, v in now.items()):
            break
        time.sleep(0.3)
    check("re-inclusion: every transfer confirmed again at the block that holds it now",
          len(now) == 4 and all(v[0] == "confirmed" and (v[1], v[2]) == want.get(d)
                                for d, v in now.items()), (now, want))
    check("re-inclusion: same hashes, one attempt each, nothing re-signed",
          transfers(ds) == {d: ("confirmed", t[d][1], t[d][2]) for d in ds}
          and sql1("SELECT count(*) FROM chain.transfer_attempts WHERE debit_id = ANY(:'p1'::uuid[])",
                   arr) == "4")
    check("re-inclusion: chain_rollbacks_total counted it",
          (gauge(metrics(), "chain_rollbacks_total") or 0) >= before + 1)
    deadline = time.monotonic() + 30
    rows = []
    while time.monotonic() < deadline:
        rows = [r for r in (audit_rows(ADMIN[0], uid) or []) if r.get("debit_id") in want]
        if len(rows) == 4 and all(r.get("block_number") == want[r["debit_id"]][0] for r in rows):
            break
        time.sleep(0.5)
    check("re-inclusion: the audit log shows the new block of each transfer",
          len(rows) == 4 and all(r.get("chain_status") == "confirmed"
                                 and r.get("block_number") == want[r["debit_id"]][0] for r in rows),
          rows[:2])


def test_low_funds(uid):
    eth_before = rpc("eth_getBalance", [MASTER, "latest"])
    token = os.environ.get("CHAIN_TOKEN_ADDRESS")
    # OpenZeppelin 5 ERC20: _balances is the first storage slot
    slot = rpc("web3_sha3", ["0x" + "0" * 24 + MASTER[2:].lower() + "0" * 64])
    tok_before = rpc("eth_getStorageAt", [token, slot, "latest"])
    check("the master's token balance slot found (OpenZeppelin _balances[master])",
          int(tok_before, 16) > 0, tok_before)
    ids = []
    try:
        rpc("anvil_setBalance", [MASTER, hex(10 ** 6)])
        ids = debits(uid, 3)
        time.sleep(3)
        t = transfers(ids)
        m = metrics()
        check("master without gas: transfers signed but parked (not broadcast)",
              len(t) == 3 and all(v[0] == "signed" for v in t.values()), t)
        check("gauge chain_master_low_eth 1 and chain_transfers_parked >= 3 in /metrics",
              gauge(m, "chain_master_low_eth") == 1 and (gauge(m, "chain_transfers_parked") or 0) >= 3,
              [line for line in m.splitlines() if "chain_" in line])
        r = call("GET", "/v1/admin/chain", token=ADMIN[0])
        check("/v1/admin/chain says parked.low_eth", r.status == 200 and r.json()["parked"]["low_eth"],
              r.body[:300])
        rpc("anvil_setBalance", [MASTER, eth_before])
        t = wait_status(ids, {"confirmed"}, 30)
        check("after the ETH top-up the parked transfers drain and confirm",
              len(t) == 3 and all(v[0] == "confirmed" for v in t.values()), t)
        # tokens
        rpc("anvil_setStorageAt", [token, slot, "0x" + "0" * 64])
        time.sleep(1.5)  # > CHAIN_BALANCE_CHECK_MS of the stack: the next broadcast sees it
        ids2 = debits(uid, 2)
        time.sleep(3)
        t = transfers(ids2)
        m = metrics()
        check("master without tokens: parked, gauge chain_master_low_token 1",
              all(v[0] == "signed" for v in t.values()) and gauge(m, "chain_master_low_token") == 1, t)
        rpc("anvil_setStorageAt", [token, slot, tok_before])
        t = wait_status(ids2, {"confirmed"}, 30)
        check("after the token top-up they drain and confirm (no reverted transfer)",
              all(v[0] == "confirmed" for v in t.values()), t)
        log = open(os.path.join(STATE, "logs", "chain-svc.log")).read()
        check("one ALERT line per outage in the log",
              log.count("ALERT master wallet") >= 2 and gauge(metrics(), "chain_master_low_eth") == 0)
    finally:
        rpc("anvil_setBalance", [MASTER, eth_before])
        rpc("anvil_setStorageAt", [token, slot, tok_before])


def test_node_outage(uid):
    """anvil stopped 30 s in the middle of a stream of debits."""
    anvil = pid_of("anvil")
    produced = []
    errors = []

    def stream():
        for _ in range(30):
            try:
                produced.append(debit(uid))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            time.sleep(0.4)

    th = threading.Thread(target=stream)
    th.start()
    time.sleep(3)
    nonce_before_outage = int(sql1("SELECT next_nonce FROM chain.nonces"))
    os.kill(anvil, signal.SIGTERM)  # graceful: anvil writes its --state file
    while alive(anvil):
        time.sleep(0.1)
    t_down = time.monotonic()
    time.sleep(30)
    check("while the node is down no nonce is burnt (allocator unchanged for new debits)",
          int(sql1("SELECT next_nonce FROM chain.nonces")) <= nonce_before_outage + 8)
    services_up()
    th.join()
    print("info - node down for %.0f s" % (time.monotonic() - t_down))
    check("30 debits committed during the outage window", len(produced) == 30 and not errors, errors[:3])
    t = wait_status(produced, {"confirmed"}, 90)
    check("after the node is back every transfer is confirmed",
          len(t) == 30 and all(v[0] == "confirmed" for v in t.values()),
          {k: v for k, v in t.items() if v[0] != "confirmed"})
    ns = chain_nonces([v[1] for v in t.values()])
    check("their on-chain nonces are contiguous", contiguous(ns), ns)


def test_two_instances(uid_list):
    env = stack_env()
    env["CHAIN_PORT"] = str(SECOND_PORT)
    log = open(os.path.join(STATE, "logs", "chain-svc-2.log"), "wb")
    p2 = subprocess.Popen([CHAIN_BIN], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        up = False
        while time.monotonic() < deadline and not up:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % SECOND_PORT, timeout=2) as r:
                    up = r.status == 200
            except OSError:
                time.sleep(0.2)
        if not check("second chain-svc instance on port %d ready (same wallet, same DB)" % SECOND_PORT, up):
            return
        nonce0 = int(sql1("SELECT next_nonce FROM chain.nonces"))
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(uid_list)) as ex:
            parts = list(ex.map(lambda u: debits(u, 500 // len(uid_list), workers=3), uid_list))
        ids = [d for p in parts for d in p]
        t_commit = time.monotonic() - t0
        t = wait_status(ids, {"confirmed"}, 240)
        t_all = time.monotonic() - t0
        check("500 debits -> 500 confirmed transfers", len(t) == 500
              and all(v[0] == "confirmed" for v in t.values()), len(t))
        nonces = sorted(v[2] for v in t.values())
        check("500 distinct, contiguous nonces from the one allocator",
              contiguous(nonces) and nonces[0] >= nonce0, (nonces[:3], nonces[-3:]))
        hashes = {v[1] for v in t.values()}
        check("500 distinct hashes, each mined once",
              len(hashes) == 500 and contiguous(chain_nonces(list(hashes))))
        w1 = sql1("SELECT count(*) FROM chain.transfers WHERE debit_id = ANY(:'p1'::uuid[])",
                  "{" + ",".join(ids) + "}")
        check("no duplicate transfer rows", w1 == "500", w1)
        both = open(os.path.join(STATE, "logs", "chain-svc-2.log")).read().count("transfer signed")
        check("both instances signed part of the load", both > 0, both)
        lat = sql("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY e), "
                  "percentile_cont(0.95) WITHIN GROUP (ORDER BY e), "
                  "extract(epoch FROM max(ce) - min(ae)) FROM ("
                  "  SELECT extract(epoch FROM t.confirmed_at - a.ts) * 1000 AS e, "
                  "         t.confirmed_at AS ce, a.ts AS ae "
                  "  FROM chain.transfers t JOIN credit.audit a ON a.debit_id = t.debit_id "
                  "  WHERE t.debit_id = ANY(:'p1'::uuid[])) x", "{" + ",".join(ids) + "}")
        p50, p95, span = (float(x) for x in lat[0])
        print("info - 500 debits: committed in %.1f s, all confirmed after %.1f s; first commit -> "
              "last confirmation %.1f s = %.0f transfers/s; commit -> confirmed p50 %.0f ms, p95 %.0f ms"
              % (t_commit, t_all, span, 500 / span, p50, p95))
    finally:
        p2.send_signal(signal.SIGTERM)
        try:
            p2.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p2.kill()
        log.close()


def test_reconcile_detects(uid, since):
    d = debit(uid)
    wait_status([d], {"confirmed"}, 30)
    fake = str(uuid.uuid4())
    sql("INSERT INTO chain.transfers (debit_id, user_id, from_address, to_address, cost, amount, nonce, "
        "raw_tx, tx_hash, status) VALUES (:'p1', :'p2', :'p3', :'p3', 1, 1000000000000000000, "
        "9000000000, '0x00', :'p4', 'confirmed')", fake, uid, MASTER, "0x" + uuid.uuid4().hex * 2)
    try:
        st, rep = reconcile(since)
        check("injected transfer without a debit -> reported as a duplicate, ok false",
              st == 200 and rep["ok"] is False and any(x.get("debit_id") == fake for x in rep["duplicates"]),
              rep)
    finally:
        sql("DELETE FROM chain.transfers WHERE debit_id = :'p1'", fake)
    amount = sql1("SELECT amount FROM chain.transfers WHERE debit_id = :'p1'", d)
    sql("UPDATE chain.transfers SET amount = amount + 1 WHERE debit_id = :'p1'", d)
    try:
        st, rep = reconcile(since)
        check("injected amount change -> mismatched amount and on-chain amount",
              st == 200 and rep["ok"] is False
              and {x["field"] for x in rep["mismatched"] if x["debit_id"] == d} >= {"amount", "onchain_amount"},
              rep.get("mismatched") if isinstance(rep, dict) else rep)
    finally:
        sql("UPDATE chain.transfers SET amount = :'p2' WHERE debit_id = :'p1'", d, amount)
    # a debit whose transfer vanished (hidden by renaming its id for a moment)
    hidden = str(uuid.uuid4())
    sql("ALTER TABLE chain.transfer_attempts DROP CONSTRAINT IF EXISTS transfer_attempts_debit_id_fkey; "
        "UPDATE chain.transfers SET debit_id = :'p2' WHERE debit_id = :'p1'", d, hidden)
    try:
        st, rep = reconcile(since)
        check("injected missing transfer -> the debit is listed as missing",
              st == 200 and rep["ok"] is False and any(x["debit_id"] == d for x in rep["missing"]),
              rep.get("missing") if isinstance(rep, dict) else rep)
    finally:
        sql("UPDATE chain.transfers SET debit_id = :'p1' WHERE debit_id = :'p2'; "
            "ALTER TABLE chain.transfer_attempts ADD CONSTRAINT transfer_attempts_debit_id_fkey "
            "FOREIGN KEY (debit_id) REFERENCES chain.transfers (debit_id)", d, hidden)
    reconcile_ok("the injections were removed", since)
    # the command line agrees
    env = stack_env()
    out = subprocess.run([CHAIN_BIN, "reconcile", "--since", since, "--until", db_now()], env=env,
                         capture_output=True, text=True, timeout=120)
    try:  # log lines (yder console) may precede the report
        rep = json.JSONDecoder().raw_decode(out.stdout[out.stdout.index("{\n"):])[0]
    except ValueError:
        rep = {}
    check("`chain-svc reconcile --since --until` exits 0 with ok:true",
          out.returncode == 0 and rep.get("ok") is True, (out.returncode, out.stderr[-300:]))


def test_keyfile_and_deploy():
    mnemonic = "abandon " * 11 + "about"
    schema = "chain_e2e_" + uuid.uuid4().hex[:8]
    tmp = tempfile.mkdtemp()
    kf = os.path.join(tmp, "master.key")
    env = stack_env()
    env.pop("CHAIN_MNEMONIC", None)
    env.pop("CHAIN_TOKEN_ADDRESS", None)
    env["CHAIN_KEYFILE_PASSPHRASE"] = "e2e passphrase " + uuid.uuid4().hex
    try:
        out = subprocess.run([CHAIN_BIN, "keyfile-create", kf], input=mnemonic + "\n", env=env,
                             capture_output=True, text=True, timeout=60)
        m = re.search(r"master address (0x[0-9a-fA-F]{40})", out.stdout)
        check("`chain-svc keyfile-create` encrypts the mnemonic (mode 600, no plaintext)",
              out.returncode == 0 and m and (os.stat(kf).st_mode & 0o777) == 0o600
              and b"abandon" not in open(kf, "rb").read(), (out.returncode, out.stderr))
        if not m:
            return
        master = m.group(1)
        rpc("anvil_setBalance", [master, hex(10 ** 20)])
        pg = "postgresql://postgres@/saas?host=%s/pgsock&port=%s" % (
            STATE, os.environ.get("PG_PORT", "25432"))
        env.update(CHAIN_KEYFILE=kf, CHAIN_DATABASE_URL=pg, CHAIN_DB_SCHEMA=schema)
        out = subprocess.run([CHAIN_BIN, "deploy-token"], env=env, capture_output=True, text=True,
                             timeout=180)
        m2 = re.search(r"CHAIN_TOKEN_ADDRESS=(0x[0-9a-fA-F]{40})", out.stdout)
        check("`chain-svc deploy-token` (key file, own EIP-1559 signing) deploys the token",
              out.returncode == 0 and m2, (out.returncode, out.stderr[-500:]))
        if not m2:
            return
        addr = m2.group(1)
        code = rpc("eth_getCode", [addr, "latest"])
        dec = int(rpc("eth_call", [{"to": addr, "data": "0x313ce567"}, "latest"]), 16)
        bal = int(rpc("eth_call", [{"to": addr, "data": "0x70a08231" + "0" * 24 + master[2:].lower()},
                                   "latest"]), 16)
        check("code at the address, decimals 18, master holds 10^9 tokens",
              len(code) > 2 and dec == 18 and bal == 10 ** 27, (len(code), dec, bal))
        row = sql("SELECT address, status, nonce FROM %s.token_deployments" % schema)
        check("deployment persisted in the schema (deployed)", row and row[0][0] == addr
              and row[0][1] == "deployed", row)
        out = subprocess.run([CHAIN_BIN, "deploy-token"], env=env, capture_output=True, text=True,
                             timeout=60)
        check("running deploy-token again returns the same address (no second deployment)",
              out.returncode == 0 and addr in out.stdout, out.stdout)
        env["CHAIN_KEYFILE_PASSPHRASE"] = "a wrong passphrase!!"
        out = subprocess.run([CHAIN_BIN, "deploy-token"], env=env, capture_output=True, text=True,
                             timeout=60)
        check("wrong key file passphrase -> refuses to start, no key material in the output",
              out.returncode != 0 and "abandon" not in out.stdout + out.stderr, out.stderr[-200:])
    finally:
        sql("DROP SCHEMA IF EXISTS %s CASCADE" % schema)
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def main():
    global SECOND_PORT
    if SECOND_PORT is None:
        # helper stacks use CHAIN_PORT 220K4 and own the test ports 23K00-23K99
        cp = int(os.environ.get("CHAIN_PORT", "21004"))
        SECOND_PORT = 23000 + (cp // 10 % 10) * 100 + 50 if 22000 <= cp < 23000 else cp + 10
    ADMIN[0] = admin_token()
    since = db_now()
    automine(True)
    uid = new_user(400)
    try:
        test_admin_views(uid)
        test_duplicates(uid)
        reconcile_ok("duplicate deliveries", since)
        test_kill9(uid)
        reconcile_ok("kill -9", since)
        test_stuck(uid)
        reconcile_ok("the fee bump", since)
        test_dropped(uid)
        reconcile_ok("the dropped transaction", since)
        test_rollback(uid)
        reconcile_ok("the chain rollback", since)
        test_reinclusion(uid)
        reconcile_ok("the re-inclusion in other blocks", since)
        test_low_funds(uid)
        reconcile_ok("parking on low funds", since)
        test_node_outage(uid)
        reconcile_ok("the node outage", since)
        users = [new_user(300) for _ in range(5)]
        test_two_instances(users)
        reconcile_ok("two instances x 500 debits", since)
        test_reconcile_detects(uid, since)
        test_keyfile_and_deploy()
    finally:
        try:
            automine(True)
        except Exception:  # noqa: BLE001
            pass


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    run(main)
