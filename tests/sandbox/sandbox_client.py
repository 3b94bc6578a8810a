"""Minimal keep-alive HTTP client for the sandbox (tests and measurements).

    c = Client(sb.url, "sandbox-key", "personio:...")
    r = c.get("/hris/employees", page_size=10)     # -> Reply(status, headers, body)
    r.json()["data"]["results"]
    records = c.list_all("employees", page_size=250)
"""

import gzip
import http.client
import json
import socket
import urllib.parse


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict with lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def error_code(self):
        return self.json()["error"]["code"]


class Client:
    def __init__(self, base_url, api_key="sandbox-key", integration_id=None, timeout=30):
        url = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.prefix = url.hostname, url.port, url.path.rstrip("/")
        self.api_key = api_key
        self.integration_id = integration_id
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connection(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.conn

    def headers(self, extra=None):
        h = {"Accept": "application/json"}
        if self.api_key is not None:
            h["Authorization"] = "Bearer " + self.api_key
        if self.integration_id is not None:
            h["X-Integration-Id"] = self.integration_id
        h.update(extra or {})
        return {k: v for k, v in h.items() if v is not None}

    def request(self, method, path, params=None, headers=None, body=None, raw_query=None):
        """One request on the kept-alive connection; `path` is below the base URL."""
        query = raw_query if raw_query is not None else urllib.parse.urlencode(params or {})
        target = self.prefix + path + ("?" + query if query else "")
        conn = self._connection()
        try:
            conn.request(method, target, body=body, headers=self.headers(headers))
            resp = conn.getresponse()
            data = resp.read()
        except Exception:
            self.close()
            raise
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if hdrs.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        if resp.will_close:
            self.close()
        return Reply(resp.status, hdrs, data)

    def get(self, path, headers=None, **params):
        return self.request("GET", path, params, headers)

    def list_all(self, endpoint, **params):
        """Follow `next` through every page; returns all results."""
        out, cursor = [], None
        while True:
            p = dict(params)
            if cursor:
                p["cursor"] = cursor
            r = self.get("/hris/" + endpoint, **p)
            if r.status != 200:
                raise AssertionError("HTTP %d: %r" % (r.status, r.body[:300]))
            data = r.json()["data"]
            out.extend(data["results"])
            cursor = data["next"]
            if not cursor:
                return out
