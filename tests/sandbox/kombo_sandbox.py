#!/usr/bin/python3
"""Kombo sandbox: a local fake of Kombo's HRIS API and webhooks.

Run:   /usr/bin/python3 tests/sandbox/kombo_sandbox.py --port 8099 --employees 1000
       /usr/bin/python3 tests/sandbox/kombo_sandbox.py --integrations 1000 --employees-per-integration 100
Use:   from kombo_sandbox import Sandbox   (tests/sandbox on sys.path)

One sandbox serves one API key and any number of integrations, as Kombo
does: the list endpoints pick the integration by the X-Integration-Id header,
and every integration has its own generated company (sandbox_integrations).

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
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sandbox_faults import Faults  # noqa: E402
from sandbox_integrations import (CREATED_BASE_MS, DEFAULT_INTEGRATION, Integration,  # noqa: E402
                                  derive_seed, generated_ids, parse_integrations_file)
from sandbox_query import InputInvalid, LIST_ENDPOINTS, encode_cursor, parse_list_query, predicate  # noqa: E402
from sandbox_store import ENDPOINTS, NotFound, dumps  # noqa: E402
from sandbox_webhooks import Payloads, WebhookSender  # noqa: E402

__all__ = ("Sandbox", "DEFAULT_INTEGRATION", "derive_seed", "generated_ids", "main")

JSON_TYPE = "application/json; charset=utf-8"
REQUEST_LOG_LIMIT = 10000
PAGE_CACHE_BYTES = 1 << 30
LIST_CACHE_ENTRIES = 16
# Clean (never mutated) integrations whose data stays generated; beyond that
# the least recently used ones drop it and regenerate it identically on use.
MAX_LOADED = 256
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
    "INTEGRATION.SETUP_INCOMPLETE": "Setup incomplete",
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
    __slots__ = ("body", "gz", "cached")

    def __init__(self, body):
        self.body = body
        self.gz = None
        self.cached = False  # still in the PageCache (its bytes count against the budget)


class PageCache:
    """LRU of rendered pages with a byte budget.

    Keys start with a tag (one per integration); a mutation drops the pages of
    its integration only (`drop`), `clear` drops everything.
    """

    def __init__(self, budget):
        self.budget = budget
        self.entries = collections.OrderedDict()
        self.size = 0
        self._tags = {}  # tag -> set of keys

    def get(self, key):
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, key, entry):
        self.entries[key] = entry
        entry.cached = True
        self._tags.setdefault(key[0], set()).add(key)
        self.grow(len(entry.body))

    def add_gzip(self, entry, gz):
        """Attach the gzip variant; counted only if the entry is still cached."""
        entry.gz = gz
        if entry.cached:
            self.grow(len(gz))

    def grow(self, n):
        self.size += n
        while self.size > self.budget and len(self.entries) > 1:
            key, old = self.entries.popitem(last=False)
            self._forget(key, old)

    def _forget(self, key, old):
        old.cached = False
        self.size -= len(old.body) + (len(old.gz) if old.gz else 0)
        keys = self._tags.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._tags[key[0]]

    def drop(self, tag):
        """Forget every page of one tag (one integration)."""
        for key in self._tags.pop(tag, ()):
            old = self.entries.pop(key)
            old.cached = False
            self.size -= len(old.body) + (len(old.gz) if old.gz else 0)

    def clear(self):
        for entry in self.entries.values():
            entry.cached = False
        self.entries.clear()
        self._tags.clear()
        self.size = 0


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
    """The sandbox: integrations and their data, HTTP server, webhooks, faults
    and statistics.

    ``Sandbox(employees=200, integration_id=X)`` is one integration, X (the
    default one). ``integrations=`` declares more: a dict ``{id: employees}``
    (a value may also be a dict of `add_integration` keywords, or None for
    `employees`), a list of ids (or of ``(id, employees-or-dict)`` pairs), or
    an int N (N ids from `generated_ids`, the first being `integration_id`).
    The first integration is the default of every method's ``integration=``
    argument; it is generated at once, the others on first use.
    """

    def __init__(self, employees=200, seed=1, api_key="sandbox-key",
                 integration_id=None, webhook_url=None, webhook_secret=None,
                 webhook_delay=0.05, host="127.0.0.1", port=0, weird_ids=False,
                 page_cache_bytes=PAGE_CACHE_BYTES, integrations=None,
                 max_loaded=MAX_LOADED, preload=False):
        self.seed = seed
        self.api_key = api_key
        self.employees = employees
        self.weird_ids = weird_ids
        self.max_loaded = None if preload else max_loaded
        self.freeze_loaded = False  # gc.freeze() after each lazy generation (the CLI sets it)
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._stats_lock = threading.Lock()
        self._tenants = {}                        # id -> Integration, declaration order
        self._removed = {}                        # id -> removed Integration (for webhooks)
        self._loaded = collections.OrderedDict()  # id -> Integration holding data, LRU first
        self._serial = 0
        self._pages = PageCache(page_cache_bytes)
        self._last_ms = 0
        self.faults = Faults(seed)
        self.webhooks = WebhookSender(webhook_url, webhook_secret, webhook_delay,
                                      self._payloads_for, self._count)
        self._server = None
        self._thread = None
        self._connections = set()
        self.reset_stats()
        specs = _integration_specs(integrations, integration_id, employees, seed)
        self.integration_id = specs[0][0]
        for iid, opts in specs:
            self._add(iid, created_at_ms=CREATED_BASE_MS + (self._serial + 1) * 3600 * 1000, **opts)
        for tenant in (list(self._tenants.values()) if preload else [self._tenant()]):
            self._tenant_data(tenant)

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

    # -- integrations ------------------------------------------------------------
    def _add(self, iid, employees, seed=None, weird_ids=None, created_at_ms=None, **attrs):
        with self._lock:
            if iid in self._tenants:
                raise ValueError("integration %r exists already" % (iid,))
            serial = self._serial + 1
            if seed is None:
                seed = self.seed if serial == 1 else derive_seed(self.seed, iid)
            if serial == 1:
                cursor_key = "kombo-sandbox-cursor:%s" % self.seed
            else:
                cursor_key = "kombo-sandbox-cursor:%s:%s:%d" % (self.seed, iid, serial)
            tenant = Integration(iid, serial, employees, seed,
                                 self.weird_ids if weird_ids is None else weird_ids,
                                 cursor_key.encode(), created_at_ms or self.now_ms(), **attrs)
            tenant.lists = collections.OrderedDict()
            self._serial = serial
            self._tenants[iid] = tenant
            self._removed.pop(iid, None)
            return tenant

    def add_integration(self, id, employees=None, seed=None, weird_ids=None, notify=False,
                        preload=False, **attrs):
        """Add an integration (its API answers at once). `attrs`: status, setup_status,
        qa_status, origin_id, organization_name, creator_email, data_expired_at.
        `notify=True` also sends integration-created. Returns the id."""
        tenant = self._add(id, self.employees if employees is None else employees, seed, weird_ids,
                           None, **attrs)
        if preload:
            self._tenant_data(tenant)
        if notify:
            self.send_webhook("integration-created", integration=id)
        return id

    def remove_integration(self, id, notify=False):
        """Remove an integration: its API and GET /integrations/{id} answer 404, its
        pending data-changed is dropped. `notify=True` also sends integration-deleted."""
        with self._lock:
            tenant = self._tenants.pop(id, None)
            if tenant is None:
                raise NotFound("no integration %r" % (id,))
            self._removed[id] = tenant
            self._loaded.pop(id, None)
            tenant.store = tenant.factory = None
            tenant.lists.clear()
            self._pages.drop(tenant.tag)
        self.webhooks.discard(id)
        self.webhooks.drop_rates.pop(id, None)
        if notify:
            self.send_webhook("integration-deleted", integration=id)
        return id

    def update_integration(self, id, notify=False, **attrs):
        """Change an integration's description (status, setup_status, qa_status,
        origin_id, organization_name, creator_email, data_expired_at).
        `notify=True` also sends integration-state-changed. Returns the new description."""
        with self._lock:
            tenant = self._tenant(id)
            tenant.update(**attrs)
            out = tenant.describe()
        if notify:
            self.send_webhook("integration-state-changed", integration=id)
        return out

    def integration(self, id=None):
        """What GET /integrations/{id} answers in `data` (NotFound if unknown)."""
        with self._lock:
            return self._tenant(id).describe()

    def integrations(self):
        """The current integration ids, in the order they were added."""
        with self._lock:
            return list(self._tenants)

    def integration_summaries(self):
        with self._lock:
            return [t.summary() for t in self._tenants.values()]

    def _tenant(self, integration=None):
        iid = self.integration_id if integration is None else integration
        tenant = self._tenants.get(iid)
        if tenant is None:
            raise NotFound("no integration %r" % (iid,))
        return tenant

    def _tenant_data(self, tenant):
        """The integration's store, generated now if needed (then LRU bookkeeping).
        NotFound if the integration was removed meanwhile (a request in flight)."""
        with self._lock:
            if self._tenants.get(tenant.id) is not tenant:
                raise NotFound("no integration %r" % (tenant.id,))
            if tenant.store is None:
                tenant.load()
                tenant.lists.clear()
                self._loaded[tenant.id] = tenant
                self._evict()
                if self.freeze_loaded:
                    gc.freeze()
            elif tenant.id in self._loaded:
                self._loaded.move_to_end(tenant.id)
            return tenant.store

    def _evict(self):
        """Drop the data of the least recently used clean integrations beyond max_loaded."""
        if not self.max_loaded:
            return
        clean = [t for t in self._loaded.values() if not t.dirty and t.id != self.integration_id]
        for tenant in clean[:max(0, len(clean) - self.max_loaded)]:
            del self._loaded[tenant.id]
            tenant.unload()
            tenant.lists.clear()

    @property
    def store(self):
        """The default integration's record store."""
        return self._tenant_data(self._tenant())

    @property
    def _lists(self):
        return self._tenant().lists

    @property
    def _cursor_key(self):
        return self._tenant().cursor_key

    @property
    def payloads(self):
        return self._payloads_for(self.integration_id)

    # -- clock -----------------------------------------------------------------
    def now_ms(self, integration=None):
        """Strictly increasing ms clock (plus clock_skew) that stamps changes."""
        with self._lock:
            self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
            skew = self.faults.get("clock_skew", 0)
            tenant = self._tenants.get(self.integration_id if integration is None else integration)
            if tenant is not None:
                skew += tenant.faults.get("clock_skew", 0)
            return self._last_ms + int(skew * 1000)

    # -- reading ------------------------------------------------------------------
    def visible(self, endpoint, integration=None):
        """Records a complete listing without updated_after/include_deleted returns."""
        return json.loads(self.visible_json(endpoint, integration))

    def visible_json(self, endpoint, integration=None):
        """`visible()` as one JSON array (bytes), as the API renders the records."""
        with self._lock:
            tenant = self._tenant(integration)
            query = parse_list_query(endpoint, {}, tenant.cursor_key)
            recs, _ = self._filtered(query, tenant)
            render = tenant.store.render
            return b"[" + b",".join(render(query.table, r) for r in recs) + b"]"

    def _filtered(self, query, tenant=None):
        """(records, seqs) matching the query's filters, in listing order (cached)."""
        with self._lock:
            tenant = tenant or self._tenant()
            store = self._tenant_data(tenant)
            lists = tenant.lists
            hit = lists.get(query.key)
            if hit is not None:
                lists.move_to_end(query.key)
                return hit
            match = predicate(query)
            since = query.filters.get("updated_after")  # microseconds
            if since is not None:
                # touched (ms) * 1000 > since  <=>  touched > since // 1000
                candidates = store.touched_after(query.table, since // 1000)
            else:
                candidates = store.tables[query.table].values()
            recs = [r for r in candidates if match(r)]
            hit = (recs, [r.seq for r in recs])
            lists[query.key] = hit
            if len(lists) > LIST_CACHE_ENTRIES:
                lists.popitem(last=False)
            return hit

    def _page(self, query, tenant=None):
        """The cached page entry for a validated list query."""
        with self._lock:
            tenant = tenant or self._tenant()
            key = (tenant.tag, query.key, query.after_seq, query.page_size, query.page_no)
            entry = self._pages.get(key)
            if entry is None:
                entry = PageEntry(self._render_page(query, tenant))
                self._pages.put(key, entry)
            return entry

    def _render_page(self, query, tenant):
        recs, seqs = self._filtered(query, tenant)
        start = bisect.bisect_right(seqs, query.after_seq)
        page = recs[start:start + query.page_size]
        more = start + len(page) < len(recs)
        nxt = json.dumps(encode_cursor(query, page[-1].seq, tenant.cursor_key)).encode() if more else b"null"
        render = tenant.store.render
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
    def _mutate(self, change, notify=True, integration=None):
        """Run change(tenant, store, ts) -> (result, models) under the lock for one
        integration, invalidate its caches, queue the webhook models."""
        with self._lock:
            tenant = self._tenant(integration)
            store = self._tenant_data(tenant)
            tenant.dirty = True  # from now on its data cannot be regenerated
            try:
                result, models = change(tenant, store, self.now_ms(tenant.id))
            finally:
                self._pages.drop(tenant.tag)
                tenant.lists.clear()
        if notify:
            self.webhooks.note(models, tenant.id)
        return result

    @staticmethod
    def _endpoint(endpoint):
        endpoint = "groups" if endpoint == "teams" else endpoint
        if endpoint not in ENDPOINTS:
            raise NotFound("unknown endpoint %r" % endpoint)
        return endpoint

    def update_record(self, endpoint, id, integration=None, **fields):
        """Own-field update of any record, with the §9 propagation."""
        endpoint = self._endpoint(endpoint)
        return self._mutate(lambda t, store, ts: (id, store.update(endpoint, id, fields, ts)),
                            integration=integration)

    def update_employee(self, id, integration=None, **fields):
        return self.update_record("employees", id, integration, **fields)

    def update_employment(self, id, integration=None, **fields):
        return self.update_record("employments", id, integration, **fields)

    def update_balance(self, id, integration=None, **fields):
        return self.update_record("time-off-balances", id, integration, **fields)

    def update_absence_type(self, id, integration=None, **fields):
        return self.update_record("absence-types", id, integration, **fields)

    def rename_group(self, id, name, integration=None):
        return self.update_record("groups", id, integration, name=name)

    def set_manager(self, employee_id, manager_id, integration=None):
        def change(t, store, ts):
            if manager_id is not None:
                store.get("employees", manager_id)
            return employee_id, store.update("employees", employee_id, {"manager_id": manager_id}, ts)
        return self._mutate(change, integration=integration)

    def move_employee_group(self, employee_id, from_group_id, to_group_id, integration=None):
        return self._mutate(lambda t, store, ts: (employee_id, store.move_group(
            employee_id, from_group_id, to_group_id, ts)), integration=integration)

    def soft_delete(self, endpoint, id, integration=None):
        endpoint = self._endpoint(endpoint)
        return self._mutate(lambda t, store, ts: (id, store.soft_delete(endpoint, id, ts)),
                            integration=integration)

    def vanish(self, endpoint, id, integration=None):
        """Remove a record without trace: no timestamps, no webhook (drift)."""
        endpoint = self._endpoint(endpoint)
        return self._mutate(lambda t, store, ts: (id, store.vanish(endpoint, id)), notify=False,
                            integration=integration)

    def create_employee(self, integration=None, **fields):
        return self.create_record("employees", integration, **fields)

    def add_employment(self, employee_id, integration=None, **fields):
        return self.create_record("employments", integration, employee_id=employee_id, **fields)

    def create_record(self, endpoint, integration=None, **fields):
        """Create a generated record of `endpoint`, overridden by `fields`.

        Employees accept ``group_ids=[...]`` (memberships); child records
        (employments, balances, absences, timesheets) need ``employee_id``.
        """
        endpoint = self._endpoint(endpoint)
        group_ids = fields.pop("group_ids", None)

        def change(tenant, store, ts):
            base = _new_fields(tenant, store, endpoint, fields)
            base.update(fields)
            rec, models = store.create(endpoint, base, ts, group_ids)
            return rec.id, models
        return self._mutate(change, integration=integration)

    # -- webhooks ------------------------------------------------------------------
    def _payloads_for(self, integration_id):
        tenant = self._tenants.get(integration_id) or self._removed.get(integration_id)
        return tenant.payloads if tenant is not None else Payloads(integration_id)

    def flush_webhooks(self, integration=None):
        """Send the pending batched data-changed webhooks now (synchronously), one per
        integration with changes (or only `integration`'s). Returns the first log
        entry, or None if nothing was pending."""
        return self.webhooks.flush(integration)

    def send_webhook(self, type, data=None, id=None, integration=None, **fields):
        """Send one signed event now; returns its log entry.

        ``send_webhook(type, integration_id, **fields)`` and
        ``send_webhook(type, {data...}, id=None, integration=None)`` both work:
        the event describes `integration` (default: the default integration; a
        removed or never known id works too), and `data` then `fields` override
        its data keys (a shallow merge).
        """
        if isinstance(data, str):
            if integration is not None:
                raise TypeError("integration given twice")
            integration, data = data, None
        iid = self.integration_id if integration is None else integration
        merged = dict(data or {})
        merged.update(fields)
        return self.webhooks.send(self._payloads_for(iid).event(type, merged, id, self.now_ms(iid)))

    def sent_webhooks(self):
        """Log of webhook attempts: [{id, type, integration, body, status, error, dropped}, ...]."""
        with self.webhooks._send_lock:
            return [dict(e) for e in self.webhooks.log]

    # -- faults and statistics ------------------------------------------------------
    def set_faults(self, integration=None, **kw):
        """Replace a fault configuration (see sandbox_faults); no keywords clears it.

        Without `integration`: the sandbox-wide faults, for every /v1 request.
        With it: that integration's own faults, for the list requests naming it
        (and its clock_skew / webhook_drop_rate); they add to the sandbox-wide ones.
        """
        if integration is None:
            self.faults.configure(**kw)
            self.webhooks.drop_rate = self.faults.get("webhook_drop_rate", 0.0)
            return
        tenant = self._tenant(integration)
        tenant.faults.configure(**kw)
        rate = tenant.faults.get("webhook_drop_rate", 0.0)
        if rate:
            self.webhooks.drop_rates[tenant.id] = rate
        else:
            self.webhooks.drop_rates.pop(tenant.id, None)

    def clear_faults(self):
        """Switch off every fault: sandbox-wide and of every integration."""
        self.set_faults()
        with self._lock:
            tenants = list(self._tenants)
        for iid in tenants:
            self.set_faults(integration=iid)

    def fault_snapshot(self, integration=None):
        """The sandbox-wide faults, or one integration's (with the *_left counts)."""
        if integration is None:
            return self.faults.snapshot()
        return self._tenant(integration).faults.snapshot()

    def _count(self, name, integration=None, n=1):
        with self._stats_lock:
            self._stats[name] = self._stats.get(name, 0) + n
            if integration is not None:
                per = self._per_integration(integration)
                per[name] = per.get(name, 0) + n

    def _per_integration(self, integration):
        """The counters of one integration (caller holds _stats_lock)."""
        per = self._stats["by_integration"].get(integration)
        if per is None:
            per = self._stats["by_integration"][integration] = {
                "total": 0, "by_endpoint": {}, "by_status": {}, "bytes_sent": 0,
                "webhooks_sent": 0, "webhooks_dropped": 0, "webhooks_failed": 0}
        return per

    def reset_stats(self, integration=None):
        """Zero the counters and clear the request log; with `integration`, zero only
        that integration's counters in by_integration."""
        with self._stats_lock:
            if integration is not None:
                self._stats["by_integration"].pop(integration, None)
                return
            self._stats = {"total": 0, "by_endpoint": {}, "by_status": {}, "bytes_sent": 0,
                           "webhooks_sent": 0, "webhooks_dropped": 0, "webhooks_failed": 0,
                           "by_integration": {}}
            self._requests = collections.deque(maxlen=REQUEST_LOG_LIMIT)

    def stats(self):
        with self._stats_lock:
            out = json.loads(json.dumps(self._stats))
        out["webhooks_pending"] = self.webhooks.pending()
        out["webhooks_pending_by_integration"] = self.webhooks.pending_by_integration()
        out["faults"] = self.faults.snapshot()
        with self._lock:
            out["integration_faults"] = {iid: snap for iid, snap in
                                         ((t.id, t.faults.snapshot()) for t in self._tenants.values())
                                         if snap}
            default = self._tenants.get(self.integration_id)
            tables = default.store.tables if default is not None and default.store is not None else {}
            out["records"] = {ep: len(t) for ep, t in tables.items()}
            out["integrations"] = {"count": len(self._tenants), "loaded": len(self._loaded),
                                   "mutated": sum(1 for t in self._tenants.values() if t.dirty),
                                   "removed": len(self._removed)}
        return out

    def requests(self):
        """Recent API requests, oldest first: [{"method", "path", "query", "status", "integration"}]."""
        with self._stats_lock:
            return [dict(r) for r in self._requests]

    def _log_request(self, method, path, query, status, nbytes, integration=None):
        name = _endpoint_name(path)
        with self._stats_lock:
            counters = [self._stats]
            if integration is not None:
                counters.append(self._per_integration(integration))
            for s in counters:
                s["total"] += 1
                s["by_endpoint"][name] = s["by_endpoint"].get(name, 0) + 1
                s["by_status"][str(status)] = s["by_status"].get(str(status), 0) + 1
                s["bytes_sent"] += nbytes
            self._requests.append({"method": method, "path": path, "query": query, "status": status,
                                   "integration": integration})

    # -- HTTP: API ------------------------------------------------------------------
    def _handle(self, h, method):
        url = urllib.parse.urlsplit(h.path)
        body = _read_body(h)  # always drain it: the connection is kept alive
        pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        query = dict(pairs)
        if url.path.startswith("/_sandbox/"):
            return self._handle_admin(h, method, url.path, body, query)
        resp = self._api(h, method, url.path, pairs)
        integration = _request_integration(h, url.path)
        # Log before answering, so a client that has its answer sees it counted.
        if resp is None:
            self._log_request(method, url.path, query, "reset", 0, integration)
            self._reset(h)
            return
        head, payload = _encode(h, resp)
        self._log_request(method, url.path, query, resp.status, len(payload), integration)
        _send(h, head, payload)

    def _list_tenant(self, h, path):
        """The known integration a list request names, else None."""
        if path.startswith("/v1/hris/") and path[len("/v1/hris/"):] in LIST_ENDPOINTS:
            return self._tenants.get(h.headers.get("X-Integration-Id"))
        return None

    def _api(self, h, method, path, pairs):
        """The response for one API request; None = reset the connection."""
        tenant = self._list_tenant(h, path)
        slow = (self.faults.get("slow") or 0) + ((tenant.faults.get("slow") or 0) if tenant else 0)
        if slow:
            time.sleep(slow)
        fault = self.faults.take()
        if fault is None and tenant is not None:
            fault = tenant.faults.take()
        if fault is not None and fault.kind != "truncate":
            return self._fault_response(fault)
        resp = self._serve(h, method, path, pairs)
        if resp is not None and fault is not None:
            resp.truncate = True
        return resp

    def _serve(self, h, method, path, pairs):
        route = path[len("/v1/"):] if path.startswith("/v1/") else None
        hris = route[len("hris/"):] if route and route.startswith("hris/") else None
        target = None
        if route and route.startswith("integrations/"):
            target = route[len("integrations/"):]
            if not target or "/" in target:
                return api_error(404, None, "No route %s %s" % (method, path))
            target = urllib.parse.unquote(target)
        elif route != "check-api-key" and hris not in LIST_ENDPOINTS:
            return api_error(404, None, "No route %s %s" % (method, path))
        if method != "GET":
            return api_error(405, None, "Method %s not allowed on %s" % (method, path), {"Allow": "GET"})
        auth = h.headers.get("Authorization", "")
        if self.faults.get("auth_fail") or auth != "Bearer " + self.api_key:
            return _auth_error()
        if route == "check-api-key":
            return Response(200, json.dumps({"status": "success", "data": {
                "environment_id": "sandbox-environment", "customer_id": "sandbox-environment"}},
                separators=(",", ":")).encode())
        if target is not None:
            try:
                data = self.integration(target)
            except NotFound:
                return _not_found(target)
            return Response(200, dumps({"status": "success", "data": data}))
        integration = h.headers.get("X-Integration-Id")
        tenant = self._tenants.get(integration)
        if tenant is None:
            return _not_found(integration, " (send the X-Integration-Id header)")
        if tenant.faults.get("auth_fail"):
            return _auth_error()
        if self.faults.get("setup_pending") or tenant.faults.get("setup_pending") \
                or tenant.setup_status == "FINAL_SYNC_PENDING":
            return api_error(409, "INTEGRATION.SETUP_SYNC_PENDING",
                             "The initial sync of this integration has not finished yet.")
        if tenant.setup_status == "INCOMPLETE":
            return api_error(409, "INTEGRATION.SETUP_INCOMPLETE",
                             "The setup of this integration has not been completed.")
        return self._list(tenant, hris, pairs)

    def _list(self, tenant, endpoint, pairs):
        names = [k for k, _ in pairs]
        dupes = sorted({k for k in names if names.count(k) > 1})
        try:
            if dupes:
                raise InputInvalid("query parameter(s) given more than once: %s" % ", ".join(dupes))
            query = parse_list_query(endpoint, dict(pairs), tenant.cursor_key)
        except InputInvalid as exc:
            return api_error(400, "PLATFORM.INPUT_INVALID", str(exc))
        fault = self.faults.page_fault(query.page_no) or tenant.faults.page_fault(query.page_no)
        if fault is not None and fault.kind != "truncate":
            return self._fault_response(fault)
        try:
            entry = self._page(query, tenant)
        except NotFound:  # removed while this request was on its way
            return _not_found(tenant.id)
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
    def _handle_admin(self, h, method, path, raw, query):
        try:
            status, result = self._admin(method, path[len("/_sandbox/"):], _json_object(raw), query)
        except (ValueError, TypeError, NotFound, InputInvalid) as exc:
            status, result = (404 if isinstance(exc, NotFound) else 400), {"error": str(exc)}
        if isinstance(result, (bytes, bytearray)):
            payload = bytes(result)
        else:
            payload = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
        _write(h, Response(status, payload))

    def _admin(self, method, route, body, query):
        """(status, JSON-able result or raw JSON bytes) for an admin request."""
        if method == "GET" and route.startswith("records/"):
            endpoint = route[len("records/"):]
            if endpoint not in LIST_ENDPOINTS:
                raise NotFound("unknown endpoint %r" % endpoint)
            return 200, self.visible_json(endpoint, query.get("integration"))
        if method == "GET" and route.startswith("integrations/"):
            return 200, self.integration(urllib.parse.unquote(route[len("integrations/"):]))
        routes = {
            ("GET", "stats"): self.stats,
            ("POST", "stats/reset"): lambda: self.reset_stats(body.get("integration")),
            ("GET", "requests"): self.requests,
            ("GET", "faults"): lambda: self.fault_snapshot(query.get("integration")),
            ("POST", "faults"): lambda: self.set_faults(**body),
            ("POST", "mutate"): lambda: {"result": self._admin_mutate(body)},
            ("POST", "webhooks/flush"): lambda: {"result": self.flush_webhooks(body.get("integration"))},
            ("POST", "webhooks/send"): lambda: {"result": self.send_webhook(
                body.get("type"), body.get("data"), body.get("id"), integration=body.get("integration"))},
            ("GET", "webhooks"): self.sent_webhooks,
            ("GET", "integrations"): self.integration_summaries,
            ("POST", "integrations"): lambda: {"result": self.add_integration(**body)},
            ("POST", "integrations/remove"): lambda: {"result": self.remove_integration(**body)},
            ("POST", "integrations/update"): lambda: {"result": self.update_integration(**body)},
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


def _integration_specs(integrations, integration_id, employees, seed):
    """[(id, add_integration keywords)] from the constructor's arguments; the
    default integration first."""
    if integrations is None:
        return [(integration_id or DEFAULT_INTEGRATION, {"employees": employees})]
    if isinstance(integrations, int) and not isinstance(integrations, bool):
        if integrations < 1:
            raise ValueError("integrations must be at least 1")
        return [(iid, {"employees": employees})
                for iid in generated_ids(integrations, seed, integration_id or DEFAULT_INTEGRATION)]
    items = integrations.items() if isinstance(integrations, dict) else \
        [(x, None) if isinstance(x, str) else tuple(x) for x in integrations]
    specs = []
    for iid, value in items:
        if value is None:
            opts = {"employees": employees}
        elif isinstance(value, int) and not isinstance(value, bool):
            opts = {"employees": value}
        elif isinstance(value, dict):
            opts = dict(value)
            opts.setdefault("employees", employees)
        else:
            raise ValueError("integration %r: give an employee count or a dict of options" % (iid,))
        specs.append((iid, opts))
    ids = [iid for iid, _ in specs]
    if len(set(ids)) != len(ids):
        raise ValueError("an integration id is listed twice")
    if integration_id is not None:
        if integration_id in ids:
            specs.insert(0, specs.pop(ids.index(integration_id)))
        else:
            specs.insert(0, (integration_id, {"employees": employees}))
    if not specs:
        raise ValueError("a sandbox needs at least one integration")
    return specs


def _new_fields(tenant, store, endpoint, fields):
    """Generated own fields for a record created at run time."""
    f = tenant.factory
    tenant.created += 1
    n = 100000 + tenant.created
    t = store.tables
    if endpoint == "employees":
        return f.employee(n, None, _first(t["legal-entities"]), _first(t["locations"]), "New Hire")
    if endpoint in ("employments", "time-off-balances", "absences", "timesheets"):
        eid = fields.get("employee_id")
        store.get("employees", eid)
        if endpoint == "employments":
            return f.employment(eid, n, tenant.created, fields.get("job_title", "New Role"), None)
        if endpoint == "timesheets":
            return f.timesheet(eid)
        type_id = fields.get("type_id") or _first(t["absence-types"])
        atype = store.get("absence-types", type_id).fields()
        return f.balance(eid, atype) if endpoint == "time-off-balances" else f.absence(eid, None, atype)
    if endpoint == "groups":
        return f.group(fields.get("type", "TEAM"), n, None)
    return {"legal-entities": f.legal_entity, "locations": f.location,
            "absence-types": f.absence_type}[endpoint](n)


def _auth_error():
    return api_error(401, "PLATFORM.AUTHENTICATION_INVALID",
                     "The API key is missing or invalid. Send it as 'Authorization: Bearer <key>'.")


def _not_found(integration, hint=""):
    return api_error(404, "PLATFORM.INTEGRATION_NOT_FOUND",
                     "No integration with id %r%s." % (integration, hint))


def _request_integration(h, path):
    """The integration a /v1 request is about, for the statistics (None if none)."""
    if path.startswith("/v1/hris/"):
        return h.headers.get("X-Integration-Id") or None
    if path.startswith("/v1/integrations/"):
        rest = path[len("/v1/integrations/"):]
        return urllib.parse.unquote(rest) if rest and "/" not in rest else None
    return None


def _first(table):
    for rec in table.values():
        if rec.deleted is None:
            return rec.id
    return None


def _endpoint_name(path):
    if path == "/v1/check-api-key":
        return "check-api-key"
    if path.startswith("/v1/integrations/"):
        return "integrations"
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
    p.add_argument("--employees", type=int, default=200,
                   help="employees of the integration (of each, with --integrations/-file)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--api-key", default="sandbox-key")
    p.add_argument("--api-key-file", help="read the API key from this file (overrides --api-key)")
    p.add_argument("--integration", default=None,
                   help="the (first) integration id (default %s)" % DEFAULT_INTEGRATION)
    many = p.add_mutually_exclusive_group()
    many.add_argument("--integrations", type=int, metavar="N",
                      help="serve N integrations: --integration, then N-1 generated ids")
    many.add_argument("--integrations-file", metavar="F",
                      help="serve the integrations listed in F, one 'ID [EMPLOYEES] [NAME=VALUE ...]' a line")
    p.add_argument("--employees-per-integration", type=int, metavar="M",
                   help="employees of each integration without its own count (default --employees)")
    p.add_argument("--max-loaded", type=int, default=MAX_LOADED, metavar="K",
                   help="keep the data of at most K clean integrations generated (0 = no limit)")
    p.add_argument("--preload", action="store_true",
                   help="generate every integration at start (default: on first use)")
    p.add_argument("--webhook-url")
    p.add_argument("--webhook-secret-file")
    p.add_argument("--webhook-delay", type=float, default=0.05, help="batching delay in seconds")
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument("--weird-ids", action="store_true", help="give a few records ids needing escaping")
    p.add_argument("--ready-file", help="write the port number here once listening")
    p.add_argument("--page-cache-mb", type=int, default=PAGE_CACHE_BYTES >> 20,
                   help="byte budget of the rendered-page cache (MiB)")
    args = p.parse_args(argv)
    per = args.employees if args.employees_per_integration is None else args.employees_per_integration
    args.employees_each = per
    args.integration_specs = None
    if args.integrations is not None:
        if args.integrations < 1:
            p.error("--integrations must be at least 1")
        args.integration_specs = args.integrations
    elif args.integrations_file:
        try:
            args.integration_specs = parse_integrations_file(args.integrations_file, per)
        except (OSError, ValueError) as exc:
            p.error(str(exc))
        if not args.integration_specs and args.integration is None:
            p.error("%s lists no integration" % args.integrations_file)
    return args


def main(argv=None):
    args = parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sb = Sandbox(
        employees=args.employees if args.integration_specs is None else args.employees_each,
        seed=args.seed,
        api_key=_read_secret(args.api_key_file) if args.api_key_file else args.api_key,
        integration_id=args.integration, webhook_url=args.webhook_url,
        webhook_secret=_read_secret(args.webhook_secret_file) if args.webhook_secret_file else None,
        webhook_delay=args.webhook_delay, host=args.host, port=args.port, weird_ids=args.weird_ids,
        page_cache_bytes=args.page_cache_mb << 20, integrations=args.integration_specs,
        max_loaded=args.max_loaded or None, preload=args.preload)
    if args.fail_rate:
        sb.set_faults(fail_rate=args.fail_rate)
    # One data set per process: move it out of the cyclic GC's sight, so that
    # collections while serving do not walk hundreds of thousands of records.
    # Integrations generated later are frozen as they come.
    gc.freeze()
    sb.freeze_loaded = True
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
