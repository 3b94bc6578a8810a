"""Operating kombofs (issue 9): meson install into a DESTDIR, the installed binary, the
man page, the systemd unit and its notify protocol, and mounting through mount(8)."""
import os
import shutil
import signal
import socket
import subprocess
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
