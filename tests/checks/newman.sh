#!/usr/bin/env bash
# tests/checks/newman.sh - runs the Postman collection (docs/postman) with newman
# against the running stack: every public flow, with assertions.
#
# Environment (tests/run.sh exports it from services/env.sh):
#   GATEWAY_URL      the gateway (default $STACK_GATEWAY_URL, then https://127.0.0.1:8443)
#   GATEWAY_CA       PEM the gateway's certificate verifies against (TLS is verified)
#   ADMIN_EMAIL / ADMIN_PASSWORD   the bootstrap admin
#   STACK_STATE_DIR  where the JSON report goes: $STACK_STATE_DIR/logs/newman.json
#
# Prints newman's cli report, then one line "N passed, N failed": the
# collection's assertions (a request that got no answer or a script that threw
# counts as a failure too) plus one check that the committed files hold no
# secrets. Exits non-zero on any failure. Passwords, tokens, API keys and
# response bodies are scrubbed from the JSON report once it is counted.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1

NEWMAN=services/node_modules/.bin/newman
COLLECTION=docs/postman/credit-saas.postman_collection.json
ENVFILE=docs/postman/local.postman_environment.json
BASE=${GATEWAY_URL:-${STACK_GATEWAY_URL:-https://127.0.0.1:8443}}
CA=${GATEWAY_CA:-${GW_TLS_CERT_FILE:-}}
LOGDIR=${STACK_STATE_DIR:-$REPO/.run}/logs
REPORT=$LOGDIR/newman.json

fail_setup() {
  echo "newman: $1"
  echo "0 passed, 1 failed"
  exit 1
}

[ -x "$NEWMAN" ] || fail_setup "$NEWMAN missing (services/up installs it)"
if [ -z "${ADMIN_EMAIL:-}" ] || [ -z "${ADMIN_PASSWORD:-}" ]; then
  fail_setup "ADMIN_EMAIL / ADMIN_PASSWORD not set (. services/env.sh)"
fi
mkdir -p "$LOGDIR"
rm -f "$REPORT"

# The committed files carry no secrets and no state of an earlier run: every
# collection variable and the environment's admin credentials are empty (the
# caller's values come in at run time).
hygiene=0
if python3 - "$COLLECTION" "$ENVFILE" <<'PY'; then
import json, sys
col, env = (json.load(open(p)) for p in sys.argv[1:3])
assert col["info"]["schema"].endswith("/v2.1.0/collection.json"), col["info"]["schema"]
bad = [v["key"] for v in col.get("variable", []) if v.get("value")]
bad += [v["key"] for v in env["values"] if v["key"] != "baseUrl" and v.get("value")]
if bad:
    sys.exit("committed values in %s" % bad)
PY
  echo "ok   - docs/postman: a v2.1 collection; no committed secrets or run state"
else
  echo "FAIL - docs/postman: committed secrets or run state (see above)"
  hygiene=1
fi

ca_opt=()
if [ -n "$CA" ]; then
  ca_opt=(--ssl-extra-ca-certs "$CA")
fi

# The admin password reaches newman in a private copy of the environment
# template (mode 600, removed on exit), never on its command line.
tmpenv=$(mktemp "$LOGDIR/newman-env.XXXXXX") || fail_setup "mktemp failed"
trap 'rm -f "$tmpenv"' EXIT
chmod 600 "$tmpenv"
BASE="$BASE" python3 - "$ENVFILE" "$tmpenv" <<'PY' || fail_setup "cannot write the environment"
import json, os, sys
env = json.load(open(sys.argv[1]))
vals = {"baseUrl": os.environ["BASE"], "adminEmail": os.environ["ADMIN_EMAIL"],
        "adminPassword": os.environ["ADMIN_PASSWORD"]}
for v in env["values"]:
    if v["key"] in vals:
        v["value"] = vals[v["key"]]
with open(sys.argv[2], "w") as f:
    json.dump(env, f)
PY

"$NEWMAN" run "$COLLECTION" -e "$tmpenv" "${ca_opt[@]}" \
  --timeout-request 60000 --color off \
  -r cli,json --reporter-json-export "$REPORT"
rc=$?

python3 - "$REPORT" "$rc" "$hygiene" <<'PY'
import json, re, sys
path, rc, hygiene = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    rep = json.load(open(path))
except (OSError, ValueError) as e:
    print("newman wrote no readable JSON report (%s), exit code %d" % (e, rc))
    print("%d passed, %d failed" % (1 - hygiene, 1 + hygiene))
    sys.exit(1)
stats = rep["run"]["stats"]
a = stats["assertions"]
passed = a["total"] - a["failed"] + (1 - hygiene)
failed = a["failed"] + hygiene
for f in rep["run"].get("failures", []):
    err = f.get("error", {})
    where = (f.get("source") or {}).get("name", "?")
    print("FAIL - %s: %s %s" % (where, err.get("name", ""), err.get("message", "")))
# errors outside the assertions: a request that got no answer, a script that threw
extra = (stats["requests"]["failed"] + stats["testScripts"]["failed"]
         + stats["prerequestScripts"]["failed"])
if extra:
    print("%d request/script error(s) outside the assertions" % extra)
    failed += extra
if a["total"] == 0:
    print("no assertion ran")
    failed += 1
if rc != 0 and failed == 0:
    print("newman exited %d without a failed assertion" % rc)
    failed = 1

# The report is a log: no passwords, tokens or keys, no response bodies.
SECRET = re.compile(r"password|token|authorization|cookie|api-?key|topupbody", re.I)
def scrub(o):
    if isinstance(o, dict):
        if isinstance(o.get("key"), str) and SECRET.search(o["key"]) and "value" in o:
            o["value"] = "[redacted]"
        if o.get("mode") == "raw" and isinstance(o.get("raw"), str) and SECRET.search(o["raw"]):
            o["raw"] = "[redacted]"
        o.pop("stream", None)
        for v in o.values():
            scrub(v)
    elif isinstance(o, list):
        for v in o:
            scrub(v)
scrub(rep)
with open(path, "w") as f:
    json.dump(rep, f)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PY
