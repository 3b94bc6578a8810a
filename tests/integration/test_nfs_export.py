"""NFS export (issue 16, SPEC §11): with -o export_support a file handle of the mount
(what an NFS server hands its clients) stays valid across remounts while the record
exists, and is ESTALE once it is gone. Tested without an NFS server, through
name_to_handle_at(2)/open_by_handle_at(2) on the mount (root: CAP_DAC_READ_SEARCH)."""
import ctypes
import ctypes.util
import errno
import json
import os
import subprocess

import pytest

from conftest import escape, wait_for
from test_multi import A, B, multi, sb  # noqa: F401 (fixtures)

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
AT_FDCWD = -100
MAX_HANDLE_SZ = 128


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


def handle_of(path):
    fh = FileHandle(handle_bytes=MAX_HANDLE_SZ)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), ctypes.byref(fh),
                              ctypes.byref(mount_id), 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return bytes(fh)        # plain data: it outlives the mount, as an NFS client's does


def open_by_handle(mnt, handle, flags=os.O_RDONLY):
    """An fd, or the errno open_by_handle_at(2) failed with."""
    fh = FileHandle.from_buffer_copy(handle)
    mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = libc.open_by_handle_at(mfd, ctypes.byref(fh), flags)
        return fd if fd >= 0 else -ctypes.get_errno()
    finally:
        os.close(mfd)


def read_by_handle(mnt, handle):
    fd = open_by_handle(mnt, handle)
    if fd < 0:
        return fd
    try:
        out = b""
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                return out
            out += b
    finally:
        os.close(fd)


def parent_by_handle(mnt, handle):
    """The name of the directory a directory handle names, through its '..'."""
    fd = open_by_handle(mnt, handle, os.O_RDONLY | os.O_DIRECTORY)
    assert fd >= 0, os.strerror(-fd)
    try:
        return sorted(os.listdir(f"/proc/self/fd/{fd}/.."))
    finally:
        os.close(fd)


@pytest.mark.sandbox(employees=6)
def test_handles_survive_a_remount_and_go_stale_with_the_record(sandbox, kombofs, tmp_path):
    cache = str(tmp_path / "export.db")
    mnt = str(tmp_path / "mnt")
    m = kombofs(sandbox, "-o", "export_support", cache=cache, mnt=mnt)
    emp, gone, edited = sandbox.visible("employees")[:3]
    path = m.record_path("employees", emp["id"])
    with open(path, "rb") as f:
        content = f.read()
    h_file = handle_of(path)
    h_gone = handle_of(m.record_path("employees", gone["id"]))
    h_edited = handle_of(m.record_path("employees", edited["id"]))
    h_dir = handle_of(m.path("employees"))
    h_changes = handle_of(m.path("changes"))
    m.stop()

    # A new daemon on the same cache: the kernel holds none of these nodes, so it asks
    # the daemon for "." (and ".." of a directory).
    m = kombofs(sandbox, "-o", "export_support", cache=cache, mnt=mnt)
    assert read_by_handle(mnt, h_file) == content
    assert parent_by_handle(mnt, h_dir) == sorted(os.listdir(mnt))
    assert parent_by_handle(mnt, h_changes) == sorted(os.listdir(mnt))
    sandbox.soft_delete("employees", gone["id"])
    sandbox.update_employee(edited["id"], job_title="Handle Tester")
    assert m.control("sync employees") == 0
    assert not os.path.exists(m.record_path("employees", gone["id"]))
    m.stop()

    m = kombofs(sandbox, "-o", "export_support", cache=cache, mnt=mnt)
    assert read_by_handle(mnt, h_gone) == -errno.ESTALE
    # a changed record is a new file (as an editor's rename makes one): the old handle is
    # stale, the name gives the new one
    assert read_by_handle(mnt, h_edited) == -errno.ESTALE
    h_new = handle_of(m.record_path("employees", edited["id"]))
    assert json.loads(read_by_handle(mnt, h_new))["job_title"] == "Handle Tester"
    assert json.loads(read_by_handle(mnt, h_file))["id"] == emp["id"]
    m.stop()

    # Without export_support the kernel does not ask: a handle from before is stale.
    m = kombofs(sandbox, cache=cache, mnt=mnt)
    assert read_by_handle(mnt, h_file) == -errno.ESTALE
    assert os.listdir(m.path("employees"))


def test_multi_mode_handles_survive_a_restart(sb, multi):
    """Multi mode: a node names its integration's slot, which the roster keeps."""
    m = multi(sb, [A, B], "-o", "export_support")
    wait_for(lambda: escape(B) in m.listing() and escape(A) in m.listing(), what="A and B")
    emp = sb.visible("employees", integration=B)[0]
    path = m.path(escape(B), "employees", escape(emp["id"]) + ".json")
    with open(path, "rb") as f:
        content = f.read()
    h_file, h_tree = handle_of(path), handle_of(m.path(escape(B)))
    subprocess.run(["fusermount3", "-u", m.mnt], check=True)
    m.proc.wait(timeout=20)
    m2 = multi(sb, None, "-o", "export_support")
    wait_for(lambda: escape(B) in m2.listing(), what="B again")
    assert read_by_handle(m2.mnt, h_file) == content
    assert parent_by_handle(m2.mnt, h_tree) == sorted(os.listdir(m2.mnt))
