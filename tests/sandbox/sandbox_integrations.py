"""Integrations of the sandbox: one API key serves many integrations, each
with its own generated company (kombo-api.md, "Additions and errata").

An `Integration` holds everything that belongs to one integration id: its
description (what ``GET /integrations/{id}`` answers and what the
integration-* webhooks carry), its data (a `Store`, generated lazily on first
use and deterministic: the same id, seed and size always give byte-identical
records), its run-time record factory, its list cache, its faults and its
webhook payload builder.

Seeds: the sandbox's first integration uses the sandbox seed itself (so a
one-integration sandbox is exactly what it always was); every other one uses
`derive_seed(seed, id)`, so two integrations never share data.

A *clean* integration (never mutated) can drop its store and regenerate it
later with identical content, cursors included; `Integration.unload` does
that and the sandbox uses it to bound memory (`max_loaded`).
"""

import calendar
import hashlib
import random
import shlex
import string

from sandbox_data import Factory, generate, iso_ms
from sandbox_faults import Faults
from sandbox_store import Store
from sandbox_webhooks import Payloads

DEFAULT_INTEGRATION = "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"
ALNUM = string.ascii_letters + string.digits
# Tools used for generated integration ids, in turn.
TOOLS = ("personio", "hibob", "bamboohr", "workday", "factorial", "successfactors",
         "adp", "rippling", "deel", "sagehr")
TOOL_LABELS = {"personio": "Personio", "hibob": "HiBob", "bamboohr": "BambooHR",
               "workday": "Workday", "factorial": "Factorial",
               "successfactors": "SAP SuccessFactors", "adp": "ADP", "rippling": "Rippling",
               "deel": "Deel", "sagehr": "Sage HR"}
STATUSES = ("ACTIVE", "INVALID", "INACTIVE")
SETUP_STATUSES = ("INCOMPLETE", "FINAL_SYNC_PENDING", "COMPLETED")
QA_STATUSES = ("PENDING", "FAILED", "PASSED")
# read_models of GET /integrations/{id}: the models the sandbox serves.
READ_MODELS = (
    ("hris_employees", "Employees"), ("hris_employments", "Employments"),
    ("hris_teams", "Groups"), ("hris_absences", "Absences"),
    ("hris_absence_types", "Absence types"), ("hris_time_off_balances", "Time off balances"),
    ("hris_timesheets", "Timesheets"), ("hris_legal_entities", "Legal entities"),
    ("hris_locations", "Work locations"),
)
# created_at of integrations declared at start: 2023-06-01 plus <serial> hours
# (before every generated record, all of which lie in 2024-2025).
CREATED_BASE_MS = calendar.timegm((2023, 6, 1, 0, 0, 0)) * 1000
# Settable description attributes (add_integration / update_integration).
ATTRIBUTES = ("status", "setup_status", "qa_status", "origin_id", "organization_name",
              "creator_email", "data_expired_at")


def derive_seed(seed, integration_id):
    """The data seed of an integration other than the first one."""
    digest = hashlib.sha256(("kombo-sandbox:%s:%s" % (seed, integration_id)).encode()).digest()
    return int.from_bytes(digest[:6], "big")


def generated_ids(n, seed=1, first=DEFAULT_INTEGRATION):
    """`n` integration ids: `first`, then n-1 ids `<tool>:<24 alphanumerics>`
    (tools in turn), the same for the same seed."""
    if n <= 0:
        return []
    rng = random.Random("kombo-sandbox-integration-ids:%s" % seed)
    out, seen = [first], {first}
    i = 0
    while len(out) < n:
        candidate = "%s:%s" % (TOOLS[(i + 1) % len(TOOLS)], "".join(rng.choices(ALNUM, k=24)))
        i += 1
        if candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
    return out


def check_id(integration_id):
    if not isinstance(integration_id, str) or not integration_id or integration_id != integration_id.strip() \
            or any(ord(c) < 32 or c in " /" for c in integration_id):
        raise ValueError("invalid integration id %r (non-empty, no spaces, '/' or control "
                         "characters; Kombo's form is <tool>:<id>)" % (integration_id,))


def check_attributes(attrs):
    unknown = sorted(set(attrs) - set(ATTRIBUTES))
    if unknown:
        raise ValueError("unknown integration attribute(s): %s (known: %s)"
                         % (", ".join(unknown), ", ".join(ATTRIBUTES)))
    for name, allowed in (("status", STATUSES), ("setup_status", SETUP_STATUSES),
                          ("qa_status", QA_STATUSES)):
        if name in attrs and attrs[name] not in allowed:
            raise ValueError("%s must be one of %s, got %r" % (name, ", ".join(allowed), attrs[name]))
    for name in ("origin_id", "creator_email", "data_expired_at"):
        if attrs.get(name) is not None and not isinstance(attrs[name], str):
            raise ValueError("%s must be a string or None" % name)
    if "organization_name" in attrs and not isinstance(attrs["organization_name"], str):
        raise ValueError("organization_name must be a string")


def parse_integrations_file(path, default_employees):
    """Lines ``id [employees] [name=value ...]`` -> [(id, options)].

    Blank lines and ``#`` comments are ignored; values may be quoted (shell
    rules). Names: seed and the `ATTRIBUTES`. Raises ValueError naming the line.
    """
    out, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                raise ValueError("%s:%d: %s" % (path, lineno, exc))
            if not words:
                continue
            iid, rest = words[0], words[1:]
            opts = {"employees": default_employees}
            try:
                check_id(iid)
                if iid in seen:
                    raise ValueError("integration %r listed twice" % iid)
                if rest and "=" not in rest[0]:
                    opts["employees"] = _count(rest.pop(0), "employees")
                for word in rest:
                    name, eq, value = word.partition("=")
                    if not eq:
                        raise ValueError("expected name=value, got %r" % word)
                    if name == "seed":
                        opts["seed"] = _count(value, "seed")
                    else:
                        opts[name] = None if value in ("null", "") and name in (
                            "origin_id", "creator_email", "data_expired_at") else value
                check_attributes({k: v for k, v in opts.items() if k not in ("employees", "seed")})
            except ValueError as exc:
                raise ValueError("%s:%d: %s" % (path, lineno, exc))
            seen.add(iid)
            out.append((iid, opts))
    return out


def _count(text, name):
    if not text.isdigit():
        raise ValueError("%s must be a non-negative integer, got %r" % (name, text))
    return int(text)


class Integration:
    """One integration: description, lazily generated data, caches, faults, payloads."""

    def __init__(self, integration_id, serial, employees, seed, weird_ids, cursor_key,
                 created_at_ms, category="HRIS", **attrs):
        check_id(integration_id)
        if not isinstance(employees, int) or employees < 0:
            raise ValueError("employees must be a non-negative integer")
        check_attributes(attrs)
        self.id = integration_id
        self.tool = integration_id.split(":", 1)[0]
        self.serial = serial          # 1 = the sandbox's first integration
        self.tag = "i%d" % serial     # page-cache tag, new for every (re)added integration
        self.employees = employees
        self.seed = seed
        self.weird_ids = weird_ids
        self.cursor_key = cursor_key
        self.category = category
        self.created_at = iso_ms(created_at_ms)
        self.status = attrs.get("status", "ACTIVE")
        self.setup_status = attrs.get("setup_status", "COMPLETED")
        self.qa_status = attrs.get("qa_status", "PASSED")
        self.origin_id = attrs.get("origin_id", "cust-%d" % serial)
        self.organization_name = attrs.get("organization_name", "Customer %d" % serial)
        self.creator_email = attrs.get("creator_email", "hr@customer%d.example" % serial)
        self.data_expired_at = attrs.get("data_expired_at")
        rng = random.Random("kombo-sandbox-scope:%s:%s" % (seed, integration_id))
        self.scope_config_id = "".join(rng.choices(ALNUM, k=24))
        self.store = None             # generated on first use (load)
        self.factory = None
        self.created = 0              # records created at run time
        self.lists = None             # filtered-listing cache (the Sandbox manages it)
        self.dirty = False            # mutated: can no longer be regenerated
        self.faults = Faults(seed)
        self.payloads = Payloads(integration_id, category)
        self._sync_payloads()

    # -- data ----------------------------------------------------------------
    @property
    def loaded(self):
        return self.store is not None

    def load(self):
        """Generate the data set (same arguments -> byte-identical records)."""
        store = Store()
        store.load(generate(self.employees, self.seed, self.id, self.weird_ids))
        self.store = store
        self.factory = Factory(random.Random(self.seed * 7919 + 17), self.id)
        self.created = 0
        return store

    def unload(self):
        """Drop the data of a clean integration; `load` recreates it identically."""
        assert not self.dirty, "a mutated integration cannot be regenerated"
        self.store = self.factory = None
        self.created = 0

    # -- description -------------------------------------------------------------
    def update(self, **attrs):
        check_attributes(attrs)
        for name, value in attrs.items():
            setattr(self, name, value)
        self._sync_payloads()

    def end_user(self):
        return {"organization_name": self.organization_name, "creator_email": self.creator_email,
                "origin_id": self.origin_id}

    def _sync_payloads(self):
        p = self.payloads
        p.end_user = self.end_user()
        p.state, p.setup_status, p.qa_status = self.status, self.setup_status, self.qa_status

    def describe(self):
        """The `data` of GET /integrations/{id} (OAS key order)."""
        label = TOOL_LABELS.get(self.tool, self.tool.capitalize())
        assets = "https://storage.googleapis.com/kombo-assets/integrations/%s/" % self.tool
        return {
            "id": self.id,
            "tool": {"id": self.tool, "label": label, "internal_label": None,
                     "logo_url": assets + "logo.svg", "icon_url": assets + "icon.svg"},
            "category": self.category,
            "status": self.status,
            "setup_status": self.setup_status,
            "end_user": self.end_user(),
            "scope_config": {"id": self.scope_config_id, "name": "Sandbox scopes"},
            "data_expired_at": self.data_expired_at,
            "created_at": self.created_at,
            "beta": False,
            "read_models": [{"id": mid, "label": label_, "is_available": True,
                             "coverage_status": "SUPPORTED", "scope_config_setting": "ENABLED",
                             "opted_out_by_customer": False, "fields": []}
                            for mid, label_ in READ_MODELS],
            "write_actions": [],
        }

    def summary(self):
        """One line of GET /_sandbox/integrations."""
        return {"id": self.id, "employees": self.employees, "seed": self.seed,
                "status": self.status, "setup_status": self.setup_status,
                "origin_id": self.origin_id, "loaded": self.loaded, "mutated": self.dirty}
