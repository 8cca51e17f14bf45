"""Files, reports and the service API, black box (issue 5): what a user or an
attacker sees through the gateway, plus what stayed unchanged (balances,
reservations, stored objects) after every refusal.

Needs the stack's env (tests/run.sh sources services/env.sh): STORAGE_MAX_UPLOAD,
S3_ENDPOINT, S3_BUCKET, STACK_STATE_DIR, INTERNAL_SECRET (for the defence-in-depth
checks that call storage-svc directly with a signed identity).
Checks that need API keys (helper AUTH's POST /v1/admin/api-keys + helper GW's
key authentication) and chain data in usage reports (helper CREDIT's
/internal/debits, contract C) fail until those land: they are real checks,
never skipped.
"""
import csv
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid

import client
from client import call, check, is_problem, skip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX = int(os.environ.get("STORAGE_MAX_UPLOAD", "10485760"))
S3 = os.environ.get("S3_ENDPOINT", "http://127.0.0.1:24568")
BUCKET = os.environ.get("S3_BUCKET", "reports")
STATE = os.environ.get("STACK_STATE_DIR", os.path.join(REPO, ".run"))
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(200)
PDF = b"%PDF-1.7\n" + os.urandom(300) + b"\n%%EOF\n"
ELF = b"\x7fELF\x02\x01\x01" + os.urandom(64)


def user():
    _, _, r = client.signup()
    assert r.status == 201, (r.status, r.body[:200])
    j = r.json()
    return j["access_token"], j["user"]["id"]


def credits(tok):
    r = call("GET", "/v1/credits", token=tok)
    j = r.json() or {}
    return j.get("balance"), j.get("available")


def upload_raw(tok, data, ctype=None, name=None, qname=None, headers=None):
    h = dict(headers or {})
    if ctype is not None:
        h["Content-Type"] = ctype
    if name is not None:
        h["X-File-Name"] = name
    path = "/v1/files" + ("?name=" + urllib.request.quote(qname, safe="") if qname else "")
    return call("POST", path, token=tok, raw=data, headers=h)


def multipart(data, filename="f.bin", ctype=None, boundary=None, field="file"):
    b = boundary or ("----e2e" + uuid.uuid4().hex)
    head = 'Content-Disposition: form-data; name="%s"; filename="%s"\r\n' % (field, filename)
    if ctype:
        head += "Content-Type: %s\r\n" % ctype
    body = ("--%s\r\n" % b).encode() + head.encode() + b"\r\n" + data + ("\r\n--%s--\r\n" % b).encode()
    return body, "multipart/form-data; boundary=" + b


def upload_mp(tok, data, filename="f.bin", ctype=None, headers=None):
    body, ct = multipart(data, filename, ctype)
    h = {"Content-Type": ct}
    h.update(headers or {})
    return call("POST", "/v1/files", token=tok, raw=body, headers=h)


def s3_keys(prefix):
    """Object keys in the bucket under prefix (s3rver accepts unsigned reads)."""
    with urllib.request.urlopen("%s/%s?list-type=2&prefix=%s" % (S3, BUCKET, prefix), timeout=10) as r:
        xml = r.read().decode()
    return re.findall(r"<Key>([^<]*)</Key>", xml)


def sign_direct(method, path, user_id, role, scope, body=b""):
    """Signed identity headers of lc_iauth (libcommon/include/lc/iauth.h)."""
    return client.iauth_headers(method, path, body, user=user_id, role=role, scope=scope,
                                rid="e2e-files-" + uuid.uuid4().hex[:12])


def direct(method, path, user_id, role, scope):
    base = "http://127.0.0.1:%d" % client.PORTS["storage"]
    return call(method, path, headers=sign_direct(method, path, user_id, role, scope), base=base,
                tls=False)


def pid_of(name):
    try:
        with open(os.path.join(STATE, "pids", name + ".pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def s3_up():
    try:
        urllib.request.urlopen(S3 + "/", timeout=2).read()
        return True
    except Exception:  # noqa: BLE001
        return False


# ---------------------------------------------------------------- streaming
GW_HOST, GW_PORT = re.match(r"^https://([^:/]+):(\d+)", client.GW).groups()
SPOOL = os.environ.get("STORAGE_SPOOL_DIR", "/tmp")


def rss_kb(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def spool_fds(pid):
    """Open spool files (unlinked) of storage-svc."""
    out = []
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith(SPOOL.rstrip("/") + "/") and t.endswith("(deleted)"):
                out.append(t)
    except OSError:
        pass
    return out


def tls_socket():
    import socket
    s = socket.create_connection((GW_HOST, int(GW_PORT)), timeout=30)
    return client.ctx.wrap_socket(s, server_hostname=GW_HOST)


def read_response(s):
    """(status, headers dict lowercased, body) of one HTTP/1.1 answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        c = s.recv(65536)
        if not c:
            return None, {}, data
        data += c
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hd = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hd[k.strip().lower()] = v.strip()
    n = int(hd.get("content-length", "0"))
    while len(rest) < n:
        c = s.recv(65536)
        if not c:
            break
        rest += c
    return status, hd, rest[:n]


def raw_upload(tok, head_extra, pieces, ctype="text/plain", pause=0.0, close_early=False,
               half_close=False):
    """POST /v1/files over a raw TLS socket: head_extra = extra header lines,
    pieces = body chunks sent one by one. Returns (status, json) or None."""
    s = tls_socket()
    head = ("POST /v1/files HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: %s\r\n%s\r\n" % (GW_HOST, GW_PORT, tok, ctype, head_extra)).encode()
    s.sendall(head)
    for p in pieces:
        s.sendall(p)
        if pause:
            time.sleep(pause)
    if close_early:
        s.close()
        return None
    if half_close:
        # TLS has no half close: stop sending and wait for the server to give up
        s.settimeout(5)
        try:
            st, _, body = read_response(s)
        except OSError:
            st, body = None, b""
        s.close()
        return st, body
    st, _, body = read_response(s)
    s.close()
    try:
        return st, json.loads(body)
    except ValueError:
        return st, body


def chunked(data, size):
    out = []
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out.append(b"%x\r\n" % len(part) + part + b"\r\n")
    out.append(b"0\r\n\r\n")
    return out


def settle(cond, timeout=8.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def memory_bound(name, growth_kib, limit_bytes):
    """A peak-RSS-growth bound; skipped against sanitizer builds (their
    allocator keeps freed memory in quarantine)."""
    if client.SANITIZED:
        skip(name, "ASan build: RSS is the sanitizer allocator's, %d KiB" % growth_kib)
        return
    check(name, growth_kib * 1024 < limit_bytes, growth_kib)


def streaming():
    import threading
    gw_pid, st_pid = pid_of("gateway"), pid_of("storage-svc")
    check("gateway and storage-svc pids known", gw_pid is not None and st_pid is not None)
    if gw_pid is None or st_pid is None:
        return
    # 1. three concurrent uploads of the maximum size: neither daemon's
    # memory grows by anything near one body (ulfius buffered it whole)
    users = [user() for _ in range(3)]
    data = [(b"%07d streamed line of text\n" % i) * 1 for i in range(MAX // 32)]
    body = b"".join(data)
    body = body + b"x" * (MAX - len(body) - 1) + b"\n"
    assert len(body) == MAX
    digest = hashlib.sha256(body).hexdigest()
    base = {p: rss_kb(p) for p in (gw_pid, st_pid)}
    for p in (gw_pid, st_pid):
        try:
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("5")  # resets VmHWM
        except OSError:
            pass
    peak = dict(base)
    done = threading.Event()

    def sample():
        while not done.is_set():
            for p in (gw_pid, st_pid):
                peak[p] = max(peak[p], rss_kb(p))
            time.sleep(0.002)

    results = [None] * 3

    def one(i):
        results[i] = upload_raw(users[i][0], body, "text/plain", name="max%d.txt" % i)

    smp = threading.Thread(target=sample)
    smp.start()
    ths = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.monotonic() - t0
    done.set()
    smp.join()
    for p in (gw_pid, st_pid):
        peak[p] = max(peak[p], rss_kb(p, "VmHWM"))
    ok = all(r is not None and r.status == 201 and r.json().get("sha256") == digest
             and r.json().get("size_bytes") == MAX for r in results)
    check("3 concurrent uploads of the limit (%d bytes) -> 201, checksums equal" % MAX, ok,
          [(r.status, r.body[:120]) for r in results if r is not None])
    growth = {p: peak[p] - base[p] for p in peak}
    print("streaming: 3 x %d bytes in %.2fs; peak RSS growth gateway %d KiB, storage-svc %d KiB"
          % (MAX, wall, growth[gw_pid], growth[st_pid]))
    memory_bound("gateway memory stays far below the bodies (peak growth < limit/2)",
                 growth[gw_pid], MAX // 2)
    memory_bound("storage-svc memory stays far below the bodies (peak growth < limit/2)",
                 growth[st_pid], MAX // 2)
    r = call("GET", "/v1/files/%s/content" % (results[0].json() or {}).get("id"), token=users[0][0])
    check("the streamed file reads back byte for byte", r.status == 200 and r.body == body,
          (r.status, len(r.body)))

    tok, uid = user()
    bal = credits(tok)
    # 2. chunked (no Content-Length) bodies
    small = os.urandom(100) .hex().encode() * 1500  # 300000 bytes of text
    st, j = raw_upload(tok, "Transfer-Encoding: chunked\r\nX-File-Name: chunked.txt\r\n",
                       chunked(small, 7001))
    check("chunked upload without Content-Length -> 201, size and checksum equal",
          st == 201 and isinstance(j, dict) and j.get("size_bytes") == len(small)
          and j.get("sha256") == hashlib.sha256(small).hexdigest(), (st, str(j)[:200]))
    st, j = raw_upload(tok, "Transfer-Encoding: chunked\r\n", chunked(b"b" * (MAX + 1), 65536))
    check("chunked upload of limit+1 bytes -> 413", st == 413, (st, str(j)[:200]))
    check("chunked uploads charged 10 once", credits(tok) == (bal[0] - 10, bal[1] - 10),
          (bal, credits(tok)))
    # 3. multipart split across many small writes
    payload = b"tiny pieces\r\n--not-the-boundary\r\n" * 40
    mbody, mct = multipart(payload, filename="pieces.txt", ctype="text/plain")
    pieces = [mbody[i:i + 5] for i in range(0, len(mbody), 5)]
    st, j = raw_upload(tok, "Content-Length: %d\r\n" % len(mbody), pieces, ctype=mct, pause=0.0005)
    check("multipart sent in %d small writes -> 201, checksum of the part" % len(pieces),
          st == 201 and isinstance(j, dict) and j.get("sha256") == hashlib.sha256(payload).hexdigest()
          and j.get("name") == "pieces.txt", (st, str(j)[:200]))
    bal = credits(tok)
    keys_before = sorted(s3_keys("files/%s/" % uid))
    # 4. client goes away half way: nothing charged, no object, no spool file left
    half = b"z" * (600 * 1024)
    raw_upload(tok, "Content-Length: %d\r\nX-File-Name: cut.txt\r\n" % (2 * 1024 * 1024),
               [half], close_early=True)
    check("client gone mid-body: no spool file left in storage-svc",
          settle(lambda: not spool_fds(st_pid)), spool_fds(st_pid))
    check("client gone mid-body: nothing charged", credits(tok) == bal, (bal, credits(tok)))
    check("client gone mid-body: no object stored",
          sorted(s3_keys("files/%s/" % uid)) == keys_before, s3_keys("files/%s/" % uid))
    # 5. Content-Length longer than what is sent: the server gives up on the
    # body (idle timeout / client stop), nothing is charged
    raw_upload(tok, "Content-Length: %d\r\nX-File-Name: short.txt\r\n" % (1024 * 1024),
               [b"only a little\n" * 100], half_close=True)
    check("Content-Length longer than the body: no spool file left",
          settle(lambda: not spool_fds(st_pid), 40), spool_fds(st_pid))
    check("Content-Length longer than the body: nothing charged, no object",
          credits(tok) == bal and sorted(s3_keys("files/%s/" % uid)) == keys_before,
          (bal, credits(tok)))
    # 6. Content-Length shorter than what is sent: the body is what it says
    st, j = raw_upload(tok, "Content-Length: 100\r\nX-File-Name: lie.txt\r\n", [b"k" * 150])
    check("Content-Length shorter than the data: the file is its first Content-Length bytes",
          st == 201 and isinstance(j, dict) and j.get("size_bytes") == 100
          and j.get("sha256") == hashlib.sha256(b"k" * 100).hexdigest(), (st, str(j)[:200]))
    # 7. refused on headers while the client waits for "100 Continue": the
    # answer comes without the body being sent
    s = tls_socket()
    s.sendall(("POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer not-a-token\r\n"
               "Content-Type: text/plain\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
               % GW_HOST).encode())
    s.settimeout(10)
    try:
        st, _, _ = read_response(s)
    except OSError as e:
        st = repr(e)
    s.close()
    check("bad credentials with Expect: 100-continue -> 401 before any body byte", st == 401, st)
    r = upload_raw(tok, b"after the cut uploads\n", "text/plain", name="after.txt")
    check("uploads work after cut bodies", r.status == 201, (r.status, r.body[:200]))


# ---------------------------------------------------------------- streamed downloads
def raw_get(tok, path, stop_after=None, pause=0.0):
    """GET over a raw TLS socket (Connection: close): (status, headers, body
    as far as it came). stop_after = bytes of body to read, then disconnect."""
    s = tls_socket()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
               "Connection: close\r\n\r\n" % (path, GW_HOST, tok)).encode())
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            c = s.recv(65536)
            if not c:
                break
            data += c
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if lines and lines[0] else None
        hd = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hd[k.strip().lower()] = v.strip()
        while stop_after is None or len(rest) < stop_after:
            if pause:
                time.sleep(pause)
            c = s.recv(65536)
            if not c:
                break
            rest += c
    except OSError:
        status, hd, rest = None, {}, b""
    s.close()
    return status, hd, rest if stop_after is None else rest[:stop_after]


def threads_of(pid):
    return rss_kb(pid, "Threads")


def object_path(uid, fid):
    return os.path.join(STATE, "s3", BUCKET, "files", uid, fid + "._S3rver_object")


def downloads():
    import threading
    gw_pid, st_pid = pid_of("gateway"), pid_of("storage-svc")
    check("downloads: gateway and storage-svc pids known", gw_pid is not None and st_pid is not None)
    if gw_pid is None or st_pid is None:
        return
    tok, uid = user()
    body = b"".join(b"%08d downloaded line of text\n" % i for i in range(MAX // 32 + 1))
    body = body[:MAX - 1] + b"\n"
    assert len(body) == MAX
    digest = hashlib.sha256(body).hexdigest()
    r = upload_raw(tok, body, "text/plain", name="big.txt")
    check("downloads: file at the size limit uploaded", r.status == 201, (r.status, r.body[:200]))
    if r.status != 201:
        return
    fid = r.json()["id"]
    path = "/v1/files/%s/content" % fid
    # 1. the limit-sized file comes back whole, byte for byte
    g = call("GET", path, token=tok)
    check("download of a file at the limit: 200, identical bytes, sha256 = stored checksum",
          g.status == 200 and g.body == body and hashlib.sha256(g.body).hexdigest() == digest
          == r.json().get("sha256"), (g.status, len(g.body)))
    check("download headers: Content-Length = size, attachment, nosniff, text/plain",
          g.headers.get("Content-Length") == str(MAX)
          and g.headers.get("Content-Disposition", "").startswith("attachment")
          and g.headers.get("X-Content-Type-Options") == "nosniff"
          and g.headers.get("Content-Type", "").startswith("text/plain")
          and g.headers.get("X-Request-Id") is not None
          and g.headers.get("Strict-Transport-Security") is not None, dict(g.headers))
    # 2. three concurrent downloads of the limit: memory stays bounded
    base = {p: rss_kb(p) for p in (gw_pid, st_pid)}
    for p in (gw_pid, st_pid):
        try:
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("5")  # resets VmHWM
        except OSError:
            pass
    peak = dict(base)
    done = threading.Event()

    def sample():
        while not done.is_set():
            for p in (gw_pid, st_pid):
                peak[p] = max(peak[p], rss_kb(p))
            time.sleep(0.002)

    results = [None] * 3

    def one(i):
        st, hd, b = raw_get(tok, path)
        results[i] = (st, len(b), hashlib.sha256(b).hexdigest())

    smp = threading.Thread(target=sample)
    smp.start()
    ths = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.monotonic() - t0
    done.set()
    smp.join()
    for p in (gw_pid, st_pid):
        peak[p] = max(peak[p], rss_kb(p, "VmHWM"))
    check("3 concurrent downloads of the limit -> 200, whole, checksums equal",
          all(x == (200, MAX, digest) for x in results), [x[:2] for x in results if x])
    growth = {p: peak[p] - base[p] for p in peak}
    print("downloads: 3 x %d bytes in %.2fs; peak RSS growth gateway %d KiB, storage-svc %d KiB"
          % (MAX, wall, growth[gw_pid], growth[st_pid]))
    memory_bound("downloads: gateway memory stays far below the files (peak growth < limit/4)",
                 growth[gw_pid], MAX // 4)
    memory_bound("downloads: storage-svc memory stays far below the files (peak growth < limit/4)",
                 growth[st_pid], MAX // 4)
    # 3. clients that read a few bytes (or nothing) and go away: no thread
    # is left behind, later downloads work
    settle(lambda: False, 0.5)
    th0 = {p: threads_of(p) for p in (gw_pid, st_pid)}
    got = []
    for n in (10, 70000, 0):
        st, _, b = raw_get(tok, path, stop_after=n)
        got.append((st, b == body[:n]))
    check("clients that disconnect early saw 200 and the right first bytes",
          all(x == (200, True) for x in got), got)
    check("clients gone early: no gateway / storage-svc thread left behind",
          settle(lambda: all(threads_of(p) <= th0[p] for p in th0), 40),
          (th0, {p: threads_of(p) for p in th0}))
    g = call("GET", path, token=tok)
    check("a download after the early disconnects is whole", g.status == 200 and g.body == body,
          (g.status, len(g.body)))
    # 4. a stored object that no longer matches its checksum is never served
    # whole: same length, one byte changed -> the stream ends short
    tok2, uid2 = user()
    small = b"checksum guard line\n" * 20000  # 400000 bytes
    r = upload_raw(tok2, small, "text/plain", name="guard.txt")
    ok = r.status == 201
    obj = object_path(uid2, r.json()["id"]) if ok else ""
    check("downloads: guard file stored in s3rver's directory", ok and os.path.exists(obj), obj)
    if ok and os.path.exists(obj):
        with open(obj, "r+b") as f:
            f.seek(len(small) - 5)
            f.write(b"X")
        st, hd, b = raw_get(tok2, "/v1/files/%s/content" % r.json()["id"])
        check("object changed in the store (same length): the body ends short, never whole",
              st is None or (st == 200 and len(b) < len(small) and small.startswith(b))
              or st == 503, (st, len(b)))
        with open(obj, "wb") as f:
            f.write(small[:1000])
        st, hd, b = raw_get(tok2, "/v1/files/%s/content" % r.json()["id"])
        check("object shorter than stored size -> 503 before any byte",
              st == 503 and b"temporarily unavailable" in b, (st, b[:200]))
    g = call("GET", path, token=tok)
    check("downloads still work after the broken objects", g.status == 200 and g.body == body,
          (g.status, len(g.body)))


def main():
    # ------------------------------------------------------------ round trips
    ta, ua = user()
    r = upload_raw(ta, PNG, "image/png", name="pic%20%C3%A9.png")
    check("raw upload -> 201", r.status == 201, (r.status, r.body[:300]))
    fa = r.json() if r.status == 201 else {}
    check("upload metadata: id, sanitised unicode name, sniffed type, size, sha256",
          UUID_RE.match(fa.get("id", "")) and fa.get("name") == "pic \u00e9.png"
          and fa.get("content_type") == "image/png" and fa.get("size_bytes") == len(PNG)
          and fa.get("sha256") == hashlib.sha256(PNG).hexdigest(), fa)
    check("upload costs 10", credits(ta) == (40, 40), credits(ta))
    r = call("GET", "/v1/files/%s" % fa.get("id"), token=ta)
    check("GET /v1/files/{id} -> same metadata", r.status == 200 and r.json() == fa, r.body[:300])
    r = call("GET", "/v1/files/%s/content" % fa.get("id"), token=ta)
    check("content: bytes and sha256 equal",
          r.status == 200 and r.body == PNG and hashlib.sha256(r.body).hexdigest() == fa.get("sha256"),
          (r.status, len(r.body)))
    cd = r.headers.get("Content-Disposition", "")
    check("content: attachment with RFC 5987 name, nosniff, stored type",
          cd.startswith("attachment;") and "filename*=UTF-8''pic%20%C3%A9.png" in cd
          and r.headers.get("X-Content-Type-Options") == "nosniff"
          and r.headers.get("Content-Type", "").startswith("image/png"), dict(r.headers))

    r = upload_mp(ta, PDF, filename="../../doc.pdf", ctype="application/pdf")
    check("multipart upload -> 201", r.status == 201, (r.status, r.body[:300]))
    fb = r.json() if r.status == 201 else {}
    check("multipart: name without path, pdf, sha256", fb.get("name") == "doc.pdf"
          and fb.get("content_type") == "application/pdf"
          and fb.get("sha256") == hashlib.sha256(PDF).hexdigest(), fb)
    r = call("GET", "/v1/files/%s/content" % fb.get("id"), token=ta)
    check("multipart content round trip", r.status == 200 and r.body == PDF, (r.status, len(r.body)))
    check("balance 30 after two uploads", credits(ta) == (30, 30), credits(ta))

    r1 = call("GET", "/v1/files?limit=1", token=ta)
    nc = (r1.json() or {}).get("next_cursor")
    r2 = call("GET", "/v1/files?limit=1&cursor=%s" % nc, token=ta) if nc else None
    ids = [x["id"] for x in (r1.json() or {}).get("items", [])] + \
          ([x["id"] for x in (r2.json() or {}).get("items", [])] if r2 else [])
    check("list: newest first, cursor pagination, both files once",
          ids == [fb.get("id"), fa.get("id")] and r2 is not None and r2.json()["next_cursor"] is None,
          ids)
    check("list: bad cursor -> 400", is_problem(call("GET", "/v1/files?cursor=zzz", token=ta), 400))

    keys = s3_keys("files/")
    mine = [k for k in keys if k.startswith("files/%s/" % ua)]
    check("objects live under files/<user_id>/<uuid> only (server-generated keys)",
          sorted(mine) == sorted("files/%s/%s" % (ua, f) for f in (fa.get("id"), fb.get("id")))
          and all(re.match(r"^files/[0-9a-f-]{36}/[0-9a-f-]{36}$", k) for k in keys), mine)

    # ------------------------------------------------------------ idempotency
    key = "e2e-" + uuid.uuid4().hex
    r1 = upload_raw(ta, b"idempotent text\n", "text/plain", name="i.txt", headers={"Idempotency-Key": key})
    r2 = upload_raw(ta, b"idempotent text\n", "text/plain", name="i.txt", headers={"Idempotency-Key": key})
    check("Idempotency-Key: replay returns the same file, flagged",
          r1.status == 201 and r2.status == 201 and r1.json()["id"] == r2.json()["id"]
          and r2.headers.get("Idempotent-Replayed") == "true", (r1.status, r2.status, r2.body[:200]))
    r3 = upload_raw(ta, b"other text\n", "text/plain", name="i.txt", headers={"Idempotency-Key": key})
    check("Idempotency-Key reused for another body -> 422", is_problem(r3, 422), (r3.status, r3.body[:200]))
    check("idempotent upload charged once (20 left)", credits(ta) == (20, 20), credits(ta))

    # ------------------------------------------------------------ limits and lies (nothing charged)
    before = credits(ta)
    r = upload_raw(ta, b"a" * (MAX + 1), "text/plain", name="big.txt")
    check("raw upload of limit+1 bytes -> 413", is_problem(r, 413), (r.status, r.body[:200]))
    r = upload_mp(ta, b"a" * (MAX + 1), filename="big.txt", ctype="text/plain")
    check("multipart part of limit+1 bytes -> 413", is_problem(r, 413), (r.status, r.body[:200]))
    r = upload_raw(ta, PDF, "image/png", name="lie.png")
    check("PDF declared image/png -> 415", is_problem(r, 415), (r.status, r.body[:200]))
    r = upload_mp(ta, PNG, filename="x.jpg", ctype="image/jpeg")
    check("multipart PNG declared image/jpeg -> 415", is_problem(r, 415), (r.status, r.body[:200]))
    r = upload_raw(ta, ELF, "application/octet-stream", name="a.out")
    check("executable (not on the allowlist) -> 415", is_problem(r, 415), (r.status, r.body[:200]))
    r = upload_raw(ta, b"just text", "application/json", name="x.json")
    check("plain text declared application/json -> 415", is_problem(r, 415), (r.status, r.body[:200]))
    r = upload_raw(ta, b"<html></html>", "text/html", name="x.html")
    check("text/html (not allowed) -> 415", is_problem(r, 415), (r.status, r.body[:200]))
    r = upload_raw(ta, b"", "text/plain", name="empty.txt")
    check("empty file -> 400", is_problem(r, 400), (r.status, r.body[:200]))
    ct = "multipart/form-data; boundary=two"
    body = (b"--two\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nx\r\n"
            b"--two\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.txt\"\r\n\r\ny\r\n"
            b"--two--\r\n")
    r = call("POST", "/v1/files", token=ta, raw=body, headers={"Content-Type": ct})
    check("malformed multipart (two parts) -> 400", is_problem(r, 400), (r.status, r.body[:200]))
    r = call("POST", "/v1/files", token=ta, raw=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})
    check("multipart without boundary -> 400", is_problem(r, 400), (r.status, r.body[:200]))
    check("refused uploads charged nothing", credits(ta) == before, (before, credits(ta)))
    check("refused uploads stored nothing",
          sorted(k for k in s3_keys("files/%s/" % ua)) ==
          sorted("files/%s/%s" % (ua, f) for f in (fa.get("id"), fb.get("id"), r1.json()["id"])),
          s3_keys("files/%s/" % ua))

    # exactly the limit is accepted (fresh user)
    tl, ul = user()
    big = b"b" * MAX
    r = upload_raw(tl, big, "text/plain", name="limit.txt")
    check("upload of exactly the limit -> 201", r.status == 201, (r.status, r.body[:200]))
    if r.status == 201:
        g = call("GET", "/v1/files/%s/content" % r.json()["id"], token=tl)
        check("limit-sized content round trip", g.status == 200 and
              hashlib.sha256(g.body).hexdigest() == hashlib.sha256(big).hexdigest(), (g.status, len(g.body)))

    # ------------------------------------------------------------ hostile names
    name_users = []
    cases = [
        ("../../x", {"name": "..%2F..%2Fx"}, "x"),
        ("%2F", {"qname": "a/b.txt"}, "b.txt"),            # sent as ?name=a%2Fb.txt
        ("NUL", {"name": "a%00b.txt"}, "ab.txt"),
        ("CRLF", {"name": "a%0D%0ASet-Cookie%3A%20x%3D1.txt"}, "aSet-Cookie: x=1.txt"),
        ("very long", {"name": "a" * 900 + ".txt"}, "a" * 255),
        ("unicode", {"name": urllib.request.quote("\u65e5\u672c\u8a9e r\u00e9sum\u00e9.txt")},
         "\u65e5\u672c\u8a9e r\u00e9sum\u00e9.txt"),
    ]
    for label, kw, expect in cases:
        tn, un = user()
        name_users.append(un)
        r = upload_raw(tn, b"name test " + label.encode() + b"\n", "text/plain", **kw)
        j = r.json() if r.status == 201 else {}
        nm = j.get("name", "")
        ok = r.status == 201 and "/" not in nm and "\\" not in nm and "\x00" not in nm \
            and "\r" not in nm and "\n" not in nm and len(nm.encode()) <= 255
        if expect is not None:
            ok = ok and nm == expect
        check("name %s: sanitised (%r)" % (label, nm[:40]), ok, (r.status, r.body[:200]))
        if r.status == 201:
            g = call("GET", "/v1/files/%s/content" % j["id"], token=tn)
            hdrs = str(g.headers)
            check("name %s: no header injection on download" % label,
                  g.status == 200 and g.headers.get("Set-Cookie") is None
                  and all("\r" not in v and "\n" not in v for v in g.headers.values())
                  and g.headers.get("Content-Disposition", "").startswith("attachment;"), hdrs[:400])
    # a long unicode name in a multipart filename: cut to 255 bytes on a character boundary
    r = upload_mp(tn, b"long unicode\n", filename="\u00e9" * 400 + ".txt", ctype="text/plain")
    nm = (r.json() or {}).get("name", "") if r.status == 201 else ""
    check("long unicode multipart name cut to whole characters <= 255 bytes",
          r.status == 201 and nm == "\u00e9" * 127, (r.status, len(nm.encode())))
    keys = [k for u in name_users for k in s3_keys("files/%s/" % u)]
    check("hostile names never reach the object keys",
          len(keys) == 7 and all(re.match(r"^files/(%s)/[0-9a-f-]{36}$" % "|".join(name_users), k)
                                 for k in keys), keys)
    r = upload_raw(tn, b"x", "text/plain", name="bad%zz")
    check("malformed percent-encoding in X-File-Name -> 400", is_problem(r, 400), (r.status, r.body[:200]))

    # ------------------------------------------------------------ ownership
    tb, ub = user()
    bal_a, bal_b = credits(ta), credits(tb)
    for label, method, path in (("GET", "GET", "/v1/files/%s"), ("content", "GET", "/v1/files/%s/content"),
                                ("DELETE", "DELETE", "/v1/files/%s")):
        r = call(method, path % fa.get("id"), token=tb)
        check("another user's file: %s -> 404" % label, is_problem(r, 404), (r.status, r.body[:200]))
    r = call("GET", "/v1/files/%s" % uuid.uuid4(), token=tb)
    missing = r.body
    r = call("GET", "/v1/files/%s" % fa.get("id"), token=tb)
    check("foreign and missing file answer the same body", r.body == missing, (r.body, missing))
    check("foreign file access changed no balance", credits(ta) == bal_a and credits(tb) == bal_b,
          (credits(ta), credits(tb)))
    check("foreign file still there", call("GET", "/v1/files/%s" % fa.get("id"), token=ta).status == 200)

    # ------------------------------------------------------------ delete
    r = call("DELETE", "/v1/files/%s" % fb.get("id"), token=ta)
    check("DELETE own file -> 200 {deleted:true}", r.status == 200 and (r.json() or {}).get("deleted") is True,
          (r.status, r.body[:200]))
    check("deleted file -> 404 (metadata, content)",
          call("GET", "/v1/files/%s" % fb.get("id"), token=ta).status == 404
          and call("GET", "/v1/files/%s/content" % fb.get("id"), token=ta).status == 404)
    check("deleted object removed from the store", "files/%s/%s" % (ua, fb.get("id")) not in s3_keys("files/%s/" % ua))
    check("delete is free", credits(ta) == bal_a, credits(ta))

    # ------------------------------------------------------------ reports
    tr, ur = user()
    r = upload_raw(tr, b"=HYPERLINK(\"http://evil\")\n", "text/plain", qname="=cmd|calc.txt")
    check("report user upload", r.status == 201, (r.status, r.body[:200]))
    ledger_before = call("GET", "/v1/credits/ledger?limit=100", token=tr).json()["items"]
    r = call("POST", "/v1/reports", {"kind": "usage", "format": "json"}, token=tr)
    check("usage json report -> 201", r.status == 201, (r.status, r.body[:300]))
    rep = r.json() if r.status == 201 else {}
    r = call("POST", "/v1/reports", {"kind": "files", "format": "csv"}, token=tr)
    check("files csv report -> 201", r.status == 201, (r.status, r.body[:300]))
    rep_csv = r.json() if r.status == 201 else {}
    check("two reports cost 10 (30 left)", credits(tr) == (30, 30), credits(tr))

    r = call("GET", "/v1/reports/%s/download" % rep.get("id"), token=tr)
    check("download -> 200 attachment", r.status == 200
          and r.headers.get("Content-Disposition", "").startswith("attachment;"), (r.status, r.body[:200]))
    check("download bytes match the stored sha256",
          hashlib.sha256(r.body).hexdigest() == rep.get("sha256") and len(r.body) == rep.get("size_bytes"))
    check("download costs 2", credits(tr) == (28, 28), credits(tr))
    doc = json.loads(r.body) if r.status == 200 else {}
    # the ledger at generation time = the ledger before the request plus the
    # report's own hold (credit-svc lists reservations as delta-0 entries)
    before_ids = {e.get("id") for e in ledger_before}
    own = [e for e in doc.get("entries", []) if e.get("id") not in before_ids]
    got = [(e.get("id"), e.get("delta"), e.get("action")) for e in doc.get("entries", [])
           if e.get("id") in before_ids]
    want = [(e.get("id"), e.get("delta"), e.get("action")) for e in ledger_before]
    check("usage report entries equal the ledger at generation time", got == want
          and all(e.get("kind") == "reservation" and e.get("delta") == 0
                  and e.get("action") == "report.generate" for e in own) and len(own) <= 1,
          (got, want, own))
    check("usage report totals match the ledger",
          doc.get("totals", {}).get("debited") == sum(-e["delta"] for e in ledger_before if e["delta"] < 0)
          and doc.get("totals", {}).get("credited") == sum(e["delta"] for e in ledger_before if e["delta"] > 0),
          doc.get("totals"))
    r = call("GET", "/v1/reports/%s/download" % rep_csv.get("id"), token=tr)
    rows = list(csv.reader(io.StringIO(r.body.decode()))) if r.status == 200 else []
    check("files csv: header + one row, formula cells guarded",
          len(rows) == 2 and rows[0][:2] == ["id", "name"] and rows[1][1] == "'=cmd|calc.txt",
          rows)
    check("second download charged again (2 per request)", credits(tr) == (26, 26), credits(tr))

    # chain-confirmed debits in the usage report (contract C: credit-svc /internal/debits)
    admin = client.admin_token()
    client.wait_confirmed(admin, ur, 5, 60)
    r = call("POST", "/v1/reports", {"kind": "usage", "format": "csv"}, token=tr)
    rep2 = r.json() if r.status == 201 else {}
    r = call("GET", "/v1/reports/%s/download" % rep2.get("id"), token=tr)
    rows = list(csv.DictReader(io.StringIO(r.body.decode()))) if r.status == 200 else []
    audit = {a.get("debit_id"): a for a in (client.audit_rows(admin, ur) or [])}
    debit_rows = [x for x in rows if x.get("debit_id")]
    check("usage csv lists the debits with their chain status and tx hash (needs /internal/debits)",
          len(debit_rows) >= 5 and all(x["chain_status"] == "confirmed" and x["tx_hash"]
                                       and x["tx_hash"] == (audit.get(x["debit_id"]) or {}).get("tx_hash")
                                       for x in debit_rows[1:]), debit_rows[:3])
    rows = client.audit_rows(admin, ur) or []
    dl = [a for a in rows if a.get("action") == "report.download"]
    check("each paid download has one audit row of cost 2",
          len(dl) == 3 and all(a.get("cost") == 2 for a in dl), [(a.get("action"), a.get("cost")) for a in rows])

    # another user's report: 404, nobody charged
    bal_r, bal_b = credits(tr), credits(tb)
    for label, path in (("metadata", "/v1/reports/%s"), ("download", "/v1/reports/%s/download")):
        r = call("GET", path % rep.get("id"), token=tb)
        check("another user's report %s -> 404" % label, is_problem(r, 404), (r.status, r.body[:200]))
    check("foreign report access charged no one", credits(tr) == bal_r and credits(tb) == bal_b,
          (credits(tr), credits(tb)))

    # ------------------------------------------------------------ service metadata, defence in depth
    # Direct calls to storage-svc with a signed identity: storage-svc re-checks the scope itself.
    bal = credits(ta)
    p = "/v1/service/metadata/%s" % fa.get("id")
    r = direct("GET", p, ua, "user", "write")
    check("storage-svc refuses a write-scope key identity (403, no charge)",
          is_problem(r, 403) and credits(ta) == bal, (r.status, r.body[:200]))
    r = direct("GET", p, ua, "user", "full")
    check("storage-svc refuses a session identity on the service API (403, no charge)",
          is_problem(r, 403) and credits(ta) == bal, (r.status, r.body[:200]))
    r = direct("GET", p, ua, "service", "read")
    check("storage-svc: read-scope identity gets the metadata and pays 3",
          r.status == 200 and r.json().get("sha256") == fa.get("sha256")
          and credits(ta) == (bal[0] - 3, bal[1] - 3), (r.status, r.body[:200], credits(ta)))
    bal = credits(ta)
    r = direct("GET", "/v1/service/metadata/%s" % fa.get("id"), ub, "service", "read")
    check("storage-svc: read key of another owner -> 404, no charge to anyone",
          is_problem(r, 404) and credits(ta) == bal and credits(tb) == bal_b, (r.status, r.body[:200]))
    r = call("GET", p, token=ta)
    check("gateway: a session token on the service API is refused (no charge)",
          r.status in (401, 403) and credits(ta) == bal, (r.status, r.body[:200]))

    # Through the gateway with real API keys (AUTH's key issuance + GW's key auth).
    def issue(scope):
        rr = call("POST", "/v1/admin/api-keys", {"owner_id": ua, "scope": scope, "name": "e2e-" + scope},
                  token=admin)
        return rr.json().get("key") if rr.status == 201 and rr.json() else None
    kr, kw = issue("read"), issue("write")
    check("admin issues read and write API keys (needs AUTH's /v1/admin/api-keys)",
          kr is not None and kw is not None)
    bal = credits(ta)
    r = call("GET", p, headers={"Authorization": "ApiKey %s" % kr}) if kr else None
    check("read key: metadata fetch -> 200 and charges 3 (needs GW key auth)",
          r is not None and r.status == 200 and r.json().get("id") == fa.get("id")
          and credits(ta) == (bal[0] - 3, bal[1] - 3), (r and r.status, r and r.body[:200], credits(ta)))
    bal = credits(ta)
    r = call("GET", p, headers={"X-API-Key": kw}) if kw else None
    check("write key: metadata fetch refused (403), no charge",
          r is not None and r.status == 403 and credits(ta) == bal, (r and r.status, credits(ta)))
    r = call("GET", "/v1/service/metadata/%s" % uuid.uuid4(), headers={"Authorization": "ApiKey %s" % kr}) \
        if kr else None
    check("read key: unknown file -> 404, no charge",
          r is not None and r.status == 404 and credits(ta) == bal, (r and r.status, credits(ta)))

    # ------------------------------------------------------------ streaming (bounded memory, cut bodies)
    streaming()
    downloads()

    # ------------------------------------------------------------ storage down
    ts_, us_ = user()
    r = upload_raw(ts_, b"before the outage\n", "text/plain", name="pre.txt")
    pre = r.json() if r.status == 201 else {}
    r = call("POST", "/v1/reports", {"kind": "files", "format": "json"}, token=ts_)
    srep = r.json() if r.status == 201 else {}
    bal = credits(ts_)
    pid = pid_of("s3rver")
    check("s3rver pid known", pid is not None)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not s3_up():
            break
        time.sleep(0.1)
    try:
        r = upload_raw(ts_, b"during the outage\n", "text/plain", name="down.txt")
        check("store down: upload -> 503", is_problem(r, 503), (r.status, r.body[:200]))
        check("store down: upload charged nothing, reservation released", credits(ts_) == bal,
              (bal, credits(ts_)))
        r = call("POST", "/v1/reports", {"kind": "usage", "format": "json"}, token=ts_)
        check("store down: report -> 503, nothing charged", is_problem(r, 503) and credits(ts_) == bal,
              (r.status, credits(ts_)))
        r = call("GET", "/v1/reports/%s/download" % srep.get("id"), token=ts_)
        check("store down: download -> 503, reservation released", is_problem(r, 503) and credits(ts_) == bal,
              (r.status, credits(ts_)))
        r = call("GET", "/v1/files/%s/content" % pre.get("id"), token=ts_)
        check("store down: content -> 503", is_problem(r, 503), (r.status, r.body[:200]))
        r = call("GET", "/v1/files", token=ts_)
        check("store down: listing still works", r.status == 200 and len(r.json()["items"]) == 1)
    finally:
        env = dict(os.environ, STATE_DIR=STATE, SERVICES_SKIP_BUILD="1")
        out = subprocess.run(["bash", os.path.join(REPO, "services", "up")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        check("services/up restarts s3rver", out.returncode == 0 and s3_up(), out.stdout[-500:])
    r = upload_raw(ts_, b"after the outage\n", "text/plain", name="post.txt")
    check("store back: upload works and costs 10", r.status == 201 and credits(ts_) == (bal[0] - 10, bal[1] - 10),
          (r.status, credits(ts_)))


if __name__ == "__main__":
    client.run(main)
