# shellcheck shell=bash
# services/env.d/payments.sh - payments (Stripe, Razorpay) settings of credit-svc.
# Sourced by services/up while it writes $STATE_DIR/env (stdout = env file).
# Locally the provider APIs are the stand-ins of tests/e2e/standins/ on
# loopback (the e2e suite starts them on these ports); set STRIPE_API_BASE /
# RAZORPAY_API_BASE and the keys in the caller's environment to use the real
# providers. STRIPE_WEBHOOK_SECRET is written by services/up itself (taken
# from the environment or generated once and printed).
STRIPE_STANDIN_PORT="${STRIPE_STANDIN_PORT:-24580}"
RAZORPAY_STANDIN_PORT="${RAZORPAY_STANDIN_PORT:-24581}"
[[ -n "${S_STRIPE_SECRET_KEY:-}" ]] || put_secret S_STRIPE_SECRET_KEY "sk_test_$(hex 24)"
[[ -n "${S_RAZORPAY_KEY_SECRET:-}" ]] || put_secret S_RAZORPAY_KEY_SECRET "$(hex 24)"
[[ -n "${S_RAZORPAY_WEBHOOK_SECRET:-}" ]] || put_secret S_RAZORPAY_WEBHOOK_SECRET "$(hex 24)"
env_line STRIPE_STANDIN_PORT "$STRIPE_STANDIN_PORT"
env_line RAZORPAY_STANDIN_PORT "$RAZORPAY_STANDIN_PORT"
env_line STRIPE_API_BASE "${STRIPE_API_BASE:-http://127.0.0.1:$STRIPE_STANDIN_PORT}"
env_line STRIPE_SECRET_KEY "${STRIPE_SECRET_KEY:-$S_STRIPE_SECRET_KEY}"
env_line STRIPE_TOLERANCE_S "${STRIPE_TOLERANCE_S:-300}"
env_line PAYMENTS_SUCCESS_URL "${PAYMENTS_SUCCESS_URL:-https://127.0.0.1:$GW_PORT/payments/success?session_id={CHECKOUT_SESSION_ID}}"
env_line PAYMENTS_CANCEL_URL "${PAYMENTS_CANCEL_URL:-https://127.0.0.1:$GW_PORT/payments/cancel}"
env_line PAYMENTS_HTTP_TIMEOUT_MS "${PAYMENTS_HTTP_TIMEOUT_MS:-10000}"
env_line RAZORPAY_API_BASE "${RAZORPAY_API_BASE:-http://127.0.0.1:$RAZORPAY_STANDIN_PORT}"
env_line RAZORPAY_KEY_ID "${RAZORPAY_KEY_ID:-rzp_test_local}"
env_line RAZORPAY_KEY_SECRET "${RAZORPAY_KEY_SECRET:-$S_RAZORPAY_KEY_SECRET}"
env_line RAZORPAY_WEBHOOK_SECRET "${RAZORPAY_WEBHOOK_SECRET:-$S_RAZORPAY_WEBHOOK_SECRET}"
