"""What the figure scripts (cold_scan.py, export_read.py, warm_floor.py) share: a kombofs
mount as a child process in the foreground, its unmount, its .status, and the wait for a
mirror's full fetches. Run from the source tree (the scripts' own rule)."""
import json
import subprocess
import sys
import time

sys.path.insert(0, "tests/integration")
from conftest import is_mounted  # noqa: E402

INTEGRATION = "personio:8sDjyw1Nqf6Xk2LmPq4Rt7Ua"


def mount(binary, mnt, cache, key, url, log, extra=()):
    """kombofs BINARY on MNT with CACHE, stderr appended to LOG; returns once mounted."""
    p = subprocess.Popen([binary, INTEGRATION, mnt, "-f", "--cache=" + cache,
                          "--api-key-file=" + key, "--api-url=" + url, *extra],
                         stderr=open(log, "a"))
    t = time.monotonic()
    while not is_mounted(mnt):
        if p.poll() is not None or time.monotonic() - t > 600:
            raise SystemExit("%s did not mount; see %s" % (binary, log))
        time.sleep(0.05)
    return p


def umount(p, mnt):
    subprocess.run(["fusermount3", "-u", mnt]); p.wait()


def status(mnt):
    with open(mnt + "/.status") as f:
        return json.load(f)


def requests(mnt):
    """The FUSE requests kombofs on MNT has served so far, by type, and the read-ahead
    pusher's counts as "pushed <name>" (.status)."""
    st = status(mnt)
    counts = {k: v for k, v in st["requests"].items() if isinstance(v, int)}
    for k, v in (st.get("read_ahead") or {}).items():   # files pushed ahead (SPEC §12)
        counts["pushed " + k] = v
    return counts


def wait_full(mnt, endpoints=None):
    """Until the full fetch of ENDPOINTS (default: every mirrored one) is over."""
    while True:
        eps = status(mnt)["endpoints"]
        if all((eps[e].get("last_full") or {}).get("result") not in (None, "running")
               for e in endpoints or eps):
            return
        time.sleep(0.2)
