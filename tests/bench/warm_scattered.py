#!/usr/bin/python3
"""Warm `grep -r` of the whole tree after the pages of every K-th file were dropped
(posix_fadvise DONTNEED through the mount, the listings kept): what a page cache under
reclaim leaves a "warm" pass. kombofs with its read-ahead (`on`) against
`--no-read-ahead` (`off`), the two alternating, each on a fresh `--offline` mount warmed
by two passes; R rounds, medians, the requests each timed pass sent and the files pushed
ahead. Root; run from the source tree.

    /usr/bin/python3 tests/bench/warm_scattered.py N R K KOMBOFS

A figure script, not a test: it shows whether pushing ahead pays when the files a warm
reader misses are scattered over the tree (docs/performance.md)."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
sys.path.insert(0, "tests/integration")
from conftest import API_KEY  # noqa: E402
sys.path.insert(1, "tests/sandbox")
from kombo_sandbox import Sandbox  # noqa: E402
import figlib  # noqa: E402

N, REPS, K = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if K < 1:
    raise SystemExit("K is at least 1")
T = tempfile.mkdtemp(prefix="kombofs-ws.")
BIN, MNT = T + "/kombofs", T + "/mnt"
shutil.copy2(sys.argv[4], BIN)
GREP = "grep -r -F NO-MATCH . >/dev/null; true"
sb = Sandbox(employees=N, api_key=API_KEY, integration_id=figlib.INTEGRATION)


def mount(extra):
    return figlib.mount(BIN, MNT, T + "/c.db", T + "/key", sb.url, T + "/log", extra)


def timed(cmd):
    t = time.monotonic()
    subprocess.run(cmd, shell=True, cwd=MNT)
    return time.monotonic() - t


def drop_every_kth():
    """Drops the pages of every K-th file in listing order; returns how many."""
    n = 0
    for d, dirs, files in os.walk(MNT):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for f in sorted(x for x in files if not x.startswith("."))[::K]:
            fd = os.open(os.path.join(d, f), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
            n += 1
    return n


p = None
try:
    sb.start()
    with open(T + "/key", "w") as f:
        f.write(API_KEY + "\n")
    os.makedirs(MNT)
    p = mount([])
    figlib.wait_full(MNT)
    figlib.umount(p, MNT)
    p = None
    sides = {"on": [], "off": ["--no-read-ahead"]}
    res = {}
    for rep in range(REPS):
        for side in (["on", "off"] if rep % 2 == 0 else ["off", "on"]):
            p = mount(["--offline"] + sides[side])
            timed(GREP)
            timed(GREP)
            n = drop_every_kth()
            c0 = figlib.requests(MNT)
            dt = timed(GREP)
            c1 = figlib.requests(MNT)
            sent = {k: c1[k] - c0.get(k, 0) for k in c1 if c1[k] != c0.get(k, 0)}
            res.setdefault(side, []).append(dt)
            print(rep, side, "%.3f s" % dt, "dropped", n, "requests", sent, flush=True)
            figlib.umount(p, MNT)
            p = None
    for side, v in res.items():
        print("%s: median %.3f s, all %s" % (side, statistics.median(v), " ".join("%.3f" % x for x in v)))
    print("on / off: %.2f" % (statistics.median(res["on"]) / statistics.median(res["off"])))
    print("load", open("/proc/loadavg").read().strip(), "kernel", os.uname().release)
finally:
    subprocess.run(["fusermount3", "-u", MNT], stderr=subprocess.DEVNULL)
    if p:
        p.wait()
    sb.stop()
    shutil.rmtree(T, ignore_errors=True)
