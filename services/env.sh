# shellcheck shell=bash
# services/env.sh — export the local stack's environment into the caller.
#
# Contract: `. services/env.sh` (sourced, from bash). Exports every variable
# of $STATE_DIR/env (written by services/up) plus CHAIN_TOKEN_ADDRESS /
# CHAIN_TOKEN_DECIMALS from $STATE_DIR/chain.env. STATE_DIR defaults to
# <repo>/.run. Returns 1 (without exiting the caller) when the stack's env
# does not exist yet. Changes no shell options of the caller.
_svc_env_state="${STATE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.run}"
if [[ ! -r "$_svc_env_state/env" ]]; then
  printf '[services] %s/env not found: run services/up first\n' "$_svc_env_state" >&2
  unset _svc_env_state
  return 1
fi
# shellcheck source=/dev/null
. "$_svc_env_state/env"
if [[ -r "$_svc_env_state/chain.env" ]]; then
  _svc_env_restore="$(set +o | grep allexport)"
  set -a
  # shellcheck source=/dev/null
  . "$_svc_env_state/chain.env"
  eval "$_svc_env_restore"
  unset _svc_env_restore
fi
unset _svc_env_state
