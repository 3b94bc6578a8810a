"""Every list filter of kombo-api.md §2, checked against a plain Python filter
over the visible records."""

import json

import pytest

pytestmark = pytest.mark.timeout(30)


def ids(client, endpoint, **params):
    return [r["id"] for r in client.list_all(endpoint, page_size=250, **params)]


def expect(sb, endpoint, pred):
    return [r["id"] for r in sb.visible(endpoint) if pred(r)]


def test_ids_and_remote_ids(sb, client):
    emps = sb.visible("employees")
    a, b, c = emps[0], emps[5], emps[9]
    assert ids(client, "employees", ids="%s,%s" % (a["id"], b["id"])) == [a["id"], b["id"]]
    assert ids(client, "employees", remote_ids="%s,%s" % (b["remote_id"], c["remote_id"])) == [b["id"], c["id"]]
    # different filters AND together
    assert ids(client, "employees", ids="%s,%s" % (a["id"], b["id"]),
               remote_ids="%s,%s" % (b["remote_id"], c["remote_id"])) == [b["id"]]
    # unknown ids are filtered out, not an error
    assert ids(client, "employees", ids="XXXXXXXXXXXXXXXXXXXXXXXX") == []
    # percent-encoded comma, as the SDK sends it
    r = client.request("GET", "/hris/employees", raw_query="ids=%s%%2C%s" % (a["id"], c["id"]))
    assert [x["id"] for x in r.json()["data"]["results"]] == [a["id"], c["id"]]


def test_employment_statuses(sb, client):
    for value in ("ACTIVE", "INACTIVE,LEAVE", "PENDING"):
        wanted = set(value.split(","))
        assert ids(client, "employees", employment_statuses=value) == \
            expect(sb, "employees", lambda r: r.get("employment_status") in wanted)
    assert ids(client, "employees", employment_status="ACTIVE") == \
        ids(client, "employees", employment_statuses="ACTIVE")
    assert ids(client, "employees", employment_statuses="") == expect(sb, "employees", lambda r: True)
    assert client.get("/hris/employees", employment_statuses="ACTIVE,FIRED").status == 400


def test_group_legal_entity_location_filters(sb, client):
    emps = sb.visible("employees")
    group = emps[0]["groups"][0]["id"]
    assert ids(client, "employees", group_ids=group) == \
        expect(sb, "employees", lambda r: group in [g["id"] for g in r["groups"]])
    le = next(e["legal_entity_id"] for e in emps if e["legal_entity_id"])
    assert ids(client, "employees", legal_entity_ids=le) == \
        expect(sb, "employees", lambda r: r["legal_entity_id"] == le)
    locs = sorted({e["work_location_id"] for e in emps if e["work_location_id"]})[:2]
    assert ids(client, "employees", work_location_ids=",".join(locs)) == \
        expect(sb, "employees", lambda r: r["work_location_id"] in locs)


def test_email_filters_are_case_insensitive(sb, client):
    emps = [e for e in sb.visible("employees") if e.get("work_email")]
    mail = emps[3]["work_email"]
    assert ids(client, "employees", work_emails=mail.upper()) == [emps[3]["id"]]
    with_personal = [e for e in sb.visible("employees") if e.get("personal_email")]
    p = with_personal[0]
    assert ids(client, "employees", personal_emails="x@y.example," + p["personal_email"].swapcase()) == [p["id"]]


def test_custom_fields(sb, client):
    def has(key, value):
        return lambda r: (r["custom_fields"] or {}).get(key, object()) == value and \
            isinstance(value, bool) == isinstance((r["custom_fields"] or {}).get(key), bool)
    assert ids(client, "employees", custom_fields=json.dumps({"cost_center_code": "FIN-003"})) == \
        expect(sb, "employees", has("cost_center_code", "FIN-003"))
    assert ids(client, "employees", custom_fields='{"remote_worker": true}') == \
        expect(sb, "employees", has("remote_worker", True))
    assert ids(client, "employees", custom_fields='{"badge_number": 3}') == \
        expect(sb, "employees", has("badge_number", 3))
    assert ids(client, "employees", custom_fields='{"badge_number": "3"}') == []
    for bad in ('{"a": 1, "b": 2}', '{"a": [1]}', '{"a": {}}', "not json", "[1]", "{}"):
        assert client.get("/hris/employees", custom_fields=bad).status == 400, bad


def test_group_types_and_name_contains(sb, client):
    for value in ("DEPARTMENT", "TEAM,COST_CENTER", "null", "null,DEPARTMENT"):
        wanted = {None if v == "null" else v for v in value.split(",")}
        got = ids(client, "groups", types=value)
        assert got == expect(sb, "groups", lambda r: r["type"] in wanted) and got
    assert ids(client, "groups", name_contains="fin") == \
        expect(sb, "groups", lambda r: r["name"] and "fin" in r["name"].lower())
    assert client.get("/hris/groups", types="SQUAD").status == 400
    assert client.get("/hris/teams", types="TEAM").status == 400  # deprecated alias: common filters only


def test_absence_filters(sb, client):
    absences = sb.visible("absences")
    day = sorted(a["start_date"] for a in absences if a["start_date"])[len(absences) // 2]
    assert ids(client, "absences", date_from=day) == \
        expect(sb, "absences", lambda r: (r["end_date"] or r["start_date"]) is not None
               and (r["end_date"] or r["start_date"]) >= day)
    assert ids(client, "absences", date_until=day) == \
        expect(sb, "absences", lambda r: r["start_date"] is not None and r["start_date"] <= day)
    # a time part is accepted and discarded
    assert ids(client, "absences", date_until=day + "T23:59:59.000Z") == ids(client, "absences", date_until=day)
    tid = absences[0]["type_id"]
    assert ids(client, "absences", type_ids=tid) == expect(sb, "absences", lambda r: r["type_id"] == tid)
    eid = absences[0]["employee_id"]
    assert ids(client, "absences", employee_id=eid, type_ids=tid) == \
        expect(sb, "absences", lambda r: r["employee_id"] == eid and r["type_id"] == tid)
    assert client.get("/hris/absences", date_from="27.11.2026").status == 400


def test_time_off_balance_employee_filter(sb, client):
    bal = sb.visible("time-off-balances")[4]
    assert ids(client, "time-off-balances", employee_id=bal["employee_id"]) == \
        expect(sb, "time-off-balances", lambda r: r["employee_id"] == bal["employee_id"])


def test_timesheet_filters(sb, client):
    sheets = sb.visible("timesheets")
    ts = sorted(s["started_at"] for s in sheets)[len(sheets) // 2]
    assert ids(client, "timesheets", started_before=ts) == \
        expect(sb, "timesheets", lambda r: r["started_at"] is not None and r["started_at"] < ts)
    assert ids(client, "timesheets", started_after=ts) == \
        expect(sb, "timesheets", lambda r: r["started_at"] is not None and r["started_at"] >= ts)
    ends = sorted(s["ended_at"] for s in sheets if s["ended_at"])
    te = ends[len(ends) // 3]
    assert ids(client, "timesheets", ended_before=te) == \
        expect(sb, "timesheets", lambda r: r["ended_at"] is not None and r["ended_at"] <= te)
    assert ids(client, "timesheets", ended_after=te) == \
        expect(sb, "timesheets", lambda r: r["ended_at"] is not None and r["ended_at"] >= te)
    eid = sheets[0]["employee_id"]
    assert ids(client, "timesheets", employee_id=eid) == expect(sb, "timesheets", lambda r: r["employee_id"] == eid)


@pytest.mark.parametrize("endpoint", ["legal-entities", "locations"])
def test_name_contains(sb, client, endpoint):
    needle = sb.visible(endpoint)[0]["name"][2:6].upper()
    got = ids(client, endpoint, name_contains=needle)
    assert got and got == expect(sb, endpoint, lambda r: r["name"] and needle.lower() in r["name"].lower())


def test_include_deleted(sb, client):
    emp = sb.visible("employees")[2]
    sb.soft_delete("employees", emp["id"])
    assert emp["id"] not in ids(client, "employees")
    assert emp["id"] not in [e["id"] for e in sb.visible("employees")]
    deleted = [r for r in client.list_all("employees", include_deleted="true") if r["id"] == emp["id"]]
    assert len(deleted) == 1 and deleted[0]["remote_deleted_at"] is not None
    assert deleted[0]["changed_at"] == deleted[0]["remote_deleted_at"]
    assert ids(client, "employees", include_deleted="false") == ids(client, "employees")


def test_vanish_leaves_no_trace(sb, client):
    emp = sb.visible("employees")[4]
    sb.vanish("employees", emp["id"])
    assert emp["id"] not in ids(client, "employees", include_deleted="true")
    assert sb.stats()["webhooks_pending"] == []


def test_deleted_children_leave_embedded_arrays(sb, client):
    emp = next(e for e in sb.visible("employees") if len(e["employments"]) >= 2)
    gone = emp["employments"][0]["id"]
    sb.soft_delete("employments", gone)
    again = client.list_all("employees", ids=emp["id"])[0]
    assert gone not in [x["id"] for x in again["employments"]]
    assert gone in ids(client, "employments", include_deleted="true")
    assert gone not in ids(client, "employments")
