#!/usr/bin/python3
"""Validates real queue messages against proto/msg/*.json (JSON Schema 2020-12).

  messages.py MSG_DIR < lines

Each stdin line is "<source>\t<routing key>\t<row id>\t<envelope text>":
  - credit.outbox / auth.outbox rows: the exact envelope the relay publishes
    (payload column), its routing key and row id;
  - chain.transfers rows that chain-svc reported (reported_status = status):
    the envelope rebuilt exactly as chain-svc/src/sender.c event_text() builds
    it (chain-svc does not persist the text; only `ts`, set by lc_msg_build at
    publish time, is not stored, so the row's updated_at stands in for it).
Checks per message type: every message validates against <type>.json (or
chain.transfer.json), the routing key equals `type`, and an outbox envelope's
id equals its row id (the AMQP message_id the relay sends). Prints one line
per check and "N passed, N failed"; exit 1 on any failure.
"""
import collections
import glob
import hashlib
import json
import os
import sys

import jsonschema

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   - " + name)
    else:
        failed += 1
        print("FAIL - " + name + (": " + detail if detail else ""))


def chain_msg_id(debit_id, status, tx_hash):
    """chain_event_msg_id() of chain-svc/src/sender.c."""
    h = bytearray(hashlib.sha256(("chain.transfer:%s:%s:%s" % (debit_id, status, tx_hash)).encode()).digest())
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h[:16].hex()
    return "%s-%s-%s-%s-%s" % (x[:8], x[8:12], x[12:16], x[16:20], x[20:32])


def main():
    msg_dir = sys.argv[1]
    store, by_name = {}, {}
    for p in sorted(glob.glob(os.path.join(msg_dir, "*.json"))):
        s = json.load(open(p))
        jsonschema.Draft202012Validator.check_schema(s)
        store[s["$id"]] = s
        by_name[os.path.basename(p)[:-5]] = s
    check("proto/msg: %d schemas are valid JSON Schema 2020-12" % len(store), len(store) > 1)

    def validator(schema):
        resolver = jsonschema.RefResolver.from_schema(schema, store=store)
        return jsonschema.Draft202012Validator(
            schema, resolver=resolver, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

    # examples inside the schemas must validate too (they document the contract)
    for name, s in by_name.items():
        for i, ex in enumerate(s.get("examples", [])):
            errs = list(validator(s).iter_errors(ex))
            check("%s.json example %d validates" % (name, i), not errs, errs[0].message if errs else "")

    seen = collections.Counter()
    bad = collections.defaultdict(list)
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        src, rk, row_id, text = line.split("\t", 3)
        if src == "chain.transfers":
            # row: debit_id, tx_hash, nonce, to_address, block_number, status, request_id, updated_at
            d, tx, nonce, to, block, status, rid, ts = json.loads(text)
            env = {"v": 1, "type": "chain.transfer." + status, "id": chain_msg_id(d, status, tx),
                   "ts": ts, "request_id": rid if rid else None,
                   "body": {"debit_id": d, "tx_hash": tx, "nonce": int(nonce), "to_address": to,
                            "status": status, "block_number": int(block) if block not in (None, "") else None}}
            rk = env["type"]
        else:
            try:
                env = json.loads(text)
            except ValueError as e:
                bad[src + " (unparsable)"].append(str(e))
                continue
        typ = env.get("type") if isinstance(env, dict) else None
        key = "%s %s" % (src, typ)
        seen[key] += 1
        name = "chain.transfer" if str(typ).startswith("chain.transfer.") else typ
        schema = by_name.get(name)
        if schema is None:
            bad[key].append("no schema proto/msg/%s.json" % name)
            continue
        for er in list(validator(schema).iter_errors(env))[:3]:
            bad[key].append("%s at /%s" % (er.message[:200], "/".join(map(str, er.path))))
        if rk != typ:
            bad[key].append("routing key %s != type %s" % (rk, typ))
        if src.endswith(".outbox") and env.get("id") != row_id:
            bad[key].append("envelope id %s != outbox row id %s" % (env.get("id"), row_id))
    for key in sorted(seen):
        msgs = list(collections.OrderedDict.fromkeys(bad.get(key, [])))
        check("%s: %d messages match proto/msg" % (key, seen[key]), not msgs, "; ".join(msgs[:5]))
    for key in sorted(set(bad) - set(seen)):
        check(key, False, "; ".join(bad[key][:5]))
    for src in ("credit.outbox credit.debit.committed", "auth.outbox auth.audit"):
        check("the run produced %s messages" % src, seen.get(src, 0) > 0)
    check("the run produced chain.transfer.* events", any(k.startswith("chain.transfers") for k in seen))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
