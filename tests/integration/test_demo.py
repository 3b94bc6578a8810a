"""examples/demo.sh mounts the sandbox's employees, every file equal to the sandbox's
record, and `examples/demo.sh stop` leaves no mount and no process behind."""
import os
import subprocess

import pytest

from conftest import ROOT, is_mounted


@pytest.mark.slow
def test_demo_and_stop(tmp_path):
    demo_dir = str(tmp_path / "demo")
    env = dict(os.environ, KOMBOFS_DEMO_DIR=demo_dir, KOMBOFS_DEMO_EMPLOYEES="120")
    demo = os.path.join(ROOT, "examples", "demo.sh")
    try:
        r = subprocess.run([demo], capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "sandbox: 120 employees; mount: 120 files; identical: yes" in r.stdout
        assert '"Head of Demos"' in r.stdout and "visible after" in r.stdout, \
            "the tour shows a change arriving through a signed webhook"
        assert '"accepted":1' in r.stdout
        mnt = os.path.join(demo_dir, "mnt")
        assert is_mounted(mnt)
        assert len(os.listdir(os.path.join(mnt, "employees"))) == 120
        pids = [open(os.path.join(demo_dir, f)).read().strip()
                for f in ("kombofs.pid", "sandbox.pid")]
        assert all(pids)
    finally:
        r = subprocess.run([demo, "stop"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0
    assert not is_mounted(os.path.join(demo_dir, "mnt"))
    assert not os.path.exists(demo_dir)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} survived demo.sh stop"
