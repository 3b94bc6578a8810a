"""The views of SPEC §10 (issue 13): by-email/, by-remote-id/<dir>/, exports/<dir>.jsonl and
exports/employees.csv, checked against what the sandbox's own records say."""
import csv
import io
import json
import os
import re
import subprocess
import tarfile
import threading
import time

import pytest

from conftest import escape

DIRS = ["employees", "employments", "groups", "absences", "absence-types", "time-off-balances",
        "timesheets", "legal-entities", "locations"]


def ascii_lower(s):
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in s)


def expected_links(records, key, lower):
    """{link name: record id} as SPEC §10 names them: the smallest id owns the plain name."""
    groups = {}
    for r in records:
        v = r.get(key)
        if isinstance(v, str) and v:
            groups.setdefault(escape(ascii_lower(v) if lower else v), []).append(r["id"])
    out = {}
    for name, ids in groups.items():
        ids.sort(key=lambda i: i.encode())
        out[name] = ids[0]
        for i in ids[1:]:
            out[name + "~" + escape(i)] = i
    return out


def actual_links(path):
    out = {}
    for name in os.listdir(path):
        p = os.path.join(path, name)
        assert os.path.islink(p), p
        out[name] = os.readlink(p)
    return out


def listing(fs, d):
    """Records of a directory in its listing order."""
    out = []
    for name in os.listdir(fs.path(d)):
        with open(fs.path(d, name), encoding="utf-8") as f:
            out.append(json.load(f))
    return out


def check_links(fs, sandbox):
    emps = sandbox.visible("employees")
    want = expected_links(emps, "work_email", True)
    got = actual_links(fs.path("by-email"))
    assert got == {n: "../employees/%s.json" % escape(i) for n, i in want.items()}
    for d in DIRS:
        want = expected_links(sandbox.visible(d), "remote_id", False)
        got = actual_links(fs.path("by-remote-id", d))
        assert got == {n: "../../%s/%s.json" % (d, escape(i)) for n, i in want.items()}, d
    # every link resolves to its record
    for name in os.listdir(fs.path("by-email")):
        with open(fs.path("by-email", name), encoding="utf-8") as f:
            rec = json.load(f)
        assert escape(ascii_lower(rec["work_email"])) == name.split("~")[0]


def check_jsonl(fs, d):
    p = fs.path("exports", d + ".jsonl")
    with open(p, "rb") as f:
        data = f.read()
    assert os.stat(p).st_size == len(data)
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == ""
    recs = [json.loads(line) for line in lines[:-1]]
    assert recs == listing(fs, d)
    for line in lines[:-1]:
        # compact: what Python writes with no insignificant whitespace, key order kept
        assert line == json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False)


def csv_cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return v  # numbers, objects, arrays: compared after parsing


def check_csv(fs):
    p = fs.path("exports", "employees.csv")
    with open(p, "rb") as f:
        data = f.read()
    assert os.stat(p).st_size == len(data)
    assert not data.startswith(b"\xef\xbb\xbf")
    recs = listing(fs, "employees")
    if not recs:
        assert data == b""
        return
    cols = []
    for r in recs:
        for k in r:
            if k not in cols:
                cols.append(k)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert data.endswith(b"\r\n") and data.count(b"\r\n") >= len(recs) + 1
    assert rows[0] == cols
    assert len(rows) == len(recs) + 1
    for r, row in zip(recs, rows[1:]):
        assert len(row) == len(cols)
        for k, cell in zip(cols, row):
            v = r.get(k)
            if isinstance(v, (dict, list)) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
                assert json.loads(cell) == v, (k, cell)
            else:
                assert cell == csv_cell(v), (k, cell, v)


def read_dropping_pages(path, chunk):
    """The bytes of path read `chunk` at a time, and its size when opened; its pages are then
    dropped from the page cache, so the next read asks the daemon again."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        chunks = []
        while True:
            b = os.read(fd, chunk)
            if not b:
                break
            chunks.append(b)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return b"".join(chunks), size


@pytest.mark.sandbox(employees=60)
def test_views_equal_the_records(sandbox, kombofs):
    fs = kombofs(sandbox)
    assert sorted(os.listdir(fs.path("exports"))) == sorted(
        [d + ".jsonl" for d in DIRS] + ["employees.csv"])
    assert sorted(os.listdir(fs.path("by-remote-id"))) == sorted(DIRS)
    check_links(fs, sandbox)
    for d in DIRS:
        check_jsonl(fs, d)
    check_csv(fs)


@pytest.mark.sandbox(employees=30)
def test_views_follow_changes(sandbox, kombofs):
    fs = kombofs(sandbox)
    emps = sorted(sandbox.visible("employees"), key=lambda r: r["id"].encode())
    a, b, c, d = emps[0]["id"], emps[1]["id"], emps[2]["id"], emps[3]["id"]
    ls_before = set(os.listdir(fs.path("by-email")))  # cached listings must follow
    # a shared address, in different cases, and one that needs escaping
    sandbox.update_employee(a, work_email="Shared.Person@Example.com")
    sandbox.update_employee(b, work_email="shared.person@example.COM")
    sandbox.update_employee(c, work_email="o'brien/hr+x@example.com")
    assert fs.control("sync employees") == 0
    shared = escape("shared.person@example.com")
    assert os.readlink(fs.path("by-email", shared)) == "../employees/%s.json" % escape(a)
    assert os.readlink(fs.path("by-email", shared + "~" + escape(b))) == \
        "../employees/%s.json" % escape(b)
    assert not os.path.lexists(fs.path("by-email", shared + "~" + escape(a)))
    assert os.path.islink(fs.path("by-email", escape("o'brien/hr+x@example.com")))
    assert "/" not in escape("o'brien/hr+x@example.com")
    check_links(fs, sandbox)
    assert set(os.listdir(fs.path("by-email"))) != ls_before

    # the owner of the plain name moves away: b takes it, a's new name appears
    sandbox.update_employee(a, work_email="moved@example.com")
    assert fs.control("sync employees") == 0
    assert os.readlink(fs.path("by-email", shared)) == "../employees/%s.json" % escape(b)
    assert not os.path.lexists(fs.path("by-email", shared + "~" + escape(b)))
    assert os.path.islink(fs.path("by-email", escape("moved@example.com")))
    # an address that becomes null, and a deleted employee
    sandbox.update_employee(c, work_email=None)
    sandbox.soft_delete("employees", d)
    old_d = escape(ascii_lower(emps[3]["work_email"])) if emps[3].get("work_email") else None
    assert fs.control("sync employees") == 0
    assert not os.path.lexists(fs.path("by-email", escape("o'brien/hr+x@example.com")))
    if old_d:
        assert old_d not in os.listdir(fs.path("by-email"))
    check_links(fs, sandbox)
    check_jsonl(fs, "employees")
    check_csv(fs)
    # the export shrank and grew with the data, sizes exact
    new_id = sandbox.create_employee(first_name="Ny", work_email="NY@EXAMPLE.COM")
    assert fs.control("sync employees") == 0
    assert os.readlink(fs.path("by-email", escape("ny@example.com"))) == \
        "../employees/%s.json" % escape(new_id)
    check_jsonl(fs, "employees")
    check_csv(fs)


@pytest.mark.sandbox(employees=200)
def test_an_export_never_mixes_two_versions(sandbox, kombofs):
    """Readers of an export during syncs see one committed state each time."""
    fs = kombofs(sandbox, "--models=employees")
    p = fs.path("exports", "employees.jsonl")
    emps = sandbox.visible("employees")
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            try:
                with open(p, encoding="utf-8") as f:
                    lines = f.read().split("\n")
                recs = [json.loads(x) for x in lines[:-1]]
                titles = {r.get("job_title") for r in recs if r["id"] in ids}
                if len(titles) > 1:
                    errors.append("mixed: %s" % titles)
            except (OSError, ValueError) as e:
                errors.append(repr(e))

    ids = {e["id"] for e in emps[:50]}
    for e in emps[:50]:
        sandbox.update_employee(e["id"], job_title="Title start")
    assert fs.control("sync employees") == 0
    t = threading.Thread(target=reader)
    t.start()
    try:
        for round_ in range(6):
            for e in emps[:50]:
                sandbox.update_employee(e["id"], job_title="Title %d" % round_)
            assert fs.control("sync employees") == 0
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors[:5]


@pytest.mark.sandbox(employees=300)
def test_concurrent_readers_of_the_exports(sandbox, kombofs):
    """Several readers of the same export and of others at once, while syncs change it: each
    read gets one version's exact bytes (a version's pin serves one read at a time, other
    exports' pins read in parallel). Each reader drops the file's pages after reading it, so
    every pass asks the daemon again instead of the page cache."""
    fs = kombofs(sandbox, "--models=employees,groups")
    emps = sandbox.visible("employees")
    ids = {e["id"] for e in emps[:60]}
    for e in emps[:60]:
        sandbox.update_employee(e["id"], job_title="Title start")
    assert fs.control("sync employees") == 0
    stop = threading.Event()
    errors, passes = [], []

    def titles_jsonl(data):
        recs = [json.loads(x) for x in data.decode("utf-8").split("\n")[:-1]]
        return {r.get("job_title") for r in recs if r["id"] in ids}, len(recs)

    def titles_csv(data):
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        col = rows[0].index("job_title")
        return {r[col] for r in rows[1:] if r[0] in ids}, len(rows) - 1

    def reader(name, parse):
        p = fs.path("exports", name)
        while not stop.is_set():
            try:
                data, size = read_dropping_pages(p, 65536)
                if len(data) != size:
                    errors.append("%s: %d bytes of %d" % (name, len(data), size))
                    continue
                if parse:
                    titles, n = parse(data)
                    if len(titles) != 1 or n != len(emps):
                        errors.append("%s: mixed or short: %s, %d rows" % (name, titles, n))
                passes.append(name)
            except (OSError, ValueError) as e:
                errors.append("%s: %r" % (name, e))

    threads = [threading.Thread(target=reader, args=a) for a in
               [("employees.jsonl", titles_jsonl)] * 2 + [("employees.csv", titles_csv)] * 2 +
               [("groups.jsonl", None)]]
    for t in threads:
        t.start()
    try:
        for round_ in range(5):
            for e in emps[:60]:
                sandbox.update_employee(e["id"], job_title="Title %d" % round_)
            assert fs.control("sync employees") == 0
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:5]
    for name in ("employees.jsonl", "employees.csv", "groups.jsonl"):
        assert passes.count(name) >= 2, (name, passes.count(name))
    check_jsonl(fs, "employees")
    check_csv(fs)


@pytest.mark.sandbox(employees=1500)
def test_more_readers_than_pins_take_turns(sandbox, kombofs):
    """Six readers of six exports at once, more versions than the daemon's four pins: a pin its
    reader is using between two READs is taken from it only after another reader has waited
    what taking it costs, ten times its offsets' build time (at most 0.5 s), so that slow
    builds are not redone at every READ (as they were: each READ of the fifth reader took a
    pin from one of the four, whose next READ took another), and cheap ones are not waited
    for (a flat 0.5 s made six readers of 2,000 employees three times slower). Every pass gets
    the export's exact bytes. The `-v` log says each time a pin was taken from its reader."""
    fs = kombofs(sandbox, "-v")
    names = sorted((os.path.getsize(fs.path("exports", d + ".jsonl")), d + ".jsonl")
                   for d in DIRS)[-6:]
    want = {name: read_dropping_pages(fs.path("exports", name), 65536)[0] for _, name in names}
    errors = []
    start = threading.Barrier(len(names))
    PASSES = 12

    def reader(name):
        start.wait()
        for _ in range(PASSES):
            if read_dropping_pages(fs.path("exports", name), 16384)[0] != want[name]:
                errors.append(name)

    threads = [threading.Thread(target=reader, args=(n,)) for _, n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    taken = [(float(m.group(1)), float(m.group(2)), float(m.group(3))) for m in re.finditer(
        r"took the pin of model \d+ read ([\d.]+) ms ago, after waiting ([\d.]+) ms "
        r"\(its offsets took ([\d.]+) ms\)", fs.log_text())]
    built = [(ago, waited, b) for ago, waited, b in taken if b > 0]
    assert built, "no pin whose offsets were built was taken from its reader: they waited"
    for ago, waited, b in taken:
        assert ago < 200 and waited >= min(500.0, 10 * b) - 0.1, (ago, waited, b)
    # Builds of 1,500 rows take well under a millisecond (a few under a sanitizer): the
    # waits for them stay far below the 500 ms a flat wait takes.
    cheap = sorted(waited for _, waited, b in built if b < 5)
    assert cheap and cheap[len(cheap) // 2] < 100, cheap


@pytest.mark.sandbox(employees=300)
def test_a_slow_reader_of_an_older_version_keeps_its_pin(sandbox, kombofs):
    """A reader of an export's older version, pausing between READs while four readers of
    other exports contend for the four pins: its pin is the least recently used, but taking
    it would fail its read (no pin would hold that version), so a waiter takes a pin of the
    current version, which costs only a rebuild, while one is busy or kept. CI saw ESTALE
    when the pin was kept for ten times a small build's time; and when it was kept for
    200 ms after its last READ, a pause of 300 ms failed every run."""
    fs = kombofs(sandbox)
    path = fs.path("exports", "employees.jsonl")
    want = read_dropping_pages(path, 65536)[0]
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)    # one READ per pread
        got = [os.pread(fd, 4096, 0)]
        for e in sandbox.visible("employees")[:20]:
            sandbox.update_employee(e["id"], job_title="A newer version")
        assert fs.control("sync employees") == 0             # the reader's version is older now
        stop, errors = threading.Event(), []

        def other(name):
            while not stop.is_set():
                try:
                    read_dropping_pages(fs.path("exports", name), 16384)
                except OSError as e:
                    errors.append("%s: %r" % (name, e))

        others = [threading.Thread(target=other, args=(d + ".jsonl",))
                  for d in ("employments", "groups", "absences", "timesheets")]
        for t in others:
            t.start()
        try:
            off, reads = len(got[0]), 0
            while off < len(want):
                reads += 1
                # 10 ms between READs, and now and then 300 ms: more than the 200 ms a
                # pin stays its reader's, less than the 500 ms a waiter may wait
                time.sleep(0.3 if reads % 25 == 0 else 0.01)
                b = os.pread(fd, 4096, off)
                if not b:
                    break
                got.append(b)
                off += len(b)
        finally:
            stop.set()
            for t in others:
                t.join(30)
    finally:
        os.close(fd)
    assert not errors, errors[:3]
    assert b"".join(got) == want
    assert read_dropping_pages(path, 65536)[0] != want      # the current version is the newer


@pytest.mark.sandbox(employees=40)
def test_tools_over_the_views(sandbox, kombofs, tmp_path):
    fs = kombofs(sandbox)
    # ls -l, find -L, grep -r, jq and tar behave as on a plain directory
    out = subprocess.run(["ls", "-l", fs.path("by-email")], capture_output=True, text=True,
                         check=True).stdout
    assert "-> ../employees/" in out
    found = subprocess.run(["find", "-L", fs.path("by-remote-id", "employees"), "-type", "f"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert len(found) == len(os.listdir(fs.path("by-remote-id", "employees")))
    emp = sandbox.visible("employees")[0]
    grep = subprocess.run(["grep", "-rl", emp["id"], fs.path("exports")], capture_output=True,
                          text=True, check=True).stdout.split()
    assert fs.path("exports", "employees.jsonl") in grep
    jq = subprocess.run(["jq", "-r", ".id", fs.path("exports", "employees.jsonl")],
                        capture_output=True, text=True, check=True).stdout.split()
    assert jq == [r["id"] for r in listing(fs, "employees")]
    # tar of the whole mount, as root: links stay links, .control reads as empty
    tar = tmp_path / "mirror.tar"
    subprocess.run(["tar", "-cf", str(tar), "-C", fs.mnt, "."], check=True)
    with tarfile.open(tar) as t:
        members = {(m.name[2:] if m.name.startswith("./") else m.name): m
                   for m in t.getmembers()}
        links = [m for n, m in members.items() if n.startswith("by-email/")]
        assert links and all(m.issym() for m in links)
        assert all(m.linkname.startswith("../employees/") for m in links)
        rid = [m for n, m in members.items() if n.startswith("by-remote-id/employees/")]
        assert rid and all(m.issym() and m.linkname.startswith("../../employees/") for m in rid)
        assert members[".control"].size == 0 and members[".status"].issym()
        assert members["exports/employees.jsonl"].size == os.stat(
            fs.path("exports", "employees.jsonl")).st_size
    out = tmp_path / "copy"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(tar), "-C", str(out)], check=True)
    name = os.listdir(fs.path("by-email"))[0]
    with open(out / "by-email" / name, "rb") as a, open(fs.path("by-email", name), "rb") as b:
        assert a.read() == b.read()  # relative links: the copy resolves inside itself


@pytest.mark.sandbox(employees=20)
def test_views_are_read_only(sandbox, kombofs):
    fs = kombofs(sandbox)
    name = os.listdir(fs.path("by-email"))[0]
    def append(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)

    for fn in (lambda: os.unlink(fs.path("by-email", name)),
               lambda: os.symlink("x", fs.path("by-email", "new")),
               lambda: os.rename(fs.path("by-email", name), fs.path("by-email", "other")),
               lambda: append(fs.path("exports", "employees.jsonl")),
               lambda: os.truncate(fs.path("exports", "employees.csv"), 0)):
        with pytest.raises(OSError) as e:
            fn()
        assert e.value.errno in (30, 13)  # EROFS, or EACCES from the 0440 mode
