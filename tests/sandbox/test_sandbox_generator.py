"""The deterministic data generator."""

import itertools
import re

import pytest

from kombo_sandbox import Sandbox
from sandbox_client import Client
from sandbox_data import WEIRD_EMPLOYEE_IDS, WEIRD_GROUP_ID, generate
from sandbox_store import OWN_KEYS, dumps

pytestmark = pytest.mark.timeout(60)


def serialised(**kw):
    return b"\n".join(ep.encode() + b" " + dumps(fields) + b" " + dumps(extra)
                      for ep, fields, extra in generate(**kw))


def test_same_seed_same_bytes():
    assert serialised(employees=150, seed=7) == serialised(employees=150, seed=7)
    assert serialised(employees=150, seed=7) != serialised(employees=150, seed=8)


def test_same_seed_same_api_pages():
    pages = []
    for _ in range(2):
        with Sandbox(employees=60, seed=11) as s:
            c = Client(s.url, s.api_key, s.integration_id)
            r1 = c.get("/hris/employees", page_size=25)
            r2 = c.get("/hris/employees", page_size=25, cursor=r1.json()["data"]["next"])
            pages.append((r1.body, r2.body, c.get("/hris/timesheets").body))
            c.close()
    assert pages[0] == pages[1]


def test_key_order_follows_the_schema():
    for ep, fields, _ in generate(employees=200, seed=1):
        keys = list(fields)
        assert keys == [k for k in OWN_KEYS[ep] if k in fields], (ep, keys)
        assert {"id", "changed_at", "remote_deleted_at"} <= set(keys)


def test_relations_are_consistent():
    with Sandbox(employees=200, seed=4) as s:
        emps = {e["id"]: e for e in s.visible("employees")}
        groups = {g["id"]: g for g in s.visible("groups")}
        types = {t["id"] for t in s.visible("absence-types")}
        for e in emps.values():
            assert 1 <= len(e["employments"]) <= 3
            assert e["manager_id"] is None or e["manager_id"] in emps
            assert all(g["id"] in groups for g in e["groups"])
        for g in groups.values():
            assert g["parent_id"] is None or g["parent_id"] in groups
            assert g["type"] in ("DEPARTMENT", "TEAM", "COST_CENTER", None)
        assert any(g["parent_id"] for g in groups.values())
        assert {g["type"] for g in groups.values()} == {"DEPARTMENT", "TEAM", "COST_CENTER", None}
        for ep in ("employments", "absences", "time-off-balances", "timesheets"):
            for r in s.visible(ep):
                assert r["employee_id"] in emps
        assert all(r["type_id"] in types for r in s.visible("absences"))
        assert all(len(set(b["type_id"] for b in e["time_off_balances"])) == len(e["time_off_balances"])
                   for e in emps.values())


def test_data_is_varied():
    recs = list(generate(employees=400, seed=1))
    emps = [f for ep, f, _ in recs if ep == "employees"]
    text = "".join(dumps(f).decode() for _, f, _ in recs)
    for ch in ("ö", "é", "ł", "李", '\\"', "\\\\"):
        assert ch in text, ch
    for key in ("work_email", "gender", "marital_status", "home_address"):
        assert any(key not in e for e in emps), "optional %s never absent" % key
        assert any(e.get(key) is None and key in e for e in emps), "%s never null" % key
    assert any(e["remote_data"] is not None for e in emps)
    assert any(e["integration_fields"] for e in emps)
    assert any(e["custom_fields"] is None for e in emps)
    statuses = {e.get("employment_status") for e in emps}
    assert {"ACTIVE", "INACTIVE", "LEAVE", "PENDING"} <= statuses
    assert len({f["id"] for _, f, _ in recs}) == len(recs)


def test_weird_ids_opt_in():
    assert not any(ep == "employees" and not re.fullmatch(r"[A-Za-z0-9]{24}", f["id"])
                   for ep, f, _ in generate(employees=20, seed=1))
    with Sandbox(employees=20, seed=1, weird_ids=True) as s:
        emp_ids = [e["id"] for e in s.visible("employees")]
        assert set(WEIRD_EMPLOYEE_IDS) <= set(emp_ids)
        assert WEIRD_GROUP_ID in [g["id"] for g in s.visible("groups")]
        assert any(e["employee_id"] == "weird/slash/id" for e in s.visible("employments"))
        c = Client(s.url, s.api_key, s.integration_id)
        got = c.list_all("employees", ids="..,weird/slash/id,Zoë李-id")
        assert sorted(e["id"] for e in got) == sorted(["..", "weird/slash/id", "Zoë李-id"])
        c.close()


def test_generation_is_lazy():
    first = list(itertools.islice(generate(employees=10 ** 6, seed=1), 50))
    assert len(first) == 50
