#!/usr/bin/python3
"""Six `wc -l` at once of the six largest JSONL exports, on a fresh --offline mount, for
several kombofs builds alternating, R rounds each, medians: more export versions read at
once than a cache has pins (store.c). One mirror of all nine endpoints, made by the first
build, serves every round. Root; run from the source tree.

    /usr/bin/python3 tests/bench/export_parallel.py N R LABEL=BINARY [...]

A figure script, not a test (the full table is tests/bench/run.sh)."""
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

N, REPS = int(sys.argv[1]), int(sys.argv[2])
BUILDS = [a.split("=", 1) for a in sys.argv[3:]]
DIRS = ["employees", "employments", "groups", "absences", "absence-types", "time-off-balances",
        "timesheets", "legal-entities", "locations"]
T = tempfile.mkdtemp(prefix="kombofs-xp.")
sb = Sandbox(employees=N, api_key=API_KEY, integration_id=figlib.INTEGRATION)


def mount(label, extra):
    return figlib.mount(T + "/kombofs." + label, T + "/mnt", T + "/cache.db", T + "/key",
                        sb.url, T + "/log." + label, extra)


try:
    sb.start()
    open(T + "/key", "w").write(API_KEY + "\n")
    os.makedirs(T + "/mnt")
    for label, path in BUILDS:
        shutil.copy2(path, T + "/kombofs." + label)
    p = mount(BUILDS[0][0], [])
    figlib.wait_full(T + "/mnt")
    files = [T + "/mnt/exports/%s.jsonl" % d for _, d in
             sorted((os.path.getsize(T + "/mnt/exports/%s.jsonl" % d), d) for d in DIRS)[-6:]]
    print("exports: %d bytes in %s" % (sum(os.path.getsize(f) for f in files),
                                       ", ".join(os.path.basename(f) for f in files)), flush=True)
    figlib.umount(p, T + "/mnt")
    res = {}
    for rep in range(REPS):
        order = BUILDS[rep % len(BUILDS):] + BUILDS[:rep % len(BUILDS)]
        for label, _ in order:
            p = mount(label, ["--offline"])
            time.sleep(1)
            reads = figlib.status(T + "/mnt")["requests"]["read"]
            t = time.monotonic()
            procs = [subprocess.Popen(["wc", "-l", f], stdout=subprocess.DEVNULL) for f in files]
            if any(q.wait() != 0 for q in procs):
                raise SystemExit("%s: wc -l failed" % label)
            dt = time.monotonic() - t
            reads = figlib.status(T + "/mnt")["requests"]["read"] - reads
            figlib.umount(p, T + "/mnt")
            res.setdefault(label, []).append(dt)
            print("round %d: %s %.3f s, %d READs" % (rep + 1, label, dt, reads), flush=True)
    for label, _ in BUILDS:
        v = res[label]
        print("%s: median %.3f s, all %s" % (label, statistics.median(v),
                                             " ".join("%.3f" % x for x in v)))
    print("load", open("/proc/loadavg").read().strip())
finally:
    subprocess.run("fusermount3 -u %s/mnt 2>/dev/null" % T, shell=True)
    sb.stop()
    shutil.rmtree(T, ignore_errors=True)
