#!/usr/bin/env bash
# tests/faults/soak.sh [seconds] - the fault-injection soak (not part of the
# test command): mixed client load (6 workers) through the gateway for
# `seconds` (default 600) while a random fault is injected every 8-20 s
# (kill -9 of a random daemon, a random failpoint of lc/failpoint.h, RabbitMQ
# restart, PostgreSQL restart, chain node stopped 5-30 s); then every SPEC 7
# invariant is checked once (tests/faults/run.py --soak). Uses the stack of
# STATE_DIR / BUILD_DIR and the port variables like tests/run.sh (starts it
# when it is not up). Ends with "N passed, N failed"; FAULTS_SEED reproduces.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
bash services/up >/dev/null || { echo "services/up failed"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck source=/dev/null
. services/env.sh
export GATEWAY_URL="$STACK_GATEWAY_URL" GATEWAY_CA="$GW_TLS_CERT_FILE"
export AUTH_PORT CREDIT_PORT STORAGE_PORT CHAIN_PORT
exec python3 tests/faults/run.py --soak "${1:-600}"
