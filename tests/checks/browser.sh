#!/usr/bin/env bash
# tests/checks/browser.sh - the web front end in a real browser: runs
# tests/browser/ui.mjs (playwright-core + Debian /usr/bin/chromium) against the
# running stack's gateway. Needs the stack env (GATEWAY_URL, GATEWAY_CA,
# ADMIN_EMAIL, ADMIN_PASSWORD; tests/run.sh exports them). Screenshots of the
# run go to $STACK_STATE_DIR/screenshots (the committed ones in
# docs/screenshots are refreshed with UI_SCREENSHOT_DIR=docs/screenshots, see
# tests/demo/README.md). Ends with "N passed, N failed".
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1
if [[ -z "${GATEWAY_URL:-}" ]]; then
  # shellcheck source=/dev/null
  . services/env.sh || { echo "0 passed, 1 failed"; exit 1; }
  export GATEWAY_URL="$STACK_GATEWAY_URL" GATEWAY_CA="$GW_TLS_CERT_FILE"
fi
if [[ ! -x /usr/bin/chromium ]]; then
  echo "FAIL /usr/bin/chromium not installed (services/setup installs it)"
  echo "0 passed, 1 failed"
  exit 1
fi
export UI_SCREENSHOT_DIR="${UI_SCREENSHOT_DIR:-${STACK_STATE_DIR:-/tmp}/screenshots}"
timeout 600 node tests/browser/ui.mjs
rc=$?
if [[ $rc -ne 0 && $rc -ne 1 ]]; then
  echo "ui.mjs exited with $rc"
  echo "0 passed, 1 failed"
  exit 1
fi
exit $rc
