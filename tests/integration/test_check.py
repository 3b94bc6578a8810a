"""kombofs --check: validates options, key, cache and API access, and exits without mounting."""
import os
import subprocess

from conftest import API_KEY, INTEGRATION, KOMBOFS


def check(sandbox, tmp_path, *args, key=API_KEY):
    keyfile = tmp_path / "key"
    keyfile.write_text(key + "\n")
    cmd = [KOMBOFS, "--check", INTEGRATION, f"--api-url={sandbox.url}",
           f"--api-key-file={keyfile}", f"--cache={tmp_path}/c.db", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOMBO_")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)


def test_check_passes_and_mounts_nothing(sandbox, tmp_path):
    r = check(sandbox, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all checks passed" in r.stdout
    assert "key accepted" in r.stdout and "GET /hris/employees: ok" in r.stdout
    assert API_KEY not in r.stdout + r.stderr
    assert not os.path.exists(tmp_path / "c.db"), "a check creates no cache"
    pages = [q for q in sandbox.requests() if q["path"] == "/v1/hris/employees"]
    assert len(pages) == 1, "one page proves access; none is downloaded ahead"


def test_check_reports_a_rejected_key(sandbox, tmp_path):
    r = check(sandbox, tmp_path, key="wrong-key")
    assert r.returncode == 1
    assert "FAILED (unauthorized)" in r.stdout and "check FAILED" in r.stdout
    assert "wrong-key" not in r.stdout + r.stderr


def test_check_reports_an_unknown_integration(sandbox, tmp_path):
    r = check(sandbox, tmp_path, "--integration=personio:nope")
    assert r.returncode == 1 and "INTEGRATION_NOT_FOUND" in r.stdout


def test_check_reads_an_existing_cache(sandbox, kombofs, tmp_path):
    fs = kombofs(sandbox, cache=str(tmp_path / "c.db"))
    fs.stop()
    r = check(sandbox, tmp_path)
    assert r.returncode == 0
    n = sum(len(sandbox.visible(d)) for d in ("employees", "employments", "groups", "absences",
            "absence-types", "time-off-balances", "timesheets", "legal-entities", "locations"))
    assert f"{n} records" in r.stdout


def test_check_reports_a_bad_listen_address(sandbox, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    r = check(sandbox, tmp_path, "--webhook-listen=127.0.0.1:99999", f"--webhook-secret-file={secret}")
    assert r.returncode == 1 and "webhooks     FAILED" in r.stdout


def test_bad_listen_address_exits_2_before_mounting(tmp_path):
    key = tmp_path / "key"
    key.write_text("k\n")
    secret = tmp_path / "secret"
    secret.write_text("s\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([KOMBOFS, "x:y", str(mnt), f"--api-key-file={key}",
                        "--webhook-listen=nonsense", f"--webhook-secret-file={secret}"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
