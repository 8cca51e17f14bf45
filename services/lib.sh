# shellcheck shell=bash
# services/lib.sh — shared settings and helpers of the local stack scripts.
#
# Contract: sourced (never executed) by services/{setup,up,down,status,logs}.
# Defines REPO, SERVICES_DIR, STATE_DIR, BUILD_DIR, NODE_MODULES, every port
# (defaults from proto/CONTRACTS.md, each overridable from the caller's
# environment) and helpers to start/stop/check background processes by pid
# file and to wait for readiness. Has no side effects besides defining names.

SERVICES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SERVICES_DIR/.." && pwd)"
STATE_DIR="${STATE_DIR:-$REPO/.run}"
BUILD_DIR="${BUILD_DIR:-$REPO/build}"
NODE_MODULES="$SERVICES_DIR/node_modules"

# Ports (proto/CONTRACTS.md); all below 32768 (the ephemeral range starts there).
PG_PORT="${PG_PORT:-25432}"
AMQP_PORT="${AMQP_PORT:-26672}"
AMQP_DIST_PORT="${AMQP_DIST_PORT:-26673}"
EPMD_PORT="${EPMD_PORT:-24369}"
ANVIL_PORT="${ANVIL_PORT:-8545}"
# Seconds between anvil's dumps of its whole state (blocks and transactions
# included) to $STATE_DIR/anvil/state.json; it also dumps on SIGTERM. A dump
# serialises all history: ~2 s of a full core for a 640 MB state after a
# day of benchmarks (at the old 10 s interval, 20 % of a core, competing with
# mining). A crash loses at most the interval's blocks; chain-svc's rollback
# check re-sends their transfers.
ANVIL_STATE_INTERVAL="${ANVIL_STATE_INTERVAL:-300}"
S3_PORT="${S3_PORT:-24568}"
GW_PORT="${GW_PORT:-8443}"
AUTH_PORT="${AUTH_PORT:-21001}"
CREDIT_PORT="${CREDIT_PORT:-21002}"
STORAGE_PORT="${STORAGE_PORT:-21003}"
CHAIN_PORT="${CHAIN_PORT:-21004}"
MAILDEV_SMTP_PORT="${MAILDEV_SMTP_PORT:-21025}"
MAILDEV_WEB_PORT="${MAILDEV_WEB_PORT:-21080}"

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
RMQ_BIN="${RMQ_BIN:-/usr/lib/rabbitmq/bin}"
RMQ_NODENAME="saas@localhost"

# Daemons in start order (down stops them in reverse).
# shellcheck disable=SC2034 # used by the scripts that source this file
DAEMONS=(chain-svc credit-svc storage-svc auth-svc gateway)

PID_DIR="$STATE_DIR/pids"
LOG_DIR="$STATE_DIR/logs"

log() { printf '[services] %s\n' "$*" >&2; }
warn() { printf '[services] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[services] ERROR: %s\n' "$*" >&2
  exit 1
}

require_root() {
  [[ "$(id -u)" -eq 0 ]] || die "run as root (PostgreSQL is started through runuser)"
}

# daemon_port <name> — the HTTP port of one of the five daemons.
daemon_port() {
  case "$1" in
    gateway) printf '%s' "$GW_PORT" ;;
    auth-svc) printf '%s' "$AUTH_PORT" ;;
    credit-svc) printf '%s' "$CREDIT_PORT" ;;
    storage-svc) printf '%s' "$STORAGE_PORT" ;;
    chain-svc) printf '%s' "$CHAIN_PORT" ;;
    *) return 1 ;;
  esac
}

# anvil_bin — path of the real anvil binary (the optional platform package).
anvil_bin() {
  local arch
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "unsupported architecture $(uname -m) for anvil" ;;
  esac
  printf '%s' "$NODE_MODULES/@foundry-rs/anvil-linux-$arch/bin/anvil"
}

# ---------------------------------------------------------------- pid helpers

# pid_of <name> — prints the recorded pid (or nothing).
pid_of() {
  local f="$PID_DIR/$1.pid" pid=""
  if [[ -r "$f" ]]; then
    read -r pid <"$f" || true
  fi
  [[ "$pid" =~ ^[0-9]+$ ]] && printf '%s' "$pid"
  return 0
}

# cmdline_of <pid> — the process's command line with spaces between arguments.
cmdline_of() {
  [[ -r "/proc/$1/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$1/cmdline"
}

# pid_matches <pid> <pattern> — process alive and its cmdline contains pattern.
pid_matches() {
  local pid="$1" pattern="$2" cmd
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(cmdline_of "$pid" 2>/dev/null)" || return 1
  [[ "$cmd" == *"$pattern"* ]]
}

# is_running <name> <pattern> — the pid recorded for name is alive and is ours.
is_running() {
  pid_matches "$(pid_of "$1")" "$2"
}

# start_bg <name> <logfile> <cmd> [args...] — start a daemon in its own
# session, record its pid in $PID_DIR/<name>.pid.
start_bg() {
  local name="$1" logf="$2"
  shift 2
  mkdir -p "$PID_DIR" "$LOG_DIR"
  # 9>&-: never hand the up/down lock (fd 9) to a long-lived child.
  setsid "$@" >>"$logf" 2>&1 </dev/null 9>&- &
  printf '%s\n' "$!" >"$PID_DIR/$name.pid"
}

# stop_pid <name> <pattern> [timeout_s] — TERM the recorded process (only if
# its cmdline still matches), KILL after timeout, remove the pid file.
stop_pid() {
  local name="$1" pattern="$2" timeout="${3:-15}" pid i
  pid="$(pid_of "$name")"
  if pid_matches "$pid" "$pattern"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      pid_matches "$pid" "$pattern" || break
      sleep 0.1
    done
    if pid_matches "$pid" "$pattern"; then
      warn "$name (pid $pid) ignored TERM for ${timeout}s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        pid_matches "$pid" "$pattern" || break
        sleep 0.1
      done
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$PID_DIR/$name.pid"
}

# --------------------------------------------------------------- wait helpers

# wait_for <timeout_s> <what> <cmd> [args...] — poll cmd every 0.2 s.
wait_for() {
  local timeout="$1" what="$2" i
  shift 2
  for ((i = 0; i < timeout * 5; i++)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  warn "timed out after ${timeout}s waiting for $what"
  return 1
}

# tcp_open <port> — something listens on 127.0.0.1:<port>.
tcp_open() {
  (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# rpc <url> <method> [params_json] — JSON-RPC call, prints the result field.
rpc() {
  local url="$1" method="$2" params="${3:-[]}" out
  out="$(curl -sS --max-time 5 -H 'Content-Type: application/json' \
    --data "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$method\",\"params\":$params}" \
    "$url")" || return 1
  jq -er '.result' <<<"$out"
}

anvil_ready() {
  [[ "$(rpc "http://127.0.0.1:$ANVIL_PORT" eth_chainId)" == "0x7a69" ]]
}

s3_ready() {
  curl -sf --max-time 3 -o /dev/null "http://127.0.0.1:$S3_PORT/"
}

# maildev_ready — the mail catcher's web API answers (SMTP port open too).
maildev_ready() {
  curl -sf --max-time 3 -o /dev/null "http://127.0.0.1:$MAILDEV_WEB_PORT/email" &&
    tcp_open "$MAILDEV_SMTP_PORT"
}

pg_ready() {
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2
}

# daemon_ready <name> — GET /healthz answers 2xx.
daemon_ready() {
  local port
  port="$(daemon_port "$1")"
  if [[ "$1" == gateway ]]; then
    curl -skf --max-time 3 -o /dev/null "https://127.0.0.1:$port/healthz"
  else
    curl -sf --max-time 3 -o /dev/null "http://127.0.0.1:$port/healthz"
  fi
}

# ------------------------------------------------------------------- RabbitMQ

# rmq_env — export the private-node environment shared by server and CLI.
rmq_env() {
  local d="$STATE_DIR/rmq"
  export HOME="$d/home"
  export RABBITMQ_NODENAME="$RMQ_NODENAME"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$AMQP_PORT"
  export RABBITMQ_DIST_PORT="$AMQP_DIST_PORT"
  export ERL_EPMD_PORT="$EPMD_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_MNESIA_BASE="$d/mnesia"
  export RABBITMQ_LOG_BASE="$LOG_DIR/rabbitmq"
  export RABBITMQ_PID_FILE="$d/rabbitmq.pid"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
  export RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
}

# rmqctl [args...] — rabbitmqctl against our private node (in a subshell so
# HOME and the RabbitMQ variables do not leak into the caller).
rmqctl() {
  (
    rmq_env
    "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODENAME" "$@"
  )
}
