#!/usr/bin/python3
"""Conformance of the gateway's recorded answers to proto/openapi.yaml.

  conformance.py OPENAPI EXCHANGES_JSONL

EXCHANGES_JSONL is what tests/e2e/client.py records when E2E_RECORD is set:
one JSON object per exchange {method, path, status, content_type, body,
gateway}. Each gateway exchange is matched to an OpenAPI path + method and
status; a JSON body is validated against that response's schema (JSON Schema
2020-12, the dialect of OAS 3.1; $ref into the document resolved). Also the
structural rules redocly.yaml switched off with a reason (2XX / 4XX present).
Prints one line per check and "N passed, N failed"; exit 1 on any failure.
"""
import collections
import json
import re
import sys

import jsonschema
import yaml

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   - " + name)
    else:
        failed += 1
        print("FAIL - " + name + (": " + detail if detail else ""))
    return ok


def main():
    spec = yaml.safe_load(open(sys.argv[1]))
    lines = [json.loads(x) for x in open(sys.argv[2]) if x.strip()]
    ops = []  # (regex, template, method, operation)
    for tmpl, item in spec["paths"].items():
        rx = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", re.escape(tmpl).replace(r"\{", "{").replace(r"\}", "}")) + "$")
        for m, o in item.items():
            if m in ("get", "put", "post", "delete", "patch", "head", "options"):
                ops.append((rx, tmpl, m.upper(), o))

    # Structural rules (see proto/redocly.yaml).
    for rx, tmpl, m, o in ops:
        codes = list(o["responses"])
        if not tmpl.startswith("/v1/auth/oauth/"):
            check("%s %s documents a 2XX" % (m, tmpl), any(c.startswith("2") for c in codes))
        if tmpl.startswith("/v1/"):
            check("%s %s documents a 4XX" % (m, tmpl), any(c.startswith("4") for c in codes))

    # A validator over the whole document, so "#/components/..." refs resolve.
    registry_root = dict(spec)
    registry_root["$schema"] = "https://json-schema.org/draft/2020-12/schema"

    def validator(schema):
        s = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": {}, "allOf": [schema]}
        resolver = jsonschema.RefResolver(base_uri="", referrer=spec)
        return jsonschema.Draft202012Validator(s, resolver=resolver,
                                               format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

    def deref(x):
        while isinstance(x, dict) and "$ref" in x:
            node = spec
            for part in x["$ref"].lstrip("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            x = node
        return x

    seen = collections.Counter()
    bad = collections.defaultdict(list)
    unmatched = collections.Counter()
    for e in lines:
        if not e.get("gateway", True):
            continue  # direct calls to a daemon's internal routes: not the public API
        path = e["path"].split("?")[0]
        cand = [(t, m, o) for rx, t, m, o in ops if rx.match(path)]
        if not cand:
            # An unknown path is expected to be a 404 problem (negative tests).
            if e["status"] == 404 and e["content_type"].startswith("application/problem+json"):
                continue
            unmatched["%s %s -> %d" % (e["method"], path, e["status"])] += 1
            continue
        hit = [(t, m, o) for t, m, o in cand if m == e["method"]]
        if not hit:
            if e["status"] in (404, 405):
                continue  # wrong method on a known path: refused, nothing to conform to
            unmatched["%s %s (no such method) -> %d" % (e["method"], path, e["status"])] += 1
            continue
        # the most specific template (fewest parameters) wins: /v1/files/{id} vs literal paths
        t, m, o = sorted(hit, key=lambda h: h[0].count("{"))[0]
        key = "%s %s" % (m, t)
        seen[key] += 1
        st = str(e["status"])
        resp = o["responses"].get(st)
        if resp is None:
            bad[key].append("status %s not documented" % st)
            continue
        resp = deref(resp)
        content = resp.get("content")
        ct = (e.get("content_type") or "").split(";")[0].strip().lower()
        if not content:
            if e.get("body_len", 0) and e["status"] != 204:
                bad[key].append("status %s documents no body but one came (%s)" % (st, ct))
            elif e["status"] == 204 and e.get("body_len", 0):
                bad[key].append("204 with a body")
            continue
        media = content.get(ct)
        if media is None:
            wild = [k for k in content if k == "*/*" or (k.endswith("/*") and ct.startswith(k[:-1]))]
            if not wild:
                bad[key].append("status %s content type %r not documented (%s)" % (st, ct, ", ".join(content)))
                continue
            media = content[wild[0]]
        if "json" in ct:
            if e.get("body") is None:
                bad[key].append("status %s: %s body is not JSON" % (st, ct))
                continue
            errs = sorted(validator(media["schema"]).iter_errors(e["body"]), key=lambda x: list(x.path))
            for er in errs[:3]:
                bad[key].append("status %s: %s at /%s" % (st, er.message[:200], "/".join(map(str, er.path))))

    for key in sorted(seen):
        msgs = bad.get(key, [])
        uniq = list(collections.OrderedDict.fromkeys(msgs))
        check("%s: %d recorded answers conform" % (key, seen[key]), not uniq, "; ".join(uniq[:6]))
    for u, n in sorted(unmatched.items()):
        check("recorded exchange matches a documented route: " + u, False, "%d times" % n)
    # Coverage: every route of the gateway's table that the suites exercised is documented
    # (the unmatched check above), and the run exercised something at all.
    check("the e2e run recorded gateway exchanges", sum(seen.values()) > 0, "nothing recorded")
    print("routes exercised: %d of %d documented operations" % (len(seen), len(ops)))
    for rx, t, m, o in ops:
        if "%s %s" % (m, t) not in seen:
            print("     not exercised by the e2e suites: %s %s" % (m, t))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
