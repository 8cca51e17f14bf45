#!/usr/bin/env python3
"""Measures request -> confirmed tx hash in the admin audit, for N sequential
paid actions (POST /v1/reports, 5 credits) of fresh users, against the
running local stack (. services/env.sh first). Prints p50/p95/max in ms.
Usage: tests/perf/debit_latency.py [N=20]"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import client as e2e  # noqa: E402  (shared HTTP helpers)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    admin = e2e.admin_token()
    post_ms, confirm_ms = [], []
    for _ in range(n):
        _, _, r = e2e.signup()
        tok, uid = r.json()["access_token"], r.json()["user"]["id"]
        t0 = time.monotonic()
        r = e2e.call("POST", "/v1/reports", {"kind": "usage", "format": "json"}, token=tok)
        t1 = time.monotonic()
        if r.status != 201:
            sys.exit("report failed: %d" % r.status)
        rows = e2e.wait_confirmed(admin, uid, 1, 30)
        t2 = time.monotonic()
        if len(rows) != 1:
            sys.exit("not confirmed within 30 s")
        post_ms.append((t1 - t0) * 1000)
        confirm_ms.append((t2 - t0) * 1000)

    def q(v, p):
        v = sorted(v)
        return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
    for name, v in (("POST /v1/reports (201)", post_ms), ("request -> confirmed in audit", confirm_ms)):
        print("%-32s n=%d p50=%.0f ms p95=%.0f ms max=%.0f ms mean=%.0f ms" %
              (name, len(v), q(v, .5), q(v, .95), max(v), statistics.mean(v)))


if __name__ == "__main__":
    main()
