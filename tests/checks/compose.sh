#!/usr/bin/env bash
# tests/checks/compose.sh — static validation of the Docker deployment
# (deploy/): `docker-compose config -q` with the example env file, then a
# structural check of the resolved file: every daemon and every backing
# service has a health check (daemons probe /healthz or /readyz, PostgreSQL
# pg_isready, RabbitMQ rabbitmq-diagnostics ping), daemons wait on
# service_healthy / service_completed_successfully, only the gateway
# publishes a port, every variable docs/configuration.md marks required
# (without default) reaches its daemon, the example env file holds only
# placeholders, and the Dockerfile sets the *_SQL_DIR variables. No Docker
# engine is needed. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
pass=0
fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
ko() { echo "FAIL - $1"; fail=$((fail + 1)); }

COMPOSE=(docker-compose -f deploy/docker-compose.yml --env-file deploy/.env.example)
if ! command -v docker-compose >/dev/null; then
  ko "docker-compose is installed (services/setup installs it)"
  echo "$pass passed, $fail failed"
  exit 1
fi
if err=$("${COMPOSE[@]}" config -q 2>&1); then
  ok "docker-compose config -q accepts deploy/docker-compose.yml with deploy/.env.example"
else
  ko "docker-compose config -q: $err"
fi
resolved=$(mktemp)
trap 'rm -f "$resolved"' EXIT
"${COMPOSE[@]}" config >"$resolved" 2>/dev/null || true

out=$(python3 - "$resolved" <<'PY'
import re, sys, yaml

DAEMONS = ["gateway", "auth-svc", "credit-svc", "storage-svc", "chain-svc"]
INFRA = {"postgres": "pg_isready", "rabbitmq": "rabbitmq-diagnostics", "anvil": "",
         "minio": "", "maildev": ""}
JOBS = ["db-init", "minio-init", "token-deployer"]
results = []


def check(name, cond, detail=""):
    results.append((bool(cond), name + ("" if cond else ": %s" % (detail,))))


try:
    doc = yaml.safe_load(open(sys.argv[1])) or {}
except Exception as e:  # noqa: BLE001
    doc = {}
    check("resolved compose file is YAML", False, e)
svcs = doc.get("services", {})
check("services: 5 daemons, 5 backing services, 3 one-shot jobs",
      all(s in svcs for s in DAEMONS + list(INFRA) + JOBS), sorted(svcs))
images = {s: str(svcs.get(s, {}).get("image", "")) for s in INFRA}
check("PostgreSQL 15, RabbitMQ 3, foundry (anvil), MinIO, maildev images",
      images["postgres"].startswith("postgres:15") and images["rabbitmq"].startswith("rabbitmq:3")
      and "foundry-rs/foundry" in images["anvil"] and "minio/minio" in images["minio"]
      and "maildev" in images["maildev"], images)
anvil = svcs.get("anvil", {})
cmd = " ".join(map(str, (anvil.get("entrypoint") or []) + (anvil.get("command") or [])))
check("anvil listens on 0.0.0.0", "anvil" in cmd and "--host 0.0.0.0" in cmd, cmd)


def hc_text(s):
    t = (svcs.get(s, {}).get("healthcheck") or {}).get("test")
    return " ".join(t) if isinstance(t, list) else str(t or "")


for s in DAEMONS:
    t = hc_text(s)
    check("%s has a health check on /healthz or /readyz" % s,
          re.search(r"curl .*(/healthz|/readyz)", t), t)
for s, tool in INFRA.items():
    t = hc_text(s)
    check("%s has a health check%s" % (s, " (%s)" % tool if tool else ""),
          t and not t.startswith("NONE") and tool in t, t)

for s in DAEMONS:
    dep = svcs.get(s, {}).get("depends_on") or {}
    conds = {k: (v or {}).get("condition") for k, v in dep.items()} if isinstance(dep, dict) else {}
    check("%s depends_on only with conditions (healthy / completed)" % s,
          conds and all(c in ("service_healthy", "service_completed_successfully")
                        for c in conds.values()), dep)
order = {"gateway": ["auth-svc", "credit-svc", "storage-svc", "chain-svc"],
         "chain-svc": ["db-init", "rabbitmq", "anvil", "token-deployer"],
         "credit-svc": ["db-init", "rabbitmq"], "storage-svc": ["db-init", "minio-init"],
         "auth-svc": ["db-init", "credit-svc"]}
for s, needs in order.items():
    dep = svcs.get(s, {}).get("depends_on") or {}
    check("%s waits for %s" % (s, ", ".join(needs)), all(n in dep for n in needs), list(dep))

published = sorted(s for s, v in svcs.items() if v.get("ports"))
check("only the gateway publishes a port", published == ["gateway"], published)
gw_ports = svcs.get("gateway", {}).get("ports") or []
check("the gateway publishes its HTTPS port 8443",
      any(str((p.get("target") if isinstance(p, dict) else p)).split("/")[0].split(":")[-1] == "8443"
          for p in gw_ports), gw_ports)

# Required variables (docs/configuration.md: required = yes, no default; a
# variable's first row in its section wins).
required, section = {}, None
for line in open("docs/configuration.md"):
    m = re.match(r"^## (\S+)", line)
    if m:
        section = m.group(1)
        required.setdefault(section, {})
        continue
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if section and len(cells) >= 6 and cells[0].startswith("`"):
        name = cells[0].strip("`")
        if name not in required[section]:
            required[section][name] = cells[4] == "yes" and cells[3] == ""
check("docs/configuration.md lists all five daemons", all(d in required for d in DAEMONS),
      list(required))
for d in DAEMONS:
    env = svcs.get(d, {}).get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    need = sorted(n for n, r in required.get(d, {}).items() if r)
    missing = [n for n in need if not (env.get(n) or env.get(n + "_FILE"))]
    check("%s gets every required variable (%s)" % (d, ", ".join(need)), not missing, missing)
    binds = [k for k in env if k.endswith("_BIND")]
    check("%s listens on 0.0.0.0 inside its container" % d,
          binds and all(env[k] == "0.0.0.0" for k in binds), binds)
chain_env = svcs.get("chain-svc", {}).get("environment") or {}
check("chain-svc has a wallet (CHAIN_MNEMONIC or CHAIN_KEYFILE) and the deployed token",
      (chain_env.get("CHAIN_MNEMONIC") or chain_env.get("CHAIN_KEYFILE"))
      and chain_env.get("CHAIN_TOKEN_ADDRESS_FILE"), sorted(chain_env))
gw_env = svcs.get("gateway", {}).get("environment") or {}
check("gateway TLS files come from compose secrets",
      str(gw_env.get("GW_TLS_CERT_FILE", "")).startswith("/run/secrets/")
      and str(gw_env.get("GW_TLS_KEY_FILE", "")).startswith("/run/secrets/")
      and {"gw_tls_cert", "gw_tls_key"} <= set(doc.get("secrets", {})), gw_env.get("GW_TLS_CERT_FILE"))

# The example env file: placeholders only.
bad = []
for line in open("deploy/.env.example"):
    line = line.strip()
    if not line or line.startswith("#") or "=" not in line:
        continue
    k, v = line.split("=", 1)
    if re.search(r"(SECRET|PASSWORD|SEED|KEY|MNEMONIC)", k) and "CHANGE_ME" not in v:
        bad.append(k)
check("deploy/.env.example holds placeholders (CHANGE_ME) for every secret", not bad, bad)

df = open("deploy/Dockerfile").read()
check("Dockerfile: multi-stage debian:12 build with meson, slim runtime stage",
      re.search(r"FROM debian:12 AS build", df) and "meson setup" in df
      and re.search(r"FROM debian:12(-slim)? AS runtime", df)
      and "-dev" not in df.split("AS runtime", 1)[1], "")
check("Dockerfile sets AUTH/CREDIT/STORAGE/CHAIN_SQL_DIR and ships the sql dirs",
      all("%s_SQL_DIR=" % p in df for p in ("AUTH", "CREDIT", "STORAGE", "CHAIN"))
      and "/sql" in df, "")
for ok, name in results:
    print(("ok   - " if ok else "FAIL - ") + name)
PY
)
while IFS= read -r line; do
  case "$line" in
    "ok   - "*) ok "${line#ok   - }" ;;
    "FAIL - "*) ko "${line#FAIL - }" ;;
    *) [[ -n "$line" ]] && ko "python: $line" ;;
  esac
done <<<"$out"
[[ -n "$out" ]] || ko "structural check produced no result"
echo "$pass passed, $fail failed"
((fail == 0))
