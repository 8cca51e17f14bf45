#!/usr/bin/env bash
# tests/perf/bench.sh — one-command benchmark: ceilings (ulfius+GnuTLS hello,
# pgbench of credit-svc's debit SQL, RabbitMQ publish+confirm) and workloads
# W1-W4 side by side against the local stack, table to docs/perf.md.
# Not part of `make test`. See tests/perf/README.md.
#
# Usage (as root, like services/up; the stack's usual exports apply):
#   bash tests/perf/bench.sh            # starts the stack if it is not up
# Env: PERF_DURATION (s per workload, 10), PERF_CONNS (16), PERF_USERS (50),
#      PERF_OUT (docs/perf.md).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
command -v wrk >/dev/null || { echo "bench: wrk missing (run services/setup)" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "bench: pgbench missing" >&2; exit 1; }

# Stack: start it when its env is missing or the gateway does not answer.
# shellcheck source=/dev/null
if ! . services/env.sh 2>/dev/null ||
   ! curl -fsS --cacert "${GW_TLS_CERT_FILE:-/dev/null}" "${STACK_GATEWAY_URL:-https://0}/readyz" >/dev/null 2>&1; then
  bash services/up
  # shellcheck source=/dev/null
  . services/env.sh
fi
# the stack env exports STACK_STATE_DIR; STATE_DIR is only set when the caller chose one
export GATEWAY_URL="$STACK_GATEWAY_URL" GATEWAY_CA="$GW_TLS_CERT_FILE" STACK_STATE_DIR="${STACK_STATE_DIR:-${STATE_DIR:-$REPO/.run}}"

BUILD_DIR="${BUILD_DIR:-$REPO/build}"
[[ -f "$BUILD_DIR/build.ninja" ]] || meson setup "$BUILD_DIR" >/dev/null
ninja -C "$BUILD_DIR" build.ninja >/dev/null  # re-run meson when meson.build changed
ninja -C "$BUILD_DIR" tests/perf/perf-hello chain-svc/amqp_pub chain-svc/node_ceiling >/dev/null
export BUILD_DIR
export PERF_HELLO_BIN="$BUILD_DIR/tests/perf/perf-hello" PERF_AMQP_PUB_BIN="$BUILD_DIR/chain-svc/amqp_pub"
PERF_BUILDTYPE="$(meson introspect --buildoptions "$BUILD_DIR" 2>/dev/null |
  python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"))' ||
  echo '?')"
export PERF_BUILDTYPE
exec python3 tests/perf/bench.py
