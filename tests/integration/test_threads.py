"""FUSE worker threads come and go (libfuse ends idle workers beyond max_idle_threads and
starts new ones under load); each reading thread opens its own SQLite read connection.
Bursts of concurrent readers separated by idle time must leave the daemon's open files and
memory flat (issue 13): a thread's connection is closed when the thread ends."""
import os
import threading
import time

import pytest

import conftest
from conftest import sanitized


def cache_fds(pid, cache):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(cache):
                n += 1
        except OSError:
            pass
    return n


def rss_kb(pid):
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def tids(pid):
    return set(os.listdir(f"/proc/{pid}/task"))


def burst(files, n=40):
    """n threads at once, each asking the daemon for extended attributes (never cached by
    the kernel: every call is a request to a worker, which reads the cache)."""
    errors = []

    def work(i):
        try:
            for f in files[i::n]:
                os.getxattr(f, "user.kombo.id")
        except OSError as e:
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors[:3]


def rounds(fs, files, count=8, idle=0.5):
    pid = fs.proc.pid
    seen = tids(pid)
    samples = []
    for _ in range(count):
        burst(files)
        now = tids(pid)
        time.sleep(idle)    # the workers beyond max_idle_threads end
        samples.append((len(now - seen), cache_fds(pid, fs.cache), rss_kb(pid), len(now)))
        seen |= now
    return samples


@pytest.mark.sandbox(employees=300)
@pytest.mark.parametrize("opts", [[], ["-o", "max_threads=48,max_idle_threads=1"]],
                         ids=["as-shipped", "churning"])
def test_reader_threads_come_and_go_without_leaking(sandbox, kombofs, opts):
    fs = kombofs(sandbox, "--models=employees", *opts)
    d = fs.path("employees")
    files = [os.path.join(d, n) for n in os.listdir(d)]
    # The first rounds warm up: each worker's connection fills its page cache (as shipped:
    # RSS 21 -> 33 MB over 8 rounds here, then flat for 60 more). Measured after them.
    samples = rounds(fs, files, count=18, idle=0.2)[8:]
    new_threads = sum(s[0] for s in samples[1:])
    fds = [s[1] for s in samples]
    rss = [s[2] for s in samples]
    if opts:
        # Workers really were ended and started again between the bursts...
        assert new_threads >= 10, samples
    else:
        # As shipped, libfuse keeps at most 10 workers, all of them when idle.
        assert max(s[3] for s in samples) <= 16, samples
    # ...and neither open files nor memory grew with them: every thread that ended closed
    # its read connection (without that, one descriptor per thread ever started), and its
    # memory went back to the system (glibc kept a few MB per arena: 38 -> 74 MB).
    assert fds[-1] - fds[0] <= max(4, new_threads // 4), samples
    if not opts and not sanitized(conftest.KOMBOFS):    # ASan's quarantine grows by design
        assert max(rss[1:]) - rss[0] < 4 * 1024, samples
    # Churning, RSS moves with how many workers are alive at the sample, by several MB
    # on a loaded machine (a clean-clone CI run saw 40-53 MB): too noisy to tell a leak
    # from that here. Measured by hand instead (docs/architecture.md): 38 -> 74 MB over
    # 160 threads without the malloc_trim, flat at 17-19 MB with it.
