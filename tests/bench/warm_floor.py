#!/usr/bin/python3
"""Warm `cat` of every file and warm `grep -r` of the whole tree (all nine endpoints and
changes/), kombofs against the FUSE floor (tests/bench/floor.c) serving a tmpfs copy
against that tmpfs copy, R repetitions, medians, the FUSE requests each timed pass sent,
and what this kernel's DAMON paged out during it. Before a FUSE side's timed pass the
clean page cache is dropped and two untimed passes read the files in again, as
tests/bench/run.sh does. Root; run from the source tree.

    /usr/bin/python3 tests/bench/warm_floor.py N R KOMBOFS FLOOR [cat|grep]

With a fifth argument, only that row (a warm `cat` pass of 100,000 employees takes a
minute; `grep -r` a fifth of that).

A figure script, not a test: it shows whether a warm row's "÷ floor" is kombofs's or the
page cache's (evicted pages and readdir caches make requests on either side)."""
import sys, os, subprocess, time, statistics, tempfile, shutil, signal
sys.path.insert(0, "tests/integration")
from conftest import API_KEY, damon_paged_out, is_mounted
sys.path.insert(1, "tests/sandbox")
from kombo_sandbox import Sandbox
import figlib

N = int(sys.argv[1]); REPS = int(sys.argv[2])
ONLY = sys.argv[5] if len(sys.argv) > 5 else None
if ONLY not in (None, "cat", "grep"):
    raise SystemExit("the fifth argument is cat or grep")
INTEGRATION = figlib.INTEGRATION
T = tempfile.mkdtemp(prefix="kombofs-wf.")
BIN, FLOOR = T + "/kombofs", T + "/floor-bin"
shutil.copy2(sys.argv[3], BIN); shutil.copy2(sys.argv[4], FLOOR)
sb = Sandbox(employees=N, api_key=API_KEY, integration_id=INTEGRATION)
fl = None


def mount(extra):
    return figlib.mount(BIN, T + "/mnt", T + "/c.db", T + "/key", sb.url, T + "/log", extra)


def status():
    return figlib.status(T + "/mnt")


def timed(cmd, d):
    t = time.monotonic(); subprocess.run(cmd, shell=True, cwd=d); return time.monotonic() - t


def floor_requests():
    """The floor's counts so far (-c FILE, written on SIGUSR1)."""
    path = T + "/counts"
    before = open(path).read() if os.path.exists(path) else ""
    fl.send_signal(signal.SIGUSR1)
    t = time.monotonic()
    while time.monotonic() - t < 30:
        time.sleep(0.005)
        now = open(path).read() if os.path.exists(path) else ""
        if now != before:
            return dict((k, int(v)) for k, v in (line.split() for line in now.splitlines() if line.strip()))
    raise SystemExit("the floor wrote no counts")


def requests(side):
    if side == "kombofs":
        return figlib.requests(T + "/mnt")
    return floor_requests() if side == "floor" else {}


try:
    sb.start()
    open(T + "/key", "w").write(API_KEY + "\n")
    for d in ("mnt", "tmpfs", "floor"):
        os.makedirs(T + "/" + d)
    p = mount([])
    figlib.wait_full(T + "/mnt")
    figlib.umount(p, T + "/mnt")
    subprocess.run("mount -t tmpfs tmpfs " + T + "/tmpfs", shell=True, check=True)
    p = mount(["--offline"])
    subprocess.run("cd %s/mnt && tar cf - $(ls) | tar xf - -C %s/tmpfs" % (T, T), shell=True, check=True)
    fl = subprocess.Popen([FLOOR, T + "/tmpfs", T + "/floor", "-f", "-c", T + "/counts"],
                          stdout=subprocess.DEVNULL, stderr=open(T + "/log.floor", "a"))
    while not is_mounted(T + "/floor"):
        if fl.poll() is not None:
            raise SystemExit("the floor did not mount; see %s/log.floor" % T)
        time.sleep(0.05)
    cat = "find . -type f -exec cat {} + >/dev/null"
    cmds = {"cat": cat, "grep -r": "grep -r -F NO-MATCH . >/dev/null; true"}
    if ONLY:
        cmds = {k: v for k, v in cmds.items() if k.startswith(ONLY)}
    dirs = {"kombofs": T + "/mnt", "floor": T + "/floor", "tmpfs": T + "/tmpfs"}
    for side in ("kombofs", "floor"):
        timed(cat, dirs[side]); timed("find . -printf %s >/dev/null", dirs[side])
    res = {}
    for rep in range(REPS):
        sides = ["kombofs", "floor", "tmpfs"]
        sides = sides[rep % 3:] + sides[:rep % 3]
        for name, cmd in cmds.items():
            for side in sides:
                if side != "tmpfs":
                    subprocess.run("sync; echo 1 > /proc/sys/vm/drop_caches", shell=True)
                    timed(cmd, dirs[side]); timed(cmd, dirs[side])
                r0 = requests(side)
                d0 = damon_paged_out()
                dt = timed(cmd, dirs[side])
                d1 = damon_paged_out()
                r1 = requests(side)
                sent = {k: r1[k] - r0.get(k, 0) for k in r1 if k != "dump" and r1[k] != r0.get(k, 0)}
                res.setdefault((name, side), []).append(dt)
                print(rep, name, side, "%.3f s" % dt, "requests", sent,
                      "" if d0 is None else "DAMON paged out %.0f MB" % ((d1 - d0) / 1e6), flush=True)
    for k, v in sorted(res.items()):
        print(k, "median %.4g" % statistics.median(v), "all", ["%.4g" % x for x in v])
    for name in cmds:
        k, f, t = (statistics.median(res[(name, s)]) for s in ("kombofs", "floor", "tmpfs"))
        print("%s: kombofs %.2fx tmpfs, %.2fx the floor; the floor %.2fx tmpfs" % (name, k / t, k / f, f / t))
    print("load", open("/proc/loadavg").read().strip(), "kernel", os.uname().release)
finally:
    subprocess.run(["fusermount3", "-u", T + "/mnt"], stderr=subprocess.DEVNULL)
    if fl:
        fl.terminate(); fl.wait()
    subprocess.run(["fusermount3", "-u", T + "/floor"], stderr=subprocess.DEVNULL)
    subprocess.run(["umount", T + "/tmpfs"], stderr=subprocess.DEVNULL)
    sb.stop()
    shutil.rmtree(T, ignore_errors=True)
