#!/usr/bin/python3
"""Cold and warm `wc -l exports/employees.jsonl` (SPEC §10's row) for several kombofs
builds or option sets against a tmpfs copy of the file, R repetitions alternating,
medians. Each LABEL mirrors the sandbox into a cache of its own, then serves it
--offline; cold = a fresh mount (the kernel holds nothing of the file), warm = the
second read of that mount. The READs of the cold read come from .status, the daemon's
CPU seconds during it ("cold cpu": user and system, to a clock tick) from /proc. Root; run
from the source tree.

    /usr/bin/python3 tests/bench/export_read.py [--floor FLOOR] N R LABEL=BINARY[,OPTION...] [...]

For example `ra=build/kombofs no-ra=build/kombofs,--no-read-ahead`. --floor
build/kombofs-floor adds the FUSE floor (tests/bench/floor.c) serving the tmpfs copy,
unmounted from outside and mounted again (-r) for each cold read. A figure script,
not a test (the full table is tests/bench/run.sh)."""
import sys, os, subprocess, time, statistics, tempfile, shutil
sys.path.insert(0, "tests/integration")
from conftest import API_KEY, is_mounted
sys.path.insert(1, "tests/sandbox")
from kombo_sandbox import Sandbox
import figlib

args = sys.argv[1:]
FLOOR = None
if args[:1] == ["--floor"]:
    FLOOR = args[1]; args = args[2:]
N = int(args[0]); REPS = int(args[1])
BUILDS = []
for a in args[2:]:
    label, spec = a.split("=", 1)
    path, *opts = spec.split(",")
    BUILDS.append((label, path, opts))
INTEGRATION = figlib.INTEGRATION
T = tempfile.mkdtemp(prefix="kombofs-ex.")
sb = Sandbox(employees=N, api_key=API_KEY, integration_id=INTEGRATION)
FILE = "exports/employees.jsonl"
floor = None


def mount(label, extra):
    return figlib.mount(T + "/kombofs." + label, T + "/mnt", "%s/%s.db" % (T, label), T + "/key",
                        sb.url, T + "/log." + label, extra)


def umount(p):
    figlib.umount(p, T + "/mnt")


def status():
    return figlib.status(T + "/mnt")


def cpu(p):
    """The daemon's CPU seconds so far, user and system, its exited threads included."""
    with open("/proc/%d/stat" % p.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(path):
    t = time.monotonic()
    out = subprocess.run(["wc", "-l", path], capture_output=True, text=True, check=True).stdout
    return time.monotonic() - t, int(out.split()[0])


try:
    sb.start()
    open(T + "/key", "w").write(API_KEY + "\n")
    os.makedirs(T + "/mnt"); os.makedirs(T + "/tmpfs")
    for label, path, _ in BUILDS:
        shutil.copy2(path, T + "/kombofs." + label)
        p = mount(label, ["--models=employees"])
        figlib.wait_full(T + "/mnt", ["employees"])
        umount(p)
    subprocess.run("mount -t tmpfs tmpfs " + T + "/tmpfs", shell=True, check=True)
    p = mount(BUILDS[0][0], ["--offline"])
    shutil.copyfile(T + "/mnt/" + FILE, T + "/tmpfs/e.jsonl")
    umount(p)
    size = os.path.getsize(T + "/tmpfs/e.jsonl")
    print("%s: %d bytes" % (FILE, size), flush=True)
    res = {}
    if FLOOR:
        os.makedirs(T + "/floor")
        floor = subprocess.Popen([FLOOR, T + "/tmpfs", T + "/floor", "-f", "-r"],
                                 stdout=subprocess.DEVNULL, stderr=open(T + "/log.floor", "a"))
        while not is_mounted(T + "/floor"):
            if floor.poll() is not None:
                raise SystemExit("the floor did not mount; see %s/log.floor" % T)
            time.sleep(0.01)
    for rep in range(REPS):
        order = BUILDS[rep % len(BUILDS):] + BUILDS[:rep % len(BUILDS)]
        for label, _, opts in order:
            p = mount(label, ["--offline"] + opts)
            time.sleep(1)
            s0, c0 = status(), cpu(p)
            dt, lines = timed(T + "/mnt/" + FILE)
            s1, c1 = status(), cpu(p)
            wt, _ = timed(T + "/mnt/" + FILE)
            umount(p)
            tt, tlines = timed(T + "/tmpfs/e.jsonl")
            if lines != N or tlines != N:
                raise SystemExit("%s: %d lines, tmpfs %d, expected %d" % (label, lines, tlines, N))
            res.setdefault((label, "cold"), []).append(dt)
            res.setdefault((label, "warm"), []).append(wt)
            res.setdefault((label, "tmpfs"), []).append(tt)
            res.setdefault((label, "cold read"), []).append(s1["requests"]["read"] - s0["requests"]["read"])
            res.setdefault((label, "cold cpu"), []).append(c1 - c0)
            if floor:
                subprocess.run(["fusermount3", "-u", T + "/floor"], check=True)
                while not is_mounted(T + "/floor"):
                    time.sleep(0.005)
                time.sleep(1)
                ft, flines = timed(T + "/floor/e.jsonl")
                fw, _ = timed(T + "/floor/e.jsonl")
                if flines != N:
                    raise SystemExit("floor: %d lines, expected %d" % (flines, N))
                res.setdefault(("floor", "cold"), []).append(ft)
                res.setdefault(("floor", "warm"), []).append(fw)
    for k, v in sorted(res.items()):
        print(k, "median %.4g" % statistics.median(v), "all", ["%.4g" % x for x in v])
    print("load", open("/proc/loadavg").read().strip())
finally:
    if floor:
        floor.terminate(); floor.wait()
    subprocess.run("fusermount3 -u %s/mnt 2>/dev/null; fusermount3 -u %s/floor 2>/dev/null; "
                   "umount %s/tmpfs 2>/dev/null" % (T, T, T), shell=True)
    sb.stop()
    shutil.rmtree(T, ignore_errors=True)
