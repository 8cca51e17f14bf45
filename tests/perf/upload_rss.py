"""Upload time and daemon peak RSS for 10 MiB uploads (issue 5, streaming).

Usage (stack env sourced): python3 tests/perf/upload_rss.py [concurrency] [MiB]
Resets VmHWM of gateway and storage-svc (/proc/<pid>/clear_refs, needs the
same user or root), runs one upload alone (timed), then `concurrency`
uploads at once, and prints the peak RSS growth of both daemons."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import client  # noqa: E402

STATE = os.environ.get("STACK_STATE_DIR", os.environ.get("STATE_DIR", ""))


def pid_of(name):
    with open(os.path.join(STATE, "pids", name + ".pid")) as f:
        return int(f.read().strip())


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_hwm(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def upload(tok, data, out, i):
    t0 = time.monotonic()
    r = client.call("POST", "/v1/files", token=tok, raw=data,
                    headers={"Content-Type": "text/plain", "X-File-Name": "big%d.txt" % i})
    out[i] = (r.status, time.monotonic() - t0)


def main():
    conc = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    mib = float(sys.argv[2]) if len(sys.argv) > 2 else 10
    size = min(int(mib * 1024 * 1024), int(os.environ.get("STORAGE_MAX_UPLOAD", "10485760")))
    data = b"0123456789abcde\n" * (size // 16)
    toks = []
    for _ in range(conc + 1):  # 50 credits each: 3 singles + 1 concurrent upload fit
        _, _, r = client.signup()
        toks.append(r.json()["access_token"])
    pids = {n: pid_of(n) for n in ("gateway", "storage-svc")}
    out = {}
    singles = []
    for _ in range(3):
        upload(toks[0], data, out, 0)
        singles.append(out[0][1])
    singles.sort()
    print("single %d-byte upload (3 runs, one user): status %d, median %.3f s (min %.3f, max %.3f)"
          % (len(data), out[0][0], singles[1], singles[0], singles[2]))
    base = {n: status_kb(p, "VmRSS") for n, p in pids.items()}
    ok = all(reset_hwm(p) for p in pids.values())
    ths = [threading.Thread(target=upload, args=(toks[i + 1], data, out, i + 1)) for i in range(conc)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.monotonic() - t0
    print("%d concurrent uploads: statuses %s, wall %.3f s" %
          (conc, sorted(out[i + 1][0] for i in range(conc)), wall))
    for n, p in pids.items():
        hwm = status_kb(p, "VmHWM")
        print("%-12s RSS before %7d KiB, peak during %7d KiB (growth %7d KiB)%s" %
              (n, base[n], hwm, hwm - base[n], "" if ok else " [HWM not reset]"))


if __name__ == "__main__":
    main()
