# shellcheck shell=bash
# services/env.d/chain.sh — chain-svc settings of the local stack (issue 6),
# sourced by services/up inside the env file block (env_line NAME VALUE).
# Later lines win over services/up's own chain-svc defaults.
# anvil mines instantly: 1 confirmation; short stuck/drop timers so the fault
# suite (tests/e2e/test_chain.py) runs in seconds. Production values: see
# docs/chain.md.
env_line CHAIN_CONFIRMATIONS 1
env_line CHAIN_STUCK_AFTER_S 6
env_line CHAIN_DROPPED_AFTER_S 3
env_line CHAIN_MAX_FEE_GWEI 500
env_line CHAIN_MAX_DELIVERIES 5
env_line CHAIN_BALANCE_CHECK_MS 1000
env_line CHAIN_MAX_IN_FLIGHT 512
env_line CHAIN_CREDIT_URL "http://127.0.0.1:$CREDIT_PORT"
env_line CHAIN_DB_POOL 8
# W4 throughput (issue 8): 8 debit consumers whose stores share one commit,
# a wider in-flight window; the pool covers consumers + sender stages + HTTP.
env_line CHAIN_CONSUMERS 8
env_line CHAIN_DB_POOL 16
env_line CHAIN_MINE_NUDGE_MS 100
