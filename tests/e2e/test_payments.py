"""Black-box suite: payments (Stripe Checkout + webhooks, Razorpay orders +
webhooks) through the gateway of a running stack.

Third parties are replaced by the stand-ins of tests/e2e/standins/ (started
here on the ports of the stack's env: STRIPE_API_BASE, RAZORPAY_API_BASE);
webhook payloads are signed here exactly as the providers sign them, with the
stack's secrets (STRIPE_WEBHOOK_SECRET, RAZORPAY_WEBHOOK_SECRET). Every
rejected or duplicate webhook must leave balance, ledger and audit
unchanged; after every test the user's ledger sums to the balance.
"""
import concurrent.futures
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client  # noqa: E402
from client import call, check, is_problem  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WH_STRIPE = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
WH_RZP = os.environ.get("RAZORPAY_WEBHOOK_SECRET", "")
PROCS = []


# ------------------------------------------------------------ helpers

def retry_429(fn):
    """Calls fn() again after Retry-After while the gateway rate-limits it."""
    deadline = time.monotonic() + 130
    while True:
        r = fn()
        if r.status != 429 or time.monotonic() > deadline:
            return r
        time.sleep(min(int(r.headers.get("Retry-After") or 5), 65))


def new_user():
    email = client.new_email()
    r = retry_429(lambda: call("POST", "/v1/auth/signup",
                               {"email": email, "password": "correct horse battery"}))
    if r.status != 201:
        raise RuntimeError("signup failed: %d %s" % (r.status, r.body[:200]))
    j = r.json()
    return j["access_token"], j["user"]["id"]


def balance(tok):
    r = call("GET", "/v1/credits", token=tok)
    return r.json()["balance"] if r.status == 200 else None


def ledger(tok):
    items, cursor = [], None
    for _ in range(50):
        q = "/v1/credits/ledger?limit=100" + ("&cursor=" + cursor if cursor else "")
        r = call("GET", q, token=tok)
        if r.status != 200:
            return None
        j = r.json()
        items += j["items"]
        cursor = j.get("next_cursor")
        if not cursor:
            break
    return items


def state(tok):
    """(balance, number of ledger entries, sum of deltas)."""
    items = ledger(tok) or []
    return balance(tok), len(items), sum(int(e.get("delta", 0)) for e in items)


def check_invariant(name, tok):
    b, _, s = state(tok)
    check(name + ": ledger sums to the balance", b is not None and b == s, "%r vs %r" % (b, s))


def purchases(tok):
    return [e for e in (ledger(tok) or []) if e.get("kind") == "purchase"]


def checkout(tok, pack="small", provider=None, idem=None):
    body = {"pack": pack}
    if provider:
        body["provider"] = provider
    hdr = {"Idempotency-Key": idem} if idem else None
    return retry_429(lambda: call("POST", "/v1/payments/checkout", body, token=tok, headers=hdr))


def stripe_event(session_id, amount=500, currency="usd", event_id=None,
                 etype="checkout.session.completed", payment_status="paid", user_id=None):
    ev = {
        "id": event_id or "evt_" + uuid.uuid4().hex, "object": "event",
        "api_version": "2024-06-20", "created": int(time.time()), "livemode": False,
        "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
        "type": etype,
        "data": {"object": {
            "id": session_id, "object": "checkout.session", "amount_subtotal": amount,
            "amount_total": amount, "currency": currency, "mode": "payment",
            "payment_status": payment_status, "status": "complete",
            "client_reference_id": user_id, "metadata": {"user_id": user_id or ""},
            "payment_intent": "pi_" + uuid.uuid4().hex[:24]}},
    }
    return json.dumps(ev, separators=(",", ":")).encode()


def stripe_sig(body, t=None, secret=None, scheme="v1"):
    t = int(time.time()) if t is None else t
    mac = hmac.new((secret or WH_STRIPE).encode(), str(t).encode() + b"." + body,
                   hashlib.sha256).hexdigest()
    return "t=%d,%s=%s" % (t, scheme, mac)


def post_stripe(body, header):
    hdr = {"Content-Type": "application/json; charset=utf-8"}
    if header is not None:
        hdr["Stripe-Signature"] = header
    return retry_429(lambda: call("POST", "/v1/payments/webhooks/stripe", raw=body, headers=hdr))


def rzp_event(order_id, amount=500, currency="USD", etype="payment.captured"):
    pay = {"id": "pay_" + uuid.uuid4().hex[:14], "entity": "payment", "amount": amount,
           "currency": currency, "status": "captured", "order_id": order_id,
           "method": "card", "captured": True}
    payload = {"payment": {"entity": pay}}
    contains = ["payment"]
    if etype == "order.paid":
        payload["order"] = {"entity": {"id": order_id, "entity": "order", "amount": amount,
                                       "amount_paid": amount, "amount_due": 0,
                                       "currency": currency, "status": "paid"}}
        contains.append("order")
    ev = {"entity": "event", "account_id": "acc_local", "event": etype, "contains": contains,
          "payload": payload, "created_at": int(time.time())}
    return json.dumps(ev, separators=(",", ":")).encode()


def post_rzp(body, sig=None, event_id=None, secret=None, raw_sig=False):
    hdr = {"Content-Type": "application/json"}
    if sig is None and not raw_sig:
        sig = hmac.new((secret or WH_RZP).encode(), body, hashlib.sha256).hexdigest()
    if sig is not None:
        hdr["X-Razorpay-Signature"] = sig
    if event_id is not None:
        hdr["X-Razorpay-Event-Id"] = event_id
    return retry_429(lambda: call("POST", "/v1/payments/webhooks/razorpay", raw=body,
                                  headers=hdr))


def standin_requests(base):
    with urllib.request.urlopen(base + "/__standin/requests", timeout=10) as r:
        return json.loads(r.read())["items"]


def start_standins():
    sb, rb = os.environ.get("STRIPE_API_BASE", ""), os.environ.get("RAZORPAY_API_BASE", "")
    sp, rp = urllib.parse.urlsplit(sb), urllib.parse.urlsplit(rb)
    if sp.hostname != "127.0.0.1" or rp.hostname != "127.0.0.1":
        raise RuntimeError("STRIPE_API_BASE / RAZORPAY_API_BASE are not local stand-ins")
    PROCS.append(subprocess.Popen(
        [sys.executable, os.path.join(HERE, "standins", "stripe_standin.py"),
         "--port", str(sp.port), "--secret-key", os.environ["STRIPE_SECRET_KEY"]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    PROCS.append(subprocess.Popen(
        [sys.executable, os.path.join(HERE, "standins", "razorpay_standin.py"),
         "--port", str(rp.port), "--key-id", os.environ["RAZORPAY_KEY_ID"],
         "--key-secret", os.environ["RAZORPAY_KEY_SECRET"]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for base in (sb, rb):
        for _ in range(100):
            try:
                standin_requests(base)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("stand-in %s did not start (port in use?)" % base)
    return sb, rb


def stop_standins():
    for p in PROCS:
        p.terminate()
    for p in PROCS:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()


def parallel(n, fn):
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        return list(ex.map(lambda _: fn(), range(n)))


# ------------------------------------------------------------ tests

def test_checkout(sb, tok, uid):
    r = call("POST", "/v1/payments/checkout", {"pack": "small"})
    check("checkout without a session -> 401", is_problem(r, 401), r.status)
    for body, what in (({"pack": "huge"}, "unknown pack"), ({"pack": 5}, "pack not a string"),
                       ({}, "no pack"), ({"pack": "small", "price": 1}, "unknown field"),
                       ({"pack": "small", "provider": "paypal"}, "unknown provider")):
        r = retry_429(lambda: call("POST", "/v1/payments/checkout", body, token=tok))
        check("checkout with %s -> 400" % what, is_problem(r, 400), (r.status, r.body[:120]))
    before = len(standin_requests(sb))
    r = checkout(tok, "small")
    j = r.json() if r.status == 201 else {}
    check("checkout small -> 201 {checkout_url, session_id}",
          r.status == 201 and j.get("session_id", "").startswith("cs_test_")
          and j.get("checkout_url", "").startswith("https://checkout.stripe.com/"), r.body[:200])
    check("checkout reports the server-side price",
          j.get("amount") == 500 and j.get("currency") == "usd" and j.get("credits") == 100, j)
    reqs = standin_requests(sb)
    got = reqs[-1] if len(reqs) == before + 1 else {}
    p = got.get("params", {})
    check("Stripe received the session in its form encoding",
          p.get("mode") == "payment" and p.get("line_items[0][price_data][currency]") == "usd"
          and p.get("line_items[0][price_data][unit_amount]") == "500"
          and p.get("line_items[0][quantity]") == "1"
          and p.get("line_items[0][price_data][product_data][name]")
          and p.get("client_reference_id") == uid and p.get("metadata[user_id]") == uid
          and p.get("metadata[pack]") == "small" and p.get("metadata[credits]") == "100"
          and p.get("success_url", "").startswith("http") and p.get("cancel_url"), p)
    check("Stripe received an Idempotency-Key", bool(got.get("idempotency_key")), got)
    key = "co-" + uuid.uuid4().hex
    r1 = checkout(tok, "medium", idem=key)
    r2 = checkout(tok, "medium", idem=key)
    check("same Idempotency-Key -> the same session, replayed",
          r1.status == 201 and r2.status == 201
          and r1.json()["session_id"] == r2.json()["session_id"]
          and r2.headers.get("Idempotent-Replayed") == "true", (r1.body[:100], r2.body[:100]))
    r3 = checkout(tok, "large", idem=key)
    check("same Idempotency-Key for another pack -> 422", is_problem(r3, 422), r3.status)
    check_invariant("checkout", tok)
    return j.get("session_id")


def test_stripe_rejections(tok, uid, sid, admin):
    s0 = state(tok)
    a0 = len(client.audit_rows(admin, uid) or [])
    now = int(time.time())
    body = stripe_event(sid)
    cases = [
        ("forged (wrong secret)", body, stripe_sig(body, secret="whsec_forged")),
        ("stale (t = now - 400 s)", body, stripe_sig(body, t=now - 400)),
        ("future (t = now + 400 s)", body, stripe_sig(body, t=now + 400)),
        ("v0-only", body, stripe_sig(body, scheme="v0")),
        ("tampered body", body.replace(b'"amount_total":500', b'"amount_total":501'),
         stripe_sig(body)),
        ("missing header", body, None),
        ("malformed header", body, "garbage"),
        ("no timestamp", body, stripe_sig(body).split(",", 1)[1]),
    ]
    for what, b, h in cases:
        r = post_stripe(b, h)
        check("stripe webhook %s -> 400" % what, is_problem(r, 400), (r.status, r.body[:120]))
    check("rejected webhooks changed nothing (balance, ledger)", state(tok) == s0,
          (state(tok), s0))
    check("rejected webhooks wrote no audit row", len(client.audit_rows(admin, uid) or []) == a0)
    r = call("POST", "/v1/payments/webhooks/stripe", raw=body,
             headers={"Content-Type": "application/json", "Stripe-Signature": stripe_sig(body)},
             base="http://127.0.0.1:%d" % client.PORTS["credit"], tls=False)
    check("credit-svc webhook reached directly (no internal signature) -> 401", r.status == 401,
          r.status)
    check("... and credited nothing", state(tok) == s0)
    check_invariant("stripe rejections", tok)


def test_stripe_once(tok, uid, sid, admin):
    b0 = balance(tok)
    body = stripe_event(sid, user_id=uid)
    evt = json.loads(body)["id"]
    rs = parallel(5, lambda: post_stripe(body, stripe_sig(body)))
    check("same valid event 5x concurrently -> all 200", all(r.status == 200 for r in rs),
          [r.status for r in rs])
    outcomes = sorted(r.json().get("outcome") for r in rs if r.status == 200)
    check("... exactly one credited", outcomes.count("credited") == 1, outcomes)
    check("... balance +100 exactly once", balance(tok) == b0 + 100, (balance(tok), b0))
    check("... one purchase ledger entry", len(purchases(tok)) == 1, purchases(tok))
    rows = [x for x in (client.audit_rows(admin, uid) or []) if x.get("action") == "purchase"]
    check("... one purchase audit row", len(rows) == 1, rows)
    s1 = state(tok)
    r = post_stripe(body, stripe_sig(body))
    check("replayed event (fresh signature) -> 200, nothing credited",
          r.status == 200 and state(tok) == s1, (r.status, r.body[:100]))
    body2 = stripe_event(sid, etype="checkout.session.async_payment_succeeded", user_id=uid)
    r = post_stripe(body2, stripe_sig(body2))
    check("second event id for the same session -> nothing more",
          r.status == 200 and state(tok) == s1 and json.loads(body2)["id"] != evt, r.body[:100])
    body3 = stripe_event(sid, event_id="evt_" + uuid.uuid4().hex, user_id=uid)
    rs = parallel(5, lambda: post_stripe(body3, stripe_sig(body3)))
    check("5 concurrent new events for a paid session -> nothing more",
          all(r.status == 200 for r in rs) and state(tok) == s1, [r.status for r in rs])
    check_invariant("stripe once", tok)


def test_stripe_mismatch_and_others(tok, uid, tok_b):
    r = checkout(tok, "small")
    sid = r.json()["session_id"]
    s0 = state(tok)
    for what, body in (("amount 1", stripe_event(sid, amount=1)),
                       ("amount 50000", stripe_event(sid, amount=50000)),
                       ("currency eur", stripe_event(sid, currency="eur"))):
        r = post_stripe(body, stripe_sig(body))
        check("amount mismatch (%s) -> credits nothing" % what,
              r.status == 200 and state(tok) == s0, (r.status, r.body[:120]))
    body = stripe_event(sid, payment_status="unpaid")
    r = post_stripe(body, stripe_sig(body))
    check("completed but unpaid -> credits nothing", r.status == 200 and state(tok) == s0)
    body = stripe_event(sid, etype="payment_intent.succeeded")
    r = post_stripe(body, stripe_sig(body))
    check("other event type -> 200 ignored", r.status == 200 and state(tok) == s0
          and r.json().get("outcome") == "ignored", r.body[:100])
    body = stripe_event("cs_test_" + uuid.uuid4().hex)
    r = post_stripe(body, stripe_sig(body))
    check("event for an unknown session -> credits nothing", r.status == 200 and state(tok) == s0)
    # The session decides who is credited, never the event's metadata.
    sb0 = state(tok_b)
    body = stripe_event(sid, etype="checkout.session.async_payment_succeeded",
                        user_id="00000000-0000-4000-8000-000000000000")
    r = post_stripe(body, stripe_sig(body))
    check("async_payment_succeeded (right amount) credits the session's owner once",
          r.status == 200 and balance(tok) == s0[0] + 100 and state(tok_b) == sb0,
          (r.status, r.body[:100]))
    check_invariant("stripe mismatch", tok)
    check_invariant("stripe other user", tok_b)


def test_razorpay(rb, tok, uid):
    before = len(standin_requests(rb))
    r = checkout(tok, "small", provider="razorpay")
    j = r.json() if r.status == 201 else {}
    check("razorpay checkout -> 201 {order_id, key_id, amount, currency}",
          r.status == 201 and j.get("order_id", "").startswith("order_")
          and j.get("key_id") == os.environ.get("RAZORPAY_KEY_ID")
          and j.get("amount") == 500 and j.get("currency") == "USD", r.body[:200])
    reqs = standin_requests(rb)
    body = reqs[-1]["body"] if len(reqs) == before + 1 else {}
    check("Razorpay received {amount, currency, receipt, notes}",
          body.get("amount") == 500 and body.get("currency") == "USD"
          and 0 < len(body.get("receipt", "")) <= 40
          and body.get("notes", {}).get("user_id") == uid, body)
    oid = j.get("order_id", "order_missing")
    s0 = state(tok)
    ev = rzp_event(oid)
    for what, kw in (("forged signature", {"secret": "wrong", "event_id": "ev_" + uuid.uuid4().hex}),
                     ("missing signature", {"raw_sig": True, "event_id": "ev_x"}),
                     ("malformed signature", {"sig": "zz", "event_id": "ev_y"})):
        r = post_rzp(ev, **kw)
        check("razorpay webhook %s -> 400" % what, is_problem(r, 400), (r.status, r.body[:100]))
    sig = hmac.new(WH_RZP.encode(), ev, hashlib.sha256).hexdigest()
    r = post_rzp(ev.replace(b'"amount":500', b'"amount":50000', 1), sig=sig, event_id="ev_t")
    check("razorpay tampered body -> 400", is_problem(r, 400), r.status)
    r = post_rzp(ev)
    check("razorpay webhook without X-Razorpay-Event-Id -> 400", is_problem(r, 400), r.status)
    bad = rzp_event(oid, amount=100)
    r = post_rzp(bad, event_id="ev_" + uuid.uuid4().hex)
    check("razorpay amount mismatch -> credits nothing", r.status == 200 and state(tok) == s0,
          (r.status, r.body[:100]))
    check("rejected razorpay webhooks changed nothing", state(tok) == s0)
    eid = "ev_" + uuid.uuid4().hex
    rs = parallel(5, lambda: post_rzp(ev, event_id=eid))
    check("razorpay same event 5x concurrently -> all 200, credited once",
          all(r.status == 200 for r in rs) and balance(tok) == s0[0] + 100,
          ([r.status for r in rs], balance(tok)))
    s1 = state(tok)
    r = post_rzp(ev, event_id=eid)
    check("razorpay replayed event -> nothing more", r.status == 200 and state(tok) == s1)
    paid = rzp_event(oid, etype="order.paid")
    r = post_rzp(paid, event_id="ev_" + uuid.uuid4().hex)
    check("razorpay order.paid (new event id, same order) -> nothing more",
          r.status == 200 and state(tok) == s1, r.body[:100])
    r = post_rzp(rzp_event(oid), event_id="ev_" + uuid.uuid4().hex)
    check("razorpay payment.captured (new event id, same order) -> nothing more",
          r.status == 200 and state(tok) == s1)
    other = rzp_event(oid, etype="payment.failed")
    r = post_rzp(other, event_id="ev_" + uuid.uuid4().hex)
    check("razorpay other event -> 200 ignored", r.status == 200 and state(tok) == s1)
    check_invariant("razorpay", tok)


def main():
    if not WH_STRIPE or not WH_RZP:
        check("stack env has STRIPE_WEBHOOK_SECRET and RAZORPAY_WEBHOOK_SECRET", False)
        return
    sb, rb = start_standins()
    try:
        admin = client.admin_token()
        tok, uid = new_user()
        tok_b, _ = new_user()
        tok_r, uid_r = new_user()
        sid = test_checkout(sb, tok, uid)
        test_stripe_rejections(tok, uid, sid, admin)
        test_stripe_once(tok, uid, sid, admin)
        test_stripe_mismatch_and_others(tok, uid, tok_b)
        test_razorpay(rb, tok_r, uid_r)
    finally:
        stop_standins()


if __name__ == "__main__":
    client.run(main)
