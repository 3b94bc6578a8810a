"""Misbehaviour switches of the sandbox API (`Sandbox.set_faults`).

Every call of `Faults.configure(**kw)` replaces the whole configuration; no
arguments = everything off.  Keywords:

  fail_rate=X          fraction (0..1) of API requests that fail at random, each
                       with a random kind among FAIL_KINDS (seeded RNG)
  fault_seed=N         seed of that RNG (default: the sandbox seed)
  rate_limit=N         next N requests -> 429 PLATFORM.RATE_LIMIT_EXCEEDED
  retry_after=S        ... and add ``Retry-After: S`` to those 429s
  ratelimit_reset=S    value of the ``ratelimit-reset`` header on 429 (default 1,
                       or retry_after when given)
  server_error=N       next N requests -> 500 PLATFORM.UNKNOWN_ERROR and
                       503 REMOTE.SERVICE_UNAVAILABLE, alternating (500 first)
  html_error=N         next N requests -> 502 / 503 nginx HTML page, alternating
  truncate=N           next N requests -> 200 whose body is cut in half
                       (Content-Length matches the cut body)
  reset=N              next N requests -> connection reset, no response
  slow=S               every API request waits S seconds first
  setup_pending=True   every request -> 409 INTEGRATION.SETUP_SYNC_PENDING
  auth_fail=True       every request -> 401 PLATFORM.AUTHENTICATION_INVALID
  fail_after_pages=N   listing pages N+1, N+2, ... fail (page 1 = request without
                       cursor); pages 1..N succeed.  Persistent until cleared.
  fail_kind=K          how those pages fail: one of FAIL_KINDS (default server_error)
  clock_skew=S         seconds added to the sandbox clock that stamps changes
                       (changed_at, remote_deleted_at, touched)
  webhook_drop_rate=X  fraction (0..1) of webhooks silently not sent (counted)

When several queued faults are armed they are consumed in the order
reset, html_error, server_error, rate_limit, truncate.
"""

import random
import threading

FAIL_KINDS = ("rate_limit", "server_error", "html_error", "truncate", "reset")
QUEUED = ("reset", "html_error", "server_error", "rate_limit", "truncate")
SETTINGS = {
    "fail_rate": float, "fault_seed": int, "retry_after": int, "ratelimit_reset": int,
    "slow": float, "setup_pending": bool, "auth_fail": bool, "fail_after_pages": int,
    "fail_kind": str, "clock_skew": float, "webhook_drop_rate": float,
}
SETTINGS.update({name: int for name in QUEUED})


class Fault:
    """What to do with one request: `kind` plus response details."""

    def __init__(self, kind, status=None, headers=None):
        self.kind = kind
        self.status = status
        self.headers = headers or {}

    def __repr__(self):
        return "Fault(%r, %r)" % (self.kind, self.status)


class Faults:
    def __init__(self, default_seed=1):
        self.default_seed = default_seed
        self._lock = threading.Lock()
        self._alternate = {"server_error": 0, "html_error": 0}
        self.configure()

    def configure(self, **kw):
        """Replace the configuration; raises ValueError on unknown keywords."""
        unknown = sorted(set(kw) - set(SETTINGS))
        if unknown:
            raise ValueError("unknown fault(s): %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(SETTINGS))))
        conf = {}
        for name, value in kw.items():
            if value is None:
                continue
            conf[name] = value if SETTINGS[name] is str else SETTINGS[name](value)
        if conf.get("fail_kind", "server_error") not in FAIL_KINDS:
            raise ValueError("fail_kind must be one of %s" % ", ".join(FAIL_KINDS))
        for name in ("fail_rate", "webhook_drop_rate"):
            if not 0 <= conf.get(name, 0) <= 1:
                raise ValueError("%s must be between 0 and 1" % name)
        with self._lock:
            self.conf = conf
            self._left = {name: conf.get(name, 0) for name in QUEUED}
            self._rng = random.Random(conf.get("fault_seed", self.default_seed))
            self._alternate = {"server_error": 0, "html_error": 0}

    def get(self, name, default=None):
        return self.conf.get(name, default)

    def snapshot(self):
        """Current configuration plus the remaining counts of queued faults."""
        with self._lock:
            out = dict(self.conf)
            out.update({"%s_left" % k: v for k, v in self._left.items() if v})
            return out

    def take(self):
        """Decide the transport/queued/random fault for one API request."""
        with self._lock:
            for name in QUEUED:
                if self._left[name] > 0:
                    self._left[name] -= 1
                    return self._make(name)
            rate = self.conf.get("fail_rate", 0)
            if rate and self._rng.random() < rate:
                return self._make(self._rng.choice(FAIL_KINDS))
        return None

    def page_fault(self, page_no):
        """The fault for the `page_no`-th page of a listing, if any."""
        limit = self.conf.get("fail_after_pages")
        if limit is None or page_no <= limit:
            return None
        with self._lock:
            return self._make(self.conf.get("fail_kind", "server_error"))

    def _make(self, kind):
        if kind == "rate_limit":
            return Fault(kind, 429, self._rate_limit_headers())
        if kind in self._alternate:
            n = self._alternate[kind]
            self._alternate[kind] += 1
            statuses = (500, 503) if kind == "server_error" else (502, 503)
            return Fault(kind, statuses[n % 2])
        return Fault(kind)

    def _rate_limit_headers(self):
        retry = self.conf.get("retry_after")
        headers = {"ratelimit-limit": "300", "ratelimit-remaining": "0",
                   "ratelimit-reset": str(self.conf.get("ratelimit_reset", retry if retry is not None else 1))}
        if retry is not None:
            headers["Retry-After"] = str(retry)
        return headers
