#!/usr/bin/python3
"""SPEC §8, last row: N integrations × M employees in one multi-mode daemon (SPEC §9).

    /usr/bin/python3 tests/bench/multi.py [--integrations N] [--employees M] [--reps R]
        [--kombofs PATH] [--out FILE] [--json FILE] [--smoke] [--idle S] [--changes C]
        [--kombofs-arg ARG]... [--keep]

    --integrations N  integrations served by the sandbox and mirrored (default 1000)
    --employees M     employees of each integration (default 100)
    --reps R          first mirrors (and baselines) measured, alternating (default 3, smoke 2)
    --kombofs PATH    the binary (default build/kombofs); it is copied first, so a rebuild
                      during the run does not change what is measured
    --out FILE        also write the markdown table (with the machine and details) to FILE
    --json FILE       also write every sample as JSON to FILE
    --smoke           20 integrations × 10 employees, 2 repetitions, a 5 s idle window:
                      checks that this script works (well under a minute)
    --idle S          the idle CPU window in seconds (default 60, smoke 5)
    --changes C       webhook → visible: changes per series (default 20)
    --kombofs-arg ARG extra daemon argument, e.g. --kombofs-arg=--max-connections=8
    --keep            keep the temporary directory (daemon logs, caches, curl config)

What is measured (every row against its baseline in the same run, medians of R):

1. First complete mirror: a fresh --cache-dir each time; from the exec of
   `kombofs kombo MNT -f --integrations-file=F --cache-dir=D --api-key-file=K
   --api-url=URL --webhook-listen=127.0.0.1:PORT` (KOMBO_WEBHOOK_SECRET in the
   environment) until the root lists all N integration directories (polled with
   readdir), and from the mount appearing. Baseline: one curl process, one kept-alive
   connection (checked: one connect), downloading exactly the requests kombofs makes
   for a first mirror -- per integration GET /integrations/{id}, then every page of the
   nine endpoints with page_size=250 and the cursors, the same headers and
   Accept-Encoding (`compressed`: curl inflates what it gets, as kombofs does). The URL
   list comes from a walk following `next` in one Python process; that walk is also
   the warm-up: the sandbox runs with --max-loaded 0 (no integration's data is dropped)
   and a page cache large enough for every page and its gzip variant, so after the
   walk every answer, to curl and to kombofs alike, comes from the sandbox's page
   cache and no integration is generated again. The walk is repeated in every
   repetition as a second baseline (one Python http.client process following `next`).
   After the first kombofs mirror the script checks that kombofs made exactly the
   baseline's requests (counts per endpoint; every logged URL is in the list).
2. Peak RSS (VmHWM), threads and open files of the daemon: /proc sampled every 10 ms
   during every first mirror and afterwards (idle window, webhooks).
3. Idle CPU: utime+stime of the daemon (/proc/PID/stat) over the idle window, on the
   daemon of the last repetition, which stays mounted (the window starts after that
   repetition's baselines, at least 2 s after its mirror was complete); nothing touches
   the mount meanwhile.
4. Webhook → visible, for one integration (the middle one) while the others are idle:
   mutate one employee through /_sandbox/mutate, sign and POST a data-changed event
   (hris_employees) to the daemon's receiver, then open/read/close the employee's file
   (as cat does) until it shows the new job_title. C changes back to back (the next
   right after the previous became visible), then C changes each after the previous
   fetch finished. The sandbox sends no webhooks itself.

Every process runs in its own session; the daemon, the sandbox, curl, the mount and the
temporary directory are gone when the script exits, also on Ctrl-C and SIGTERM. Exit
status: 0 when every row was measured (met or not), 1 when the benchmark failed,
130/143 when interrupted. Python standard library only.
"""
import argparse
import collections
import gzip
import hashlib
import hmac
import base64
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SANDBOX = os.path.join(ROOT, "tests", "sandbox", "kombo_sandbox.py")
PY = "/usr/bin/python3"
API_KEY = "sandbox-key"
SECRET = "multi-bench-webhook-secret"
ENDPOINTS = ("employees", "employments", "groups", "absences", "absence-types",
             "time-off-balances", "timesheets", "legal-entities", "locations")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The helpers every bench script shares (bench.py's main() runs only as a script).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import T0, BenchError, Stop, log, now_iso, on_signal, parse_iso  # noqa: E402


def escape(name):
    """SPEC §2 file-name escaping (as src/fsname.c)."""
    out = []
    for i, b in enumerate(name.encode("utf-8")):
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "._:-") and not (i == 0 and c == "."):
            out.append(c)
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def sign(secret, body):
    """X-Kombo-Signature: base64url(HMAC-SHA256(secret, raw body)), no padding."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == path for line in f)


def mounts_under(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(path + "/")]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    """{tid: (comm, utime + stime)} of every thread of pid."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="utf-8") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[int(tid)] = (comm, int(fields[11]) + int(fields[12]))
    return out


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def median(xs):
    return statistics.median(xs) if xs else None


def fmt_time(s):
    if s is None:
        return "—"
    if s < 1:
        return f"{s * 1000:.1f} ms" if s < 0.1 else f"{s * 1000:.0f} ms"
    return f"{s:.2f} s"


def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}×"


def run_group(cmd, timeout, **kw):
    """Runs cmd in its own session; on any exception (timeout, Ctrl-C) the whole group is
    killed. Returns (seconds, stdout, stderr, returncode)."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, stdin=subprocess.DEVNULL, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise
    return time.monotonic() - t, out, err, p.returncode


# ------------------------------------------------------------------------------------
class Sandbox:
    """kombo_sandbox.py as its own process (its own GIL), N integrations of M employees."""

    def __init__(self, tmp, n, m, key, page_cache_mb):
        self.tmp, self.n, self.m, self.key, self.page_cache_mb = tmp, n, m, key, page_cache_mb
        self.proc = None
        self.conn = None

    def start(self):
        ready = os.path.join(self.tmp, "sandbox.port")
        self.logf = open(os.path.join(self.tmp, "sandbox.log"), "w", encoding="utf-8")
        t = time.monotonic()
        self.proc = subprocess.Popen(
            [PY, SANDBOX, "--host", "127.0.0.1", "--port", "0", "--ready-file", ready,
             "--integrations", str(self.n), "--employees-per-integration", str(self.m),
             "--api-key-file", self.key, "--max-loaded", "0",
             "--page-cache-mb", str(self.page_cache_mb)],
            stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                raise BenchError(f"the sandbox exited with {self.proc.returncode}; see {self.logf.name}")
            if time.monotonic() - t > 600:
                raise BenchError("the sandbox did not start in 600 s")
            time.sleep(0.05)
        with open(ready, encoding="utf-8") as f:
            self.port = int(f.read().strip())
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"
        self.startup = time.monotonic() - t
        self.ids = [i["id"] for i in self.admin("GET", "/_sandbox/integrations")]
        if len(self.ids) != self.n:
            raise BenchError(f"the sandbox serves {len(self.ids)} integrations, not {self.n}")
        return self

    def stop(self):
        if self.conn:
            self.conn.close()
            self.conn = None
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def admin(self, method, path, body=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            try:
                data = json.dumps(body).encode() if body is not None else None
                self.conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
                resp = self.conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise BenchError(f"sandbox {method} {path}: {resp.status} {raw[:300]!r}")
            return json.loads(raw)

    def stats(self):
        return self.admin("GET", "/_sandbox/stats")

    def reset_stats(self):
        self.admin("POST", "/_sandbox/stats/reset")

    def requests(self):
        return self.admin("GET", "/_sandbox/requests")

    def mutate(self, op, **args):
        return self.admin("POST", "/_sandbox/mutate", {"op": op, "args": args})["result"]

    def cpu(self):
        return cpu_ticks(self.proc.pid) / CLK_TCK

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0


def integration_url(base, iid):
    # curl_easy_escape, as kombofs escapes the id: everything but A-Za-z0-9-._~
    return f"{base}/integrations/{urllib.parse.quote(iid, safe='-._~')}"


def walk(sb, user_agent, parse=False):
    """The Python baseline and warm-up: one process, one kept-alive connection, the
    requests of a first mirror of every integration, following `next`. Returns (seconds,
    {id: [url, ...]}, stats)."""
    conn = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=600)
    urls, wire, plain, pages, records = {}, 0, 0, collections.Counter(), 0
    next_re = re.compile(rb'^\{"status":"success","data":\{"next":(null|"([^"]*)")')
    t = time.monotonic()
    try:
        for iid in sb.ids:
            headers = {"Authorization": f"Bearer {API_KEY}", "X-Integration-Id": iid,
                       "Accept": "application/json", "Accept-Encoding": "deflate, gzip, br, zstd",
                       "User-Agent": user_agent}
            mine = [integration_url(sb.url, iid)]
            targets = [(None, mine[0])] + [(ep, f"{sb.url}/hris/{ep}?page_size=250") for ep in ENDPOINTS]
            for ep, url in targets:
                while True:
                    conn.request("GET", url[len(sb.base):], headers=headers)
                    resp = conn.getresponse()
                    raw = resp.read()
                    if resp.status != 200:
                        raise BenchError(f"GET {url}: {resp.status} {raw[:200]!r}")
                    wire += len(raw)
                    body = gzip.decompress(raw) if resp.getheader("Content-Encoding") == "gzip" else raw
                    plain += len(body)
                    if ep is None:
                        break
                    pages[ep] += 1
                    mine.append(url)
                    if parse:
                        records += len(json.loads(body)["data"]["results"])
                    mt = next_re.match(body)
                    if not mt:
                        raise BenchError(f"GET {url}: no envelope: {body[:100]!r}")
                    if mt.group(1) == b"null":
                        break
                    url = f"{sb.url}/hris/{ep}?page_size=250&cursor={mt.group(2).decode()}"
            urls[iid] = mine
    finally:
        conn.close()
    return time.monotonic() - t, urls, {"wire": wire, "plain": plain, "pages": dict(pages),
                                        "records": records}


def curl_config(path, urls, user_agent):
    """One curl process: a `next` group per integration (its own X-Integration-Id), all
    groups over one connection (curl keeps its connection cache across `next`)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("silent\n")
        for i, (iid, us) in enumerate(urls.items()):
            if i:
                f.write("next\n")
            f.write("compressed\n")
            f.write('write-out = "%{http_code} %{num_connects}\\n"\n')
            f.write(f'user-agent = "{user_agent}"\n')
            f.write(f'header = "Authorization: Bearer {API_KEY}"\n')
            f.write(f'header = "X-Integration-Id: {iid}"\n')
            f.write('header = "Accept: application/json"\n')
            for u in us:
                f.write(f'url = "{u}"\noutput = "/dev/null"\n')
    return path


def curl_pass(cfg, n):
    dt, out, err, rc = run_group(["curl", "-K", cfg], timeout=3600)
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    codes = {c for c, _ in lines}
    connects = sum(int(c) for _, c in lines)
    if rc != 0 or len(lines) != n or codes != {"200"}:
        raise BenchError(f"curl failed ({rc}, {len(lines)} of {n} answers, codes {sorted(codes)}): {err[-300:]}")
    return dt, connects


# ------------------------------------------------------------------------------------
class Sampler(threading.Thread):
    """Samples a process every `interval` s: VmHWM, VmRSS, threads, open files. Keeps the
    maxima per phase, with the thread names and the kinds of files at each maximum."""

    def __init__(self, pid, interval=0.01):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.phase = "mirror"
        self.max = {}
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.samples = 0

    def set_phase(self, phase):
        with self.lock:
            self.phase = phase

    def _entry(self):
        return self.max.setdefault(self.phase, {"hwm": 0, "rss": 0, "threads": 0, "fds": 0,
                                                "thread_names": {}, "fd_kinds": {}})

    def sample(self):
        pid = self.pid
        try:
            hwm = rss = threads = 0
            with open(f"/proc/{pid}/status", encoding="utf-8") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = int(line.split()[1]) * 1024 / 1e6
                    elif line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024 / 1e6
                    elif line.startswith("Threads:"):
                        threads = int(line.split()[1])
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return
        with self.lock:
            e = self._entry()
            self.samples += 1
            e["hwm"] = max(e["hwm"], hwm)
            e["rss"] = max(e["rss"], rss)
            if threads > e["threads"]:
                e["threads"] = threads
                names = collections.Counter()
                for tid, (comm, _) in thread_ticks(pid).items():
                    names[comm] += 1
                e["thread_names"] = dict(names)
            if len(fds) > e["fds"]:
                e["fds"] = len(fds)
                kinds = collections.Counter()
                for fd in fds:
                    try:
                        target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    except OSError:
                        continue
                    if target.startswith("socket:"):
                        kinds["socket"] += 1
                    elif target.startswith("pipe:"):
                        kinds["pipe"] += 1
                    elif target.startswith("anon_inode:"):
                        kinds[target] += 1
                    elif target.endswith(".db"):
                        kinds["roster" if ".kombofs-roster" in target else "cache .db"] += 1
                    elif target.endswith("-wal"):
                        kinds["cache -wal"] += 1
                    elif target.endswith("-shm"):
                        kinds["cache -shm"] += 1
                    else:
                        kinds[target if target.startswith("/dev/") else os.path.basename(target)] += 1
                e["fd_kinds"] = dict(kinds)

    def run(self):
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        if self.is_alive():
            self.join(timeout=5)


class Daemon:
    """One multi-mode kombofs in the foreground (-f), in its own session."""

    def __init__(self, bench, name):
        self.b = bench
        self.name = name
        self.mnt = os.path.join(bench.tmp, f"mnt-{name}")
        self.cache_dir = os.path.join(bench.tmp, f"caches-{name}")
        self.logpath = os.path.join(bench.tmp, f"kombofs-{name}.log")
        os.makedirs(self.mnt)
        self.proc = None
        self.sampler = None
        self.hook_port = free_port()

    def start(self):
        cmd = [self.b.bin, "kombo", self.mnt, "-f", f"--integrations-file={self.b.ids_file}",
               f"--cache-dir={self.cache_dir}", f"--api-key-file={self.b.key}",
               f"--api-url={self.b.sb.url}", f"--webhook-listen=127.0.0.1:{self.hook_port}",
               *self.b.args.kombofs_arg]
        self.cmd = cmd
        self.logf = open(self.logpath, "w", encoding="utf-8")
        self.wall0 = time.time()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env=dict(os.environ, KOMBO_WEBHOOK_SECRET=SECRET))
        self.pid = self.proc.pid
        self.sampler = Sampler(self.pid)
        self.sampler.start()
        return self

    def check_alive(self):
        if self.proc.poll() is not None:
            raise BenchError(f"kombofs exited with {self.proc.returncode}: {self.log_tail()}")

    def log_tail(self, n=8):
        try:
            with open(self.logpath, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def path(self, *p):
        return os.path.join(self.mnt, *p)

    def status(self, *sub):
        with open(self.path(*sub, ".status"), encoding="utf-8") as f:
            return json.load(f)

    def stop(self, quick=False):
        """Unmounts (the daemon exits); SIGTERM, then SIGKILL to its group if it does not;
        a lazy unmount if something is left. Returns (seconds, exit status)."""
        if self.sampler:
            self.sampler.stop()
        t = time.monotonic()
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None and mounted(self.mnt):
                subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL, check=False)
            try:
                rc = self.proc.wait(timeout=20 if quick else 180)
            except subprocess.TimeoutExpired:
                log(f"kombofs {self.name}: still running after the unmount; SIGTERM to its group")
                try:
                    os.killpg(self.pid, signal.SIGTERM)
                    rc = self.proc.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(self.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    rc = self.proc.wait()
            self.proc = None
        if mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL, check=False)
        if getattr(self, "logf", None):
            self.logf.close()
        return time.monotonic() - t, rc


# ------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.N, self.M, self.R = args.integrations, args.employees, args.reps
        self.key = os.path.join(tmp, "api-key")
        with open(self.key, "w", encoding="utf-8") as f:
            f.write(API_KEY + "\n")
        os.chmod(self.key, 0o600)
        self.bin = os.path.join(tmp, "kombofs")
        shutil.copy2(args.kombofs, self.bin)
        ver = subprocess.run([self.bin, "--version"], capture_output=True, text=True).stdout.split()
        self.user_agent = "kombofs/" + (ver[-1] if ver else "?")
        self.samples = collections.defaultdict(list)
        self.info = {}
        self.daemons = []
        self.sb = None

    def add(self, key, value):
        self.samples[key].append(value)

    def cleanup(self, quick):
        for d in reversed(self.daemons):
            try:
                d.stop(quick=quick)
            except Exception as e:  # keep going: everything must be stopped
                log(f"cleanup: kombofs {d.name}: {e}")
        self.daemons = []
        if self.sb:
            try:
                self.sb.stop()
            except Exception as e:
                log(f"cleanup: sandbox: {e}")
            self.sb = None

    # -- set-up and warm-up ----------------------------------------------------------------
    def setup(self):
        N, M = self.N, self.M
        # Every page plus its gzip variant must stay cached (about 8.5 KB per employee).
        page_cache_mb = max(1024, N * M * 20 // 1024)
        self.sb = Sandbox(self.tmp, N, M, self.key, page_cache_mb)    # stopped on any failure,
        self.sb.start()                                                 # even one inside start()
        log(f"sandbox: {N} integrations × {M} employees, listening after {self.sb.startup:.2f} s "
            f"(--max-loaded 0, --page-cache-mb {page_cache_mb})")
        self.ids_file = os.path.join(self.tmp, "integrations")
        with open(self.ids_file, "w", encoding="utf-8") as f:
            f.write(f"# {N} sandbox integrations\n" + "".join(i + "\n" for i in self.sb.ids))
        log("warm-up: every page of every integration once, one Python process following `next` "
            "(generates each integration and fills the sandbox's page cache)")
        cpu0 = self.sb.cpu()
        dt, self.urls, st = walk(self.sb, self.user_agent, parse=True)
        self.n_urls = sum(len(u) for u in self.urls.values())
        self.info.update(warm_s=dt, warm_sandbox_cpu=self.sb.cpu() - cpu0, wire=st["wire"],
                         plain=st["plain"], pages=st["pages"], records=st["records"],
                         requests=self.n_urls, sandbox_startup=self.sb.startup,
                         page_cache_mb=page_cache_mb)
        log(f"  {dt:.1f} s: {self.n_urls} requests ({sum(st['pages'].values())} pages + {N} "
            f"descriptions), {st['records']} records, {st['wire'] / 1e6:.1f} MB gzip, "
            f"{st['plain'] / 1e6:.1f} MB inflated; sandbox RSS {self.sb.rss_mb():.0f} MiB")
        self.cfg = curl_config(os.path.join(self.tmp, "pages.curl"), self.urls, self.user_agent)
        dt, connects = curl_pass(self.cfg, self.n_urls)
        log(f"  curl warm-up pass: {dt:.2f} s, {connects} connection(s)")
        if connects != 1:
            raise BenchError(f"curl opened {connects} connections, not one")

    # -- row 1 and 2: the first mirror -----------------------------------------------------
    def first_mirror(self, rep, keep):
        N = self.N
        d = Daemon(self, f"rep{rep + 1}")
        self.daemons.append(d)
        self.sb.reset_stats()
        cpu0 = self.sb.cpu()
        d.start()
        want = {escape(i) for i in self.sb.ids}
        deadline = d.t0 + 600 + N * 1.0
        while not mounted(d.mnt):
            d.check_alive()
            if time.monotonic() > deadline:
                raise BenchError("no mount")
            time.sleep(0.002)
        t_mount = time.monotonic()
        interval = 0.01 if N <= 100 else 0.05
        listed, last_log = 0, time.monotonic()
        while True:
            names = set(os.listdir(d.mnt))
            listed = len(want & names)
            if listed == N:
                break
            d.check_alive()
            now = time.monotonic()
            if now > deadline:
                raise BenchError(f"only {listed} of {N} directories after {now - d.t0:.0f} s; "
                                 f"log: {d.log_tail()}")
            if now - last_log > 15:
                log(f"  … {listed} of {N} listed after {now - d.t0:.0f} s")
                last_log = now
            time.sleep(interval)
        t_done = time.monotonic()
        sb_cpu = self.sb.cpu() - cpu0
        d.sampler.set_phase("after")
        exec_to_all = t_done - d.t0
        st = d.status()
        reads = []
        for _ in range(5):     # the root's .status, as a monitor polling it reads it
            t = time.monotonic()
            d.status()
            reads.append(time.monotonic() - t)
        self.add("root_status", statistics.median(reads))
        ints = st.get("integrations", {})
        states = collections.Counter(v.get("state") for v in ints.values())
        if len(ints) != N or states.get("ready", 0) != N:
            raise BenchError(f"after the listing: {len(ints)} integrations in .status, states {dict(states)}")
        finished = [parse_iso(v["last_full"]["finished_at"]) for v in ints.values()]
        started = [parse_iso(v["last_full"]["started_at"]) for v in ints.values()]
        records = sum(v.get("records", 0) for v in ints.values())
        stats = self.sb.stats()
        self.add("mirror", exec_to_all)
        self.add("mirror_from_mount", t_done - t_mount)
        self.add("exec_to_mount", t_mount - d.t0)
        self.add("mirror_status", max(finished) - d.wall0)
        self.add("mirror_first_started", min(started) - d.wall0)
        self.add("mirror_sandbox_cpu", sb_cpu)
        self.add("mirror_daemon_cpu", cpu_ticks(d.pid) / CLK_TCK)
        self.add("mirror_records", records)
        self.add("mirror_requests", stats["total"])
        self.add("mirror_api", st.get("api"))
        if rep == 0:
            self.check_requests(stats)
        log(f"  rep {rep + 1}: kombofs exec → all {N} listed {exec_to_all:.2f} s "
            f"(mount after {t_mount - d.t0:.3f} s; last last_full finished at {max(finished) - d.wall0:.2f} s); "
            f"{stats['total']} requests, {records} records; daemon CPU {self.samples['mirror_daemon_cpu'][-1]:.1f} s, "
            f"sandbox CPU {sb_cpu:.1f} s; VmHWM {d.sampler.max['mirror']['hwm']:.1f} MB, "
            f"threads {d.sampler.max['mirror']['threads']}, fds {d.sampler.max['mirror']['fds']}")
        if not keep:
            self.finish(d)
        return d

    def check_requests(self, stats):
        """kombofs made the baseline's requests: the same count per endpoint, and every URL
        the sandbox logged (its last 10,000) is one of the baseline's."""
        want = collections.Counter({ep: n for ep, n in self.info["pages"].items()})
        want["integrations"] = self.N
        got = collections.Counter({k: v for k, v in stats["by_endpoint"].items() if v})
        extra = {k: got[k] - want.get(k, 0) for k in got if got[k] != want.get(k, 0)}
        if extra:
            raise BenchError(f"kombofs's requests differ from the baseline's: per endpoint "
                             f"kombofs {dict(got)}, baseline {dict(want)}")
        known = set()
        for us in self.urls.values():
            for u in us:
                p = urllib.parse.urlsplit(u)
                known.add((urllib.parse.unquote(p.path), tuple(sorted(urllib.parse.parse_qsl(p.query)))))
        logged = self.sb.requests()
        odd = [r for r in logged
               if (urllib.parse.unquote(r["path"]), tuple(sorted(r["query"].items()))) not in known]
        if odd:
            raise BenchError(f"{len(odd)} requests of kombofs are not in the baseline, e.g. {odd[:2]}")
        self.info["checked_requests"] = len(logged)

    def finish(self, d):
        dt, rc = d.stop()
        self.daemons.remove(d)
        self.add("stop_s", dt)
        self.add("max", d.sampler.max)
        if rc != 0:
            raise BenchError(f"kombofs {d.name} exited with {rc} after the unmount: {d.log_tail()}")
        self.add("log_lines", self.log_summary(d))
        shutil.rmtree(d.cache_dir, ignore_errors=True)
        os.rmdir(d.mnt)

    def log_summary(self, d):
        with open(d.logpath, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        bad = [ln for ln in lines if "kombofs: warning: " in ln]
        return {"lines": len(lines), "warnings": len(bad), "examples": bad[:3]}

    def baselines(self, rep):
        cpu0 = self.sb.cpu()
        dt, connects = curl_pass(self.cfg, self.n_urls)
        self.add("curl", dt)
        self.add("curl_sandbox_cpu", self.sb.cpu() - cpu0)
        if connects != 1:
            raise BenchError(f"curl opened {connects} connections")
        dt2, _, _ = walk(self.sb, self.user_agent)
        self.add("python", dt2)
        log(f"  rep {rep + 1}: curl (1 process, 1 connection) {dt:.2f} s, "
            f"Python following `next` {dt2:.2f} s")

    # -- row 3: idle CPU -------------------------------------------------------------------
    def idle(self, d):
        window = self.args.idle
        d.sampler.set_phase("idle")
        time.sleep(2.0)
        before, t = thread_ticks(d.pid), time.monotonic()
        c0, req0 = cpu_ticks(d.pid), self.sb.stats()["total"]
        log(f"idle CPU: {window:g} s without touching the mount")
        time.sleep(window)
        c1 = cpu_ticks(d.pid)
        dt = time.monotonic() - t
        after = thread_ticks(d.pid)
        busy = []
        for tid, (comm, ticks) in after.items():
            spent = ticks - before.get(tid, (comm, 0))[1]
            if spent:
                busy.append((comm, tid, spent / CLK_TCK))
        self.info["idle_window"] = dt
        self.info["idle_cpu_s"] = (c1 - c0) / CLK_TCK
        self.info["idle_threads"] = busy
        self.info["idle_requests"] = self.sb.stats()["total"] - req0
        log(f"  {(c1 - c0) / CLK_TCK:.2f} s of CPU in {dt:.1f} s = {(c1 - c0) / CLK_TCK / dt * 100:.2f} % "
            f"of a core; busy threads: {busy or 'none'}")

    # -- row 4: webhook → visible ----------------------------------------------------------
    def webhook(self, d):
        d.sampler.set_phase("webhook")
        iid = self.sb.ids[len(self.sb.ids) // 2]
        tool = iid.split(":", 1)[0]
        emps = [e["id"] for e in self.sb.admin(
            "GET", "/_sandbox/records/employees?integration=" + urllib.parse.quote(iid, safe=""))]
        deadline = time.monotonic() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", d.hook_port, timeout=5)
                c.request("GET", "/healthz")
                ok = c.getresponse().status == 200
                c.close()
                if ok:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("the webhook receiver does not answer /healthz")
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", d.hook_port, timeout=30)
        by0 = self.sb.stats().get("by_integration", {})
        changes = self.args.changes
        step = max(1, len(emps) // changes)
        self.info["webhook_integration"] = iid
        log(f"webhook → visible: {changes} changes of {iid} back to back, then {changes} each "
            f"after the previous fetch finished")

        def running():
            eps = d.status(escape(iid)).get("endpoints", {})
            return any((e.get(k) or {}).get("result") == "running"
                       for e in eps.values() for k in ("last_delta", "last_full"))

        serial = 0
        for mode in ("b2b", "settled"):
            post, reply, rtt, deltas = [], [], [], []
            for i in range(changes):
                eid = emps[(i * step) % len(emps)]
                serial += 1
                title = f"Multi bench {serial} {time.monotonic_ns()}"
                needle = json.dumps(title).encode()
                path = d.path(escape(iid), "employees", escape(eid) + ".json")
                self.sb.mutate("update_employee", id=eid, job_title=title, integration=iid)
                body = json.dumps({"id": "".join(secrets.choice(string.ascii_letters + string.digits)
                                                 for _ in range(24)),
                                   "type": "data-changed",
                                   "data": {"integration_id": iid, "integration_tool": tool,
                                            "integration_category": "HRIS",
                                            "changed_models": [{"name": "hris_employees"}]}},
                                  separators=(",", ":")).encode()
                hdrs = {"Content-Type": "application/json", "X-Kombo-Signature": sign(SECRET, body)}
                t0 = time.monotonic()
                conn.request("POST", "/webhook", body, hdrs)
                resp = conn.getresponse()
                resp.read()
                t1 = time.monotonic()
                if resp.status != 200:
                    raise BenchError(f"webhook POST: {resp.status}")
                while True:
                    with open(path, "rb") as f:
                        if needle in f.read():
                            break
                    if time.monotonic() - t0 > 10:
                        raise BenchError(f"change {serial} not visible after 10 s")
                t2 = time.monotonic()
                post.append(t2 - t0)
                reply.append(t2 - t1)
                rtt.append(t1 - t0)
                if mode == "settled":
                    while running():
                        time.sleep(0.002)
                    run = d.status(escape(iid))["endpoints"]["employees"]["last_delta"]
                    if run.get("finished_at") and run.get("result") == "ok":
                        deltas.append(parse_iso(run["finished_at"]) - parse_iso(run["started_at"]))
                    time.sleep(0.05)
            self.info[f"webhook_{mode}"] = {"post": post, "reply": reply, "rtt": rtt, "deltas": deltas}
            log(f"  {mode}: from the POST p50 {statistics.median(post) * 1000:.1f} ms, "
                f"p99 {pct(post, 99) * 1000:.1f} ms; from its 200 p50 {statistics.median(reply) * 1000:.1f} ms")
        conn.close()
        # Did any other integration fetch meanwhile? (The others are idle.)
        by = self.sb.stats().get("by_integration", {})
        self.info["webhook_other_requests"] = sum(v.get("total", 0) - by0.get(k, {}).get("total", 0)
                                                  for k, v in by.items() if k != iid)
        self.info["webhook_requests"] = by.get(iid, {}).get("total", 0) - by0.get(iid, {}).get("total", 0)


# ------------------------------------------------------------------------------------
def machine(binary):
    with open(binary, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    mem = cpu = "?"
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
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


def render(b, mach, started, elapsed):
    s, info, N, M = b.samples, b.info, b.N, b.M
    rows = []

    def row(what, value, baseline, ratio, target, met):
        rows.append((what, value, baseline, fmt_ratio(ratio), target,
                     "—" if met is None else ("yes" if met else "no")))

    def spread(key, f=fmt_time):
        v = s.get(key)
        return f"{f(min(v))}–{f(max(v))}" if v else "—"

    # The baseline is the faster of the two one-process downloads; the other is shown below.
    v, vm = median(s["mirror"]), median(s["mirror_from_mount"])
    bases = sorted([(median(s["curl"]), "curl, 1 process"),
                    (median(s["python"]), "Python http.client, 1 process")])
    (c, cname), (o, oname) = bases
    row(f"first complete mirror of {N} integrations × {M} employees (exec → root lists all {N})",
        fmt_time(v), f"{fmt_time(c)} {cname}", v / c, "≤ 2×", v / c <= 2)
    row("↳ the same, from the mount appearing", fmt_time(vm), f"{fmt_time(c)} {cname}",
        vm / c, "≤ 2×", vm / c <= 2)
    row("↳ the same (from exec), against the other baseline", fmt_time(v), f"{fmt_time(o)} {oname}",
        v / o, "≤ 2×", v / o <= 2)
    maxes = s["max"]
    during = [m_["mirror"] for m_ in maxes]
    later = [m_[ph] for m_ in maxes for ph in ("after", "idle", "webhook") if ph in m_]
    hwm = max(x["hwm"] for x in during + later)
    row("peak RSS of the daemon (VmHWM), first mirror and after", f"{hwm:.1f} MB",
        f"{info['plain'] / 1e6:.0f} MB of JSON downloaded", None, "≤ 200 MB", hwm <= 200)
    th_d, th_a = max(x["threads"] for x in during), max((x["threads"] for x in later), default=0)
    row("threads of the daemon, peak during the first mirror / after", f"{th_d} / {th_a}", "—", None,
        "≤ 32", max(th_d, th_a) <= 32)
    fd_d, fd_a = max(x["fds"] for x in during), max((x["fds"] for x in later), default=0)
    row("open files of the daemon, peak during the first mirror / after", f"{fd_d} / {fd_a}", "—", None,
        "≤ 256", max(fd_d, fd_a) <= 256)
    idle = info["idle_cpu_s"] / info["idle_window"] * 100
    row(f"CPU of the daemon while idle ({info['idle_window']:.0f} s after the mirror)",
        f"{idle:.2f} % of a core", "—", None, "≤ 1 %", idle <= 1.0)
    wb = info["webhook_b2b"]
    n = len(wb["post"])
    row(f"webhook → visible to `cat`, one integration, others idle, p50 ({n} changes, back to back)",
        fmt_time(statistics.median(wb["post"])), fmt_time(statistics.median(wb["rtt"])) + " the POST's answer",
        None, "≤ 30 ms", statistics.median(wb["post"]) <= 0.030)
    row("↳ the same, p99", fmt_time(pct(wb["post"], 99)), fmt_time(pct(wb["rtt"], 99)) + " the POST's answer",
        None, "(§8 single mode: ≤ 250 ms)", pct(wb["post"], 99) <= 0.250)

    with open("/proc/loadavg", encoding="utf-8") as f:
        end_load = f.read().split()[0]
    out = ["| what | value | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out.append("")
    out.append(f"{N} integrations × {M} employees, {b.R} repetitions, medians; machine: {mach['nproc']} CPUs "
               f"({mach['cpu']}), {mach['memory']} RAM, Linux {mach['kernel']}; kombofs at commit "
               f"{mach['commit']} (binary sha256 {mach['binary']}…), default options"
               f"{' plus ' + ' '.join(b.args.kombofs_arg) if b.args.kombofs_arg else ''}; run started {started} "
               f"(load average {mach['load']}; at the end {end_load}), took {elapsed / 60:.1f} min.")
    out.append("")
    out.append("Details:")
    pages = info["pages"]
    out.append(f"- sandbox: its own process, --max-loaded 0, --page-cache-mb {info['page_cache_mb']}; "
               f"warm-up: one walk over everything (Python, following `next`) in {info['warm_s']:.1f} s "
               f"(sandbox CPU {info['warm_sandbox_cpu']:.1f} s: generating and rendering), then one curl pass; "
               f"afterwards every answer comes from its page cache")
    out.append(f"- a first mirror is {info['requests']} requests: {N} `GET /integrations/{{id}}` and "
               f"{sum(pages.values())} pages ({', '.join(f'{k} {v}' for k, v in pages.items())}); "
               f"{info['records']} records, {info['wire'] / 1e6:.1f} MB gzip on the wire, "
               f"{info['plain'] / 1e6:.1f} MB inflated; kombofs made exactly these requests "
               f"(per endpoint; {info.get('checked_requests', 0)} logged URLs checked)")
    out.append(f"- first mirror: exec → all listed {spread('mirror')}; exec → mount {spread('exec_to_mount')}; "
               f"exec → the last `last_full` finished (.status) {spread('mirror_status')}; "
               f"curl {spread('curl')}; Python following `next` {spread('python')}")
    out.append(f"- one read of the root's `.status` ({N} integrations), right after the mirror, "
               f"median of 5: {spread('root_status', fmt_time)}")
    out.append(f"- CPU during a first mirror: daemon {spread('mirror_daemon_cpu', lambda x: f'{x:.1f} s')}, "
               f"sandbox {spread('mirror_sandbox_cpu', lambda x: f'{x:.1f} s')} "
               f"(during a curl pass: {spread('curl_sandbox_cpu', lambda x: f'{x:.1f} s')}); "
               f"records in .status {sorted(set(s['mirror_records']))} (sandbox: {info['records']}); "
               f"API counters {s['mirror_api'][-1]}")
    for ph, xs in (("during the first mirror", during), ("after it (idle, webhooks)", later)):
        if not xs:
            continue
        top_t = max(xs, key=lambda x: x["threads"])
        top_f = max(xs, key=lambda x: x["fds"])
        out.append(f"- {ph}: VmHWM {max(x['hwm'] for x in xs):.1f} MB (VmRSS up to "
                   f"{max(x['rss'] for x in xs):.1f} MB); at the most threads ({top_t['threads']}): "
                   f"{', '.join(f'{k} {v}' for k, v in sorted(top_t['thread_names'].items()))}; at the most open "
                   f"files ({top_f['fds']}): {', '.join(f'{k} {v}' for k, v in sorted(top_f['fd_kinds'].items()))}")
    busy = ", ".join(f"{comm} (tid {tid}) {sec:.2f} s" for comm, tid, sec in info["idle_threads"]) or "none"
    out.append(f"- idle: {info['idle_cpu_s']:.2f} s of CPU in {info['idle_window']:.1f} s; threads that ran: "
               f"{busy}; API requests meanwhile: {info['idle_requests']}")
    for mode, title in (("b2b", "back to back"), ("settled", "each after the previous fetch finished")):
        w = info[f"webhook_{mode}"]
        line = (f"- webhook → visible ({info['webhook_integration']}), {len(w['post'])} changes, {title}: from "
                f"the start of the POST p50 {fmt_time(statistics.median(w['post']))} p99 {fmt_time(pct(w['post'], 99))}; "
                f"from its 200 p50 {fmt_time(statistics.median(w['reply']))} p99 {fmt_time(pct(w['reply'], 99))}; "
                f"the POST's answer p50 {fmt_time(statistics.median(w['rtt']))}")
        if w["deltas"]:
            line += (f"; the delta fetch (.status last_delta) p50 {fmt_time(statistics.median(w['deltas']))} "
                     f"p99 {fmt_time(pct(w['deltas'], 99))}")
        out.append(line)
    out.append(f"- API requests during the webhook series: {info['webhook_requests']} for that integration, "
               f"{info['webhook_other_requests']} for the others")
    logs = sorted(s.get("log_lines", []), key=lambda x: not x["examples"])
    if logs:
        out.append(f"- daemon logs: {max(x['lines'] for x in logs)} lines at most, "
                   f"{sum(x['warnings'] for x in logs)} warnings"
                   + "".join(f", e.g. {x['examples'][0]!r}" for x in logs[:1] if x["examples"])
                   + f"; unmount → exit {spread('stop_s')}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--integrations", type=int)
    ap.add_argument("--employees", type=int)
    ap.add_argument("--reps", type=int)
    ap.add_argument("--kombofs", default=os.path.join(ROOT, "build", "kombofs"))
    ap.add_argument("--out")
    ap.add_argument("--json")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--idle", type=float)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--kombofs-arg", action="append", default=[], metavar="ARG")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.integrations = args.integrations or (20 if args.smoke else 1000)
    args.employees = args.employees or (10 if args.smoke else 100)
    args.reps = args.reps or (2 if args.smoke else 3)
    args.idle = args.idle if args.idle is not None else (5.0 if args.smoke else 60.0)
    if args.integrations < 1 or args.employees < 1 or args.reps < 1 or args.changes < 1 or args.idle <= 0:
        ap.error("--integrations, --employees, --reps, --changes and --idle must be positive")
    if not os.access(args.kombofs, os.X_OK):
        print(f"multi.py: {args.kombofs} is not an executable (ninja -C build?)", file=sys.stderr)
        return 1
    for tool in ("fusermount3", "curl"):
        if not shutil.which(tool):
            print(f"multi.py: {tool} is missing (tests/deps.sh installs it)", file=sys.stderr)
            return 1

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    tmp = tempfile.mkdtemp(prefix="kombofs-multi.")
    os.chmod(tmp, 0o755)
    started = now_iso()
    mach = machine(args.kombofs)
    log(f"multi-mode benchmark: {args.integrations} integrations × {args.employees} employees, "
        f"R={args.reps}, {mach['nproc']} CPUs, load {mach['load']}; temporary directory {tmp}")
    status = 0
    b = None
    try:
        b = Bench(args, tmp)
        b.setup()
        log(f"first mirror: {args.reps} times, kombofs (fresh --cache-dir) and the baselines alternating")
        kept = None
        for rep in range(args.reps):
            last = rep == args.reps - 1
            if rep % 2 == 0:
                kept = b.first_mirror(rep, keep=last)
                b.baselines(rep)
            else:
                b.baselines(rep)
                kept = b.first_mirror(rep, keep=last)
        # The last daemon stays: rows 3 and 4 (its sampler keeps running: "after").
        b.idle(kept)
        b.webhook(kept)
        b.finish(kept)
    except BenchError as e:
        log(f"FAILED: {e}")
        status = 1
    except Exception:  # a bug here, or an unexpected answer: still clean up
        log("FAILED:\n" + traceback.format_exc())
        status = 1
    except Stop as e:
        log("interrupted")
        status = 130 if e.args and e.args[0] == signal.SIGINT else 143
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if b is not None:
            b.cleanup(quick=status != 0)
        left = mounts_under(tmp)
        for m in left:
            subprocess.run(["fusermount3", "-u", "-z", m], stderr=subprocess.DEVNULL, check=False)
        if mounts_under(tmp):
            log(f"something is still mounted under {tmp}; not removing it")
        elif args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if status:
        return status
    elapsed = time.monotonic() - T0
    text = render(b, mach, started, elapsed)
    print(text, end="")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"integrations": b.N, "employees": b.M, "reps": b.R, "machine": mach,
                       "started": started, "seconds": elapsed, "samples": b.samples, "info": b.info},
                      f, indent=1, default=str)
    log(f"done in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
