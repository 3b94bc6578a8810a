"""The `touched` index behind `updated_after` gives exactly what a full scan
gives: seeded random mutations (own changes, linked changes that touch other
records, soft deletes, vanishing, creations, re-use of vanished ids, clock
skew both ways), then many queries compared with a brute-force scan."""

import random
import time

import pytest

import sandbox_store
from kombo_sandbox import Sandbox
from sandbox_query import parse_list_query, predicate
from sandbox_store import NotFound

pytestmark = pytest.mark.timeout(120)

ENDPOINTS = sandbox_store.ENDPOINTS
# An own field each endpoint lets `update_record` change.
FIELD = {"employees": "job_title", "employments": "job_title", "groups": "name",
         "absences": "employee_note", "absence-types": "name", "time-off-balances": "balance",
         "timesheets": "comment", "legal-entities": "name", "locations": "name"}
CHILDREN = ("employments", "time-off-balances", "absences", "timesheets")


def iso_us(us):
    """Microseconds since the epoch -> updated_after value with 6 fraction digits."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + ".%06dZ" % (us % 1000000)


def brute_force(sb, query):
    table = sb.store.tables[query.table]
    match = predicate(query)
    return sorted((r for r in table.values() if match(r)), key=lambda r: r.seq)


def indexed(sb, query):
    sb._lists.clear()  # compute afresh through the index, not from the list cache
    return sb._filtered(query)[0]


def check_index_invariant(store):
    """Sorted keys, and exactly one current entry per record of the table."""
    for ep, table in store.tables.items():
        index = store._index[ep]
        assert index.keys == sorted(index.keys), ep
        assert len(index.keys) == len(index.recs)
        current = [r for k, r in zip(index.keys, index.recs)
                   if r.touched == k and table.get(r.id) is r]
        assert sorted(r.seq for r in current) == sorted(r.seq for r in table.values()), ep


class Mutator:
    """Random mutations through the Sandbox API (the paths the server uses)."""

    def __init__(self, sb, rng):
        self.sb, self.rng = sb, rng
        self.vanished = {ep: [] for ep in ENDPOINTS}
        self.done = 0

    def pick(self, ep):
        return self.rng.choice(list(self.sb.store.tables[ep]))

    def step(self):
        sb, rng = self.sb, self.rng
        if rng.random() < 0.08:  # skew the clock: stamps jump back or forth
            sb.set_faults(clock_skew=rng.choice((0, 0, -3600, -0.5, 0.25, 7200, -86400 * 400)))
        kind = rng.choice(("update", "update", "update", "linked", "linked", "manager", "move",
                           "soft_delete", "vanish", "create", "create", "recreate"))
        ep = rng.choice(ENDPOINTS)
        try:
            if kind == "update":
                sb.update_record(ep, self.pick(ep), **{FIELD[ep]: "u%d" % rng.randrange(10**6)})
            elif kind == "linked":  # changes that touch other records (§9)
                ep = rng.choice(("employments", "time-off-balances", "absence-types",
                                 "legal-entities", "locations", "employees"))
                sb.update_record(ep, self.pick(ep), **{FIELD[ep]: "l%d" % rng.randrange(10**6)})
            elif kind == "manager":
                sb.set_manager(self.pick("employees"), rng.choice([None, self.pick("employees")]))
            elif kind == "move":
                e = sb.store.get("employees", self.pick("employees"))
                old = rng.choice(e.group_ids) if e.group_ids and rng.random() < 0.7 else None
                sb.move_employee_group(e.id, old, self.pick("groups"))
            elif kind == "soft_delete":
                sb.soft_delete(ep, self.pick(ep))
            elif kind == "vanish":
                if len(sb.store.tables[ep]) > 3:
                    rid = self.pick(ep)
                    sb.vanish(ep, rid)
                    self.vanished[ep].append(rid)
            elif kind in ("create", "recreate"):
                fields = {}
                if kind == "recreate":  # a new record under a vanished record's id
                    if not self.vanished[ep]:
                        return
                    fields["id"] = self.vanished[ep].pop(rng.randrange(len(self.vanished[ep])))
                if ep in CHILDREN:
                    fields["employee_id"] = self.pick("employees")
                if ep == "employees" and rng.random() < 0.5:
                    fields["group_ids"] = [self.pick("groups")]
                sb.create_record(ep, **fields)
            self.done += 1
        except (NotFound, ValueError):
            pass  # e.g. no live absence type left for a new balance


def random_query(sb, rng, marks):
    """A parsed list query with updated_after near one of the `marks` (ms)."""
    endpoint = rng.choice(ENDPOINTS + ("teams",))
    table = sb.store.tables["groups" if endpoint == "teams" else endpoint]
    ms = rng.choice(marks)
    us = ms * 1000 + rng.choice((-1000, -1, 0, 0, 1, 500, 999, 1000))
    params = {"updated_after": iso_us(us), "page_size": "250"}
    if rng.random() < 0.5:
        params["include_deleted"] = "true"
    if rng.random() < 0.3 and table:
        params["ids"] = ",".join(rng.sample(list(table), min(len(table), rng.randint(1, 5))))
    if endpoint == "employees" and rng.random() < 0.3:
        params["employment_statuses"] = rng.choice(("ACTIVE", "ACTIVE,LEAVE", "INACTIVE"))
    if endpoint == "employees" and rng.random() < 0.2:
        params["group_ids"] = rng.choice(list(sb.store.tables["groups"]))
    if endpoint in ("absences", "time-off-balances", "timesheets") and rng.random() < 0.3:
        params["employee_id"] = rng.choice(list(sb.store.tables["employees"]))
    if endpoint == "groups" and rng.random() < 0.3:
        params["types"] = "TEAM,null"
    return parse_list_query(endpoint, params, sb._cursor_key)


def touched_marks(store):
    """Interesting updated_after values (ms): every touched value and beyond."""
    values = {r.touched for t in store.tables.values() for r in t.values()}
    return sorted(values | {min(values) - 1, max(values) + 1, 0})


@pytest.mark.parametrize("seed,slack", [(1, 1024), (2, 1024), (3, 0), (4, 0)])
def test_index_matches_full_scan(monkeypatch, seed, slack):
    # slack 0: the index is rebuilt whenever stale entries outnumber the records
    monkeypatch.setattr(sandbox_store, "INDEX_SLACK", slack)
    rng = random.Random(seed)
    sb = Sandbox(employees=30, seed=seed)
    mut = Mutator(sb, rng)
    compared = nonempty = 0
    for _ in range(300):
        mut.step()
        marks = touched_marks(sb.store)
        for _ in range(6):
            query = random_query(sb, rng, marks)
            got = indexed(sb, query)
            assert got == brute_force(sb, query), query.key
            compared += 1
            nonempty += bool(got)
    check_index_invariant(sb.store)
    # final sweep: every endpoint, every touched value, both deletion modes
    marks = touched_marks(sb.store)
    for endpoint in ENDPOINTS:
        table = sb.store.tables[endpoint]
        for ms in marks:
            assert sb.store.touched_after(endpoint, ms) == sorted(
                (r for r in table.values() if r.touched > ms), key=lambda r: r.seq)
            for extra in ({}, {"include_deleted": "true"}):
                query = parse_list_query(endpoint, dict(extra, updated_after=iso_us(ms * 1000)),
                                         sb._cursor_key)
                got = indexed(sb, query)
                assert got == brute_force(sb, query), query.key
                compared += 1
                nonempty += bool(got)
    assert mut.done > 250 and nonempty > compared // 4


def test_index_over_http_pages(sb, client):
    """End to end: paged delta listings equal the brute-force scan."""
    rng = random.Random(11)
    mut = Mutator(sb, rng)
    for _ in range(120):
        mut.step()
    sb.set_faults()
    marks = touched_marks(sb.store)
    for _ in range(40):
        endpoint = rng.choice(ENDPOINTS + ("teams",))
        params = {"updated_after": iso_us(rng.choice(marks) * 1000 + rng.choice((-1, 0, 1))),
                  "page_size": str(rng.choice((1, 3, 250)))}
        if rng.random() < 0.5:
            params["include_deleted"] = "true"
        want = [r.id for r in brute_force(sb, parse_list_query(endpoint, params, sb._cursor_key))]
        got = [r["id"] for r in client.list_all(endpoint, **params)]
        assert got == want
