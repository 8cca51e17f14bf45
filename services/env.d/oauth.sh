# shellcheck shell=bash
# services/env.d/oauth.sh - OAuth login settings of auth-svc (docs/oauth.md).
# Sourced by services/up while it writes $STATE_DIR/env (stdout = env file).
#
# The local stack has no real identity provider: Google points at a local
# OpenID provider (oauth2-mock-server, tests/e2e/standins/oidc.mjs) and GitHub
# at a GitHub-shaped stand-in (tests/e2e/standins/github.mjs), both on plain
# HTTP to 127.0.0.1 on the fixed ports below, started by tests/e2e/test_oauth.py
# (or by hand: node tests/e2e/standins/oidc.mjs $OAUTH_OIDC_PORT). auth-svc
# accepts plain http only for 127.0.0.1. To sign in with the real providers
# under `make run`, export before services/up:
#   AUTH_GOOGLE_DISCOVERY_URL=https://accounts.google.com/.well-known/openid-configuration
#   AUTH_GOOGLE_CLIENT_ID / AUTH_GOOGLE_CLIENT_SECRET / AUTH_GOOGLE_REDIRECT_URI
#   AUTH_GITHUB_AUTHORIZE_URL=https://github.com/login/oauth/authorize
#   AUTH_GITHUB_TOKEN_URL=https://github.com/login/oauth/access_token
#   AUTH_GITHUB_API_URL=https://api.github.com
#   AUTH_GITHUB_CLIENT_ID / AUTH_GITHUB_CLIENT_SECRET / AUTH_GITHUB_REDIRECT_URI
#   AUTH_OAUTH_SUCCESS_URL (the page the browser lands on after signing in)
OAUTH_OIDC_PORT="${OAUTH_OIDC_PORT:-24590}"
OAUTH_GITHUB_PORT="${OAUTH_GITHUB_PORT:-24591}"
[[ -n "${S_OAUTH_GOOGLE_SECRET:-}" ]] || put_secret S_OAUTH_GOOGLE_SECRET "$(hex 24)"
[[ -n "${S_OAUTH_GITHUB_SECRET:-}" ]] || put_secret S_OAUTH_GITHUB_SECRET "$(hex 20)"
env_line OAUTH_OIDC_PORT "$OAUTH_OIDC_PORT"
env_line OAUTH_GITHUB_PORT "$OAUTH_GITHUB_PORT"
env_line AUTH_GOOGLE_DISCOVERY_URL "${AUTH_GOOGLE_DISCOVERY_URL:-http://127.0.0.1:$OAUTH_OIDC_PORT/.well-known/openid-configuration}"
env_line AUTH_GOOGLE_CLIENT_ID "${AUTH_GOOGLE_CLIENT_ID:-local-google-client.apps.example}"
env_line AUTH_GOOGLE_CLIENT_SECRET "${AUTH_GOOGLE_CLIENT_SECRET:-$S_OAUTH_GOOGLE_SECRET}"
env_line AUTH_GOOGLE_REDIRECT_URI "${AUTH_GOOGLE_REDIRECT_URI:-https://127.0.0.1:$GW_PORT/v1/auth/oauth/google/callback}"
env_line AUTH_GITHUB_AUTHORIZE_URL "${AUTH_GITHUB_AUTHORIZE_URL:-http://127.0.0.1:$OAUTH_GITHUB_PORT/login/oauth/authorize}"
env_line AUTH_GITHUB_TOKEN_URL "${AUTH_GITHUB_TOKEN_URL:-http://127.0.0.1:$OAUTH_GITHUB_PORT/login/oauth/access_token}"
env_line AUTH_GITHUB_API_URL "${AUTH_GITHUB_API_URL:-http://127.0.0.1:$OAUTH_GITHUB_PORT}"
env_line AUTH_GITHUB_CLIENT_ID "${AUTH_GITHUB_CLIENT_ID:-Iv1.local0github0app}"
env_line AUTH_GITHUB_CLIENT_SECRET "${AUTH_GITHUB_CLIENT_SECRET:-$S_OAUTH_GITHUB_SECRET}"
env_line AUTH_GITHUB_REDIRECT_URI "${AUTH_GITHUB_REDIRECT_URI:-https://127.0.0.1:$GW_PORT/v1/auth/oauth/github/callback}"
env_line AUTH_OAUTH_SUCCESS_URL "${AUTH_OAUTH_SUCCESS_URL:-/signed-in}"
env_line AUTH_OAUTH_STATE_TTL "${AUTH_OAUTH_STATE_TTL:-600}"
if [[ -n "${AUTH_OAUTH_ERROR_URL:-}" ]]; then env_line AUTH_OAUTH_ERROR_URL "$AUTH_OAUTH_ERROR_URL"; fi
