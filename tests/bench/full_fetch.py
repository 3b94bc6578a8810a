#!/usr/bin/python3
"""The full fetch into a fresh cache, two builds alternating (issue 15 §3: keep a change
only if it measures faster, against the build before it, in the same run): N employees,
--models=employees (or all nine endpoints with --all), R rounds of [A, B] with the order
swapped every round; prints each sample (.status last_full of employees, and exec -> mount)
and the medians. Without --all each round also times the row's baseline (SPEC §8): one curl
process downloading the same pages over one kept-alive connection. Root; run from the
source tree.

    /usr/bin/python3 tests/bench/full_fetch.py --a OLD --b NEW [--employees N] [--reps R] [--all]

A figure script, not a test (the full table is tests/bench/run.sh).
"""
import argparse
import copy
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (Bench, BenchError, Mount, Sandbox, curl_config, curl_pass, log,  # noqa: E402
                   run_duration)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--employees", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--all", action="store_true", help="all nine endpoints, not only employees")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kombofs-ff.")
    os.environ.pop("MALLOC_PERTURB_", None)
    bench = Bench(argparse.Namespace(tmp=tmp, kombofs=a.a, floor=None))
    other = copy.copy(bench)        # shares the list of live objects
    other.bin = os.path.join(tmp, "kombofs-b")
    shutil.copy2(a.b, other.bin)
    models = None if a.all else "employees"
    res = {"A": [], "B": [], "A mount": [], "B mount": []}
    try:
        sb = Sandbox(bench, "sandbox", a.employees).start()
        sides = {"A": Mount(bench, "a", sb, os.path.join(tmp, "a.db"), models=models),
                 "B": Mount(other, "b", sb, os.path.join(tmp, "b.db"), models=models)}
        for name in ("A", "B"):                  # warm-up: the sandbox's pages, the binaries
            m = sides[name]
            sb.reset_stats()                     # the URLs of the last one (for curl)
            m.fresh_cache()
            m.start()
            m.stop()
        cfg = None
        if not a.all:
            urls = sb.page_urls("employees")
            if len(urls) != len(set(urls)):
                raise BenchError("the sandbox logged a page twice in one fetch")
            cfg = curl_config(tmp, "pages.curl", urls)
            curl_pass(cfg, len(urls))            # warm-up for curl
            res["curl"] = []
        for rep in range(a.reps):
            if cfg:
                res["curl"].append(curl_pass(cfg, len(urls)))
            for name in (("A", "B") if rep % 2 == 0 else ("B", "A")):
                m = sides[name]
                m.fresh_cache()
                dt, _ = m.start()
                st = m.status()["endpoints"]
                run = st["employees"]["last_full"]
                if run["fetched"] != a.employees:
                    raise BenchError(f"{name} fetched {run['fetched']}, not {a.employees}")
                res[name].append(sum(run_duration(e["last_full"]) for e in st.values()))
                res[name + " mount"].append(dt)
                m.stop()
                m.fresh_cache()
            log(f"rep {rep + 1}: A {res['A'][-1]:.2f} s (mount {res['A mount'][-1]:.2f} s), "
                f"B {res['B'][-1]:.2f} s (mount {res['B mount'][-1]:.2f} s)")
    finally:
        bench.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    for k, v in res.items():
        print(f"{k}: median {statistics.median(v):.3f} s, all " + " ".join(f"{x:.2f}" for x in v))
    print(f"B / A: {statistics.median(res['B']) / statistics.median(res['A']):.3f} "
          f"(fetch), {statistics.median(res['B mount']) / statistics.median(res['A mount']):.3f} "
          f"(exec -> mount); load {open('/proc/loadavg').read().split()[0]}")
    if "curl" in res:
        c = statistics.median(res["curl"])
        print(f"A / curl: {statistics.median(res['A']) / c:.3f}, "
              f"B / curl: {statistics.median(res['B']) / c:.3f} (fetch)")


if __name__ == "__main__":
    main()
