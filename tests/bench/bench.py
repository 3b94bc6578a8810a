#!/usr/bin/python3
"""The SPEC §8 benchmark table for kombofs. Called by tests/bench/run.sh, which owns the
temporary directory and stops whatever is left if this script is killed.

Every row is measured against its baseline in the same run, alternating, R times; the
table shows medians. Every read row also runs on the FUSE floor (tests/bench/floor.c, SPEC
§8): the tmpfs copy served from memory by a minimal low-level FUSE program with kombofs's
kernel-cache settings, so the table shows what the kernel's FUSE client costs and what
kombofs adds on top. Python standard library only; the measured commands are the real
ones (find, cat, grep, jq, ls, curl), run through /bin/sh the same way on both sides.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SANDBOX = os.path.join(ROOT, "tests", "sandbox", "kombo_sandbox.py")
WEBHOOK_BENCH = os.path.join(HERE, "webhook_latency.py")
PY = "/usr/bin/python3"
INTEGRATION = "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"
API_KEY = "sandbox-key"
RECORD_DIRS = ("absence-types", "absences", "employees", "employments", "groups",
               "legal-entities", "locations", "time-off-balances", "timesheets")
TREE = RECORD_DIRS + ("changes",)          # everything a reader can read, minus .control/.status
NO_MATCH = "zzzz-kombofs-bench-no-match"
DELTA_CHANGES = 100

T0 = time.monotonic()


class BenchError(Exception):
    pass


class Stop(BaseException):
    """SIGINT/SIGTERM: unwind through every finally block."""


def on_signal(signum, frame):
    raise Stop(signum)


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def now_iso():
    """The timestamp format of .status (UTC, milliseconds), for string comparison."""
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_iso(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def run_duration(run):
    """Seconds between started_at and finished_at of a .status last_full/last_delta."""
    if not run or not run.get("finished_at") or run.get("result") != "ok":
        raise BenchError(f"fetch did not finish ok: {run}")
    return parse_iso(run["finished_at"]) - parse_iso(run["started_at"])


def median(xs):
    return statistics.median(xs) if xs else None


def mounts():
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return [line.split() for line in f]


def is_mounted(path):
    path = os.path.realpath(path)
    return any(m[1] == path for m in mounts())


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = args.tmp
        self.key = os.path.join(self.tmp, "api-key")
        with open(self.key, "w", encoding="utf-8") as f:
            f.write(API_KEY + "\n")
        os.chmod(self.key, 0o600)
        # A private copy: the lead may rebuild build/kombofs while this runs.
        self.bin = os.path.join(self.tmp, "kombofs")
        shutil.copy2(args.kombofs, self.bin)
        self.floor_bin = None
        if args.floor:
            self.floor_bin = os.path.join(self.tmp, "kombofs-floor")
            shutil.copy2(args.floor, self.floor_bin)
        self.live = []          # objects with .stop(), stopped in reverse order on exit

    def register_pid(self, pid):
        with open(os.path.join(self.tmp, "pids"), "a", encoding="utf-8") as f:
            f.write(f"{pid}\n")

    def cleanup(self):
        for obj in reversed(self.live):
            try:
                obj.stop()
            except Exception as e:  # keep going: everything must be stopped
                log(f"cleanup: {obj}: {e}")
        self.live = []


class Sandbox:
    def __init__(self, bench, name, employees):
        self.bench, self.name, self.employees = bench, name, employees
        self.proc = None
        self.conn = None

    def start(self):
        tmp = self.bench.tmp
        ready = os.path.join(tmp, f"{self.name}.port")
        self.logf = open(os.path.join(tmp, f"{self.name}.log"), "w", encoding="utf-8")
        t = time.monotonic()
        self.proc = subprocess.Popen(
            [PY, SANDBOX, "--host", "127.0.0.1", "--port", "0", "--ready-file", ready,
             "--employees", str(self.employees), "--api-key-file", self.bench.key],
            stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.bench.register_pid(self.proc.pid)
        self.bench.live.append(self)
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                raise BenchError(f"sandbox exited with {self.proc.returncode}; see {self.logf.name}")
            if time.monotonic() - t > 900:
                raise BenchError("sandbox did not start in 900 s")
            time.sleep(0.1)
        with open(ready, encoding="utf-8") as f:
            self.port = int(f.read().strip())
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"
        log(f"sandbox {self.name}: {self.employees} employees, ready in {time.monotonic() - t:.1f} s "
            f"on port {self.port}")
        return self

    def stop(self):
        if self.conn:
            self.conn.close()
            self.conn = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in self.bench.live:
            self.bench.live.remove(self)

    def _request(self, method, path, body=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            try:
                data = json.dumps(body).encode() if body is not None else None
                self.conn.request(method, path, data,
                                  {"Content-Type": "application/json"} if data else {})
                resp = self.conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise BenchError(f"sandbox {method} {path}: {resp.status} {raw[:200]!r}")
            return json.loads(raw)

    def stats(self):
        return self._request("GET", "/_sandbox/stats")

    def reset_stats(self):
        self._request("POST", "/_sandbox/stats/reset")

    def requests(self):
        return self._request("GET", "/_sandbox/requests")

    def mutate(self, op, **args):
        return self._request("POST", "/_sandbox/mutate", {"op": op, "args": args})["result"]

    def page_urls(self, endpoint):
        """The URLs of the employees requests in the request log, in order."""
        out = []
        for r in self.requests():
            if r["path"] == f"/v1/hris/{endpoint}":
                if r["status"] != 200:
                    raise BenchError(f"a logged request failed: {r}")
                out.append(self.base + r["path"] + "?" + urllib.parse.urlencode(r["query"]))
        return out


class Mount:
    """One kombofs daemon, started the way a user starts it (no -f: returns once mounted)."""

    def __init__(self, bench, name, sandbox, cache, models=None):
        self.bench, self.name, self.sb, self.cache = bench, name, sandbox, cache
        self.mnt = os.path.join(bench.tmp, name)
        os.makedirs(self.mnt, exist_ok=True)
        self.models = models
        self.pid = None
        self.logpath = os.path.join(bench.tmp, f"{name}.log")

    def __str__(self):
        return f"kombofs {self.name}"

    def fresh_cache(self):
        for suffix in ("", "-wal", "-shm", "-journal", "-building"):
            try:
                os.unlink(self.cache + suffix)
            except FileNotFoundError:
                pass

    def start(self):
        """Starts the daemon; returns (seconds from exec to the mount, iso time of exec)."""
        cmd = [self.bench.bin, INTEGRATION, self.mnt, f"--api-url={self.sb.url}",
               f"--api-key-file={self.bench.key}", f"--cache={self.cache}"]
        if self.models:
            cmd.append(f"--models={self.models}")
        iso = now_iso()
        with open(self.logpath, "a", encoding="utf-8") as logf:
            t = time.monotonic()
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, timeout=3600)
            dt = time.monotonic() - t
        self.bench.live.append(self)
        if r.returncode != 0 or not is_mounted(self.mnt):
            raise BenchError(f"kombofs exited with {r.returncode} (mounted: {is_mounted(self.mnt)}); "
                             f"log: {self.log_tail()}")
        self.pid = self.find_pid()
        self.bench.register_pid(self.pid)
        return dt, iso

    def find_pid(self):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0] == self.bench.bin.encode() and self.mnt.encode() in argv:
                return int(entry)
        raise BenchError(f"cannot find the daemon of {self.mnt}")

    def log_tail(self):
        try:
            with open(self.logpath, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-8:])
        except OSError:
            return "(no log)"

    def stop(self):
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL, check=False)
        if self.pid:
            deadline = time.monotonic() + 60
            while alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if alive(self.pid):
                log(f"{self}: daemon {self.pid} still runs 60 s after the unmount; killing it")
                os.kill(self.pid, signal.SIGKILL)
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL, check=False)
        self.pid = None
        if self in self.bench.live:
            self.bench.live.remove(self)

    def restart(self):
        self.stop()
        return self.start()

    def status(self):
        with open(os.path.join(self.mnt, ".status"), encoding="utf-8") as f:
            return json.load(f)

    def requests(self):
        return self.status()["requests"]

    def hwm_mb(self):
        """Peak resident set size of the daemon so far (VmHWM), in MB (10^6 bytes)."""
        with open(f"/proc/{self.pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
        raise BenchError("no VmHWM")

    def control(self, command):
        """Writes one command to .control (as `echo CMD > .control` does); returns seconds."""
        t = time.monotonic()
        fd = os.open(os.path.join(self.mnt, ".control"), os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, (command + "\n").encode())
        finally:
            os.close(fd)
        return time.monotonic() - t

    def wait_quiet(self, since_iso, limit=180):
        """After a (re)start kombofs catches up in the background (one delta per endpoint).
        Waits until that is over, so that it neither competes with a measurement nor is
        counted as API traffic caused by reading."""
        t = time.monotonic()
        last_total, stable = None, time.monotonic()
        while time.monotonic() - t < limit:
            eps = self.status()["endpoints"]
            running = any((e.get(k) or {}).get("result") == "running"
                          for e in eps.values() for k in ("last_delta", "last_full"))
            caught_up = all((e.get("last_delta") or {}).get("started_at", "") >= since_iso
                            for e in eps.values())
            total = self.sb.stats()["total"]
            if total != last_total:
                last_total, stable = total, time.monotonic()
            quiet_for = time.monotonic() - stable
            if not running and quiet_for >= 0.5 and (caught_up or time.monotonic() - t > 5):
                return time.monotonic() - t
            time.sleep(0.1)
        log(f"{self}: still busy {limit} s after the start; measuring anyway")
        return time.monotonic() - t


class Floor:
    """The FUSE floor (tests/bench/floor.c) serving a copy of the tree from memory. Started
    in the foreground with -r: an unmount from outside makes it mount again with the tree
    still loaded, so a cold run drops every kernel cache of the mount the way a kombofs
    restart does, without reloading the files."""

    def __init__(self, bench, src):
        self.bench, self.src = bench, src
        self.mnt = os.path.join(bench.tmp, "floor")
        os.makedirs(self.mnt, exist_ok=True)
        self.proc = None
        self.logpath = os.path.join(bench.tmp, "floor.log")
        self.counts = os.path.join(bench.tmp, "floor.counts")

    def __str__(self):
        return "the FUSE floor"

    def log_tail(self):
        try:
            with open(self.logpath, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-8:])
        except OSError:
            return "(no log)"

    def _wait_mounted(self, t, limit):
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None:
                raise BenchError(f"kombofs-floor exited with {self.proc.returncode}; log: {self.log_tail()}")
            if time.monotonic() - t > limit:
                raise BenchError(f"kombofs-floor not mounted after {limit} s; log: {self.log_tail()}")
            time.sleep(0.005)
        return time.monotonic() - t

    def start(self):
        """Loads the tree and mounts; returns seconds from exec to the mount."""
        with open(self.logpath, "a", encoding="utf-8") as logf:
            t = time.monotonic()
            self.proc = subprocess.Popen([self.bench.floor_bin, self.src, self.mnt, "-f", "-r",
                                          "-c", self.counts],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)
        self.bench.register_pid(self.proc.pid)
        self.bench.live.append(self)
        return self._wait_mounted(t, 1800)

    def restart(self):
        """Unmounts from outside and waits for the mount to come back; returns seconds."""
        t = time.monotonic()
        r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise BenchError(f"fusermount3 -u {self.mnt}: {r.stderr.strip()}")
        return self._wait_mounted(t, 60)

    def _read_counts(self):
        try:
            with open(self.counts, encoding="utf-8") as f:
                return dict((k, int(v)) for k, v in (line.split() for line in f if line.strip()))
        except FileNotFoundError:
            return {"dump": 0}

    def requests(self):
        """The requests it served so far, by type (SIGUSR1 makes it write them)."""
        before = self._read_counts()["dump"]
        self.proc.send_signal(signal.SIGUSR1)
        t = time.monotonic()
        while True:
            got = self._read_counts()
            if got["dump"] > before:
                del got["dump"]
                return got
            if time.monotonic() - t > 30:
                raise BenchError(f"kombofs-floor wrote no request counts; log: {self.log_tail()}")
            time.sleep(0.002)

    def hwm_mb(self):
        with open(f"/proc/{self.proc.pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
        raise BenchError("no VmHWM")

    def stop(self):
        # SIGTERM: it unmounts and exits (-r mounts again only after an unmount from outside).
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log(f"{self}: still runs 60 s after SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL, check=False)
        if self in self.bench.live:
            self.bench.live.remove(self)


class Tmpfs:
    def __init__(self, bench):
        self.bench = bench
        self.path = os.path.join(bench.tmp, "tmpfs")
        os.makedirs(self.path)
        self.mounted = False

    def __str__(self):
        return "tmpfs"

    def start(self):
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "kombofs-bench", self.path],
                           capture_output=True, text=True)
        if r.returncode == 0:
            self.mounted = True
        else:
            # Not root: /dev/shm is a tmpfs too.
            shm = os.path.join("/dev/shm", os.path.basename(self.bench.tmp))
            if subprocess.run(["stat", "-f", "-c", "%T", "/dev/shm"], capture_output=True,
                              text=True).stdout.strip() != "tmpfs":
                raise BenchError(f"cannot mount a tmpfs ({r.stderr.strip()}) and /dev/shm is no tmpfs")
            os.makedirs(shm)
            os.rmdir(self.path)
            os.symlink(shm, self.path)
            self.shm = shm
            log(f"cannot mount a tmpfs ({r.stderr.strip()}); using {shm}")
        self.bench.live.append(self)

    def stop(self):
        if self.mounted:
            subprocess.run(["umount", self.path], check=False)
            self.mounted = False
        elif getattr(self, "shm", None):
            shutil.rmtree(self.shm, ignore_errors=True)
            self.shm = None
        if self in self.bench.live:
            self.bench.live.remove(self)


# ------------------------------------------------------------------------------------
def sh(cmd, cwd=None, ok=(0,), timeout=3600):
    """Runs cmd with /bin/sh in its own process group; returns seconds. Standard output
    goes to /dev/null unless cmd redirects it. On any exception (timeout, SIGINT) the
    whole group is killed, so no find or cat outlives the benchmark."""
    t = time.monotonic()
    p = subprocess.Popen(["/bin/sh", "-c", cmd], cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = p.communicate(timeout=timeout)
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise
    dt = time.monotonic() - t
    if p.returncode not in ok:
        raise BenchError(f"`{cmd}` in {cwd} exited with {p.returncode}: {err[-500:]!r}")
    return dt


TREE_ARGS = " ".join(TREE)
OPS = {
    # what, command (run in the root of the tree), accepted exit codes
    "cat": (f"find {TREE_ARGS} -type f -exec cat {{}} + >/dev/null", (0,)),
    "grep": (f"grep -r -F -e {NO_MATCH} {TREE_ARGS}", (1,)),
    "jq": ("find employees -type f -print0 | xargs -0 jq -c .id >/dev/null", (0,)),
    "ls": ("ls -l employees >/dev/null", (0,)),
}


# The cold rows (SPEC §8: cold `grep -r`, `cat` and `jq` ≤ 2.5× tmpfs), each after a restart.
COLD_OPS = ("cat", "grep", "jq")


def op(name, cwd):
    cmd, ok = OPS[name]
    return sh(cmd, cwd=cwd, ok=ok)


def drop_page_cache():
    """Give the next warm pass the memory it needs: the bench holds the tree three times
    (the tmpfs copy, the floor's heap and the two mounts' page caches) and, without this,
    a side's timed "warm" pass re-read what the others had pushed out (a run at N =
    100,000 sent 154,227 LOOKUPs and 159,163 READs in kombofs's warm grep -r). Drops clean
    page cache only (not tmpfs pages, not dentries or inodes); the untimed pass that follows
    reads the side's files in again. Root only; elsewhere a no-op."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("1\n")
    except OSError:
        pass


def tree_size(path):
    """(files, bytes) of the tree under path; find -printf %s stats every file."""
    out = subprocess.run(["/bin/sh", "-c", f"find {TREE_ARGS} -type f -printf '%s\\n' | "
                          "awk '{ n++; s += $1 } END { print n, s }'"], cwd=path,
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def rotated(sides, rep):
    """The measurement order of round rep: each side goes first in turn."""
    k = rep % len(sides)
    return sides[k:] + sides[:k]


def curl_config(tmp, name, urls):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'header = "Authorization: Bearer {API_KEY}"\n')
        f.write(f'header = "X-Integration-Id: {INTEGRATION}"\n')
        f.write("compressed\nsilent\n")
        for u in urls:
            f.write(f'url = "{u}"\noutput = "/dev/null"\n')
    return path


def curl_pass(cfg, n):
    """One curl process, one kept-alive connection, every URL of cfg; returns seconds."""
    t = time.monotonic()
    r = subprocess.run(["curl", "-K", cfg, "-w", "%{http_code}\\n"], capture_output=True,
                       text=True, timeout=3600)
    dt = time.monotonic() - t
    codes = r.stdout.split()
    if r.returncode != 0 or len(codes) != n or set(codes) != {"200"}:
        raise BenchError(f"curl failed ({r.returncode}, codes {sorted(set(codes))}): {r.stderr[-300:]}")
    return dt


# One curl process per page, reading the cursor from the first bytes of the page
# (the envelope starts with {"status":"success","data":{"next":...}).
FOLLOW = r'''
url="$1/hris/employees?page_size=250" pages=0
while :; do
    curl -sf --compressed -H "Authorization: Bearer $2" -H "X-Integration-Id: $3" -o "$4" "$url" || exit 1
    pages=$((pages + 1))
    IFS= read -r -N 400 head < "$4" || true
    case "$head" in
        *'"next":"'*) next=${head#*\"next\":\"}; url="$1/hris/employees?page_size=250&cursor=${next%%\"*}" ;;
        *) break ;;
    esac
done
echo "$pages" > "$4.pages"
'''


def curl_follow(sb, tmp):
    page = os.path.join(tmp, "follow.page")
    t = time.monotonic()
    r = subprocess.run(["bash", "-c", FOLLOW, "follow", sb.url, API_KEY, INTEGRATION, page],
                       capture_output=True, text=True, timeout=3600)
    dt = time.monotonic() - t
    if r.returncode != 0:
        raise BenchError(f"curl cursor loop failed: {r.stderr[-300:]}")
    with open(page + ".pages", encoding="utf-8") as f:
        return dt, int(f.read())


def delta_of(before, after):
    return {k: after[k] - before[k] for k in after if isinstance(after.get(k), int)}


# ------------------------------------------------------------------------------------
class Run:
    def __init__(self, bench):
        self.b = bench
        self.a = bench.args
        self.R = bench.args.reps
        self.N = bench.args.employees
        self.samples = {}
        self.info = {}

    def add(self, key, value):
        self.samples.setdefault(key, []).append(value)

    # -- full fetch, peak RSS -----------------------------------------------------------
    def full_fetch(self, sb):
        log(f"full fetch of {self.N} employees (--models=employees, fresh cache) vs curl, "
            f"{self.R} times each")
        m = Mount(self.b, "ff", sb, os.path.join(self.b.tmp, "ff.db"), models="employees")
        # Warm-up: fills the sandbox page cache with exactly kombofs's pages (gzip), and
        # gives the list of URLs kombofs requested.
        sb.reset_stats()
        m.fresh_cache()
        m.start()
        m.stop()
        urls = sb.page_urls("employees")
        stats = sb.stats()
        self.info["full_fetch_pages"] = len(urls)
        self.info["full_fetch_wire_bytes"] = stats["bytes_sent"]
        cfg = curl_config(self.b.tmp, "pages.curl", urls)
        curl_pass(cfg, len(urls))          # warm-up for curl: the same cached pages
        curl_follow(sb, self.b.tmp)
        for rep in range(self.R):
            def fuse():
                m.fresh_cache()
                dt, _ = m.start()
                run = m.status()["endpoints"]["employees"]["last_full"]
                if run["fetched"] != self.N:
                    raise BenchError(f"full fetch fetched {run['fetched']}, not {self.N}")
                self.add("full_fetch", run_duration(run))
                self.add("full_fetch_to_mount", dt)
                self.add("rss_full_fetch", m.hwm_mb())
                m.stop()

            def base():
                self.add("full_fetch_curl", curl_pass(cfg, len(urls)))
                dt, pages = curl_follow(sb, self.b.tmp)
                if pages != len(urls):
                    raise BenchError(f"curl followed {pages} pages, kombofs {len(urls)}")
                self.add("full_fetch_curl_follow", dt)

            for f in ((fuse, base) if rep % 2 == 0 else (base, fuse)):
                f()
            log(f"  rep {rep + 1}: kombofs {self.samples['full_fetch'][-1]:.2f} s, "
                f"curl {self.samples['full_fetch_curl'][-1]:.2f} s, "
                f"curl per page {self.samples['full_fetch_curl_follow'][-1]:.2f} s, "
                f"VmHWM {self.samples['rss_full_fetch'][-1]:.1f} MB")
        m.fresh_cache()

    # -- the whole mirror and its tmpfs copy ---------------------------------------------
    def mirror(self, sb):
        log(f"mirroring all nine endpoints of {self.N} employees (fresh cache)")
        m = Mount(self.b, "mirror", sb, os.path.join(self.b.tmp, "mirror.db"))
        m.fresh_cache()
        dt, _ = m.start()
        st = m.status()
        self.info["mirror_mount_s"] = dt
        self.info["mirror_full_fetch_s"] = {d: round(run_duration(e["last_full"]), 3)
                                            for d, e in st["endpoints"].items()}
        self.info["mirror_records"] = {d: e["records"] for d, e in st["endpoints"].items()}
        self.info["mirror_changes"] = st["changes"]
        self.info["mirror_rss_mb"] = m.hwm_mb()
        log(f"  mounted in {dt:.1f} s: {sum(self.info['mirror_records'].values())} records, "
            f"change log {st['changes']}")
        tf = Tmpfs(self.b)
        tf.start()
        t = time.monotonic()
        sh(f"tar -C {shlex.quote(m.mnt)} -cf - {TREE_ARGS} | tar -C {shlex.quote(tf.path)} -xf -")
        self.info["copy_s"] = time.monotonic() - t
        # The same files and bytes on both sides. find -printf %s stats every file, which also
        # refreshes the attributes the kernel dropped when tar's reads reached kombofs
        # (FUSE invalidates a file's cached atime after a read that reaches the daemon):
        # from here on the mount is warm, the kernel holds pages and attributes.
        n_fuse, size_fuse = tree_size(m.mnt)
        n_tmp, size = tree_size(tf.path)
        if (n_fuse, size_fuse) != (n_tmp, size):
            raise BenchError(f"the copy has {n_tmp} files, {size} bytes; the mount {n_fuse}, {size_fuse}")
        self.info["tree_files"] = int(n_fuse)
        self.info["tree_bytes"] = int(size)
        log(f"  copied to tmpfs in {self.info['copy_s']:.1f} s: {int(n_fuse)} files, "
            f"{int(size) / 1e6:.0f} MB")
        # The export read by exports(), beside the tree, so that the floor serves it too.
        src = os.path.join(m.mnt, "exports", "employees.jsonl")
        dst = os.path.join(tf.path, "exports", "employees.jsonl")
        os.makedirs(os.path.dirname(dst))
        sh(f"cp {shlex.quote(src)} {shlex.quote(dst)}")
        return m, tf, self.floor(tf, n_tmp, size)

    def floor(self, tf, files, size):
        """Starts the FUSE floor on the tmpfs copy and warms it as mirror() warmed kombofs:
        every file read once, then stat'ed (the read invalidated its cached atime)."""
        if not self.b.floor_bin:
            return None
        fl = Floor(self.b, tf.path)
        dt = fl.start()
        self.info["floor_start_s"] = dt
        t = time.monotonic()
        op("cat", fl.mnt)
        sh("cat exports/employees.jsonl >/dev/null", cwd=fl.mnt)
        if tree_size(fl.mnt) != (files, size):
            raise BenchError(f"the floor serves {tree_size(fl.mnt)} files and bytes, not {files}, {size}")
        self.info["floor_warmup_s"] = time.monotonic() - t
        self.info["floor_rss_mb"] = fl.hwm_mb()
        log(f"  the FUSE floor loaded and mounted the copy in {dt:.1f} s (VmHWM "
            f"{self.info['floor_rss_mb']:.0f} MB), warmed in {self.info['floor_warmup_s']:.1f} s")
        return fl

    # -- reads: warm, cold, ls -l, restart, API requests -------------------------------
    def reads(self, sb, m, tf, fl):
        s = self.samples
        # Warm: the copy read every file through kombofs and find stat'ed them since, so the
        # kernel holds the pages, the attributes and the listings (see mirror()); the floor
        # was warmed the same way (see floor()). Every timed pass still follows an untimed
        # pass of the same command on the same side: this kernel's DAMON reclaim drops page
        # cache left idle for about a minute, which made "warm" passes partly cold. And on the
        # FUSE sides the clean page cache is dropped first (drop_page_cache), so that the
        # side's pages are not pushed out during its timed pass by the other sides', and two
        # untimed passes follow: the first reads the files in, the second refreshes the
        # attributes that the first one's READs made stale (the kernel marks atime stale
        # after each READ), so the timed pass is the page cache's.
        log(f"warm reads: {self.R} rounds of cat, grep -r, jq, ls -l, kombofs, tmpfs"
            f"{' and the floor' if fl else ''} in turn")
        api = 0
        sb.reset_stats()
        for rep in range(self.R):
            for name in ("cat", "grep", "jq", "ls"):
                def fuse():
                    drop_page_cache()
                    op(name, m.mnt)              # reads the files in again
                    op(name, m.mnt)              # refreshes what those READs left stale
                    r1 = m.requests()
                    r2 = m.requests()                # what reading .status itself costs
                    self.add(f"warm_{name}", op(name, m.mnt))
                    calib, used = delta_of(r1, r2), delta_of(r2, m.requests())
                    self.add(f"warm_{name}_requests", {k: used[k] - calib[k] for k in used})

                def base():
                    op(name, tf.path)
                    self.add(f"tmpfs_{name}", op(name, tf.path))

                def floor():
                    drop_page_cache()
                    op(name, fl.mnt)
                    op(name, fl.mnt)
                    r1 = fl.requests()
                    self.add(f"floor_{name}", op(name, fl.mnt))
                    self.add(f"floor_{name}_requests", delta_of(r1, fl.requests()))

                for f in rotated([fuse, base, floor] if fl else [fuse, base], rep):
                    f()
            log(f"  rep {rep + 1}: " + ", ".join(
                f"{n} {s['warm_' + n][-1]:.2f}/{s['tmpfs_' + n][-1]:.2f}"
                + (f"/{s['floor_' + n][-1]:.2f}" if fl else "") + " s"
                for n in ("cat", "grep", "jq", "ls")) + f" (kombofs/tmpfs{'/floor' if fl else ''})")
        api += sb.stats()["total"]

        log(f"cold reads: {self.R} rounds of [restart, ls -l employees/ | tmpfs; "
            f"restart, cat of every file | tmpfs]" + (", the floor remounted for each" if fl else ""))
        employees = os.path.join(m.mnt, "employees")
        for rep in range(self.R):
            def ls_fuse():
                nonlocal api
                # A fresh mount: the kernel has nothing of the tree cached.
                dt, iso = m.restart()
                self.add("restart", dt)
                m.wait_quiet(iso)
                sb.reset_stats()
                os.stat(employees)                       # the directory's own LOOKUP
                r1 = m.requests()
                r2 = m.requests()
                self.add("ls_cold", op("ls", m.mnt))
                r3 = m.requests()
                calib, used = delta_of(r1, r2), delta_of(r2, r3)
                for k in ("lookup", "readdirplus", "getxattr", "getattr"):
                    self.add(f"ls_cold_{k}", used[k] - calib[k])
                api += sb.stats()["total"]

            def ls_floor():
                self.add("floor_restart", fl.restart())
                os.stat(os.path.join(fl.mnt, "employees"))
                self.add("ls_cold_floor", op("ls", fl.mnt))

            def cold_fuse(name):
                nonlocal api
                dt, iso = m.restart()
                self.add("restart", dt)
                m.wait_quiet(iso)
                sb.reset_stats()
                r1 = m.requests()
                r2 = m.requests()
                self.add(f"cold_{name}", op(name, m.mnt))
                calib, used = delta_of(r1, r2), delta_of(r2, m.requests())
                self.add(f"cold_{name}_requests", {k: used[k] - calib[k] for k in used})
                api += sb.stats()["total"]

            def cold_floor(name):
                self.add("floor_restart", fl.restart())
                r1 = fl.requests()
                self.add(f"cold_{name}_floor", op(name, fl.mnt))
                self.add(f"cold_{name}_floor_requests", delta_of(r1, fl.requests()))

            # kombofs and the floor take turns going first; the tmpfs pass follows them.
            for f in rotated([ls_fuse, ls_floor] if fl else [ls_fuse], rep):
                f()
            self.add("ls_cold_tmpfs", op("ls", tf.path))
            for name in COLD_OPS:
                for f in rotated([cold_fuse, cold_floor] if fl else [cold_fuse], rep):
                    f(name)
                self.add(f"cold_{name}_tmpfs", op(name, tf.path))
            log(f"  rep {rep + 1}: restart {s['restart'][-2]:.2f}/{s['restart'][-1]:.2f} s, "
                f"ls -l {s['ls_cold'][-1]:.2f} s ({s['ls_cold_lookup'][-1]} lookups) / tmpfs "
                f"{s['ls_cold_tmpfs'][-1]:.2f} s"
                + (f" / floor {s['ls_cold_floor'][-1]:.2f} s" if fl else "")
                + "".join(f", {n} {s[f'cold_{n}'][-1]:.2f} / tmpfs {s[f'cold_{n}_tmpfs'][-1]:.2f} s"
                          + (f" / floor {s[f'cold_{n}_floor'][-1]:.2f} s" if fl else "")
                          for n in COLD_OPS))
        self.add("api_requests_reading", api)

    # -- exports (SPEC §10) ----------------------------------------------------------------
    def exports(self, m, tf, fl):
        """`wc -l exports/employees.jsonl`: cold (first read after a restart, streamed from
        the cache), warm (the kernel's page cache), the same on the floor (remounted for the
        cold read), and the same file on the tmpfs (copied there by mirror()); the daemon's
        peak RSS after them."""
        s = self.samples
        rel = os.path.join("exports", "employees.jsonl")
        src = os.path.join(m.mnt, rel)
        dst = os.path.join(tf.path, rel)
        size = os.stat(dst).st_size
        if os.stat(src).st_size != size:
            raise BenchError(f"exports/employees.jsonl: st_size {os.stat(src).st_size}, read {size}")
        self.info["export_bytes"] = size
        log(f"exports: {self.R} rounds of [restart, wc -l cold, wc -l warm | tmpfs], {size / 1e6:.0f} MB")
        wc = "wc -l < {} >/dev/null"
        for rep in range(self.R):
            def fuse():
                dt, iso = m.restart()
                m.wait_quiet(iso)
                self.add("export_cold", sh(wc.format(shlex.quote(src))))
                self.add("export_warm", sh(wc.format(shlex.quote(src))))

            def floor():
                fl.restart()
                path = shlex.quote(os.path.join(fl.mnt, rel))
                self.add("export_cold_floor", sh(wc.format(path)))
                self.add("export_warm_floor", sh(wc.format(path)))

            for f in rotated([fuse, floor] if fl else [fuse], rep):
                f()
            self.add("export_tmpfs", sh(wc.format(shlex.quote(dst))))
            self.add("export_rss", m.hwm_mb())
            log(f"  rep {rep + 1}: cold {s['export_cold'][-1]:.2f} s, warm {s['export_warm'][-1]:.2f} s, "
                f"tmpfs {s['export_tmpfs'][-1]:.2f} s, VmHWM {s['export_rss'][-1]:.1f} MB"
                + (f"; floor cold {s['export_cold_floor'][-1]:.2f} s, warm {s['export_warm_floor'][-1]:.2f} s"
                   if fl else ""))

    # -- delta fetches -------------------------------------------------------------------
    def delta(self, sb, m, key):
        names = sorted(os.listdir(os.path.join(m.mnt, "employees")))
        ids = [urllib.parse.unquote(n[:-len(".json")]) for n in names if n.endswith(".json")]
        k = min(DELTA_CHANGES, len(ids))
        step = len(ids) // k
        chosen = ids[::step][:k]
        log(f"delta fetch ({key}): {k} changed employees of {len(ids)}, {self.R} times "
            f"(+1 warm-up) vs curl of the same request")
        for rep in range(self.R + 1):
            for i, eid in enumerate(chosen):
                sb.mutate("update_employee", id=eid, job_title=f"Bench delta {rep}.{i}")
            sb.reset_stats()
            dt = m.control("sync employees")
            run = m.status()["endpoints"]["employees"]["last_delta"]
            urls = sb.page_urls("employees")
            # The baseline: the same request(s), on a sandbox whose caches a mutation has
            # just cleared, as they were for kombofs.
            sb.mutate("update_employee", id=chosen[0], job_title=f"Bench delta {rep}.x")
            cfg = curl_config(self.b.tmp, f"delta-{key}.curl", urls)
            base = curl_pass(cfg, len(urls))
            if rep == 0:
                continue
            self.add(key, dt)
            self.add(key + "_status", run_duration(run))
            self.add(key + "_curl", base)
            self.add(key + "_fetched", run["fetched"])
            self.add(key + "_changed", run["changed"])
            self.add(key + "_pages", len(urls))
            log(f"  rep {rep}: .control {dt * 1000:.1f} ms (last_delta {run_duration(run) * 1000:.0f} ms, "
                f"{run['fetched']} fetched, {run['changed']} changed, {len(urls)} page(s)), "
                f"curl {base * 1000:.1f} ms")

    # -- webhooks ------------------------------------------------------------------------
    def webhook(self):
        if not os.path.exists(WEBHOOK_BENCH):
            self.info["webhook"] = "not measured (webhook receiver pending)"
            return
        changes = 20 if self.a.smoke else 100
        log(f"webhook latency: tests/bench/webhook_latency.py --employees {self.N} --changes {changes}")
        env = dict(os.environ, KOMBOFS_BIN=self.b.bin)
        try:
            proc = subprocess.Popen([PY, WEBHOOK_BENCH, "--employees", str(self.N), "--changes",
                                     str(changes)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=env, start_new_session=True)
            self.b.register_pid(proc.pid)
            try:
                out, _ = proc.communicate(timeout=1800)
            except BaseException:
                # SIGINT lets it unmount and stop its sandbox in its finally blocks.
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise
        except subprocess.SubprocessError as e:
            self.info["webhook"] = f"not measured (webhook_latency.py: {e})"
            return
        self.info["webhook_output"] = out
        sys.stderr.write("".join("    " + ln + "\n" for ln in out.splitlines()))
        if proc.returncode != 0:
            self.info["webhook"] = f"not measured (webhook_latency.py exited with {proc.returncode})"
            return
        # Sections start with "webhook -> visible to cat, <how>:"; each has lines
        # "<label>  n=..  median X ms  p90 ..  p99 Y ..". The first section is the one
        # the table shows; all of them go to the details.
        sections, cur = [], None
        for line in out.splitlines():
            if line.startswith("webhook -> visible"):
                cur = {"title": line.split(",", 1)[-1].strip().rstrip(":")}
                sections.append(cur)
            elif cur is not None and not line.startswith(" "):
                cur = None
            elif cur is not None:
                for label, key in (("from the start of the POST", "post"), ("from the 200", "reply"),
                                   ("the sandbox answering that fetch", "api")):
                    mt = re.search(re.escape(label) + r".*?median\s+([\d.]+) ms.*?p99\s+([\d.]+)", line)
                    if mt:
                        cur[key] = (float(mt.group(1)) / 1000, float(mt.group(2)) / 1000)
        sections = [sec for sec in sections if "post" in sec]
        if not sections:
            self.info["webhook"] = "not measured (could not read webhook_latency.py's output)"
            return
        got = dict(sections[0])
        got["sections"] = sections
        self.info["webhook"] = got
        self.info["webhook_changes"] = changes


# ------------------------------------------------------------------------------------
def fmt_time(s):
    if s is None:
        return "—"
    if s < 1:
        return f"{s * 1000:.1f} ms" if s < 0.1 else f"{s * 1000:.0f} ms"
    return f"{s:.2f} s"


def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}×"


def machine(binary):
    import hashlib
    with open(binary, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    mem = "?"
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "?"
    with open("/proc/loadavg", encoding="utf-8") as f:
        load = f.read().split()[0]
    return {"nproc": os.cpu_count(), "memory": mem, "kernel": platform.release(), "cpu": cpu,
            "commit": rev, "load": load, "binary": digest}


def table(run):
    s, info, N = run.samples, run.info, run.N
    med = {k: median(v) for k, v in s.items() if v and not isinstance(v[0], dict)}
    rows = []

    def row(what, value, baseline, ratio, target, met, floor="—", fratio=None):
        rows.append((what, value, baseline, floor, fmt_ratio(ratio), fmt_ratio(fratio), target,
                     "—" if met is None else ("yes" if met else "no")))

    def floor_cells(v, b, f):
        """The floor column (with the floor's own ratio to tmpfs) and kombofs ÷ floor."""
        if f is None:
            return "—", None
        return (fmt_time(f) + (f" ({f / b:.2f}× tmpfs)" if b else "")), (v / f if v is not None and f else None)

    def ratio_row(what, key, base_key, floor_key, limit, target, flimit=None):
        """A read row: kombofs (value), tmpfs (baseline), the floor, kombofs ÷ tmpfs and
        kombofs ÷ floor. Met: ÷ tmpfs ≤ limit, and ÷ floor ≤ flimit when there is one."""
        v, b, f = med.get(key), med.get(base_key), med.get(floor_key)
        r = v / b if v is not None and b else None
        fcell, fr = floor_cells(v, b, f)
        met = None if r is None else r <= limit and (flimit is None or fr is None or fr <= flimit)
        row(what, fmt_time(v), fmt_time(b) + " tmpfs" if b is not None else "—", r, target, met,
            fcell, fr)

    # SPEC §8: warm ≤ 1.2× tmpfs and ≤ 1.05× the floor; cold ≤ 2.5× tmpfs.
    files = info.get("tree_files")
    warm = "≤ 1.2×, ≤ 1.05× floor"
    ratio_row(f"warm `grep -r` over the tree ({files} files)", "warm_grep", "tmpfs_grep", "floor_grep",
              1.2, warm, 1.05)
    ratio_row("warm `cat` of every file", "warm_cat", "tmpfs_cat", "floor_cat", 1.2, warm, 1.05)
    ratio_row(f"warm `jq -c .id` over every employee ({N} files)", "warm_jq", "tmpfs_jq", "floor_jq",
              1.2, warm, 1.05)
    ratio_row("cold: first `cat` of every file after mount", "cold_cat", "cold_cat_tmpfs",
              "cold_cat_floor", 2.5, "≤ 2.5×")
    ratio_row("cold: first `grep -r` over the tree after mount", "cold_grep", "cold_grep_tmpfs",
              "cold_grep_floor", 2.5, "≤ 2.5×")
    ratio_row("cold: first `jq -c .id` over every employee after mount", "cold_jq", "cold_jq_tmpfs",
              "cold_jq_floor", 2.5, "≤ 2.5×")
    v, b, f = med.get("ls_cold"), med.get("ls_cold_tmpfs"), med.get("ls_cold_floor")
    fcell, fr = floor_cells(v, b, f)
    row(f"`ls -l employees/` ({N} entries), cold", fmt_time(v), fmt_time(b) + " tmpfs",
        v / b if v and b else None, "≤ 2 s", v is not None and v <= 2.0, fcell, fr)
    lk = s.get("ls_cold_lookup", [])
    row("LOOKUP requests caused by that `ls -l`", str(max(lk)) if lk else "—", "—", None, "0",
        bool(lk) and max(lk) == 0)
    v, b, bf = med.get("full_fetch"), med.get("full_fetch_curl"), med.get("full_fetch_curl_follow")
    row(f"full fetch of {N} employees (.status last_full)", fmt_time(v),
        fmt_time(b) + " curl, 1 process", v / b if v and b else None, "≤ 1.5×", v and b and v / b <= 1.5)
    row("↳ the same, against curl following `next`", fmt_time(v), fmt_time(bf) + " curl per page",
        v / bf if v and bf else None, "≤ 1.5×", v and bf and v / bf <= 1.5)
    dn, dn10 = med.get("delta_n"), med.get("delta_n10")
    cn, cn10 = med.get("delta_n_curl"), med.get("delta_n10_curl")
    k = DELTA_CHANGES if N // 10 >= DELTA_CHANGES else N // 10
    row(f"delta fetch, {k} changed employees, {N} mirror (`sync employees`)", fmt_time(dn),
        fmt_time(cn) + " curl, same request", dn / cn if dn and cn else None, "≤ 100 ms",
        dn is not None and dn <= 0.1)
    row(f"↳ the same, {N // 10} mirror: independent of size", fmt_time(dn10),
        fmt_time(cn10) + " curl, same request", dn / dn10 if dn and dn10 else None,
        f"≤ 100 ms, and {N} ÷ {N // 10} ≤ 1.5×",
        dn is not None and dn10 is not None and dn10 <= 0.1 and dn / dn10 <= 1.5)
    wh = info.get("webhook")
    if isinstance(wh, dict):
        api = next((sec["api"] for sec in wh["sections"] if "api" in sec), None)
        row(f"webhook accepted → new content visible to `cat`, p50 ({wh['title']})",
            fmt_time(wh["post"][0]), fmt_time(api[0]) + " API answer" if api else "—",
            None, "≤ 30 ms", wh["post"][0] <= 0.030)
        api99 = fmt_time(api[1]) + " API answer" if api else "—"
        row("↳ the same, p99", fmt_time(wh["post"][1]), api99, None, "≤ 250 ms", wh["post"][1] <= 0.250)
    else:
        row("webhook accepted → new content visible to `cat`", wh or "not measured", "—", None,
            "p50 ≤ 30 ms, p99 ≤ 250 ms", None)
    v, b, rss_x = med.get("export_cold"), med.get("export_tmpfs"), s.get("export_rss", [])
    fcell, fr = floor_cells(v, b, med.get("export_cold_floor"))
    row(f"`wc -l exports/employees.jsonl` ({N} lines), cold, and the daemon's peak RSS",
        fmt_time(v) + (f", {max(rss_x):.1f} MB" if rss_x else ""),
        fmt_time(b) + " tmpfs" if b is not None else "—", v / b if v and b else None,
        "≤ 2×, RSS ≤ 100 MB", None if v is None or not b else v / b <= 2.0 and max(rss_x) <= 100,
        fcell, fr)
    ratio_row("↳ the same, warm (page cache)", "export_warm", "export_tmpfs", "export_warm_floor",
              1.2, "≤ 1.2×")
    rss = s.get("rss_full_fetch", [])
    wire = info.get("full_fetch_wire_bytes")
    row(f"peak RSS during the full fetch of {N} employees", f"{max(rss):.1f} MB" if rss else "—",
        f"{wire / 1e6:.0f} MB downloaded" if wire else "—", None, "≤ 100 MB",
        bool(rss) and max(rss) <= 100)
    v = med.get("restart")
    row(f"restart with a warm {N} cache → mount ready", fmt_time(v), "—", None, "≤ 1 s",
        v is not None and v <= 1.0)
    api = s.get("api_requests_reading", [])
    row("API requests caused by reading the whole tree", str(api[0]) if api else "—", "—", None, "0",
        bool(api) and api[0] == 0)
    return rows


def render(run, mach, started, elapsed):
    rows = table(run)
    with open("/proc/loadavg", encoding="utf-8") as f:
        end_load = f.read().split()[0]
    out = ["| what | value | baseline | floor | ratio | ÷ floor | target | met |",
           "|---|---|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    s, info = run.samples, run.info
    out.append("")
    out.append(f"N = {run.N} employees, {run.R} repetitions, medians; "
               f"machine: {mach['nproc']} CPUs ({mach['cpu']}), {mach['memory']} RAM, "
               f"Linux {mach['kernel']}; kombofs at commit {mach['commit']} (binary sha256 {mach['binary']}…); "
               f"run started {started} (load average {mach['load']}; at the end {end_load}), "
               f"took {elapsed / 60:.1f} min.")
    out.append("")
    out.append("Details:")
    files, size = info.get("tree_files"), info.get("tree_bytes")
    if files:
        out.append(f"- tree: the nine record directories and changes/: {files} files, "
                   f"{size / 1e6:.0f} MB; copied to the tmpfs with tar in {info['copy_s']:.1f} s; "
                   f"the full fetch of all nine endpoints took {info['mirror_mount_s']:.1f} s "
                   f"(peak RSS {info['mirror_rss_mb']:.1f} MB)")

    def spread(key):
        v = s.get(key)
        return f"{fmt_time(min(v))}–{fmt_time(max(v))}" if v else "—"

    if info.get("floor_start_s") is not None:
        out.append(f"- the FUSE floor (tests/bench/floor.c, kombofs's kernel-cache settings): the tmpfs "
                   f"copy loaded and mounted in {info['floor_start_s']:.1f} s, VmHWM "
                   f"{info['floor_rss_mb']:.0f} MB; remounted for each cold run in "
                   f"{spread('floor_restart')}. Value = kombofs, baseline = tmpfs; ÷ floor = "
                   f"kombofs ÷ floor, the part kombofs owns")
    for key, what in (("warm_grep", "warm grep"), ("warm_cat", "warm cat"), ("warm_jq", "warm jq"),
                      ("warm_ls", "warm `ls -l employees/`")):
        reqs = s.get(key + "_requests")
        per = ""
        if reqs:
            used = ", ".join(f"{k} {v}" for k, v in reqs[-1].items() if v)
            per = f"; FUSE requests in the last kombofs pass: {used or 'none'}"
        fl = f", floor {spread('floor_' + key[5:])}" if s.get("floor_" + key[5:]) else ""
        freqs = s.get("floor_" + key[5:] + "_requests")
        if freqs:
            used = ", ".join(f"{k} {v}" for k, v in freqs[-1].items() if v)
            per += f"; in the last floor pass: {used or 'none'}"
        out.append(f"- {what}: kombofs {spread(key)}, tmpfs {spread('tmpfs_' + key[5:])}{fl}{per}")
    for n in COLD_OPS:
        if not s.get(f"cold_{n}"):
            continue
        used = ", ".join(f"{k} {v}" for k, v in s[f"cold_{n}_requests"][-1].items() if v)
        fl = f", floor {spread(f'cold_{n}_floor')}" if s.get(f"cold_{n}_floor") else ""
        if s.get(f"cold_{n}_floor_requests"):
            fused = ", ".join(f"{k} {v}" for k, v in s[f"cold_{n}_floor_requests"][-1].items() if v)
            used += f"; in the last cold floor pass: {fused}"
        out.append(f"- cold {n}: kombofs {spread(f'cold_{n}')}, tmpfs {spread(f'cold_{n}_tmpfs')}{fl}; "
                   f"FUSE requests in the last cold pass: {used}")
    if s.get("restart"):
        out.append(f"- restart (exec → mount ready) with the warm cache: {spread('restart')} "
                   f"({len(s['restart'])} restarts)")
    if s.get("ls_cold"):
        fl = f", floor {spread('ls_cold_floor')}" if s.get("ls_cold_floor") else ""
        out.append(f"- `ls -l employees/` cold: kombofs {spread('ls_cold')}, tmpfs {spread('ls_cold_tmpfs')}{fl}; "
                   f"FUSE requests per cold `ls -l`: LOOKUP {max(s['ls_cold_lookup'])}, "
                   f"READDIRPLUS {median(s['ls_cold_readdirplus'])}, GETATTR {median(s['ls_cold_getattr'])}, "
                   f"GETXATTR {median(s['ls_cold_getxattr'])}")
    if s.get("full_fetch"):
        out.append(f"- full fetch: last_full {spread('full_fetch')}, exec → mount {spread('full_fetch_to_mount')}; "
                   f"curl (one process, keep-alive, gzip, {info['full_fetch_pages']} pages) "
                   f"{spread('full_fetch_curl')}; curl per page following `next` {spread('full_fetch_curl_follow')}; "
                   f"VmHWM {min(s['rss_full_fetch']):.1f}–{max(s['rss_full_fetch']):.1f} MB")
    if s.get("export_cold"):
        out.append(f"- `wc -l exports/employees.jsonl` ({info['export_bytes'] / 1e6:.0f} MB): cold "
                   f"{spread('export_cold')}, warm {spread('export_warm')}, tmpfs {spread('export_tmpfs')}"
                   + (f", floor cold {spread('export_cold_floor')}, warm {spread('export_warm_floor')}"
                      if s.get("export_cold_floor") else "") + "; "
                   f"daemon VmHWM {min(s['export_rss']):.1f}–{max(s['export_rss']):.1f} MB")
    for key, n in (("delta_n", run.N), ("delta_n10", run.N // 10)):
        if s.get(key):
            out.append(f"- delta, {n} mirror: `.control` {spread(key)}, last_delta {spread(key + '_status')}, "
                       f"curl {spread(key + '_curl')}; fetched {median(s[key + '_fetched'])}, "
                       f"changed {median(s[key + '_changed'])} records in {median(s[key + '_pages'])} page(s)")
    wh = info.get("webhook")
    if isinstance(wh, dict):
        for sec in wh["sections"]:
            parts = [f"from the start of the POST p50 {fmt_time(sec['post'][0])} p99 {fmt_time(sec['post'][1])}"]
            if "reply" in sec:
                parts.append(f"from its 200 p50 {fmt_time(sec['reply'][0])} p99 {fmt_time(sec['reply'][1])}")
            if "api" in sec:
                parts.append(f"the sandbox answering the delta request p50 {fmt_time(sec['api'][0])} "
                             f"p99 {fmt_time(sec['api'][1])}")
            out.append(f"- webhook → visible, {sec['title']} ("
                       f"tests/bench/webhook_latency.py with its own sandbox of {run.N} employees): "
                       + "; ".join(parts))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--employees", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kombofs", required=True)
    ap.add_argument("--floor", help="the FUSE floor binary (meson's kombofs-floor); without it "
                    "the floor columns stay empty")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--json")
    args = ap.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    started = now_iso()
    mach = machine(args.kombofs)
    log(f"kombofs benchmarks: N={args.employees}, R={args.reps}, {mach['nproc']} CPUs, "
        f"{mach['memory']}, Linux {mach['kernel']}; temporary directory {args.tmp}")
    bench = Bench(args)
    run = Run(bench)
    status = 0
    try:
        sb = Sandbox(bench, "sandbox", args.employees).start()
        run.full_fetch(sb)
        m, tf, fl = run.mirror(sb)
        run.reads(sb, m, tf, fl)
        run.exports(m, tf, fl)
        if fl:
            fl.stop()
        tf.stop()
        run.delta(sb, m, "delta_n")
        m.stop()
        sb.stop()
        sb10 = Sandbox(bench, "sandbox10", args.employees // 10).start()
        m10 = Mount(bench, "mirror10", sb10, os.path.join(bench.tmp, "mirror10.db"))
        m10.fresh_cache()
        m10.start()
        run.delta(sb10, m10, "delta_n10")
        m10.stop()
        sb10.stop()
        run.webhook()
    except BenchError as e:
        log(f"FAILED: {e}")
        status = 1
    except Stop:
        log("interrupted")
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup()
    if status:
        return status
    elapsed = time.monotonic() - T0
    text = render(run, mach, started, elapsed)
    print(text, end="")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"employees": args.employees, "reps": args.reps, "machine": mach,
                       "started": started, "seconds": elapsed, "samples": run.samples,
                       "info": run.info}, f, indent=1)
    log(f"done in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
