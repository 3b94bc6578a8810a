"""Misbehaviour switches (Sandbox.set_faults)."""

import gzip
import http.client
import json
import time

import pytest

from kombo_sandbox import Sandbox
from sandbox_client import Client

pytestmark = pytest.mark.timeout(30)


def test_rate_limit_with_retry_after(sb, client):
    sb.set_faults(rate_limit=2, retry_after=3)
    for _ in range(2):
        r = client.get("/hris/employees")
        assert r.status == 429 and r.error_code == "PLATFORM.RATE_LIMIT_EXCEEDED"
        assert r.headers["retry-after"] == "3"
        assert r.headers["ratelimit-limit"] == "300" and r.headers["ratelimit-remaining"] == "0"
        assert r.headers["ratelimit-reset"] == "3"
    assert client.get("/hris/employees").status == 200


def test_rate_limit_without_retry_after(sb, client):
    sb.set_faults(rate_limit=1)
    r = client.get("/hris/employees")
    assert r.status == 429 and "retry-after" not in r.headers and r.headers["ratelimit-reset"] == "1"


def test_server_errors_alternate_500_503(sb, client):
    sb.set_faults(server_error=3)
    got = [(r.status, r.error_code) for r in (client.get("/hris/groups") for _ in range(3))]
    assert got == [(500, "PLATFORM.UNKNOWN_ERROR"), (503, "REMOTE.SERVICE_UNAVAILABLE"),
                   (500, "PLATFORM.UNKNOWN_ERROR")]
    assert client.get("/hris/groups").status == 200


def test_html_errors(sb, client):
    sb.set_faults(html_error=2)
    a, b = client.get("/hris/employees"), client.get("/hris/employees")
    assert (a.status, b.status) == (502, 503)
    assert a.headers["content-type"] == "text/html"
    assert b"<center>nginx</center>" in a.body and b"502 Bad Gateway" in a.body
    assert client.get("/hris/employees").status == 200


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_truncated_body(sb, client, encoding):
    headers = {"Accept-Encoding": encoding} if encoding else {}
    full = client.request("GET", "/hris/employees", headers=headers, raw_query="page_size=20")
    sb.set_faults(truncate=1)
    conn = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=5)
    conn.request("GET", "/v1/hris/employees?page_size=20", headers=dict(client.headers(), **headers))
    resp = conn.getresponse()
    raw = resp.read()
    assert resp.status == 200 and int(resp.getheader("Content-Length")) == len(raw)
    if encoding:
        whole = gzip.compress(full.body)  # any gzip of it is longer than half
        assert len(raw) < len(whole)
        with pytest.raises((EOFError, OSError)):
            gzip.decompress(raw)
    else:
        assert raw == full.body[:len(full.body) // 2]
        with pytest.raises(ValueError):
            json.loads(raw)
    conn.close()
    assert client.get("/hris/employees", page_size=20).body == full.body


def test_connection_reset(sb, client):
    sb.set_faults(reset=1)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        client.get("/hris/employees")
    assert client.get("/hris/employees").status == 200  # a new connection works
    assert sb.stats()["by_status"] == {"reset": 1, "200": 1}


def test_slow(sb, client):
    sb.set_faults(slow=0.3)
    t = time.time()
    assert client.get("/hris/locations").status == 200
    assert time.time() - t >= 0.3


def test_setup_pending_until_cleared(sb, client):
    sb.set_faults(setup_pending=True)
    for _ in range(3):
        r = client.get("/hris/employees")
        assert r.status == 409 and r.error_code == "INTEGRATION.SETUP_SYNC_PENDING"
    sb.set_faults()
    assert client.get("/hris/employees").status == 200


def test_auth_fail(sb, client):
    sb.set_faults(auth_fail=True)
    r = client.get("/hris/employees")
    assert r.status == 401 and r.error_code == "PLATFORM.AUTHENTICATION_INVALID"
    assert client.get("/check-api-key").status == 401


@pytest.mark.parametrize("kind,statuses", [("server_error", [500, 503]), ("rate_limit", [429, 429]),
                                           ("html_error", [502, 503])])
def test_fail_after_pages(sb, client, kind, statuses):
    sb.set_faults(fail_after_pages=2, fail_kind=kind)
    p1 = client.get("/hris/employees", page_size=5).json()["data"]
    p2 = client.get("/hris/employees", page_size=5, cursor=p1["next"]).json()["data"]
    for status in statuses:  # persistent: retries fail too
        assert client.get("/hris/employees", page_size=5, cursor=p2["next"]).status == status
    assert client.get("/hris/employees", page_size=5).status == 200  # a new listing starts at page 1
    sb.set_faults()
    assert client.get("/hris/employees", page_size=5, cursor=p2["next"]).status == 200


def test_fail_after_pages_reset(sb, client):
    sb.set_faults(fail_after_pages=1, fail_kind="reset")
    nxt = client.get("/hris/employees", page_size=5).json()["data"]["next"]
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        client.get("/hris/employees", page_size=5, cursor=nxt)


def _statuses(seed, n=60):
    s = Sandbox(employees=5, seed=seed)
    s.start()
    c = Client(s.url, s.api_key, s.integration_id)
    out = []
    try:
        s.set_faults(fail_rate=0.5, fault_seed=42)
        for _ in range(n):
            try:
                r = c.get("/hris/absence-types")
                out.append(r.status if r.body.endswith(b"}}") or r.status != 200 else "cut")
            except (ConnectionError, http.client.HTTPException):
                c.close()
                out.append("reset")
    finally:
        c.close()
        s.stop()
    return out


def test_fail_rate_is_random_but_seeded():
    a = _statuses(1)
    assert a == _statuses(2)  # same fault_seed, same sequence
    assert 10 < a.count(200) < 50
    assert {429, "reset", "cut"} <= set(a) and ({500, 503} & set(a)) and ({502, 503} & set(a))


def test_set_faults_replaces_and_validates(sb, client):
    sb.set_faults(rate_limit=5)
    sb.set_faults(slow=0.01)
    assert client.get("/hris/employees").status == 200
    with pytest.raises(ValueError):
        sb.set_faults(explode=True)
    with pytest.raises(ValueError):
        sb.set_faults(fail_rate=2)
    with pytest.raises(ValueError):
        sb.set_faults(fail_after_pages=1, fail_kind="meteor")
