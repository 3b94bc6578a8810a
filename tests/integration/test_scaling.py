"""Integrations sharded over two daemons behind one webhook URL (issue 14, SPEC §9
"Beyond one machine", docs/scaling.md), with a real nginx on the loopback.

The nginx configuration is the one in docs/scaling.md, taken from the document as it is;
the test replaces only the addresses with loopback ports. nginx fans the one public
webhook location out to the two shards with `mirror`. Shard 1 holds integrations A and B,
and shard 2 holds C. Each shard has its own integrations file, cache dir, mount point and
webhook port. The sandbox posts its webhooks to nginx.

nginx runs as a child of the test, in the foreground (`daemon off;`). Its pid file, logs
and temp paths are in the test's temporary directory, never under /etc or /var, and the
system service is never touched. It is stopped (and its process group killed) after every
test, pass or fail. If Debian's nginx is not installed or cannot start here, the tests
are skipped and the reason is given (tests/deps.sh installs it).
"""
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import API_KEY, ROOT, log_errors, free_port, wait_for, escape, is_mounted
from kombo_sandbox import Sandbox

A = "personio:AAAAaaaaAAAAaaaaAAAA0001"
B = "hibob:BBBBbbbbBBBBbbbbBBBB0002"
C = "workday:CCCCccccCCCCcccc0003"
SECRET = "whsec-shards-4Rt9"
DOC = os.path.join(ROOT, "docs", "scaling.md")
WEBHOOK_PATH = "/kombo/webhook"

# The test's own main configuration around the document's file. Everything nginx
# writes goes to the temporary directory D.
NGINX_MAIN = """\
# written by tests/integration/test_scaling.py
daemon off;
{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/kombofs-shards.conf;
}}
"""


def doc_nginx_conf(listen_port, shard_ports):
    """The ```nginx block of docs/scaling.md with its addresses replaced by loopback ones."""
    with open(DOC, encoding="utf-8") as f:
        blocks = re.findall(r"```nginx\n(.*?)```", f.read(), re.S)
    assert len(blocks) == 1, "docs/scaling.md should have exactly one nginx block"
    conf = blocks[0]
    subs = [("listen 8443;", f"listen 127.0.0.1:{listen_port};")]
    for n, port in enumerate(shard_ports, 1):
        subs.append((f"server shard{n}.example.internal:8099;", f"server 127.0.0.1:{port};"))
    for old, new in subs:
        assert conf.count(old) == 1, f"docs/scaling.md's nginx block should contain {old!r} once"
        conf = conf.replace(old, new)
    assert "example.internal" not in conf, "a shard address in the document was not replaced"
    return conf


def nginx_binary():
    return shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


class Nginx:
    """One nginx in the foreground, all its files in directory d."""

    def __init__(self, d, port, shard_ports):
        self.d, self.port, self.proc = str(d), port, None
        os.makedirs(self.d, exist_ok=True)
        self.conf = os.path.join(self.d, "nginx.conf")
        self.error_log = os.path.join(self.d, "error.log")
        with open(os.path.join(self.d, "kombofs-shards.conf"), "w", encoding="utf-8") as f:
            f.write(doc_nginx_conf(port, shard_ports))
        # As root, the workers would switch to "nobody", which cannot enter pytest's
        # private temporary directory; they stay root here.
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(NGINX_MAIN.format(d=self.d, user=user))
        self.url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"

    def argv(self, *extra):
        return [nginx_binary(), "-p", self.d + "/", "-e", self.error_log, "-c", self.conf,
                *extra]

    def errors(self):
        try:
            with open(self.error_log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def start(self):
        t = subprocess.run(self.argv("-t"), capture_output=True, text=True, timeout=30)
        if t.returncode != 0:
            out = t.stdout + t.stderr + self.errors()
            if 'unknown directive "mirror' in out:
                pytest.skip("this nginx has no mirror module (ngx_http_mirror_module): " + out)
            raise AssertionError("nginx -t rejects the configuration of docs/scaling.md:\n"
                                 + out)
        out = open(os.path.join(self.d, "nginx.out"), "w", encoding="utf-8")
        self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                pytest.skip(f"nginx could not start here (exit {self.proc.returncode}):\n"
                            + self.errors())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("nginx did not listen in time:\n" + self.errors())
            time.sleep(0.05)

    def stop(self):
        """Fast shutdown of the master, then SIGKILL to whatever is left of its group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)     # the workers, if any remain
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while True:                 # the group is empty once every worker is gone
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                raise AssertionError("nginx workers outlived their master")
            time.sleep(0.05)


class Shard:
    def __init__(self, n, proc, mnt, log, cache_dir, port):
        self.n, self.proc, self.mnt, self.log = n, proc, mnt, log
        self.cache_dir, self.port = cache_dir, port

    def path(self, *p):
        return os.path.join(self.mnt, *p)

    def status(self):
        with open(self.path(".status"), encoding="utf-8") as f:
            return json.load(f)

    def listing(self):
        return sorted(n for n in os.listdir(self.mnt) if not n.startswith("."))

    def log_text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def requests(self):
        return self.status()["api"]["requests"]

    def recorded(self, iid, event_id):
        """Whether iid's cache holds the event id (recorded before the 200, SPEC §6)."""
        cache = self.status()["integrations"][iid]["cache"]
        db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT 1 FROM webhook_events WHERE id = ?",
                              (event_id,)).fetchone() is not None
        finally:
            db.close()

    def ignored(self, event_id):
        """The debug line of a verified event for an integration not mirrored here."""
        return any(event_id in ln and "not mirrored here" in ln
                   for ln in self.log_text().splitlines())

    def record(self, iid, rid):
        with open(self.path(escape(iid), "employees", escape(rid) + ".json"),
                  encoding="utf-8") as f:
            return json.load(f)

    def stop(self):
        if self.proc.poll() is None:
            subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL)


class Setup:
    def __init__(self, sb, nginx, shard1, shard2):
        self.sb, self.nginx, self.shard1, self.shard2 = sb, nginx, shard1, shard2
        self.shards = (shard1, shard2)

    def counts(self):
        """API requests: per integration as the sandbox saw them, and per shard as each
        daemon counted its own."""
        by = self.sb.stats()["by_integration"]
        out = {iid: by.get(iid, {}).get("total", 0) for iid in (A, B, C)}
        out["total"] = self.sb.stats()["total"]
        out["shard1"], out["shard2"] = self.shard1.requests(), self.shard2.requests()
        return out

    def settled(self, quiet=0.4, timeout=30):
        """The counts once nothing has changed for `quiet` seconds."""
        last = [self.counts(), time.monotonic()]

        def still():
            now = self.counts()
            if now != last[0]:
                last[0], last[1] = now, time.monotonic()
                return None
            return now if time.monotonic() - last[1] >= quiet else None

        return wait_for(still, timeout=timeout, what="the API requests to settle")


@pytest.fixture
def shards(tmp_path):
    if not nginx_binary():
        pytest.skip("nginx is not installed (Debian's nginx package; tests/deps.sh installs it)")
    nginx_port, port1, port2 = free_port(), free_port(), free_port()
    key = tmp_path / "key"
    key.write_text(API_KEY + "\n")
    sb = Sandbox(employees=12, api_key=API_KEY, integration_id=A,
                 integrations={A: 12, B: 7, C: 5}, webhook_secret=SECRET, webhook_delay=3600,
                 webhook_url=f"http://127.0.0.1:{nginx_port}{WEBHOOK_PATH}")
    sb.start()
    nginx = Nginx(tmp_path / "nginx", nginx_port, (port1, port2))
    started = []
    try:
        nginx.start()
        for n, ids, port in ((1, [A, B], port1), (2, [C], port2)):
            d = tmp_path / f"shard{n}"
            d.mkdir()
            ifile = d / "integrations"
            ifile.write_text(f"# shard {n}\n" + "".join(i + "\n" for i in ids))
            mnt = str(d / "mnt")
            os.mkdir(mnt)
            log = str(d / "kombofs.log")
            cmd = [os.environ.get("KOMBOFS_BIN", "build/kombofs"), "kombo", mnt, "-d",
                   f"--integrations-file={ifile}", f"--cache-dir={d / 'caches'}",
                   f"--api-key-file={key}", f"--api-url={sb.url}",
                   f"--webhook-listen=127.0.0.1:{port}"]
            with open(log, "w", encoding="utf-8") as lf:
                proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        env=dict(os.environ, KOMBO_WEBHOOK_SECRET=SECRET))
            s = Shard(n, proc, mnt, log, str(d / "caches"), port)
            started.append(s)
        for s in started:
            wait_for(lambda: is_mounted(s.mnt) or s.proc.poll() is not None,
                     what=f"shard {s.n}'s mount")
            assert s.proc.poll() is None, s.log_text()
        yield Setup(sb, nginx, *started)
    finally:
        try:
            for s in started:
                s.stop()
        finally:
            try:
                nginx.stop()
            finally:
                sb.stop()
    for s in started:
        text = s.log_text()
        assert API_KEY not in text, f"the API key appears in {s.log}"
        bad = log_errors(text)
        assert not bad, f"errors in {s.log}:\n" + bad


def both_ready(st):
    want1 = sorted([escape(A), escape(B), "by-origin"])
    want2 = sorted([escape(C), "by-origin"])
    wait_for(lambda: st.shard1.listing() == want1, what="shard 1's A and B")
    wait_for(lambda: st.shard2.listing() == want2, what="shard 2's C")


def test_each_shard_mirrors_only_its_own_integrations(shards):
    st = shards
    both_ready(st)
    assert set(st.shard1.status()["integrations"]) == {A, B}
    assert set(st.shard2.status()["integrations"]) == {C}
    assert not any(n.startswith(escape(C)) for n in os.listdir(st.shard1.cache_dir))
    assert not any(n.startswith((escape(A), escape(B))) for n in os.listdir(st.shard2.cache_dir))
    c = st.settled()
    # Every request for A and B came from shard 1, every request for C from shard 2.
    assert c[A] > 0 and c[B] > 0 and c[C] > 0, c
    assert c[A] + c[B] == c["shard1"] and c[C] == c["shard2"], c
    for iid in (A, B):
        rid = st.sb.visible("employees", integration=iid)[0]["id"]
        assert st.shard1.record(iid, rid)["id"] == rid
    rid = st.sb.visible("employees", integration=C)[0]["id"]
    assert st.shard2.record(C, rid)["id"] == rid


def webhook_received(shard):
    """The root .status's count of webhooks received, where the daemon shows one."""
    w = shard.status().get("webhooks")
    return w.get("received") if isinstance(w, dict) else None


def test_one_webhook_url_reaches_both_shards_and_only_the_holder_fetches(shards):
    st = shards
    sb = st.sb
    both_ready(st)
    received0 = [webhook_received(s) for s in st.shards]
    sent = 0

    # A change in A: shard 1 (nginx's upstream) fetches it; shard 2 gets the copy and
    # ignores it without fetching anything.
    before = st.settled()
    emp_a = sb.visible("employees", integration=A)[0]["id"]
    sb.update_employee(emp_a, job_title="Sharded A", integration=A)
    entry = sb.flush_webhooks(integration=A)
    sent += 1
    assert entry["status"] == 200 and entry["integration"] == A, entry
    wait_for(lambda: st.shard1.record(A, emp_a)["job_title"] == "Sharded A",
             what="A's change on shard 1")
    wait_for(lambda: st.shard2.ignored(entry["id"]), timeout=15,
             what="shard 2 to log A's webhook as not mirrored here")
    assert st.shard1.recorded(A, entry["id"])
    assert not st.shard2.recorded(C, entry["id"])
    after = st.settled()
    assert after[A] > before[A], (before, after)
    assert after[B] == before[B] and after[C] == before[C], (before, after)
    assert after["shard2"] == before["shard2"], "shard 2 fetched something for A's webhook"
    assert after["shard1"] - before["shard1"] == after[A] - before[A] \
        == after["total"] - before["total"], (before, after)

    # A change in C: only the mirror copy brings it to shard 2; shard 1 ignores it.
    before = after
    emp_c = sb.visible("employees", integration=C)[0]["id"]
    sb.update_employee(emp_c, job_title="Sharded C", integration=C)
    entry = sb.flush_webhooks(integration=C)
    sent += 1
    assert entry["status"] == 200 and entry["integration"] == C, entry
    wait_for(lambda: st.shard2.record(C, emp_c)["job_title"] == "Sharded C",
             what="C's change on shard 2, through nginx's mirror")
    wait_for(lambda: st.shard2.recorded(C, entry["id"]), timeout=15,
             what="C's event id in shard 2's cache")
    wait_for(lambda: st.shard1.ignored(entry["id"]), timeout=15,
             what="shard 1 to log C's webhook as not mirrored here")
    assert not st.shard1.recorded(A, entry["id"]) and not st.shard1.recorded(B, entry["id"])
    after = st.settled()
    assert after[C] > before[C], (before, after)
    assert after[A] == before[A] and after[B] == before[B], (before, after)
    assert after["shard1"] == before["shard1"], "shard 1 fetched something for C's webhook"
    assert after["shard2"] - before["shard2"] == after[C] - before[C] \
        == after["total"] - before["total"], (before, after)
    assert st.shard1.record(A, emp_a)["job_title"] == "Sharded A"

    # An integration neither shard holds: 200 through nginx, ignored by both.
    entry = sb.send_webhook("data-changed", integration="personio:notSHARDEDanywhere0000")
    sent += 1
    assert entry["status"] == 200, entry
    wait_for(lambda: st.shard1.ignored(entry["id"]) and st.shard2.ignored(entry["id"]),
             timeout=15, what="both shards to ignore an integration neither holds")
    assert st.settled() == after

    # Where the daemon counts webhooks in its root .status, each shard got every one.
    for s, r0 in zip(st.shards, received0):
        if r0 is not None:
            wait_for(lambda: webhook_received(s) - r0 >= sent, timeout=15,
                     what=f"shard {s.n}'s webhook counter")


def test_a_forged_webhook_is_refused_by_both_shards(shards):
    """The copy is checked like the original: the signature is each shard's own check."""
    st = shards
    both_ready(st)
    before = st.settled()
    body = json.dumps({"id": "forged-event-0001", "type": "data-changed",
                       "data": {"integration_id": C,
                                "changed_models": [{"name": "hris_employees"}]}}).encode()
    req = urllib.request.Request(st.nginx.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Kombo-Signature": "Zm9yZ2Vk"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401               # shard 1's answer, passed on by nginx

    def refused(s):
        return any("rejected" in ln and "401" in ln for ln in s.log_text().splitlines())

    wait_for(lambda: refused(st.shard1) and refused(st.shard2), timeout=15,
             what="both shards to refuse the forged webhook")
    assert not st.shard2.recorded(C, "forged-event-0001")
    assert st.settled() == before
    # nginx forwards only the webhook location, and only POST.
    for method, path, code in (("GET", WEBHOOK_PATH, 403), ("GET", "/healthz", 404),
                               ("POST", "/kombofs-shard2", 404)):
        req = urllib.request.Request(f"http://127.0.0.1:{st.nginx.port}{path}",
                                     data=b"{}" if method == "POST" else None, method=method)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == code, (method, path)
