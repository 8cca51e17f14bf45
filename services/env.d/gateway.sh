# shellcheck shell=bash
# services/env.d/gateway.sh - gateway additions (sourced by services/up while it
# writes $STATE_DIR/env; stdout goes into the env file). See docs/gateway.md.
#
# The gateway's built-in rate limits are production defaults (e.g. 10 logins
# per minute per IP, 5 per email). On the local stack every test suite talks
# from 127.0.0.1 and some log in many times on purpose (login timing medians),
# so this stack's instance gets generous limits; tests/e2e/test_gateway.py
# proves the real limits on gateway instances of its own started with the
# defaults. Override any GW_RL_* from the caller's environment.
env_line GW_REVOCATIONS_REQUIRED "${GW_REVOCATIONS_REQUIRED:-1}"
env_line GW_KEY_CACHE_MS "${GW_KEY_CACHE_MS:-1000}"
env_line GW_KEY_NEG_CACHE_MS "${GW_KEY_NEG_CACHE_MS:-1000}"
env_line GW_TRUSTED_PROXY "${GW_TRUSTED_PROXY:-}"
env_line GW_RL_WINDOW_S "${GW_RL_WINDOW_S:-60}"
env_line GW_RL_SIGNUP_IP "${GW_RL_SIGNUP_IP:-6000}"
env_line GW_RL_LOGIN_IP "${GW_RL_LOGIN_IP:-6000}"
env_line GW_RL_LOGIN_ACCOUNT "${GW_RL_LOGIN_ACCOUNT:-3000}"
env_line GW_RL_REFRESH_IP "${GW_RL_REFRESH_IP:-6000}"
env_line GW_RL_REFRESH_ACCOUNT "${GW_RL_REFRESH_ACCOUNT:-600}"
env_line GW_RL_PASSWORD_ACCOUNT "${GW_RL_PASSWORD_ACCOUNT:-600}"
env_line GW_RL_CHECKOUT_IP "${GW_RL_CHECKOUT_IP:-6000}"
env_line GW_RL_CHECKOUT_ACCOUNT "${GW_RL_CHECKOUT_ACCOUNT:-600}"
env_line GW_RL_WEBHOOK_IP "${GW_RL_WEBHOOK_IP:-60000}"
