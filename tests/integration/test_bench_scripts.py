"""The figure scripts that docs/performance.md cites (tests/bench/full_fetch.py,
webhook_trace.py, read_ahead.py, cold_scan.py, export_read.py, export_parallel.py,
warm_floor.py, warm_scattered.py, delta_scaling.py), run as it says, from the source tree, at the smallest
sizes: each must finish, clean up after itself and print its figures. Their figures are not checked (benchmarks, not timed tests)."""
import glob
import os
import re
import subprocess

import pytest

import conftest

PY = "/usr/bin/python3"
BENCH = os.path.join(conftest.ROOT, "tests", "bench")


def run(*args, timeout=240):
    env = dict(os.environ)
    env.pop("MALLOC_PERTURB_", None)
    r = subprocess.run([PY, *args], cwd=conftest.ROOT, capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, f"{args[0]} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def no_leftovers(pattern):
    with open("/proc/mounts", encoding="utf-8") as f:
        assert pattern not in f.read()
    assert not glob.glob(f"/tmp/{pattern}*")


def test_full_fetch_compares_two_builds():
    out = run(os.path.join(BENCH, "full_fetch.py"), "--a", conftest.KOMBOFS, "--b",
              conftest.KOMBOFS, "--employees", "300", "--reps", "2")
    assert re.search(r"^A: median \d+\.\d+ s, all \S+ \S+$", out, re.M), out
    assert re.search(r"^B / A: \d+\.\d+ \(fetch\)", out, re.M), out
    assert re.search(r"^curl: median \d+\.\d+ s", out, re.M), out
    assert re.search(r"^A / curl: \d+\.\d+, B / curl: \d+\.\d+ \(fetch\)$", out, re.M), out
    no_leftovers("kombofs-ff.")


def test_webhook_trace_prints_each_change_and_the_medians(tmp_path):
    trace = tmp_path / "trace"
    out = run(os.path.join(BENCH, "webhook_trace.py"), "3", "--kombofs", conftest.KOMBOFS,
              "--strace", str(trace))
    assert len(re.findall(r"POST \d+\.\d+ ms visible \d+\.\d+ ms", out)) == 3, out
    assert "of 2 (the first left out): POST p50" in out, out
    assert "recvfrom" in trace.read_text()       # the traced calls are there
    no_leftovers("kombofs-trace.")


@pytest.mark.skipif(os.geteuid() != 0, reason="read_ahead.py mounts a tmpfs")
def test_read_ahead_compares_with_and_without():
    out = run(os.path.join(BENCH, "read_ahead.py"), "300", "1")
    for side in ("kombofs", "no-read-ahead", "tmpfs"):
        assert f"('cat', '{side}', 'cold')" in out, out
    no_leftovers("kombofs-ra.")


@pytest.mark.skipif(os.geteuid() != 0, reason="cold_scan.py mounts a tmpfs")
def test_cold_scan_compares_builds():
    out = run(os.path.join(BENCH, "cold_scan.py"), "--pretouch", "8", "200", "2",
              f"a={conftest.KOMBOFS}", f"b={conftest.KOMBOFS}")
    for label in ("a", "b"):
        for what in ("cold", "warm", "tmpfs", "cold read", "warm getattr", "cold, pre-touched",
                     "tmpfs, pre-touched"):
            assert re.search(rf"^\('{label}', '{what}'\) median \S+ all", out, re.M), out
    no_leftovers("kombofs-cs.")


@pytest.mark.skipif(os.geteuid() != 0, reason="export_read.py mounts a tmpfs")
def test_export_read_compares_option_sets():
    floor = os.path.join(os.path.dirname(conftest.KOMBOFS), "kombofs-floor")
    out = run(os.path.join(BENCH, "export_read.py"), "--floor", floor, "300", "2",
              f"a={conftest.KOMBOFS}", f"b={conftest.KOMBOFS},--no-read-ahead")
    assert re.search(r"^exports/employees.jsonl: \d+ bytes$", out, re.M), out
    for label in ("a", "b"):
        for what in ("cold", "warm", "tmpfs", "cold read", "cold cpu"):
            assert re.search(rf"^\('{label}', '{what}'\) median \S+ all", out, re.M), out
    no_leftovers("kombofs-ex.")


def test_export_parallel_compares_builds():
    out = run(os.path.join(BENCH, "export_parallel.py"), "300", "2",
              f"a={conftest.KOMBOFS}", f"b={conftest.KOMBOFS}")
    assert re.search(r"^exports: \d+ bytes in (\S+\.jsonl(, )?){6}$", out, re.M), out
    assert len(re.findall(r"^round [12]: [ab] \d+\.\d+ s, \d+ READs$", out, re.M)) == 4, out
    for label in ("a", "b"):
        assert re.search(rf"^{label}: median \d+\.\d+ s, all \S+ \S+$", out, re.M), out
    no_leftovers("kombofs-xp.")


@pytest.mark.skipif(os.geteuid() != 0, reason="warm_floor.py mounts a tmpfs")
def test_warm_floor_compares_kombofs_the_floor_and_tmpfs():
    floor = os.path.join(os.path.dirname(conftest.KOMBOFS), "kombofs-floor")
    out = run(os.path.join(BENCH, "warm_floor.py"), "200", "2", conftest.KOMBOFS, floor)
    for name in ("cat", "grep -r"):
        for side in ("kombofs", "floor", "tmpfs"):
            assert re.search(rf"^\('{name}', '{side}'\) median \S+ all", out, re.M), out
        assert re.search(rf"^{name}: kombofs \d+\.\d+x tmpfs, \d+\.\d+x the floor", out, re.M), out
    no_leftovers("kombofs-wf.")
    out = run(os.path.join(BENCH, "warm_floor.py"), "200", "1", conftest.KOMBOFS, floor, "grep")
    assert re.search(r"^grep -r: kombofs \d+\.\d+x tmpfs", out, re.M), out
    assert not re.search(r"^cat:", out, re.M), out
    no_leftovers("kombofs-wf.")


@pytest.mark.skipif(os.geteuid() != 0, reason="warm_scattered.py drops pages as root")
def test_warm_scattered_compares_read_ahead_on_and_off():
    out = run(os.path.join(BENCH, "warm_scattered.py"), "200", "2", "10", conftest.KOMBOFS)
    assert len(re.findall(r"^[01] (on|off) \d+\.\d+ s dropped [1-9]\d* requests", out, re.M)) == 4, out
    for side in ("on", "off"):
        assert re.search(rf"^{side}: median \d+\.\d+ s, all \S+ \S+$", out, re.M), out
    assert re.search(r"^on / off: \d+\.\d+$", out, re.M), out
    no_leftovers("kombofs-ws.")


def test_delta_scaling_compares_two_mirror_sizes():
    out = run(os.path.join(BENCH, "delta_scaling.py"), "--kombofs", conftest.KOMBOFS,
              "--employees", "1000", "--reps", "2")
    assert re.search(r"^1000 mirror: median \d+\.\d ms, all \S+ \S+$", out, re.M), out
    assert re.search(r"^100 mirror: median \d+\.\d ms, all \S+ \S+$", out, re.M), out
    assert re.search(r"^1000 / 100: \d+\.\d+;", out, re.M), out
    no_leftovers("kombofs-ds.")
