#!/usr/bin/python3
"""The delta row's "independent of mirror size" (SPEC §8), by itself: two sandboxes and
two mirrors of all nine endpoints, N employees and N/10; R rounds, the two alternating,
each round 100 employees changed (spread over the listing, as run.sh does) and then
`sync employees` written to .control (it returns when the fetch finished). Prints each
mirror's samples, their medians and the ratio. Root; run from the source tree.

    /usr/bin/python3 tests/bench/delta_scaling.py --kombofs BIN [--employees N] [--reps R]

A figure script, not a test (the full table is tests/bench/run.sh)."""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Bench, BenchError, Mount, Sandbox  # noqa: E402

CHANGES = 100


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kombofs", required=True)
    ap.add_argument("--employees", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kombofs-ds.")
    os.environ.pop("MALLOC_PERTURB_", None)
    b = Bench(argparse.Namespace(tmp=tmp, kombofs=a.kombofs, floor=None))
    sizes = (a.employees, max(a.employees // 10, 1))
    res = {n: [] for n in sizes}
    try:
        sides = {}
        for n in sizes:
            sb = Sandbox(b, f"sandbox-{n}", n).start()
            m = Mount(b, f"m{n}", sb, os.path.join(tmp, f"m{n}.db"))
            m.fresh_cache()
            m.start()
            names = sorted(os.listdir(os.path.join(m.mnt, "employees")))
            ids = [urllib.parse.unquote(x[:-len(".json")]) for x in names if x.endswith(".json")]
            k = min(CHANGES, len(ids))
            sides[n] = (sb, m, ids[::len(ids) // k][:k])
        for rep in range(a.reps + 1):               # the first round is a warm-up
            for n in (sizes if rep % 2 == 0 else sizes[::-1]):
                sb, m, chosen = sides[n]
                for i, eid in enumerate(chosen):
                    sb.mutate("update_employee", id=eid, job_title=f"Delta scaling {rep}.{i}")
                dt = m.control("sync employees")
                run = m.status()["endpoints"]["employees"]["last_delta"]
                if run.get("result") != "ok" or run.get("changed", 0) < len(chosen):
                    raise BenchError(f"the delta of the {n} mirror: {run}")
                if rep:
                    res[n].append(dt)
    finally:
        b.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    for n in sizes:
        print(f"{n} mirror: median {1000 * statistics.median(res[n]):.1f} ms, all "
              + " ".join(f"{1000 * x:.1f}" for x in res[n]))
    big, small = (statistics.median(res[n]) for n in sizes)
    print(f"{sizes[0]} / {sizes[1]}: {big / small:.3f}; load {open('/proc/loadavg').read().split()[0]}")


if __name__ == "__main__":
    main()
