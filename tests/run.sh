#!/usr/bin/env bash
# The whole test suite, as CI runs it (README: `make test`):
#   1. services/up  - installs what is missing, builds, starts the whole local stack
#   2. unit + integration tests (Check, through meson) against the running stack
#   3. unit tests again under valgrind and under ASan+UBSan
#   4. black-box end-to-end suites (tests/e2e/test_*.py) against the gateway and the chain,
#      then again against ASan+UBSan builds of the daemons (tests/e2e/sanitized.sh)
#   5. further checks (tests/checks/*.sh: contract lint, collections, browser, compose), each
#      run with the stack's environment and ending in "N passed, N failed"
# Ends with one line "N passed, N failed" (each Check test and each e2e check counts one).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

total_pass=0
total_fail=0
finish() {
  echo "${total_pass} passed, ${total_fail} failed"
  [ "$total_fail" -eq 0 ]
  exit $?
}

if ! bash services/up; then
  echo "services/up failed: the stack did not come up (see services/logs)"
  total_fail=$((total_fail + 1))
  finish
fi
# shellcheck source=/dev/null
. services/env.sh

# Integration tests create (and drop) their own schemas, queues and tokens, so
# they get the stack's superuser (over the socket) and the broker's app user.
pg_admin="postgresql://postgres@/saas?host=${STACK_STATE_DIR}/pgsock&port=${PG_PORT:-25432}"
export LC_TEST_PG_URL="$pg_admin" AUTH_TEST_PG_URL="$pg_admin" CREDIT_TEST_PG_URL="$pg_admin"
export STORAGE_TEST_PG_URL="$pg_admin" CHAIN_TEST_PG_URL="$pg_admin"
export LC_TEST_AMQP_URL="$AMQP_URL" CREDIT_TEST_AMQP_URL="$AMQP_URL"
export CHAIN_TEST_RPC_URL="$CHAIN_RPC_URL" STORAGE_TEST_S3_ENDPOINT="$S3_ENDPOINT"
export GATEWAY_URL="$STACK_GATEWAY_URL" GATEWAY_CA="$GW_TLS_CERT_FILE"
export AUTH_PORT CREDIT_PORT STORAGE_PORT CHAIN_PORT
STATE_DIR="$STACK_STATE_DIR"
BUILD_DIR="${BUILD_DIR:-$REPO/build}"

# Check prints "N%: Checks: X, Failures: F, Errors: E" per runner; sum them.
count_checks() {
  local log=$1 c f e
  while read -r c f e; do
    total_pass=$((total_pass + c - f - e))
    total_fail=$((total_fail + f + e))
  done < <(sed -nE 's/.*Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p' "$log")
}

run_meson() {
  local dir=$1 log=$2; shift 2
  meson test -C "$dir" --print-errorlogs --verbose "$@" >"$log" 2>&1
  local rc=$?
  grep -E '^ *[0-9]+/[0-9]+ ' "$log" || true
  count_checks "$log"
  if [ $rc -ne 0 ] && ! grep -qE 'Failures: [1-9]|Errors: [1-9]' "$log"; then
    # a runner crashed or timed out before printing its summary
    echo "meson test in $dir failed (rc=$rc) without a Check summary; see $log"
    total_fail=$((total_fail + 1))
  fi
}

# Adds a script's last line "N passed, N failed" (its log) to the totals.
count_result() {
  local log=$1 name=$2 line
  line=$(tail -n 1 "$log")
  if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    total_pass=$((total_pass + BASH_REMATCH[1]))
    total_fail=$((total_fail + BASH_REMATCH[2]))
  else
    echo "$name ended without a result line"
    total_fail=$((total_fail + 1))
  fi
}

mkdir -p "$STATE_DIR/logs"
echo "== documentation: the configuration table matches the daemons' tables"
if python3 tools/config_doc.py --check; then
  total_pass=$((total_pass + 1))
else
  total_fail=$((total_fail + 1))
fi

echo "== unit + integration tests"
run_meson "$BUILD_DIR" "$STATE_DIR/logs/test-unit.log" --suite unit --suite integration --num-processes 1

echo "== unit tests under valgrind (memcheck: no errors, no definite or indirect leaks)"
CK_FORK=no run_meson "$BUILD_DIR" "$STATE_DIR/logs/test-valgrind.log" --suite unit --num-processes 2 \
  --wrap='valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect -q'

echo "== unit tests under ASan+UBSan"
ASAN_DIR="${ASAN_DIR:-$REPO/build-asan}"
if [ ! -d "$ASAN_DIR" ]; then
  meson setup "$ASAN_DIR" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
if ninja -C "$ASAN_DIR" >"$STATE_DIR/logs/build-asan.log" 2>&1; then
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    run_meson "$ASAN_DIR" "$STATE_DIR/logs/test-asan.log" --suite unit
else
  echo "ASan build failed; see $STATE_DIR/logs/build-asan.log"
  total_fail=$((total_fail + 1))
fi

echo "== end-to-end (black box): tests/e2e/test_*.py"
# every gateway exchange of the suites, for tests/checks/openapi.sh (conformance)
export E2E_RECORD="$STATE_DIR/logs/exchanges.jsonl"
: >"$E2E_RECORD"
for suite in tests/e2e/test_*.py tests/faults/run.py; do  # faults: see tests/faults/run.py
  name=$(basename "$suite" .py)
  echo "-- $name"
  python3 "$suite" | tee "$STATE_DIR/logs/e2e-$name.log"
  count_result "$STATE_DIR/logs/e2e-$name.log" "$name"
done
echo "== end-to-end suites again against ASan+UBSan daemons: tests/e2e/sanitized.sh"
bash tests/e2e/sanitized.sh 2>&1 | tee "$STATE_DIR/logs/e2e-sanitized.log"
count_result "$STATE_DIR/logs/e2e-sanitized.log" "sanitized e2e"
echo "== further checks: tests/checks/*.sh"
for chk in tests/checks/*.sh; do
  [ -e "$chk" ] || continue
  name=$(basename "$chk" .sh)
  echo "-- $name"
  bash "$chk" 2>&1 | tee "$STATE_DIR/logs/check-$name.log"
  count_result "$STATE_DIR/logs/check-$name.log" "$name"
done
finish
