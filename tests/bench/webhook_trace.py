#!/usr/bin/python3
"""Webhook -> visible, one event at a time, with the daemon's own -v log (issue 15 §4):
a sandbox of 1,000 employees, kombofs with --webhook-listen and --overlap=1s; C changes,
each 0.4 s after the previous one became visible; prints each POST's reply time and the
time until a reader (os.open, os.read, os.close: the round trips `cat` makes) shows the
change, then their medians. The daemon's log (with -v: the webhook, the API request and
its duration, the end of the fetch, in milliseconds) is printed at the end.

    /usr/bin/python3 tests/bench/webhook_trace.py C [--strace FILE] [--kombofs PATH]

--strace FILE runs the daemon under `strace -f -ttt` of the calls that mark a stage (µs
timestamps of the receive, the durable record, the reply, the API request and answer, the
commit's writes, the kernel notifications and the reader's requests); it slows those
calls, so its latencies are a little above the daemon's.
A figure script, not a test; root, from the source tree after building build/.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(1, os.path.join(ROOT, "tests", "sandbox"))
from conftest import API_KEY, free_port, is_mounted  # noqa: E402
from kombo_sandbox import Sandbox  # noqa: E402

SECRET = "whsec-trace"
INTEGRATION = "personio:8sDjyw1Nqf6Xk2LmPq4Rt7Ua"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("changes", type=int)
    ap.add_argument("--strace")
    ap.add_argument("--kombofs", default=os.path.join(ROOT, "build", "kombofs"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kombofs-trace.")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    port = free_port()
    sb = Sandbox(employees=1000, api_key=API_KEY, integration_id=INTEGRATION,
                 webhook_secret=SECRET, webhook_delay=3600,
                 webhook_url=f"http://127.0.0.1:{port}/webhook")
    sb.start()
    p = None
    try:
        with open(os.path.join(tmp, "key"), "w", encoding="utf-8") as f:
            f.write(API_KEY + "\n")
        cmd = [a.kombofs, INTEGRATION, mnt, "-f", "-v", f"--cache={tmp}/c.db",
               f"--api-key-file={tmp}/key", f"--api-url={sb.url}",
               f"--webhook-listen=127.0.0.1:{port}", "--overlap=1s"]
        if a.strace:
            # only the calls that mark a stage (seccomp: the others run untraced)
            cmd = ["strace", "-f", "-ttt", "--seccomp-bpf", "-e",
                   "trace=accept4,recvfrom,sendto,sendmsg,pwrite64,writev,read,futex",
                   "-o", a.strace] + cmd
        env = dict(os.environ, KOMBO_WEBHOOK_SECRET=SECRET)
        env.pop("MALLOC_PERTURB_", None)
        log = open(os.path.join(tmp, "log"), "w", encoding="utf-8")
        p = subprocess.Popen(cmd, stderr=log, env=env)
        deadline = time.monotonic() + 60
        while not is_mounted(mnt):
            if p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("kombofs did not mount")
            time.sleep(0.05)
        emp = sb.visible("employees")[5]
        path = os.path.join(mnt, "employees", emp["id"] + ".json")

        def read():
            fd = os.open(path, os.O_RDONLY)
            try:
                return os.read(fd, 1 << 20)
            finally:
                os.close(fd)

        read()
        time.sleep(1.5)
        res = []
        for k in range(a.changes):
            title = f"Trace {k}"
            want = json.dumps(title).encode()
            sb.update_employee(emp["id"], job_title=title)
            t0 = time.monotonic()
            w0 = time.time()
            sb.flush_webhooks()
            t1 = time.monotonic()
            while want not in read():
                pass
            t2 = time.monotonic()
            res.append((w0, (t1 - t0) * 1000, (t2 - t0) * 1000))
            time.sleep(0.4)
        for w0, post, vis in res:
            print(f"{w0:.6f} POST {post:.2f} ms visible {vis:.2f} ms")
        tail = res[1:] or res        # the first one pays for a cold connection
        vis = sorted(r[2] for r in tail)
        print(f"of {len(tail)} (the first left out): POST p50 "
              f"{statistics.median(r[1] for r in tail):.2f} ms; visible p50 "
              f"{statistics.median(vis):.2f} ms, p90 {vis[max(0, -(-len(vis) * 9 // 10) - 1)]:.2f} ms, "
              f"worst {vis[-1]:.2f} ms; load {open('/proc/loadavg').read().split()[0]}")
    finally:
        if p:
            subprocess.run(["fusermount3", "-u", mnt], check=False)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        sb.stop()
        with open(os.path.join(tmp, "log"), encoding="utf-8", errors="replace") as f:
            sys.stderr.write(f.read())
        if not is_mounted(mnt):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
