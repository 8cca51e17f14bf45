#!/usr/bin/env python3
"""Local stand-in for Razorpay's Orders API (POST /v1/orders), Python stdlib.

  POST /v1/orders   HTTP basic auth key_id:key_secret, JSON
       {amount (int, minor units), currency, receipt (<= 40 chars), notes}
       -> 200 Order entity {id "order_<14 chars>", entity "order", amount,
          amount_paid 0, amount_due, currency, receipt, offer_id null,
          status "created", attempts 0, notes, created_at}
       Errors in Razorpay's shape {"error": {"code": "BAD_REQUEST_ERROR",
       "description", "field"?}}: 401 authentication failed, 400 bad input.
  GET /__standin/requests   every accepted create call (test control)

Usage: razorpay_standin.py --port N --key-id rzp_test_... --key-secret ...
"""
import argparse
import base64
import json
import secrets
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
REQUESTS = []
ALNUM = string.ascii_letters + string.digits


def rzp_error(status, desc, field=None):
    e = {"code": "BAD_REQUEST_ERROR", "description": desc, "source": "business",
         "step": "payment_initiation", "reason": "input_validation_failed", "metadata": {}}
    if field:
        e["field"] = field
    return status, {"error": e}


class Handler(BaseHTTPRequestHandler):
    server_version = "razorpay-standin/1"
    auth = ""

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/__standin/requests":
            with LOCK:
                return self.reply(200, {"items": list(REQUESTS)})
        return self.reply(*rzp_error(404, "The requested URL was not found on the server."))

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.path != "/v1/orders":
            return self.reply(*rzp_error(404, "The requested URL was not found on the server."))
        if self.headers.get("Authorization", "") != self.auth:
            return self.reply(*rzp_error(401, "Authentication failed"))
        try:
            body = json.loads(raw)
        except ValueError:
            return self.reply(*rzp_error(400, "The request body is not valid JSON"))
        if not isinstance(body, dict):
            return self.reply(*rzp_error(400, "The request body is not valid JSON"))
        amount = body.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 100:
            return self.reply(*rzp_error(400, "The amount must be atleast INR 1.00", "amount"))
        cur = body.get("currency")
        if not isinstance(cur, str) or len(cur) != 3 or not cur.isupper():
            return self.reply(*rzp_error(400, "The currency is invalid.", "currency"))
        receipt = body.get("receipt")
        if receipt is not None and (not isinstance(receipt, str) or len(receipt) > 40):
            return self.reply(*rzp_error(400, "The receipt may not be greater than 40 characters.",
                                         "receipt"))
        notes = body.get("notes", {})
        if not isinstance(notes, dict) or len(notes) > 15:
            return self.reply(*rzp_error(400, "notes must be an object of at most 15 keys",
                                         "notes"))
        order = {"id": "order_" + "".join(secrets.choice(ALNUM) for _ in range(14)),
                 "entity": "order", "amount": amount, "amount_paid": 0, "amount_due": amount,
                 "currency": cur, "receipt": receipt, "offer_id": None, "status": "created",
                 "attempts": 0, "notes": notes, "created_at": int(time.time())}
        with LOCK:
            REQUESTS.append({"body": body, "id": order["id"]})
        return self.reply(200, order)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--key-secret", required=True)
    a = ap.parse_args()
    Handler.auth = "Basic " + base64.b64encode(
        ("%s:%s" % (a.key_id, a.key_secret)).encode()).decode()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print("razorpay stand-in on 127.0.0.1:%d" % a.port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
