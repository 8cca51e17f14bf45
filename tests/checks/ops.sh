#!/usr/bin/env bash
# tests/checks/ops.sh — operability of the running stack (docs/operations.md).
#
# For every daemon (gateway over TLS, the others on loopback): /healthz and
# /readyz answer 200; /metrics is valid Prometheus text (every family typed,
# histogram buckets cumulative) with the request counter and latency
# histogram of a route this check (and the e2e suites) used, plus the domain
# series; the daemon's log lines written meanwhile are JSON objects with
# ts/level/app/rid/msg, and one request's X-Request-Id shows up in the
# gateway's log and in the owning daemon's log.
# Environment: the stack's (tests/run.sh / services/env.sh). Ends with
# "N passed, N failed"; exit 1 on any failure.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
: "${STACK_STATE_DIR:?source services/env.sh first}"
export GATEWAY_URL="${GATEWAY_URL:-$STACK_GATEWAY_URL}" GATEWAY_CA="${GATEWAY_CA:-$GW_TLS_CERT_FILE}"
exec python3 - <<'PY'
import json, os, re, sys, time, uuid
sys.path.insert(0, "tests/e2e")
import client
from client import call, check, PORTS

STATE = os.environ["STACK_STATE_DIR"]
LOGS = os.path.join(STATE, "logs")
DAEMONS = {"gateway": None, "auth-svc": "auth", "credit-svc": "credit",
           "storage-svc": "storage", "chain-svc": "chain"}


def base(d):
    return None if DAEMONS[d] is None else "http://127.0.0.1:%d" % PORTS[DAEMONS[d]]


def get(d, path):
    return call("GET", path, base=base(d), tls=DAEMONS[d] is None)


# ---------------------------------------------------------------- parser
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')


def parse_prom(text):
    """Returns (samples [(name, labels dict, value)], types {family: type}, errors)."""
    samples, types, helps, errors = [], {}, set(), []
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary",
                                                    "untyped"):
                errors.append("line %d: bad TYPE %r" % (n, line))
            elif parts[2] in types:
                errors.append("line %d: family %s typed twice" % (n, parts[2]))
            else:
                types[parts[2]] = parts[3]
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            errors.append("line %d: not a sample: %r" % (n, line))
            continue
        name, lab, val = m.group(1), m.group(3) or "", m.group(4)
        labels, pos = {}, 0
        while pos < len(lab):
            lm = LABEL.match(lab, pos)
            if not lm:
                errors.append("line %d: bad labels %r" % (n, lab))
                break
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        try:
            v = float(val)
        except ValueError:
            errors.append("line %d: bad value %r" % (n, val))
            continue
        fam = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in types and not (fam in types and types[fam] == "histogram"):
            errors.append("line %d: %s has no # TYPE before it" % (n, name))
        if (fam if fam in types and types[fam] == "histogram" else name) not in helps:
            errors.append("line %d: %s has no # HELP" % (n, name))
        samples.append((name, labels, v))
    # histogram buckets cumulative and ending in +Inf == _count
    hist = {}
    for name, labels, v in samples:
        if name.endswith("_bucket"):
            key = (name[:-7], tuple(sorted((k, x) for k, x in labels.items() if k != "le")))
            hist.setdefault(key, []).append((labels.get("le"), v))
    counts = {(name[:-6], tuple(sorted(labels.items()))): v
              for name, labels, v in samples if name.endswith("_count")}
    for key, bs in hist.items():
        vals = [v for _, v in bs]
        if vals != sorted(vals) or bs[-1][0] != "+Inf" or counts.get(key) != vals[-1]:
            errors.append("histogram %s not cumulative / +Inf != count" % (key,))
    return samples, types, errors


def find(samples, name, **labels):
    return [s for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]


# ----------------------------------------------------------- log offsets
offsets = {}
for d in DAEMONS:
    p = os.path.join(LOGS, d + ".log")
    offsets[d] = os.path.getsize(p) if os.path.exists(p) else 0

# ------------------------------------------------------------ health/ready
for d in DAEMONS:
    r = get(d, "/healthz")
    check("%s /healthz 200" % d, r.status == 200, r.status)
    r = get(d, "/readyz")
    check("%s /readyz 200" % d, r.status == 200, (r.status, r.body[:200]))

# ------------------------------------------------------- traffic of a flow
email, pw, r = client.signup()
check("signup -> 201 with an X-Request-Id", r.status == 201 and r.headers.get("X-Request-Id"),
      (r.status, r.body[:200]))
signup_rid = r.headers.get("X-Request-Id", "")
tok = r.json()["access_token"] if r.status == 201 else ""
r = call("POST", "/v1/files", token=tok, raw=b"ops check " + uuid.uuid4().hex.encode(),
         headers={"Content-Type": "text/plain", "X-File-Name": "ops.txt"})
check("upload -> 201", r.status == 201, (r.status, r.body[:200]))
upload_rid = r.headers.get("X-Request-Id", "")
admin = client.admin_token()
r = call("GET", "/v1/admin/chain", token=admin)
check("GET /v1/admin/chain -> 200", r.status == 200, (r.status, r.body[:200]))
chain_rid = r.headers.get("X-Request-Id", "")
r = call("GET", "/v1/no-such-route-%s" % uuid.uuid4().hex[:6], token=tok)
check("unknown route -> 404", r.status == 404, r.status)

# Routes (templates) each daemon answered for the flow above; e2e suites use them all.
ROUTES = {
    "gateway": [("/v1/auth/signup", "POST", "201"), ("/v1/files", "POST", "201"),
                ("/v1/admin/chain", "GET", "200")],
    "auth-svc": [("/v1/auth/signup", "POST", "201")],
    "credit-svc": [("/internal/accounts", "POST", "201")],
    "storage-svc": [("/v1/files", "POST", "201")],
    "chain-svc": [("/v1/admin/chain", "GET", "200")],
}
DOMAIN = {
    "credit-svc": [("credit_debits_committed_total", {}, "counter"),
                   ("credit_outbox_backlog", {}, "gauge")],
    "chain-svc": [("chain_transfers", {"status": "pending"}, "gauge"),
                  ("chain_transfers", {"status": "confirmed"}, "gauge"),
                  ("chain_transfers", {"status": "failed"}, "gauge"),
                  ("chain_nonce_lag", {}, "gauge"),
                  ("chain_master_balance", {"asset": "eth"}, "gauge"),
                  ("chain_master_balance", {"asset": "token"}, "gauge")],
}

# The upload's debit reaches chain-svc through the outbox and the queue;
# wait until its transfer is final (the master balances are then known).
deadline = time.time() + 60
while time.time() < deadline:
    s, _, _ = parse_prom(get("chain-svc", "/metrics").body.decode())
    if find(s, "chain_master_balance", asset="eth") and \
            [x for x in find(s, "chain_transfers", status="pending") if x[2] == 0]:
        break
    time.sleep(0.5)

for d in DAEMONS:
    r = get(d, "/metrics")
    text = r.body.decode("utf-8", "replace")
    check("%s /metrics 200 text/plain" % d,
          r.status == 200 and r.headers.get("Content-Type", "").startswith("text/plain"), r.status)
    samples, types, errors = parse_prom(text)
    check("%s /metrics parses as Prometheus text (typed, help, cumulative buckets)" % d,
          not errors and samples, errors[:5])
    check("%s /metrics declares http_requests_total counter and the latency histogram" % d,
          types.get("http_requests_total") == "counter"
          and types.get("http_request_duration_seconds") == "histogram", types)
    for route, method, status in ROUTES[d]:
        c = find(samples, "http_requests_total", route=route, method=method, status=status)
        h = find(samples, "http_request_duration_seconds_count", route=route, method=method,
                 status=status)
        b = find(samples, "http_request_duration_seconds_bucket", route=route, method=method,
                 status=status, le="+Inf")
        check("%s counts %s %s -> %s with a latency histogram" % (d, method, route, status),
              c and c[0][2] >= 1 and h and b and h[0][2] == c[0][2],
              [x for x in samples if x[1].get("route") == route][:3])
    if d == "gateway":
        check("gateway counts the unknown route as route=\"unmatched\" (bounded labels)",
              find(samples, "http_requests_total", route="unmatched", status="404")
              and not [x for x in samples if "no-such-route" in x[1].get("route", "")])
    for name, labels, typ in DOMAIN.get(d, []):
        check("%s exposes %s%s (%s)" % (d, name, labels or "", typ),
              find(samples, name, **labels) and types.get(name) == typ, types.get(name))
    if d == "credit-svc":
        v = find(samples, "credit_debits_committed_total")
        check("credit-svc debits committed >= 1 after the upload", v and v[0][2] >= 1, v)
    if d == "chain-svc":
        v = find(samples, "chain_master_balance", asset="eth")
        check("chain-svc master ETH balance > 0", v and v[0][2] > 0, v)

# ------------------------------------------------------------------- logs
time.sleep(0.3)
KEYS = {"ts", "level", "app", "rid", "msg"}
logtext = {}
for d in DAEMONS:
    p = os.path.join(LOGS, d + ".log")
    with open(p, "rb") as f:
        f.seek(offsets[d])
        data = f.read().decode("utf-8", "replace")
    logtext[d] = data
    lines = [ln for ln in data.split("\n") if ln]
    bad = []
    for ln in lines:
        try:
            o = json.loads(ln)
        except ValueError:
            bad.append(ln[:120])
            continue
        if not (isinstance(o, dict) and KEYS <= set(o) and o["app"] == d
                and o["level"] in ("error", "warning", "info", "debug")
                and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", o["ts"])
                and all(isinstance(o[k], str) for k in KEYS)):
            bad.append(ln[:120])
    check("%s log: %d new lines, each a JSON object with ts/level/app/rid/msg" % (d, len(lines)),
          lines and not bad, bad[:3])


def rid_in(d, rid):
    for ln in logtext[d].split("\n"):
        try:
            if ln and json.loads(ln).get("rid") == rid:
                return True
        except ValueError:
            pass
    return False


for rid, owners in ((signup_rid, ["auth-svc", "credit-svc"]), (upload_rid, ["storage-svc", "credit-svc"]),
                    (chain_rid, ["chain-svc"])):
    for d in ["gateway"] + owners:
        check("request id %s in the %s log" % (rid[:13], d), rid and rid_in(d, rid))

print("%d passed, %d failed" % (client.passed, client.failed))
sys.exit(1 if client.failed else 0)
PY
