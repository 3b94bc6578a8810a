"""In-memory record store of the sandbox: records, relations, rendering and
the change-propagation rules of kombo-api.md §9.

Memory layout: every record keeps its *own* fields as compact UTF-8 JSON
bytes without the closing brace (``Record.own``), plus a few decoded
attributes used for filtering and linking (per-endpoint ``__slots__``).
Rendering an API record is then mostly byte concatenation: the store appends
the embedded objects (employments, manager, groups, absence type, ...) built
from the *current* linked records, so embedded copies are never stale.

Time bookkeeping per record (integers, ms since the epoch):
  changed  - the record's own ``changed_at``;
  touched  - last time the record or anything `updated_after` follows for it
             changed (always >= changed); `updated_after=T` matches touched > T;
  deleted  - ``remote_deleted_at`` or None.

`touched` only ever grows, and only through `Store._touch` (or `Store.add` for
a new record): both keep the per-table `touched` index current, through which
`Store.touched_after` answers `updated_after` without scanning the table.

The store is not thread-safe; the Sandbox serialises access with its lock.
"""

import bisect
import datetime
import gc
import json
import operator

from sandbox_data import iso_ms

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_ONE_MS = datetime.timedelta(milliseconds=1)

ENDPOINTS = ("employees", "employments", "groups", "absences", "absence-types",
             "time-off-balances", "timesheets", "legal-entities", "locations")

MODEL_OF = {
    "employees": "hris_employees",
    "employments": "hris_employments",
    "groups": "hris_teams",
    "absences": "hris_absences",
    "absence-types": "hris_absence_types",
    "time-off-balances": "hris_time_off_balances",
    "timesheets": "hris_timesheets",
    "legal-entities": "hris_legal_entities",
    "locations": "hris_locations",
}
JOIN_MODEL = "hris_join_employees_teams"

# Own-field key order per endpoint (OAS, kombo-api.md §4).
OWN_KEYS = {
    "employees": (
        "id", "remote_id", "employee_number", "first_name", "last_name", "nationality",
        "display_full_name", "job_title", "work_email", "personal_email",
        "mobile_phone_number", "ssn", "tax_id", "gender", "ethnicity", "marital_status",
        "employment_status", "employment_type", "weekly_hours", "avatar",
        "work_location_id", "legal_entity_id", "manager_id", "home_address",
        "bank_accounts", "date_of_birth", "start_date", "termination_date",
        "remote_created_at", "changed_at", "remote_deleted_at", "custom_fields",
        "integration_fields", "remote_data"),
    "employments": (
        "id", "remote_id", "employee_id", "job_title", "pay_rate", "pay_period",
        "pay_frequency", "employment_type", "pay_currency", "effective_date",
        "changed_at", "remote_deleted_at", "remote_data", "custom_fields",
        "integration_fields"),
    "groups": ("id", "remote_id", "name", "changed_at", "remote_deleted_at", "type",
               "parent_id", "remote_data"),
    "absences": (
        "id", "remote_id", "employee_id", "approver_id", "start_date", "end_date",
        "start_half_day", "end_half_day", "start_time", "end_time", "amount", "unit",
        "status", "employee_note", "type_id", "remote_created_at", "remote_updated_at",
        "changed_at", "remote_deleted_at", "remote_data"),
    "absence-types": ("id", "remote_id", "name", "unit", "half_days_supported",
                      "exact_times_supported", "remote_data", "changed_at",
                      "remote_deleted_at"),
    "time-off-balances": ("id", "remote_id", "employee_id", "type_id", "balance",
                          "balance_unit", "changed_at", "remote_deleted_at", "used",
                          "used_unit", "remote_data"),
    "timesheets": (
        "id", "remote_id", "employee_id", "started_at", "ended_at", "timezone",
        "payable_hours", "unpaid_break_minutes", "breaks", "approval_status",
        "approved_at", "comment", "custom_fields", "integration_fields", "changed_at",
        "remote_deleted_at", "remote_data"),
    "legal-entities": ("id", "remote_id", "name", "address", "changed_at",
                       "remote_deleted_at", "remote_data"),
    "locations": ("id", "remote_id", "name", "address", "type", "changed_at",
                  "remote_deleted_at", "remote_data"),
}
# Fields a caller may not set through update_record (bookkeeping or relations
# that have their own operation).
PROTECTED = {"id", "changed_at", "remote_deleted_at", "employee_id"}

MANAGER_KEYS = ("first_name", "last_name", "display_full_name", "id", "employee_number",
                "work_email", "remote_id", "employment_status", "termination_date")
GROUP_EMBED_KEYS = ("id", "remote_id", "name", "type")
LEGAL_ENTITY_EMBED_KEYS = ("id", "remote_id", "name", "address")
LOCATION_EMBED_KEYS = ("id", "remote_id", "name", "address", "type", "changed_at",
                       "remote_deleted_at", "remote_data")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value):
    """Compact UTF-8 JSON (the sandbox's wire format)."""
    return _ENCODER.encode(value).encode()


def _ms(text):
    """ISO timestamp -> ms (the generator's and the sandbox's own format)."""
    if text is None:
        return None
    return (datetime.datetime.fromisoformat(text) - _EPOCH) // _ONE_MS


class Record:
    """One stored record; subclasses add the decoded attributes they need."""

    __slots__ = ("id", "seq", "remote_id", "own", "changed", "touched", "deleted", "embed")

    def __init__(self, seq, fields):
        self.seq = seq
        self.embed = None
        self.store_fields(fields)
        self.touched = self.changed

    def store_fields(self, fields):
        """(Re)encode the own fields and refresh the decoded attributes."""
        self.id = fields["id"]
        self.remote_id = fields.get("remote_id")
        self.changed = _ms(fields["changed_at"])
        self.deleted = _ms(fields.get("remote_deleted_at"))
        self.own = dumps(fields)[:-1]
        self.embed = None
        self.index(fields)

    def index(self, fields):
        """Copy the fields used by filters/relations into slots."""

    def fields(self):
        """Own fields as a fresh dict (key order preserved)."""
        return json.loads(self.own + b"}")


class Employee(Record):
    __slots__ = ("status", "work_email", "personal_email", "legal_entity_id",
                 "work_location_id", "manager_id", "group_ids", "employment_ids",
                 "balance_ids")

    def __init__(self, seq, fields):
        self.group_ids = []
        self.employment_ids = []
        self.balance_ids = []
        super().__init__(seq, fields)

    def index(self, fields):
        self.status = fields.get("employment_status")
        self.work_email = _lower(fields.get("work_email"))
        self.personal_email = _lower(fields.get("personal_email"))
        self.legal_entity_id = fields.get("legal_entity_id")
        self.work_location_id = fields.get("work_location_id")
        self.manager_id = fields.get("manager_id")


class Child(Record):
    """Employments and time-off balances: belong to one employee."""
    __slots__ = ("employee_id", "type_id")

    def index(self, fields):
        self.employee_id = fields.get("employee_id")
        self.type_id = fields.get("type_id")


class Absence(Record):
    __slots__ = ("employee_id", "type_id", "start_date", "end_date")

    def index(self, fields):
        self.employee_id = fields.get("employee_id")
        self.type_id = fields.get("type_id")
        self.start_date = fields.get("start_date")
        self.end_date = fields.get("end_date")


class Timesheet(Record):
    __slots__ = ("employee_id", "started_at", "ended_at")

    def index(self, fields):
        self.employee_id = fields.get("employee_id")
        self.started_at = _ms(fields.get("started_at"))
        self.ended_at = _ms(fields.get("ended_at"))


class Named(Record):
    """Groups, legal entities, locations (name_contains; groups also type)."""
    __slots__ = ("name", "type", "parent_id")

    def index(self, fields):
        self.name = fields.get("name")
        self.type = fields.get("type")
        self.parent_id = fields.get("parent_id")


RECORD_CLASS = {
    "employees": Employee, "employments": Child, "time-off-balances": Child,
    "absences": Absence, "timesheets": Timesheet, "absence-types": Record,
    "groups": Named, "legal-entities": Named, "locations": Named,
}


# Stale entries a TouchedIndex tolerates beyond one per record before rebuilding.
INDEX_SLACK = 1024
_BY_SEQ = operator.attrgetter("seq")
_BY_TOUCHED = operator.attrgetter("touched")


def _lower(value):
    return value.lower() if isinstance(value, str) else None


class NotFound(KeyError):
    """Unknown endpoint or record id (message is the first arg)."""

    def __str__(self):
        return self.args[0] if self.args else "not found"


class TouchedIndex:
    """The records of one table sorted by `touched`, for `updated_after`.

    Two parallel lists: ``keys[i]`` is the `touched` value a record had when
    ``recs[i]`` was inserted.  A record gets a new entry whenever its
    `touched` grows; the older entries (and those of removed records) are left
    behind as stale and skipped, and the lists are rebuilt once they hold
    more than about twice the table.  Changes may arrive out of time order
    (clock_skew), hence the sorted insertion.
    """

    __slots__ = ("table", "keys", "recs")

    def __init__(self, table):
        self.table = table
        self.rebuild()

    def rebuild(self):
        self.recs = sorted(self.table.values(), key=_BY_TOUCHED)
        self.keys = [r.touched for r in self.recs]

    def insert(self, rec):
        i = bisect.bisect_right(self.keys, rec.touched)
        self.keys.insert(i, rec.touched)
        self.recs.insert(i, rec)
        if len(self.keys) > 2 * len(self.table) + INDEX_SLACK:
            self.rebuild()

    def after(self, ms):
        """The table's current records with touched > ms, in listing (seq) order."""
        keys, recs, table = self.keys, self.recs, self.table
        out = []
        for i in range(bisect.bisect_right(keys, ms), len(keys)):
            rec = recs[i]
            # current entry of a record still in the table (one per record)
            if rec.touched == keys[i] and table.get(rec.id) is rec:
                out.append(rec)
        out.sort(key=_BY_SEQ)
        return out


class Store:
    def __init__(self):
        self.tables = {ep: {} for ep in ENDPOINTS}
        self._seq = 0
        self._index = {}  # endpoint -> TouchedIndex (absent while loading)

    # -- loading ----------------------------------------------------------
    def add(self, endpoint, fields, extra=None, ordered=False):
        """Insert a record (at the end of the listing order) and link it.

        `ordered=True` skips the key-order normalisation (generator output).
        """
        table = self.tables[endpoint]
        if fields["id"] in table:
            raise ValueError("duplicate id %r in %s" % (fields["id"], endpoint))
        self._seq += 1
        if not ordered:
            fields = _ordered(endpoint, fields)
        rec = RECORD_CLASS[endpoint](self._seq, fields)
        table[rec.id] = rec
        index = self._index.get(endpoint)
        if index is not None:
            index.insert(rec)
        if endpoint == "employees" and extra:
            rec.group_ids = list(extra.get("group_ids", ()))
        parent = self.tables["employees"].get(getattr(rec, "employee_id", None))
        if parent is not None and endpoint == "employments":
            parent.employment_ids.append(rec.id)
        elif parent is not None and endpoint == "time-off-balances":
            parent.balance_ids.append(rec.id)
        return rec

    def load(self, items):
        """Bulk load generator output.  The cyclic GC is paused meanwhile: it
        would rescan the growing heap again and again."""
        enabled = gc.isenabled()
        gc.disable()
        self._index = {}  # built once at the end, not record by record
        try:
            for endpoint, fields, extra in items:
                self.add(endpoint, fields, extra, ordered=True)
            self._initial_touched()
            self._index = {ep: TouchedIndex(table) for ep, table in self.tables.items()}
        finally:
            if enabled:
                gc.enable()

    def _initial_touched(self):
        """Make generated `touched` consistent with §9 (linked changes count)."""
        t = self.tables
        for e in t["employees"].values():
            linked = [c.changed for c in self.children(e, "employments", True)]
            linked += [c.changed for c in self.children(e, "time-off-balances", True)]
            for table, key in (("employees", e.manager_id), ("legal-entities", e.legal_entity_id),
                               ("locations", e.work_location_id)):
                other = t[table].get(key)
                if other is not None:
                    linked.append(other.changed)
            e.touched = max([e.touched] + linked)
        for ep in ("absences", "time-off-balances"):
            for r in t[ep].values():
                typ = t["absence-types"].get(r.type_id)
                if typ is not None:
                    r.touched = max(r.touched, typ.changed)

    # -- lookup -------------------------------------------------------------
    def touched_after(self, endpoint, ms):
        """Records of `endpoint` with touched > ms (any deletion state), in
        listing order; reads only the records touched after ms."""
        index = self._index.get(endpoint)
        if index is None:
            index = self._index[endpoint] = TouchedIndex(self.tables[endpoint])
        return index.after(ms)

    def get(self, endpoint, rid):
        table = self.tables.get(endpoint)
        if table is None:
            raise NotFound("unknown endpoint %r" % endpoint)
        rec = table.get(rid)
        if rec is None:
            raise NotFound("no %s record with id %r" % (endpoint, rid))
        return rec

    def children(self, employee, endpoint, include_deleted=False):
        ids = employee.employment_ids if endpoint == "employments" else employee.balance_ids
        table = self.tables[endpoint]
        out = []
        for rid in ids:
            rec = table.get(rid)
            if rec is not None and (include_deleted or rec.deleted is None):
                out.append(rec)
        return out

    def live_groups(self, employee):
        table = self.tables["groups"]
        out = []
        for gid in employee.group_ids:
            g = table.get(gid)
            if g is not None and g.deleted is None:
                out.append(g)
        return out

    # -- rendering ------------------------------------------------------------
    def render(self, endpoint, rec):
        """The record exactly as the list endpoint returns it (bytes)."""
        if endpoint == "employees":
            return self._render_employee(rec)
        if endpoint in ("absences", "time-off-balances"):
            typ = self.tables["absence-types"].get(rec.type_id)
            return b"".join((rec.own, b',"type":', self._embed(typ, "absence-types"), b"}"))
        return rec.own + b"}"

    def _render_employee(self, e):
        t = self.tables
        groups = b"[" + b",".join(self._embed(g, "groups") for g in self.live_groups(e)) + b"]"
        return b"".join((
            e.own,
            b',"employments":[',
            b",".join(r.own + b"}" for r in self.children(e, "employments")),
            b'],"time_off_balances":[',
            b",".join(r.own + b"}" for r in self.children(e, "time-off-balances")),
            b'],"manager":', self._embed(t["employees"].get(e.manager_id), "manager"),
            b',"groups":', groups,
            b',"legal_entity":', self._embed(t["legal-entities"].get(e.legal_entity_id), "legal-entities"),
            b',"teams":', groups,
            b',"work_location":', self._embed(t["locations"].get(e.work_location_id), "locations"),
            b"}",
        ))

    @staticmethod
    def _embed(rec, kind):
        """Embedded form of a linked record, cached on the record."""
        if rec is None:
            return b"null"
        if rec.embed is None:
            if kind == "absence-types":
                rec.embed = rec.own + b"}"
            else:
                keys = {"manager": MANAGER_KEYS, "groups": GROUP_EMBED_KEYS,
                        "legal-entities": LEGAL_ENTITY_EMBED_KEYS,
                        "locations": LOCATION_EMBED_KEYS}[kind]
                fields = rec.fields()
                rec.embed = dumps({k: fields[k] for k in keys if k in fields})
        return rec.embed

    # -- mutations (each returns the set of Kombo model names it changed) ---
    def update(self, endpoint, rid, fields, ts):
        """Own-field update: changed_at moves, then §9 propagation."""
        rec = self.get(endpoint, rid)
        bad = [k for k in fields if k not in OWN_KEYS[endpoint] or k in PROTECTED]
        if bad:
            raise ValueError("cannot set %s on %s" % (", ".join(sorted(bad)), endpoint))
        current = rec.fields()
        current.update(fields)
        current["changed_at"] = iso_ms(ts)
        self._restamp(endpoint, rec, current, ts)
        return {MODEL_OF[endpoint]}

    def soft_delete(self, endpoint, rid, ts):
        rec = self.get(endpoint, rid)
        current = rec.fields()
        current["remote_deleted_at"] = current["changed_at"] = iso_ms(ts)
        self._restamp(endpoint, rec, current, ts)
        models = {MODEL_OF[endpoint]}
        if endpoint == "groups":
            # Members lose the group from their embedded list: a membership removal.
            for e in self.tables["employees"].values():
                if rid in e.group_ids:
                    self._touch("employees", e, ts)
                    models.add(JOIN_MODEL)
        return models

    def vanish(self, endpoint, rid):
        """Remove a record without trace: no timestamps move anywhere."""
        rec = self.get(endpoint, rid)
        del self.tables[endpoint][rec.id]
        return set()

    def create(self, endpoint, fields, ts, group_ids=None):
        fields = dict(fields)
        fields["changed_at"] = iso_ms(ts)
        fields.setdefault("remote_deleted_at", None)
        if "employee_id" in OWN_KEYS[endpoint]:
            self.get("employees", fields.get("employee_id"))
        rec = self.add(endpoint, fields, {"group_ids": group_ids or []})
        models = {MODEL_OF[endpoint]}
        if group_ids:
            models.add(JOIN_MODEL)
        self._propagate(endpoint, rec, ts)
        return rec, models

    def move_group(self, employee_id, from_id, to_id, ts):
        """Membership change: the employee is re-returned, changed_at stays."""
        e = self.get("employees", employee_id)
        for gid in (from_id, to_id):
            if gid is not None:
                self.get("groups", gid)
        if from_id is not None:
            if from_id not in e.group_ids:
                raise ValueError("employee %r is not in group %r" % (employee_id, from_id))
            e.group_ids.remove(from_id)
        if to_id is not None and to_id not in e.group_ids:
            e.group_ids.append(to_id)
        self._touch("employees", e, ts)
        return {JOIN_MODEL}

    def _restamp(self, endpoint, rec, fields, ts):
        rec.store_fields(_ordered(endpoint, fields))
        self._touch(endpoint, rec, ts)
        self._propagate(endpoint, rec, ts)

    def _touch(self, endpoint, rec, ts):
        """Raise rec.touched to ts (the only way `touched` changes after add)."""
        if ts > rec.touched:
            rec.touched = ts
            index = self._index.get(endpoint)
            if index is not None:
                index.insert(rec)

    def _propagate(self, endpoint, rec, ts):
        """Move `touched` of the records whose `updated_after` follows `rec`."""
        t = self.tables
        if endpoint in ("employments", "time-off-balances"):
            targets = [("employees", t["employees"].get(rec.employee_id))]
        elif endpoint == "employees":
            targets = [("employees", e) for e in t["employees"].values() if e.manager_id == rec.id]
        elif endpoint == "legal-entities":
            targets = [("employees", e) for e in t["employees"].values() if e.legal_entity_id == rec.id]
        elif endpoint == "locations":
            targets = [("employees", e) for e in t["employees"].values() if e.work_location_id == rec.id]
        elif endpoint == "absence-types":
            targets = [(ep, r) for ep in ("absences", "time-off-balances")
                       for r in t[ep].values() if r.type_id == rec.id]
        else:  # groups (rename does NOT re-return members), absences, timesheets
            targets = []
        for target_endpoint, target in targets:
            if target is not None:
                self._touch(target_endpoint, target, ts)


def _ordered(endpoint, fields):
    """Fields in OAS key order; unknown keys are rejected, absent keys stay absent."""
    keys = OWN_KEYS[endpoint]
    unknown = set(fields) - set(keys)
    if unknown:
        raise ValueError("unknown %s field(s): %s" % (endpoint, ", ".join(sorted(unknown))))
    return {k: fields[k] for k in keys if k in fields}
