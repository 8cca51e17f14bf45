#!/usr/bin/env bash
# tests/e2e/sanitized.sh — the end-to-end suites against ASan+UBSan daemons.
#
# Contract: as root, with the stack up (services/up) and its environment
# exported the way tests/run.sh does; ASAN_DIR (default <repo>/build-asan)
# holds a -Db_sanitize=address,undefined build of the daemons (run.sh builds
# it for the unit tests). Replaces the five running daemons by their
# sanitizer builds (same ports, same state), runs the black-box suites
# tests/e2e/test_*.py against them with E2E_SANITIZED=1 and BUILD_DIR=ASAN_DIR
# (a suite that restarts a daemon restarts the sanitizer build), then stops
# them with SIGTERM (LeakSanitizer runs at exit) and starts the normal
# daemons again. Every sanitizer report goes to its own file under
# $STATE_DIR/logs/asan/; the run fails when any exists or when a sanitized
# daemon died. Skipped here: test_scale (two instances of every daemon at
# once, kill -9 under load: the scale and kill paths run in the normal
# suite) — see README "Sanitizers". Ends with "N passed, N failed".
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
# shellcheck source=/dev/null
. services/lib.sh
ASAN_DIR="${ASAN_DIR:-$REPO/build-asan}"
NORMAL_BUILD="$BUILD_DIR"
SAN_LOG="$LOG_DIR/asan"
SKIP_SUITES=" test_scale "
pass=0
fail=0
result() {
  if [ "$1" -eq 1 ]; then pass=$((pass + 1)); echo "ok   - $2"; else fail=$((fail + 1)); echo "FAIL - $2"; fi
}
finish() {
  echo "${pass} passed, ${fail} failed"
  exit 0
}

stop_daemons() { # <build dir>
  local i d
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    d="${DAEMONS[i]}"
    stop_pid "$d" "$1/$d/$d" 20 >/dev/null 2>&1
  done
}

start_normal() {
  stop_daemons "$ASAN_DIR"
  if SERVICES_SKIP_BUILD=1 BUILD_DIR="$NORMAL_BUILD" bash services/up >"$LOG_DIR/sanitized-restore.log" 2>&1; then
    result 1 "normal daemons started again after the sanitized run"
  else
    result 0 "normal daemons started again after the sanitized run (see $LOG_DIR/sanitized-restore.log)"
  fi
}

for d in "${DAEMONS[@]}"; do
  if [ ! -x "$ASAN_DIR/$d/$d" ]; then
    result 0 "sanitizer build of $d exists ($ASAN_DIR/$d/$d)"
    finish
  fi
done

rm -rf "$SAN_LOG"
mkdir -p "$SAN_LOG"
# One file per report (log_path appends the pid); halt on the first one so
# that a report also shows as a failed request.
export ASAN_OPTIONS="log_path=$SAN_LOG/asan:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1"
export UBSAN_OPTIONS="log_path=$SAN_LOG/ubsan:halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$REPO/tests/e2e/lsan.supp:print_suppressions=0"

stop_daemons "$NORMAL_BUILD"
if ! SERVICES_SKIP_BUILD=1 BUILD_DIR="$ASAN_DIR" bash services/up >"$LOG_DIR/sanitized-up.log" 2>&1; then
  result 0 "sanitized daemons start (see $LOG_DIR/sanitized-up.log)"
  start_normal
  finish
fi
result 1 "sanitized daemons start ($ASAN_DIR)"

for suite in tests/e2e/test_*.py; do
  name=$(basename "$suite" .py)
  if [[ "$SKIP_SUITES" == *" $name "* ]]; then
    echo "skip - $name (see the header of this script)"
    continue
  fi
  echo "-- $name (sanitized)"
  t0=$SECONDS
  E2E_SANITIZED=1 BUILD_DIR="$ASAN_DIR" python3 "$suite" >"$LOG_DIR/e2e-san-$name.log" 2>&1
  grep -E '^(FAIL|skip) ' "$LOG_DIR/e2e-san-$name.log"
  line=$(tail -n 1 "$LOG_DIR/e2e-san-$name.log")
  if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    pass=$((pass + BASH_REMATCH[1]))
    fail=$((fail + BASH_REMATCH[2]))
    echo "   $line ($((SECONDS - t0)) s)"
  else
    result 0 "$name ended without a result line (see $LOG_DIR/e2e-san-$name.log)"
  fi
done

# Every sanitized daemon is still the one running (none halted on a report).
for d in "${DAEMONS[@]}"; do
  pid="$(pid_of "$d")"
  if pid_matches "$pid" "$ASAN_DIR/$d/$d"; then
    result 1 "sanitized $d still running after the suites"
  else
    result 0 "sanitized $d still running after the suites"
  fi
done
# SIGTERM: each daemon shuts down cleanly and LeakSanitizer checks at exit.
stop_daemons "$ASAN_DIR"
sleep 1
reports=$(find "$SAN_LOG" -type f | sort)
if [ -z "$reports" ]; then
  result 1 "no AddressSanitizer / UndefinedBehaviorSanitizer / LeakSanitizer report"
else
  for f in $reports; do
    echo "== $f"
    head -n 40 "$f"
  done
  result 0 "no sanitizer report ($(echo "$reports" | wc -l) report file(s) in $SAN_LOG)"
fi
start_normal
finish
