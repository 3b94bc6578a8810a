"""Query-string validation, filters and cursors of the list endpoints
(kombo-api.md §2-§3).

`parse_list_query(endpoint, params, cursor_key)` validates the parameters and
returns a `ListQuery`: the normalised filters, a predicate over store records,
the page size and the position decoded from the cursor.  Every problem raises
`InputInvalid`, which the server answers with 400 ``PLATFORM.INPUT_INVALID``.
"""

import base64
import datetime
import hashlib
import hmac
import json
import re

from sandbox_store import ENDPOINTS

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 250

COMMON_PARAMS = ("cursor", "page_size", "updated_after", "include_deleted",
                 "ignore_unsupported_filters", "ids", "remote_ids")
EXTRA_PARAMS = {
    "employees": ("employment_statuses", "employment_status", "group_ids",
                  "legal_entity_ids", "work_location_ids", "work_emails",
                  "personal_emails", "custom_fields"),
    "groups": ("types", "name_contains"),
    "teams": (),
    "absences": ("date_from", "date_until", "type_ids", "employee_id",
                 "time_from", "time_until"),
    "time-off-balances": ("employee_id",),
    "timesheets": ("employee_id", "started_before", "started_after",
                   "ended_before", "ended_after"),
    "legal-entities": ("name_contains",),
    "locations": ("name_contains",),
    "employments": (),
    "absence-types": (),
}
LIST_ENDPOINTS = ENDPOINTS + ("teams",)
EMPLOYMENT_STATUSES = ("ACTIVE", "PENDING", "INACTIVE", "LEAVE")
GROUP_TYPES = ("DEPARTMENT", "TEAM", "COST_CENTER", "null")
DATETIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?)?Z?$")


class InputInvalid(ValueError):
    """A request parameter is invalid (-> 400 PLATFORM.INPUT_INVALID)."""


class ListQuery:
    """A validated list request.

    filters   - dict name -> normalised value (only filters actually given)
    key       - hashable identity of (endpoint, filters); pages of the same
                listing share it, the cursor carries a hash of it
    after_seq - listing position: return records with seq > after_seq
    page_no   - 1 for the first page, n for the n-th page of a listing
    """

    def __init__(self, endpoint, filters, page_size, after_seq, page_no):
        self.endpoint = endpoint
        self.filters = filters
        self.page_size = page_size
        self.after_seq = after_seq
        self.page_no = page_no
        self.key = (endpoint, tuple(sorted(filters.items())))

    @property
    def table(self):
        """The store table behind the endpoint (teams is an alias of groups)."""
        return "groups" if self.endpoint == "teams" else self.endpoint

    def filter_hash(self):
        return hashlib.sha256(repr(self.key).encode()).hexdigest()[:16]


# -- value parsers ------------------------------------------------------------

def parse_datetime_us(text, name):
    """Parse the OAS date-time pattern -> microseconds since the epoch (UTC).

    A bare date means midnight; a missing ``Z`` is read as UTC; fractional
    digits beyond microseconds are truncated.
    """
    m = DATETIME_RE.match(text)
    if not m:
        raise InputInvalid("%s: %r is not a valid date-time" % (name, text))
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        dt = datetime.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0),
                               int(s or 0), tzinfo=datetime.timezone.utc)
    except ValueError as exc:
        raise InputInvalid("%s: %r is not a valid date-time (%s)" % (name, text, exc))
    us = int((frac or "0")[:6].ljust(6, "0"))
    delta = dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1000000 + us


def parse_plain_date(text, name):
    """``yyyy-MM-dd`` (a time part is accepted and discarded)."""
    parse_datetime_us(text, name)
    return text[:10]


def parse_bool(text, name):
    if text not in ("true", "false"):
        raise InputInvalid("%s must be \"true\" or \"false\", got %r" % (name, text))
    return text == "true"


def parse_csv(text, name, allowed=None, fold=False):
    values = [v.strip() for v in text.split(",") if v.strip()]
    if fold:
        values = [v.lower() for v in values]
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise InputInvalid("%s: invalid value(s) %s; allowed: %s"
                               % (name, ", ".join(bad), ", ".join(allowed)))
    return tuple(sorted(set(values))) if values else None


def parse_custom_fields(text):
    try:
        value = json.loads(text)
    except ValueError:
        raise InputInvalid("custom_fields must be a JSON object")
    if not isinstance(value, dict) or len(value) != 1:
        raise InputInvalid("custom_fields must hold exactly one {\"key\": value} pair")
    (key, val), = value.items()
    if isinstance(val, (dict, list)):
        raise InputInvalid("custom_fields value must be a string, number, boolean or null")
    return (key, json.dumps(val))


def parse_page_size(text):
    if text is None:
        return DEFAULT_PAGE_SIZE
    if not re.fullmatch(r"\d{1,9}", text) or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise InputInvalid("page_size must be an integer between 1 and %d" % MAX_PAGE_SIZE)
    return int(text)


# name -> (parser, predicate factory); the predicate factory takes the parsed
# value and returns a function rec -> bool.
def _in(attr):
    return lambda wanted: (lambda r: getattr(r, attr) in wanted)


def _custom_fields_match(key_val):
    """Equal value under the key; strings never equal numbers, nor booleans 0/1."""
    key, encoded = key_val
    wanted = json.loads(encoded)

    def match(r):
        cf = r.fields().get("custom_fields") or {}
        if key not in cf:
            return False
        got = cf[key]
        return got == wanted and isinstance(got, bool) == isinstance(wanted, bool)
    return match


def _absence_from(day):
    def match(r):
        last = r.end_date or r.start_date
        return last is not None and last >= day
    return match


def _absence_until(day):
    return lambda r: r.start_date is not None and r.start_date <= day


def _time_cmp(attr, op):
    def factory(us):
        def match(r):
            v = getattr(r, attr)
            return v is not None and op(v * 1000, us)
        return match
    return factory


def _contains(needle):
    needle = needle.lower()
    return lambda r: r.name is not None and needle in r.name.lower()


def _group_types(types):
    wanted = {None if t == "null" else t for t in types}
    return lambda r: r.type in wanted


FILTERS = {
    "updated_after": (lambda v, n: parse_datetime_us(v, n),
                      lambda us: (lambda r: r.touched * 1000 > us)),
    "ids": (parse_csv, lambda ids: (lambda r: r.id in ids)),
    "remote_ids": (parse_csv, lambda ids: (lambda r: r.remote_id in ids)),
    "employment_statuses": (lambda v, n: parse_csv(v, n, EMPLOYMENT_STATUSES), _in("status")),
    "employment_status": (lambda v, n: parse_csv(v, n, EMPLOYMENT_STATUSES), _in("status")),
    "group_ids": (parse_csv, lambda ids: (lambda r: any(g in ids for g in r.group_ids))),
    "legal_entity_ids": (parse_csv, _in("legal_entity_id")),
    "work_location_ids": (parse_csv, _in("work_location_id")),
    "work_emails": (lambda v, n: parse_csv(v, n, fold=True), _in("work_email")),
    "personal_emails": (lambda v, n: parse_csv(v, n, fold=True), _in("personal_email")),
    "custom_fields": (lambda v, n: parse_custom_fields(v), _custom_fields_match),
    "types": (lambda v, n: parse_csv(v, n, GROUP_TYPES), _group_types),
    "name_contains": (lambda v, n: v, _contains),
    "date_from": (parse_plain_date, _absence_from),
    "time_from": (parse_plain_date, _absence_from),
    "date_until": (parse_plain_date, _absence_until),
    "time_until": (parse_plain_date, _absence_until),
    "type_ids": (parse_csv, _in("type_id")),
    "employee_id": (lambda v, n: v, lambda eid: (lambda r: r.employee_id == eid)),
    "started_before": (parse_datetime_us, _time_cmp("started_at", lambda a, b: a < b)),
    "started_after": (parse_datetime_us, _time_cmp("started_at", lambda a, b: a >= b)),
    "ended_before": (parse_datetime_us, _time_cmp("ended_at", lambda a, b: a <= b)),
    "ended_after": (parse_datetime_us, _time_cmp("ended_at", lambda a, b: a >= b)),
}


def predicate(query):
    """One function rec -> bool combining all filters (AND)."""
    checks = []
    if not query.filters.get("include_deleted"):
        checks.append(lambda r: r.deleted is None)
    for name, value in query.filters.items():
        if name in FILTERS:
            checks.append(FILTERS[name][1](value))
    if not checks:
        return lambda r: True
    if len(checks) == 1:
        return checks[0]
    return lambda r: all(c(r) for c in checks)


# -- the request ---------------------------------------------------------------

def parse_list_query(endpoint, params, cursor_key):
    """Validate `params` (dict name -> single string value) for `endpoint`."""
    allowed = set(COMMON_PARAMS) | set(EXTRA_PARAMS[endpoint])
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InputInvalid("unknown query parameter(s) for /hris/%s: %s" % (endpoint, ", ".join(unknown)))
    filters = {}
    for name in ("include_deleted", "ignore_unsupported_filters"):
        if name in params:
            filters[name] = parse_bool(params[name], name)
    filters.pop("ignore_unsupported_filters", None)  # every filter is supported here
    if not filters.get("include_deleted"):
        filters.pop("include_deleted", None)  # explicit false == absent
    for name, value in params.items():
        if name in FILTERS:
            parsed = FILTERS[name][0](value, name)
            if parsed not in (None, ""):
                filters[name] = parsed
    page_size = parse_page_size(params.get("page_size"))
    query = ListQuery(endpoint, filters, page_size, 0, 1)
    if params.get("cursor"):
        query.after_seq, query.page_no = decode_cursor(params["cursor"], query, cursor_key)
    return query


def encode_cursor(query, last_seq, cursor_key):
    """Opaque cursor: base64url JSON with position, filter hash and HMAC tag."""
    body = {"p": query.page_no + 1, "k": last_seq, "f": query.filter_hash()}
    body["t"] = _tag(body, cursor_key)
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token, query, cursor_key):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        tag = body.pop("t")
        ok = hmac.compare_digest(tag, _tag(body, cursor_key))
        page_no, last_seq, fhash = int(body["p"]), int(body["k"]), body["f"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputInvalid("cursor is malformed")
    if not ok:
        raise InputInvalid("cursor is malformed")
    if fhash != query.filter_hash():
        raise InputInvalid("cursor was created with different filters; "
                           "send the same filters with every page")
    return last_seq, page_no


def _tag(body, key):
    msg = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:20]
