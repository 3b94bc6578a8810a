#!/usr/bin/python3
"""Cold and warm `grep -r` over the whole tree (all nine endpoints and changes/), for
several kombofs builds against a tmpfs copy, R repetitions alternating, medians. Each
build mirrors the sandbox into a cache of its own (its schema), then serves it --offline;
cold = a fresh mount; warm = the third pass of the same mount (the second fills what the
first pushed but the kernel dropped). READs, GETATTRs and the read-ahead pusher's counts
come from .status. Root; run from the source tree.

    /usr/bin/python3 tests/bench/cold_scan.py [--pretouch MB] N R LABEL=BINARY [LABEL=BINARY ...]

--pretouch MB: before each cold pass also run one with MB of memory written to a tmpfs
file and deleted just before it ("cold, pre-touched"). On a virtual machine whose host
takes freed guest memory back (virtio-balloon free page reporting), the first write to a
page the host no longer backs costs a host fault; the page cache a cold pass fills pays
that, a tmpfs copy made earlier does not. The pre-touched pass shows the pass without it.

A figure script, not a test: it separates what a build costs from what the kernel costs
(issue 15 §5; the full table is tests/bench/run.sh)."""
import sys, os, subprocess, time, statistics, tempfile, shutil
sys.path.insert(0, "tests/integration")
from conftest import API_KEY
sys.path.insert(1, "tests/sandbox")
from kombo_sandbox import Sandbox
import figlib

args = sys.argv[1:]
PRETOUCH = 0
if args[:1] == ["--pretouch"]:
    PRETOUCH = int(args[1]); args = args[2:]
N = int(args[0]); REPS = int(args[1])
BUILDS = [a.split("=", 1) for a in args[2:]]
INTEGRATION = figlib.INTEGRATION
T = tempfile.mkdtemp(prefix="kombofs-cs.")
sb = Sandbox(employees=N, api_key=API_KEY, integration_id=INTEGRATION)
bins = {}


def mount(label, extra):
    return figlib.mount(bins[label], T + "/mnt", "%s/%s.db" % (T, label), T + "/key", sb.url,
                        T + "/log." + label, extra)


def umount(p):
    figlib.umount(p, T + "/mnt")


def status():
    return figlib.status(T + "/mnt")


try:
    sb.start()
    open(T + "/key", "w").write(API_KEY + "\n")
    os.makedirs(T + "/mnt"); os.makedirs(T + "/tmpfs")
    for label, path in BUILDS:
        bins[label] = T + "/kombofs." + label
        shutil.copy2(path, bins[label])
    for label, _ in BUILDS:             # each build's own mirror, a full fetch
        t = time.monotonic(); p = mount(label, [])
        figlib.wait_full(T + "/mnt")
        print("%s mirrored in %.1f s" % (label, time.monotonic() - t), flush=True)
        umount(p)
    subprocess.run("mount -t tmpfs tmpfs " + T + "/tmpfs", shell=True, check=True)
    p = mount(BUILDS[0][0], ["--offline"])
    subprocess.run("cd %s/mnt && tar cf - $(ls) | tar xf - -C %s/tmpfs" % (T, T), shell=True, check=True)
    umount(p)
    files = int(subprocess.run("find %s/tmpfs -type f | wc -l" % T, shell=True, capture_output=True,
                               text=True).stdout)
    print("tree: %d files" % files, flush=True)
    cmd = "grep -r -F NO-MATCH . >/dev/null; true"
    res = {}

    def timed(d):
        t = time.monotonic(); subprocess.run(cmd, shell=True, cwd=d); return time.monotonic() - t

    os.makedirs(T + "/fill")
    subprocess.run("mount -t tmpfs tmpfs " + T + "/fill", shell=True, check=True)

    def pretouch():
        with open(T + "/fill/f", "wb") as f:
            block = b"\0" * (1 << 20)
            for _ in range(PRETOUCH):
                f.write(block)
        os.unlink(T + "/fill/f")

    for rep in range(REPS):
        order = BUILDS[rep % len(BUILDS):] + BUILDS[:rep % len(BUILDS)]
        for label, _ in order:
            if PRETOUCH:
                p = mount(label, ["--offline"])
                time.sleep(1)
                pretouch()
                s0 = status()
                dt = timed(T + "/mnt")
                s1 = status()
                umount(p)
                res.setdefault((label, "cold, pre-touched"), []).append(dt)
                res.setdefault((label, "cold, pre-touched read"), []).append(
                    s1["requests"]["read"] - s0["requests"]["read"])
                pretouch()
                res.setdefault((label, "tmpfs, pre-touched"), []).append(timed(T + "/tmpfs"))
            p = mount(label, ["--offline"])
            time.sleep(1)
            s0 = status()
            dt = timed(T + "/mnt")
            s1 = status()
            timed(T + "/mnt")
            s2 = status()
            wt = timed(T + "/mnt")
            s3 = status()
            umount(p)
            tc = timed(T + "/tmpfs")
            res.setdefault((label, "cold"), []).append(dt)
            res.setdefault((label, "warm"), []).append(wt)
            res.setdefault((label, "tmpfs"), []).append(tc)
            res.setdefault((label, "cold ÷ tmpfs"), []).append(dt / tc)
            res.setdefault((label, "warm ÷ tmpfs"), []).append(wt / tc)
            for k in ("read", "getattr"):
                res.setdefault((label, "cold " + k), []).append(s1["requests"][k] - s0["requests"][k])
                res.setdefault((label, "warm " + k), []).append(s3["requests"][k] - s2["requests"][k])
            ra0, ra1 = s0.get("read_ahead") or {}, s1.get("read_ahead") or {}
            for k in ("files", "batches", "not_held"):
                if k in ra1:
                    res.setdefault((label, "cold pushed " + k), []).append(ra1[k] - ra0.get(k, 0))
            print(rep, label, "cold %.2f warm %.2f tmpfs %.2f reads %d" %
                  (dt, wt, tc, s1["requests"]["read"] - s0["requests"]["read"]), flush=True)
    for k, v in sorted(res.items()):
        print(k, "median %.4g" % statistics.median(v), "all", ["%.4g" % x for x in v])
    print("load", open("/proc/loadavg").read().strip(), "kernel", os.uname().release)
finally:
    subprocess.run(["fusermount3", "-u", T + "/mnt"], stderr=subprocess.DEVNULL)
    subprocess.run(["umount", T + "/tmpfs"], stderr=subprocess.DEVNULL)
    subprocess.run(["umount", T + "/fill"], stderr=subprocess.DEVNULL)
    sb.stop()
    shutil.rmtree(T, ignore_errors=True)
