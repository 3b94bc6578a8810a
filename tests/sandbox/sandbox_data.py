"""Deterministic generator of Kombo HRIS records (kombo-api.md §4).

`generate()` yields ``(endpoint, fields, extra)`` triples in a fixed order:
legal entities, locations, groups, absence types, then per employee the
employee followed by its employments, time-off balances, absences and
timesheets.  ``fields`` is a dict of the record's *own* fields in OAS key
order (embedded objects are added by the store when rendering); ``extra``
carries relations that are not own fields (group memberships).

Same arguments -> byte-identical output: only `random.Random(seed)` is used,
never the wall clock or hash().  All generated timestamps lie in 2024-2025,
so anything the sandbox changes at run time is newer.
"""

import calendar
import random
import string
import time

ALNUM = string.ascii_letters + string.digits
GEN_START_MS = calendar.timegm((2024, 1, 1, 0, 0, 0)) * 1000
GEN_END_MS = calendar.timegm((2025, 12, 31, 0, 0, 0)) * 1000
DAY_MS = 86400 * 1000

FIRST_NAMES = (
    "Mara", "Jonas", "Jörg", "Renée", "Łukasz", "Zoë", "Søren", "José", "Anaïs",
    "Björn", "Chloé", "Małgorzata", "Wei", "李", "Noah", "Emma", "Liam", "Olivia",
    "Mateo", "Aylin", "Ömer", "Ingrid", "Kenji", "Priya", "Fatima", "Sofía",
    "Élodie", "Paweł", "Ana", "Jean-Luc",
)
LAST_NAMES = (
    "Lindqvist", "Berg", "Müller", "Dubois", "Kowalski", "Nowak", "García",
    "O'Brien", "Øster", "Schröder", "李", "王", "Smith", "Nguyen", "Rossi",
    "Fernández", "Łęcki", "D'Angelo", "van der Berg", "Håkansson", "Weiß",
)
# Rare names that stress JSON escaping and file tools.
ODD_DISPLAY = ('Robert "Bobby" Tables', "Back\\slash Person", "Tab\tSeparated",
               "Emoji 🙂 Person", "<script>alert(1)</script>")
JOB_TITLES = (
    "Senior Payroll Specialist", "Software Engineer", "Ingénieur Qualité",
    'Head of "Special" Projects', "Kundenberaterin", "Product Manager",
    "Data Analyst", "Werkstudent", "Accountant", "Sales Representative",
    "HR Business Partner", "Backend Developer", "Office Manager",
    "Team Lead C:\\Ops", "Designer",
)
DEPARTMENTS = (
    "Finance", "Engineering", "Vertrieb", "Ressources Humaines",
    "Marketing & Communications", "Recherche/Entwicklung", "Customer Success",
    "Operations", "Légal", "物流", "People", "IT",
)
TEAM_WORDS = ("Payroll", "Platform", "Mobile", "Inbound", "Outbound", "Core",
              "Support", "Growth", "Infra", "Søk", "Qualität", "Data")
CITIES = (
    ("Malmö", "SE", "211 22", "Hamngatan 3"),
    ("München", "DE", "80331", "Marienplatz 1"),
    ("Kraków", "PL", "31-001", "Rynek Główny 1"),
    ("Zürich", "CH", "8001", "Bahnhofstrasse 10"),
    ("São Paulo", "BR", "01310-100", "Avenida Paulista 1000"),
    ("北京", "CN", "100000", "长安街 1号"),
    ("Paris", "FR", "75001", "1 Rue de Rivoli"),
    ("New York", "US", "10001", "350 5th Ave"),
)
ABSENCE_TYPES = (  # name, unit, half_days_supported, exact_times_supported
    ("Urlaub", "DAYS", True, False),
    ("Krankheit", "DAYS", False, False),
    ("Überstundenabbau", "HOURS", False, True),
    ("Elternzeit", "DAYS", None, None),
    ("Home office", "DAYS", True, False),
    ('Sonderurlaub "Umzug"', "DAYS", False, False),
    ("Fortbildung/Training", "HOURS", None, True),
)
EMPLOYMENT_STATUSES = (("ACTIVE", 80), ("INACTIVE", 8), ("LEAVE", 5),
                       ("PENDING", 4), (None, 2), ("Probezeit", 1))
EMPLOYMENT_TYPES = ("FULL_TIME", "PART_TIME", "CONTRACT", "INTERNSHIP",
                    "FREELANCE", "WORKING_STUDENT", None)
GENDERS = ("MALE", "FEMALE", "NON_BINARY", "NOT_SPECIFIED", None, "divers")
ETHNICITIES = ("WHITE", "ASIAN", "HISPANIC_LATINO", "BLACK_AFRICAN_AMERICAN",
               "MULTIPLE_ETHNICITIES", "DECLINE_TO_SPECIFY", None)
MARITAL = ("SINGLE", "MARRIED", "DOMESTIC_PARTNERSHIP", "WIDOWED", "DIVORCED",
           "SEPARATED", "NOT_MARRIED", None)
PAY_PERIODS = ("YEAR", "MONTH", "HOUR", "WEEK", None)
PAY_FREQUENCIES = ("MONTHLY", "BIWEEKLY", "WEEKLY", "SEMIMONTHLY", None)
CURRENCIES = ("EUR", "SEK", "PLN", "CHF", "USD", "BRL", None)
ABSENCE_STATUSES = ("APPROVED", "REQUESTED", "DECLINED", "CANCELLED", None)
TIMEZONES = ("+01:00", "+02:00", "-05:00", "+00:00", "+05:30", None)
WEIRD_EMPLOYEE_IDS = ("weird/slash/id", "..", ".hidden-employee", "Zoë李-id")
WEIRD_GROUP_ID = "grp/../escape"


def iso_ms(ms):
    """Milliseconds since the epoch -> ``2022-08-07T14:01:29.196Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def iso_date(ms):
    """Milliseconds since the epoch -> ``2022-08-07`` (UTC day)."""
    return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


def midnight(ms):
    return ms - ms % DAY_MS


class Factory:
    """Builds single records from a seeded RNG.

    Used for the bulk data and for records created at run time
    (`create_employee`, `add_employment`, ...), which pass their own RNG.
    """

    def __init__(self, rng, integration_id):
        self.rng = rng
        self.integration_id = integration_id
        self._used_ids = set()
        self._counter = 0

    # -- primitives ---------------------------------------------------
    def kid(self):
        """A fresh 24-character alphanumeric Kombo id."""
        while True:
            value = "".join(self.rng.choices(ALNUM, k=24))
            if value not in self._used_ids:
                self._used_ids.add(value)
                return value

    def reserve_id(self, value):
        self._used_ids.add(value)

    def uuid(self):
        """Upper-case UUID-style id, as the OAS timesheet example uses."""
        n = self.rng.getrandbits(128)
        h = "%032X" % n
        return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    def serial(self):
        self._counter += 1
        return self._counter

    def chance(self, p):
        return self.rng.random() < p

    def pick(self, seq):
        return seq[int(self.rng.random() * len(seq))]

    def below(self, n):
        """Uniform int in [0, n); cheaper than randrange (hot path)."""
        return int(self.rng.random() * n)

    def weighted(self, pairs):
        total = sum(w for _, w in pairs)
        x = self.below(total)
        for value, w in pairs:
            if x < w:
                return value
            x -= w
        return pairs[-1][0]

    def stamp(self, lo=GEN_START_MS, hi=GEN_END_MS):
        return lo + self.below(hi - lo)

    def times(self):
        """(remote_created_at ms, changed_at ms) inside the generation window."""
        created = self.stamp(GEN_START_MS, GEN_END_MS - 30 * DAY_MS)
        return created, self.stamp(created, GEN_END_MS)

    def address(self, city=None):
        name, country, zip_code, street = city or self.pick(CITIES)
        addr = {
            "city": name,
            "country": country,
            "raw": "%s\n%s %s\n%s" % (street, zip_code, name, country),
            "state": None,
            "street_1": street,
            "street_2": "c/o \"Reception\"" if self.chance(0.05) else None,
            "zip_code": zip_code,
        }
        if self.chance(0.05):  # every address key is optional
            del addr[self.pick(("state", "street_2", "raw"))]
        return addr

    def integration_fields(self):
        if not self.chance(0.1):
            return []
        return [{"id": self.kid(), "key": "shirt_size", "type": "CUSTOM",
                 "value": self.pick(("S", "M", "L", "XL")), "label": "Shirt size"}]

    # -- the nine models ------------------------------------------------
    def legal_entity(self, index):
        created, changed = self.times()
        city = CITIES[index % len(CITIES)]
        rec = {
            "id": self.kid(),
            "remote_id": "le-%s-%02d" % (city[1].lower(), index),
            "name": "Northwind %s %s" % (city[0], self.pick(("GmbH", "AB", "Sp. z o.o.", "SAS", "Inc."))),
            "address": self.address(city),
            "changed_at": iso_ms(changed),
            "remote_deleted_at": None,
            "remote_data": None,
        }
        if index % 7 == 6:
            del rec["address"]
        return rec

    def location(self, index):
        created, changed = self.times()
        city = CITIES[index % len(CITIES)]
        kind = "REMOTE" if index % 11 == 10 else ("OFFICE" if index % 5 else None)
        rec = {
            "id": self.kid(),
            "remote_id": "loc-%d" % index if index % 9 else None,
            "name": "Remote" if kind == "REMOTE" else "%s Office %d" % (city[0], index),
            "address": None if kind == "REMOTE" else self.address(city),
            "type": kind,
            "changed_at": iso_ms(changed),
            "remote_deleted_at": None,
            "remote_data": None,
        }
        return rec

    def group(self, kind, index, parent_id):
        created, changed = self.times()
        if kind == "DEPARTMENT":
            name = DEPARTMENTS[index % len(DEPARTMENTS)]
            if index >= len(DEPARTMENTS):
                name = "%s %d" % (name, index // len(DEPARTMENTS) + 1)
            prefix = "dep"
        elif kind == "TEAM":
            name, prefix = "%s %d" % (TEAM_WORDS[index % len(TEAM_WORDS)], index + 1), "team"
        elif kind == "COST_CENTER":
            name, prefix = "CC-%04d" % (1000 + index), "cc"
        else:
            name, prefix = ("Betriebsrat", "Fire wardens", None, "Mentoring \"Buddies\"")[index % 4], "grp"
        return {
            "id": self.kid(),
            "remote_id": "%s-%d" % (prefix, index + 1),
            "name": name,
            "changed_at": iso_ms(changed),
            "remote_deleted_at": None,
            "type": kind,
            "parent_id": parent_id,
            "remote_data": None,
        }

    def absence_type(self, index):
        name, unit, half, exact = ABSENCE_TYPES[index % len(ABSENCE_TYPES)]
        created, changed = self.times()
        return {
            "id": self.kid(),
            "remote_id": str(1000 + index),
            "name": name,
            "unit": unit,
            "half_days_supported": half,
            "exact_times_supported": exact,
            "remote_data": None,
            "changed_at": iso_ms(changed),
            "remote_deleted_at": None,
        }

    def employee(self, index, manager_id, legal_entity_id, location_id, job_title=None):
        """Own fields of one employee, key order as in kombo-api.md §4.1."""
        created, changed = self.times()
        first = self.pick(FIRST_NAMES) if not self.chance(0.01) else None
        last = self.pick(LAST_NAMES) if not self.chance(0.01) else None
        display = " ".join(x for x in (first, last) if x) or None
        if self.chance(0.01):
            display = self.pick(ODD_DISPLAY)
        elif self.chance(0.02):
            display = None
        status = self.weighted(EMPLOYMENT_STATUSES)
        login = "%s.%s%d" % (_ascii(first or "x"), _ascii(last or "y"), index)
        start = midnight(self.stamp(calendar.timegm((2010, 1, 1, 0, 0, 0)) * 1000, GEN_END_MS))
        term = None
        if status == "INACTIVE" or self.chance(0.01):
            term = midnight(start + (30 + self.below(2970)) * DAY_MS)
        rec = {
            "id": self.kid(),
            "remote_id": str(10000 + index),
            "employee_number": "E-%05d" % index if not self.chance(0.05) else None,
            "first_name": first,
            "last_name": last,
            "nationality": self.pick(("SE", "DE", "PL", "FR", "CN", "BR", "US", None)),
            "display_full_name": display,
            "job_title": job_title,
            "work_email": (login + "@northwind.example").lower() if not self.chance(0.03) else None,
            "personal_email": (login + "@mail.example") if self.chance(0.4) else None,
            "mobile_phone_number": "+46 70 %03d %02d %02d" % (index % 1000, index % 97, index % 89)
            if self.chance(0.7) else None,
            "ssn": None,
            "tax_id": "%011d" % self.rng.randrange(10**10, 10**11) if self.chance(0.2) else None,
            "gender": self.pick(GENDERS),
            "ethnicity": self.pick(ETHNICITIES) if self.chance(0.3) else None,
            "marital_status": self.pick(MARITAL),
            "employment_status": status,
            "employment_type": self.pick(EMPLOYMENT_TYPES),
            "weekly_hours": self.pick((40, 38.5, 20, 32, None)),
            "avatar": "https://avatars.example/%d.png" % index if self.chance(0.1) else None,
            "work_location_id": location_id,
            "legal_entity_id": legal_entity_id,
            "manager_id": manager_id,
            "home_address": self.address() if self.chance(0.8) else None,
            "bank_accounts": self.bank_accounts(display),
            "date_of_birth": iso_ms(midnight(self.stamp(calendar.timegm((1960, 1, 1, 0, 0, 0)) * 1000,
                                                        calendar.timegm((2004, 1, 1, 0, 0, 0)) * 1000)))
            if self.chance(0.9) else None,
            "start_date": iso_ms(start),
            "termination_date": iso_ms(term) if term else None,
            "remote_created_at": iso_ms(created) if self.chance(0.95) else None,
            "changed_at": iso_ms(changed),
            "remote_deleted_at": None,
            "custom_fields": self.employee_custom_fields(index),
            "integration_fields": self.integration_fields(),
            "remote_data": None if not self.chance(0.02) else
            {"/employees/%d" % (10000 + index): {"id": 10000 + index, "attributes": {"preferred_name": first}}},
        }
        self.drop_optional(rec, ("work_email", "personal_email", "gender", "ethnicity",
                                 "marital_status", "employment_type", "home_address",
                                 "bank_accounts"), 0.03)
        return rec

    def bank_accounts(self, holder):
        if self.chance(0.5):
            return [] if self.chance(0.8) else None
        return [{
            "iban": "DE%020d" % self.rng.randrange(10**19, 10**20),
            "bic": "NWBKDEFFXXX",
            "account_number": None,
            "holder_name": holder,
            "bank_name": "Nordbank",
            "domestic_bank_routing": {"number": "10010010", "type": "DE_BANKLEITZAHL"}
            if self.chance(0.5) else None,
        }]

    def employee_custom_fields(self, index):
        if self.chance(0.1):
            return None
        if self.chance(0.2):
            return {}
        return {"cost_center_code": "FIN-%03d" % (index % 40),
                "badge_number": index,
                "remote_worker": index % 3 == 0}

    def drop_optional(self, rec, keys, p):
        """Remove one optional key with probability p (disabled scope field)."""
        if self.chance(p):
            rec.pop(self.pick(keys), None)

    def employment(self, employee_id, index, serial, job_title, effective_ms):
        created, changed = self.times()
        rec = {
            "id": self.kid(),
            "remote_id": "emp-%d-%d" % (10000 + index, serial) if not self.chance(0.05) else None,
            "employee_id": employee_id,
            "job_title": job_title,
            "pay_rate": self.pick((64000, 52000.5, 3800, 25.5, None, 120000)),
            "pay_period": self.pick(PAY_PERIODS),
            "pay_frequency": self.pick(PAY_FREQUENCIES),
            "employment_type": self.pick(EMPLOYMENT_TYPES),
            "pay_currency": self.pick(CURRENCIES),
            "effective_date": iso_ms(effective_ms) if effective_ms is not None else None,
            "changed_at": iso_ms(changed),
            "remote_deleted_at": None,
            "remote_data": None,
            "custom_fields": {} if self.chance(0.9) else {"grade": "L%d" % (index % 7)},
            "integration_fields": [],
        }
        self.drop_optional(rec, ("pay_period", "pay_frequency", "employment_type"), 0.03)
        return rec

    def balance(self, employee_id, absence_type):
        created, changed = self.times()
        unit = absence_type["unit"]
        return {
            "id": self.kid(),
            "remote_id": "bal-%d" % self.serial() if self.chance(0.5) else None,
            "employee_id": employee_id,
            "type_id": absence_type["id"],
            "balance": self.pick((17.5, 25, 0, -2, 30, None)),
            "balance_unit": unit,
            "changed_at": iso_ms(changed),
            "remote_deleted_at": None,
            "used": self.pick((7.5, 0, 12, None)),
            "used_unit": unit,
            "remote_data": None,
        }

    def absence(self, employee_id, approver_id, absence_type):
        created, changed = self.times()
        start = midnight(self.stamp())
        days = self.below(14)
        hours = absence_type["unit"] == "HOURS"
        half = absence_type["half_days_supported"]
        rec = {
            "id": self.kid(),
            "remote_id": str(500000 + self.serial()) if self.chance(0.9) else None,
            "employee_id": employee_id,
            "approver_id": approver_id,
            "start_date": iso_date(start) if not self.chance(0.01) else None,
            "end_date": iso_date(start + days * DAY_MS) if not self.chance(0.02) else None,
            "start_half_day": self.chance(0.2) if half else None,
            "end_half_day": self.chance(0.2) if half else None,
            "start_time": "09:00:00" if hours else None,
            "end_time": "13:15:00" if hours else None,
            "amount": (4.25 if hours else days + 1) if self.chance(0.95) else None,
            "unit": absence_type["unit"],
            "status": self.pick(ABSENCE_STATUSES),
            "employee_note": self.pick((None, None, "Family trip ✈", 'Doctor "urgent"', "Umzug\\Neue Wohnung")),
            "type_id": absence_type["id"],
            "remote_created_at": iso_ms(created),
            "remote_updated_at": iso_ms(changed) if self.chance(0.8) else None,
            "changed_at": iso_ms(changed),
            "remote_deleted_at": None,
            "remote_data": None,
        }
        self.drop_optional(rec, ("status",), 0.03)
        return rec

    def timesheet(self, employee_id):
        created, changed = self.times()
        start = self.stamp()
        end = start + (2 + self.below(9)) * 3600 * 1000 if self.chance(0.95) else None
        breaks = [] if end is None else [{
            "started_at": iso_ms(start + 3 * 3600 * 1000),
            "ended_at": iso_ms(start + 3 * 3600 * 1000 + 30 * 60 * 1000),
            "paid": False,
        }]
        status = self.pick(("APPROVED", "PENDING", "REJECTED", None))
        rec = {
            "id": self.uuid(),
            "remote_id": str(900000 + self.serial()) if self.chance(0.9) else None,
            "employee_id": employee_id,
            "started_at": iso_ms(start),
            "ended_at": iso_ms(end) if end is not None else None,
            "timezone": self.pick(TIMEZONES),
            "payable_hours": round((end - start) / 3600000 - 0.5, 2) if end and self.chance(0.7) else None,
            "unpaid_break_minutes": 30 if end else None,
            "breaks": breaks if self.chance(0.9) else None,
            "approval_status": status,
            "approved_at": iso_ms(changed) if status == "APPROVED" else None,
            "comment": self.pick((None, None, "Überstunden", "On-site 🚧", 'Said "hi"')),
            "custom_fields": None if self.chance(0.5) else {},
            "integration_fields": [],
            "changed_at": iso_ms(changed),
            "remote_deleted_at": None,
            "remote_data": None,
        }
        self.drop_optional(rec, ("breaks",), 0.05)
        return rec


def _ascii(text):
    """Lower-case ASCII-ish login fragment for e-mail addresses."""
    out = "".join(c for c in text.lower() if c in string.ascii_lowercase)
    return out or "user"


def scale(employees):
    """Sizes of the non-employee tables for a given number of employees."""
    return {
        "legal_entities": max(2, min(40, employees // 2500 + 2)),
        "locations": max(3, min(150, employees // 700 + 3)),
        "departments": max(4, min(300, employees // 150 + 3)),
        "teams": max(3, min(3000, employees // 40)),
        "cost_centers": max(2, min(200, employees // 500 + 2)),
        "untyped": 2,
    }


def generate(employees=200, seed=1, integration_id="personio:Q4vX8kLm2PzR7tYb3NcW9sHd",
             weird_ids=False):
    """Yield (endpoint, fields, extra) for a whole data set; see module doc."""
    f = Factory(random.Random(seed), integration_id)
    sizes = scale(employees)
    les = [f.legal_entity(i) for i in range(sizes["legal_entities"])]
    locs = [f.location(i) for i in range(sizes["locations"])]
    for rec in les:
        yield "legal-entities", rec, None
    for rec in locs:
        yield "locations", rec, None
    groups = yield from _groups(f, sizes, weird_ids)
    types = [f.absence_type(i) for i in range(len(ABSENCE_TYPES))]
    for rec in types:
        yield "absence-types", rec, None
    ids = []
    for i in range(employees):
        ids.append((yield from _employee_with_children(f, i, ids, les, locs, groups, types, weird_ids)))


def _groups(f, sizes, weird_ids):
    """Yield groups (departments first, so parents precede children)."""
    out = {"DEPARTMENT": [], "TEAM": [], "COST_CENTER": [], None: []}
    for i in range(sizes["departments"]):
        parent = out["DEPARTMENT"][(i - 1) // 3]["id"] if i and i % 4 == 0 else None
        out["DEPARTMENT"].append(f.group("DEPARTMENT", i, parent))
    for i in range(sizes["teams"]):
        out["TEAM"].append(f.group("TEAM", i, f.pick(out["DEPARTMENT"])["id"] if f.chance(0.9) else None))
    for i in range(sizes["cost_centers"]):
        out["COST_CENTER"].append(f.group("COST_CENTER", i, None))
    for i in range(sizes["untyped"]):
        out[None].append(f.group(None, i, None))
    if weird_ids:
        out["TEAM"][0]["id"] = WEIRD_GROUP_ID
        f.reserve_id(WEIRD_GROUP_ID)
    for kind in ("DEPARTMENT", "TEAM", "COST_CENTER", None):
        for rec in out[kind]:
            yield "groups", rec, None
    return out


def _memberships(f, groups):
    ids = [f.pick(groups["DEPARTMENT"])["id"]]
    if f.chance(0.8):
        ids.append(f.pick(groups["TEAM"])["id"])
    if f.chance(0.3):
        ids.append(f.pick(groups["COST_CENTER"])["id"])
    if f.chance(0.05):
        ids.append(f.pick(groups[None])["id"])
    if f.chance(0.02):
        ids = []
    return ids


def _employee_with_children(f, i, ids, les, locs, groups, types, weird_ids):
    manager = None
    if i and not f.chance(0.03):
        manager = ids[f.below(max(1, min(i, i // 4 + 1)))]
    le = f.pick(les)["id"] if not f.chance(0.02) else None
    loc = f.pick(locs)["id"] if not f.chance(0.05) else None
    n_emp = f.weighted(((1, 60), (2, 30), (3, 10)))
    titles = [f.pick(JOB_TITLES) for _ in range(n_emp)]
    emp = f.employee(i, manager, le, loc, job_title=titles[-1] if not f.chance(0.02) else None)
    if weird_ids and 1 <= i <= len(WEIRD_EMPLOYEE_IDS):
        emp["id"] = WEIRD_EMPLOYEE_IDS[i - 1]
        f.reserve_id(emp["id"])
    eid = emp["id"]
    yield "employees", emp, {"group_ids": _memberships(f, groups)}
    start = _parse_ms(emp["start_date"])
    for k, title in enumerate(titles):
        effective = start + k * 365 * DAY_MS if not f.chance(0.03) else None
        yield "employments", f.employment(eid, i, k + 1, title, effective), None
    for t in _distinct(f, types, f.weighted(((1, 50), (2, 40), (0, 10)))):
        yield "time-off-balances", f.balance(eid, t), None
    for _ in range(f.weighted(((0, 30), (1, 35), (2, 25), (3, 10)))):
        yield "absences", f.absence(eid, manager if f.chance(0.7) else None, f.pick(types)), None
    for _ in range(f.weighted(((0, 40), (1, 40), (2, 20)))):
        yield "timesheets", f.timesheet(eid), None
    return eid


def _distinct(f, seq, n):
    return f.rng.sample(seq, n) if n else []


def _parse_ms(text):
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) * 1000
