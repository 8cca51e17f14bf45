#!/usr/bin/env python3
"""W4 node ceiling: how many ERC-20 transfers per second the node itself
confirms, with nothing of ours in the way (no DB, no broker, no nonce lock).

Starts a private anvil (same binary and flags as services/up, automine, port
PERF_ANVIL_PORT, default 23K91 with K = last digit of GW_PORT), deploys
CreditToken with services/deploy-token.mjs, then runs chain-svc's node_ceiling
tool (chain-svc/tests/node_ceiling.c: pre-signed EIP-1559 transfers from the
deployer, sent in JSON-RPC batches, receipts fetched in batches) and prints
its JSON result (confirmed tx/s, send -> receipt p50/p99) on stdout.

Usage: node_ceiling.py [N=3000] [BATCH=50] [--stack]
  --stack: the stack's own anvil (CHAIN_RPC_URL, CHAIN_TOKEN_ADDRESS from
  services/env.sh) with its history, from anvil account 9 (never chain-svc's
  master), credited with tokens through anvil_setStorageAt.
Env: BUILD_DIR (the tool: $BUILD_DIR/chain-svc/node_ceiling), GW_PORT,
     PERF_ANVIL_PORT, PERF_ANVIL_RPC + PERF_TOKEN (use that node and token
     instead of starting one; the sender, NODE_CEILING_INDEX, must hold tokens
     and must not be a wallet a running chain-svc uses)."""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def rpc(url, method, params=None):
    req = urllib.request.Request(url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                                  "params": params or []}).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)["result"]


def anvil_bin():
    out = subprocess.run(["bash", "-c", '. "%s/services/lib.sh"; anvil_bin' % ROOT],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run(n, batch, url, token):
    tool = os.path.join(os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")), "chain-svc",
                        "node_ceiling")
    r = subprocess.run([tool, url, token, str(n), str(batch)], capture_output=True, text=True,
                       timeout=600)
    sys.stderr.write(r.stderr)
    res = json.loads(r.stdout) if r.stdout.strip() else {"n": n, "confirmed": 0}
    res["ok"] = r.returncode == 0
    return res


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 3000
    batch = int(args[1]) if len(args) > 1 else 50
    if "--stack" in sys.argv:
        os.environ.update(NODE_CEILING_INDEX="9", NODE_CEILING_FUND="1")
        res = run(n, batch, os.environ["CHAIN_RPC_URL"], os.environ["CHAIN_TOKEN_ADDRESS"])
        res["node"] = "the stack's anvil (automine, its history)"
        print(json.dumps(res))
        return
    if os.environ.get("PERF_ANVIL_RPC"):
        print(json.dumps(run(n, batch, os.environ["PERF_ANVIL_RPC"], os.environ["PERF_TOKEN"])))
        return
    k = os.environ.get("GW_PORT", "8500")[-1]
    port = int(os.environ.get("PERF_ANVIL_PORT", "23%s91" % k))
    url = "http://127.0.0.1:%d" % port
    logf = tempfile.NamedTemporaryFile(prefix="node-ceiling-anvil-", suffix=".log", delete=False)
    proc = subprocess.Popen([anvil_bin(), "--host", "127.0.0.1", "--port", str(port),
                             "--chain-id", "31337"], stdout=logf, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                rpc(url, "eth_chainId")
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.NamedTemporaryFile(prefix="node-ceiling-token-", delete=False) as tf:
            out = tf.name
        env = dict(os.environ, CHAIN_RPC_URL=url)
        subprocess.run(["node", os.path.join(ROOT, "services", "deploy-token.mjs"), out],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            token = [ln.split("=", 1)[1].strip() for ln in f if ln.startswith("CHAIN_TOKEN_ADDRESS=")][0]
        os.unlink(out)
        res = run(n, batch, url, token)
        res["node"] = "fresh anvil (automine)"
        print(json.dumps(res))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.unlink(logf.name)


if __name__ == "__main__":
    main()
