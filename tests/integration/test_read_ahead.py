"""Reading ahead across files (issue 15 §2, SPEC §12): a scan's next files are pushed into
the page cache (fuse_lowlevel_notify_store), so a cold scan sends few READs; the bytes
are the same as without it; a change during a scan is never hidden; a lone read or a
listing pushes nothing.

Every mount here is fresh, so the kernel's page cache holds none of its files (cold)."""
import json
import os
import shutil
import signal
import threading
import time

import pytest

from conftest import escape, pages_reclaimed

N = 1500


def status(m):
    with open(m.path(".status"), encoding="utf-8") as f:
        return json.load(f)


def read_all(m, names):
    out = {}
    for n in names:
        with open(m.path("employees", n), "rb") as f:
            out[n] = f.read()
    return out


def warm_cache(sandbox, kombofs, tmp_path):
    """A cache with N employees, filled by a first daemon that is gone again."""
    cache = str(tmp_path / "cache.db")
    m = kombofs(sandbox, cache=cache)
    assert len(os.listdir(m.path("employees"))) == N
    m.stop()
    return cache


@pytest.mark.sandbox(employees=N)
def test_a_cold_scan_sends_few_reads_and_reads_the_same_bytes(sandbox, kombofs, tmp_path):
    cache = warm_cache(sandbox, kombofs, tmp_path)
    plain_cache = str(tmp_path / "plain.db")
    shutil.copyfile(cache, plain_cache)

    m = kombofs(sandbox, "--offline", cache=cache)
    names = os.listdir(m.path("employees"))         # listing order, as grep -r walks it
    before = status(m)["requests"]["read"]
    reclaimed_from = pages_reclaimed()
    pushed = read_all(m, names)
    st = status(m)
    reads = st["requests"]["read"] - before
    # 5-8 % of the files on a quiet machine; the pusher is one thread, and on two CPUs
    # shared with a parallel test run it falls behind the reader at times (24 % seen).
    # Without it every file is a READ (the last part of this test).
    assert reads < N // 3, f"{reads} READs for {N} files"
    assert st["read_ahead"]["files"] > N * 0.8, st["read_ahead"]
    assert st["read_ahead"]["scans"] == 1, st["read_ahead"]
    # The second pass is the page cache's: no READ, and no GETATTR per file. (A file
    # whose READ came short of a whole page has its block count invalidated by the
    # kernel, so its next fstat is a GETATTR; pushed files had no READ.)
    # A READ now means the kernel dropped a page since the first pass: each such READ
    # has a page of its own that /proc/vmstat or DAMON counts as dropped (CI saw 9 of
    # 1500, and twice 2 that vmstat did not count: DAMON's pageouts count in none).
    before = st["requests"]
    again = read_all(m, names)
    after = status(m)["requests"]
    dropped = pages_reclaimed() - reclaimed_from
    assert after["read"] - before["read"] <= dropped, (after["read"], before["read"], dropped)
    assert after["getattr"] - before["getattr"] <= reads, (after, before, reads)
    assert again == pushed
    m.stop()

    # The same bytes as a daemon that pushes nothing serves (a copy of the cache).
    p = kombofs(sandbox, "--offline", "--no-read-ahead", cache=plain_cache)
    plain = read_all(p, names)
    st = status(p)
    assert st["read_ahead"] is None and st["requests"]["read"] >= N
    assert plain == pushed
    assert sum(map(len, plain.values())) == sum(os.path.getsize(p.path("employees", n))
                                                for n in names)


@pytest.mark.sandbox(employees=N)
def test_a_warm_scan_missing_scattered_files_pushes_a_first_window_after_each(
        sandbox, kombofs, tmp_path):
    # Under reclaim a warm pass misses files here and there, each a READ far past the
    # walk's window with cached files between. That READ starts a first window again
    # (16 files) instead of doubling it: before, each pushed a window twice the last one's,
    # up to 512 files, nearly all still cached; the build before pushed 1,266 files for
    # these 30 misses (docs/performance.md, "Read-ahead when the misses are scattered").
    cache = warm_cache(sandbox, kombofs, tmp_path)
    m = kombofs(sandbox, "--offline", cache=cache)
    names = os.listdir(m.path("employees"))
    first = read_all(m, names)
    read_all(m, names)
    dropped = names[::50]
    for n in dropped:
        fd = os.open(m.path("employees", n), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    before = status(m)
    again = read_all(m, names)
    after = status(m)
    pushed = after["read_ahead"]["files"] - before["read_ahead"]["files"]
    far = after["read_ahead"]["far"] - before["read_ahead"]["far"]
    reads = after["requests"]["read"] - before["requests"]["read"]
    assert again == first
    assert pushed <= 20 * len(dropped), (pushed, len(dropped), after["read_ahead"])
    assert reads >= len(dropped) // 2, (reads, len(dropped))   # the misses did reach us
    assert far >= len(dropped) // 2, (far, len(dropped), after["read_ahead"])


@pytest.mark.sandbox(employees=N)
def test_a_sorted_glob_is_a_scan_too(sandbox, kombofs, tmp_path):
    cache = warm_cache(sandbox, kombofs, tmp_path)
    m = kombofs(sandbox, "--offline", cache=cache)
    names = sorted(os.listdir(m.path("employees")))   # jq . employees/*.json
    before = status(m)["requests"]["read"]
    got = read_all(m, names)
    reads = status(m)["requests"]["read"] - before
    assert reads < N // 3, f"{reads} READs for {N} files in name order"
    assert all(json.loads(b)["id"] for b in got.values())


@pytest.mark.sandbox(employees=200)
def test_a_lone_read_and_a_listing_push_nothing(sandbox, kombofs):
    m = kombofs(sandbox)
    names = os.listdir(m.path("employees"))
    for n in names:                                  # ls -l
        os.stat(m.path("employees", n))
    first = names[150]
    with open(m.path("employees", first), "rb") as f:      # cat of one file
        f.read()
    # another, before it in the listing and in name order: no walk in either order
    second = next(n for n in reversed(names[:150]) if n < first)
    with open(m.path("employees", second), "rb") as f:
        f.read()
    ra = status(m)["read_ahead"]
    assert ra["scans"] == 0 and ra["files"] == 0 and ra["batches"] == 0, ra


@pytest.mark.sandbox(employees=N)
def test_a_change_during_a_scan_is_never_hidden(sandbox, kombofs, tmp_path):
    m = kombofs(sandbox)
    names = os.listdir(m.path("employees"))
    ids = {}
    for n in names[:40]:                             # the scan starts: pushes go ahead
        with open(m.path("employees", n), "rb") as f:
            ids[n] = json.loads(f.read())["id"]
    target = names[60]
    with open(m.path("employees", target), "rb") as f:   # pushed or not, in the cache now
        old = json.loads(f.read())
    # the pusher is a thread of its own: on a loaded machine its first batch may still be
    # on its way (a full suite run once read 0 here)
    deadline = time.monotonic() + 10
    while status(m)["read_ahead"]["files"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status(m)["read_ahead"]["files"] > 0
    sandbox.update_employee(old["id"], job_title="Changed Mid-Scan")
    assert m.control("sync employees") == 0
    for n in names[40:]:                             # the scan goes on over the change
        with open(m.path("employees", n), "rb") as f:
            rec = json.loads(f.read())
        if n == target:
            assert rec["job_title"] == "Changed Mid-Scan"
            assert rec["id"] == old["id"] and escape(rec["id"]) + ".json" == n
    with open(m.path("employees", target), "rb") as f:
        assert json.loads(f.read())["job_title"] == "Changed Mid-Scan"


@pytest.mark.sandbox(employees=N)
def test_a_scan_of_the_change_log_is_read_ahead_too(sandbox, kombofs, tmp_path):
    # half of a first mirror's files are change-log entries (one per record created)
    cache = str(tmp_path / "cache.db")
    m = kombofs(sandbox, cache=cache)
    first = sorted(os.listdir(m.path("employees")))[0]
    with open(m.path("employees", first), "rb") as f:
        rec = json.loads(f.read())
    # its creation entry borrowed the record's bytes: now it gets a copy of its own
    sandbox.update_employee(rec["id"], job_title="Changed Before The Scan")
    assert m.control("sync employees") == 0
    m.stop()
    plain_cache = str(tmp_path / "plain.db")
    shutil.copyfile(cache, plain_cache)

    def read_log(mount):
        names = os.listdir(mount.path("changes"))
        out = {}
        for n in names:
            with open(mount.path("changes", n), "rb") as f:
                out[n] = f.read()
        return names, out

    m = kombofs(sandbox, "--offline", cache=cache)
    before = status(m)["requests"]["read"]
    names, pushed = read_log(m)
    st = status(m)
    reads = st["requests"]["read"] - before
    assert len(names) > N
    assert reads < len(names) // 3, f"{reads} READs for {len(names)} entries"
    assert st["read_ahead"]["files"] > len(names) * 0.6, st["read_ahead"]
    m.stop()

    p = kombofs(sandbox, "--offline", "--no-read-ahead", cache=plain_cache)
    plain_names, plain = read_log(p)
    assert status(p)["requests"]["read"] >= len(names)
    assert plain_names == names and plain == pushed
    assert any(b'"Changed Before The Scan"' in b for b in plain.values())


@pytest.mark.sandbox(employees=600)
def test_large_files_in_a_scan_are_pushed_whole(sandbox, kombofs, tmp_path):
    # A file of the scan goes from the pusher to a storer through a buffer of its own;
    # one over 64 KiB gets a buffer for itself, freed once stored. Every 7th file here is
    # 100-300 KB (a long job title), the rest 3-4 KB: both kinds in one window.
    cache = str(tmp_path / "cache.db")
    m = kombofs(sandbox, cache=cache)
    names = os.listdir(m.path("employees"))
    for k, n in enumerate(names[::7]):
        with open(m.path("employees", n), "rb") as f:
            rid = json.loads(f.read())["id"]
        sandbox.update_employee(rid, job_title="%d-" % k + "x" * (100_000 + 25_000 * (k % 9)))
    assert m.control("sync employees") == 0
    m.stop()
    plain_cache = str(tmp_path / "plain.db")
    shutil.copyfile(cache, plain_cache)

    m = kombofs(sandbox, "--offline", cache=cache)
    names = os.listdir(m.path("employees"))
    pushed = read_all(m, names)
    ra = status(m)["read_ahead"]
    assert ra["files"] > len(names) // 2, ra
    big = [n for n in names if len(pushed[n]) > 100_000]
    assert len(big) == len(names[::7])
    # the large files are most of the bytes (17 MB of 19), and most of them were pushed
    # (all here by hand; a reader that overtakes the pusher READs some itself)
    assert ra["bytes"] > sum(len(pushed[n]) for n in big) // 2, ra
    m.stop()

    p = kombofs(sandbox, "--offline", "--no-read-ahead", cache=plain_cache)
    assert read_all(p, names) == pushed


@pytest.mark.sandbox(employees=N)
def test_sigterm_in_the_middle_of_a_scan_ends_the_daemon(sandbox, kombofs, tmp_path):
    # The pusher, and the storers it hands files to, wait for work or for room; a stop
    # must wake each of them, or the daemon never exits. The reader goes on reading
    # while the signal arrives, so batches are under way.
    cache = warm_cache(sandbox, kombofs, tmp_path)
    m = kombofs(sandbox, "--offline", cache=cache)
    names = os.listdir(m.path("employees"))
    read_all(m, names[:200])
    deadline = time.monotonic() + 10
    while status(m)["read_ahead"]["files"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status(m)["read_ahead"]["files"] > 0
    stop = threading.Event()

    def reader():
        try:
            for n in names[200:]:
                if stop.is_set():
                    break
                with open(m.path("employees", n), "rb") as f:
                    f.read()
        except OSError:
            pass            # the mount went away under it

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.005)
    m.proc.send_signal(signal.SIGTERM)
    try:
        assert m.proc.wait(timeout=20) == 0
    finally:
        stop.set()
        t.join(timeout=20)
    assert not os.path.ismount(m.mnt)
