"""Idempotency-Key claims of storage-svc after a crash (issue 9): a paid POST
whose storage-svc process died mid-request leaves its key claimed. The key
must become usable again as soon as that process is known gone (no heartbeat
in storage.instances for STORAGE_CLAIM_STALE_S), never while its owner is
alive, and the retry must then be charged exactly once.

The crash is simulated by writing the claim a dead process would have left
(the row shape storage-svc writes); the live daemon's own heartbeat row is read
from the same table. Needs the stack env (STACK_STATE_DIR, PG_PORT).
"""
import os
import subprocess
import time
import uuid

import client
from client import call, check, is_problem

STATE = os.environ["STACK_STATE_DIR"]
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(300)


def psql(sql):
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
         "host=%s port=%s user=postgres dbname=saas" % (STATE + "/pgsock",
                                                         os.environ.get("PG_PORT", "25432")),
         "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def user():
    _, _, r = client.signup()
    assert r.status == 201, (r.status, r.body[:200])
    j = r.json()
    return j["access_token"], j["user"]["id"]


def balance(tok):
    return (call("GET", "/v1/credits", token=tok).json() or {}).get("balance")


def upload(tok, key):
    return call("POST", "/v1/files", token=tok, raw=PNG,
                headers={"Content-Type": "image/png", "X-File-Name": "c.png",
                         "Idempotency-Key": key})


HASH = {"v": "file:crashed"}


def leave_claim(uid, key, owner):
    # what a storage-svc process killed after its claim leaves behind: the
    # claim of this same request (HASH once learnt from a completed one)
    psql("INSERT INTO storage.idempotency_keys (user_id, key, request_hash, owner) "
         "VALUES ('%s', '%s', '%s', %s)"
         % (uid, key, HASH["v"], "NULL" if owner is None else "'%s'" % owner))


def files_with_key(uid, key):
    return int(psql("SELECT count(*) FROM storage.files WHERE user_id = '%s' "
                    "AND idempotency_key = '%s'" % (uid, key)))


def main():
    # the running daemon heartbeats
    rows = psql("SELECT id || '|' || extract(epoch FROM now() - seen_at)::int "
                "FROM storage.instances ORDER BY seen_at DESC")
    live = [r.split("|") for r in rows.splitlines() if r]
    check("storage-svc has a heartbeat row", len(live) >= 1, rows)
    if not live:
        return
    live_id = live[0][0]
    first = psql("SELECT seen_at FROM storage.instances WHERE id = '%s'" % live_id)
    time.sleep(2.5)
    second = psql("SELECT seen_at FROM storage.instances WHERE id = '%s'" % live_id)
    check("the heartbeat advances", second > first, (first, second))

    # 1. owner gone (no heartbeat row at all): the retry takes the key over at once
    tok, uid = user()
    key = "crash-" + uuid.uuid4().hex
    leave_claim(uid, key, "dead-" + uuid.uuid4().hex)
    before = balance(tok)
    r = upload(tok, key)
    check("claim of a dead instance: retry succeeds (201)", r.status == 201,
          (r.status, r.body[:200]))
    check("... charged 10 once", balance(tok) == before - 10, (before, balance(tok)))
    r2 = upload(tok, key)
    check("... a second retry replays (no new charge)",
          r2.status in (200, 201) and balance(tok) == before - 10 and
          files_with_key(uid, key) == 1, (r2.status, balance(tok), files_with_key(uid, key)))

    # the same request's hash, as storage-svc computed it, for the cases below
    HASH["v"] = psql("SELECT request_hash FROM storage.idempotency_keys WHERE user_id = '%s' "
                     "AND key = '%s'" % (uid, key))

    # 2. owner silent longer than the stale period: taken over
    key = "stale-" + uuid.uuid4().hex
    dead = "gone-" + uuid.uuid4().hex
    psql("INSERT INTO storage.instances (id, seen_at) VALUES ('%s', now() - interval '1 minute')"
         % dead)
    leave_claim(uid, key, dead)
    before = balance(tok)
    r = upload(tok, key)
    check("claim of an instance silent for 60 s: taken over (201), charged once",
          r.status == 201 and balance(tok) == before - 10, (r.status, r.body[:200]))

    # 3. owner alive (the running daemon): the key stays in progress, nothing charged
    key = "live-" + uuid.uuid4().hex
    leave_claim(uid, key, live_id)
    before = balance(tok)
    r = upload(tok, key)
    check("claim of a live instance: 409 problem", is_problem(r, 409), (r.status, r.body[:200]))
    check("... nothing charged, no file", balance(tok) == before and
          files_with_key(uid, key) == 0, (before, balance(tok)))

    # 4. a claim without owner (older storage-svc) keeps the 10-minute rule
    key = "legacy-" + uuid.uuid4().hex
    leave_claim(uid, key, None)
    r = upload(tok, key)
    check("ownerless recent claim: 409 (10-minute fallback)", is_problem(r, 409),
          (r.status, r.body[:200]))
    psql("UPDATE storage.idempotency_keys SET created_at = now() - interval '11 minutes' "
         "WHERE user_id = '%s' AND key = '%s'" % (uid, key))
    before = balance(tok)
    r = upload(tok, key)
    check("ownerless claim older than 10 minutes: taken over, charged once",
          r.status == 201 and balance(tok) == before - 10, (r.status, r.body[:200]))
    psql("DELETE FROM storage.instances WHERE id = '%s'" % dead)


if __name__ == "__main__":
    client.run(main)
