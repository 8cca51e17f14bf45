#!/usr/bin/env python3
"""W4 alone, with a per-stage breakdown: W2's paid actions (API keys, wrk) for
PERF_DURATION seconds commit debits; then every debit is followed to its
confirmed transfer and the time is split along the pipeline from the rows'
own timestamps:

  commit      credit.audit.ts (debit committed, outbox row written)
  relay       credit.outbox.sent_at (published + confirmed by the broker)
  stored      chain.transfers.created_at (consumed, nonce assigned, signed, stored)
  sent        chain.transfers.submitted_at (node accepted eth_sendRawTransaction)
  confirmed   chain.transfers.confirmed_at (receipt seen)
  audit       credit.audit.tx_hash set (chain.results consumed by credit-svc)

Usage (stack env sourced, like bench.sh; BUILD_DIR for nothing here):
  python3 tests/perf/w4_chain.py     # prints one JSON object and a table
Env: PERF_DURATION (10), PERF_CONNS (16), PERF_USERS (50)."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("STACK_STATE_DIR", os.environ.get("STATE_DIR", ""))
os.environ.setdefault("GATEWAY_URL", os.environ.get("STACK_GATEWAY_URL", ""))
os.environ.setdefault("GATEWAY_CA", os.environ.get("GW_TLS_CERT_FILE", ""))
import bench  # noqa: E402  (shared setup, wrk runner, sampler, psql)

STAGES = [
    ("commit → relay", "o.sent_at - a.ts"),
    ("relay → stored", "t.created_at - o.sent_at"),
    ("stored → sent", "t.submitted_at - t.created_at"),
    ("sent → confirmed", "t.confirmed_at - t.submitted_at"),
    ("commit → confirmed", "t.confirmed_at - a.ts"),
]


def stage_table(t_start):
    out = []
    for name, expr in STAGES:
        v = [float(x) for x in bench.psql(
            "SELECT extract(epoch FROM %s) * 1000 FROM credit.audit a"
            " JOIN chain.transfers t USING (debit_id)"
            " LEFT JOIN credit.outbox o ON o.payload::jsonb -> 'body' ->> 'debit_id' = a.debit_id::text"
            "   AND o.routing_key = 'credit.debit.committed' AND o.created_at >= to_timestamp(%f)"
            " WHERE a.status = 'committed' AND a.ts >= to_timestamp(%f)"
            " AND t.confirmed_at IS NOT NULL ORDER BY 1" % (expr, t_start, t_start)).split()]
        out.append((name, bench.pct(v, .5), bench.pct(v, .99), v[-1] if v else None, len(v)))
    return out


def main():
    bench.e2e.GW = bench.GW
    bench.log("waiting for earlier debits to be confirmed")
    bench.chain_drain(0, timeout=300)
    admin = bench.e2e.admin_token()
    tok, keys, _creds = bench.setup_users(admin)
    bench.chain_drain(time.time() - 3600, timeout=60)
    bench.log("W2 load for %d s (debits), then W4 drain" % bench.DUR)
    t0 = time.time() - 1
    w2 = bench.wrk(bench.GW + "/v1/service/metadata/x", "w2_metadata.lua", {"PERF_KEYS": keys})
    w4 = bench.chain_drain(t0)
    os.unlink(keys)
    stages = stage_table(t0)
    print("| W2 req/s | W4 confirmed/s | p50 ms | p99 ms | max ms | not confirmed | debits |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print("| %.0f | %.0f | %.0f | %.0f | %.0f | %d | %d |" % (w2["rps"], w4["rps"], w4["p50"] or 0,
                                                          w4["p99"] or 0, w4["max"], w4["errors"], w4["debits"]))
    print()
    print("| stage | p50 ms | p99 ms | max ms | n |")
    print("|---|---:|---:|---:|---:|")
    for name, p50, p99, mx, n in stages:
        print("| %s | %s | %s | %s | %d |" % (name, bench.fmt(p50, "%.0f"), bench.fmt(p99, "%.0f"),
                                              bench.fmt(mx, "%.0f"), n))
    print("CPU %% / peak MiB during the drain: " + ", ".join(
        "%s %.0f%% / %.1f" % (d, c, m / 1024.0) for d, (c, m) in w4["daemons"].items() if c or m))
    print(json.dumps({"w2_rps": w2["rps"], "w4": {k: w4[k] for k in ("rps", "p50", "p99", "max", "errors", "n")},
                      "stages": stages}))


if __name__ == "__main__":
    main()
