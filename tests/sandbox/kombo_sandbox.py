#!/usr/bin/python3
"""Kombo sandbox: a local fake of Kombo's HRIS API and webhooks.

Run:   /usr/bin/python3 tests/sandbox/kombo_sandbox.py --port 8099 --employees 1000
Use:   from kombo_sandbox import Sandbox   (tests/sandbox on sys.path)

See docs/sandbox.md for the behaviour, the admin API and the fault switches;
kombo-api.md (project shared docs) for the facts it imitates.
"""

import argparse
import bisect
import collections
import gc
import gzip
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sandbox_data import Factory, generate  # noqa: E402
from sandbox_faults import Faults  # noqa: E402
from sandbox_query import InputInvalid, LIST_ENDPOINTS, encode_cursor, parse_list_query, predicate  # noqa: E402
from sandbox_store import ENDPOINTS, NotFound, Store  # noqa: E402
from sandbox_webhooks import Payloads, WebhookSender  # noqa: E402

DEFAULT_INTEGRATION = "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"
JSON_TYPE = "application/json; charset=utf-8"
REQUEST_LOG_LIMIT = 10000
PAGE_CACHE_BYTES = 1 << 30
LIST_CACHE_ENTRIES = 16
# Mutation operations reachable through POST /_sandbox/mutate.
MUTATIONS = ("create_employee", "update_employee", "update_employment", "add_employment",
             "update_balance", "update_absence_type", "rename_group", "move_employee_group",
             "set_manager", "update_record", "create_record", "soft_delete", "vanish")
NGINX_PAGE = ("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
              "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
              "</body>\r\n</html>\r\n")
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
ERROR_TITLES = {
    "PLATFORM.AUTHENTICATION_INVALID": "Authentication invalid",
    "PLATFORM.INTEGRATION_NOT_FOUND": "Integration not found",
    "PLATFORM.INPUT_INVALID": "Input invalid",
    "PLATFORM.RATE_LIMIT_EXCEEDED": "Rate limit exceeded",
    "PLATFORM.UNKNOWN_ERROR": "Unknown error",
    "REMOTE.SERVICE_UNAVAILABLE": "Remote service unavailable",
    "INTEGRATION.SETUP_SYNC_PENDING": "Setup sync pending",
}


class Response:
    """One HTTP answer. `entry` (a cached page) supplies a gzip variant."""

    def __init__(self, status, body, headers=None, ctype=JSON_TYPE, entry=None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.ctype = ctype
        self.entry = entry
        self.truncate = False


class PageEntry:
    __slots__ = ("body", "gz", "generation")

    def __init__(self, body, generation):
        self.body = body
        self.gz = None
        self.generation = generation  # PageCache.generation it was stored in


class PageCache:
    """LRU of rendered pages with a byte budget; cleared on every mutation."""

    def __init__(self, budget):
        self.budget = budget
        self.entries = collections.OrderedDict()
        self.size = 0
        self.generation = 0

    def get(self, key):
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key, entry):
        self.entries[key] = entry
        self.grow(len(entry.body))

    def add_gzip(self, entry, gz):
        """Attach the gzip variant; counted only if the entry is still cached."""
        entry.gz = gz
        if entry.generation == self.generation:
            self.grow(len(gz))

    def grow(self, n):
        self.size += n
        while self.size > self.budget and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            self.size -= len(old.body) + (len(old.gz) if old.gz else 0)

    def clear(self):
        self.entries.clear()
        self.size = 0
        self.generation += 1


def error_body(code, message, title=None):
    """Kombo's error envelope (kombo-api.md §7)."""
    return json.dumps({"status": "error", "error": {
        "code": code,
        "title": title if title is not None else ERROR_TITLES.get(code),
        "message": message,
        "log_url": "https://app.kombo.dev/logs/sandbox",
    }}, separators=(",", ":")).encode()


def api_error(status, code, message, headers=None):
    return Response(status, error_body(code, message), headers)


class Sandbox:
    """The sandbox: data, HTTP server, webhooks, faults and statistics."""

    def __init__(self, employees=200, seed=1, api_key="sandbox-key",
                 integration_id=DEFAULT_INTEGRATION, webhook_url=None, webhook_secret=None,
                 webhook_delay=0.05, host="127.0.0.1", port=0, weird_ids=False,
                 page_cache_bytes=PAGE_CACHE_BYTES):
        self.seed = seed
        self.api_key = api_key
        self.integration_id = integration_id
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._stats_lock = threading.Lock()
        self._cursor_key = ("kombo-sandbox-cursor:%s" % seed).encode()
        self.store = Store()
        self.store.load(generate(employees, seed, integration_id, weird_ids))
        self._factory = Factory(random.Random(seed * 7919 + 17), integration_id)
        self._created = 0
        self._pages = PageCache(page_cache_bytes)
        self._lists = collections.OrderedDict()
        self._last_ms = 0
        self.faults = Faults(seed)
        self.payloads = Payloads(integration_id)
        self.webhooks = WebhookSender(webhook_url, webhook_secret, webhook_delay,
                                      self.payloads, self._count)
        self._server = None
        self._thread = None
        self._connections = set()
        self.reset_stats()

    # -- lifecycle ---------------------------------------------------------------
    def start(self):
        """Serve in background threads; returns the bound port."""
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sandbox = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="kombo-sandbox-http", daemon=True)
        self._thread.start()
        self.webhooks.start()
        return self.port

    def stop(self):
        """Stop serving, close kept-alive connections, stop the webhook sender."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with self._stats_lock:
                conns = list(self._connections)
            for conn in conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._thread.join(timeout=5)
            self._server = None
        self.webhooks.stop()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return "http://%s:%d/v1" % (self.host, self.port)

    # -- clock -----------------------------------------------------------------
    def now_ms(self):
        """Strictly increasing ms clock (plus clock_skew) that stamps changes."""
        with self._lock:
            self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
            return self._last_ms + int(self.faults.get("clock_skew", 0) * 1000)

    # -- reading ------------------------------------------------------------------
    def visible(self, endpoint):
        """Records a complete listing without updated_after/include_deleted returns."""
        return json.loads(self.visible_json(endpoint))

    def visible_json(self, endpoint):
        """`visible()` as one JSON array (bytes), as the API renders the records."""
        query = parse_list_query(endpoint, {}, self._cursor_key)
        with self._lock:
            recs, _ = self._filtered(query)
            return b"[" + b",".join(self.store.render(query.table, r) for r in recs) + b"]"

    def _filtered(self, query):
        """(records, seqs) matching the query's filters, in listing order (cached)."""
        hit = self._lists.get(query.key)
        if hit is not None:
            self._lists.move_to_end(query.key)
            return hit
        match = predicate(query)
        since = query.filters.get("updated_after")  # microseconds
        if since is not None:
            # touched (ms) * 1000 > since  <=>  touched > since // 1000
            candidates = self.store.touched_after(query.table, since // 1000)
        else:
            candidates = self.store.tables[query.table].values()
        recs = [r for r in candidates if match(r)]
        hit = (recs, [r.seq for r in recs])
        self._lists[query.key] = hit
        if len(self._lists) > LIST_CACHE_ENTRIES:
            self._lists.popitem(last=False)
        return hit

    def _page(self, query):
        """The cached page entry for a validated list query."""
        key = (query.key, query.after_seq, query.page_size, query.page_no)
        with self._lock:
            entry = self._pages.get(key)
            if entry is None:
                entry = PageEntry(self._render_page(query), self._pages.generation)
                self._pages.put(key, entry)
            return entry

    def _render_page(self, query):
        recs, seqs = self._filtered(query)
        start = bisect.bisect_right(seqs, query.after_seq)
        page = recs[start:start + query.page_size]
        more = start + len(page) < len(recs)
        nxt = json.dumps(encode_cursor(query, page[-1].seq, self._cursor_key)).encode() if more else b"null"
        render = self.store.render
        return b"".join((b'{"status":"success","data":{"next":', nxt, b',"results":[',
                         b",".join(render(query.table, r) for r in page), b"]}}"))

    def _gzipped(self, entry):
        if entry.gz is None:
            gz = gzip.compress(entry.body, compresslevel=1, mtime=0)
            with self._lock:
                if entry.gz is None:
                    self._pages.add_gzip(entry, gz)
        return entry.gz

    # -- mutations ---------------------------------------------------------------
    def _mutate(self, change, notify=True):
        """Run change(ts) -> (result, models) under the lock, invalidate caches,
        queue the webhook models."""
        with self._lock:
            result, models = change(self.now_ms())
            self._pages.clear()
            self._lists.clear()
        if notify:
            self.webhooks.note(models)
        return result

    @staticmethod
    def _endpoint(endpoint):
        endpoint = "groups" if endpoint == "teams" else endpoint
        if endpoint not in ENDPOINTS:
            raise NotFound("unknown endpoint %r" % endpoint)
        return endpoint

    def update_record(self, endpoint, id, **fields):
        """Own-field update of any record, with the §9 propagation."""
        endpoint = self._endpoint(endpoint)
        return self._mutate(lambda ts: (id, self.store.update(endpoint, id, fields, ts)))

    def update_employee(self, id, **fields):
        return self.update_record("employees", id, **fields)

    def update_employment(self, id, **fields):
        return self.update_record("employments", id, **fields)

    def update_balance(self, id, **fields):
        return self.update_record("time-off-balances", id, **fields)

    def update_absence_type(self, id, **fields):
        return self.update_record("absence-types", id, **fields)

    def rename_group(self, id, name):
        return self.update_record("groups", id, name=name)

    def set_manager(self, employee_id, manager_id):
        if manager_id is not None:
            self.store.get("employees", manager_id)
        return self.update_record("employees", employee_id, manager_id=manager_id)

    def move_employee_group(self, employee_id, from_group_id, to_group_id):
        return self._mutate(lambda ts: (employee_id, self.store.move_group(
            employee_id, from_group_id, to_group_id, ts)))

    def soft_delete(self, endpoint, id):
        endpoint = self._endpoint(endpoint)
        return self._mutate(lambda ts: (id, self.store.soft_delete(endpoint, id, ts)))

    def vanish(self, endpoint, id):
        """Remove a record without trace: no timestamps, no webhook (drift)."""
        endpoint = self._endpoint(endpoint)
        return self._mutate(lambda ts: (id, self.store.vanish(endpoint, id)), notify=False)

    def create_employee(self, **fields):
        return self.create_record("employees", **fields)

    def add_employment(self, employee_id, **fields):
        return self.create_record("employments", employee_id=employee_id, **fields)

    def create_record(self, endpoint, **fields):
        """Create a generated record of `endpoint`, overridden by `fields`.

        Employees accept ``group_ids=[...]`` (memberships); child records
        (employments, balances, absences, timesheets) need ``employee_id``.
        """
        endpoint = self._endpoint(endpoint)
        group_ids = fields.pop("group_ids", None)

        def change(ts):
            base = self._new_fields(endpoint, fields)
            base.update(fields)
            rec, models = self.store.create(endpoint, base, ts, group_ids)
            return rec.id, models
        return self._mutate(change)

    def _new_fields(self, endpoint, fields):
        """Generated own fields for a record created at run time."""
        f = self._factory
        self._created += 1
        n = 100000 + self._created
        t = self.store.tables
        if endpoint == "employees":
            rec = f.employee(n, None, _first(t["legal-entities"]), _first(t["locations"]), "New Hire")
            return rec
        if endpoint in ("employments", "time-off-balances", "absences", "timesheets"):
            eid = fields.get("employee_id")
            self.store.get("employees", eid)
            if endpoint == "employments":
                return f.employment(eid, n, self._created, fields.get("job_title", "New Role"), None)
            if endpoint == "timesheets":
                return f.timesheet(eid)
            type_id = fields.get("type_id") or _first(t["absence-types"])
            atype = self.store.get("absence-types", type_id).fields()
            return f.balance(eid, atype) if endpoint == "time-off-balances" else f.absence(eid, None, atype)
        if endpoint == "groups":
            return f.group(fields.get("type", "TEAM"), n, None)
        return {"legal-entities": f.legal_entity, "locations": f.location,
                "absence-types": f.absence_type}[endpoint](n)

    # -- webhooks ------------------------------------------------------------------
    def flush_webhooks(self):
        """Send the pending batched data-changed webhook now (synchronously)."""
        return self.webhooks.flush()

    def send_webhook(self, type, data=None, id=None):
        """Send one signed event now, e.g. "integration-deleted"; returns its log entry."""
        return self.webhooks.send(self.payloads.event(type, data, id, self.now_ms()))

    def sent_webhooks(self):
        """Log of webhook attempts: [{id, type, body, status, error, dropped}, ...]."""
        with self.webhooks._send_lock:
            return [dict(e) for e in self.webhooks.log]

    # -- faults and statistics ------------------------------------------------------
    def set_faults(self, **kw):
        """Replace the fault configuration (see sandbox_faults); no args clears all."""
        self.faults.configure(**kw)
        self.webhooks.drop_rate = self.faults.get("webhook_drop_rate", 0.0)

    def _count(self, name, n=1):
        with self._stats_lock:
            self._stats[name] = self._stats.get(name, 0) + n

    def reset_stats(self):
        with self._stats_lock:
            self._stats = {"total": 0, "by_endpoint": {}, "by_status": {}, "bytes_sent": 0,
                           "webhooks_sent": 0, "webhooks_dropped": 0, "webhooks_failed": 0}
            self._requests = collections.deque(maxlen=REQUEST_LOG_LIMIT)

    def stats(self):
        with self._stats_lock:
            out = json.loads(json.dumps(self._stats))
        out["webhooks_pending"] = self.webhooks.pending()
        out["faults"] = self.faults.snapshot()
        with self._lock:
            out["records"] = {ep: len(t) for ep, t in self.store.tables.items()}
        return out

    def requests(self):
        """Recent API requests, oldest first: [{"method", "path", "query", "status"}]."""
        with self._stats_lock:
            return [dict(r) for r in self._requests]

    def _log_request(self, method, path, query, status, nbytes):
        name = _endpoint_name(path)
        with self._stats_lock:
            s = self._stats
            s["total"] += 1
            s["by_endpoint"][name] = s["by_endpoint"].get(name, 0) + 1
            s["by_status"][str(status)] = s["by_status"].get(str(status), 0) + 1
            s["bytes_sent"] += nbytes
            self._requests.append({"method": method, "path": path, "query": query, "status": status})

    # -- HTTP: API ------------------------------------------------------------------
    def _handle(self, h, method):
        url = urllib.parse.urlsplit(h.path)
        body = _read_body(h)  # always drain it: the connection is kept alive
        if url.path.startswith("/_sandbox/"):
            return self._handle_admin(h, method, url.path, body)
        pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        query = dict(pairs)
        resp = self._api(h, method, url.path, pairs)
        # Log before answering, so a client that has its answer sees it counted.
        if resp is None:
            self._log_request(method, url.path, query, "reset", 0)
            self._reset(h)
            return
        head, payload = _encode(h, resp)
        self._log_request(method, url.path, query, resp.status, len(payload))
        _send(h, head, payload)

    def _api(self, h, method, path, pairs):
        """The response for one API request; None = reset the connection."""
        slow = self.faults.get("slow")
        if slow:
            time.sleep(slow)
        fault = self.faults.take()
        if fault is not None and fault.kind != "truncate":
            return self._fault_response(fault)
        resp = self._serve(h, method, path, pairs)
        if resp is not None and fault is not None:
            resp.truncate = True
        return resp

    def _serve(self, h, method, path, pairs):
        route = path[len("/v1/"):] if path.startswith("/v1/") else None
        hris = route[len("hris/"):] if route and route.startswith("hris/") else None
        if route != "check-api-key" and hris not in LIST_ENDPOINTS:
            return api_error(404, None, "No route %s %s" % (method, path))
        if method != "GET":
            return api_error(405, None, "Method %s not allowed on %s" % (method, path), {"Allow": "GET"})
        auth = h.headers.get("Authorization", "")
        if self.faults.get("auth_fail") or auth != "Bearer " + self.api_key:
            return api_error(401, "PLATFORM.AUTHENTICATION_INVALID",
                             "The API key is missing or invalid. Send it as 'Authorization: Bearer <key>'.")
        if route == "check-api-key":
            return Response(200, json.dumps({"status": "success", "data": {
                "environment_id": "sandbox-environment", "customer_id": "sandbox-environment"}},
                separators=(",", ":")).encode())
        integration = h.headers.get("X-Integration-Id")
        if integration != self.integration_id:
            return api_error(404, "PLATFORM.INTEGRATION_NOT_FOUND",
                             "No integration with id %r (send the X-Integration-Id header)." % integration)
        if self.faults.get("setup_pending"):
            return api_error(409, "INTEGRATION.SETUP_SYNC_PENDING",
                             "The initial sync of this integration has not finished yet.")
        return self._list(hris, pairs)

    def _list(self, endpoint, pairs):
        names = [k for k, _ in pairs]
        dupes = sorted({k for k in names if names.count(k) > 1})
        try:
            if dupes:
                raise InputInvalid("query parameter(s) given more than once: %s" % ", ".join(dupes))
            query = parse_list_query(endpoint, dict(pairs), self._cursor_key)
        except InputInvalid as exc:
            return api_error(400, "PLATFORM.INPUT_INVALID", str(exc))
        fault = self.faults.page_fault(query.page_no)
        if fault is not None and fault.kind != "truncate":
            return self._fault_response(fault)
        entry = self._page(query)
        resp = Response(200, entry.body, _ratelimit_ok(), entry=entry)
        resp.truncate = fault is not None
        return resp

    def _fault_response(self, fault):
        if fault.kind == "reset":
            return None
        if fault.kind == "rate_limit":
            return api_error(429, "PLATFORM.RATE_LIMIT_EXCEEDED", "Too many requests.", fault.headers)
        if fault.kind == "server_error":
            code = "PLATFORM.UNKNOWN_ERROR" if fault.status == 500 else "REMOTE.SERVICE_UNAVAILABLE"
            return api_error(fault.status, code, "Simulated failure (sandbox fault).")
        assert fault.kind == "html_error", fault  # truncate is applied by the callers
        page = NGINX_PAGE.format(code=fault.status, reason=REASONS[fault.status]).encode()
        return Response(fault.status, page, ctype="text/html")

    def _reset(self, h):
        """Close the connection with RST and no response."""
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        except OSError:
            pass
        h.close_connection = True

    # -- HTTP: admin ---------------------------------------------------------------
    def _handle_admin(self, h, method, path, raw):
        try:
            status, result = self._admin(method, path[len("/_sandbox/"):], _json_object(raw))
        except (ValueError, TypeError, NotFound, InputInvalid) as exc:
            status, result = (404 if isinstance(exc, NotFound) else 400), {"error": str(exc)}
        if isinstance(result, (bytes, bytearray)):
            payload = bytes(result)
        else:
            payload = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
        _write(h, Response(status, payload))

    def _admin(self, method, route, body):
        """(status, JSON-able result or raw JSON bytes) for an admin request."""
        if method == "GET" and route.startswith("records/"):
            endpoint = route[len("records/"):]
            if endpoint not in LIST_ENDPOINTS:
                raise NotFound("unknown endpoint %r" % endpoint)
            return 200, self.visible_json(endpoint)
        routes = {
            ("GET", "stats"): self.stats,
            ("POST", "stats/reset"): self.reset_stats,
            ("GET", "requests"): self.requests,
            ("GET", "faults"): self.faults.snapshot,
            ("POST", "faults"): lambda: self.set_faults(**body),
            ("POST", "mutate"): lambda: {"result": self._admin_mutate(body)},
            ("POST", "webhooks/flush"): lambda: {"result": self.flush_webhooks()},
            ("POST", "webhooks/send"): lambda: {"result": self.send_webhook(
                body.get("type"), body.get("data"), body.get("id"))},
            ("GET", "webhooks"): self.sent_webhooks,
        }
        handler = routes.get((method, route))
        if handler is None:
            raise NotFound("no admin route %s /_sandbox/%s" % (method, route))
        result = handler()
        return 200, {"ok": True} if result is None else result

    def _admin_mutate(self, body):
        op = body.get("op")
        if op not in MUTATIONS:
            raise ValueError("unknown op %r (one of %s)" % (op, ", ".join(MUTATIONS)))
        args = body.get("args") or {}
        return getattr(self, op)(**args)


def _first(table):
    for rec in table.values():
        if rec.deleted is None:
            return rec.id
    return None


def _endpoint_name(path):
    if path == "/v1/check-api-key":
        return "check-api-key"
    if path.startswith("/v1/hris/") and path[len("/v1/hris/"):] in LIST_ENDPOINTS:
        return path[len("/v1/hris/"):]
    return "other"


def _ratelimit_ok():
    return {"ratelimit-limit": "300", "ratelimit-remaining": "299", "ratelimit-reset": "60"}


def _read_body(h):
    try:
        length = int(h.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
        h.close_connection = True  # cannot tell where the next request starts
    return h.rfile.read(length) if length > 0 else b""


def _json_object(raw):
    data = json.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("request body must be a JSON object")
    return data


def _accepts_gzip(h):
    for part in (h.headers.get("Accept-Encoding") or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip") and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


def _write(h, resp):
    _send(h, *_encode(h, resp))


def _send(h, head, body):
    h.wfile.write(head)
    h.wfile.write(body)


def _encode(h, resp):
    """(header bytes, body bytes) of a response, honouring gzip and truncation."""
    body, headers = resp.body, dict(resp.headers)
    if resp.entry is not None:
        headers["Vary"] = "Accept-Encoding"
        if _accepts_gzip(h):
            body = h.server.sandbox._gzipped(resp.entry)
            headers["Content-Encoding"] = "gzip"
    if resp.truncate:
        body = body[:len(body) // 2]
    lines = ["HTTP/1.1 %d %s" % (resp.status, REASONS.get(resp.status, "Unknown")),
             "Server: kombo-sandbox", "Content-Type: " + resp.ctype,
             "Content-Length: %d" % len(body)]
    lines += ["%s: %s" % kv for kv in headers.items()]
    if h.close_connection:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes kept-alive connections itself
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """Clients that drop connections are normal; report anything else."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "kombo-sandbox"

    def setup(self):
        super().setup()
        sb = self.server.sandbox
        with sb._stats_lock:
            sb._connections.add(self.connection)

    def finish(self):
        sb = self.server.sandbox
        with sb._stats_lock:
            sb._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt, *args):  # quiet
        pass

    def _dispatch(self):
        try:
            self.server.sandbox._handle(self, self.command)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


# -- command line -----------------------------------------------------------------

def _read_secret(path):
    with open(path, encoding="utf-8") as f:
        return f.read().rstrip("\r\n")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Local fake of Kombo's HRIS API and webhooks.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--employees", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--api-key", default="sandbox-key")
    p.add_argument("--api-key-file", help="read the API key from this file (overrides --api-key)")
    p.add_argument("--integration", default=DEFAULT_INTEGRATION)
    p.add_argument("--webhook-url")
    p.add_argument("--webhook-secret-file")
    p.add_argument("--webhook-delay", type=float, default=0.05, help="batching delay in seconds")
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument("--weird-ids", action="store_true", help="give a few records ids needing escaping")
    p.add_argument("--ready-file", help="write the port number here once listening")
    p.add_argument("--page-cache-mb", type=int, default=PAGE_CACHE_BYTES >> 20,
                   help="byte budget of the rendered-page cache (MiB)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sb = Sandbox(
        employees=args.employees, seed=args.seed,
        api_key=_read_secret(args.api_key_file) if args.api_key_file else args.api_key,
        integration_id=args.integration, webhook_url=args.webhook_url,
        webhook_secret=_read_secret(args.webhook_secret_file) if args.webhook_secret_file else None,
        webhook_delay=args.webhook_delay, host=args.host, port=args.port, weird_ids=args.weird_ids,
        page_cache_bytes=args.page_cache_mb << 20)
    if args.fail_rate:
        sb.set_faults(fail_rate=args.fail_rate)
    # One data set per process: move it out of the cyclic GC's sight, so that
    # collections while serving do not walk hundreds of thousands of records.
    gc.freeze()
    port = sb.start()
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.ready_file)
    print("kombo-sandbox listening on http://%s:%d" % (args.host, port), flush=True)
    while not stop.wait(0.5):
        pass
    sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
