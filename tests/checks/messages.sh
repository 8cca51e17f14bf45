#!/usr/bin/env bash
# Real queue messages of the run against proto/msg/*.json: the envelopes in
# credit.outbox and auth.outbox (payload = the exact published text) and
# chain-svc's chain.transfer.* events rebuilt from chain.transfers the way
# chain-svc builds them (see tests/checks/messages.py). Reads the database as
# the stack's superuser over the socket. Ends with "N passed, N failed".
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
conn="host=$STACK_STATE_DIR/pgsock port=${PG_PORT:-25432} user=postgres dbname=saas"
q() { psql -X -q -At -F $'\t' "$conn" -v ON_ERROR_STOP=1 -c "$1"; }
{
  # payload text holds no tab/newline (compact JSON; control characters are escaped)
  q "SELECT 'credit.outbox', routing_key, id, payload FROM credit.outbox ORDER BY created_at" &&
    q "SELECT 'auth.outbox', routing_key, id, payload FROM auth.outbox ORDER BY created_at" &&
    q "SELECT 'chain.transfers', '', debit_id,
              json_build_array(debit_id, tx_hash, nonce::text, to_address, block_number::text,
                               status, request_id,
                               to_char(updated_at AT TIME ZONE 'UTC',
                                       'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))::text
         FROM chain.transfers
        WHERE reported_status IS NOT NULL AND reported_status = status
        ORDER BY updated_at"
} >"${TMPDIR:-/tmp}/messages.$$" || {
  echo "FAIL - cannot read the outbox / transfers tables"
  rm -f "${TMPDIR:-/tmp}/messages.$$"
  echo "0 passed, 1 failed"
  exit 1
}
/usr/bin/python3 tests/checks/messages.py proto/msg <"${TMPDIR:-/tmp}/messages.$$"
rc=$?
rm -f "${TMPDIR:-/tmp}/messages.$$"
exit $rc
