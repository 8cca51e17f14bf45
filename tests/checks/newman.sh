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
# Prints newman's cli report, then one line "N passed, N failed" counting the
# collection's assertions (a request that errored or a script that threw counts
# as a failure too). Exits non-zero on any failure. Secrets (passwords, tokens,
# API keys) and response bodies are scrubbed from the JSON report after parsing.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"

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
[ -n "${ADMIN_EMAIL:-}" ] && [ -n "${ADMIN_PASSWORD:-}" ] ||
  fail_setup "ADMIN_EMAIL / ADMIN_PASSWORD not set (. services/env.sh)"
mkdir -p "$LOGDIR"
rm -f "$REPORT"

ca_opt=()
if [ -n "$CA" ]; then
  ca_opt=(--ssl-extra-ca-certs "$CA")
fi

# The admin password reaches newman through its environment, not argv: a
# private copy of the environment template with the values filled in.
tmpenv=$(mktemp "$LOGDIR/newman-env.XXXXXX")
trap 'rm -f "$tmpenv"' EXIT
chmod 600 "$tmpenv"
BASE="$BASE" python3 - "$ENVFILE" "$tmpenv" <<'EOF' || fail_setup "cannot write the environment"
import json, os, sys
env = json.load(open(sys.argv[1]))
vals = {"baseUrl": os.environ["BASE"], "adminEmail": os.environ["ADMIN_EMAIL"],
        "adminPassword": os.environ["ADMIN_PASSWORD"]}
for v in env["values"]:
    if v["key"] in vals:
        v["value"] = vals[v["key"]]
with open(sys.argv[2], "w") as f:
    json.dump(env, f)
EOF

"$NEWMAN" run "$COLLECTION" -e "$tmpenv" "${ca_opt[@]}" \
  --timeout-request 60000 --color off \
  -r cli,json --reporter-json-export "$REPORT"
rc=$?

python3 - "$REPORT" "$rc" <<'EOF'
import json, re, sys
path, rc = sys.argv[1], int(sys.argv[2])
try:
    rep = json.load(open(path))
except (OSError, ValueError) as e:
    print("newman wrote no readable JSON report (%s), exit code %d" % (e, rc))
    print("0 passed, 1 failed")
    sys.exit(1)
stats = rep["run"]["stats"]
a = stats["assertions"]
passed = a["total"] - a["failed"]
failed = a["failed"]
# errors outside assertions: a request that never got an answer, a script that threw
extra = stats["requests"]["failed"] + stats["testScripts"]["failed"] + stats["prerequestScripts"]["failed"]
for f in rep["run"].get("failures", []):
    err = f.get("error", {})
    where = (f.get("source") or {}).get("name", "?")
    print("FAIL - %s: %s %s" % (where, err.get("name", ""), err.get("message", "")))
if extra:
    print("%d request/script error(s) outside the assertions" % extra)
    failed += extra
if rc != 0 and failed == 0:
    print("newman exited %d without a failed assertion" % rc)
    failed = 1
if a["total"] == 0:
    print("no assertion ran")
    failed = max(failed, 1)

# Scrub the report: it is a log, and must not hold passwords, tokens or keys.
SECRET = re.compile(r"password|token|authorization|cookie|api-?key|apikey|topupbody", re.I)
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
EOF
