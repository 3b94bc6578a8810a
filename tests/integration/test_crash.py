"""Crash safety (issue 8, SPEC §5): kill -9 at 21 random moments, during full fetches,
delta fetches and webhook handling. After each restart the cache passes
PRAGMA integrity_check, no watermark is ahead of its data (a plain delta fetch brings
the mirror level with the sandbox), and the change log's numbering only grew."""
import os
import random
import sqlite3
import threading
import time

import pytest

import conftest
from conftest import INTEGRATION, is_mounted, read_dir, sanitized
from kombo_sandbox import Sandbox
from sandbox_webhooks import sign
from test_webhook import free_port, post, data_changed

DIRS = ["employees", "employments", "time-off-balances"]
SECRET = "crash-test-secret"


def mirror_equals(fs, sb):
    return mirror_equals_dirs(fs, sb, DIRS)


def mirror_equals_dirs(fs, sb, dirs):
    for d in dirs:
        want = {r["id"]: r for r in sb.visible(d)}
        got = read_dir(fs, d)
        if got != want:
            return f"{d}: {len(got)} files, {len(want)} records, " \
                   f"{sum(1 for k in want if got.get(k) != want[k])} differ"
    return None


def last_seq(cache):
    db = sqlite3.connect(cache)
    try:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return row[0] if row else 0
    finally:
        db.close()


@pytest.mark.timeout(600)
@pytest.mark.allow_log_errors
def test_kill_9_at_21_moments(kombofs, tmp_path):
    seed = int(os.environ.get("KOMBOFS_TEST_SEED", random.randrange(1 << 30)))
    print(f"seed={seed}")
    rng = random.Random(seed)
    port = free_port()
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    sb = Sandbox(employees=1200, seed=seed % 1000, integration_id=INTEGRATION,
                 webhook_url=f"http://127.0.0.1:{port}/webhook", webhook_secret=SECRET,
                 webhook_delay=0.01)
    sb.start()
    cache = str(tmp_path / "crash.db")
    args = ("--models=" + ",".join(DIRS), f"--webhook-listen=127.0.0.1:{port}",
            f"--webhook-secret-file={secret_file}", "--poll-interval=0")
    kills = {"full": 0, "delta": 0, "webhook": 0}
    try:
        fs = kombofs(sb, *args, cache=cache)
        seq = last_seq(cache)
        for round_ in range(21):
            phase = ("full", "delta", "webhook")[round_ % 3]
            emps = sb.visible("employees")
            for e in rng.sample(emps, 20):
                sb.update_employee(e["id"], job_title=f"r{round_} " + "x" * rng.randrange(40))
            for e in rng.sample(emps, 5):
                if e["employments"]:
                    sb.update_employment(e["employments"][0]["id"], pay_rate=round_ * 1000)
            sb.soft_delete("employees", rng.choice(emps)["id"])
            sb.create_employee(first_name=f"New{round_}")
            sb.set_faults(slow=0.005)   # fetches long enough to be hit
            if phase == "full":
                threading.Thread(target=fs.control, args=("resync",), daemon=True).start()
            elif phase == "delta":
                threading.Thread(target=fs.control, args=("sync",), daemon=True).start()
            else:
                def flood():
                    for _ in range(30):
                        body = data_changed(["hris_employees", "hris_employments"])
                        try:
                            post(port, body, sign(SECRET, body))
                        except OSError:
                            return
                threading.Thread(target=flood, daemon=True).start()
                sb.flush_webhooks()
            time.sleep(rng.uniform(0.02, 0.4))
            fs.proc.kill()
            fs.proc.wait()
            fs.stop()
            kills[phase] += 1
            sb.set_faults()

            db = sqlite3.connect(cache)
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"seed={seed}"
            db.close()
            now = last_seq(cache)
            assert now >= seq, "sequence numbers only grow"
            seq = now

            fs = kombofs(sb, *args, cache=cache, mnt=str(tmp_path / f"m{round_}"))
            assert fs.control("sync") == 0
            diff = mirror_equals(fs, sb)
            assert diff is None, f"after kill {round_} ({phase}), seed={seed}: {diff}"
        assert kills == {"full": 7, "delta": 7, "webhook": 7}
    finally:
        sb.stop()


def webhook_sandbox(tmp_path, employees):
    """A started sandbox that posts its webhooks to a free port, that port, and the
    daemon's options for its receiver there."""
    port = free_port()
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    sb = Sandbox(employees=employees, integration_id=INTEGRATION,
                 webhook_url=f"http://127.0.0.1:{port}/webhook", webhook_secret=SECRET,
                 webhook_delay=0.01)
    sb.start()
    return sb, port, (f"--webhook-listen=127.0.0.1:{port}",
                      f"--webhook-secret-file={secret_file}", "--poll-interval=0")


def journal_mode(cache):
    db = sqlite3.connect(cache)
    try:
        return db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        db.close()


@pytest.mark.timeout(300)
@pytest.mark.allow_log_errors
def test_a_first_fetch_killed_or_failed_is_started_again(kombofs, tmp_path):
    """Issue 15 §3: a new cache is built by its first fetch without a journal (every page
    written once); a marker file says so until the build is synced and in WAL mode. A
    kill -9 during the build, or a first fetch that fails, leaves the marker; the next
    start removes the torn cache and fetches everything again. Webhooks that arrive
    during the build are recorded on the receiver's own connection meanwhile."""
    sb, port, hook_args = webhook_sandbox(tmp_path, 1500)
    cache = str(tmp_path / "build.db")
    marker = cache + "-building"
    args = ("--models=" + ",".join(DIRS), *hook_args)
    try:
        # 1. killed in the middle of the build, with webhooks arriving
        sb.set_faults(slow=0.2)
        fs = kombofs(sb, *args, cache=cache, wait=False)
        deadline = time.monotonic() + 60
        while not (os.path.exists(cache) and os.path.getsize(cache) > 1_500_000):
            assert time.monotonic() < deadline and fs.proc.poll() is None, fs.log_text()
            time.sleep(0.01)
        assert os.path.exists(marker)
        answered = []
        for _ in range(5):
            body = data_changed(["hris_employees"])
            answered.append(post(port, body, sign(SECRET, body))[0])
        assert answered == [200] * 5
        fs.proc.kill()
        fs.proc.wait()
        fs.stop()
        assert os.path.exists(marker)
        sb.set_faults()

        # 2. the next start builds it again, whole
        fs = kombofs(sb, *args, cache=cache, mnt=str(tmp_path / "m2"))
        assert "first fetch was interrupted; starting it again" in fs.log_text()
        assert not os.path.exists(marker)
        assert not os.path.exists(cache + "-journal")
        assert mirror_equals(fs, sb) is None
        fs.stop()
        assert journal_mode(cache) == "wal"
        db = sqlite3.connect(cache)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()

        # 3. a later start keeps the cache (no marker), and a kill now is WAL's business
        fs = kombofs(sb, *args, cache=cache, mnt=str(tmp_path / "m3"))
        assert "starting it again" not in fs.log_text()
        assert not os.path.exists(marker)
        fs.stop()

        # 4. a first fetch that fails leaves the marker; the next one starts again
        other = str(tmp_path / "fails.db")
        sb.set_faults(fail_after_pages=2)     # 5xx from the third page on, retried, then failed
        bad = kombofs(sb, *args, cache=other, mnt=str(tmp_path / "m4"), wait=False)
        assert bad.proc.wait(timeout=120) != 0
        assert os.path.getsize(other) > 100_000     # two pages were stored
        bad.stop()
        assert os.path.exists(other + "-building")
        # --offline cannot serve a torn cache, nor finish its build: a clear refusal
        off = kombofs(sb, *args, "--offline", cache=other, mnt=str(tmp_path / "m4b"), wait=False)
        assert off.proc.wait(timeout=60) == 2
        assert "first fetch was interrupted; start without --offline" in off.log_text()
        off.stop()
        sb.set_faults()
        fs = kombofs(sb, *args, cache=other, mnt=str(tmp_path / "m5"))
        assert "starting it again" in fs.log_text()
        assert mirror_equals(fs, sb) is None and not os.path.exists(other + "-building")
    finally:
        sb.stop()


@pytest.mark.timeout(300)
@pytest.mark.allow_log_errors
def test_a_first_fetch_killed_in_a_batch_of_pages_is_started_again(kombofs, tmp_path):
    """While a new cache is built, the pages of a fast listing share a transaction (up to
    16 pages or 250 ms, and only while the next page is already downloaded): a commit per
    page rewrote every index page the page's names touched. A kill -9 in the middle of
    such a batch leaves the marker, and the next start builds the cache again, whole;
    webhooks that arrive meanwhile are answered, their event ids recorded between two
    batches."""
    sb, port, hook_args = webhook_sandbox(tmp_path, 12000)
    cache = str(tmp_path / "batch.db")
    marker = cache + "-building"
    args = ("--models=employees", *hook_args, "-v")
    try:
        # 1. a whole first fetch: its pages went in batches, webhooks answered. Each
        # page 10 ms late, so that the build lasts long enough to be hit (48 pages), and
        # is still ahead of the storing thread within the 20 ms it waits for one.
        sb.set_faults(slow=0.01)
        fs = kombofs(sb, *args, cache=cache, wait=False)
        answered = []
        deadline = time.monotonic() + 120
        while not (os.path.exists(cache) and os.path.getsize(cache) > 1_000_000):
            assert time.monotonic() < deadline and fs.proc.poll() is None, fs.log_text()
            time.sleep(0.002)
        for _ in range(5):
            body = data_changed(["hris_employees"])
            answered.append(post(port, body, sign(SECRET, body))[0])
        while not is_mounted(fs.mnt):
            assert time.monotonic() < deadline and fs.proc.poll() is None, fs.log_text()
            time.sleep(0.02)
        assert answered == [200] * 5
        # A batch goes on only while the next page is already downloaded or comes within
        # 20 ms. Under AddressSanitizer the download thread takes 22-30 ms a page (its
        # scan and derivations are instrumented) and the writer less, so each page is
        # rightly committed alone there: the batches are a property of the plain build.
        if not sanitized(conftest.KOMBOFS):
            assert "pages committed in one transaction" in fs.log_text(), fs.log_text()[-2000:]
        assert mirror_equals_dirs(fs, sb, ["employees"]) is None
        fs.stop()
        os.unlink(cache)

        # 2. killed while a batch is open (the file has its first batch, not its last)
        fs = kombofs(sb, *args, cache=cache, mnt=str(tmp_path / "m2"), wait=False)
        deadline = time.monotonic() + 120
        while not (os.path.exists(cache) and os.path.getsize(cache) > 1_000_000):
            assert time.monotonic() < deadline and fs.proc.poll() is None, fs.log_text()
            time.sleep(0.002)
        fs.proc.kill()
        fs.proc.wait()
        log = fs.log_text()
        fs.stop()
        assert "mounted" not in log, "killed after the build ended: the test proves nothing"
        assert os.path.exists(marker)

        # 3. built again, whole
        sb.set_faults()
        fs = kombofs(sb, *args, cache=cache, mnt=str(tmp_path / "m3"))
        assert "first fetch was interrupted; starting it again" in fs.log_text()
        assert not os.path.exists(marker)
        assert mirror_equals_dirs(fs, sb, ["employees"]) is None
        fs.stop()
        db = sqlite3.connect(cache)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    finally:
        sb.stop()
