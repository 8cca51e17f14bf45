# shellcheck shell=bash
# services/env.d/credit.sh — credit-svc additions to $STATE_DIR/env (sourced by
# services/up inside the env block; stdout goes into the env file).
# Low-credit notifications go to the local maildev (SMTP catcher) started by
# services/up; tests read them from its web API (GET /email).
env_line CREDIT_LOW_BALANCE_THRESHOLD "${CREDIT_LOW_BALANCE_THRESHOLD:-10}"
env_line CREDIT_MAIL_PROVIDER "${CREDIT_MAIL_PROVIDER:-smtp}"
env_line CREDIT_MAIL_FROM "${CREDIT_MAIL_FROM:-no-reply@credits.localhost}"
env_line CREDIT_SMTP_URL "smtp://127.0.0.1:$MAILDEV_SMTP_PORT"
env_line CREDIT_AUTH_URL "http://127.0.0.1:$AUTH_PORT"
env_line CREDIT_NOTIFY_POLL_MS 250
env_line MAILDEV_SMTP_PORT "$MAILDEV_SMTP_PORT"
env_line MAILDEV_WEB_PORT "$MAILDEV_WEB_PORT"
env_line STACK_MAILDEV_URL "http://127.0.0.1:$MAILDEV_WEB_PORT"
