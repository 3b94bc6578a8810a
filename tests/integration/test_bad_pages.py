"""Bad API pages that the sandbox does not produce: records of the wrong shape, and
odd but valid JSON. A tiny server serves fixed pages (SPEC §7)."""
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import escape


class FixedPages(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    pages = {}  # endpoint -> list of raw bodies, one per cursor

    def do_GET(self):
        path, _, query = self.path.partition("?")
        endpoint = path.rsplit("/", 1)[-1]
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        bodies = self.pages.get(endpoint, [b'{"status":"success","data":{"next":null,"results":[]}}'])
        body = bodies[int(params.get("cursor", "0"))]
        headers = {}
        if isinstance(body, tuple):         # (body, extra headers)
            body, headers = body
        FixedPages.accept_encoding = self.headers.get("Accept-Encoding")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fixed_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FixedPages)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()

    class Handle:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield Handle
    srv.shutdown()
    FixedPages.pages = {}


def page(results, next_=None):
    return json.dumps({"status": "success", "data": {"next": next_, "results": results}},
                      ensure_ascii=False).encode()


@pytest.mark.allow_log_errors
def test_records_of_the_wrong_shape_are_skipped_and_counted(fixed_server, kombofs):
    good = {"id": "good1", "remote_id": "1", "changed_at": "2026-01-01T00:00:00.000Z",
            "remote_deleted_at": None, "n": 1}
    FixedPages.pages["employees"] = [
        page([{"remote_id": "no id"}, {"id": 42}, good, "not an object", {"id": ""}], "1"),
        b'{"status":"success","data":{"next":null,"results":[{"id":"good2","x":0.1,'
        b'"big":123456789012345678901234567890,"s":"\\u00f6/\\"","changed_at":null}]}}',
    ]
    fs = kombofs(fixed_server, "--models=employees")
    assert sorted(os.listdir(fs.path("employees"))) == ["good1.json", "good2.json"]
    st = fs.status()["endpoints"]["employees"]["last_full"]
    assert st["fetched"] == 6 and st["skipped"] == 4 and st["result"] == "ok"
    raw = open(fs.path("employees", "good2.json"), "rb").read()
    assert b'"x": 0.1,' in raw and b"123456789012345678901234567890" in raw, \
        "numbers reach the file exactly as sent"
    assert b'"\\u00f6/\\""' in raw, "strings too"


def test_ids_that_need_escaping(fixed_server, kombofs):
    ids = ["a/b", "..", ".hidden", "ünï", "50%", "x\\y"]
    FixedPages.pages["employees"] = [page([{"id": i, "changed_at": None} for i in ids])]
    fs = kombofs(fixed_server, "--models=employees")
    names = sorted(os.listdir(fs.path("employees")))
    assert names == sorted(escape(i) + ".json" for i in ids)
    assert "%2F" in names[0] or any("%2F" in n for n in names)
    for i in ids:
        assert fs.read_json("employees", escape(i) + ".json")["id"] == i
        assert os.getxattr(fs.path("employees", escape(i) + ".json"), "user.kombo.id") == i.encode()


def employee(i, **extra):
    rec = {"id": f"emp{i:04d}", "remote_id": str(1000 + i), "first_name": f"Name{i}",
           "work_email": f"n{i}@example.com", "changed_at": "2026-01-01T00:00:00.000Z",
           "remote_deleted_at": None, "employments": [{"id": f"job{i}", "job_title": f"T{i % 9}",
                                                        "pay_rate": 1000 + i / 4}],
           "custom_fields": {"cost_center": f"CC-{i % 40:03d}", "note": "ö/\"x\""}}
    rec.update(extra)
    return rec


def pretty(rec):
    return (json.dumps(rec, indent=2, ensure_ascii=False) + "\n").encode()


def changes_of(fs):
    return [json.load(open(fs.path("changes", n), encoding="utf-8"))
            for n in sorted(os.listdir(fs.path("changes")))]


def test_a_first_fetch_that_lists_an_id_twice(fixed_server, kombofs):
    """The first full fetch into an empty cache inserts without looking each record up;
    a listing that names an id again (a page boundary moving under the cursor) must
    still compare it: one file with the last version, 'updated' entries only where the
    content differs, and a successful fetch."""
    first = [employee(i) for i in range(40)]
    FixedPages.pages["employees"] = [
        page(first + [employee(5, first_name="Second")], "1"),
        page([employee(7), employee(5, first_name="Third")]),
    ]
    fs = kombofs(fixed_server, "--models=employees")
    st = fs.status()["endpoints"]["employees"]["last_full"]
    assert st["result"] == "ok" and st["fetched"] == 43 and st["changed"] == 42, st
    assert len(os.listdir(fs.path("employees"))) == 40
    assert fs.read_json("employees", "emp0005.json")["first_name"] == "Third"
    ops = [(c["id"], c["op"]) for c in changes_of(fs)]
    assert ops[:40] == [(f"emp{i:04d}", "created") for i in range(40)]
    assert ops[40:] == [("emp0005", "updated"), ("emp0005", "updated")], ops[40:]


@pytest.mark.parametrize("compress", [False, True])
def test_records_are_stored_compact_and_read_back_exactly(fixed_server, kombofs, compress):
    """Schema version 4: a record is stored as its compact JSON (zdict 0), or with
    --compress as a zstd frame of a dictionary the first page trained (zdict 1, far
    smaller); every path that reads a file gives its exact bytes: a READ, a scan (read
    ahead), a created entry that splices it, the JSONL export; after a restart too, and
    for a record that changed since."""
    import sqlite3
    # large enough that the first page trains a dictionary (pack.h: 128 records, 256 KB)
    recs = [employee(i, history=[{"at": f"2025-{1 + k % 12:02d}-01", "what": f"review {k} of {i}",
                                  "score": (i * k) % 7} for k in range(16)])
            for i in range(300)]
    args = ["--models=employees"] + (["--compress"] if compress else [])
    FixedPages.pages["employees"] = [page(recs[:250], "1"), page(recs[250:])]
    fs = kombofs(fixed_server, *args)
    db = sqlite3.connect(fs.cache)
    n, kinds, stored, size = db.execute(
        "SELECT count(*), group_concat(DISTINCT zdict), sum(length(body)), sum(size)"
        " FROM records").fetchone()
    dicts = db.execute("SELECT count(*), max(length(bytes)) FROM dicts").fetchone()
    db.close()
    assert n == 300
    if compress:
        assert kinds == "1" and dicts[0] == 1 and 0 < dicts[1] <= 32768
        assert stored * 3 < size, (stored, size)
    else:
        compact = sum(len(json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode())
                      for r in recs)
        assert kinds == "0" and dicts[0] == 0 and stored == compact, (kinds, stored, compact)

    orig = list(recs)

    def check(fs, recs):
        names = sorted(os.listdir(fs.path("employees")))
        assert names == sorted(r["id"] + ".json" for r in recs)
        for r in recs:                          # a scan in listing order: read ahead
            assert open(fs.path("employees", r["id"] + ".json"), "rb").read() == pretty(r)
        lines = open(fs.path("exports", "employees.jsonl"), "rb").read().splitlines()
        assert [json.loads(x) for x in lines] == recs
        for c in changes_of(fs)[:300]:             # the records as they were created
            assert c["op"] == "created" and c["patch"][0]["value"] == orig[int(c["id"][3:])]

    check(fs, recs)
    fs.stop()
    recs[17] = employee(17, first_name="Changed", changed_at="2026-02-01T00:00:00.000Z")
    FixedPages.pages["employees"] = [page(recs[:250], "1"), page(recs[250:])]
    fs = kombofs(fixed_server, *args)
    assert fs.control("resync") == 0
    check(fs, recs)
    assert changes_of(fs)[-1]["op"] == "updated" and changes_of(fs)[-1]["id"] == "emp0017"
    db = sqlite3.connect(fs.cache)
    assert db.execute("SELECT zdict FROM records WHERE id = 'emp0017'").fetchone()[0] == \
        (1 if compress else 0)
    db.close()


def test_bodies_are_inflated_as_sent(fixed_server, kombofs):
    """kombofs asks for gzip and inflates it itself (libdeflate): one member or several
    (RFC 1952 allows a concatenation), x-gzip, identity; the files are the same."""
    import gzip
    recs = [employee(i) for i in range(60)]
    body = page(recs[:30], "1")
    half = len(body) // 2
    FixedPages.pages["employees"] = [
        (gzip.compress(body[:half]) + gzip.compress(body[half:]), {"Content-Encoding": "gzip"}),
        (gzip.compress(page(recs[30:], "2")), {"Content-Encoding": "x-gzip"}),
        (page([]), {"Content-Encoding": "identity"}),
    ]
    fs = kombofs(fixed_server, "--models=employees")
    assert FixedPages.accept_encoding == "gzip"
    assert fs.status()["endpoints"]["employees"]["last_full"]["result"] == "ok"
    for r in recs:
        assert open(fs.path("employees", r["id"] + ".json"), "rb").read() == pretty(r)


@pytest.mark.allow_log_errors
@pytest.mark.parametrize("wire,encoding,why", [
    (b"\x1f\x8b\x08\x00not gzip at all", "gzip", "the body is not valid gzip"),
    (None, "br", "a Content-Encoding that was not asked for"),
])
def test_a_body_that_does_not_inflate_is_a_malformed_page(fixed_server, kombofs, wire, encoding,
                                                           why):
    """A gzip body that does not inflate, or an encoding kombofs did not ask for, is a
    malformed page: retried, then recorded, and nothing is mirrored from it."""
    import gzip
    body = wire if wire is not None else page([employee(1)])
    FixedPages.pages["employees"] = [(body, {"Content-Encoding": encoding})]
    fs = kombofs(fixed_server, "--models=employees", wait=False)
    assert fs.proc.wait(timeout=120) != 0, "the first fetch cannot complete"
    assert f"malformed page: {why}" in fs.log_text(), fs.log_text()[-2000:]
