"""Operating kombofs (issue 9): meson install into a DESTDIR, the installed binary, the
man page, the systemd unit and its notify protocol, and mounting through mount(8)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import API_KEY, INTEGRATION, KOMBOFS, ROOT, is_mounted, read_dir

BUILD = os.path.dirname(KOMBOFS)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    r = subprocess.run(["meson", "install", "-C", BUILD, "--quiet", "--destdir", str(dest)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return dest


def find(root, name):
    for d, _, files in os.walk(root):
        if name in files:
            return os.path.join(d, name)
    raise AssertionError(f"{name} not installed under {root}")


def test_install_puts_binary_man_page_unit_and_examples(installed):
    binary = find(installed, "kombofs")
    r = subprocess.run([binary, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("kombofs ")
    man = find(installed, "kombofs.1")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", man], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    unit = open(find(installed, "kombofs.service")).read()
    assert "Type=notify" in unit
    assert "ExecStart=" + binary[len(str(installed)):] in unit, "the unit runs the installed binary"
    find(installed, "kombofs.env")
    find(installed, "fstab")


def test_the_installed_binary_mounts(installed, sandbox, kombofs, monkeypatch):
    import conftest
    monkeypatch.setattr(conftest, "KOMBOFS", find(installed, "kombofs"))
    fs = kombofs(sandbox, "--models=employees")
    assert read_dir(fs, "employees") == {r["id"]: r for r in sandbox.visible("employees")}


def test_notify_socket_gets_ready_and_status(sandbox, kombofs, tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        fs = kombofs(sandbox, "--models=employees", env={"NOTIFY_SOCKET": path})
        messages = []
        deadline = time.monotonic() + 10
        while not any("READY=1" in m for m in messages) and time.monotonic() < deadline:
            messages.append(sock.recv(4096).decode())
        assert any("READY=1" in m for m in messages), messages
        assert any(m.startswith("STATUS=employees: full fetch") for m in messages), messages
        assert is_mounted(fs.mnt)
    finally:
        sock.close()


@pytest.fixture
def on_path():
    """mount.fuse3 runs the program named by the type (fuse.kombofs) from mount(8)'s
    own fixed PATH, so the build is linked as /usr/local/bin/kombofs for the test
    (whatever was there is put back afterwards)."""
    target = "/usr/local/bin/kombofs"
    saved = target + ".kombofs-test-saved"
    if os.path.lexists(target):
        os.rename(target, saved)
    os.symlink(KOMBOFS, target)
    try:
        yield target
    finally:
        os.unlink(target)
        if os.path.lexists(saved):
            os.rename(saved, target)


def mount_options(sandbox, tmp_path):
    key = tmp_path / "key"
    key.write_text(API_KEY + "\n")
    return (f"api_key_file={key},api_url={sandbox.url},cache={tmp_path}/c.db,"
            "models=employees,poll_interval=0")


def test_mount_t_fuse_kombofs(sandbox, tmp_path, on_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "fuse.kombofs", INTEGRATION, str(mnt), "-o",
                        mount_options(sandbox, tmp_path)], capture_output=True, text=True,
                       timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(str(mnt)), "mounted when mount(8) returns"
        assert len(os.listdir(mnt / "employees")) == len(sandbox.visible("employees"))
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    deadline = time.monotonic() + 10
    while is_mounted(str(mnt)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_mounted(str(mnt))


def test_relative_paths_are_resolved_before_going_to_the_background(sandbox, tmp_path):
    """The daemon changes to "/": `kombofs ID mnt --cache=c.db` run in a directory must
    mount that directory's mnt and keep its cache there (it failed to mount before)."""
    (tmp_path / "mnt").mkdir()
    (tmp_path / "key").write_text(API_KEY + "\n")
    r = subprocess.run([KOMBOFS, INTEGRATION, "mnt", "--cache=c.db", "--api-key-file=key",
                        f"--api-url={sandbox.url}", "--models=employees", "--poll-interval=0"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    mnt = tmp_path / "mnt"
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(str(mnt))
        assert (tmp_path / "c.db").exists()
        assert len(os.listdir(mnt / "employees")) == len(sandbox.visible("employees"))
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        # Without the fix the daemon mounted "mnt" relative to "/": stop whatever this
        # test started (it alone uses this sandbox's URL), so that nothing leaks.
        for pid in daemons_using(sandbox.url):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while (is_mounted(str(mnt)) or daemons_using(sandbox.url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_mounted(str(mnt))
    assert not daemons_using(sandbox.url)


def daemons_using(url):
    """Pids of kombofs processes whose command line names url."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0] == KOMBOFS.encode() and f"--api-url={url}".encode() in argv:
            pids.append(int(entry))
    return pids


def test_fstab_line_works_with_mount_a(sandbox, tmp_path, on_path):
    mnt = tmp_path / "hr"
    mnt.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{INTEGRATION} {mnt} fuse.kombofs _netdev,{mount_options(sandbox, tmp_path)} 0 0\n")
    r = subprocess.run(["mount", "-a", "--fstab", str(fstab)], capture_output=True, text=True,
                       timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(str(mnt))
        assert len(os.listdir(mnt / "employees")) == len(sandbox.visible("employees"))
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_example_files_parse():
    env = open(os.path.join(ROOT, "examples", "kombofs.env")).read()
    assert "KOMBO_INTEGRATION_ID=" in env and "api-key-file" in env and "API_KEY=" not in env
    line = [ln for ln in open(os.path.join(ROOT, "examples", "fstab")) if not ln.startswith("#")][0]
    assert line.split()[2] == "fuse.kombofs" and "api_key_file=" in line.split()[3]
    assert shutil.which("groff")


# --- issue 16: operating it as operators and packagers do --------------------------

def test_version_names_the_libraries_it_runs_with():
    """--version: kombofs's and the runtime versions of the libraries, each one checked
    by asking the very shared object the binary is linked with (ldd) through ctypes."""
    import ctypes
    r = subprocess.run([KOMBOFS, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stderr == ""
    lines = dict(ln.split(" ", 1) for ln in r.stdout.splitlines())
    assert set(lines) == {"kombofs", "libfuse", "libcurl", "SQLite", "jansson", "libmicrohttpd",
                          "OpenSSL", "zstd", "libdeflate"}, r.stdout
    libs = {}
    for ln in subprocess.run(["ldd", KOMBOFS], capture_output=True, text=True).stdout.splitlines():
        if "=>" in ln and "/" in ln.split("=>")[1]:
            libs[ln.split()[0].split(".so")[0]] = ln.split("=>")[1].split()[0]

    def call(lib, fn, *args):
        f = getattr(ctypes.CDLL(libs[lib]), fn)
        f.restype = ctypes.c_char_p
        return f(*args).decode()

    assert lines["libfuse"] == call("libfuse3", "fuse_pkgversion")
    assert lines["libcurl"] == call("libcurl", "curl_version").split()[0].split("/")[1]
    assert lines["SQLite"] == call("libsqlite3", "sqlite3_libversion")
    assert lines["jansson"] == call("libjansson", "jansson_version_str")
    assert lines["libmicrohttpd"] == call("libmicrohttpd", "MHD_get_version")
    assert lines["OpenSSL"] == call("libcrypto", "OpenSSL_version", 0).split(" ", 1)[1]
    assert lines["zstd"] == call("libzstd", "ZSTD_versionString")
    # libdeflate has no call that says its version: the one built with, as Debian ships it
    deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libdeflate-dev"],
                         capture_output=True, text=True).stdout
    assert deb.startswith(lines["libdeflate"] + "-"), (lines["libdeflate"], deb)


def run_kombofs(*args, timeout=20, **kw):
    return subprocess.run([KOMBOFS, *args], capture_output=True, text=True, timeout=timeout, **kw)


def test_bad_options_are_one_kombofs_line_and_create_nothing(tmp_path):
    """-o bogus is refused before the cache (or its directory) exists; every message
    starts with kombofs: and says what was expected."""
    (tmp_path / "key").write_text("k\n")
    (tmp_path / "mnt").mkdir()
    base = [INTEGRATION, str(tmp_path / "mnt"), f"--api-key-file={tmp_path}/key",
            f"--cache={tmp_path}/state/c.db"]
    cases = [
        (["-o", "bogus"], "bogus"),
        (["-o", "allow_other,frobnicate=1"], "frobnicate"),
        (["-o", "umask=999"], "octal"),
        (["--models=payroll"], "valid: employees, employments, groups"),
        (["-o", "gid=no-such-group-kombofs"], "no group named 'no-such-group-kombofs'"),
        (["--full-sync-interval=1h30"], "1h30m"),
        (["--metrics-listen=127.0.0.1:0"], "--metrics-listen=127.0.0.1:0"),
    ]
    for extra, needle in cases:
        r = run_kombofs(*base, *extra)
        assert r.returncode == 2, (extra, r.stderr)
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("kombofs: ") and needle in err[0], (extra, err)
        assert sorted(os.listdir(tmp_path)) == ["key", "mnt"], (extra, os.listdir(tmp_path))
    assert not is_mounted(str(tmp_path / "mnt"))


def test_compound_durations_are_accepted(sandbox, kombofs):
    fs = kombofs(sandbox, "--models=employees", "--full-sync-interval=1d12h",
                 "-o", "poll_interval=1h30m,overlap=1m30s")
    assert fs.status()["state"] == "ready"


def daemons_named(needle):
    """Pids of kombofs processes (any argv[0]) whose command line contains needle."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"kombofs" and any(needle.encode() in a for a in argv):
            pids.append(int(entry))
    return pids


@pytest.mark.skipif(not os.path.exists("/sbin/mount.fuse3"), reason="fuse3's mount.fuse3 not installed")
def test_mount_fuse3_drop_privileges(sandbox, tmp_path, on_path):
    """mount.fuse3 -o drop_privileges mounts itself and runs kombofs with /dev/fd/N as the
    mount point and no capabilities left (it was refused as "not a directory")."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "fuse.kombofs", INTEGRATION, str(mnt), "-o",
                        "drop_privileges," + mount_options(sandbox, tmp_path)],
                       capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(str(mnt))
        assert read_dir_plain(mnt / "employees") == {e["id"]: e for e in sandbox.visible("employees")}
        [pid] = daemons_named(sandbox.url)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"/dev/fd/" in f.read().split(b"\0")[2]
        with open(f"/proc/{pid}/status") as f:
            caps = dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ln.startswith("Cap"))
        assert int(caps["CapEff"], 16) == 0 and int(caps["CapPrm"], 16) == 0, caps
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    deadline = time.monotonic() + 10
    while (is_mounted(str(mnt)) or daemons_named(sandbox.url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_mounted(str(mnt)) and not daemons_named(sandbox.url)


def read_dir_plain(path):
    import json
    out = {}
    for name in os.listdir(path):
        with open(os.path.join(path, name), encoding="utf-8") as f:
            rec = json.load(f)
        out[rec["id"]] = rec
    return out


def test_dev_fd_mount_point_from_a_mount_syscall(sandbox, tmp_path):
    """What mount.fuse3 does, done here: open /dev/fuse, mount(2) it with fd=N, and start
    kombofs (a child, with a timeout) on /dev/fd/N."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (tmp_path / "key").write_text(API_KEY + "\n")
    fd = os.open("/dev/fuse", os.O_RDWR)
    opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0,default_permissions".encode()
    MS_NOSUID, MS_NODEV = 2, 4
    rc = libc.mount(INTEGRATION.encode(), str(mnt).encode(), b"fuse.kombofs", MS_NOSUID | MS_NODEV, opts)
    assert rc == 0, os.strerror(ctypes.get_errno())
    log = open(tmp_path / "log", "w")
    proc = subprocess.Popen([KOMBOFS, INTEGRATION, f"/dev/fd/{fd}", "-f", f"--cache={tmp_path}/c.db",
                             f"--api-key-file={tmp_path}/key", f"--api-url={sandbox.url}",
                             "--models=employees", "--poll-interval=0"],
                            pass_fds=[fd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    os.close(fd)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(mnt / "employees"):
            assert proc.poll() is None, open(tmp_path / "log").read()
            assert time.monotonic() < deadline, open(tmp_path / "log").read()
            time.sleep(0.05)
        assert read_dir_plain(mnt / "employees") == {e["id"]: e for e in sandbox.visible("employees")}
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        try:
            assert proc.wait(timeout=10) == 0, open(tmp_path / "log").read()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert not is_mounted(str(mnt))


def start_child(args, tmp_path, env, stderr_path, mnt):
    """kombofs -f as a child, stderr to stderr_path; returns (Mount, stderr file)."""
    import conftest
    f = open(stderr_path, "w")
    proc = subprocess.Popen([KOMBOFS, *args], stdout=f, stderr=f, env=dict(os.environ, **env),
                            start_new_session=True)
    return conftest.Mount(proc, mnt, stderr_path, None), f


def journal_run(sandbox, tmp_path, name, *extra, expect_mount=True):
    """Runs kombofs -f with stderr a file that JOURNAL_STREAM names; returns its lines."""
    mnt = tmp_path / f"mnt-{name}"
    mnt.mkdir()
    (tmp_path / "key").write_text(API_KEY + "\n")
    path = tmp_path / f"{name}.journal"
    path.touch()
    st = os.stat(path)
    args = [INTEGRATION, str(mnt), "-f", f"--cache={tmp_path}/{name}.db",
            f"--api-key-file={tmp_path}/key", f"--api-url={sandbox.url}", "--models=employees",
            "--poll-interval=0", *extra]
    m, f = start_child(args, tmp_path, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, path, str(mnt))
    try:
        if expect_mount:
            deadline = time.monotonic() + 30
            while not is_mounted(str(mnt)):
                assert m.proc.poll() is None and time.monotonic() < deadline, path.read_text()
                time.sleep(0.02)
            os.listdir(mnt / "employees")
        else:
            m.proc.wait(timeout=20)
    finally:
        m.stop()
        f.close()
    return m.proc.returncode, path.read_text().splitlines()


def test_journal_stream_gets_syslog_priorities(sandbox, tmp_path):
    """Under systemd (JOURNAL_STREAM names stderr) each line starts with <N> and has no
    timestamp of ours; -v adds debug lines, -q leaves only warnings and errors, -d sends
    libfuse's own messages through the same log."""
    import re
    rc, lines = journal_run(sandbox, tmp_path, "plain")
    assert rc == 0 and lines, lines
    assert all(re.match(r"<[3-7]>\S", ln) for ln in lines), lines
    assert any(ln.startswith("<6>mounted ") for ln in lines), lines
    assert not any(re.search(r"\d\d:\d\d:\d\d\.\d\d\d", ln) for ln in lines), lines
    assert not any(ln.startswith("<7>") for ln in lines)

    rc, lines = journal_run(sandbox, tmp_path, "verbose", "-v")
    assert rc == 0 and any(ln.startswith("<7>debug: ") for ln in lines), lines

    rc, lines = journal_run(sandbox, tmp_path, "quiet", "-q")
    assert rc == 0 and not any(ln.startswith(("<6>", "<7>")) for ln in lines), lines

    rc, lines = journal_run(sandbox, tmp_path, "fuse", "-d")
    assert rc == 0 and any(ln.startswith("<7>debug: ") and "opcode: INIT" in ln for ln in lines), \
        [ln for ln in lines if "INIT" in ln]
    assert all(re.match(r"<[0-7]>", ln) for ln in lines)

    # A start that fails: the cache cannot be created (warning), so nothing mounts (error).
    (tmp_path / "file").write_text("")
    rc, lines = journal_run(sandbox, tmp_path, "fails", f"--cache={tmp_path}/file/sub/c.db",
                            expect_mount=False)
    assert rc == 2, lines
    assert any(ln.startswith("<4>warning: ") for ln in lines), lines
    assert any(ln.startswith("<3>error: ") for ln in lines), lines

    # JOURNAL_STREAM inherited by a process whose stderr is elsewhere: plain lines.
    st = os.stat("/dev/null")
    r = subprocess.run([KOMBOFS, INTEGRATION, str(tmp_path / "mnt-plain"), "-o", "umask=999",
                        f"--api-key-file={tmp_path}/key"], capture_output=True, text=True,
                       env=dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"), timeout=10)
    assert r.returncode == 2 and r.stderr.startswith("kombofs: option 'umask'"), r.stderr


def recv_all(sock, until, timeout):
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            out.append(sock.recv(4096).decode())
        except socket.timeout:
            break
        if until(out):
            break
    return out


def test_watchdog_pings_and_start_timeout_extension(sandbox, kombofs, tmp_path):
    """NOTIFY_SOCKET (abstract, '@'), WATCHDOG_USEC: EXTEND_TIMEOUT_USEC during the first
    fetch, READY=1, then WATCHDOG=1 every WATCHDOG_USEC/2; none for another WATCHDOG_PID."""
    name = f"kombofs-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        fs = kombofs(sandbox, "--models=employees", "--poll-interval=0",
                     env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "200000"})
        msgs = recv_all(sock, lambda m: any("READY=1" in x for x in m), 10)
        ready = next(i for i, m in enumerate(msgs) if "READY=1" in m)
        before = msgs[:ready]
        assert any("EXTEND_TIMEOUT_USEC=300000000" in m for m in before), msgs
        assert any(m.startswith("STATUS=employees: full fetch") and "EXTEND_TIMEOUT_USEC=" in m
                   for m in before), msgs
        t0 = time.monotonic()
        after = recv_all(sock, lambda m: m.count("WATCHDOG=1") >= 5, 5)
        assert after.count("WATCHDOG=1") >= 5 and time.monotonic() - t0 < 2, after
        assert not any("EXTEND_TIMEOUT_USEC" in m for m in after), after
        fs.stop()
        recv_all(sock, lambda m: False, 0.2)  # drain

        # A warm cache: READY=1 at once, no extension; WATCHDOG_PID names another process.
        fs = kombofs(sandbox, "--models=employees", "--poll-interval=0",
                     env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "100000",
                          "WATCHDOG_PID": "1"})
        msgs = recv_all(sock, lambda m: False, 0.6)
        assert any("READY=1" in m for m in msgs), msgs
        assert not any("WATCHDOG=1" in m or "EXTEND_TIMEOUT_USEC" in m for m in msgs), msgs
    finally:
        sock.close()


def configured_template(tmp_path):
    text = open(os.path.join(ROOT, "examples", "kombofs@.service.in")).read()
    text = text.replace("@BINDIR@", BUILD).replace("@DOCDIR@", "/usr/share/doc/kombofs")
    path = tmp_path / "kombofs@.service"
    path.write_text(text)
    return path, text


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_template_unit_verifies(tmp_path):
    """examples/kombofs@.service.in, with the build's binary, passes systemd-analyze verify
    without a warning (an unknown key is only a warning there, so stderr must be empty)."""
    path, text = configured_template(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for line in ("Type=notify", "EnvironmentFile=/etc/kombofs/%i.env", "User=kombofs",
                 "StateDirectory=kombofs", "WatchdogSec=", "NoNewPrivileges=yes",
                 "AmbientCapabilities=CAP_SYS_ADMIN", "CapabilityBoundingSet=CAP_SYS_ADMIN"):
        assert "\n" + line in text, line
    for namespaced in ("ProtectSystem=", "PrivateTmp=", "DynamicUser=", "ProtectHome=",
                       "PrivateDevices=", "ReadWritePaths="):
        assert "\n" + namespaced not in text, namespaced
    # a bad key would have been reported: the check can fail
    path.write_text(text.replace("[Service]\n", "[Service]\nProtectSystm=strict\n"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert "Unknown key" in r.stderr


def test_the_template_credentials_mount_and_a_slave_namespace_hides_the_mount(sandbox, tmp_path):
    """What the template gives kombofs, reproduced with setpriv: a user that is not root
    (nobody), CAP_SYS_ADMIN as its only (ambient) capability, no_new_privs (so a setuid
    fusermount3 could not help). It mounts and serves, and keeps the kernel's read-ahead,
    which the unit's ExecStartPost= lines then raise. It runs in a mount namespace that is
    a slave of ours, as systemd's ProtectSystem=/PrivateTmp= make one: the mount is not seen
    here, which is why the template uses none of them. /dev/fuse is 0666 on a normal host
    (the kernel's default); this container has it 0600, so the namespace gets a 0666 node."""
    if not all(shutil.which(t) for t in ("setpriv", "unshare", "findmnt")):
        pytest.skip("setpriv, unshare or findmnt (util-linux) not installed")
    import pwd
    nobody = pwd.getpwnam("nobody")
    _, unit = configured_template(tmp_path)
    settings = dict(ln.split("=", 1) for ln in unit.splitlines() if "=" in ln and not ln.startswith("#"))
    assert settings["User"] == "kombofs"   # played here by nobody: not root, no groups
    caps = ",".join("+" + c.lower()[4:] for c in settings["AmbientCapabilities"].split())
    bounding = ",".join("+" + c.lower()[4:] for c in settings["CapabilityBoundingSet"].split())
    nnp = "--no-new-privs" if settings.get("NoNewPrivileges") == "yes" else ""
    assert caps == bounding == "+sys_admin" and nnp
    as_kombofs = (f"setpriv --reuid={nobody.pw_uid} --regid={nobody.pw_gid} --clear-groups "
                  f"--inh-caps=-all,{caps} --ambient-caps=-all,{caps} --bounding-set=-all,{bounding} {nnp}")
    # The unit's ExecStartPost= lines, each as the user systemd would run it as: '+' as
    # root, the others as kombofs; '$$' is systemd's escape of '$'.
    post = []
    for ln in unit.splitlines():
        if ln.startswith("ExecStartPost="):
            cmd = ln.split("=", 1)[1]
            prefix = cmd[:len(cmd) - len(cmd.lstrip("-+"))]
            cmd = cmd[len(prefix):].replace("$$", "$")
            post.append(cmd if "+" in prefix else f"{as_kombofs} {cmd}")
    assert len(post) == 2
    work = tempfile.mkdtemp(prefix="kombofs-cred-", dir="/tmp")
    os.chmod(work, 0o755)
    try:
        for d in ("mnt", "state"):
            os.mkdir(os.path.join(work, d))
        os.chown(os.path.join(work, "state"), nobody.pw_uid, nobody.pw_gid)
        key = os.path.join(work, "key")
        with open(key, "w") as f:
            f.write(API_KEY + "\n")
        os.chown(key, nobody.pw_uid, nobody.pw_gid)
        os.chmod(key, 0o400)
        script = f"""
set -eu
mknod -m 666 {work}/fuse c 10 229
mount --bind {work}/fuse /dev/fuse
{as_kombofs} \\
    {KOMBOFS} {INTEGRATION} {work}/mnt -f -o allow_other --api-key-file={key} \\
        --cache={work}/state/c.db --api-url={sandbox.url} --models=employees --poll-interval=0 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid' EXIT
i=0
until grep -q " {work}/mnt fuse" /proc/self/mounts; do
    i=$((i+1)); [ $i -lt 300 ] || exit 9; kill -0 $pid; sleep 0.05
done
grep NoNewPrivs /proc/$pid/status
grep -E '^(Uid|CapEff|CapAmb)' /proc/$pid/status
ra=/sys/class/bdi/$(findmnt -nrf -d backward -o MAJ:MIN --mountpoint {work}/mnt)/read_ahead_kb
export KOMBOFS_MOUNTPOINT={work}/mnt
{post[0]}
echo "read-ahead as kombofs: $(cat $ra)"
{post[1]}
ls {work}/mnt/employees | wc -l
echo "read-ahead after ExecStartPost: $(cat $ra)"
touch {work}/inside-ready
while [ ! -e {work}/outside-checked ]; do sleep 0.05; i=$((i+1)); [ $i -lt 600 ] || exit 8; done
"""
        p = subprocess.Popen(["unshare", "--mount", "--propagation", "slave", "sh", "-c", script],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(os.path.join(work, "inside-ready")):
                assert p.poll() is None and time.monotonic() < deadline, p.communicate()
                time.sleep(0.05)
            seen_here = is_mounted(os.path.join(work, "mnt"))
            open(os.path.join(work, "outside-checked"), "w").close()
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        assert p.returncode == 0, out + err
        assert "NoNewPrivs:\t1" in out and f"Uid:\t{nobody.pw_uid}" in out, out
        assert "CapEff:\t0000000000200000" in out and "CapAmb:\t0000000000200000" in out, out
        assert f"\n{len(sandbox.visible('employees'))}\n" in out, out
        # kombofs, not root, keeps the kernel's read-ahead (bdi.h) at its first request
        # (the statfs); the unit raises it, as READY=1 is followed by ExecStartPost=
        ra = re.search(r"read-ahead as kombofs: (\d+)\n", out)
        assert ra and ra.group(1) != "1024", out
        assert "read-ahead after ExecStartPost: 1024\n" in out, out
        assert not seen_here, "a mount made in a slave namespace is not seen by the host"
    finally:
        if is_mounted(os.path.join(work, "mnt")):
            subprocess.run(["umount", "-l", os.path.join(work, "mnt")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


# Every ```sh block of docs/operations.md, by the section (## or ###) it is in. This test
# runs these; the Metrics block is run by test_metrics.py. A section with a new sh block
# that neither runs makes test_operations_doc_commands_run fail.
DOC_SECTIONS = {"Install": 2,
                "Configure": 1,
                "As a systemd service (recommended)": 1,
                "As a systemd template unit: one instance per mount": 1,
                "Logs and journald filtering": 1,
                "Least privilege without systemd: `mount.fuse3 -o drop_privileges`": 1,
                "Monitor": 1}
DOC_SECTIONS_ELSEWHERE = {"Metrics": ("test_metrics.py", "test_operations_doc_metrics_commands_run")}


def doc_blocks():
    """{section title: [sh block, ...]} for every ## or ### section with an sh block."""
    import re
    text = open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8").read()
    out = {}
    for m in re.finditer(r"^#{2,3} (.*?)\n(.*?)(?=^#{2,3} |\Z)", text, re.S | re.M):
        blocks = re.findall(r"^```sh\n(.*?)^```", m.group(2), re.S | re.M)
        if blocks:
            out[m.group(1).strip()] = blocks
    return out


def test_operations_doc_commands_run(sandbox, tmp_path):
    """Every sh block of docs/operations.md but Metrics's (test_metrics.py runs that one),
    run as written, in the doc's order except that `kombofs --check` (Install) runs once
    Configure has written the key file it names, and Monitor's check runs on the mount of
    the drop_privileges section before its umount. They run in a private mount namespace
    where /etc, /usr/local and /var/lib are overlays of the host's (group hr added), /srv
    a tmpfs, the working directory the source tree.

    Real: the package check of `. tests/deps.sh && kombofs_install_deps` (dpkg-query; every
    package must be installed already, as tests/run.sh leaves them); `meson install -C build`
    (real meson, with `build` read as the build under test, into the namespace's
    /usr/local, which every later command uses); `kombofs --check` against the sandbox
    (KOMBO_API_URL, which kombofs reads, names it; the cache directory is /var/lib/kombofs);
    install, cp, systemd-sysusers, systemd-analyze verify, journalctl, mount.fuse3 with
    drop_privileges and the Monitor section's jq check on that mount.
    Stubbed: apt-get (it fails the test if called: no installing from a test);
    `meson setup build --buildtype=release` and `meson compile -C build` (recorded and
    compared: a release build is not compiled here; tests/run.sh configures and compiles
    build-release, with -Dwerror=true besides, and this test checks that it still does);
    systemctl (no systemd as PID 1 here): it records its arguments and checks that the unit
    it enables is installed and that the EnvironmentFile= it names exists."""
    import json
    import re
    blocks = doc_blocks()
    for section, (name, test) in DOC_SECTIONS_ELSEWHERE.items():
        other = open(os.path.join(ROOT, "tests", "integration", name), encoding="utf-8").read()
        assert f"def {test}(" in other and f"### {section}" in other, (name, test)
    assert set(blocks) == set(DOC_SECTIONS) | set(DOC_SECTIONS_ELSEWHERE), \
        "sh blocks in docs/operations.md that no test runs (or sections gone): " \
        f"{set(blocks) ^ (set(DOC_SECTIONS) | set(DOC_SECTIONS_ELSEWHERE))}"
    assert {s: len(b) for s, b in blocks.items() if s in DOC_SECTIONS} == DOC_SECTIONS
    run_sh = open(os.path.join(ROOT, "tests", "run.sh"), encoding="utf-8").read()
    assert re.search(r'for bt in release plain; do\n\s+setup "build-\$bt" -Dwerror=true '
                     r'-Dbuildtype="\$bt"', run_sh), "tests/run.sh compiles a release build"
    assert re.search(r'^setup\(\) \{.*?\n\s+meson compile -C "\$dir"\n\}', run_sh, re.S | re.M)
    if not shutil.which("unshare") or not shutil.which("systemd-sysusers") or not shutil.which("jq"):
        pytest.skip("unshare, systemd-sysusers or jq not installed")
    for d in ("etc-upper", "etc-work", "local-upper", "local-work", "lib-upper", "lib-work", "bin"):
        (tmp_path / d).mkdir()
    stubs = {
        "systemctl": r"""#!/bin/sh
echo "$*" >> "$STUB_LOG"
[ "$*" = daemon-reload ] && exit 0
[ "$1 $2" = "enable --now" ] && [ $# = 3 ] || { echo "systemctl stub: $*" >&2; exit 3; }
unit=$3
case $unit in *.service) ;; *) unit=$unit.service ;; esac
inst=${unit#*@}; inst=${inst%.service}
case $unit in *@*) file=${unit%%@*}@.service ;; *) file=$unit ;; esac
file=/usr/local/lib/systemd/system/$file
test -f "$file" || { echo "systemctl stub: $file not installed" >&2; exit 4; }
env=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$file" | sed "s/%i/$inst/g")
test -n "$env" && test -f "$env" || { echo "systemctl stub: no env file '$env'" >&2; exit 5; }
""",
        "meson": r"""#!/bin/sh
echo "$*" >> "$MESON_LOG"
case "$*" in
"setup build --buildtype=release"|"compile -C build") exit 0 ;;
"install -C build") exec /usr/bin/meson install -C "$BUILD_UNDER_TEST" ;;
esac
echo "meson stub: unexpected: $*" >&2
exit 3
""",
        "apt-get": "#!/bin/sh\necho \"apt-get stub: a test does not install packages: $*\" >&2\nexit 100\n",
    }
    for name, text in stubs.items():
        (tmp_path / "bin" / name).write_text(text)
        (tmp_path / "bin" / name).chmod(0o755)
    b = {s: blocks[s] for s in DOC_SECTIONS}
    monitor = b["Monitor"][0]
    status_copy = tmp_path / "status.json"
    drop = b["Least privilege without systemd: `mount.fuse3 -o drop_privileges`"][0]
    assert drop.count("umount /srv/hr") == 1
    drop = drop.replace("umount /srv/hr", f"""grep -qx 1024 "/sys/class/bdi/$(findmnt -nrf -d backward -o MAJ:MIN --mountpoint /srv/hr)/read_ahead_kb"
ls /srv/hr/employees | wc -l
stat -c "gid=%g" /srv/hr/employees | grep -q "=$(getent group hr | cut -d: -f3)$"; echo gid-ok
echo monitor:
{monitor}cat /srv/hr/.status > {status_copy}
umount /srv/hr""")
    script = f"""
set -eu -o pipefail
mount -t overlay overlay -o lowerdir=/etc,upperdir={tmp_path}/etc-upper,workdir={tmp_path}/etc-work /etc
mount -t overlay overlay -o lowerdir=/usr/local,upperdir={tmp_path}/local-upper,workdir={tmp_path}/local-work /usr/local
mount -t overlay overlay -o lowerdir=/var/lib,upperdir={tmp_path}/lib-upper,workdir={tmp_path}/lib-work /var/lib
grep -q '^hr:' /etc/group || echo 'hr:x:4242:' >> /etc/group
mount -t tmpfs tmpfs /srv
mkdir -p /srv/hr
cd {ROOT}
{b["Install"][0]}
[ "$(command -v kombofs)" = /usr/local/bin/kombofs ]
{b["Configure"][0]}
printf '%s\\n' '{API_KEY}' > /etc/kombofs/api-key
printf '%s\\n' 'a-webhook-secret' > /etc/kombofs/webhook-secret
{b["As a systemd service (recommended)"][0]}
echo check:
{b["Install"][1]}
echo template:
{b["As a systemd template unit: one instance per mount"][0]}
getent passwd kombofs >/dev/null
printf '%s\\n' '{API_KEY}' > /etc/kombofs/api-key
{b["Logs and journald filtering"][0]}
echo drop_privileges:
{drop}
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOMBO") and k != "STATE_DIRECTORY"}
    env.update(PATH=f"{tmp_path}/bin:" + env.get("PATH", "/usr/bin:/bin"), STUB_LOG=str(tmp_path / "stub"),
               MESON_LOG=str(tmp_path / "meson"), BUILD_UNDER_TEST=BUILD, KOMBO_API_URL=sandbox.url)
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        if p.returncode != 0:
            for pid in daemons_named(sandbox.url):  # mount.fuse3's daemon is not our child
                os.kill(pid, signal.SIGKILL)
    assert p.returncode == 0, out + err
    assert (tmp_path / "meson").read_text() == \
        "setup build --buildtype=release\ncompile -C build\ninstall -C build\n"
    assert (tmp_path / "stub").read_text() == \
        "daemon-reload\nenable --now kombofs.service\nenable --now kombofs@hr\n"
    # the installed files are meson's, in the namespace's /usr/local only
    local = tmp_path / "local-upper"
    for f in ("bin/kombofs", "lib/systemd/system/kombofs.service",
              "lib/systemd/system/kombofs@.service", "share/doc/kombofs/kombofs.env"):
        assert (local / f).is_file(), f
    versions = [subprocess.run([b, "--version"], capture_output=True, text=True, timeout=10).stdout
                for b in (str(local / "bin" / "kombofs"), KOMBOFS)]
    assert versions[0] == versions[1] and versions[0].startswith("kombofs "), versions
    check = out.split("check:\n", 1)[1].split("template:\n", 1)[0]
    assert f"{sandbox.url}/check-api-key: key accepted" in check, check
    assert "GET /hris/employees: ok" in check, check
    assert "cache dir    /var/lib/kombofs will be created (/var/lib is writable)" in check, check
    assert check.rstrip().endswith("all checks passed"), check
    assert f"\n{len(sandbox.visible('employees'))}\ngid-ok\nmonitor:\ntrue\n" in "\n" + out, out
    # the Monitor check is not vacuous: every endpoint reports last_error, and it fails
    # when one is set or the state is not ready
    status = json.loads(status_copy.read_text())
    assert status["state"] == "ready" and status["endpoints"], status
    assert all("last_error" in ep for ep in status["endpoints"].values()), status
    jq = monitor.strip().replace("/srv/hr/.status", str(status_copy))
    for bad in ({"state": "offline"},
                {"endpoints": dict(status["endpoints"],
                                   employees=dict(status["endpoints"]["employees"], last_error="401"))}):
        status_copy.write_text(json.dumps(dict(status, **bad)))
        r = subprocess.run(["bash", "-c", jq], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and r.stdout == "false\n", (bad, r.stdout, r.stderr)
    deadline = time.monotonic() + 10
    while daemons_named(sandbox.url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not daemons_named(sandbox.url), "kombofs exits when its mount is unmounted"
