"""kombofs --check: validates options, key, cache and API access, and exits without mounting."""
import os
import subprocess

import pytest

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


def test_check_looks_at_fuse_and_the_cache_directory(sandbox, tmp_path):
    r = check(sandbox, tmp_path, "-o", "allow_other")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "  FUSE         /dev/fuse opens" in r.stdout
    assert "  fusermount3  not needed (root mounts with mount(2))" in r.stdout
    assert "  allow_other  allowed (root)" in r.stdout
    assert f"  cache dir    {tmp_path} is writable" in r.stdout
    r = check(sandbox, tmp_path, f"--cache={tmp_path}/new/sub/c.db")
    assert r.returncode == 0 and f"{tmp_path}/new/sub will be created ({tmp_path} is writable)" in r.stdout
    assert not os.path.exists(tmp_path / "new"), "a check creates nothing"


def test_check_reports_a_cache_directory_it_cannot_create(sandbox, tmp_path):
    (tmp_path / "file").write_text("")
    r = check(sandbox, tmp_path, f"--cache={tmp_path}/file/sub/c.db")
    assert r.returncode == 1 and "check FAILED" in r.stdout
    assert f"  cache dir    FAILED: {tmp_path}/file: Not a directory" in r.stdout, r.stdout


def test_check_offline_without_a_cache_fails(sandbox, tmp_path):
    r = check(sandbox, tmp_path, "--offline")
    assert r.returncode == 1, r.stdout
    assert "all checks passed" not in r.stdout and "check FAILED" in r.stdout
    assert "does not exist, and --offline serves only an existing cache" in r.stdout
    assert not sandbox.requests()


def test_check_tries_the_fuse_options(sandbox, tmp_path):
    r = check(sandbox, tmp_path, "-o", "bogus")
    assert r.returncode == 1 and "  options      FAILED: FUSE refused the options" in r.stdout
    assert "bogus" in r.stdout


def test_check_as_a_user_other_than_root(sandbox, tmp_path):
    """As nobody: fusermount3 must be setuid root, allow_other needs user_allow_other, and
    /dev/fuse must open; what the check says is compared with what this host has."""
    import pwd
    import shutil
    import stat
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) not installed")
    nobody = pwd.getpwnam("nobody")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOMBO_")}
    env["KOMBO_API_KEY"] = API_KEY
    r = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                        "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                        KOMBOFS, "--check", INTEGRATION, "--offline", "--cache=/tmp/kombofs-none/c.db",
                        "-o", "allow_other"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    dev_ok = os.stat("/dev/fuse").st_mode & 0o006 == 0o006
    assert ("/dev/fuse opens" in r.stdout) == dev_ok, r.stdout
    assert ("FAILED: cannot open /dev/fuse: Permission denied" in r.stdout) == (not dev_ok)
    fm = shutil.which("fusermount3") or ""
    fm_ok = fm and os.stat(fm).st_uid == 0 and os.stat(fm).st_mode & stat.S_ISUID
    assert ("fusermount3  /usr/bin/fusermount3 (setuid root)" in r.stdout) == bool(fm_ok), r.stdout
    with open("/etc/fuse.conf") as f:
        uao = any(ln.split("#")[0].strip() == "user_allow_other" for ln in f)
    assert ("allow_other  allowed (user_allow_other in /etc/fuse.conf)" in r.stdout) == uao
    assert ("allow_other  FAILED: a user other than root needs user_allow_other" in r.stdout) == (not uao)
