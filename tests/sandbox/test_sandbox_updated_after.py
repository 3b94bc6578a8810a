"""`updated_after` semantics: one test per row of the kombo-api.md §9 matrix,
plus the comparison (strictly greater) and the accepted formats."""

import pytest

from sandbox_data import iso_ms

pytestmark = pytest.mark.timeout(30)

ALL = ("employees", "employments", "groups", "absences", "absence-types",
       "time-off-balances", "timesheets", "legal-entities", "locations")


@pytest.fixture
def since(sb):
    """Watermark taken before the test's mutation (nothing generated is newer)."""
    return iso_ms(sb.now_ms())


def delta(client, endpoint, since, **params):
    return {r["id"]: r for r in client.list_all(endpoint, updated_after=since, page_size=250, **params)}


def changed_endpoints(client, since):
    return {ep: sorted(delta(client, ep, since)) for ep in ALL if delta(client, ep, since)}


def leaves(sb):
    """Employees nobody reports to (their own changes re-return only them)."""
    emps = sb.visible("employees")
    managers = {e["manager_id"] for e in emps}
    return [e for e in emps if e["id"] not in managers]


def by_id(sb, endpoint, rid):
    return next(r for r in sb.visible(endpoint) if r["id"] == rid)


def test_nothing_changed(client, since):
    assert changed_endpoints(client, since) == {}


def test_employee_own_change_moves_changed_at(sb, client, since):
    e = leaves(sb)[3]
    sb.update_employee(e["id"], job_title="Chief Tester")
    got = delta(client, "employees", since)
    assert list(got) == [e["id"]]
    assert got[e["id"]]["changed_at"] > since and got[e["id"]]["job_title"] == "Chief Tester"


def test_employment_change_re_returns_employee_with_unchanged_changed_at(sb, client, since):
    e = sb.visible("employees")[5]
    emp_id = e["employments"][0]["id"]
    sb.update_employment(emp_id, job_title="Lead Payroll Specialist", pay_rate=70000)
    emps = delta(client, "employees", since)
    assert list(emps) == [e["id"]]
    assert emps[e["id"]]["changed_at"] == e["changed_at"]
    assert emps[e["id"]]["employments"][0]["job_title"] == "Lead Payroll Specialist"
    assert emps[e["id"]]["employments"][0]["changed_at"] > since
    assert list(delta(client, "employments", since)) == [emp_id]


def test_employment_added_re_returns_employee(sb, client, since):
    e = sb.visible("employees")[6]
    new_id = sb.add_employment(e["id"], job_title="Second Job")
    got = delta(client, "employees", since)
    assert list(got) == [e["id"]] and got[e["id"]]["changed_at"] == e["changed_at"]
    assert got[e["id"]]["employments"][-1]["id"] == new_id
    assert list(delta(client, "employments", since)) == [new_id]


def test_employment_removed_re_returns_employee(sb, client, since):
    e = sb.visible("employees")[7]
    gone = e["employments"][0]["id"]
    sb.soft_delete("employments", gone)
    got = delta(client, "employees", since)
    assert list(got) == [e["id"]] and got[e["id"]]["changed_at"] == e["changed_at"]
    assert gone not in [x["id"] for x in got[e["id"]]["employments"]]
    assert delta(client, "employments", since) == {}  # deleted: hidden without include_deleted
    assert list(delta(client, "employments", since, include_deleted="true")) == [gone]


def test_time_off_balance_change_re_returns_employee(sb, client, since):
    bal = sb.visible("time-off-balances")[0]
    owner = by_id(sb, "employees", bal["employee_id"])
    sb.update_balance(bal["id"], balance=99.5)
    got = delta(client, "employees", since)
    assert list(got) == [owner["id"]] and got[owner["id"]]["changed_at"] == owner["changed_at"]
    assert list(delta(client, "time-off-balances", since)) == [bal["id"]]


def test_time_off_balance_added_re_returns_employee(sb, client, since):
    e = sb.visible("employees")[8]
    bid = sb.create_record("time-off-balances", employee_id=e["id"])
    got = delta(client, "employees", since)
    assert list(got) == [e["id"]] and got[e["id"]]["time_off_balances"][-1]["id"] == bid


def test_manager_change_re_returns_reports(sb, client, since):
    emps = sb.visible("employees")
    manager_id = next(e["manager_id"] for e in emps if e["manager_id"])
    reports = [e["id"] for e in emps if e["manager_id"] == manager_id]
    sb.update_employee(manager_id, last_name="Neuname")
    got = delta(client, "employees", since)
    assert sorted(got) == sorted(reports + [manager_id])
    for rid in reports:
        assert got[rid]["changed_at"] == by_id(sb, "employees", rid)["changed_at"] < since
        assert got[rid]["manager"]["last_name"] == "Neuname"


def test_set_manager_is_an_own_change(sb, client, since):
    emps = sb.visible("employees")
    e = leaves(sb)[-1]
    sb.set_manager(e["id"], emps[0]["id"])
    got = delta(client, "employees", since)
    assert list(got) == [e["id"]]
    assert got[e["id"]]["changed_at"] > since
    assert got[e["id"]]["manager"]["id"] == emps[0]["id"]


def test_group_membership_change_re_returns_employee(sb, client, since):
    e = next(e for e in sb.visible("employees") if e["groups"])
    old = e["groups"][0]["id"]
    new = next(g["id"] for g in sb.visible("groups") if g["id"] not in [x["id"] for x in e["groups"]])
    sb.move_employee_group(e["id"], old, new)
    got = delta(client, "employees", since)
    assert list(got) == [e["id"]] and got[e["id"]]["changed_at"] == e["changed_at"]
    assert new in [g["id"] for g in got[e["id"]]["groups"]] and old not in [g["id"] for g in got[e["id"]]["groups"]]
    assert delta(client, "groups", since) == {}  # the group records themselves did not change


def test_group_rename_does_not_re_return_members(sb, client, since):
    e = next(e for e in sb.visible("employees") if e["groups"])
    gid = e["groups"][0]["id"]
    sb.rename_group(gid, "Umbenannt – Ωmega")
    assert delta(client, "employees", since) == {}
    assert list(delta(client, "groups", since)) == [gid]
    # ... but a full fetch shows the new name embedded (the drift a full fetch corrects)
    full = by_id(sb, "employees", e["id"])
    assert [g["name"] for g in full["groups"] if g["id"] == gid] == ["Umbenannt – Ωmega"]
    assert full["teams"] == full["groups"]


def test_legal_entity_change_re_returns_its_employees(sb, client, since):
    emps = sb.visible("employees")
    le = next(e["legal_entity_id"] for e in emps if e["legal_entity_id"])
    sb.update_record("legal-entities", le, name="Northwind Neu AB")
    got = delta(client, "employees", since)
    assert sorted(got) == sorted(e["id"] for e in emps if e["legal_entity_id"] == le)
    assert all(r["legal_entity"]["name"] == "Northwind Neu AB" for r in got.values())
    assert list(delta(client, "legal-entities", since)) == [le]


def test_work_location_change_re_returns_its_employees(sb, client, since):
    emps = sb.visible("employees")
    loc = next(e["work_location_id"] for e in emps if e["work_location_id"])
    sb.update_record("locations", loc, type="HYBRID")
    got = delta(client, "employees", since)
    assert sorted(got) == sorted(e["id"] for e in emps if e["work_location_id"] == loc)
    assert all(r["work_location"]["type"] == "HYBRID" and r["work_location"]["changed_at"] > since
               for r in got.values())


def test_absence_type_change_re_returns_absences_and_balances(sb, client, since):
    tid = sb.visible("absences")[0]["type_id"]
    sb.update_absence_type(tid, name="Jahresurlaub")
    changed = changed_endpoints(client, since)
    assert set(changed) == {"absences", "time-off-balances", "absence-types"}
    assert changed["absences"] == sorted(a["id"] for a in sb.visible("absences") if a["type_id"] == tid)
    assert changed["time-off-balances"] == sorted(
        b["id"] for b in sb.visible("time-off-balances") if b["type_id"] == tid)
    for a in delta(client, "absences", since).values():
        assert a["type"]["name"] == "Jahresurlaub" and a["changed_at"] < since


@pytest.mark.parametrize("endpoint,field,value", [
    ("absences", "employee_note", "changed"),
    ("timesheets", "comment", "changed"),
    ("employments", "pay_currency", "NOK"),
])
def test_other_records_only_match_themselves(sb, client, since, endpoint, field, value):
    rec = sb.visible(endpoint)[1]
    sb.update_record(endpoint, rec["id"], **{field: value})
    changed = changed_endpoints(client, since)
    expected = {endpoint: [rec["id"]]}
    if endpoint == "employments":
        expected["employees"] = [rec["employee_id"]]
    assert changed == expected


def test_soft_delete_seen_with_include_deleted(sb, client, since):
    g = sb.visible("groups")[0]
    sb.soft_delete("groups", g["id"])
    assert delta(client, "groups", since) == {}
    got = delta(client, "groups", since, include_deleted="true")
    assert list(got) == [g["id"]] and got[g["id"]]["remote_deleted_at"] > since


def test_comparison_is_strictly_greater(sb, client):
    e = leaves(sb)[0]
    sb.update_employee(e["id"], nationality="NO")
    stamp = by_id(sb, "employees", e["id"])["changed_at"]
    assert e["id"] not in delta(client, "employees", stamp)
    one_ms_before = iso_ms(int(_ms(stamp)) - 1)
    assert list(delta(client, "employees", one_ms_before)) == [e["id"]]
    # sub-millisecond precision: 0.5 ms before the change still matches
    assert list(delta(client, "employees", one_ms_before[:-1] + "5Z")) == [e["id"]]


def _ms(stamp):
    import datetime
    dt = datetime.datetime.fromisoformat(stamp)
    return dt.timestamp() * 1000


@pytest.mark.parametrize("value", [
    "2025-12-31", "2025-12-31T00:00:00", "2025-12-31T00:00:00Z", "2025-12-31T00:00:00.000Z",
    "2025-12-31T00:00:00.1Z", "2025-12-31T00:00:00.123456789", "2025-12-31Z",
])
def test_updated_after_formats(client, value):
    r = client.get("/hris/employees", updated_after=value)
    assert r.status == 200 and r.json()["data"]["results"] == []


def test_bare_date_and_missing_z_are_utc(sb, client):
    emps = sb.visible("employees")
    day = sorted(e["changed_at"] for e in emps)[len(emps) // 2][:10]
    a = delta(client, "employees", day)
    assert a == delta(client, "employees", day + "T00:00:00.000Z") == delta(client, "employees", day + "T00:00:00")
    assert 0 < len(a) < len(emps)


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "2024-01-01 10:00:00", "2024-01-01T10:00Z",
                                   "2024-01-01T10:00:00+01:00", "1700000000", "2024-02-30"])
def test_updated_after_invalid(client, value):
    r = client.get("/hris/employees", updated_after=value)
    assert r.status == 400 and r.error_code == "PLATFORM.INPUT_INVALID"


def test_clock_skew_stamps_changes_in_the_past(sb, client, since):
    sb.set_faults(clock_skew=-3600)
    e = sb.visible("employees")[0]
    sb.update_employee(e["id"], job_title="Skewed")
    assert delta(client, "employees", since) == {}  # missed by a delta without overlap
    assert by_id(sb, "employees", e["id"])["changed_at"] < since
    sb.set_faults()
