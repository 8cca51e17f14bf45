#!/usr/bin/env python3
"""Manual smoke client for credit-svc: sends one request signed like lc/iauth.h.

usage: iauth_call.py METHOD URL [JSON_BODY] with env INTERNAL_SECRET,
       AUTH_USER (uuid or ""), AUTH_ROLE (user|admin|service|system|anon),
       AUTH_SCOPE (default full), REQUEST_ID (default random).
Prints the status line and the body."""
import hashlib, hmac, os, sys, time, urllib.error, urllib.parse, urllib.request, uuid

method, url = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 else b""
secret = os.environ["INTERNAL_SECRET"].encode()  # the hex text itself, not decoded
user = os.environ.get("AUTH_USER", "")
role = os.environ.get("AUTH_ROLE", "user")
scope = os.environ.get("AUTH_SCOPE", "full")
rid = os.environ.get("REQUEST_ID", str(uuid.uuid4()))
u = urllib.parse.urlsplit(url)
path = u.path + ("?" + u.query if u.query else "")
ts = str(int(time.time()))
nonce = os.urandom(16).hex()
ctype = "application/json" if body else ""
canon = "\n".join(["v2", method, path, user, role, scope, rid, ts, nonce,
                   hashlib.sha256(body).hexdigest(), ctype, "", "", "", ""])
sig = hmac.new(secret, canon.encode(), hashlib.sha256).hexdigest()
hdr = {"X-Request-Id": rid, "X-Auth-User": user, "X-Auth-Role": role, "X-Auth-Scope": scope,
       "X-Auth-Ts": ts, "X-Auth-Nonce": nonce, "X-Auth-Sig": sig}
if os.environ.get("BAD_SIG"):
    hdr["X-Auth-Sig"] = "0" * 64
if body:
    hdr["Content-Type"] = "application/json"
req = urllib.request.Request(url, data=body if method != "GET" else None, method=method, headers=hdr)
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
