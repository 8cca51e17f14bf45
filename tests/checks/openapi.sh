#!/usr/bin/env bash
# proto/openapi.yaml: redocly lint (recommended ruleset, proto/redocly.yaml),
# then conformance of every gateway answer the e2e suites recorded
# (E2E_RECORD, set by tests/run.sh) to it. Ends with "N passed, N failed".
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
pass=0
fail=0
lint_json=$(services/node_modules/.bin/redocly lint --config proto/redocly.yaml --format json \
  proto/openapi.yaml 2>/dev/null)
totals=$(echo "$lint_json" | /usr/bin/python3 -c '
import json, sys
t = json.load(sys.stdin)["totals"]
print(t["errors"], t["warnings"], t.get("ignored", 0))' 2>/dev/null)
if [ "$totals" = "0 0 0" ]; then
  echo "ok   - redocly lint proto/openapi.yaml: no errors, no warnings, nothing ignored"
  pass=$((pass + 1))
else
  services/node_modules/.bin/redocly lint --config proto/redocly.yaml proto/openapi.yaml 2>&1 | tail -40
  echo "FAIL - redocly lint proto/openapi.yaml (errors warnings ignored: ${totals:-no result})"
  fail=$((fail + 1))
fi
rec=${E2E_RECORD:-${STACK_STATE_DIR:-.run}/logs/exchanges.jsonl}
if [ ! -s "$rec" ]; then
  echo "FAIL - no recorded exchanges in $rec (run the e2e suites with E2E_RECORD set; tests/run.sh does)"
  fail=$((fail + 1))
else
  out=$(/usr/bin/python3 tests/checks/conformance.py proto/openapi.yaml "$rec")
  echo "$out" | sed '$d'
  line=$(echo "$out" | tail -n 1)
  if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    pass=$((pass + BASH_REMATCH[1]))
    fail=$((fail + BASH_REMATCH[2]))
  else
    echo "FAIL - conformance.py ended without a result line"
    fail=$((fail + 1))
  fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
