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
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
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
