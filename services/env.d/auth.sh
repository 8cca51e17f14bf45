# shellcheck shell=bash
# services/env.d/auth.sh - auth-svc additions (sourced by services/up while it
# writes $STATE_DIR/env; stdout goes into the env file). See docs/identity.md.
[[ -n "${S_AUTH_TOKEN_ENC_KEY:-}" ]] || put_secret S_AUTH_TOKEN_ENC_KEY "$(openssl rand -hex 32)"
env_line AUTH_TOKEN_ENC_KEY "$S_AUTH_TOKEN_ENC_KEY"
env_line AUTH_REFRESH_GRACE_MS "${AUTH_REFRESH_GRACE_MS:-2000}"
env_line AUTH_ALLOWED_ORIGINS "${AUTH_ALLOWED_ORIGINS:-https://127.0.0.1:$GW_PORT}"
env_line AUTH_CHAIN_URL "http://127.0.0.1:$CHAIN_PORT"
