"""The webhook receiver (issue 6, SPEC §6): the sandbox's real signed webhooks reach
kombofs on --webhook-listen; verified data-changed events trigger coalesced delta
fetches, everything else is refused or ignored without a fetch.

"No fetch" is checked without sleeping: after the event under test, a valid
data-changed for hris_timesheets (which refetches timesheets only) is sent as a
barrier. The receiver acts before it answers, and the sync worker fetches a batch in
model order (employees first, timesheets later), so once the barrier's timesheets
fetch has finished, any fetch the event under test had caused has been made too.
"""
import http.client
import json
import os
import socket
import threading
import time

import pytest

from conftest import API_KEY, INTEGRATION, free_port, is_mounted, read_dir
from kombo_sandbox import Sandbox
from sandbox_webhooks import sign

SECRET = "whsec-test-4bX9qLr2TzW8"
OTHER = "personio:OTHERotherOTHERother0000"


def last_delta(endpoint):
    """The result of an endpoint's last delta fetch, None before its first one."""
    return (endpoint.get("last_delta") or {}).get("result")


def wait_for(cond, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def hooked(request, port):
    """A sandbox that signs its webhooks with SECRET and sends them to the receiver.
    Batches go out only when a test flushes them (webhook_delay=3600), unless the
    test's sandbox marker asks otherwise."""
    kwargs = {"employees": 40, "webhook_delay": 3600}
    marker = request.node.get_closest_marker("sandbox")
    if marker:
        kwargs.update(marker.kwargs)
    sb = Sandbox(api_key=API_KEY, integration_id=INTEGRATION,
                 webhook_url=f"http://127.0.0.1:{port}/webhook", webhook_secret=SECRET, **kwargs)
    sb.start()
    yield sb
    sb.stop()


def request(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body, headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp
    finally:
        conn.close()


def post(port, body, sig=None, path="/webhook"):
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["X-Kombo-Signature"] = sig
    status, data, _ = request(port, "POST", path, body, headers)
    return status, data


def event(type_, data, id_=None):
    return json.dumps({"id": id_ or "evt" + os.urandom(8).hex(), "type": type_, "data": data},
                      separators=(",", ":")).encode()


def data_changed(models, integration=INTEGRATION, id_=None):
    return event("data-changed", {"integration_id": integration, "integration_tool": "personio",
                                  "integration_category": "HRIS",
                                  "changed_models": [{"name": m} for m in models]}, id_)


def start(kombofs, sb, port, tmp_path, *extra, **kw):
    """kombofs with the receiver on 127.0.0.1:port, no polling; returns once the
    receiver answers /healthz."""
    secret = tmp_path / "webhook-secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    fs = kombofs(sb, f"--webhook-listen=127.0.0.1:{port}", f"--webhook-secret-file={secret}",
                 "--poll-interval=0", *extra, **kw)

    def healthy():
        try:
            return request(port, "GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False
    wait_for(healthy, what="the receiver to answer /healthz")
    return fs


def count(sb, endpoint):
    return sb.stats()["by_endpoint"].get(endpoint, 0)


def barrier(fs, sb, port):
    """Wait until a timesheets delta fetch caused by a fresh webhook has finished."""
    before = count(sb, "timesheets")
    status, _ = post(port, *signed(data_changed(["hris_timesheets"])))
    assert status == 200
    wait_for(lambda: count(sb, "timesheets") > before, what="the barrier's fetch")
    wait_for(lambda: last_delta(fs.status()["endpoints"]["timesheets"]) == "ok",
             what="the barrier's fetch to finish")


def signed(body, secret=SECRET):
    return body, sign(secret, body)


def webhooks(fs):
    return fs.status()["webhooks"]


def job_title(fs, eid):
    try:
        return fs.read_json("employees", eid + ".json")["job_title"]
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.sandbox(webhook_delay=0.05)
def test_a_change_and_its_webhook_update_the_file(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    emp = hooked.visible("employees")[3]
    assert job_title(fs, emp["id"]) != "Chief Webhook Officer"
    before = count(hooked, "employees")
    hooked.update_employee(emp["id"], job_title="Chief Webhook Officer")  # batched, sent after 50 ms
    wait_for(lambda: job_title(fs, emp["id"]) == "Chief Webhook Officer", what="the new title")
    assert fs.read_json("employees", emp["id"] + ".json") == \
        next(e for e in hooked.visible("employees") if e["id"] == emp["id"])
    assert count(hooked, "employees") == before + 1
    sent = hooked.sent_webhooks()
    assert [e["status"] for e in sent] == [200]
    wh = webhooks(fs)
    assert wh["received"] == 1 and wh["accepted"] == 1 and wh["rejected"] == 0
    assert wh["last_at"] and wh["last_at"].endswith("Z")
    reqs = [r for r in hooked.requests() if r["path"].endswith("/hris/employees")]
    assert "updated_after" in reqs[-1]["query"] and reqs[-1]["query"].get("include_deleted") == "true"


@pytest.mark.timeout(60)
def test_employments_change_refetches_employees_and_employments(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    emp = next(e for e in hooked.visible("employees") if e["employments"])
    job = emp["employments"][0]
    hooked.update_employment(job["id"], job_title="Webhook Wrangler")
    assert hooked.flush_webhooks()["status"] == 200
    wait_for(lambda: fs.read_json("employments", job["id"] + ".json")["job_title"] == "Webhook Wrangler",
             what="the employment file")
    wait_for(lambda: fs.read_json("employees", emp["id"] + ".json")["employments"][0]["job_title"]
             == "Webhook Wrangler", what="the employee file")


@pytest.mark.timeout(60)
def test_healthz_and_other_paths_and_methods(hooked, kombofs, tmp_path, port):
    start(kombofs, hooked, port, tmp_path)
    status, body, resp = request(port, "GET", "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert resp.getheader("Content-Type").startswith("text/plain")
    assert request(port, "HEAD", "/healthz")[0] == 200
    assert request(port, "POST", "/healthz", b"{}")[0] == 405
    assert request(port, "GET", "/")[0] == 404
    assert request(port, "POST", "/webhook/", b"{}")[0] == 404
    assert request(port, "POST", "/other", *signed(data_changed(["hris_employees"]))[:1])[0] == 404
    status, _, resp = request(port, "GET", "/webhook")
    assert status == 405 and resp.getheader("Allow") == "POST"
    assert request(port, "PUT", "/webhook", b"{}")[0] == 405


@pytest.mark.timeout(60)
@pytest.mark.allow_log_errors
def test_wrong_or_missing_signature_is_401_and_fetches_nothing(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    emp = hooked.visible("employees")[0]
    hooked.update_employee(emp["id"], job_title="Forged")
    body = data_changed(["hris_employees"])
    good = sign(SECRET, body)
    before = hooked.stats()["total"]
    employees = count(hooked, "employees")
    attempts = [
        None,                                   # missing
        "",                                     # empty
        sign("another-secret", body),           # another secret
        sign(SECRET, body + b" "),              # another body
        good + "=",                             # padding
        good.replace("-", "+").replace("_", "/") + ("x" if "-" not in good and "_" not in good else ""),
        good[:-1],                              # truncated
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # one character changed
    ]
    for sig in attempts:
        assert post(port, body, sig) == (401, b"unauthorized\n"), sig
    assert hooked.stats()["total"] == before    # no fetch, not even a late one:
    barrier(fs, hooked, port)
    assert count(hooked, "employees") == employees
    assert job_title(fs, emp["id"]) != "Forged"
    wh = webhooks(fs)
    assert wh["rejected"] == len(attempts) and wh["accepted"] == 1   # the barrier
    log = fs.log_text()
    assert log.count("rejected a request from 127.0.0.1") == len(attempts)
    assert SECRET not in log and good not in log and good[:20] not in log


@pytest.mark.timeout(60)
@pytest.mark.allow_log_errors
def test_a_2_mib_body_is_413(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    employees = count(hooked, "employees")
    # Content-Length over the cap: 413 at once, before any of the body is sent.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-Kombo-Signature: abc\r\nContent-Length: %d\r\n\r\n" % (2 << 20))
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    # A chunked 2 MiB body: read and thrown away, never kept, then 413.
    big = b'{"id":"huge","type":"data-changed","data":{"pad":"' + b"x" * (2 << 20) + b'"}}'
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/webhook", iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                 {"X-Kombo-Signature": sign(SECRET, big)}, encode_chunked=True)
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (413, b"body too large\n")
    conn.close()
    # Exactly 1 MiB is within the limit (and signed: this one is answered 400, not 413).
    body = b" " * (1 << 20)
    assert post(port, body, sign(SECRET, body))[0] == 400
    barrier(fs, hooked, port)
    assert count(hooked, "employees") == employees
    wh = webhooks(fs)
    assert wh["rejected"] == 3 and wh["received"] == 4


@pytest.mark.timeout(60)
@pytest.mark.allow_log_errors
def test_junk_is_400_and_fetches_nothing(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    employees = count(hooked, "employees")
    junk = [
        b"not json at all",
        b"",
        b"[]",
        b'{"id":"a","type":"data-changed"}',
        b'{"id":"a","type":"data-changed","data":[]}',
        b'{"id":7,"type":"data-changed","data":{}}',
        json.dumps({"id": "a", "type": "data-changed",
                    "data": {"integration_id": INTEGRATION, "changed_models": "hris_employees"}}).encode(),
        data_changed(["hris_employees"])[:-1],
    ]
    for body in junk:
        assert post(port, *signed(body))[0] == 400, body
    assert post(port, b"not json at all", None)[0] == 401    # unsigned junk: the signature first
    barrier(fs, hooked, port)
    assert count(hooked, "employees") == employees
    assert webhooks(fs)["rejected"] == len(junk) + 1


@pytest.mark.timeout(60)
def test_another_integrations_event_is_200_and_fetches_nothing(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    emp = hooked.visible("employees")[0]
    employees = count(hooked, "employees")
    hooked.update_employee(emp["id"], job_title="Not Ours")
    entry = hooked.send_webhook("data-changed", {"integration_id": OTHER,
                                                 "changed_models": ["hris_employees"]})
    assert entry["status"] == 200
    assert post(port, *signed(event("integration-deleted", {"id": OTHER, "deleted_at": "2026-01-01T00:00:00.000Z"})))[0] == 200
    assert post(port, *signed(event("integration-created", {"id": INTEGRATION, "tool": "personio"})))[0] == 200
    assert post(port, *signed(event("sync-finished", {"integration_id": INTEGRATION})))[0] == 200
    barrier(fs, hooked, port)
    assert count(hooked, "employees") == employees
    assert job_title(fs, emp["id"]) != "Not Ours"
    st = fs.status()
    assert st["state"] == "ready"
    assert st["webhooks"]["ignored"] == 4 and st["webhooks"]["accepted"] == 1


@pytest.mark.timeout(60)
def test_a_repeated_event_id_fetches_nothing(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    emp = hooked.visible("employees")[0]
    body = data_changed(["hris_employees"], id_="RepeatedRepeatedRepeat01")
    hooked.update_employee(emp["id"], job_title="Once")
    assert post(port, *signed(body)) == (200, b"ok\n")
    wait_for(lambda: job_title(fs, emp["id"]) == "Once", what="the first delivery's fetch")
    n = count(hooked, "employees")
    hooked.update_employee(emp["id"], job_title="Twice")
    assert post(port, *signed(body)) == (200, b"duplicate\n")
    barrier(fs, hooked, port)
    assert count(hooked, "employees") == n
    assert job_title(fs, emp["id"]) == "Once"
    wh = webhooks(fs)
    assert wh["duplicates"] == 1 and wh["accepted"] == 2

    # The id was recorded durably: a restarted daemon still knows it.
    assert fs.stop() == 0
    fs2 = start(kombofs, hooked, port, tmp_path, mnt=str(tmp_path / "again"), cache=fs.cache)
    wait_for(lambda: job_title(fs2, emp["id"]) == "Twice", what="the warm start's catch-up")
    wait_for(lambda: all(last_delta(e) == "ok" for e in fs2.status()["endpoints"].values()),
             what="the warm start's fetches")
    n = count(hooked, "employees")
    assert post(port, *signed(body)) == (200, b"duplicate\n")
    barrier(fs2, hooked, port)
    assert count(hooked, "employees") == n


@pytest.mark.timeout(60)
@pytest.mark.sandbox(employees=60)
def test_a_burst_of_200_webhooks_makes_a_handful_of_fetches(hooked, kombofs, tmp_path, port):
    """200 changes, each flushed as its own signed webhook. Each API request takes
    100 ms (a remote API, not a local one): the webhooks that arrive during a fetch
    are folded into the next one, so the fetch count follows the burst's duration,
    not the number of webhooks."""
    fs = start(kombofs, hooked, port, tmp_path)
    hooked.set_faults(slow=0.1)
    emps = hooked.visible("employees")
    before = count(hooked, "employees")
    statuses = []
    t = time.monotonic()
    for i in range(200):
        hooked.update_employee(emps[i % len(emps)]["id"], job_title=f"Burst {i}")
        statuses.append(hooked.flush_webhooks()["status"])   # one webhook per change
    burst = time.monotonic() - t
    assert statuses == [200] * 200
    want = {e["id"]: e for e in hooked.visible("employees")}
    wait_for(lambda: read_dir(fs, "employees") == want, timeout=30, what="the final state")
    wait_for(lambda: last_delta(fs.status()["endpoints"]["employees"]) == "ok",
             what="the last fetch")
    fetches = count(hooked, "employees") - before
    assert 1 <= fetches <= min(20, burst / 0.1 + 2), (fetches, burst)
    wh = webhooks(fs)
    assert wh["accepted"] == 200 and wh["rejected"] == 0 and wh["duplicates"] == 0


@pytest.mark.timeout(60)
def test_200_signed_posts_over_keep_alive_coalesce(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    hooked.set_faults(slow=1.0)     # every API request takes 1 s: fetches overlap the burst
    emp = hooked.visible("employees")[0]
    hooked.update_employee(emp["id"], job_title="After The Burst")
    before = count(hooked, "employees")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    worst = 0.0
    for i in range(200):
        body, sig = signed(data_changed(["hris_employees"]))
        t = time.monotonic()
        conn.request("POST", "/webhook", body, {"X-Kombo-Signature": sig})
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"ok\n")
        worst = max(worst, time.monotonic() - t)
    conn.close()
    assert worst < 0.5, worst       # never waits for a fetch (each takes >= 1 s)
    wait_for(lambda: job_title(fs, emp["id"]) == "After The Burst", what="the final state")
    wait_for(lambda: last_delta(fs.status()["endpoints"]["employees"]) == "ok",
             what="the last fetch")
    fetches = count(hooked, "employees") - before
    assert 1 <= fetches <= 4, fetches


@pytest.mark.timeout(60)
def test_a_webhook_during_a_fetch_of_the_same_endpoint_is_not_lost(hooked, kombofs, tmp_path, port):
    """The sandbox takes its snapshot of the data, then holds the answer until the
    second change and its webhook are in: that change can only arrive through a
    second fetch."""
    fs = start(kombofs, hooked, port, tmp_path)
    eid = hooked.visible("employees")[5]["id"]
    taken, release = threading.Event(), threading.Event()
    orig = hooked._api

    def snapshot_then_hold(h, method, path, pairs):
        resp = orig(h, method, path, pairs)
        if path.endswith("/hris/employees") and not taken.is_set():
            taken.set()
            release.wait(20)
        return resp
    hooked._api = snapshot_then_hold
    try:
        hooked.update_employee(eid, job_title="First")
        assert hooked.flush_webhooks()["status"] == 200
        assert taken.wait(10), "the first fetch did not start"
        assert fs.status()["endpoints"]["employees"]["last_delta"]["result"] == "running"
        hooked.update_employee(eid, job_title="Second")
        t = time.monotonic()
        assert hooked.flush_webhooks()["status"] == 200
        assert time.monotonic() - t < 1.0       # answered while the fetch is held
    finally:
        release.set()
    wait_for(lambda: job_title(fs, eid) == "Second", what="the second change")
    wait_for(lambda: last_delta(fs.status()["endpoints"]["employees"]) == "ok",
             what="the second fetch")
    reqs = [r for r in hooked.requests() if r["path"].endswith("/hris/employees")]
    assert len(reqs) == 1 + 2       # the initial full fetch, the held one, one more


@pytest.mark.timeout(60)
def test_a_webhook_during_a_slow_fetch_is_not_lost(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    eid = hooked.visible("employees")[6]["id"]
    hooked.set_faults(slow=1.0)
    hooked.update_employee(eid, job_title="Slow One")
    assert hooked.flush_webhooks()["status"] == 200
    wait_for(lambda: last_delta(fs.status()["endpoints"]["employees"]) == "running",
             what="the slow fetch to start")
    hooked.update_employee(eid, job_title="Slow Two")
    t = time.monotonic()
    assert hooked.flush_webhooks()["status"] == 200
    assert time.monotonic() - t < 0.8       # the fetch under way takes 1 s
    wait_for(lambda: job_title(fs, eid) == "Slow Two", what="the second change")
    hooked.set_faults()
    assert read_dir(fs, "employees") == {e["id"]: e for e in hooked.visible("employees")}


@pytest.mark.timeout(60)
@pytest.mark.allow_log_errors
def test_integration_deleted_stops_syncing(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    entry = hooked.send_webhook("integration-deleted")
    assert entry["status"] == 200
    deleted_at = json.loads(entry["body"])["data"]["deleted_at"]
    st = fs.status()
    assert st["state"] == "error"
    assert st["integration_deleted"]["deleted_at"] == deleted_at
    assert st["integration_deleted"]["id"] == INTEGRATION
    assert deleted_at in st["endpoints"]["employees"]["last_error"]
    assert st["webhooks"]["accepted"] == 1
    before = hooked.stats()["total"]
    emp = hooked.visible("employees")[0]
    hooked.update_employee(emp["id"], job_title="After Deletion")
    assert hooked.flush_webhooks()["status"] == 200
    assert post(port, *signed(data_changed(["hris_timesheets"])))[0] == 200
    # .control waits for the worker: anything queued before has been handled.
    assert fs.control("sync employees") != 0
    assert hooked.stats()["total"] == before
    assert job_title(fs, emp["id"]) != "After Deletion"
    assert webhooks(fs)["ignored"] == 2
    assert "syncing stopped: integration deleted at " + deleted_at in fs.log_text()
    # It is remembered: after a restart the mirror is still not synced.
    fs.stop()
    fs = kombofs(hooked, "--poll-interval=0", cache=fs.cache, mnt=str(tmp_path / "again"))
    st = fs.status()
    assert st["state"] == "error" and deleted_at in st["endpoints"]["employees"]["last_error"]
    assert fs.control("sync employees") != 0
    assert hooked.stats()["total"] == before


@pytest.mark.timeout(60)
def test_integration_state_changed_is_shown_in_status(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    entry = hooked.send_webhook("integration-state-changed", {"state": "INVALID", "qa_status": "FAILED"})
    assert entry["status"] == 200
    sent = json.loads(entry["body"])["data"]
    st = fs.status()
    assert st["integration_state"] == {"state": "INVALID", "setup_status": "COMPLETED",
                                       "qa_status": "FAILED", "updated_at": sent["updated_at"]}
    assert st["state"] == "ready"
    entry = hooked.send_webhook("integration-state-changed", {"state": "ACTIVE"})
    assert fs.status()["integration_state"]["state"] == "ACTIVE"
    # ... and webhooks still work
    emp = hooked.visible("employees")[0]
    hooked.update_employee(emp["id"], job_title="Still Syncing")
    hooked.flush_webhooks()
    wait_for(lambda: job_title(fs, emp["id"]) == "Still Syncing", what="the change")


@pytest.mark.timeout(60)
def test_slow_clients_do_not_starve_the_receiver(hooked, kombofs, tmp_path, port):
    fs = start(kombofs, hooked, port, tmp_path)
    idle = []
    try:
        for _ in range(10):       # slowloris: half a request line, then nothing
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Le")
            idle.append(s)
        half = socket.create_connection(("127.0.0.1", port), timeout=5)   # and a half body
        half.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\":")
        idle.append(half)
        emp = hooked.visible("employees")[0]
        hooked.update_employee(emp["id"], job_title="Not Starved")
        t = time.monotonic()
        assert hooked.flush_webhooks()["status"] == 200
        assert time.monotonic() - t < 1.0
        wait_for(lambda: job_title(fs, emp["id"]) == "Not Starved", what="the change")
    finally:
        for s in idle:
            s.close()


@pytest.mark.timeout(60)
@pytest.mark.allow_log_errors
def test_a_receiver_that_cannot_bind_exits_nonzero_without_a_mount(hooked, kombofs, tmp_path, port):
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", port))
    taken.listen(1)
    try:
        secret = tmp_path / "webhook-secret"
        secret.write_text(SECRET + "\n")
        fs = kombofs(hooked, f"--webhook-listen=127.0.0.1:{port}", f"--webhook-secret-file={secret}",
                     "--poll-interval=0", wait=False)
        assert fs.proc.wait(timeout=50) != 0
        assert not is_mounted(fs.mnt)
        log = fs.log_text()
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in log
        assert SECRET not in log
    finally:
        taken.close()
