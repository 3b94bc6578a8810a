"""Many integrations under one API key (kombo-api.md "Additions and errata";
SPEC §9): own data per integration, routing by X-Integration-Id, GET
/integrations/{id}, adding and removing, every webhook type for any
integration, per-integration statistics and faults, 1,000 integrations."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from kombo_sandbox import Sandbox
from sandbox_client import Client
from sandbox_integrations import derive_seed, generated_ids
from sandbox_receiver import verify
from sandbox_store import NotFound

pytestmark = pytest.mark.timeout(60)

A = "personio:AAAAAAAAAAAAAAAAAAAAAAAA"
B = "hibob:BBBBBBBBBBBBBBBBBBBBBBBB"
C = "bamboohr:CCCCCCCCCCCCCCCCCCCCCCCC"
SECRET = "multi-secret"
ISO_MS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kombo_sandbox.py")


@pytest.fixture
def multi():
    s = Sandbox(integrations={A: 30, B: 12}, seed=4)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def hooked(receiver):
    s = Sandbox(integrations={A: 10, B: {"employees": 8, "origin_id": "acme-42",
                                         "organization_name": "Acme, Inc."}},
                webhook_url=receiver.url, webhook_secret=SECRET, webhook_delay=3600)
    s.start()
    yield s
    s.stop()


def client(sb, integration):
    return Client(sb.url, sb.api_key, integration)


def admin(sb, method, route, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d/_sandbox/%s" % (sb.port, route), method=method,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- data per integration --------------------------------------------------------

def test_each_integration_has_its_own_company(multi):
    a, b = multi.visible("employees", integration=A), multi.visible("employees", integration=B)
    assert len(a) == 30 and len(b) == 12
    assert multi.visible("employees") == a  # the first integration is the default
    for endpoint in ("employees", "groups", "legal-entities", "absence-types"):
        ids_a = {r["id"] for r in multi.visible(endpoint, integration=A)}
        ids_b = {r["id"] for r in multi.visible(endpoint, integration=B)}
        assert ids_a and ids_b and not ids_a & ids_b, endpoint
    assert multi.integrations() == [A, B]


def test_data_is_deterministic_and_the_first_integration_keeps_the_base_seed(multi):
    with Sandbox(employees=30, seed=4, integration_id=A) as single:
        assert single.visible_json("employees") == multi.visible_json("employees", integration=A)
    with Sandbox(integrations={A: 30, B: 12}, seed=4) as again:
        for endpoint in ("employees", "absences", "timesheets"):
            assert again.visible_json(endpoint, integration=B) == multi.visible_json(endpoint, integration=B)
    # B's own seed is derived from the base seed and its id
    with Sandbox(employees=12, seed=derive_seed(4, B), integration_id=B) as alone:
        assert alone.visible_json("employees") == multi.visible_json("employees", integration=B)


def test_list_endpoints_route_by_header(multi):
    ca, cb = client(multi, A), client(multi, B)
    try:
        assert ca.list_all("employees", page_size=7) == multi.visible("employees", integration=A)
        assert cb.list_all("employees", page_size=7) == multi.visible("employees", integration=B)
        assert cb.list_all("groups") == multi.visible("groups", integration=B)
        # a cursor of one integration is not valid for another
        cursor = ca.get("/hris/employees", page_size=5).json()["data"]["next"]
        r = cb.get("/hris/employees", page_size=5, cursor=cursor)
        assert r.status == 400 and r.error_code == "PLATFORM.INPUT_INVALID"
    finally:
        ca.close()
        cb.close()


def test_unknown_or_missing_integration_is_404(multi):
    for integration in ("personio:NotHereNotHereNotHereNotH", None, ""):
        c = client(multi, integration)
        r = c.get("/hris/employees")
        assert r.status == 404 and r.error_code == "PLATFORM.INTEGRATION_NOT_FOUND"
        assert set(r.json()["error"]) == {"code", "title", "message", "log_url"}
        c.close()


def test_mutations_name_their_integration(multi):
    b0 = multi.visible("employees", integration=B)[0]
    before_a = multi.visible_json("employees", integration=A)
    multi.update_employee(b0["id"], integration=B, job_title="Only In B")
    assert multi.visible("employees", integration=B)[0]["job_title"] == "Only In B"
    assert multi.visible_json("employees", integration=A) == before_a
    with pytest.raises(NotFound):
        multi.update_employee(b0["id"], job_title="x")  # the default integration is A
    new = multi.create_employee(integration=B, first_name="Neu")
    assert multi.visible("employees", integration=B)[-1]["id"] == new
    multi.soft_delete("employees", new, integration=B)
    assert new not in {e["id"] for e in multi.visible("employees", integration=B)}
    c = client(multi, B)
    assert c.list_all("employees") == multi.visible("employees", integration=B)
    c.close()
    with pytest.raises(NotFound):
        multi.update_employee(b0["id"], integration="nope:x", job_title="x")


# -- GET /integrations/{id} --------------------------------------------------------

def test_get_integration(multi):
    c = client(multi, None)  # no X-Integration-Id needed
    try:
        r = c.get("/integrations/" + B)
        assert r.status == 200
        body = r.json()
        assert body["status"] == "success"
        data = body["data"]
        assert data == multi.integration(B)
        assert data["id"] == B and data["tool"]["id"] == "hibob" and data["category"] == "HRIS"
        assert set(data["tool"]) == {"id", "label", "internal_label", "logo_url", "icon_url"}
        assert data["status"] == "ACTIVE" and data["setup_status"] == "COMPLETED"
        assert data["data_expired_at"] is None
        assert data["end_user"] == {"organization_name": "Customer 2", "creator_email": "hr@customer2.example",
                                    "origin_id": "cust-2"}
        assert re.fullmatch(ISO_MS, data["created_at"])
        models = [m["id"] for m in data["read_models"]]
        assert "hris_employees" in models and "hris_teams" in models
        assert all(m["is_available"] and m["coverage_status"] == "SUPPORTED" and m["fields"] == []
                   for m in data["read_models"])
        assert c.get("/integrations/" + urllib.parse.quote(A, safe="")).json()["data"]["id"] == A
        assert c.get("/integrations/" + A).json()["data"]["end_user"]["origin_id"] == "cust-1"
        for missing in ("personio:Nope", "nope"):
            r = c.get("/integrations/" + missing)
            assert r.status == 404 and r.error_code == "PLATFORM.INTEGRATION_NOT_FOUND"
        assert c.get("/integrations/%s/integration-fields" % A).status == 404
        assert c.request("POST", "/integrations/" + A).status == 405
        assert Client(multi.url, "wrong", None).get("/integrations/" + A).status == 401
    finally:
        c.close()


def test_integration_description_is_settable(multi):
    multi.update_integration(B, status="INVALID", origin_id="acme-7", data_expired_at="2026-01-01T00:00:00.000Z")
    c = client(multi, None)
    data = c.get("/integrations/" + B).json()["data"]
    assert data["status"] == "INVALID" and data["end_user"]["origin_id"] == "acme-7"
    assert data["data_expired_at"] == "2026-01-01T00:00:00.000Z"
    c.close()
    with pytest.raises(ValueError):
        multi.update_integration(B, status="BROKEN")
    with pytest.raises(ValueError):
        multi.update_integration(B, colour="red")
    # status alone does not stop the data being served
    cb = client(multi, B)
    assert cb.get("/hris/employees").status == 200
    multi.update_integration(B, setup_status="FINAL_SYNC_PENDING")
    r = cb.get("/hris/employees")
    assert r.status == 409 and r.error_code == "INTEGRATION.SETUP_SYNC_PENDING"
    multi.update_integration(B, setup_status="INCOMPLETE")
    assert cb.get("/hris/employees").error_code == "INTEGRATION.SETUP_INCOMPLETE"
    multi.update_integration(B, setup_status="COMPLETED")
    assert cb.get("/hris/employees").status == 200
    cb.close()


def test_add_and_remove_integrations(multi):
    multi.add_integration(C, employees=5, origin_id="new-customer")
    assert multi.integrations() == [A, B, C]
    assert multi.integration(C)["end_user"]["origin_id"] == "new-customer"
    cc = client(multi, C)
    assert len(cc.list_all("employees")) == 5
    with pytest.raises(ValueError):
        multi.add_integration(C)
    multi.remove_integration(C)
    r = cc.get("/hris/employees")
    assert r.status == 404 and r.error_code == "PLATFORM.INTEGRATION_NOT_FOUND"
    assert client(multi, None).get("/integrations/" + C).status == 404
    with pytest.raises(NotFound):
        multi.integration(C)
    with pytest.raises(NotFound):
        multi.remove_integration(C)
    with pytest.raises(NotFound):
        multi.visible("employees", integration=C)
    assert client(multi, A).get("/hris/employees").status == 200  # the others go on
    # added again: a new integration (new data and cursors, fresh description)
    multi.add_integration(C, employees=3)
    assert len(cc.list_all("employees")) == 3
    assert multi.integration(C)["end_user"]["origin_id"] == "cust-4"
    cc.close()


def test_admin_routes_for_integrations(multi):
    status, listing = admin(multi, "GET", "integrations")
    assert status == 200 and [x["id"] for x in listing] == [A, B]
    assert listing[1]["employees"] == 12 and listing[1]["origin_id"] == "cust-2"
    assert admin(multi, "POST", "integrations", {"id": C, "employees": 4, "status": "INACTIVE"}) == \
        (200, {"result": C})
    assert admin(multi, "GET", "integrations/" + C)[1]["status"] == "INACTIVE"
    status, out = admin(multi, "POST", "integrations/update", {"id": C, "status": "ACTIVE"})
    assert status == 200 and out["result"]["status"] == "ACTIVE"
    status, recs = admin(multi, "GET", "records/employees?integration=" + urllib.parse.quote(C))
    assert status == 200 and len(recs) == 4
    eid = recs[0]["id"]
    status, out = admin(multi, "POST", "mutate", {"op": "update_employee",
                                                  "args": {"id": eid, "integration": C, "job_title": "Via Admin"}})
    assert status == 200 and multi.visible("employees", integration=C)[0]["job_title"] == "Via Admin"
    assert admin(multi, "POST", "faults", {"integration": C, "server_error": 1})[0] == 200
    assert admin(multi, "GET", "faults?integration=" + urllib.parse.quote(C))[1] == \
        {"server_error": 1, "server_error_left": 1}
    assert admin(multi, "POST", "integrations/remove", {"id": C}) == (200, {"result": C})
    assert admin(multi, "GET", "integrations/" + C)[0] == 404
    assert admin(multi, "POST", "integrations", {"id": A})[0] == 400
    assert admin(multi, "POST", "integrations", {"id": "x", "colour": "red"})[0] == 400


# -- webhooks -----------------------------------------------------------------------

def test_data_changed_batches_per_integration(hooked, receiver):
    a0 = hooked.visible("employees", integration=A)[0]
    b0 = hooked.visible("employees", integration=B)[0]
    hooked.update_employee(a0["id"], job_title="A")
    hooked.update_employment(b0["employments"][0]["id"], integration=B, job_title="B")
    hooked.rename_group(hooked.visible("groups", integration=B)[0]["id"], "G", integration=B)
    assert hooked.stats()["webhooks_pending_by_integration"] == {
        A: ["hris_employees"], B: ["hris_employments", "hris_teams"]}
    first = hooked.flush_webhooks()
    assert first["integration"] == A and first["status"] == 200
    events = {}
    for _ in range(2):
        headers, body, event = receiver.next()
        assert verify(headers, body, SECRET)
        events[event["data"]["integration_id"]] = event
    assert events[A]["data"] == {"integration_id": A, "integration_tool": "personio",
                                 "integration_category": "HRIS", "changed_models": [{"name": "hris_employees"}]}
    assert events[B]["data"] == {"integration_id": B, "integration_tool": "hibob", "integration_category": "HRIS",
                                 "changed_models": [{"name": "hris_employments"}, {"name": "hris_teams"}]}
    assert events[A]["id"] != events[B]["id"]
    assert receiver.empty(wait=0.2)
    # flushing one integration leaves the other's batch pending
    hooked.update_employee(a0["id"], job_title="A2")
    hooked.update_employee(b0["id"], integration=B, job_title="B2")
    assert hooked.flush_webhooks(integration=B)["integration"] == B
    assert receiver.next()[2]["data"]["integration_id"] == B
    assert hooked.stats()["webhooks_pending_by_integration"] == {A: ["hris_employees"]}


def test_every_webhook_type_for_a_chosen_integration(hooked, receiver):
    got = {}
    for kind in ("integration-created", "integration-state-changed", "data-changed", "integration-deleted"):
        entry = hooked.send_webhook(kind, B)
        assert entry["status"] == 200 and entry["integration"] == B and entry["type"] == kind
        headers, body, event = receiver.next()
        assert verify(headers, body, SECRET) and body.decode() == entry["body"]
        assert list(event) == ["id", "type", "data"] and event["type"] == kind
        assert re.fullmatch(r"[A-Za-z0-9]{24}", event["id"])
        got[kind] = event["data"]
    end_user = {"organization_name": "Acme, Inc.", "creator_email": "hr@customer2.example", "origin_id": "acme-42"}
    assert got["integration-created"] == {"id": B, "tool": "hibob", "category": "HRIS", "end_user": end_user}
    deleted = got["integration-deleted"]
    assert list(deleted) == ["id", "tool", "category", "end_user", "deleted_at"]
    assert deleted["id"] == B and deleted["end_user"] == end_user and re.fullmatch(ISO_MS, deleted["deleted_at"])
    state = got["integration-state-changed"]
    assert list(state) == ["integration_tool", "integration_id", "integration_category", "end_user",
                           "qa_status", "setup_status", "state", "updated_at"]
    assert state["integration_id"] == B and state["integration_tool"] == "hibob"
    assert state["end_user"] == end_user and state["state"] == "ACTIVE"
    assert got["data-changed"] == {"integration_id": B, "integration_tool": "hibob",
                                   "integration_category": "HRIS", "changed_models": []}
    # fields override, in both call forms
    hooked.send_webhook("integration-state-changed", B, state="INVALID", qa_status="FAILED")
    data = receiver.next()[2]["data"]
    assert data["state"] == "INVALID" and data["qa_status"] == "FAILED" and data["integration_id"] == B
    hooked.send_webhook("data-changed", {"changed_models": ["hris_absences"]}, integration=B)
    assert receiver.next()[2]["data"]["changed_models"] == [{"name": "hris_absences"}]
    # an id the sandbox never knew: a plausible event all the same
    hooked.send_webhook("integration-created", "workday:ZZZZZZZZZZZZZZZZZZZZZZZZ")
    data = receiver.next()[2]["data"]
    assert data["id"] == "workday:ZZZZZZZZZZZZZZZZZZZZZZZZ" and data["tool"] == "workday"


def test_lifecycle_events_follow_the_integration(hooked, receiver):
    hooked.add_integration(C, employees=3, origin_id="org-c", notify=True)
    event = receiver.next()[2]
    assert event["type"] == "integration-created" and event["data"]["id"] == C
    assert event["data"]["tool"] == "bamboohr" and event["data"]["end_user"]["origin_id"] == "org-c"
    hooked.update_integration(C, status="INACTIVE", notify=True)
    event = receiver.next()[2]
    assert event["type"] == "integration-state-changed"
    assert event["data"]["integration_id"] == C and event["data"]["state"] == "INACTIVE"
    hooked.update_employee(hooked.visible("employees", integration=C)[0]["id"], integration=C, job_title="x")
    assert hooked.stats()["webhooks_pending"] == ["hris_employees"]
    hooked.remove_integration(C, notify=True)
    event = receiver.next()[2]
    assert event["type"] == "integration-deleted" and event["data"]["id"] == C
    assert event["data"]["end_user"]["origin_id"] == "org-c"
    assert hooked.stats()["webhooks_pending"] == []  # its batch went with it
    assert hooked.flush_webhooks() is None
    # a removed integration can still be named in an event
    assert hooked.send_webhook("integration-deleted", C)["status"] == 200
    assert receiver.next()[2]["data"]["id"] == C


def test_admin_send_and_flush_name_the_integration(hooked, receiver):
    status, out = admin(hooked, "POST", "webhooks/send", {"type": "integration-created", "integration": B})
    assert status == 200 and out["result"]["status"] == 200
    assert receiver.next()[2]["data"]["id"] == B
    hooked.update_employee(hooked.visible("employees", integration=B)[0]["id"], integration=B, job_title="y")
    status, out = admin(hooked, "POST", "webhooks/flush", {"integration": B})
    assert status == 200 and out["result"]["integration"] == B
    assert receiver.next()[2]["data"]["integration_id"] == B


def test_webhook_drop_rate_per_integration(hooked, receiver):
    hooked.set_faults(integration=B, webhook_drop_rate=1.0)
    assert hooked.send_webhook("data-changed", B)["dropped"]
    assert hooked.send_webhook("data-changed", A)["status"] == 200
    assert receiver.next()[2]["data"]["integration_id"] == A
    st = hooked.stats()
    assert st["by_integration"][B]["webhooks_dropped"] == 1 and st["by_integration"][A]["webhooks_sent"] == 1


# -- statistics and faults per integration -----------------------------------------

def test_request_counts_per_integration(multi):
    ca, cb, cx = client(multi, A), client(multi, B), client(multi, "nope:x")
    try:
        ca.get("/hris/employees")
        ca.get("/hris/groups")
        cb.get("/hris/employees")
        cx.get("/hris/employees")
        Client(multi.url, multi.api_key, None).get("/integrations/" + B)
        Client(multi.url, multi.api_key, None).get("/check-api-key")
        s = multi.stats()
        assert s["total"] == 6
        assert s["by_endpoint"] == {"employees": 3, "groups": 1, "integrations": 1, "check-api-key": 1}
        per = s["by_integration"]
        assert set(per) == {A, B, "nope:x"}
        assert per[A]["total"] == 2 and per[A]["by_endpoint"] == {"employees": 1, "groups": 1}
        assert per[B]["total"] == 2 and per[B]["by_endpoint"] == {"employees": 1, "integrations": 1}
        assert per[B]["by_status"] == {"200": 2} and per[B]["bytes_sent"] > 0
        assert per["nope:x"]["by_status"] == {"404": 1}
        assert [r["integration"] for r in multi.requests()] == [A, A, B, "nope:x", B, None]
        multi.reset_stats(integration=A)
        s = multi.stats()
        assert A not in s["by_integration"] and s["total"] == 6
        multi.reset_stats()
        assert multi.stats()["by_integration"] == {} and multi.stats()["total"] == 0
    finally:
        for c in (ca, cb, cx):
            c.close()


def test_faults_per_integration(multi):
    ca, cb = client(multi, A), client(multi, B)
    try:
        multi.set_faults(integration=B, setup_pending=True)
        assert cb.get("/hris/employees").status == 409
        assert ca.get("/hris/employees").status == 200
        multi.set_faults(integration=B, server_error=2)
        assert ca.get("/hris/employees").status == 200
        assert [cb.get("/hris/groups").status for _ in range(3)] == [500, 503, 200]
        multi.set_faults(integration=A, fail_after_pages=1)
        assert cb.list_all("employees", page_size=5) == multi.visible("employees", integration=B)
        assert ca.get("/hris/employees", page_size=5).status == 200
        with pytest.raises(AssertionError):
            ca.list_all("employees", page_size=5)
        assert multi.stats()["integration_faults"] == {A: {"fail_after_pages": 1}, B: {"server_error": 2}}
        multi.set_faults(server_error=1)  # sandbox-wide: any integration
        assert cb.get("/hris/groups").status == 500
        multi.clear_faults()
        assert multi.stats()["integration_faults"] == {} and multi.stats()["faults"] == {}
        assert ca.list_all("employees", page_size=5) == multi.visible("employees")
        with pytest.raises(NotFound):
            multi.set_faults(integration="nope:x", slow=1)
    finally:
        ca.close()
        cb.close()


# -- many integrations ------------------------------------------------------------

def test_a_thousand_integrations_start_fast_and_answer():
    t = time.monotonic()
    s = Sandbox(integrations=1000, employees=100, seed=2)
    s.start()
    try:
        assert time.monotonic() - t < 3.0  # lazy: only the first integration is generated
        ids = s.integrations()
        assert len(ids) == 1000 == len(set(ids)) and ids == generated_ids(1000, seed=2)
        assert all(re.fullmatch(r"[a-z]+:[A-Za-z0-9]{24}", i) for i in ids)
        assert s.stats()["integrations"] == {"count": 1000, "loaded": 1, "mutated": 0, "removed": 0}
        for iid in (ids[1], ids[500], ids[999]):
            c = client(s, iid)
            emps = c.list_all("employees", page_size=250)
            assert len(emps) == 100 and emps == s.visible("employees", integration=iid)
            c.close()
        info = Client(s.url, s.api_key, None).get("/integrations/" + ids[999]).json()["data"]
        assert info["id"] == ids[999] and info["end_user"]["origin_id"] == "cust-1000"
        assert s.stats()["integrations"]["loaded"] == 4
    finally:
        s.stop()


def test_clean_integrations_are_regenerated_identically():
    s = Sandbox(integrations=[A, B, C], employees=20, max_loaded=1)
    s.start()
    try:
        cb = client(s, B)
        first = cb.get("/hris/employees", page_size=8).json()["data"]
        before = s.visible_json("employees", integration=B)
        s.visible("employees", integration=C)  # B's data is dropped (one clean one kept)
        assert s.stats()["integrations"]["loaded"] == 2  # A (the default) and C
        s._pages.clear()  # force the pages to be rendered from the regenerated data
        rest = cb.list_all("employees", page_size=8, cursor=first["next"])
        assert first["results"] + rest == json.loads(before)
        assert s.visible_json("employees", integration=B) == before
        # a mutated integration keeps its data
        s.update_employee(first["results"][0]["id"], integration=B, job_title="Kept")
        for iid in (C, A, C):
            s.visible("groups", integration=iid)
        assert s.visible("employees", integration=B)[0]["job_title"] == "Kept"
        cb.close()
    finally:
        s.stop()


def test_constructor_forms():
    with Sandbox(integrations=[A, (B, 3), (C, {"employees": 2, "status": "INVALID"})], employees=4) as s:
        assert [len(s.visible("employees", integration=i)) for i in (A, B, C)] == [4, 3, 2]
        assert s.integration(C)["status"] == "INVALID"
    with Sandbox(integrations={A: 2, B: 3}, integration_id=B, employees=5) as s:
        assert s.integration_id == B and s.integrations() == [B, A]
        assert len(s.visible("employees")) == 3
    with Sandbox(integrations=2, integration_id=C, employees=1) as s:
        assert s.integrations()[0] == C and len(s.integrations()) == 2
    with pytest.raises(ValueError):
        Sandbox(integrations={})
    with pytest.raises(ValueError):
        Sandbox(integrations=[A, A])
    with pytest.raises(ValueError):
        Sandbox(integrations={"has space": 1})


# -- command line ----------------------------------------------------------------------

def start(*args):
    return subprocess.Popen([sys.executable, SCRIPT] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(p):
    p.terminate()
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err


def test_cli_generated_integrations():
    p = start("--integrations", "3", "--employees-per-integration", "4", "--seed", "7")
    try:
        port = int(p.stdout.readline().rsplit(":", 1)[1])
        ids = generated_ids(3, seed=7)
        for iid in ids:
            c = Client("http://127.0.0.1:%d/v1" % port, "sandbox-key", iid)
            assert len(c.list_all("employees")) == 4
            c.close()
    finally:
        stop(p)


def test_cli_integrations_file(tmp_path):
    f = tmp_path / "integrations"
    f.write_text("# customers\n%s 3\n\n%s origin_id=acme-1 'organization_name=Acme, Inc.'  # comment\n"
                 "%s 2 status=INACTIVE\n" % (A, B, C))
    p = start("--integrations-file", str(f), "--employees", "5")
    try:
        base = "http://127.0.0.1:%d/v1" % int(p.stdout.readline().rsplit(":", 1)[1])
        counts = []
        for iid in (A, B, C):
            c = Client(base, "sandbox-key", iid)
            counts.append(len(c.list_all("employees")))
            c.close()
        assert counts == [3, 5, 2]
        c = Client(base, "sandbox-key", None)
        data = c.get("/integrations/" + B).json()["data"]
        assert data["end_user"]["origin_id"] == "acme-1" and data["end_user"]["organization_name"] == "Acme, Inc."
        assert c.get("/integrations/" + C).json()["data"]["status"] == "INACTIVE"
        assert c.get("/integrations/personio:Q4vX8kLm2PzR7tYb3NcW9sHd").status == 404
        c.close()
    finally:
        stop(p)


@pytest.mark.parametrize("content", ["%s 3\n%s x\n" % (A, B), "%s\n%s\n" % (A, A),
                                     "%s status=BROKEN\n" % A, "bad/id\n"])
def test_cli_bad_integrations_file(tmp_path, content):
    f = tmp_path / "integrations"
    f.write_text(content)
    p = start("--integrations-file", str(f))
    out, err = p.communicate(timeout=10)
    assert p.returncode == 2 and out == ""
    assert re.search(r"integrations:\d+: ", err), err
