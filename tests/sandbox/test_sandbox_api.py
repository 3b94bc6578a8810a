"""Sandbox API basics: auth, errors, envelope, pagination, cursors, record shapes."""

import gzip
import json
import re
import urllib.request

import pytest

from kombo_sandbox import Sandbox
from sandbox_client import Client
from sandbox_store import ENDPOINTS, OWN_KEYS

pytestmark = pytest.mark.timeout(30)

ERROR_KEYS = ["code", "title", "message", "log_url"]
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
EMPLOYEE_TAIL = ["employments", "time_off_balances", "manager", "groups", "legal_entity",
                 "teams", "work_location"]


def assert_error(reply, status, code):
    assert reply.status == status, reply.body
    body = reply.json()
    assert list(body) == ["status", "error"] and body["status"] == "error"
    assert list(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# -- authentication and integration ------------------------------------------------

def test_missing_and_wrong_api_key(sb):
    for key in (None, "wrong"):
        c = Client(sb.url, key, sb.integration_id)
        assert_error(c.get("/hris/employees"), 401, "PLATFORM.AUTHENTICATION_INVALID")
        assert_error(c.get("/check-api-key"), 401, "PLATFORM.AUTHENTICATION_INVALID")


def test_api_key_without_bearer_prefix_is_rejected(sb, client):
    r = client.get("/hris/employees", headers={"Authorization": sb.api_key})
    assert_error(r, 401, "PLATFORM.AUTHENTICATION_INVALID")


def test_missing_or_unknown_integration(sb):
    for integration in (None, "personio:XXXXXXXXXXXXXXXXXXXXXXXX"):
        c = Client(sb.url, sb.api_key, integration)
        assert_error(c.get("/hris/employees"), 404, "PLATFORM.INTEGRATION_NOT_FOUND")


def test_check_api_key_needs_no_integration(sb):
    r = Client(sb.url, sb.api_key, None).get("/check-api-key")
    assert r.status == 200
    assert r.json() == {"status": "success", "data": {"environment_id": "sandbox-environment",
                                                      "customer_id": "sandbox-environment"}}


def test_unknown_route_and_method(sb, client):
    r = client.get("/hris/nonsense")
    assert r.status == 404 and r.json()["status"] == "error"
    r = client.request("POST", "/hris/employees", body=b'{"x":1}',
                       headers={"Content-Type": "application/json"})
    assert r.status == 405 and r.json()["error"]["code"] is None
    assert client.get("/hris/employees").status == 200  # connection still usable


# -- envelope, page size, pagination ----------------------------------------------------

@pytest.mark.parametrize("endpoint", ENDPOINTS + ("teams",))
def test_every_endpoint_lists_the_visible_records(sb, client, endpoint):
    r = client.get("/hris/" + endpoint, page_size=250)
    assert r.status == 200
    body = r.json()
    assert list(body) == ["status", "data"] and body["status"] == "success"
    assert list(body["data"]) == ["next", "results"]
    assert body["data"]["results"] == sb.visible(endpoint)
    assert r.headers["content-type"].startswith("application/json")


def test_teams_is_an_alias_of_groups(sb):
    assert sb.visible("teams") == sb.visible("groups")


@pytest.mark.parametrize("size", ["0", "251", "-1", "abc", "1.5", ""])
def test_page_size_out_of_bounds(client, size):
    assert_error(client.get("/hris/employees", page_size=size), 400, "PLATFORM.INPUT_INVALID")


def test_page_size_default_and_bounds(sb):
    big = Sandbox(employees=300, seed=2)
    big.start()
    try:
        c = Client(big.url, big.api_key, big.integration_id)
        assert len(c.get("/hris/employees").json()["data"]["results"]) == 100
        assert len(c.get("/hris/employees", page_size=250).json()["data"]["results"]) == 250
        assert len(c.get("/hris/employees", page_size=1).json()["data"]["results"]) == 1
        c.close()
    finally:
        big.stop()


def test_cursor_pagination_walks_everything_once(sb, client):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"page_size": 7, "include_deleted": "false", "ignore_unsupported_filters": "false"}
        if cursor:
            params["cursor"] = cursor
        data = client.get("/hris/employees", **params).json()["data"]
        seen += data["results"]
        pages += 1
        cursor = data["next"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
    assert seen == sb.visible("employees")
    assert pages == -(-len(seen) // 7)


def test_cursor_with_changed_filters_is_refused(client):
    nxt = client.get("/hris/employees", page_size=5, employment_statuses="ACTIVE").json()["data"]["next"]
    assert nxt
    assert_error(client.get("/hris/employees", page_size=5, cursor=nxt), 400, "PLATFORM.INPUT_INVALID")
    assert_error(client.get("/hris/employees", page_size=5, cursor=nxt, employment_statuses="LEAVE"),
                 400, "PLATFORM.INPUT_INVALID")
    assert_error(client.get("/hris/absences", page_size=5, cursor=nxt), 400, "PLATFORM.INPUT_INVALID")
    ok = client.get("/hris/employees", page_size=5, cursor=nxt, employment_statuses="ACTIVE")
    assert ok.status == 200
    # page_size may change between pages
    assert client.get("/hris/employees", page_size=9, cursor=nxt, employment_statuses="ACTIVE").status == 200


@pytest.mark.parametrize("cursor", ["garbage", "eyJwIjoyfQ", "e30", "!!!"])
def test_malformed_cursor(client, cursor):
    assert_error(client.get("/hris/employees", cursor=cursor), 400, "PLATFORM.INPUT_INVALID")


def test_tampered_cursor(client):
    import base64
    nxt = client.get("/hris/employees", page_size=5).json()["data"]["next"]
    body = json.loads(base64.urlsafe_b64decode(nxt + "=" * (-len(nxt) % 4)))
    body["k"] = 0
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    assert_error(client.get("/hris/employees", page_size=5, cursor=forged), 400, "PLATFORM.INPUT_INVALID")


def test_unknown_and_repeated_parameters(client):
    assert_error(client.get("/hris/employees", updated_since="2024-01-01"), 400, "PLATFORM.INPUT_INVALID")
    assert_error(client.get("/hris/groups", employee_id="x"), 400, "PLATFORM.INPUT_INVALID")
    r = client.request("GET", "/hris/employees", raw_query="page_size=5&page_size=6")
    assert_error(r, 400, "PLATFORM.INPUT_INVALID")


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", ""])
def test_boolean_parameters_are_strict(client, value):
    assert_error(client.get("/hris/employees", include_deleted=value), 400, "PLATFORM.INPUT_INVALID")


def test_sdk_style_request_is_accepted(sb, client):
    r = client.request("GET", "/hris/employees", raw_query=(
        "page_size=100&include_deleted=false&ignore_unsupported_filters=false"
        "&updated_after=2024-01-01T00%3A00%3A00.000Z"))
    assert r.status == 200


def test_pages_are_cached_until_a_mutation(sb, client):
    a = client.get("/hris/employees", page_size=3).body
    assert client.get("/hris/employees", page_size=3).body == a
    first = sb.visible("employees")[0]
    sb.update_employee(first["id"], job_title="Changed")
    b = client.get("/hris/employees", page_size=3).body
    assert b != a and json.loads(b)["data"]["results"][0]["job_title"] == "Changed"


# -- transport ------------------------------------------------------------------------

def test_gzip_and_keep_alive(sb, client):
    req = urllib.request.Request(sb.url + "/hris/employees?page_size=50", headers={
        "Authorization": "Bearer sandbox-key", "X-Integration-Id": sb.integration_id,
        "Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        raw = resp.read()
    plain = client.get("/hris/employees", page_size=50)
    assert gzip.decompress(raw) == plain.body
    assert "content-encoding" not in plain.headers
    conn = client.conn
    for _ in range(5):
        assert client.get("/hris/employees", page_size=2).status == 200
    assert client.conn is conn  # one connection for all of them


def test_rate_limit_headers_on_success(client):
    r = client.get("/hris/employees", page_size=1)
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(r.headers)


# -- record shapes ------------------------------------------------------------------------

def test_employee_key_order_and_embeds(sb):
    emps = sb.visible("employees")
    for e in emps:
        keys = list(e)
        assert keys[-len(EMPLOYEE_TAIL):] == EMPLOYEE_TAIL
        own = keys[:-len(EMPLOYEE_TAIL)]
        assert own == [k for k in OWN_KEYS["employees"] if k in own]
        assert e["teams"] == e["groups"]
        assert TS_RE.match(e["changed_at"])
        for emp in e["employments"]:
            assert list(emp) == list(OWN_KEYS["employments"]) or set(emp) <= set(OWN_KEYS["employments"])
            assert emp["employee_id"] == e["id"]
        for bal in e["time_off_balances"]:
            assert "type" not in bal and bal["employee_id"] == e["id"]
        for g in e["groups"]:
            assert list(g) == ["id", "remote_id", "name", "type"]
        if e["manager"] is not None:
            assert "changed_at" not in e["manager"] and e["manager"]["id"] == e["manager_id"]
        if e["work_location"] is not None:
            assert "changed_at" in e["work_location"]
        if e["legal_entity"] is not None:
            assert "changed_at" not in e["legal_entity"]
    assert any(e["manager"] for e in emps)


def test_absences_and_balances_embed_their_type(sb):
    types = {t["id"]: t for t in sb.visible("absence-types")}
    for endpoint in ("absences", "time-off-balances"):
        for rec in sb.visible(endpoint):
            assert list(rec)[-1] == "type"
            assert rec["type"] == types[rec["type_id"]]
    for a in sb.visible("absences"):
        for key in ("start_date", "end_date"):
            assert a[key] is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}", a[key])


def test_id_formats(sb):
    for endpoint in ENDPOINTS:
        for rec in sb.visible(endpoint):
            if endpoint == "timesheets":
                assert re.fullmatch(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", rec["id"])
            else:
                assert re.fullmatch(r"[A-Za-z0-9]{24}", rec["id"]), rec["id"]
            assert TS_RE.match(rec["changed_at"])


# -- admin API and statistics -----------------------------------------------------------------

def admin(sb, method, route, payload=None):
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d/_sandbox/%s" % (sb.port, route), data=data,
                                 method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_stats_and_request_log(sb, client):
    client.get("/hris/employees", page_size=3)
    client.get("/hris/groups", types="TEAM")
    Client(sb.url, "bad", sb.integration_id).get("/hris/groups")
    admin(sb, "GET", "stats")  # admin requests are not counted
    s = sb.stats()
    assert s["total"] == 3
    assert s["by_endpoint"] == {"employees": 1, "groups": 2}
    assert s["by_status"] == {"200": 2, "401": 1}
    reqs = sb.requests()
    assert [r["path"] for r in reqs] == ["/v1/hris/employees", "/v1/hris/groups", "/v1/hris/groups"]
    assert reqs[0]["query"] == {"page_size": "3"} and reqs[1]["query"] == {"types": "TEAM"}
    assert [r["status"] for r in reqs] == [200, 200, 401]
    sb.reset_stats()
    assert sb.stats()["total"] == 0 and sb.requests() == []


def test_admin_http_api(sb, client):
    status, records = admin(sb, "GET", "records/employees")
    assert status == 200 and records == sb.visible("employees")
    eid = records[0]["id"]
    status, out = admin(sb, "POST", "mutate", {"op": "update_employee", "args": {"id": eid, "job_title": "Admin"}})
    assert status == 200 and out == {"result": eid}
    assert sb.visible("employees")[0]["job_title"] == "Admin"
    status, out = admin(sb, "POST", "mutate", {"op": "create_employee", "args": {"first_name": "Nová"}})
    assert status == 200 and sb.visible("employees")[-1]["id"] == out["result"]
    assert admin(sb, "POST", "mutate", {"op": "stop", "args": {}})[0] == 400
    assert admin(sb, "POST", "mutate", {"op": "update_employee", "args": {"id": "nope", "x": 1}})[0] in (400, 404)
    assert admin(sb, "POST", "faults", {"setup_pending": True})[0] == 200
    assert client.get("/hris/employees").status == 409
    assert admin(sb, "GET", "faults")[1] == {"setup_pending": True}
    assert admin(sb, "POST", "faults", {})[0] == 200
    assert client.get("/hris/employees").status == 200
    assert admin(sb, "POST", "faults", {"no_such_fault": 1})[0] == 400
    status, s = admin(sb, "GET", "stats")
    assert status == 200 and s["total"] == 2
    assert admin(sb, "POST", "stats/reset")[0] == 200 and sb.stats()["total"] == 0
    assert admin(sb, "GET", "records/nope")[0] == 404
    assert admin(sb, "POST", "webhooks/flush") == (200, {"result": None})
    assert admin(sb, "GET", "nothing-here")[0] == 404


def test_pagination_is_stable_under_concurrent_changes(sb, client):
    before = [e["id"] for e in sb.visible("employees")]
    p1 = client.get("/hris/employees", page_size=5).json()["data"]
    sb.soft_delete("employees", before[7])       # on a later page
    sb.soft_delete("employees", before[1])       # on the page already read
    new_id = sb.create_employee(first_name="Late", last_name="Joiner")
    rest, cursor = [], p1["next"]
    while cursor:
        data = client.get("/hris/employees", page_size=5, cursor=cursor).json()["data"]
        rest += [r["id"] for r in data["results"]]
        cursor = data["next"]
    seen = [r["id"] for r in p1["results"]] + rest
    assert len(seen) == len(set(seen))  # nothing twice
    assert seen == [i for i in before if i != before[7]] + [new_id]  # nothing skipped, new one last


def test_small_page_cache_still_serves_correctly():
    s = Sandbox(employees=30, seed=9, page_cache_bytes=2000)
    s.start()
    try:
        c = Client(s.url, s.api_key, s.integration_id)
        for _ in range(2):
            assert c.list_all("employees", page_size=4) == s.visible("employees")
        assert s._pages.size <= 2000 or len(s._pages.entries) == 1
        c.close()
    finally:
        s.stop()
