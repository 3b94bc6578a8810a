"""Webhooks: signature (kombo-api.md §5 test vector), batching, payloads, drops, failures."""

import json
import re
import time

import pytest

from kombo_sandbox import Sandbox
from sandbox_client import Client
from sandbox_receiver import Receiver, verify as verify_with
from sandbox_webhooks import sign

pytestmark = pytest.mark.timeout(30)

SECRET = "test-webhook-secret"
VECTOR_BODY = (b'{"id":"Y7mQ2bWc9LkTz4HfPx3nRs8e","type":"data-changed","data":{"integration_id":'
               b'"personio:Q4vX8kLm2PzR7tYb3NcW9sHd","integration_tool":"personio","integration_category":'
               b'"HRIS","changed_models":[{"name":"hris_employees"},{"name":"hris_employments"}]}}')


def verify(headers, body, secret=SECRET):
    return verify_with(headers, body, secret)


@pytest.fixture
def hooked(receiver):
    s = Sandbox(employees=20, seed=5, webhook_url=receiver.url, webhook_secret=SECRET, webhook_delay=0.2)
    s.start()
    yield s
    s.stop()


def test_signature_test_vector():
    assert len(VECTOR_BODY) == 250
    assert sign(SECRET, VECTOR_BODY) == "mbsrnNJOKrGKennEgGDqkjJ8gaWDcs8UzCZAgAYqWDU"
    assert sign(SECRET.encode(), VECTOR_BODY) == "mbsrnNJOKrGKennEgGDqkjJ8gaWDcs8UzCZAgAYqWDU"


def test_changes_are_batched_into_one_signed_event(hooked, receiver):
    e = hooked.visible("employees")[0]
    hooked.update_employee(e["id"], job_title="x")
    hooked.update_employment(e["employments"][0]["id"], job_title="y")
    hooked.rename_group(hooked.visible("groups")[0]["id"], "z")
    hooked.update_employee(e["id"], job_title="x2")
    headers, body, event = receiver.next()
    assert verify(headers, body)
    assert headers["content-type"] == "application/json"
    assert list(event) == ["id", "type", "data"] and event["type"] == "data-changed"
    assert re.fullmatch(r"[A-Za-z0-9]{24}", event["id"])
    assert event["data"] == {
        "integration_id": "personio:Q4vX8kLm2PzR7tYb3NcW9sHd", "integration_tool": "personio",
        "integration_category": "HRIS",
        "changed_models": [{"name": "hris_employees"}, {"name": "hris_employments"}, {"name": "hris_teams"}]}
    assert list(event["data"]) == ["integration_id", "integration_tool", "integration_category", "changed_models"]
    assert receiver.empty(wait=0.4)
    assert hooked.stats()["webhooks_sent"] == 1


def test_separate_batches_have_distinct_ids(hooked, receiver):
    emps = hooked.visible("employees")
    hooked.move_employee_group(emps[0]["id"], None, hooked.visible("groups")[-1]["id"])
    _, _, first = receiver.next()
    assert first["data"]["changed_models"] == [{"name": "hris_join_employees_teams"}]
    hooked.update_absence_type(hooked.visible("absence-types")[0]["id"], name="neu")
    _, _, second = receiver.next()
    assert second["data"]["changed_models"] == [{"name": "hris_absence_types"}]
    assert first["id"] != second["id"]


def test_flush_sends_now(receiver):
    s = Sandbox(employees=10, seed=5, webhook_url=receiver.url, webhook_secret=SECRET, webhook_delay=60)
    s.start()
    try:
        s.update_record("timesheets", s.visible("timesheets")[0]["id"], comment="c")
        assert receiver.empty(wait=0.2)
        assert s.stats()["webhooks_pending"] == ["hris_timesheets"]
        entry = s.flush_webhooks()
        assert entry["status"] == 200
        headers, body, event = receiver.next(timeout=1)
        assert verify(headers, body) and event["data"]["changed_models"] == [{"name": "hris_timesheets"}]
        assert s.flush_webhooks() is None
    finally:
        s.stop()


def test_vanish_sends_nothing(hooked, receiver):
    hooked.vanish("employees", hooked.visible("employees")[0]["id"])
    assert receiver.empty(wait=0.5)


def test_integration_deleted_payload(hooked, receiver):
    entry = hooked.send_webhook("integration-deleted")
    assert entry["status"] == 200
    headers, body, event = receiver.next()
    assert verify(headers, body)
    assert event["type"] == "integration-deleted"
    data = event["data"]
    assert list(data) == ["id", "tool", "category", "end_user", "deleted_at"]
    assert data["id"] == "personio:Q4vX8kLm2PzR7tYb3NcW9sHd" and data["tool"] == "personio"
    assert data["category"] == "HRIS"
    assert set(data["end_user"]) == {"organization_name", "creator_email", "origin_id"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", data["deleted_at"])


def test_integration_state_changed_payload_with_overrides(hooked, receiver):
    hooked.send_webhook("integration-state-changed", {"state": "INVALID"}, id="EvtEvtEvtEvtEvtEvtEvtEvt1")
    headers, body, event = receiver.next()
    assert verify(headers, body) and event["id"] == "EvtEvtEvtEvtEvtEvtEvtEvt1"
    data = event["data"]
    assert data["state"] == "INVALID" and data["setup_status"] == "COMPLETED" and data["qa_status"] == "PASSED"
    assert {"integration_tool", "integration_id", "integration_category", "end_user", "updated_at"} <= set(data)
    with pytest.raises(ValueError):
        hooked.send_webhook("no-such-type")


def test_admin_send_webhook(hooked, receiver):
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d/_sandbox/webhooks/send" % hooked.port, method="POST",
                                 data=json.dumps({"type": "data-changed",
                                                  "data": {"changed_models": ["hris_locations"]}}).encode())
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read())["result"]["status"] == 200
    headers, body, event = receiver.next()
    assert verify(headers, body) and event["data"]["changed_models"] == [{"name": "hris_locations"}]


def test_drop_rate(hooked, receiver):
    hooked.set_faults(webhook_drop_rate=1.0)
    hooked.update_record("locations", hooked.visible("locations")[0]["id"], name="L")
    hooked.flush_webhooks()
    assert receiver.empty(wait=0.3)
    assert hooked.stats()["webhooks_dropped"] == 1
    hooked.set_faults(webhook_drop_rate=0.5)
    for _ in range(40):
        hooked.send_webhook("data-changed", {"changed_models": ["hris_employees"]})
    st = hooked.stats()
    arrived = receiver.events.qsize()
    assert st["webhooks_dropped"] - 1 + arrived == 40 and 5 < arrived < 35
    assert st["webhooks_sent"] == arrived


def test_failing_receivers_are_counted_and_api_keeps_serving():
    bad = Receiver(status=500)
    slow = Receiver(delay=1.5)
    try:
        s = Sandbox(employees=10, seed=5, webhook_url=bad.url, webhook_secret=SECRET, webhook_delay=0)
        s.start()
        s.update_employee(s.visible("employees")[0]["id"], job_title="q")
        bad.next()
        deadline = time.time() + 5
        while s.stats()["webhooks_failed"] < 1 and time.time() < deadline:
            time.sleep(0.02)
        assert s.stats()["webhooks_failed"] == 1
        # receiver gone: connection refused, counted, nothing raised
        s.webhooks.url = "http://127.0.0.1:1/webhook"
        assert s.send_webhook("integration-deleted")["error"]
        assert s.stats()["webhooks_failed"] == 2
        # a receiver that hangs does not block the API
        s.webhooks.url = slow.url
        s.update_employee(s.visible("employees")[0]["id"], job_title="r")
        slow.next()
        c = Client(s.url, s.api_key, s.integration_id)
        t = time.time()
        assert c.get("/hris/employees").status == 200
        assert time.time() - t < 0.5
        c.close()
        s.stop()
    finally:
        bad.close()
        slow.close()
