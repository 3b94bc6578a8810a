"""Every `sh` example of docs/semantics.md, run against a mount of the sandbox."""
import os
import re
import subprocess

import pytest

from conftest import ROOT

DOC = os.path.join(ROOT, "docs", "semantics.md")


def examples():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_the_document_has_examples():
    assert len(examples()) >= 8


def test_a_false_claim_fails():
    """The harness can fail: `fails true` and a wrong `test` are errors."""
    for script in ("fails true", 'test "$(echo a)" = b'):
        r = subprocess.run(["bash", "-c", "set -e\nfails() { if \"$@\"; then return 1; fi; }\n"
                            + script + "\necho reached"], capture_output=True, text=True)
        assert r.returncode != 0 and "reached" not in r.stdout


@pytest.fixture(scope="module")
def mounted(request, tmp_path_factory):
    # One mount for all examples: module-scoped versions of the sandbox/kombofs fixtures.
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tests", "sandbox"))
    from kombo_sandbox import Sandbox
    from conftest import API_KEY, INTEGRATION, KOMBOFS, Mount, is_mounted
    tmp = tmp_path_factory.mktemp("semantics")
    sb = Sandbox(employees=30, api_key=API_KEY, integration_id=INTEGRATION)
    sb.start()
    key = tmp / "key"
    key.write_text(API_KEY)
    mnt = str(tmp / "mnt")
    os.mkdir(mnt)
    log = open(tmp / "log", "w")
    proc = subprocess.Popen([KOMBOFS, INTEGRATION, mnt, "-f", f"--cache={tmp}/c.db",
                             f"--api-url={sb.url}", f"--api-key-file={key}"],
                            stdout=log, stderr=subprocess.STDOUT)
    m = Mount(proc, mnt, str(tmp / "log"), f"{tmp}/c.db")
    import time
    deadline = time.monotonic() + 60
    while not is_mounted(mnt):
        assert proc.poll() is None and time.monotonic() < deadline, m.log_text()
        time.sleep(0.02)
    yield m, sb.visible("employees")[0]["id"]
    m.stop()
    sb.stop()


@pytest.mark.parametrize("n", range(len(examples())))
def test_example(mounted, n):
    m, eid = mounted
    script = "set -e\nfails() { if \"$@\"; then return 1; fi; }\n" + examples()[n]
    r = subprocess.run(["bash", "-c", script], env=dict(os.environ, MNT=m.mnt, ID=eid),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"example {n} failed:\n{examples()[n]}\n{r.stderr}"
