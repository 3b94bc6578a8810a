#!/usr/bin/python3
"""Webhook benchmarks (SPEC §8, issue 6) — figures, not tests.

1. webhook -> visible: change an employee in the sandbox, send its data-changed
   webhook (flush: one signed POST, answered before the fetch), then read the file
   (as `cat` does: open, read, close) until it shows the change. Reported from the
   start of the POST, and from its 200.
   Each delta fetch re-reads what changed since (watermark - --overlap, 60 s by
   default), so in a run of many changes it grows with the changes of the last
   minute; --kombofs-arg=--overlap=1s isolates the receiver's own share.
2. reply time during a burst: 200 signed data-changed POSTs, back to back over one
   keep-alive connection, and the same 200 over 8 parallel connections, while the
   fetches they trigger run; plus how many employee fetches the burst caused.

    ninja -C build && /usr/bin/python3 tests/bench/webhook_latency.py [--employees N] [--changes N]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "sandbox"))

from kombo_sandbox import Sandbox  # noqa: E402
from sandbox_webhooks import sign  # noqa: E402

KOMBOFS = os.environ.get("KOMBOFS_BIN") or os.path.join(ROOT, "build", "kombofs")
INTEGRATION = "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"
API_KEY = "sandbox-key"
SECRET = "bench-webhook-secret"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == path for line in f)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def summary(name, seconds):
    ms = [s * 1000 for s in seconds]
    print(f"  {name:<34} n={len(ms):<4} median {statistics.median(ms):7.2f} ms   "
          f"p90 {pct(ms, 90):7.2f}   p99 {pct(ms, 99):7.2f}   worst {max(ms):7.2f} ms")


class Daemon:
    def __init__(self, sb, tmp, port, extra=()):
        self.mnt = os.path.join(tmp, "mnt")
        os.makedirs(self.mnt)
        key, secret = os.path.join(tmp, "key"), os.path.join(tmp, "secret")
        for path, text in ((key, API_KEY), (secret, SECRET)):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            os.chmod(path, 0o600)
        self.log = open(os.path.join(tmp, "kombofs.log"), "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [KOMBOFS, INTEGRATION, self.mnt, "-f", f"--cache={tmp}/cache.db", f"--api-key-file={key}",
             f"--api-url={sb.url}", f"--webhook-listen=127.0.0.1:{port}",
             f"--webhook-secret-file={secret}", "--poll-interval=0", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"kombofs did not mount (see {self.log.name})")
            time.sleep(0.05)
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.01)

    def stop(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False, stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def cat(path):
    with open(path, "rb") as f:
        return f.read()


def api_time(sb, conn):
    """Time of the API call the daemon's last employees fetch made, repeated here
    with the sandbox's page caches emptied (as a mutation leaves them): the
    sandbox's own share of the latency."""
    last = [r for r in sb.requests() if r["path"].endswith("/hris/employees")][-1]
    with sb._lock:                  # bench only: the sandbox has no public call for this
        sb._pages.clear()
        sb._lists.clear()
    url = last["path"] + "?" + urllib.parse.urlencode(last["query"])
    t = time.monotonic()
    conn.request("GET", url, headers={"Authorization": "Bearer " + API_KEY,
                                      "X-Integration-Id": INTEGRATION})
    resp = conn.getresponse()
    resp.read()
    return time.monotonic() - t


def fetch_done(d):
    with open(os.path.join(d.mnt, ".status"), encoding="utf-8") as f:
        return json.load(f)["endpoints"]["employees"]["last_delta"].get("result") != "running"


def latency(sb, d, changes, settle):
    """settle=False: the next change right after the last became visible (its
    fetch may still be writing its watermark); settle=True: after that fetch has
    finished, as for isolated webhooks."""
    emps = sb.visible("employees")
    from_post, from_reply, replies, api = [], [], [], []
    conn = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=30)
    for i in range(changes):
        eid = emps[i % len(emps)]["id"]
        title = f"Bench title {i} {time.monotonic_ns()}"
        needle = json.dumps(title).encode()
        path = os.path.join(d.mnt, "employees", eid + ".json")
        sb.update_employee(eid, job_title=title)
        t0 = time.monotonic()
        entry = sb.flush_webhooks()           # the signed POST; returns on its 200
        t1 = time.monotonic()
        assert entry["status"] == 200, entry
        while needle not in cat(path):
            if time.monotonic() - t0 > 10:
                raise SystemExit(f"change {i} not visible after 10 s")
        t2 = time.monotonic()
        from_post.append(t2 - t0)
        from_reply.append(t2 - t1)
        replies.append(t1 - t0)
        if settle:
            while not fetch_done(d):
                time.sleep(0.001)
            api.append(api_time(sb, conn))
    conn.close()
    print(f"webhook -> visible to cat, {changes} changes, "
          f"{'each after the previous fetch finished' if settle else 'back to back'}:")
    summary("from the start of the POST", from_post)
    summary("from the 200", from_reply)
    summary("the POST itself (reply time)", replies)
    if api:
        summary("the sandbox answering that fetch", api)


def burst(sb, port, n=200, clients=1):
    fetched = sb.stats()["by_endpoint"].get("employees", 0)
    times, lock = [], threading.Lock()
    emp = sb.visible("employees")[0]
    sb.update_employee(emp["id"], job_title=f"Burst {time.monotonic_ns()}")

    def client(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        for _ in range(count):
            body = json.dumps({"id": "bench" + os.urandom(10).hex(), "type": "data-changed", "data": {
                "integration_id": INTEGRATION, "integration_tool": "personio",
                "integration_category": "HRIS", "changed_models": [{"name": "hris_employees"}]}}).encode()
            t = time.monotonic()
            conn.request("POST", "/webhook", body, {"Content-Type": "application/json",
                                                     "X-Kombo-Signature": sign(SECRET, body)})
            resp = conn.getresponse()
            resp.read()
            mine.append(time.monotonic() - t)
            assert resp.status == 200, resp.status
        conn.close()
        with lock:
            times.extend(mine)

    t = time.monotonic()
    threads = [threading.Thread(target=client, args=(n // clients,)) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - t
    time.sleep(1.0)   # let the last fetch finish before counting
    fetches = sb.stats()["by_endpoint"].get("employees", 0) - fetched
    print(f"burst of {n} signed POSTs over {clients} keep-alive connection(s): {wall * 1000:.0f} ms, "
          f"{n / wall:.0f}/s, {fetches} employee fetches caused")
    summary("reply time", times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--employees", type=int, default=1000)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--slow", type=float, default=0.0, help="sandbox API delay per request (s)")
    ap.add_argument("--kombofs-arg", action="append", default=[], metavar="ARG",
                    help="extra kombofs argument, e.g. --kombofs-arg=--overlap=1s (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (log, cache)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kombofs-bench-")
    port = free_port()
    sb = Sandbox(employees=args.employees, api_key=API_KEY, integration_id=INTEGRATION,
                 webhook_url=f"http://127.0.0.1:{port}/webhook", webhook_secret=SECRET,
                 webhook_delay=3600)
    sb.start()
    d = None
    try:
        t = time.monotonic()
        d = Daemon(sb, tmp, port, args.kombofs_arg)
        print(f"sandbox with {args.employees} employees; mounted in {time.monotonic() - t:.1f} s; "
              f"kombofs args: {' '.join(args.kombofs_arg) or '(defaults)'}")
        if args.slow:
            sb.set_faults(slow=args.slow)
        latency(sb, d, args.changes, settle=False)
        latency(sb, d, args.changes, settle=True)
        burst(sb, port, clients=1)
        burst(sb, port, clients=8)
    finally:
        if d:
            d.stop()
        sb.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
