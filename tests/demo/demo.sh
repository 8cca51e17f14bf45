#!/usr/bin/env bash
# tests/demo/demo.sh - the product's core flow against the local stack, step by
# step, with curl + jq only:
#   1. sign up (50 credits)  2. a paid action (upload a file, 10 credits)
#   3. the credit deduction (balance, ledger)  4. the on-chain transfer: the
#   admin audit row gets its tx hash, and the receipt is read straight from the
#   chain node (CHAIN_RPC_URL): status, block, Transfer(master -> the user's
#   custodial address, 10 tokens).
# Usage: bash services/up && bash tests/demo/demo.sh   (stack env from services/env.sh)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -z "${STACK_GATEWAY_URL:-}" ]]; then
  # shellcheck source=/dev/null
  . "$REPO/services/env.sh"
fi
G="${GATEWAY_URL:-$STACK_GATEWAY_URL}"
CA="${GATEWAY_CA:-$GW_TLS_CERT_FILE}"
RPC="$CHAIN_RPC_URL"
c() { curl -sS --fail-with-body --cacert "$CA" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '   $ %s\n' "$*"; }

EMAIL="demo-$(date +%s)-$RANDOM@example.com"
PASSWORD="demo password $(openssl rand -hex 4)"

step "1. sign up $EMAIL"
show "curl -X POST $G/v1/auth/signup -d '{\"email\":...,\"password\":...}'"
SIGNUP=$(c -X POST "$G/v1/auth/signup" -H 'Content-Type: application/json' \
  -d "$(jq -nc --arg e "$EMAIL" --arg p "$PASSWORD" '{email:$e,password:$p}')")
TOKEN=$(jq -r .access_token <<<"$SIGNUP")
USER_ID=$(jq -r .user.id <<<"$SIGNUP")
jq '{user, token_type, expires_in}' <<<"$SIGNUP"
show "curl $G/v1/credits -H 'Authorization: Bearer …'"
c "$G/v1/credits" -H "Authorization: Bearer $TOKEN" | jq -c .

step "2. a paid action: upload a file (costs 10 credits)"
show "curl -X POST $G/v1/files -H 'X-File-Name: demo.txt' --data-binary @-"
FILE=$(printf 'hello from the demo\n' | c -X POST "$G/v1/files" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: text/plain' -H 'X-File-Name: demo.txt' -H "Idempotency-Key: demo-$RANDOM$RANDOM" \
  --data-binary @-)
jq '{id, name, content_type, size_bytes, sha256}' <<<"$FILE"

step "3. the credit deduction"
show "curl $G/v1/credits"
c "$G/v1/credits" -H "Authorization: Bearer $TOKEN" | jq -c .
show "curl $G/v1/credits/ledger"
c "$G/v1/credits/ledger" -H "Authorization: Bearer $TOKEN" | jq -c '.items[] | {kind, action, delta, balance_after}' 2>/dev/null ||
  c "$G/v1/credits/ledger" -H "Authorization: Bearer $TOKEN" | jq -c '.items[]'

step "4. the on-chain transfer (admin audit view, then the chain node itself)"
ADMIN=$(c -X POST "$G/v1/auth/login" -H 'Content-Type: application/json' \
  -d "$(jq -nc --arg e "$ADMIN_EMAIL" --arg p "$ADMIN_PASSWORD" '{email:$e,password:$p}')" | jq -r .access_token)
show "curl '$G/v1/admin/audit?user_id=$USER_ID&action=file.upload'   (admin; polled until confirmed)"
ROW=""
for _ in $(seq 1 120); do
  ROW=$(c "$G/v1/admin/audit?user_id=$USER_ID&action=file.upload" -H "Authorization: Bearer $ADMIN" | jq -c '.items[0] // empty')
  [[ -n "$ROW" && "$(jq -r .chain_status <<<"$ROW")" == confirmed ]] && break
  sleep 0.5
done
jq '{action, cost, status, tx_hash, chain_status, block_number, to_address}' <<<"$ROW"
TX=$(jq -r .tx_hash <<<"$ROW")
[[ "$TX" =~ ^0x[0-9a-f]{64}$ ]] || { echo "no confirmed transfer yet"; exit 1; }
show "curl $RPC -d '{\"method\":\"eth_getTransactionReceipt\",\"params\":[\"$TX\"]}'"
RECEIPT=$(curl -sS "$RPC" -H 'Content-Type: application/json' \
  -d "$(jq -nc --arg tx "$TX" '{jsonrpc:"2.0",id:1,method:"eth_getTransactionReceipt",params:[$tx]}')" | jq -c .result)
TRANSFER_TOPIC=0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef
LOG=$(jq -c --arg t "$TRANSFER_TOPIC" '[.logs[] | select(.topics[0] == $t)][0]' <<<"$RECEIPT")
AMOUNT_HEX=$(jq -r .data <<<"$LOG")
DECIMALS="${CHAIN_TOKEN_DECIMALS:-18}"
AMOUNT=$(python3 -c "import sys; from decimal import Decimal as D; print(format(D(int(sys.argv[1], 16)).scaleb(-int(sys.argv[2])).normalize(), 'f'))" "$AMOUNT_HEX" "$DECIMALS")
BLOCK=$(($(jq -r .blockNumber <<<"$RECEIPT")))
jq --arg amount "$AMOUNT" --argjson block "$BLOCK" '{
  status: (if .status == "0x1" then "success" else .status end),
  block: $block,
  token: .to,
  transfer: (.logs[] | select(.topics[0] == "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
             | {from: ("0x" + (.topics[1] | .[26:])), to: ("0x" + (.topics[2] | .[26:])), tokens: $amount})
}' <<<"$RECEIPT"
TO=$(jq -r '.topics[2][26:]' <<<"$LOG")
WANT=$(jq -r '.to_address | ascii_downcase | ltrimstr("0x")' <<<"$ROW")
if [[ "$(jq -r .status <<<"$RECEIPT")" == 0x1 && "$TO" == "$WANT" ]]; then
  printf '\n\033[1mdone:\033[0m 10 credits debited for the upload = 10 tokens transferred on chain to the user'"'"'s address 0x%s (tx %s)\n' "$TO" "$TX"
else
  echo "the receipt does not match the audit row"
  exit 1
fi
