"""docs/recipes.md and the scripts in examples/, run against a mount of the sandbox.

Every `sh` block of docs/recipes.md is run (bash, `set -eu -o pipefail`) and its output is
compared with what the sandbox's own data says it must be, computed here in Python.
The change-log consumer and the CSV export have their own tests below: order, restarts,
failures, retention gaps, quoting.
"""
import collections
import csv
import datetime
import io
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import ROOT, escape

pytestmark = pytest.mark.timeout(120)

DOC = os.path.join(ROOT, "docs", "recipes.md")
CONSUMER = os.path.join(ROOT, "examples", "changes-consumer.sh")
EXPORT = os.path.join(ROOT, "examples", "export-csv.sh")
ENDPOINTS = ("employees", "employments", "groups", "absences", "absence-types",
             "time-off-balances", "timesheets", "legal-entities", "locations")


# --- the document ------------------------------------------------------------------

def sections():
    """{'## heading': [sh blocks]} of docs/recipes.md, in order."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    out = {}
    for m in re.finditer(r"^## (.*?)\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        out[m.group(1).strip()] = re.findall(r"```sh\n(.*?)```", m.group(2), re.S)
    return out


def block(heading):
    blocks = sections()[heading]
    assert len(blocks) == 1, f"{heading}: one sh block expected"
    return blocks[0]


def run_block(heading, world, **env):
    """Runs the section's sh block on the world's mount; returns the CompletedProcess."""
    full = dict(os.environ, MNT=world.fs.mnt, TZ="UTC", LC_ALL="C.UTF-8")
    full.pop("SINCE", None)
    full.update(env)
    r = subprocess.run(["bash", "-c", "set -eu -o pipefail\n" + block(heading)], cwd=ROOT,
                       env=full, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{heading} failed ({r.returncode}):\n{r.stderr}"
    return r


TESTED = {
    "Headcount by department": "test_headcount_by_department",
    "Find an employee by work email": "test_find_by_email",
    "Look an employee up by work email: `by-email/`": "test_by_email_link",
    "Every employee as one file: `exports/`": "test_exports_block",
    "Who reports to an employee": "test_direct_reports",
    "The manager chain of an employee": "test_manager_chain",
    "Active employees starting this month": "test_active_starting_this_month",
    "Who changed this week": "test_who_changed_this_week",
    "Absences next week": "test_absences_next_week",
    "Time-off balances of one employee": "test_time_off_balances",
    "Everything that mentions one employee": "test_grep_everything_about_one_employee",
    "Process the change log: `examples/changes-consumer.sh`": "test_doc_consumer",
    "Export employees as CSV: `examples/export-csv.sh`": "test_doc_export",
}


def test_every_block_is_run_and_checked():
    with_blocks = {h for h, b in sections().items() if b}
    assert with_blocks == set(TESTED), "a section with an sh block has no test here"
    for heading in with_blocks:
        block(heading)  # exactly one block each
    assert all(name in globals() for name in TESTED.values())


def test_a_failing_block_fails():
    """`set -eu -o pipefail` makes a failing step (also inside a pipe) fail the block."""
    for script in ("false | cat", "jq . /nonexistent | cat", "echo $UNSET_VARIABLE_X"):
        r = subprocess.run(["bash", "-c", "set -eu -o pipefail\n" + script + "\necho reached"],
                           capture_output=True, text=True)
        assert r.returncode != 0 and "reached" not in r.stdout


# --- helpers mirroring jq ----------------------------------------------------------

def jq_str(v):
    """A scalar as jq 1.6 @tsv renders it."""
    if v is None:
        return ""
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return repr(v)
    return (v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def tsv(*values):
    return "\t".join(jq_str(v) for v in values)


def lines(out):
    return out.splitlines()


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso_ms(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


# --- the world: a mount, then a set of changes that every recipe can see -------------

class World:
    pass


@pytest.fixture
def world(sandbox, kombofs):
    """A mount of the sandbox, then changes made at a known moment (`since`) and synced:
    start dates in this month, names that need CSV quoting, a nested change, a deletion,
    a new hire, a balance update, absences around next week."""
    w = World()
    w.sb = sandbox
    w.fs = kombofs(sandbox)
    w.before = {e["id"]: e for e in sandbox.visible("employees")}
    emps = list(w.before.values())
    time.sleep(0.05)
    w.since = iso_ms(utc_now())
    time.sleep(0.05)

    today = utc_now().date()
    w.month = today.strftime("%Y-%m")
    last_month = today.replace(day=1) - datetime.timedelta(days=1)
    sb = sandbox
    sb.update_employee(emps[3]["id"], start_date=f"{w.month}-01T00:00:00.000Z",
                       employment_status="ACTIVE")
    sb.update_employee(emps[4]["id"], start_date=f"{w.month}-02T00:00:00.000Z",
                       employment_status="PENDING")
    sb.update_employee(emps[5]["id"], start_date=f"{last_month}T00:00:00.000Z",
                       employment_status="ACTIVE")
    sb.update_employee(emps[6]["id"], first_name='Zoë "Z."', last_name="O'Brien, Jr.",
                       display_full_name='Zoë "Z." O\'Brien, Jr.',
                       job_title='R&D, "Labs"\nsecond line\tand a tab \\ backslash')
    w.nested_emp = emps[7]["id"]
    sb.update_employment(emps[7]["employments"][0]["id"], job_title="Lead, Payroll")
    w.deleted = emps[8]["id"]
    sb.soft_delete("employees", w.deleted)
    groups = sb.visible("groups")
    dept = next(g for g in groups if g["type"] == "DEPARTMENT")
    team = next(g for g in groups if g["type"] == "TEAM")
    w.dept = dept["name"]
    # A second department for one employee (counted in both).
    w.two_depts = emps[12]["id"]
    mine = {g["id"] for g in emps[12]["groups"]}
    other = next(g for g in groups if g["type"] == "DEPARTMENT" and g["id"] not in mine)
    sb.move_employee_group(w.two_depts, None, other["id"])
    # The new hire's first group is a team: the CSV's department is the DEPARTMENT one.
    w.created = sb.create_employee(first_name="李", last_name="Łukasz-Østergård",
                                   display_full_name="李 Łukasz-Østergård 🚀",
                                   work_email="Li.Lukasz@Northwind.Example",
                                   start_date=f"{w.month}-03T00:00:00.000Z",
                                   employment_status="ACTIVE",
                                   group_ids=[team["id"], dept["id"]])
    w.balance_emp = next(e["id"] for e in emps[9:] if e["time_off_balances"])
    w.balance = w.before[w.balance_emp]["time_off_balances"][0]["id"]
    sb.update_balance(w.balance, balance=12.5, used=None)
    types = sb.visible("absence-types")
    w.next_monday = today + datetime.timedelta(days=7 - today.weekday())
    d = lambda n: (w.next_monday + datetime.timedelta(days=n)).isoformat()  # noqa: E731
    for i, (start, end, status) in enumerate([
            (d(1), d(2), "APPROVED"),      # inside
            (d(-3), d(0), "REQUESTED"),    # from this week into Monday
            (d(2), d(3), "DECLINED"),      # declined: left out
            (d(-2), d(-1), "APPROVED"),    # this week: left out
            (d(7), d(8), "APPROVED"),      # the week after: left out
            (d(6), None, "APPROVED"),      # Sunday, no end date
            (d(4), d(4), "APPROVED")]):    # of the deleted employee: shown by id
        emp = w.deleted if i == 6 else emps[10 + i]["id"]
        sb.create_record("absences", employee_id=emp, start_date=start, end_date=end,
                         status=status, type_id=types[i % len(types)]["id"])
    assert w.fs.control("sync") == 0
    w.after = {e["id"]: e for e in sb.visible("employees")}
    # The mount shows what the sandbox shows (the recipes' inputs are right).
    for rid, rec in w.after.items():
        assert w.fs.read_json("employees", escape(rid) + ".json") == rec
    assert w.deleted not in w.after and w.created in w.after
    return w


# --- the recipes -------------------------------------------------------------------

def test_headcount_by_department(world):
    counts = collections.Counter()
    for e in world.after.values():
        deps = {g["name"] for g in e.get("groups") or [] if g["type"] == "DEPARTMENT"}
        counts.update(deps or {"(no department)"})
    want = [tsv(n, name) for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    got = lines(run_block("Headcount by department", world).stdout)
    assert got == want
    assert len(got) >= 3
    two = [g for g in world.after[world.two_depts]["groups"] if g["type"] == "DEPARTMENT"]
    assert len(two) == 2 and two[0]["name"] != two[1]["name"]


def test_find_by_email(world):
    target = next(e for e in world.after.values() if e.get("work_email"))
    email = target["work_email"].swapcase()
    assert email != target["work_email"]
    want = sorted(tsv(e["id"], e["display_full_name"], e["job_title"])
                  for e in world.after.values()
                  if (e.get("work_email") or "").lower() == email.lower())
    got = lines(run_block("Find an employee by work email", world, EMAIL=email).stdout)
    assert sorted(got) == want and len(want) >= 1
    # The new hire's mixed-case address, searched in lower case.
    got = run_block("Find an employee by work email", world,
                    EMAIL="li.lukasz@northwind.example").stdout
    assert lines(got) == [tsv(world.created, "李 Łukasz-Østergård 🚀",
                              world.after[world.created]["job_title"])]
    assert run_block("Find an employee by work email", world,
                     EMAIL="nobody@nowhere.example").stdout == ""


def test_by_email_link(world):
    target = next(e for e in world.after.values() if e.get("work_email"))
    sharing = sorted((e["id"] for e in world.after.values()
                      if (e.get("work_email") or "").lower() == target["work_email"].lower()),
                     key=lambda i: i.encode())
    owner = world.after[sharing[0]]
    got = lines(run_block("Look an employee up by work email: `by-email/`", world,
                          EMAIL=target["work_email"].swapcase()).stdout)
    assert got == [tsv(owner["id"], owner["display_full_name"], owner["job_title"])]
    got = run_block("Look an employee up by work email: `by-email/`", world,
                    EMAIL="li.lukasz@northwind.example").stdout
    assert lines(got) == [tsv(world.created, "李 Łukasz-Østergård 🚀",
                              world.after[world.created]["job_title"])]


def test_exports_block(world, tmp_path):
    out = str(tmp_path / "all.csv")
    got = lines(run_block("Every employee as one file: `exports/`", world, OUT=out).stdout)
    assert got == [str(len(world.after))]
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == len(world.after) + 1 and rows[0][0] == "id"
    assert {r[0] for r in rows[1:]} == set(world.after)


def test_direct_reports(world):
    reports = collections.defaultdict(list)
    for e in world.after.values():
        reports[e.get("manager_id")].append(e)
    boss = max((m for m in reports if m in world.after), key=lambda m: len(reports[m]))
    want = [tsv(e["id"], e["display_full_name"], e["job_title"])
            for e in sorted(reports[boss], key=lambda e: e["display_full_name"])]
    got = lines(run_block("Who reports to an employee", world, ID=boss).stdout)
    assert got == want and len(want) >= 2
    leaf = next(e for e in world.after if not reports[e])
    assert run_block("Who reports to an employee", world, ID=leaf).stdout == ""


def chain(after, eid):
    out, seen = [], {eid}
    m = after[eid].get("manager_id")
    while m and m in after and m not in seen:
        seen.add(m)
        out.append(after[m])
        m = after[m].get("manager_id")
    return out, m


def test_manager_chain(world):
    after = world.after
    deepest = max((e for e in after if chain(after, e)[1] is None),
                  key=lambda e: len(chain(after, e)[0]))
    managers, end = chain(after, deepest)
    assert len(managers) >= 2 and end is None
    row = lambda e: tsv(e["id"], e["display_full_name"], e["job_title"])  # noqa: E731
    r = run_block("The manager chain of an employee", world, ID=deepest)
    assert lines(r.stdout) == [row(e) for e in managers]
    assert r.stderr == ""
    top = managers[-1]["id"]
    assert run_block("The manager chain of an employee", world, ID=top).stdout == ""

    # A cycle: the top now reports to the deepest employee. The chain stops at the start.
    world.sb.set_manager(top, deepest)
    assert world.fs.control("sync employees") == 0
    r = run_block("The manager chain of an employee", world, ID=deepest)
    assert lines(r.stdout) == [row(e) for e in managers]
    assert r.stderr.strip() == f"cycle at {deepest}"

    # A manager who is gone from the mirror: the chain ends before them.
    world.sb.soft_delete("employees", managers[0]["id"])
    assert world.fs.control("sync employees") == 0
    r = run_block("The manager chain of an employee", world, ID=deepest)
    assert r.stdout == "" and "Could not open" in r.stderr


def test_active_starting_this_month(world):
    want = sorted(tsv(e["start_date"][:10], e["id"], e["display_full_name"])
                  for e in world.after.values()
                  if e["employment_status"] == "ACTIVE"
                  and (e.get("start_date") or "").startswith(world.month))
    got = lines(run_block("Active employees starting this month", world).stdout)
    assert got == want
    # The two ACTIVE ones set this month are there; PENDING and last month's are not.
    ids = {ln.split("\t")[1] for ln in got}
    emps = list(world.before)
    assert {emps[3], world.created} <= ids and not {emps[4], emps[5]} & ids


EMBEDDED = ("manager", "legal_entity", "work_location")
EMBEDDED_LISTS = ("employments", "time_off_balances")


def expected_nested(b, a):
    """The `nested` pointers of an employee that changed from b to a, for the embedded
    objects other than groups and teams."""
    out = ["/" + k for k in EMBEDDED if b.get(k) != a.get(k)]
    for k in EMBEDDED_LISTS:
        old = {x["id"]: x for x in b.get(k) or []}
        out += [f"/{k}/{i}" for i, x in enumerate(a.get(k) or []) if old.get(x["id"]) != x]
    return sorted(out)


def changed_entries(out):
    rows = [ln.split("\t") for ln in lines(out)]
    assert all(len(r) == 5 for r in rows), rows
    return [(int(seq), at, op, rid, nested.split(" ") if nested else [])
            for seq, at, op, rid, nested in rows]


def test_who_changed_this_week(world):
    before, after = world.before, world.after
    want = {}
    for rid in set(before) | set(after):
        if rid not in before:
            want[rid] = "created"
        elif rid not in after:
            want[rid] = "deleted"
        elif before[rid] != after[rid]:
            want[rid] = "updated"

    rows = changed_entries(run_block("Who changed this week", world, SINCE=world.since).stdout)
    assert {rid: op for _, _, op, rid, _ in rows} == want
    assert len(rows) == len(want)  # one entry each
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert all(at >= world.since for _, at, _, _, _ in rows)
    nested = {rid: n for _, _, _, rid, n in rows}
    assert nested[world.created] == [] and nested[world.deleted] == []
    for rid, op in want.items():
        if op == "updated":
            others = [p for p in nested[rid] if not p.startswith(("/groups", "/teams"))]
            assert sorted(others) == expected_nested(before[rid], after[rid]), rid
            if before[rid]["groups"] != after[rid]["groups"]:
                assert any(p.startswith("/groups") for p in nested[rid]), rid
    emps = list(before)
    assert nested[emps[6]] == [] or nested[emps[6]] == ["/manager"]  # own fields only
    assert "/employments/0" in nested[world.nested_emp]
    index = [b["id"] for b in after[world.balance_emp]["time_off_balances"]].index(world.balance)
    assert f"/time_off_balances/{index}" in nested[world.balance_emp]
    assert any(n == ["/manager"] for n in nested.values())  # reports of a renamed manager

    # The default window (7 days) also holds the first sync: every employee created.
    rows = changed_entries(run_block("Who changed this week", world).stdout)
    created = {rid for _, _, op, rid, _ in rows if op == "created"}
    assert created == set(before) | {world.created}
    assert len(rows) == len(before) + len(want)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)

    # A window that starts after the last change is empty.
    time.sleep(0.01)
    assert run_block("Who changed this week", world, SINCE=iso_ms(utc_now())).stdout == ""


def test_absences_next_week(world):
    frm = world.next_monday.isoformat()
    to = (world.next_monday + datetime.timedelta(days=6)).isoformat()
    raw = []
    for a in world.sb.visible("absences"):
        start = a.get("start_date")
        end = a.get("end_date") or start
        if (start is not None and start[:10] <= to and end[:10] >= frm
                and a.get("status") not in ("DECLINED", "CANCELLED")):
            raw.append(tsv(start[:10], end[:10], a["employee_id"],
                           (a.get("type") or {}).get("name"), a.get("status")))
    want = []
    for ln in sorted(raw):
        start, end, emp, rest = ln.split("\t", 3)
        name = world.after[emp]["display_full_name"] if emp in world.after else emp
        want.append("\t".join([start, end, name, rest]))
    got = lines(run_block("Absences next week", world).stdout)
    assert got == want
    assert len(got) == 4  # the four made to fall into next week
    assert any(ln.split("\t")[2] == world.deleted for ln in got)


def test_time_off_balances(world):
    eid = world.balance_emp
    bals = [b for b in world.sb.visible("time-off-balances") if b["employee_id"] == eid]
    want = [tsv(b["type"]["name"], b.get("balance"), b.get("balance_unit"), b.get("used"),
                b.get("used_unit"))
            for b in sorted(bals, key=lambda b: b["type"]["name"])]
    got = lines(run_block("Time-off balances of one employee", world, ID=eid).stdout)
    assert got == want and len(got) >= 1
    assert any(ln.split("\t")[1] == "12.5" and ln.split("\t")[3] == "" for ln in got)


def test_grep_everything_about_one_employee(world):
    boss = collections.Counter(e.get("manager_id") for e in world.after.values())
    eid = max((m for m in boss if m in world.after), key=lambda m: boss[m])
    want = []
    for ep in ENDPOINTS:
        for rec in world.sb.visible(ep):
            if eid in json.dumps(rec, ensure_ascii=False):
                want.append(os.path.join(world.fs.mnt, ep, escape(rec["id"]) + ".json"))
    got = lines(run_block("Everything that mentions one employee", world, ID=eid).stdout)
    assert got == sorted(want)
    assert {p.split("/")[-2] for p in got} >= {"employees", "employments"}


def test_doc_consumer(world, tmp_path):
    state = str(tmp_path / "seq")
    out = run_block("Process the change log: `examples/changes-consumer.sh`", world,
                    STATE=state).stdout
    last = world.fs.status()["changes"]["last_seq"]
    rows = [ln.split("\t") for ln in lines(out)]
    assert [int(r[0]) for r in rows] == list(range(1, last + 1))
    for seq, at, model, op, rid in rows:
        entry = world.fs.read_json("changes", "%012d.json" % int(seq))
        assert [at, model, op, rid] == [entry["at"], entry["model"], entry["op"], entry["id"]]
    # Every record the sandbox ever showed was logged as created, once.
    created = [(model, rid) for _, _, model, op, rid in rows if op == "created"]
    want = {(ep, r["id"]) for ep in ENDPOINTS for r in world.sb.visible(ep)}
    want.add(("employees", world.deleted))
    assert len(created) == len(set(created)) and set(created) == want
    assert open(state).read() == f"{last}\n"
    # Run again: nothing new.
    again = run_block("Process the change log: `examples/changes-consumer.sh`", world,
                      STATE=state)
    assert again.stdout == "" and again.stderr == ""


def expected_csv_row(e):
    dept = next((g["name"] for g in e.get("groups") or [] if g["type"] == "DEPARTMENT"), None)
    values = [e["id"], e.get("employee_number"), e.get("first_name"), e.get("last_name"),
              e.get("display_full_name"), e.get("work_email"), e.get("job_title"),
              e.get("employment_status"), (e.get("start_date") or "")[:10], dept,
              e.get("manager_id")]
    return ["" if v is None else str(v) for v in values]


CSV_HEADER = ["id", "employee_number", "first_name", "last_name", "display_full_name",
              "work_email", "job_title", "employment_status", "start_date", "department",
              "manager_id"]


def check_csv(text, after):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == CSV_HEADER
    got = {r[0]: r for r in rows[1:]}
    assert len(got) == len(rows) - 1 == len(after)
    for rid, e in after.items():
        assert got[rid] == expected_csv_row(e), rid
    return rows


def test_doc_export(world, tmp_path):
    out = str(tmp_path / "employees.csv")
    run_block("Export employees as CSV: `examples/export-csv.sh`", world, OUT=out)
    with open(out, "rb") as f:
        data = f.read()
    rows = check_csv(data.decode("utf-8"), world.after)
    assert os.stat(out).st_mode & 0o777 == 0o600
    # The data really had what CSV must quote, and it came back intact.
    flat = [c for r in rows for c in r]
    assert any('"' in c and "," in c and "\n" in c for c in flat)
    assert any("李" in c for c in flat) and any("🚀" in c for c in flat)
    assert b'"Zo\xc3\xab ""Z."" O\'Brien, Jr."' in data
    new = next(r for r in rows if r[0] == world.created)
    assert world.after[world.created]["groups"][0]["type"] == "TEAM"
    assert new[9] == world.dept


# --- examples/export-csv.sh --------------------------------------------------------

def test_export_to_stdout_with_bom_and_replacing_a_file(sandbox, kombofs, tmp_path):
    fs = kombofs(sandbox)
    after = {e["id"]: e for e in sandbox.visible("employees")}
    r = subprocess.run([EXPORT, "--bom", fs.mnt], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout.startswith(b"\xef\xbb\xbf\"id\",")
    check_csv(r.stdout.decode("utf-8-sig"), after)
    r = subprocess.run([EXPORT, fs.mnt], capture_output=True, timeout=60)
    assert not r.stdout.startswith(b"\xef\xbb\xbf")
    check_csv(r.stdout.decode("utf-8"), after)

    out = tmp_path / "hr.csv"
    out.write_text("old\n")
    sandbox.update_employee(next(iter(after)), last_name="Nuñez, \"Nico\"")
    assert fs.control("sync employees") == 0
    assert subprocess.run([EXPORT, fs.mnt, str(out)], timeout=60).returncode == 0
    check_csv(out.read_text(encoding="utf-8"), {e["id"]: e for e in sandbox.visible("employees")})
    assert [n for n in os.listdir(tmp_path) if n.startswith(".hr.csv")] == []


def test_export_failures_leave_no_file(tmp_path):
    out = tmp_path / "x.csv"
    r = subprocess.run([EXPORT, str(tmp_path / "nothing"), str(out)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "not a kombofs mount" in r.stderr
    assert os.listdir(tmp_path) == []
    for args in ([], ["a", "b", "c"], ["--frobnicate", "a"]):
        assert subprocess.run([EXPORT, *args], capture_output=True, timeout=30).returncode == 2


# --- examples/changes-consumer.sh --------------------------------------------------

COMMAND = """#!/bin/sh
# Logs the entry's path; fails (before logging) on the entry named $FAIL_AT.
[ "${1##*/}" = "${FAIL_AT:-}" ] && exit 3
[ -n "${SLOW:-}" ] && sleep "$SLOW"
echo "$1" >> "$LOG"
"""


class Consumer:
    def __init__(self, fs, tmp_path):
        self.fs = fs
        self.state = str(tmp_path / "consumer.seq")
        self.log = str(tmp_path / "consumer.log")
        self.cmd = str(tmp_path / "cmd.sh")
        with open(self.cmd, "w") as f:
            f.write(COMMAND)
        os.chmod(self.cmd, 0o755)

    def env(self, **kw):
        env = dict(os.environ, LOG=self.log)
        env.update(kw)
        return env

    def once(self, *args, command=True, **env):
        argv = [CONSUMER, "--once", *args, self.fs.mnt, self.state]
        if command:
            argv.append(self.cmd)
        return subprocess.run(argv, env=self.env(**env), capture_output=True, text=True,
                              timeout=90)

    def start(self, *args, command=True, stdout=subprocess.DEVNULL, **env):
        argv = [CONSUMER, *args, self.fs.mnt, self.state]
        if command:
            argv.append(self.cmd)
        return subprocess.Popen(argv, env=self.env(**env), stdout=stdout,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def logged(self):
        """Sequence numbers the COMMAND has processed, in order."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [int(os.path.basename(ln.strip())[:12]) for ln in f if ln.strip()]

    def saved(self):
        with open(self.state) as f:
            return int(f.read())

    def available(self):
        return [int(n[:12]) for n in sorted(os.listdir(self.fs.path("changes")))]


def wait_for(cond, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def change_something(sandbox, fs):
    """Two employee changes and a nested one, synced; returns the ids of the employees
    whose content changed (also the reports of the renamed one)."""
    emps = sandbox.visible("employees")
    sandbox.update_employee(emps[0]["id"], job_title="Chief Example Officer")
    sandbox.update_employment(emps[1]["employments"][0]["id"], job_title="Lead, Examples")
    sandbox.update_employee(emps[2]["id"], last_name="Ñandú")
    assert fs.control("sync") == 0
    after = {e["id"]: e for e in sandbox.visible("employees")}
    changed = {e["id"] for e in emps if after[e["id"]] != e}
    assert {emps[0]["id"], emps[1]["id"], emps[2]["id"]} <= changed
    return changed


def test_consumer_runs_command_in_order_and_resumes_after_a_failure(sandbox, kombofs,
                                                                    tmp_path):
    fs = kombofs(sandbox)
    c = Consumer(fs, tmp_path)
    n = fs.status()["changes"]["last_seq"]
    assert c.available() == list(range(1, n + 1)) and n > 100

    r = c.once(FAIL_AT="%012d.json" % 57)
    assert r.returncode == 1
    assert "failed on" in r.stderr and "state stays at 56" in r.stderr
    assert c.logged() == list(range(1, 57)) and c.saved() == 56

    r = c.once()
    assert r.returncode == 0 and r.stderr == ""
    assert c.logged() == list(range(1, n + 1)) and c.saved() == n
    assert c.once().returncode == 0 and c.logged() == list(range(1, n + 1))

    # New entries after a sync: exactly those, in order.
    ids = change_something(sandbox, fs)
    m = fs.status()["changes"]["last_seq"]
    assert m > n
    assert c.once().returncode == 0
    assert c.logged() == list(range(1, m + 1)) and c.saved() == m
    new = [fs.read_json("changes", "%012d.json" % s) for s in range(n + 1, m + 1)]
    assert {e["id"] for e in new if e["model"] == "employees"} == ids
    assert not os.path.exists(c.state + ".tmp")
    assert [f for f in os.listdir(tmp_path) if ".tmp." in f] == []


def test_consumer_sigterm_lets_the_command_finish(sandbox, kombofs, tmp_path):
    fs = kombofs(sandbox)
    c = Consumer(fs, tmp_path)
    n = fs.status()["changes"]["last_seq"]
    p = c.start("--interval=0.2", SLOW="0.02")
    wait_for(lambda: len(c.logged()) >= 20, what="20 entries")
    os.kill(p.pid, signal.SIGTERM)  # the script only, as `kill PID` does
    assert p.wait(timeout=30) == 0, p.stderr.read()
    done = c.logged()
    assert done == list(range(1, len(done) + 1)) and len(done) < n
    assert c.saved() == len(done)  # the entry that was running finished and was saved

    assert c.once().returncode == 0
    assert c.logged() == list(range(1, n + 1))


def test_consumer_kill_9_repeats_at_most_the_running_entry(sandbox, kombofs, tmp_path):
    fs = kombofs(sandbox)
    c = Consumer(fs, tmp_path)
    n = fs.status()["changes"]["last_seq"]
    p = c.start("--interval=0.2", SLOW="0.02")
    wait_for(lambda: len(c.logged()) >= 20, what="20 entries")
    os.killpg(p.pid, signal.SIGKILL)  # the script and its COMMAND
    p.wait(timeout=30)
    saved = c.saved()
    assert c.once().returncode == 0
    got = c.logged()
    assert sorted(set(got)) == list(range(1, n + 1))  # nothing skipped
    dups = [s for s, k in collections.Counter(got).items() if k > 1]
    assert dups in ([], [saved + 1])
    assert c.saved() == n


def test_consumer_polls_and_prints_new_entries(sandbox, kombofs, tmp_path):
    fs = kombofs(sandbox)
    c = Consumer(fs, tmp_path)
    n = fs.status()["changes"]["last_seq"]
    out = tmp_path / "printed"
    with open(out, "w") as f:
        p = c.start("--interval", "0.2", command=False, stdout=f)
    try:
        wait_for(lambda: len(out.read_text().splitlines()) == n, what="the first entries")
        ids = change_something(sandbox, fs)
        m = fs.status()["changes"]["last_seq"]
        wait_for(lambda: len(out.read_text().splitlines()) == m, what="the new entries")
        time.sleep(0.5)  # a few more polls print nothing
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    assert p.stderr.read() == ""
    rows = [ln.split("\t") for ln in out.read_text().splitlines()]
    assert [int(r[0]) for r in rows] == list(range(1, m + 1))
    for seq, at, model, op, rid in rows:
        entry = fs.read_json("changes", "%012d.json" % int(seq))
        assert [at, model, op, rid] == [entry["at"], entry["model"], entry["op"], entry["id"]]
    assert {r[4] for r in rows[n:] if r[2] == "employees"} == ids
    assert c.saved() == m


def test_consumer_reports_entries_removed_by_retention(sandbox, kombofs, tmp_path):
    fs = kombofs(sandbox, "--changes-retention=2")
    c = Consumer(fs, tmp_path)
    n = fs.status()["changes"]["last_seq"]
    r = c.once(FAIL_AT="%012d.json" % 11)
    assert r.returncode == 1 and c.saved() == 10

    time.sleep(2.5)
    change_something(sandbox, fs)  # this sync prunes the first sync's entries
    first = fs.status()["changes"]["first_seq"]
    m = fs.status()["changes"]["last_seq"]
    assert first > n and c.available() == list(range(first, m + 1))

    r = c.once()
    assert r.returncode == 0
    assert f"entries 11..{first - 1} are gone" in r.stderr
    assert c.logged() == list(range(1, 11)) + list(range(first, m + 1))
    assert c.saved() == m

    # The printing mode reports the same way and goes on.
    os.unlink(c.state)
    with open(c.state, "w") as f:
        f.write("5\n")
    r = c.once(command=False)
    assert r.returncode == 0 and f"entries 6..{first - 1} are gone" in r.stderr
    assert [int(ln.split("\t")[0]) for ln in lines(r.stdout)] == list(range(first, m + 1))


def test_consumer_usage_and_state_errors(sandbox, kombofs, tmp_path):
    fs = kombofs(sandbox)
    c = Consumer(fs, tmp_path)
    run = lambda *a: subprocess.run([CONSUMER, *a], capture_output=True, text=True,  # noqa
                                    timeout=30)
    assert run().returncode == 2
    assert run("--once", fs.mnt).returncode == 2
    assert run("--interval=0", fs.mnt, c.state).returncode == 2
    assert run("--interval=soon", fs.mnt, c.state).returncode == 2
    assert run("--bogus", fs.mnt, c.state).returncode == 2
    with open(c.state, "w") as f:
        f.write("not a number\n")
    r = c.once()
    assert r.returncode == 2 and "sequence number" in r.stderr
    assert not os.path.exists(c.log)

    # One consumer per state file.
    os.unlink(c.state)
    p = c.start("--interval=5", SLOW="0.01")
    last = fs.status()["changes"]["last_seq"]
    try:
        wait_for(lambda: os.path.exists(c.state), what="the first consumer")
        r = c.once()
        assert r.returncode == 2 and "another consumer" in r.stderr
        wait_for(lambda: len(c.logged()) == last, what="the first consumer's work")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    assert c.logged() == list(range(1, last + 1))

    # A mount that is not there: --once fails, and says so.
    r = subprocess.run([CONSUMER, "--once", str(tmp_path / "nothing"), c.state],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot list" in r.stderr


# --- examples/kombofs.env as shipped (issue 16) ------------------------------------

def systemd_env_file(path):
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (no quotes used here)."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";")):
                k, v = line.split("=", 1)
                env[k] = v
    return env


def test_shipped_env_file_mounts(sandbox, tmp_path):
    """examples/kombofs.env, unchanged, run the way kombofs.service runs it (-f, its
    $KOMBOFS_OPTIONS split into words): in a private mount namespace where /etc is an overlay
    that has the group hr and /etc/kombofs's key and secret, and /srv is a tmpfs. --check
    passes, the mount appears, and its files belong to hr with umask 0027 (gid=hr was
    refused before, and the shipped unit restarted every 10 s)."""
    import shutil
    import socket
    from conftest import API_KEY, KOMBOFS, is_mounted
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) not installed")
    shipped = systemd_env_file(os.path.join(ROOT, "examples", "kombofs.env"))
    assert "gid=hr" in shipped["KOMBOFS_OPTIONS"]
    port = int(shipped["KOMBOFS_OPTIONS"].split("--webhook-listen=")[1].split()[0].split(":")[1])
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        pytest.skip(f"port {port} of the shipped file is taken on this host")
    finally:
        s.close()
    for d in ("upper", "work", "state"):
        (tmp_path / d).mkdir()
    script = f"""
set -eu
mount -t overlay overlay -o lowerdir=/etc,upperdir={tmp_path}/upper,workdir={tmp_path}/work /etc
grep -q '^hr:' /etc/group || echo 'hr:x:4242:' >> /etc/group
mkdir -p /etc/kombofs
printf '%s\\n' '{API_KEY}' > /etc/kombofs/api-key
printf 'secret\\n' > /etc/kombofs/webhook-secret
mount -t tmpfs tmpfs /srv
mkdir -p "$KOMBOFS_MOUNTPOINT"
{KOMBOFS} --check $KOMBO_INTEGRATION_ID $KOMBOFS_OPTIONS
{KOMBOFS} $KOMBO_INTEGRATION_ID $KOMBOFS_MOUNTPOINT -f $KOMBOFS_OPTIONS 2>{tmp_path}/log &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid || true' EXIT
i=0
until grep -q " $KOMBOFS_MOUNTPOINT fuse" /proc/self/mounts; do
    i=$((i+1)); [ $i -lt 600 ] || exit 9; kill -0 $pid; sleep 0.05
done
echo "hr=$(getent group hr | cut -d: -f3)"
stat -c 'files=%g %a' "$KOMBOFS_MOUNTPOINT"/employees/*.json | sort -u
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOMBO")}
    env.update(shipped, KOMBO_API_URL=sandbox.url, STATE_DIRECTORY=str(tmp_path / "state"))
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    log = (tmp_path / "log").read_text() if (tmp_path / "log").exists() else ""
    assert p.returncode == 0, out + err + log
    assert "all checks passed" in out, out
    hr = re.search(r"^hr=(\d+)$", out, re.M).group(1)
    assert re.findall(r"^files=.*$", out, re.M) == [f"files={hr} 440"], out
    assert (tmp_path / "state" / f"{escape(shipped['KOMBO_INTEGRATION_ID'])}.db").exists()
    assert not is_mounted(shipped["KOMBOFS_MOUNTPOINT"])
