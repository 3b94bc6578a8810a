"""pytest fixtures for kombofs: a sandbox on a free port and kombofs mounted on a
temporary directory, as a child process with a timeout, a guaranteed unmount and kill
on teardown, and its log checked for errors.

    def test_x(sandbox, kombofs):
        fs = kombofs(sandbox)              # mounted, initial sync done
        json.load(open(fs.path("employees", some_id)))
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "sandbox"))
sys.path.insert(0, HERE)

from kombo_sandbox import Sandbox  # noqa: E402

KOMBOFS = os.environ.get("KOMBOFS_BIN") or os.path.join(ROOT, "build", "kombofs")
API_KEY = "sandbox-key"
INTEGRATION = "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"

# Lines that must never appear in a daemon log, unless a test allows them.
BAD_LOG = ("fatal:", "AddressSanitizer", "runtime error:", "LeakSanitizer", "Segmentation")


def log_errors(text, context=60):
    """The BAD_LOG lines of a daemon log, each with up to `context` lines after it
    (a sanitizer's report: its stacks follow the line that names it); "" if none."""
    lines = text.splitlines()
    out, shown = [], -1
    for i, ln in enumerate(lines):
        if i > shown and any(b in ln for b in BAD_LOG):
            shown = min(len(lines) - 1, i + context)
            out.extend(lines[i:shown + 1])
    return "\n".join(out)


def sanitized(binary):
    """Whether binary is built with AddressSanitizer, which keeps freed memory in
    quarantine (RSS says nothing there) and slows some threads more than others."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return "libasan" in out


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == path for line in f)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (for a receiver a test starts)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, timeout=30.0, what="condition", interval=0.02):
    """cond()'s first true value, polled every `interval` s; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def fusermount_u(path):
    subprocess.run(["fusermount3", "-u", "-z", path], stderr=subprocess.DEVNULL, check=False)


class Mount:
    """One running kombofs."""

    def __init__(self, proc, mnt, log, cache):
        self.proc, self.mnt, self.log, self.cache = proc, mnt, log, cache

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def record_path(self, directory, rid):
        return self.path(directory, escape(rid) + ".json")

    def read_json(self, *parts):
        with open(self.path(*parts), encoding="utf-8") as f:
            return json.load(f)

    def status(self):
        return self.read_json(".status")

    def control(self, command):
        """Write a command to .control in one write(2); returns 0 or the errno."""
        try:
            fd = os.open(self.path(".control"), os.O_WRONLY | os.O_TRUNC)
        except OSError as e:
            return e.errno
        try:
            os.write(fd, (command + "\n").encode())
            return 0
        except OSError as e:
            return e.errno
        finally:
            try:
                os.close(fd)
            except OSError:
                pass  # the daemon went away (crash tests)

    def log_text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, timeout=20):
        """Unmount and wait for the daemon; returns its exit status."""
        if self.proc.poll() is None:
            if is_mounted(self.mnt):
                subprocess.run(["fusermount3", "-u", self.mnt], check=False,
                               stderr=subprocess.DEVNULL)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if is_mounted(self.mnt):
            fusermount_u(self.mnt)
        return self.proc.returncode


DAMON = "/sys/kernel/mm/damon/admin/kdamonds"


def damon_paged_out():
    """Bytes this kernel's DAMON schemes have applied their action to since they started
    (each scheme's stats/sz_applied, brought up to date first; root), or None without
    DAMON. A scheme whose action is pageout drops clean file pages through the path that
    madvise(MADV_PAGEOUT) takes, which no /proc/vmstat counter counts."""
    try:
        total, found = 0, False
        for k in os.listdir(DAMON):
            kd = os.path.join(DAMON, k)
            if not os.path.isdir(os.path.join(kd, "contexts")):
                continue
            try:
                with open(os.path.join(kd, "state"), "w", encoding="ascii") as f:
                    f.write("update_schemes_stats\n")
            except OSError:
                continue    # an idle kdamond has no stats to bring up to date
            for c in os.listdir(os.path.join(kd, "contexts")):
                schemes = os.path.join(kd, "contexts", c, "schemes")
                if not os.path.isdir(schemes):
                    continue
                for sc in os.listdir(schemes):
                    path = os.path.join(schemes, sc, "stats", "sz_applied")
                    if os.path.exists(path):
                        with open(path, encoding="ascii") as f:
                            total += int(f.read())
                        found = True
        return total if found else None
    except OSError:
        return None


def pages_reclaimed():
    """Pages of files the kernel has dropped from any page cache since boot (/proc/vmstat:
    LRU reclaim and inodes pruned with their pages). A test that expects its files to stay
    cached may see a READ again only for a page the kernel dropped: on a VM whose host
    takes memory back (virtio balloon), reclaim runs with most of the memory free.
    A write to /proc/sys/vm/drop_caches, by anything on the machine, drops every clean page
    and counts only itself (drop_pagecache): each counts as 10**9 pages. DAMON's pageouts
    (this host pages out unmapped file pages it saw unused for a minute) count no vmstat
    page: what its schemes applied their action to counts, in 4 KiB pages."""
    n = (damon_paged_out() or 0) // 4096
    with open("/proc/vmstat", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(" ")
            if key in ("pgsteal_file", "pginodesteal", "kswapd_inodesteal"):
                n += int(value)
            elif key == "drop_pagecache":
                n += int(value) * 10**9
    return n


def escape(rid):
    """SPEC §2 file-name escaping (mirror of src/fsname.c)."""
    out = []
    for i, b in enumerate(rid.encode("utf-8")):
        c = chr(b)
        if (c.isascii() and (c.isalnum() or c in "._:-")) and not (i == 0 and c == "."):
            out.append(c)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


@pytest.fixture
def sandbox(request):
    kwargs = {}
    marker = request.node.get_closest_marker("sandbox")
    if marker:
        kwargs.update(marker.kwargs)
    kwargs.setdefault("employees", 40)
    sb = Sandbox(api_key=API_KEY, integration_id=INTEGRATION, **kwargs)
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def kombofs(request, tmp_path):
    """Factory: kombofs(sandbox, *args, wait=True, env=None) -> Mount."""
    mounts = []
    allow_errors = request.node.get_closest_marker("allow_log_errors") is not None
    keyfile = tmp_path / "api-key"
    keyfile.write_text(API_KEY + "\n")
    keyfile.chmod(0o600)
    counter = [0]

    def start(sb, *args, wait=True, env=None, cache=None, mnt=None, integration=INTEGRATION):
        counter[0] += 1
        mnt = mnt or str(tmp_path / f"mnt{counter[0]}")
        os.makedirs(mnt, exist_ok=True)
        cache = cache or str(tmp_path / "cache.db")
        log = str(tmp_path / f"kombofs{counter[0]}.log")
        import conftest  # tests may swap the binary (e.g. the installed one)
        cmd = [conftest.KOMBOFS, integration, mnt, "-f", f"--cache={cache}",
               f"--api-key-file={keyfile}"]
        if sb is not None:
            cmd.append(f"--api-url={sb.url}")
        cmd += list(args)
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(log, "w", encoding="utf-8") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=full_env,
                                    start_new_session=True)
        m = Mount(proc, mnt, log, cache)
        mounts.append(m)
        if wait:
            deadline = time.monotonic() + 120
            while not is_mounted(mnt):
                if proc.poll() is not None:
                    raise AssertionError(f"kombofs exited with {proc.returncode}:\n{m.log_text()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"kombofs did not mount in time:\n{m.log_text()}")
                time.sleep(0.02)
        return m

    yield start

    for m in mounts:
        m.stop()
        if m.proc.poll() is None:
            os.killpg(m.proc.pid, signal.SIGKILL)
            m.proc.wait()
    for m in mounts:
        assert API_KEY not in m.log_text(), f"the API key appears in {m.log}"
    if not allow_errors:
        for m in mounts:
            bad = log_errors(m.log_text())
            assert not bad, f"errors in the daemon log {m.log}:\n" + bad


def normalize(records):
    """Records by id, for comparing a directory with the sandbox (jq -S semantics)."""
    return {r["id"]: r for r in records}


def read_dir(mount, directory):
    out = {}
    for name in os.listdir(mount.path(directory)):
        with open(mount.path(directory, name), encoding="utf-8") as f:
            rec = json.load(f)
        out[rec["id"]] = rec
    return out
