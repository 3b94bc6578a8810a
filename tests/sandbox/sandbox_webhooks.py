"""Kombo webhooks: payloads (kombo-api.md §5-§6), signing and a batching
sender thread.

Kombo posts the events of every integration of an environment to one URL,
signed with one secret; only the body names the integration.  So there is one
`WebhookSender` per sandbox and one `Payloads` per integration.

Changes are noted with `WebhookSender.note(models, integration_id)`; the first
note after a send arms a timer of `delay` seconds, and when it fires each
integration with noted changes gets one ``data-changed`` event listing every
model noted for it meanwhile.  Delivery runs on the sender thread (or on the
caller's thread for `flush()` / `send()`), never on an API request thread,
and a failing receiver is only counted.
"""

import base64
import hashlib
import hmac
import http.client
import json
import random
import string
import threading
import time
import urllib.parse

from sandbox_data import iso_ms

# Order of changed_models in an event (the OAS enum order of §5).
MODEL_ORDER = (
    "hris_legal_entities", "hris_locations", "hris_employees", "hris_absence_types",
    "hris_absences", "hris_employments", "hris_teams", "hris_time_off_balances",
    "hris_timesheets", "hris_join_employees_teams",
)
WEBHOOK_TYPES = ("data-changed", "integration-created", "integration-deleted",
                 "integration-state-changed")
DEFAULT_END_USER = {"organization_name": "Northwind Traders", "creator_email": "hr@northwind.example",
                    "origin_id": "northwind-1"}
LOG_LIMIT = 1000


def sign(secret, body):
    """X-Kombo-Signature: base64url(HMAC-SHA256(secret, raw body)), no padding."""
    if isinstance(secret, str):
        secret = secret.encode()
    digest = hmac.new(secret, body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def encode(event):
    """Compact UTF-8 JSON body, the form Kombo's test vector uses."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


class Payloads:
    """Builds event envelopes for one integration.

    `end_user`, `state`, `setup_status` and `qa_status` are the defaults the
    integration-* events carry; the sandbox keeps them in step with the
    integration's description.
    """

    def __init__(self, integration_id, category="HRIS", end_user=None):
        self.integration_id = integration_id
        self.tool = integration_id.split(":", 1)[0]
        self.category = category
        self.end_user = dict(end_user or DEFAULT_END_USER)
        self.state, self.setup_status, self.qa_status = "ACTIVE", "COMPLETED", "PASSED"
        self._rng = random.Random()  # event ids only need to be unique

    def event_id(self):
        return "".join(self._rng.choices(string.ascii_letters + string.digits, k=24))

    def data_changed(self, models, event_id=None):
        names = sorted(set(models), key=lambda m: (MODEL_ORDER.index(m) if m in MODEL_ORDER else 99, m))
        return {"id": event_id or self.event_id(), "type": "data-changed", "data": {
            "integration_id": self.integration_id,
            "integration_tool": self.tool,
            "integration_category": self.category,
            "changed_models": [{"name": n} for n in names],
        }}

    def event(self, kind, data=None, event_id=None, now_ms=None):
        """Any supported event; `data` keys override (shallow) the defaults.

        For data-changed, ``data={"changed_models": [...]}`` may be given as
        names or as ``{"name": ...}`` objects.
        """
        if kind not in WEBHOOK_TYPES:
            raise ValueError("unsupported webhook type %r (one of %s)" % (kind, ", ".join(WEBHOOK_TYPES)))
        data = dict(data or {})
        now = iso_ms(now_ms if now_ms is not None else int(time.time() * 1000))
        if kind == "data-changed":
            models = [m["name"] if isinstance(m, dict) else m for m in data.pop("changed_models", ())]
            event = self.data_changed(models, event_id)
            event["data"].update(data)
            return event
        if kind == "integration-state-changed":
            base = {"integration_tool": self.tool, "integration_id": self.integration_id,
                    "integration_category": self.category, "end_user": dict(self.end_user),
                    "qa_status": self.qa_status, "setup_status": self.setup_status,
                    "state": self.state, "updated_at": now}
        else:
            base = {"id": self.integration_id, "tool": self.tool, "category": self.category,
                    "end_user": dict(self.end_user)}
            if kind == "integration-deleted":
                base["deleted_at"] = now
        base.update(data)
        return {"id": event_id or self.event_id(), "type": kind, "data": base}


def named_integration(event):
    """The integration an event's body names (data.integration_id, else data.id)."""
    data = event.get("data") or {}
    return data.get("integration_id", data.get("id")) if isinstance(data, dict) else None


class WebhookSender:
    """Batches model changes per integration and POSTs signed events to one URL."""

    def __init__(self, url, secret, delay, payloads_for, stats, timeout=5.0):
        self.url = url
        self.secret = secret.encode() if isinstance(secret, str) else (secret or b"")
        self.delay = delay
        self.payloads_for = payloads_for  # callable(integration_id) -> Payloads
        self.stats = stats  # callable(name, integration_id) -> increments a counter
        self.timeout = timeout
        self.drop_rate = 0.0
        self.drop_rates = {}  # integration id -> its own extra drop rate
        self.drop_rng = random.Random(0)
        self.log = []
        self._pending = {}  # integration id -> set of model names (first noted first)
        self._deadline = None
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._stopped = False
        self._thread = None

    def start(self):
        if self.url and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kombo-sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self):
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
            self._thread = None

    def note(self, models, integration_id):
        """Remember changed models of an integration; arms the batching timer if idle."""
        if not self.url or not models:
            return
        with self._cond:
            self._pending.setdefault(integration_id, set()).update(models)
            if self._deadline is None:
                self._deadline = time.monotonic() + self.delay
                self._cond.notify_all()

    def discard(self, integration_id):
        """Forget the pending changes of an integration (it was removed)."""
        with self._cond:
            self._pending.pop(integration_id, None)

    def pending(self, integration_id=None):
        """Sorted pending model names: of one integration, or of all together."""
        with self._cond:
            if integration_id is not None:
                return sorted(self._pending.get(integration_id, ()))
            return sorted(set().union(*self._pending.values()))

    def pending_by_integration(self):
        with self._cond:
            return {iid: sorted(models) for iid, models in self._pending.items()}

    def flush(self, integration_id=None):
        """Send the pending batches now (all, or one integration's), on the caller's
        thread: one data-changed per integration. Returns the first log entry or None."""
        first = None
        for iid, models in self._take(integration_id):
            entry = self._deliver(self.payloads_for(iid).data_changed(models))
            first = first or entry
        return first

    def send(self, event):
        """Send one event now (signed, subject to the drop rates)."""
        return self._deliver(event)

    def _take(self, integration_id=None):
        with self._cond:
            if integration_id is None:
                taken, self._pending = list(self._pending.items()), {}
            else:
                models = self._pending.pop(integration_id, None)
                taken = [(integration_id, models)] if models else []
            if not self._pending:
                self._deadline = None
            return taken

    def _run(self):
        while True:
            with self._cond:
                while not self._stopped and (self._deadline is None
                                             or time.monotonic() < self._deadline):
                    timeout = None if self._deadline is None else self._deadline - time.monotonic()
                    self._cond.wait(timeout)
                if self._stopped:
                    return
            self.flush()

    def _dropped(self, integration_id):
        if self.drop_rate and self.drop_rng.random() < self.drop_rate:
            return True
        rate = self.drop_rates.get(integration_id)
        return bool(rate) and self.drop_rng.random() < rate

    def _deliver(self, event):
        body = encode(event)
        iid = named_integration(event)
        entry = {"id": event["id"], "type": event["type"], "integration": iid, "body": body.decode(),
                 "status": None, "error": None, "dropped": False}
        with self._send_lock:
            if not self.url:
                entry["error"] = "no webhook_url configured"
            elif self._dropped(iid):
                entry["dropped"] = True
                self.stats("webhooks_dropped", iid)
            else:
                self._post(body, entry)
            self.log.append(entry)
            del self.log[:-LOG_LIMIT]
        return entry

    def _post(self, body, entry):
        url = urllib.parse.urlsplit(self.url)
        conn_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        try:
            conn = conn_class(url.hostname, url.port, timeout=self.timeout)
            try:
                conn.request("POST", (url.path or "/") + ("?" + url.query if url.query else ""), body, {
                    "Content-Type": "application/json",
                    "X-Kombo-Signature": sign(self.secret, body),
                    "User-Agent": "kombo-sandbox-webhooks/1",
                })
                resp = conn.getresponse()
                resp.read()
                entry["status"] = resp.status
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            entry["error"] = "%s: %s" % (type(exc).__name__, exc)
        ok = entry["status"] is not None and 200 <= entry["status"] < 300
        self.stats("webhooks_sent" if ok else "webhooks_failed", entry["integration"])
