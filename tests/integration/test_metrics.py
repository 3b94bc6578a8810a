"""GET /metrics (issue 16, SPEC §11): Prometheus text format on the webhook receiver's
listener (and on --metrics-listen), checked by a real parser (`promtool check metrics`,
Debian's prometheus package) and by what its figures must equal: the sandbox's own count
of API requests, the files in each directory, the change log's head, the webhooks sent.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import API_KEY, free_port, wait_for
from kombo_sandbox import Sandbox
from sandbox_webhooks import sign
from test_webhook import SECRET, data_changed, hooked, port, post, request, start  # noqa: F401

BIN_DIR = os.path.dirname(os.environ.get("KOMBOFS_BIN") or "build/kombofs")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse(text):
    """{(name, frozenset(labels.items())): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset((k, unescape(v)) for k, v in LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        assert key not in out, f"duplicate series: {line}"
        out[key] = float(m.group(3))
    return out


def value(samples, name, **labels):
    """The sample's value, 0 when absent (a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples, name, **labels):
    """Sum over every series of name whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def promtool_check(text):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: tests/deps.sh installs Debian's prometheus package"
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, f"promtool check metrics failed:\n{r.stdout.decode()}{r.stderr.decode()}"


def scrape(port):
    status, body, resp = request(port, "GET", "/metrics")
    assert status == 200
    assert resp.getheader("Content-Type") == CONTENT_TYPE
    text = body.decode("utf-8")
    promtool_check(text)
    return text, parse(text)


def files(fs, directory):
    return len(os.listdir(fs.path(directory)))


@pytest.mark.timeout(60)
def test_metrics_on_the_receiver_single_mode(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    text, m = scrape(port)
    for name in ("kombofs_api_requests_total", "kombofs_api_request_duration_seconds",
                 "kombofs_api_retries_total", "kombofs_api_throttled_total",
                 "kombofs_fetches_total", "kombofs_fetch_duration_seconds",
                 "kombofs_last_success_timestamp_seconds", "kombofs_records",
                 "kombofs_change_log_head_sequence", "kombofs_webhooks_received_total",
                 "kombofs_webhooks_total", "kombofs_fuse_requests_total"):
        assert f"\n# TYPE {name} " in text, name
    assert all(line.startswith(("# HELP kombofs_", "# TYPE kombofs_", "kombofs_"))
               for line in text.splitlines()), "every name starts with kombofs_"
    assert "integration=" not in text, "single mode: no integration label"

    # State: records per directory are the files shown; the change log's head is .status's.
    st = fs.status()
    for d in ("employees", "groups", "absences"):
        assert value(m, "kombofs_records", directory=d) == files(fs, d), d
    assert files(fs, "employees") > 0
    assert value(m, "kombofs_change_log_head_sequence") == st["changes"]["last_seq"]
    # The initial full fetch: one per endpoint, ok, with its time.
    assert value(m, "kombofs_fetches_total", endpoint="/hris/employees", kind="full",
                 result="ok") == 1
    assert value(m, "kombofs_last_success_timestamp_seconds", endpoint="/hris/employees",
                 kind="full") > 1.6e9
    # Every API request is counted: as many as the sandbox answered for employees.
    sb_before = hooked.stats()["by_endpoint"]["employees"]
    api_before = total(m, "kombofs_api_requests_total", endpoint="/hris/employees")
    assert api_before == sb_before
    assert value(m, "kombofs_api_request_duration_seconds_count",
                 endpoint="/hris/employees") == api_before
    assert value(m, "kombofs_api_request_duration_seconds_bucket", endpoint="/hris/employees",
                 le="+Inf") == api_before

    # A sync through .control (a delta of every endpoint), the first request answered 429.
    hooked.set_faults(rate_limit=1, retry_after=0)
    assert fs.control("sync") == 0
    _, m2 = scrape(port)
    sb_after = hooked.stats()["by_endpoint"]["employees"]
    assert sb_after > sb_before
    assert total(m2, "kombofs_api_requests_total", endpoint="/hris/employees") == sb_after
    assert total(m2, "kombofs_api_throttled_total") == 1
    assert total(m2, "kombofs_api_retries_total") == 1
    assert total(m2, "kombofs_api_requests_total", code="429") == 1
    assert value(m2, "kombofs_fetches_total", endpoint="/hris/employees", kind="delta",
                 result="ok") == 1
    assert value(m2, "kombofs_fetch_duration_seconds_count", endpoint="/hris/employees",
                 kind="delta") == 1
    assert value(m2, "kombofs_last_success_timestamp_seconds", endpoint="/hris/employees",
                 kind="delta") >= value(m, "kombofs_last_success_timestamp_seconds",
                                        endpoint="/hris/employees", kind="full")

    # Webhooks: accepted, duplicate, rejected; received is their sum.
    body = data_changed(["hris_employees"], id_="evt-metrics-1")
    assert post(port, body, sign(SECRET, body)) == (200, b"ok\n")
    assert post(port, body, sign(SECRET, body)) == (200, b"duplicate\n")
    assert post(port, body, "bad-signature")[0] == 401
    _, m3 = scrape(port)
    assert value(m3, "kombofs_webhooks_total", result="accepted") == 1
    assert value(m3, "kombofs_webhooks_total", result="duplicate") == 1
    assert value(m3, "kombofs_webhooks_total", result="rejected") == 1
    assert value(m3, "kombofs_webhooks_received_total") == 3

    # A record added: after its webhook's delta fetch the gauge follows the directory.
    n = files(fs, "employees")
    hooked.create_employee()
    assert hooked.flush_webhooks()["status"] == 200
    wait_for(lambda: files(fs, "employees") == n + 1, what="the new employee's file")
    _, m4 = scrape(port)
    assert value(m4, "kombofs_records", directory="employees") == n + 1
    assert value(m4, "kombofs_webhooks_total", result="accepted") == 2

    # FUSE requests by type: one uncached read of a record is one READ more.
    reads = value(m4, "kombofs_fuse_requests_total", type="read") or 0
    rid = hooked.visible("employees")[0]["id"]
    fd = os.open(fs.record_path("employees", rid), os.O_RDONLY | os.O_DIRECT)
    try:
        os.read(fd, 1 << 20)
    except OSError:
        pass    # O_DIRECT alignment is the kernel's business; the request was made
    os.close(fd)
    _, m5 = scrape(port)
    assert value(m5, "kombofs_fuse_requests_total", type="read") >= reads + 1
    assert value(m5, "kombofs_fuse_requests_total", type="lookup") >= 1

    # Methods: HEAD too, never POST; the webhook path is unchanged.
    assert request(port, "HEAD", "/metrics")[0] == 200
    status, _, resp = request(port, "POST", "/metrics", b"{}")
    assert status == 405 and resp.getheader("Allow") == "GET, HEAD"


A = "personio:AAAAaaaaAAAAaaaaAAAA0001"
B = "hibob:BBBBbbbbBBBBbbbbBBBB0002"


@pytest.mark.timeout(60)
def test_metrics_multi_mode_label_integrations(tmp_path):
    """Multi mode: every per-integration series names its integration."""
    from test_multi import escape, is_mounted
    hook = free_port()
    sb = Sandbox(employees=12, api_key=API_KEY, integration_id=A, integrations={A: 12, B: 7},
                 webhook_secret=SECRET, webhook_delay=3600,
                 webhook_url=f"http://127.0.0.1:{hook}/webhook")
    sb.start()
    key = tmp_path / "key"
    key.write_text(API_KEY + "\n")
    ints = tmp_path / "integrations"
    ints.write_text(f"{A}\n{B}\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    log = tmp_path / "kombofs.log"
    cmd = [os.environ.get("KOMBOFS_BIN", "build/kombofs"), "kombo", str(mnt), "-f",
           f"--integrations-file={ints}", f"--cache-dir={tmp_path / 'caches'}",
           f"--api-key-file={key}", f"--api-url={sb.url}", f"--webhook-listen=127.0.0.1:{hook}",
           "--poll-interval=0"]
    with open(log, "w", encoding="utf-8") as lf:
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, KOMBO_WEBHOOK_SECRET=SECRET))
    try:
        wait_for(lambda: is_mounted(str(mnt)) or proc.poll() is not None, what="the mount")
        assert proc.poll() is None, log.read_text()
        wait_for(lambda: all(os.path.isdir(mnt / escape(i) / "employees") for i in (A, B)),
                 what="both trees")
        wait_for(lambda: value(parse(request(hook, "GET", "/metrics")[1].decode()),
                               "kombofs_fetches_total", integration=B,
                               endpoint="/hris/locations", kind="full", result="ok") == 1,
                 what="every first fetch counted")
        text, m = scrape(hook)
        for i, n in ((A, 12), (B, 7)):
            assert value(m, "kombofs_records", integration=i, directory="employees") == n
            assert value(m, "kombofs_records", integration=i, directory="employees") == \
                len(os.listdir(mnt / escape(i) / "employees"))
            assert total(m, "kombofs_api_requests_total", integration=i,
                         endpoint="/hris/employees") == \
                sb.stats()["by_integration"][i]["by_endpoint"]["employees"]
            assert ("kombofs_change_log_head_sequence", frozenset({("integration", i)})) in m
        body = data_changed(["hris_employees"], integration=B, id_="evt-multi-metrics")
        assert post(hook, body, sign(SECRET, body))[0] == 200
        other = data_changed(["hris_employees"], integration="personio:NOTmirroredHERE000")
        assert post(hook, other, sign(SECRET, other)) == (200, b"ignored\n")
        _, m2 = scrape(hook)
        assert value(m2, "kombofs_webhooks_total", integration=B, result="accepted") == 1
        with open(mnt / escape(B) / "employees" / os.listdir(mnt / escape(B) / "employees")[0], "rb") as f:
            f.read()
        _, m3 = scrape(hook)
        assert value(m3, "kombofs_fuse_requests_total", integration=B, type="lookup") >= 1
        assert value(m3, "kombofs_fuse_requests_total", integration=B, type="read") >= 1
        assert value(m2, "kombofs_webhooks_total", result="ignored") == 1, \
            "an integration not mirrored here is not named (shards see each other's)"
        for (name, labels) in m2:
            if name.startswith(("kombofs_api_", "kombofs_fetch", "kombofs_records",
                                "kombofs_last_success", "kombofs_change_log")):
                assert dict(labels).get("integration") in (A, B), (name, labels)
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if is_mounted(str(mnt)):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], stderr=subprocess.DEVNULL)
        sb.stop()
    assert API_KEY not in log.read_text()


@pytest.mark.timeout(60)
def test_metrics_listen_without_a_receiver(sandbox, kombofs):
    port = free_port()
    fs = kombofs(sandbox, f"--metrics-listen=127.0.0.1:{port}", "--poll-interval=0")
    wait_for(lambda: _answers(port), timeout=10, what="the metrics listener")
    _, m = scrape(port)
    assert value(m, "kombofs_records", directory="employees") == files(fs, "employees") > 0
    assert request(port, "POST", "/webhook", b"{}")[0] == 404, "no receiver on it"
    assert request(port, "GET", "/healthz")[0] == 200


def _answers(port):
    try:
        return request(port, "GET", "/metrics", timeout=2)[0] == 200
    except OSError:
        return False


def test_promtool_accepts_every_family_with_escaped_labels():
    """test_metrics --sample: every family, multi mode, labels with \\, ", newline and
    a byte that is not UTF-8 — as a real parser reads them."""
    exe = os.path.join(BIN_DIR, "test_metrics")
    if not os.path.exists(exe):
        pytest.skip(f"{exe} not built")
    text = subprocess.run([exe, "--sample"], capture_output=True, check=True,
                          timeout=30).stdout.decode("utf-8")
    promtool_check(text)
    m = parse(text)
    assert value(m, "kombofs_records", integration='we"ird\\id\n\ufffd', directory="employees") == 7
    assert value(m, "kombofs_fuse_requests_total", integration="personio:A", type="lookup") == 1
    # A broken exposition is refused: the check can fail.
    with pytest.raises(AssertionError):
        promtool_check('kombofs_x_total{a="b} 1\n')


def test_operations_doc_metrics_commands_run(sandbox, kombofs, tmp_path):
    """The sh block of docs/operations.md's Metrics section, run as written against a
    daemon with --metrics-listen (only the port is this test's)."""
    import re
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "operations.md"),
                encoding="utf-8").read()
    section = re.search(r"^### Metrics\n(.*?)(?=^##)", text, re.S | re.M).group(1)
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1 and "promtool check metrics" in blocks[0]
    port = free_port()
    fs = kombofs(sandbox, f"--metrics-listen=127.0.0.1:{port}", "--poll-interval=0")
    wait_for(lambda: _answers(port), timeout=10, what="the metrics listener")
    script = blocks[0].replace("127.0.0.1:9187", f"127.0.0.1:{port}")
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f'kombofs_records{{directory="employees"}} {files(fs, "employees")}' in r.stdout
    # the sample lines of the section are in the format a scrape has
    sample = re.findall(r"^```\n(kombofs_.*?)```", section, re.S | re.M)[0]
    _, live = scrape(port)
    for line in sample.splitlines():
        name = line.split("{")[0].split(" ")[0]
        assert any(n == name for n, _ in live), name
