#!/usr/bin/env python3
"""Local stand-in for the part of Stripe's REST API credit-svc calls
(no Stripe server is reachable from the test machine). Python stdlib only.

  POST /v1/checkout/sessions   form-encoded exactly as Stripe expects it,
       "Authorization: Bearer <secret key>", optional Idempotency-Key.
       -> 200 Checkout Session object (id "cs_test_...", object, url,
          amount_total, amount_subtotal, currency, payment_status "unpaid",
          status "open", mode, client_reference_id, metadata, success_url,
          cancel_url, created, expires_at, livemode false)
       Errors use Stripe's shape {"error": {"type", "message", "param"?}}:
       401 bad key, 400 missing/invalid parameter, 400 idempotency_error when
       a key is reused with other parameters (same key + same parameters
       replays the first response, like Stripe).
  Test controls (not part of Stripe's API):
  GET  /__standin/requests     every accepted create call: {params, idempotency_key}
  POST /__standin/next         {"status": 500} or {"amount_total": 1} - applies to
                               the next create call only

Usage: stripe_standin.py --port N --secret-key sk_test_...
"""
import argparse
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"requests": [], "idem": {}, "next": {}}
REQUIRED = ["mode", "line_items[0][price_data][currency]",
            "line_items[0][price_data][unit_amount]",
            "line_items[0][price_data][product_data][name]",
            "line_items[0][quantity]", "success_url", "cancel_url"]


def stripe_error(status, etype, message, param=None):
    err = {"type": etype, "message": message}
    if param:
        err["param"] = param
    return status, {"error": err}


class Handler(BaseHTTPRequestHandler):
    server_version = "stripe-standin/1"
    secret_key = ""

    def log_message(self, *args):  # quiet
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_" + secrets.token_hex(7))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/__standin/requests":
            with LOCK:
                return self.reply(200, {"items": list(STATE["requests"])})
        return self.reply(*stripe_error(404, "invalid_request_error", "Unrecognized request URL"))

    def do_POST(self):
        raw = self.body()
        if self.path == "/__standin/next":
            with LOCK:
                STATE["next"] = json.loads(raw or b"{}")
            return self.reply(200, {"ok": True})
        if self.path != "/v1/checkout/sessions":
            return self.reply(*stripe_error(404, "invalid_request_error",
                                            "Unrecognized request URL (POST: %s)" % self.path))
        if self.headers.get("Authorization", "") != "Bearer " + self.secret_key:
            return self.reply(*stripe_error(401, "invalid_request_error",
                                            "Invalid API Key provided"))
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype != "application/x-www-form-urlencoded":
            return self.reply(*stripe_error(400, "invalid_request_error",
                                            "Content-Type must be application/x-www-form-urlencoded"))
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                           strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            return self.reply(*stripe_error(400, "invalid_request_error", "Malformed form body"))
        params = {}
        for k, v in pairs:
            if k in params:
                return self.reply(*stripe_error(400, "invalid_request_error",
                                                "Duplicate parameter", k))
            params[k] = v
        for k in REQUIRED:
            if not params.get(k):
                return self.reply(*stripe_error(400, "invalid_request_error",
                                                "Missing required param: %s." % k, k))
        if params["mode"] != "payment":
            return self.reply(*stripe_error(400, "invalid_request_error", "Invalid mode", "mode"))
        try:
            unit = int(params["line_items[0][price_data][unit_amount]"])
            qty = int(params["line_items[0][quantity]"])
        except ValueError:
            return self.reply(*stripe_error(400, "invalid_request_error", "Invalid integer",
                                            "line_items[0][price_data][unit_amount]"))
        if unit < 1 or qty < 1:
            return self.reply(*stripe_error(400, "invalid_request_error", "Invalid amount"))
        idem = self.headers.get("Idempotency-Key")
        with LOCK:
            if idem and idem in STATE["idem"]:
                prev_params, prev_resp = STATE["idem"][idem]
                if prev_params != params:
                    return self.reply(*stripe_error(
                        400, "idempotency_error",
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with."))
                return self.reply(200, prev_resp)
            nxt, STATE["next"] = STATE["next"], {}
            if "status" in nxt:
                return self.reply(*stripe_error(nxt["status"], "api_error", "injected failure"))
            now = int(time.time())
            sid = "cs_test_" + secrets.token_hex(24)
            metadata = {k[len("metadata["):-1]: v for k, v in params.items()
                        if k.startswith("metadata[") and k.endswith("]")}
            resp = {
                "id": sid, "object": "checkout.session",
                "url": "https://checkout.stripe.com/c/pay/" + sid,
                "amount_subtotal": unit * qty,
                "amount_total": nxt.get("amount_total", unit * qty),
                "currency": params["line_items[0][price_data][currency]"],
                "payment_status": "unpaid", "status": "open", "mode": "payment",
                "client_reference_id": params.get("client_reference_id"),
                "metadata": metadata, "success_url": params["success_url"],
                "cancel_url": params["cancel_url"], "created": now,
                "expires_at": now + 86400, "livemode": False,
            }
            STATE["requests"].append({"params": params, "idempotency_key": idem, "id": sid})
            if idem:
                STATE["idem"][idem] = (params, resp)
        return self.reply(200, resp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret-key", required=True)
    a = ap.parse_args()
    Handler.secret_key = a.secret_key
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print("stripe stand-in on 127.0.0.1:%d" % a.port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
