"""Multi mode (issue 14, SPEC §9): many integrations in one daemon, one webhook receiver
routed by integration, the root's .control and .status, by-origin/ links."""
import errno
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import API_KEY, log_errors, free_port, wait_for, escape, is_mounted
from kombo_sandbox import Sandbox

A = "personio:AAAAaaaaAAAAaaaaAAAA0001"
B = "hibob:BBBBbbbbBBBBbbbbBBBB0002"
C = "workday:CCCCccccCCCCcccc0003"
SECRET = "whsec-multi-7Hq2"


class Multi:
    def __init__(self, proc, mnt, log, cache_dir, file):
        self.proc, self.mnt, self.log, self.cache_dir, self.file = proc, mnt, log, cache_dir, file

    def path(self, *p):
        return os.path.join(self.mnt, *p)

    def status(self):
        with open(self.path(".status"), encoding="utf-8") as f:
            return json.load(f)

    def control(self, cmd):
        try:
            fd = os.open(self.path(".control"), os.O_WRONLY | os.O_TRUNC)
        except OSError as e:
            return e.errno
        try:
            os.write(fd, (cmd + "\n").encode())
            return 0
        except OSError as e:
            return e.errno
        finally:
            os.close(fd)

    def listing(self):
        return sorted(n for n in os.listdir(self.mnt) if not n.startswith("."))

    def log_text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()


@pytest.fixture
def multi(tmp_path):
    started = []
    key = tmp_path / "key"
    key.write_text(API_KEY + "\n")
    secret = tmp_path / "secret"
    secret.write_text(SECRET)

    def start(sb, ids, *args, wait=True):
        n = len(started) + 1
        mnt = str(tmp_path / f"mnt{n}")
        os.makedirs(mnt, exist_ok=True)
        file = tmp_path / "integrations"
        if ids is not None:
            file.write_text("# customers\n" + "".join(i + "\n" for i in ids))
        cache_dir = str(tmp_path / "caches")
        log = str(tmp_path / f"kombofs{n}.log")
        cmd = [os.environ.get("KOMBOFS_BIN", "build/kombofs"), "kombo", mnt, "-f",
               f"--integrations-file={file}", f"--cache-dir={cache_dir}",
               f"--api-key-file={key}", f"--api-url={sb.url}"] + list(args)
        with open(log, "w", encoding="utf-8") as lf:
            proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT,
                                    start_new_session=True,
                                    env=dict(os.environ, KOMBO_WEBHOOK_SECRET=SECRET))
        m = Multi(proc, mnt, log, cache_dir, file)
        started.append(m)
        if wait:
            wait_for(lambda: is_mounted(mnt) or proc.poll() is not None, what="the mount")
            assert proc.poll() is None, m.log_text()
        return m

    yield start
    for m in started:
        if m.proc.poll() is None:
            subprocess.run(["fusermount3", "-u", m.mnt], stderr=subprocess.DEVNULL)
            try:
                m.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(m.proc.pid, signal.SIGKILL)
                m.proc.wait()
        if is_mounted(m.mnt):
            subprocess.run(["fusermount3", "-u", "-z", m.mnt], stderr=subprocess.DEVNULL)
        text = m.log_text()
        assert API_KEY not in text
        bad = log_errors(text)
        assert not bad, bad


@pytest.fixture
def sb():
    port = free_port()
    s = Sandbox(employees=12, api_key=API_KEY, integration_id=A,
                integrations={A: 12, B: 7, C: 5}, webhook_secret=SECRET, webhook_delay=3600,
                webhook_url=f"http://127.0.0.1:{port}/webhook")
    s.hook_port = port
    s.start()
    yield s
    s.stop()


def records(m, iid, d="employees"):
    out = {}
    base = m.path(escape(iid), d)
    for n in os.listdir(base):
        with open(os.path.join(base, n), encoding="utf-8") as f:
            r = json.load(f)
        out[r["id"]] = r
    return out


def test_each_integration_is_its_own_tree(sb, multi):
    m = multi(sb, [A, B])
    wait_for(lambda: m.listing() == sorted([escape(A), escape(B), "by-origin"]),
             what="both directories")
    for iid in (A, B):
        want = {r["id"]: r for r in sb.visible("employees", integration=iid)}
        assert records(m, iid) == want
        with open(m.path(escape(iid), ".status"), encoding="utf-8") as f:
            assert json.load(f)["integration"] == iid
    assert records(m, A).keys().isdisjoint(records(m, B).keys())
    st = m.status()
    assert set(st["integrations"]) == {A, B}
    for iid in (A, B):
        i = st["integrations"][iid]
        assert i["state"] == "ready" and i["records"] > 0 and i["last_error"] is None
        assert i["last_full"]["result"] == "ok"
    # by-origin/: the customer's own id, from GET /integrations/{id}
    for iid in (A, B):
        origin = sb.integration(iid)["end_user"]["origin_id"]
        assert origin and st["integrations"][iid]["origin_id"] == origin
        assert os.readlink(m.path("by-origin", escape(origin))) == "../" + escape(iid)
    assert sorted(os.listdir(m.path("by-origin"))) == sorted(
        escape(sb.integration(i)["end_user"]["origin_id"]) for i in (A, B))
    # the trees' numbers do not collide: each integration has its slot
    ino_a = os.stat(m.path(escape(A), "employees")).st_ino
    ino_b = os.stat(m.path(escape(B), "employees")).st_ino
    assert ino_a != ino_b and ino_a >> 48 != ino_b >> 48


def test_an_id_kombo_does_not_know_is_an_error_of_its_own(sb, multi):
    unknown = "personio:UNKNOWNunknownUNKNOWN0"
    m = multi(sb, [A, unknown])
    wait_for(lambda: escape(A) in m.listing(), what="A")
    st = wait_for(lambda: (lambda s: s if s["integrations"][unknown]["last_error"] else None)(
        m.status()), what="the unknown integration's error")
    assert escape(unknown) not in m.listing()
    assert st["integrations"][unknown]["state"] in ("error", "initial-sync")
    assert "404" in st["integrations"][unknown]["last_error"] or \
        "not found" in st["integrations"][unknown]["last_error"].lower()
    assert st["integrations"][A]["state"] == "ready"


def test_control_add_remove_purge_and_errors(sb, multi):
    m = multi(sb, [A])
    wait_for(lambda: escape(A) in m.listing(), what="A")
    assert m.control("add " + C) == 0          # returns after C's first full fetch
    assert escape(C) in m.listing()
    assert records(m, C) == {r["id"]: r for r in sb.visible("employees", integration=C)}
    assert m.control("add " + C) == 0          # already there: nothing to do
    cache = os.path.join(m.cache_dir, escape(C) + ".db")
    assert os.path.exists(cache)
    assert m.control("remove " + C) == 0
    assert escape(C) not in m.listing() and os.path.exists(cache)
    assert m.status()["integrations"][C]["state"] == "removed"
    assert m.control("remove " + C) == errno.EINVAL     # not mirrored any more
    assert m.control("remove personio:nobodyNOBODYnobody") == errno.EINVAL
    assert m.control("purge " + C) == 0
    assert not os.path.exists(cache)
    assert m.control("bogus") == errno.EINVAL
    assert m.control("add") == errno.EINVAL


def test_reload_applies_what_changed_in_the_file(sb, multi):
    m = multi(sb, [A])
    wait_for(lambda: escape(A) in m.listing(), what="A")
    m.file.write_text(A + "\n" + B + "\n")
    assert m.control("reload") == 0
    wait_for(lambda: escape(B) in m.listing(), what="B after reload")
    assert m.control("remove " + A) == 0          # removed through .control
    m.file.write_text(A + "\n" + B + "\n" + C + "\n")
    os.kill(m.proc.pid, signal.SIGHUP)
    wait_for(lambda: escape(C) in m.listing(), what="C after SIGHUP")
    assert escape(A) not in m.listing(), "an id removed through .control stays removed"
    assert is_mounted(m.mnt), "SIGHUP reloads, it does not stop the daemon"


def test_a_malformed_file_names_the_line(sb, multi, tmp_path):
    (tmp_path / "integrations").write_text(A + "\n" + "two ids\n")
    m = multi(sb, None, wait=False)
    m.proc.wait(timeout=30)
    assert m.proc.returncode == 2, m.log_text()
    assert ":2:" in m.log_text(), m.log_text()
    assert not is_mounted(m.mnt)


def test_webhooks_are_routed_by_integration(sb, multi):
    m = multi(sb, [A, B], f"--webhook-listen=127.0.0.1:{sb.hook_port}")
    wait_for(lambda: m.listing() == sorted([escape(A), escape(B), "by-origin"]), what="A and B")
    emp = sb.visible("employees", integration=A)[0]
    before_b = sb.stats()["by_integration"].get(B, {}).get("total", 0)
    sb.update_employee(emp["id"], job_title="Routed Title", integration=A)
    sb.flush_webhooks()
    path = m.path(escape(A), "employees", escape(emp["id"]) + ".json")

    def updated():
        with open(path, encoding="utf-8") as f:
            return json.load(f)["job_title"] == "Routed Title"

    wait_for(updated, what="A's change through its webhook")
    assert sb.stats()["by_integration"].get(B, {}).get("total", 0) == before_b, \
        "A's webhook fetched nothing of B"
    entry = sb.send_webhook("data-changed", integration="personio:notMIRROREDhere00000")
    assert entry["status"] == 200
    root = m.status()["webhooks"]
    assert root["accepted"] >= 1 and root["ignored"] >= 1 and root["rejected"] == 0
    for iid, n in ((A, 1), (B, 0)):
        with open(m.path(escape(iid), ".status"), encoding="utf-8") as f:
            assert json.load(f)["webhooks"]["accepted"] == n, iid


def test_discover_and_by_origin(sb, multi):
    m = multi(sb, [A], f"--webhook-listen=127.0.0.1:{sb.hook_port}", "--discover")
    wait_for(lambda: escape(A) in m.listing(), what="A")
    D = "personio:DDDDddddDDDDdddd0004"
    sb.add_integration(D, employees=4, origin_id="cust-42", notify=True)
    wait_for(lambda: escape(D) in m.listing(), what="the discovered integration")
    assert os.readlink(m.path("by-origin", "cust-42")) == "../" + escape(D)
    assert os.listdir(m.path("by-origin", "cust-42", "employees"))
    st = m.status()["integrations"][D]
    assert st["origin_id"] == "cust-42" and st.get("discovered") is True


def proc_counts(pid):
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.timeout(600)
def test_200_integrations_keep_threads_and_files_bounded(multi):
    """SPEC §8/§9: threads and open files do not grow with the integrations (≤ 32 threads,
    ≤ 256 open files), while all of them are mirrored, read and synced."""
    s = Sandbox(employees=3, api_key=API_KEY, integrations=200)
    s.start()
    try:
        ids = s.integrations()
        assert len(ids) == 200
        m = multi(s, ids)
        pid = m.proc.pid
        peak = [0, 0]

        def all_there():
            t, f = proc_counts(pid)
            peak[0], peak[1] = max(peak[0], t), max(peak[1], f)
            return len(m.listing()) == 201

        wait_for(all_there, timeout=500, what="200 directories")
        print("peak threads, open files while fetching:", peak)
        assert peak[0] <= 32 and peak[1] <= 256, peak
        for iid in ids:                                 # every tree read once
            d = m.path(escape(iid), "employees")
            names = os.listdir(d)
            with open(os.path.join(d, names[0]), encoding="utf-8") as f:
                assert json.load(f)["id"]
        t, f = proc_counts(pid)
        assert t <= 32 and f <= 256, (t, f)
        assert m.control("sync") == 0                   # 200 delta fetches
        t, f = proc_counts(pid)
        assert t <= 32 and f <= 256, (t, f)
        st = m.status()["integrations"]
        assert len(st) == 200 and all(v["state"] == "ready" for v in st.values())
    finally:
        s.stop()


def timed_control(path, cmd):
    t = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, (cmd + "\n").encode())
        rc = 0
    except OSError as e:
        rc = e.errno
    finally:
        os.close(fd)
    return rc, time.monotonic() - t


def test_one_integrations_errors_do_not_stop_the_others(sb, multi):
    import threading
    m = multi(sb, [A, B])
    wait_for(lambda: m.listing() == sorted([escape(A), escape(B), "by-origin"]), what="A and B")
    a_file = m.path(escape(A), "employees", escape(sb.visible("employees", integration=A)[0]["id"]) + ".json")
    emp_b = sb.visible("employees", integration=B)[0]
    # A's key is refused: B syncs, A's files keep being served, A shows the error
    sb.set_faults(integration=A, auth_fail=True)
    assert m.control("sync") == errno.EIO          # one integration failed
    sb.update_employee(emp_b["id"], job_title="Still Fresh", integration=B)
    rc, _ = timed_control(m.path(escape(B), ".control"), "sync")
    assert rc == 0
    with open(m.path(escape(B), "employees", escape(emp_b["id"]) + ".json"), encoding="utf-8") as f:
        assert json.load(f)["job_title"] == "Still Fresh"
    with open(a_file, encoding="utf-8") as f:
        assert json.load(f)["id"]
    st = m.status()["integrations"]
    assert st[A]["last_error"] and "401" in st[A]["last_error"] or "auth" in st[A]["last_error"].lower()
    assert st[B]["last_error"] is None
    # A's pages are slow: B's fetch does not wait for them
    sb.set_faults(integration=A, slow=3.0)
    t = threading.Thread(target=timed_control, args=(m.path(escape(A), ".control"), "sync"))
    t.start()
    time.sleep(0.3)
    rc, took = timed_control(m.path(escape(B), ".control"), "sync")
    assert rc == 0 and took < 2.0, took
    t.join(30)
    sb.set_faults(integration=A)


def test_a_429_pauses_every_integration_of_the_key(sb, multi):
    import threading
    m = multi(sb, [A, B])
    wait_for(lambda: m.listing() == sorted([escape(A), escape(B), "by-origin"]), what="A and B")
    rc, quick = timed_control(m.path(escape(B), ".control"), "sync")
    assert rc == 0
    sb.set_faults(integration=A, rate_limit=1, retry_after=3)
    t = threading.Thread(target=timed_control, args=(m.path(escape(A), ".control"), "sync"))
    t.start()
    wait_for(lambda: m.status()["api"]["throttled"] >= 1, what="A's 429")
    rc, took = timed_control(m.path(escape(B), ".control"), "sync")
    t.join(30)
    assert rc == 0
    assert took > 1.0 and took > 5 * quick, (took, quick)  # B waited for A's Retry-After


@pytest.mark.timeout(300)
def test_kill_9_during_initial_fetches_loses_and_duplicates_nothing(multi):
    s = Sandbox(employees=300, api_key=API_KEY, integration_id=A, integrations={A: 300, B: 300, C: 300})
    s.start()
    try:
        m = multi(s, [A, B, C])
        time.sleep(0.4)                              # initial fetches under way
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait()
        subprocess.run(["fusermount3", "-u", "-z", m.mnt], stderr=subprocess.DEVNULL)
        m2 = multi(s, None)                          # the same file and cache dir
        wait_for(lambda: len(m2.listing()) == 4, timeout=240, what="all three after restart")
        inos = {}
        for iid in (A, B, C):
            want = {r["id"]: r for r in s.visible("employees", integration=iid)}
            assert records(m2, iid) == want
            created = []
            cdir = m2.path(escape(iid), "changes")
            for n in os.listdir(cdir):
                with open(os.path.join(cdir, n), encoding="utf-8") as f:
                    e = json.load(f)
                if e["op"] == "created":
                    created.append((e["model"], e["id"]))
            assert len(created) == len(set(created)), "a record created twice"
            inos[iid] = {n: os.stat(m2.path(escape(iid), "employees", n)).st_ino
                         for n in os.listdir(m2.path(escape(iid), "employees"))}
        subprocess.run(["fusermount3", "-u", m2.mnt], check=True)
        m2.proc.wait(timeout=30)
        m3 = multi(s, None)
        wait_for(lambda: len(m3.listing()) == 4, timeout=60, what="all three again")
        for iid in (A, B, C):
            assert {n: os.stat(m3.path(escape(iid), "employees", n)).st_ino
                    for n in os.listdir(m3.path(escape(iid), "employees"))} == inos[iid]
    finally:
        s.stop()


def test_periodic_full_fetches_are_spread(multi):
    ids = ["personio:SPREAD%018d" % i for i in range(8)]
    s = Sandbox(employees=2, api_key=API_KEY, integration_id=ids[0],
                integrations={i: 2 for i in ids})
    s.start()
    try:
        m = multi(s, ids, "--full-sync-interval=4d")
        wait_for(lambda: len(m.listing()) == 9, what="eight integrations")
        day = 86400
        nexts = []
        for iid in ids:
            with open(m.path(escape(iid), ".status"), encoding="utf-8") as f:
                ep = json.load(f)["endpoints"]["employees"]
            full = ep["last_full"]["finished_at"]
            nexts.append((ep["next_full_at"], full))
        import datetime

        def ts(x):
            return datetime.datetime.strptime(x, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()

        offsets = [ts(n) - ts(f) for n, f in nexts]
        assert all(3 * day - 5 <= o <= 4 * day + 5 for o in offsets), offsets
        assert max(offsets) - min(offsets) > 3600, "not all due at the same time"
    finally:
        s.stop()


def test_integration_deleted_stops_it_and_purge_deleted_purges(sb, multi, tmp_path):
    m = multi(sb, [A, B], f"--webhook-listen=127.0.0.1:{sb.hook_port}")
    wait_for(lambda: m.listing() == sorted([escape(A), escape(B), "by-origin"]), what="A and B")
    sb.send_webhook("integration-deleted", integration=A)
    wait_for(lambda: m.status()["integrations"][A]["state"] == "deleted", what="A deleted")
    assert records(m, A), "its files stay readable"
    assert m.control("sync") in (0, errno.EIO)
    # restart: still deleted (the roster remembers)
    subprocess.run(["fusermount3", "-u", m.mnt], check=True)
    m.proc.wait(timeout=30)
    m2 = multi(sb, None, f"--webhook-listen=127.0.0.1:{sb.hook_port}", "--purge-deleted")
    wait_for(lambda: escape(B) in m2.listing(), what="B after restart")
    assert m2.status()["integrations"][A]["state"] == "deleted"
    cache_b = os.path.join(m2.cache_dir, escape(B) + ".db")
    assert os.path.exists(cache_b)
    sb.send_webhook("integration-deleted", integration=B)
    wait_for(lambda: not os.path.exists(cache_b), what="B purged")
    assert escape(B) not in m2.listing()


def test_a_corrupt_cache_is_an_error_of_its_own_and_is_kept(sb, multi, tmp_path):
    caches = tmp_path / "caches"
    caches.mkdir()
    bad = caches / (escape(B) + ".db")
    bad.write_bytes(b"not a database " * 100)
    m = multi(sb, [A, B])
    wait_for(lambda: escape(A) in m.listing(), what="A")
    st = m.status()["integrations"]
    assert st[B]["state"] == "error" and st[B]["last_error"], st[B]
    assert escape(B) not in m.listing()
    assert bad.read_bytes() == b"not a database " * 100, "nothing is wiped"


def test_an_unwritable_cache_dir_is_refused_before_mounting(sb, multi, tmp_path):
    (tmp_path / "caches").write_text("a file, not a directory")
    m = multi(sb, [A], wait=False)
    assert m.proc.wait(timeout=30) == 2, m.log_text()
    assert "cache-dir" in m.log_text() and not is_mounted(m.mnt)


def test_new_caches_are_created_by_their_first_fetch_not_before_the_mount(sb, multi):
    # One worker and slow answers: at the mount, the caches of the integrations not
    # started yet must not exist (1,000 caches created one after another before the
    # mount delayed it by 10-18 s). A webhook for one of them that arrives first creates
    # its cache for the durable event id, without spoiling its first fetch.
    for i in (A, B, C):
        sb.set_faults(integration=i, slow=0.5)
    m = multi(sb, [A, B, C], "--max-connections=1", f"--webhook-listen=127.0.0.1:{sb.hook_port}")
    missing = [i for i in (A, B, C) if not os.path.exists(os.path.join(m.cache_dir, escape(i) + ".db"))]
    assert len(missing) >= 2, missing
    x = missing[-1]
    assert m.status()["integrations"][x]["state"] == "initial-sync"
    assert sb.send_webhook("data-changed", integration=x)["status"] == 200
    assert os.path.exists(os.path.join(m.cache_dir, escape(x) + ".db"))
    for i in (A, B, C):
        sb.set_faults(integration=i)
    wait_for(lambda: m.listing() == sorted([escape(A), escape(B), escape(C), "by-origin"]),
             what="A, B and C", timeout=60)
    assert sorted(records(m, x)) == sorted(e["id"] for e in sb.visible("employees", integration=x))
    with open(m.path(escape(x), ".status"), encoding="utf-8") as f:
        st = json.load(f)
    assert st["webhooks"]["accepted"] == 1
    # the root's .status counts from memory what the integration's own counts in its cache
    wait_for(lambda: m.status()["integrations"][x]["records"] ==
             sum(e["records"] for e in st["endpoints"].values()), what="the root's count")
