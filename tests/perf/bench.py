#!/usr/bin/env python3
"""Driver of tests/perf/bench.sh (run that, not this): ceilings and workloads
W1-W4 against the running stack (. services/env.sh), one Markdown table to
docs/perf.md. Env: PERF_DURATION (s, default 10), PERF_CONNS (default 16),
PERF_USERS (W2 users, default 50), PERF_HELLO_BIN, PERF_AMQP_PUB_BIN,
PERF_RATE_FRACTION (fixed-rate rows at this fraction of W1/W2 peak, 0.7; 0 = off),
PERF_RATE_CONNS (connections of the fixed-rate rows, 64), PERF_LOGINS (parallel
logins of the login-burst rows, 200; 0 = off), PERF_SOAK (s of combined W1+W2
load with per-daemon RSS sampled every PERF_SOAK_STEP s, default 0 = off)."""
import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import client as e2e  # noqa: E402

DUR = int(os.environ.get("PERF_DURATION", "10"))
CONNS = int(os.environ.get("PERF_CONNS", "16"))
USERS = int(os.environ.get("PERF_USERS", "50"))
RATE_FRACTION = float(os.environ.get("PERF_RATE_FRACTION", "0.7"))
RATE_CONNS = int(os.environ.get("PERF_RATE_CONNS", "64"))
LOGINS = int(os.environ.get("PERF_LOGINS", "200"))
SOAK = int(os.environ.get("PERF_SOAK", "0"))
SOAK_STEP = int(os.environ.get("PERF_SOAK_STEP", "10"))
STATE = os.environ["STACK_STATE_DIR"] if "STACK_STATE_DIR" in os.environ else os.environ["STATE_DIR"]
GW = os.environ.get("GATEWAY_URL") or os.environ["STACK_GATEWAY_URL"]
PGSOCK = os.path.join(STATE, "pgsock")
# the stack env (services/env.sh) names the port in STACK_PG_ADMIN; PG_PORT wins when exported
PG_PORT = os.environ.get("PG_PORT") or re.search(r"\bport=(\d+)", os.environ["STACK_PG_ADMIN"]).group(1)
CLK = os.sysconf("SC_CLK_TCK")
DAEMONS = ["gateway", "auth-svc", "credit-svc", "storage-svc", "chain-svc", "postgres", "rabbitmq", "s3rver",
           "anvil"]
OURS = DAEMONS[:5]


def log(msg):
    print("[perf] " + msg, file=sys.stderr, flush=True)


def psql(sql, db="saas", opts=None):
    env = dict(os.environ, PGOPTIONS=opts or "")
    r = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", PGSOCK, "-p", PG_PORT,
                        "-U", "postgres", "-d", db, "-c", sql], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("psql: " + r.stderr.strip())
    return r.stdout.strip()


# ---------------------------------------------------------------- sampling
def tree(pid):
    """pid and its descendants (postgres backends, the Erlang VM's children)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            v = f.read().rsplit(")", 1)[1].split()
        # utime + stime + cutime + cstime: reaped children (postgres backends
        # that exited during the run) land in their parent's c*time
        return int(v[11]) + int(v[12]) + int(v[13]) + int(v[14])
    except OSError:
        return 0


def status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def daemon_pids():
    out = {}
    for d in DAEMONS:
        try:
            with open(os.path.join(STATE, "pids", d + ".pid")) as f:
                out[d] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


class Sampler:
    """CPU% (of one core, whole process tree) and peak VmRSS per daemon while running."""

    def __init__(self, extra=None):
        self.pids = daemon_pids()
        self.pids.update(extra or {})
        self.trees = {d: tree(p) for d, p in self.pids.items()}
        self.peak = {d: 0 for d in self.pids}
        self.stop = threading.Event()

    def _rss(self, d):
        return sum(status_kb(p, "VmRSS") for p in self.trees[d])

    def __enter__(self):
        self.t0 = time.monotonic()
        self.c0 = {d: sum(cpu_ticks(p) for p in t) for d, t in self.trees.items()}
        self.th = threading.Thread(target=self._loop, daemon=True)
        self.th.start()
        return self

    def _loop(self):
        n = 0
        while not self.stop.wait(0.25):
            n += 1
            if n % 8 == 0:  # new postgres backends
                self.trees = {d: tree(p) for d, p in self.pids.items()}
            for d in self.pids:
                self.peak[d] = max(self.peak[d], self._rss(d))

    def __exit__(self, *a):
        self.stop.set()
        self.th.join()
        dt = time.monotonic() - self.t0
        self.trees = {d: tree(p) for d, p in self.pids.items()}
        self.cpu = {d: 100.0 * (sum(cpu_ticks(p) for p in t) - self.c0[d]) / CLK / dt
                    for d, t in self.trees.items()}
        self.hwm = {d: status_kb(self.pids[d], "VmHWM") for d in self.pids}

    def cols(self):
        return {d: (self.cpu.get(d, 0.0), self.peak.get(d, 0)) for d in self.pids}


# ---------------------------------------------------------------- runners
def wrk(url, script, extra_env, conns=CONNS, dur=DUR, extra_pids=None, rate=0):
    env = dict(os.environ, PERF_DIR=HERE, PERF_THREADS="2", PERF_RATE="%d" % rate, **extra_env)
    cmd = ["wrk", "-t", "2", "-c", str(conns), "-d", "%ds" % dur, "--timeout", "10s",
           "-s", os.path.join(HERE, script), url]
    with Sampler(extra_pids) as s:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    m = re.search(r"PERFJSON (\{.*\})", r.stdout)
    if not m:
        raise RuntimeError("wrk failed: %s %s" % (r.stdout[-500:], r.stderr[-500:]))
    j = json.loads(m.group(1))
    errs = j["connect"] + j["read"] + j["write"] + j["status"] + j["timeout"]
    return {"rps": j["requests"] / (j["duration_us"] / 1e6), "p50": j["p50"] / 1000.0,
            "p99": j["p99"] / 1000.0, "max": j["max"] / 1000.0, "errors": errs,
            "n": j["requests"], "daemons": s.cols(), "hwm": s.hwm, "late": j.get("late", 0),
            "offered": rate}


def wrk_proc(url, script, extra_env, conns, dur):
    """wrk in the background (soak); returns the Popen (stdout = its report)."""
    env = dict(os.environ, PERF_DIR=HERE, PERF_THREADS="1", PERF_RATE="0", **extra_env)
    return subprocess.Popen(["wrk", "-t", "1", "-c", str(conns), "-d", "%ds" % dur, "--timeout", "10s",
                             "-s", os.path.join(HERE, script), url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


# ---------------------------------------------------------------- login burst
def login_burst(creds, direct):
    """LOGINS logins at once (one thread each, released together): through
    the gateway (rate limiter first) or straight to auth-svc (signed like the
    gateway: no limiter, so the Argon2id slots are what bounds it). Returns
    the row dict: req/s = answers / wall time, latency per answer, status
    counts, auth-svc peak RSS."""
    go = threading.Event()
    out = []
    lock = threading.Lock()

    def one(i):
        email, pw = creds[i % len(creds)]
        body = {"email": email, "password": pw}
        go.wait()
        t0 = time.monotonic()
        try:
            if direct:
                r = e2e.signed_call("auth", "POST", "/v1/auth/login", body)
            else:
                r = e2e.call("POST", "/v1/auth/login", body)
            st, ra = r.status, r.headers.get("Retry-After") if r.headers else None
        except Exception:  # noqa: BLE001 - a refused/reset connection is an error row
            st, ra = 0, None
        with lock:
            out.append((st, (time.monotonic() - t0) * 1000.0, ra))

    alog = os.path.join(STATE, "logs", "auth-svc.log")
    try:
        log_off = os.path.getsize(alog)
    except OSError:
        log_off = None
    ths = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(LOGINS)]
    for t in ths:
        t.start()
    with Sampler() as s:
        t0 = time.monotonic()
        go.set()
        for t in ths:
            t.join(120)
        dt = time.monotonic() - t0
    lat = sorted(x[1] for x in out)
    counts = {}
    for st, _, _ in out:
        counts[st] = counts.get(st, 0) + 1
    rej = sorted(x[1] for x in out if x[0] in (429, 503))
    no_ra = sum(1 for x in out if x[0] in (429, 503) and not x[2])
    # auth-svc's own duration of each 503 (its access log line), without the
    # client's and the machine's scheduling around it
    srv = []
    if log_off is not None:
        with open(alog, errors="replace") as f:
            f.seek(log_off)
            for line in f:
                m = re.search(r"POST /v1/auth/login -> 503 \(([0-9.]+) ms\)", line)
                if m:
                    srv.append(float(m.group(1)))
    srv.sort()
    return {"rps": len(out) / dt, "p50": pct(lat, .5), "p99": pct(lat, .99), "max": lat[-1] if lat else 0,
            "errors": sum(v for k, v in counts.items() if k not in (200, 429, 503)), "n": len(out),
            "daemons": s.cols(), "hwm": s.hwm, "counts": counts, "srv503": srv,
            "rej_p50": pct(rej, .5), "rej_max": rej[-1] if rej else 0, "no_retry_after": no_ra}


# ---------------------------------------------------------------- soak
def soak(tok, keys):
    """W1 + W2 together for SOAK s; VmRSS of each daemon every SOAK_STEP s."""
    pids = daemon_pids()
    procs = [wrk_proc(GW + "/v1/credits", "w1_credits.lua", {"PERF_TOKEN": tok}, max(CONNS // 2, 1), SOAK),
             wrk_proc(GW + "/v1/service/metadata/x", "w2_metadata.lua", {"PERF_KEYS": keys},
                      max(CONNS // 2, 1), SOAK)]
    samples = []
    t0 = time.monotonic()
    while True:
        samples.append((time.monotonic() - t0, {d: status_kb(p, "VmRSS") for d, p in pids.items() if d in OURS}))
        if all(p.poll() is not None for p in procs) or time.monotonic() - t0 > SOAK + 30:
            break
        time.sleep(SOAK_STEP)
    res = []
    for p in procs:
        o, _ = p.communicate()
        m = re.search(r"PERFJSON (\{.*\})", o or "")
        res.append(json.loads(m.group(1)) if m else None)
    return samples, res


def ceiling_hello():
    # stand-in port range of stack K (23K00-23K99, K = last digit of GW_PORT)
    port = int(os.environ.get("PERF_HELLO_PORT", "0")) or (23090 + 100 * (int(os.environ["GW_PORT"]) % 10))
    p = subprocess.Popen([os.environ["PERF_HELLO_BIN"], str(port), os.environ["GW_TLS_CERT_FILE"],
                          os.environ["GW_TLS_KEY_FILE"]], stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen("https://127.0.0.1:%d/hello" % port, context=e2e.ctx, timeout=1)
                break
            except OSError:
                if p.poll() is not None:
                    raise RuntimeError("perf-hello could not start on port %d" % port)
                time.sleep(0.1)
        r = wrk("https://127.0.0.1:%d/hello" % port, "hello.lua", {}, extra_pids={"perf-hello": p.pid})
        r["daemons"] = {"gateway": r["daemons"]["perf-hello"]}  # shown in the gateway column
        return r
    finally:
        p.terminate()
        p.wait()


SCHEMA = "perf_credit"


def ceiling_pgbench(nusers=1000, script="debit.sql", mode="extended"):
    psql("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s" % (SCHEMA, SCHEMA))
    opts = "-c search_path=%s,public" % SCHEMA
    sqldir = os.path.join(ROOT, "credit-svc", "sql")
    for f in sorted(os.listdir(sqldir)):
        if f.endswith(".sql"):
            with open(os.path.join(sqldir, f)) as fh:
                psql(fh.read(), opts=opts)
    psql("""
CREATE FUNCTION perf_uuid(i int) RETURNS uuid LANGUAGE sql IMMUTABLE AS
 $$ SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid $$;
CREATE FUNCTION perf_ts(t timestamptz) RETURNS text LANGUAGE sql STABLE AS
 $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;
CREATE FUNCTION perf_payload(did text, uid text) RETURNS text LANGUAGE sql AS
 $$ SELECT json_build_object('v', 1, 'type', 'credit.debit.committed', 'id', gen_random_uuid(),
    'ts', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'request_id', 'perf-req',
    'body', json_build_object('debit_id', did, 'user_id', uid, 'action', 'service.metadata', 'cost', 3,
    'committed_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))::text $$;
INSERT INTO accounts (user_id, balance, reserved) SELECT perf_uuid(i), 1000000000, 0
  FROM generate_series(1, %d) i;
""" % nusers, opts=opts)
    settings = psql("SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings"
                    " WHERE name IN ('fsync','synchronous_commit','full_page_writes','wal_sync_method',"
                    "'shared_buffers','max_connections')")
    logdir = "/tmp/perf-pgbench-%d" % os.getpid()
    os.makedirs(logdir, exist_ok=True)
    env = dict(os.environ, PGOPTIONS=opts)
    cmd = ["pgbench", "-n", "-h", PGSOCK, "-p", PG_PORT, "-U", "postgres", "-M", mode, "-c", str(CONNS), "-j", "2",
           "-T", str(DUR), "-D", "nusers=%d" % nusers, "-f", os.path.join(HERE, script), "-l",
           "--log-prefix=%s/tx" % logdir, "saas"]
    with Sampler() as s:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("pgbench failed: " + r.stderr[-800:] + r.stdout[-800:])
    lat, fails = [], 0
    for f in os.listdir(logdir):
        with open(os.path.join(logdir, f)) as fh:
            for line in fh:
                v = line.split()
                if len(v) >= 3 and v[2].isdigit():
                    lat.append(int(v[2]) / 1000.0)
                else:
                    fails += 1
        os.unlink(os.path.join(logdir, f))
    os.rmdir(logdir)
    psql("DROP SCHEMA %s CASCADE" % SCHEMA)
    m = re.search(r"tps = ([0-9.]+)", r.stdout)
    lat.sort()
    return {"rps": float(m.group(1)), "p50": pct(lat, .5), "p99": pct(lat, .99), "max": lat[-1] if lat else 0,
            "errors": fails, "n": len(lat), "daemons": {d: v for d, v in s.cols().items() if d == "postgres"},
            "settings": settings}


def pct(v, p):
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))] if v else 0.0


def ceiling_amqp(n=2000):
    payload = psql("SELECT payload FROM credit.outbox ORDER BY created_at DESC LIMIT 1") or \
        json.dumps({"v": 1, "type": "credit.debit.committed", "id": str(uuid.uuid4()), "ts": "x" * 27,
                    "request_id": "x" * 36, "body": {"debit_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()),
                                                     "action": "service.metadata", "cost": 3,
                                                     "committed_at": "x" * 27}})
    # A quorum queue nobody consumes, same durability as chain-svc.debits:
    # the DLQ of chain-svc.debits via exchange dlx (purged afterwards).
    with Sampler() as s:
        t0 = time.monotonic()
        r = subprocess.run([os.environ["PERF_AMQP_PUB_BIN"], "dlx", "chain-svc.debits.dlq", str(uuid.uuid4()),
                            str(n)], input=payload.encode(), capture_output=True)
        dt = time.monotonic() - t0
    subprocess.run(["bash", "-c", '. "%s/services/lib.sh"; rmqctl purge_queue chain-svc.debits.dlq' % ROOT],
                   capture_output=True)
    return {"rps": n / dt, "p50": dt * 1000 / n, "p99": None, "max": None, "errors": 0 if r.returncode == 0 else 1,
            "n": n, "daemons": {d: v for d, v in s.cols().items() if d == "rabbitmq"}, "bytes": len(payload)}


# ---------------------------------------------------------------- setup
def setup_users(admin):
    log("setup: %d users (signup, upload, read key, top-up)" % USERS)
    lines, tok0, creds = [], None, []
    for i in range(USERS):
        email, pw, r = e2e.signup()
        creds.append((email, pw))
        if r.status != 201 and r.status != 200:
            raise RuntimeError("signup: %d %s" % (r.status, r.body[:200]))
        tok, uid = r.json()["access_token"], r.json()["user"]["id"]
        tok0 = tok0 or tok
        r = e2e.call("POST", "/v1/admin/users/%s/credits" % uid, {"amount": 1000000, "reason": "perf"},
                     token=admin, headers={"Idempotency-Key": str(uuid.uuid4())})
        if r.status not in (200, 201):
            raise RuntimeError("top-up: %d %s" % (r.status, r.body[:200]))
        r = e2e.call("POST", "/v1/files", token=tok, raw=b"perf %d\n" % i,
                     headers={"Content-Type": "text/plain", "X-File-Name": "perf.txt"})
        if r.status != 201:
            raise RuntimeError("upload: %d %s" % (r.status, r.body[:200]))
        fid = r.json()["id"]
        r = e2e.call("POST", "/v1/admin/api-keys", {"owner_id": uid, "scope": "read", "name": "perf"}, token=admin)
        if r.status != 201:
            raise RuntimeError("api key: %d %s" % (r.status, r.body[:200]))
        lines.append("%s %s" % (r.json()["key"], fid))
    path = "/tmp/perf-keys-%d.txt" % os.getpid()
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    time.sleep(2)  # key sync to the gateway (auth.key.* events)
    return tok0, path, creds


def chain_drain(t_start, timeout=120):
    """W4: debits committed since t_start -> confirmed (chain.transfers.confirmed_at)."""
    q = ("SELECT count(*), count(t.confirmed_at), "
         "coalesce(extract(epoch FROM max(t.confirmed_at) - min(a.ts)), 0) FROM credit.audit a"
         " LEFT JOIN chain.transfers t USING (debit_id) WHERE a.status = 'committed'"
         " AND a.ts >= to_timestamp(%f)" % t_start)
    deadline = time.monotonic() + timeout
    with Sampler() as s:
        while True:
            n, c, _ = psql(q).split("|")
            if int(n) == int(c) or time.monotonic() > deadline:
                break
            time.sleep(1)
    n, c, span = psql(q).split("|")
    lat = [float(x) for x in psql(
        "SELECT extract(epoch FROM t.confirmed_at - a.ts) * 1000 FROM credit.audit a JOIN chain.transfers t"
        " USING (debit_id) WHERE a.status = 'committed' AND a.ts >= to_timestamp(%f)"
        " AND t.confirmed_at IS NOT NULL ORDER BY 1" % t_start).split()]
    span = float(span) or 1.0
    blocks = int(psql(
        "SELECT count(DISTINCT t.block_number) FROM credit.audit a JOIN chain.transfers t USING (debit_id)"
        " WHERE a.status = 'committed' AND a.ts >= to_timestamp(%f)" % t_start) or 0)
    return {"blocks": blocks, "rps": int(c) / span, "p50": pct(lat, .5), "p99": pct(lat, .99), "max": lat[-1] if lat else 0,
            "errors": int(n) - int(c), "n": int(c), "daemons": s.cols(), "hwm": s.hwm, "debits": int(n)}


def ceiling_node(n=2000, batch=50):
    """W4's ceiling: the stack's anvil confirming pre-signed transfers of
    anvil account 9 (tests/perf/node_ceiling.py --stack), nothing of ours in
    the way; latency = send -> receipt seen."""
    with Sampler() as s:
        r = subprocess.run([sys.executable, os.path.join(HERE, "node_ceiling.py"), str(n), str(batch), "--stack"],
                           capture_output=True, text=True)
    try:
        j = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        j = {"tx_per_s": 0, "confirmed": 0}
    if j.get("confirmed", 0) < n:
        log("node ceiling: %d of %d confirmed; the tool said: %s" % (
            j.get("confirmed", 0), n, " | ".join(r.stderr.strip().splitlines()[-4:])))
    return {"rps": j.get("tx_per_s", 0), "p50": j.get("p50_ms"), "p99": j.get("p99_ms"), "max": j.get("max_ms", 0),
            "errors": n - j.get("confirmed", 0), "n": j.get("confirmed", 0), "daemons": s.cols(), "hwm": s.hwm}


# ---------------------------------------------------------------- report
def fmt(v, f="%.1f"):
    return "—" if v is None else f % v


def soak_table(soaked):
    samples, res = soaked
    out = []
    out.append("")
    out.append("## Memory over %d s of W1 + W2 together (PERF_SOAK; VmRSS MiB every %d s)\n" % (SOAK, SOAK_STEP))
    names = [d for d in OURS if d in samples[0][1]]
    out.append("| t s | " + " | ".join(names) + " |")
    out.append("|---:|" + "---:|" * len(names))
    for t, v in samples:
        out.append("| %.0f | %s |" % (t, " | ".join("%.1f" % (v.get(d, 0) / 1024.0) for d in names)))
    # growth: after the first minute (pools, caches, arenas warm) to the end
    base = next((v for t, v in samples if t >= 60), samples[0][1])
    last = samples[-1][1]
    out.append("")
    out.append("Growth from t >= 60 s to the end: " + ", ".join(
        "%s %+.1f MiB" % (d, (last.get(d, 0) - base.get(d, 0)) / 1024.0) for d in names) + ".")
    done = []
    for name, j in zip(("W1", "W2"), res):
        done.append("%s %s" % (name, "%d requests, %d errors" % (
            j["requests"], j["connect"] + j["read"] + j["write"] + j["status"] + j["timeout"])
            if j else "no report"))
    out.append("Load during the soak: " + "; ".join(done) + ".")
    return out


def soak_only():
    """PERF_SOAK_ONLY=1: set up the users, run only the soak, append its table to PERF_OUT."""
    e2e.GW = GW
    admin = e2e.admin_token()
    tok, keys, _ = setup_users(admin)
    lines = soak_table(soak(tok, keys))
    os.unlink(keys)
    text = "\n".join(lines) + "\n"
    dest = os.environ.get("PERF_OUT", os.path.join(ROOT, "docs", "perf.md"))
    with open(dest, "a") as f:
        f.write(text)
    print(text)


def main():
    e2e.GW = GW
    rows = []
    # Ceilings share the cores with the stack: wait until no earlier debit is
    # still on its way to the chain (a previous run's W3 keeps anvil busy).
    log("waiting for earlier debits to be confirmed")
    pending = chain_drain(0, timeout=300)["errors"]
    log("ceiling (a): perf-hello over TLS")
    hello = ceiling_hello()
    rows.append(("ceiling: ulfius+GnuTLS hello JSON", hello))
    log("ceiling (b): pgbench debit.sql")
    pgb = ceiling_pgbench(mode="prepared")
    rows.append(("ceiling: pgbench reserve+commit (debit.sql, prepared)", pgb))
    if os.environ.get("PERF_PGBENCH_SYNC", "1") == "1":
        log("reference: pgbench debit_sync.sql (both commits synchronous, the design before)")
        rows.append(("reference: pgbench debit_sync.sql (both commits synchronous)",
                     ceiling_pgbench(script="debit_sync.sql")))
        log("reference: pgbench debit_notify.sql (unprepared, NOTIFY in the commit: the design before)")
        rows.append(("reference: pgbench debit_notify.sql (unprepared, NOTIFY in the commit)",
                     ceiling_pgbench(script="debit_notify.sql")))
    log("reference: pgbench balance.sql (W1's one SELECT, prepared)")
    rows.append(("reference: pgbench balance.sql (W1's SELECT, prepared)",
                 ceiling_pgbench(script="balance.sql", mode="prepared")))
    admin = e2e.admin_token()
    tok, keys, creds = setup_users(admin)
    # before the workloads (quiet broker), with a real envelope from setup's uploads
    chain_drain(time.time() - 3600, timeout=60)
    log("ceiling (c): AMQP publish with confirms")
    amqp = ceiling_amqp()
    rows.append(("ceiling: RabbitMQ publish+confirm, %d B, 1 publisher" % amqp["bytes"], amqp))
    log("W1: GET /v1/credits (Bearer)")
    w1 = wrk(GW + "/v1/credits", "w1_credits.lua", {"PERF_TOKEN": tok})
    rows.append(("W1 GET /v1/credits (JWT)", w1))
    w1r = w2r = None
    if RATE_FRACTION > 0:  # right after the peak it is a fraction of (less drift)
        r1 = int(w1["rps"] * RATE_FRACTION)
        log("W1 at %.0f%% of peak: %d req/s offered, %d connections" % (100 * RATE_FRACTION, r1, RATE_CONNS))
        w1r = wrk(GW + "/v1/credits", "w1_credits.lua", {"PERF_TOKEN": tok}, conns=RATE_CONNS, rate=r1)
        rows.append(("W1 fixed rate %d req/s (%.0f%% of W1 peak)" % (r1, 100 * RATE_FRACTION), w1r))
    log("W2: GET /v1/service/metadata/{id} (API keys, %d users)" % USERS)
    t_w2 = time.time() - 1
    w2 = wrk(GW + "/v1/service/metadata/x", "w2_metadata.lua", {"PERF_KEYS": keys})
    rows.append(("W2 GET /v1/service/metadata/{id} (API key)", w2))
    # W4 twice: the peak's debits (throughput: the chain side on the cores
    # W2 leaves it), then, once they are all confirmed, the fixed-rate row's
    # debits (latency at a rate W2 sustains).
    log("W4: draining W2's debits to confirmed on anvil")
    w4 = chain_drain(t_w2)
    rows.append(("W4 chain: W2's debits committed → confirmed", w4))
    if RATE_FRACTION > 0:
        r2 = max(int(w2["rps"] * RATE_FRACTION), 1)
        log("W2 at %.0f%% of peak: %d req/s offered, %d connections" % (100 * RATE_FRACTION, r2, RATE_CONNS))
        t_w2r = time.time()
        w2r = wrk(GW + "/v1/service/metadata/x", "w2_metadata.lua", {"PERF_KEYS": keys}, conns=RATE_CONNS,
                  rate=r2)
        rows.append(("W2 fixed rate %d req/s (%.0f%% of W2 peak)" % (r2, 100 * RATE_FRACTION), w2r))
        log("W4: draining the fixed-rate row's debits")
        rows.append(("W4 chain at W2's fixed rate: debits committed → confirmed", chain_drain(t_w2r)))
    log("ceiling (d): the node itself, pre-signed transfers (node_ceiling.py --stack)")
    node = ceiling_node()
    rows.append(("ceiling: anvil, pre-signed ERC-20 transfers, JSON-RPC batches", node))
    log("W3: POST /v1/files 64 KiB")
    w3 = wrk(GW + "/v1/files", "w3_upload.lua", {"PERF_TOKEN": tok}, conns=min(CONNS, 8))
    rows.append(("W3 POST /v1/files 64 KiB", w3))
    logins = []
    if LOGINS > 0:
        # the limiter's per-IP/per-account windows may still hold setup's logins
        log("login burst: %d parallel logins through the gateway" % LOGINS)
        logins.append(("login burst: %d parallel POST /v1/auth/login via gateway" % LOGINS,
                       login_burst(creds, False)))
        log("login burst: %d parallel logins straight to auth-svc (no limiter)" % LOGINS)
        logins.append(("login burst: %d parallel logins straight to auth-svc" % LOGINS, login_burst(creds, True)))
        rows.extend(logins)
    soaked = soak(tok, keys) if SOAK > 0 else None
    os.unlink(keys)

    out = []
    out.append("# Performance: latest run of tests/perf/bench.sh\n")
    out.append("Generated by `bash tests/perf/bench.sh` (see tests/perf/README.md). Do not edit by hand.\n")
    out.append("- date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    out.append("- machine: `nproc` = %d (load generator, stack and ceilings share them), %s" %
               (os.cpu_count(), subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip()))
    out.append("- load: wrk -t2 -c%d (W3: -c%d), %d s per workload; pgbench -c%d -j2 -T%d; %d W2 users" %
               (CONNS, min(CONNS, 8), DUR, CONNS, DUR, USERS))
    out.append("- PostgreSQL (as the stack runs it): %s" % pgb["settings"])
    out.append("- debits still unconfirmed from before the run (waited up to 300 s): %d" % pending)
    out.append("- build: %s (meson buildtype of the stack's BUILD_DIR)" % os.environ.get("PERF_BUILDTYPE", "?"))
    out.append("")
    out.append("| workload | req/s | p50 ms | p99 ms | max ms | errors | n | ratio to ceiling |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    ratio = {"W1 GET /v1/credits (JWT)": "%.0f%% of hello" % (100 * w1["rps"] / hello["rps"]),
             "W2 GET /v1/service/metadata/{id} (API key)": "%.0f%% of pgbench" % (100 * w2["rps"] / pgb["rps"]),
             "W4 chain: W2's debits committed → confirmed": "%.0f%% of node" % (100 * w4["rps"] / node["rps"]) if node["rps"] else ""}
    for name, r in rows:
        out.append("| %s | %.0f | %s | %s | %s | %d | %d | %s |" % (
            name, r["rps"], fmt(r["p50"], "%.2f"), fmt(r["p99"], "%.2f"), fmt(r["max"], "%.1f"), r["errors"],
            r["n"], ratio.get(name, "")))
    out.append("")
    out.append("W4: %d debits committed during W2's peak row, %d confirmed (errors = not confirmed within 120 s); the"
               " fixed-rate row's debits are drained on their own once the peak's are all confirmed (latency at a"
               " rate W2 sustains);"
               " req/s = confirmed / (last confirmed_at − first commit), latency = chain.transfers.confirmed_at"
               " − credit.audit.ts of the committed row. AMQP: %d sequential publishes, each waiting for its"
               " confirm (as lc_amqp_publish does), into a quorum queue; p50 = mean per publish." %
               (w4["debits"], w4["n"], amqp["n"]))
    blk = ["%s: %d transfers in %d blocks (%.1f per block)" % (name.split(":")[0], r["n"], r["blocks"],
                                                              r["n"] / r["blocks"])
           for name, r in rows if r.get("blocks")]
    if blk:
        out.append("")
        out.append("Blocks holding W4's transfers (anvil automines a block per arriving transaction while it"
                   " keeps up, so a block's cost, mostly its state root, is paid per few transfers): "
                   + "; ".join(blk) + ".")
    if RATE_FRACTION > 0:
        out.append("")
        out.append("Fixed-rate rows: wrk paced open-loop by wrk_common.lua (PERF_RATE: each wrk thread sends on a"
                   " fixed schedule, %d connections, so the offered rate does not drop when answers slow down);"
                   " requests sent more than 1 ms behind schedule for want of a free connection: W1 %d, W2 %d"
                   " (0 = the p99 has no coordinated omission)." % (RATE_CONNS, w1r["late"], w2r["late"]))
    for name, r in logins:
        c = r["counts"]
        out.append("")
        sv = r["srv503"]
        out.append("%s: status counts %s; 429/503 answered to the client in p50 %.0f ms, max %.0f ms (auth-svc's"
                   " own time for its %d 503s: p50 %.1f ms, p90 %.1f ms, max %.0f ms); %d of them without"
                   " Retry-After; auth-svc peak VmRSS %.1f MiB during the burst." % (
                       name, ", ".join("%s: %d" % (k, v) for k, v in sorted(c.items())), r["rej_p50"],
                       r["rej_max"], len(sv), pct(sv, .5), pct(sv, .9), sv[-1] if sv else 0,
                       r["no_retry_after"], r["daemons"].get("auth-svc", (0, 0))[1] / 1024.0))
    out.append("")
    out.append("CPU %% of one core (whole process tree) / peak VmRSS MiB (sampled every 0.25 s) per daemon"
               " during each workload (%d cores = %d%% max). The hello ceiling's row shows perf-hello in the"
               " gateway column. postgres, rabbitmq, s3rver (node) and anvil: sum over the process tree (postgres counts its"
               " shared buffers once per backend, so its RSS is an upper bound).\n" % (os.cpu_count(), 100 * os.cpu_count()))
    out.append("| workload | " + " | ".join(DAEMONS) + " |")
    out.append("|---|" + "---:|" * len(DAEMONS))
    for name, r in rows:
        cells = []
        for d in DAEMONS:
            if d in r["daemons"]:
                c, rss = r["daemons"][d]
                cells.append("%.0f%% / %.1f" % (c, rss / 1024.0))
            else:
                cells.append("")
        out.append("| %s | %s |" % (name, " | ".join(cells)))
    hwm = {}
    for _, r in rows:
        for d, v in r.get("hwm", {}).items():
            hwm[d] = max(hwm.get(d, 0), v)
    out.append("")
    out.append("VmHWM (lifetime peak RSS) at the end: " + ", ".join(
        "%s %.1f MiB" % (d, hwm[d] / 1024.0) for d in OURS if d in hwm) + ".")
    if soaked is not None:
        out.extend(soak_table(soaked))
    text = "\n".join(out) + "\n"
    dest = os.environ.get("PERF_OUT", os.path.join(ROOT, "docs", "perf.md"))
    print(text)
    # hand-written analysis below NOTES_MARK in the existing file survives
    try:
        with open(dest) as f:
            old = f.read()
        if NOTES_MARK in old:
            text += "\n" + old[old.index(NOTES_MARK):]
    except OSError:
        pass
    with open(dest, "w") as f:
        f.write(text)


NOTES_MARK = "<!-- notes: written by hand, kept by bench.py when it rewrites the tables above -->"


if __name__ == "__main__":
    if os.environ.get("PERF_SOAK_ONLY") == "1" and SOAK > 0:
        soak_only()
    else:
        main()
