#!/usr/bin/env bash
# ThreadSanitizer pass (issue 9): builds the concurrency-heavy test binaries
# with -Db_sanitize=thread in their own build dir ($TSAN_DIR, default
# <BUILD_DIR>-tsan; gcc's libtsan, or CC=clang) and runs them with
# CK_FORK=no (no fork in a threaded process):
#   lc-tests                   iauth replay cache, JWT, messages
#   lc-integration-tests       db pool under concurrent checkout, AMQP publisher/consumer threads
#   gateway-tests              authn, key cache, revoke list, rate limits
#   gateway-concurrency-tests  rate limits / key cache / revoke list hammered by threads
#   gateway-upstream-tests     upstream selection + health thread, real sockets
#   auth-integration-tests     parallel refresh of one token family, pooled DB
#   credit-svc-itests          parallel reserve/commit, outbox relay against the broker
# A binary passes when every Check test passes and TSan reported nothing
# (exitcode 66 on a report). Suppressions (tests/checks/tsan.supp) cover
# third-party libraries only, each justified there. The integration binaries
# need the stack (PostgreSQL, RabbitMQ): run with its environment (tests/run.sh
# does; standalone: `. services/env.sh` first). Ends with "N passed, N failed"
# (one per binary, plus a self-check that TSan reports a planted race).
# Takes about 1 minute after the first build (~3 minutes on a cold 2-core machine).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
BUILD_DIR="${BUILD_DIR:-$REPO/build}"
TSAN_DIR="${TSAN_DIR:-${BUILD_DIR%/}-tsan}"
STATE_DIR="${STACK_STATE_DIR:-${STATE_DIR:-$REPO/.run}}"
LOG_DIR="$STATE_DIR/logs"
mkdir -p "$LOG_DIR"
pass=0
fail=0

TESTS=(
  libcommon/lc-tests
  libcommon/lc-integration-tests
  gateway/gateway-tests
  gateway/gateway-concurrency-tests
  gateway/gateway-upstream-tests
  auth-svc/auth-integration-tests
  credit-svc/credit-svc-itests
)

if [ ! -f "$TSAN_DIR/build.ninja" ]; then
  if ! meson setup "$TSAN_DIR" -Db_sanitize=thread -Db_lundef=false >"$LOG_DIR/tsan-setup.log" 2>&1; then
    echo "FAIL - meson setup of $TSAN_DIR (see $LOG_DIR/tsan-setup.log)"
    echo "0 passed, 1 failed"
    exit 1
  fi
fi
if ! ninja -C "$TSAN_DIR" "${TESTS[@]}" >"$LOG_DIR/tsan-build.log" 2>&1; then
  echo "FAIL - TSan build (see $LOG_DIR/tsan-build.log)"
  echo "0 passed, 1 failed"
  exit 1
fi

# The stack's superuser for the integration tests, as tests/run.sh sets it.
if [ -z "${LC_TEST_PG_URL:-}" ] && [ -n "${STACK_STATE_DIR:-}" ]; then
  pg_admin="postgresql://postgres@/saas?host=${STACK_STATE_DIR}/pgsock&port=${PG_PORT:-25432}"
  export LC_TEST_PG_URL="$pg_admin" AUTH_TEST_PG_URL="$pg_admin" CREDIT_TEST_PG_URL="$pg_admin"
  export LC_TEST_AMQP_URL="${AMQP_URL:-}" CREDIT_TEST_AMQP_URL="${AMQP_URL:-}"
fi

export CK_FORK=no
# exitcode: a report fails the binary even when every Check test passed;
# history_size: deeper "previous access" stacks for the DB/AMQP threads.
export TSAN_OPTIONS="exitcode=66 halt_on_error=0 history_size=4 second_deadlock_stack=1 suppressions=$REPO/tests/checks/tsan.supp"
# Self-check: TSan must see a planted race, or every "no reports" below is void.
selfdir=$(mktemp -d)
cat >"$selfdir/race.c" <<'EOF_RACE'
#include <pthread.h>
static int x;
static void *bump(void *a) { (void)a; x++; return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, bump, 0); x++; pthread_join(t, 0); return 0; }
EOF_RACE
if "${CC:-cc}" -fsanitize=thread -g -o "$selfdir/race" "$selfdir/race.c" -lpthread 2>"$LOG_DIR/tsan-selfcheck.log" &&
   ! "$selfdir/race" >>"$LOG_DIR/tsan-selfcheck.log" 2>&1 &&
   grep -q '^WARNING: ThreadSanitizer: data race' "$LOG_DIR/tsan-selfcheck.log"; then
  echo "ok   - TSan self-check: a planted data race is reported"
  pass=$((pass + 1))
else
  echo "FAIL - TSan self-check: a planted race was not reported (see $LOG_DIR/tsan-selfcheck.log)"
  fail=$((fail + 1))
fi
rm -rf "$selfdir"

for t in "${TESTS[@]}"; do
  name=$(basename "$t")
  log="$LOG_DIR/tsan-$name.log"
  t0=$SECONDS
  timeout 300 "$TSAN_DIR/$t" >"$log" 2>&1
  rc=$?
  summary=$(sed -nE 's/.*(Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+).*/\1/p' "$log" | tail -n 1)
  reports=$(grep -c '^WARNING: ThreadSanitizer' "$log")
  if [ $rc -eq 0 ] && [ "$reports" -eq 0 ] && [ -n "$summary" ]; then
    echo "ok   - TSan $name: $summary, no reports ($((SECONDS - t0)) s)"
    pass=$((pass + 1))
  else
    echo "FAIL - TSan $name: rc=$rc, ${summary:-no Check summary}, $reports report(s); see $log"
    grep -m 3 -A 12 '^WARNING: ThreadSanitizer' "$log" | head -n 40
    fail=$((fail + 1))
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
