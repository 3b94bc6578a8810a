#!/usr/bin/python3
"""Regenerate the committed seed corpus of tests/fuzz/corpus/ (docs/fuzzing.md).

    /usr/bin/python3 tests/fuzz/make_corpus.py

Pages and records come from the sandbox (tests/sandbox, with its "weird" ids:
/, .., a leading dot, non-ASCII), fetched with small pages; record pairs for
the diff target come from the sandbox's own mutations (a changed job title, a
new employment, a new manager, a renamed group). Webhook seeds are signed with
the sandbox's signer and include the kombo-api.md §5 test vector. The data
comes from a fixed seed; only the sandbox's timestamps differ between runs.
The output is small (about 75 KB) and replaces the corpus directories'
contents; it also writes the dictionaries json.dict and options.dict.
"""

import hashlib
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "sandbox"))

from kombo_sandbox import Sandbox  # noqa: E402
from sandbox_client import Client  # noqa: E402
from sandbox_webhooks import Payloads, encode, sign  # noqa: E402

INTEGRATION = "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"
SECRET = "test-webhook-secret"
VECTOR_BODY = (b'{"id":"Y7mQ2bWc9LkTz4HfPx3nRs8e","type":"data-changed","data":{"integration_id":'
               b'"personio:Q4vX8kLm2PzR7tYb3NcW9sHd","integration_tool":"personio",'
               b'"integration_category":"HRIS","changed_models":[{"name":"hris_employees"},'
               b'{"name":"hris_employments"}]}}')
VECTOR_SIG = b"mbsrnNJOKrGKennEgGDqkjJ8gaWDcs8UzCZAgAYqWDU"
ENDPOINTS = ("employees", "employments", "groups", "absences", "absence-types",
             "time-off-balances", "timesheets", "legal-entities", "locations")


class Corpus:
    def __init__(self, target):
        self.dir = os.path.join(HERE, "corpus", target)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.n = 0

    def add(self, data, name=None):
        if isinstance(data, str):
            data = data.encode()
        name = name or hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(self.dir, name), "wb") as f:
            f.write(data)
        self.n += 1


def compact(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def pages(sb):
    c = Corpus("page")
    cl = Client(sb.url, "sandbox-key", INTEGRATION)
    records = {}
    for ep in ENDPOINTS:
        r = cl.get("/hris/" + ep, page_size=2)
        c.add(r.body, "%s-first" % ep)
        records[ep] = r.json()["data"]["results"]
        nxt = r.json()["data"]["next"]
        if nxt and ep in ("employees", "groups"):
            r2 = cl.get("/hris/" + ep, page_size=2, cursor=nxt)
            c.add(r2.body, "%s-second" % ep)
    # the weird ids: the employees page that holds them
    r = cl.get("/hris/employees", page_size=6)
    c.add(r.body, "employees-weird-ids")
    # a last page, an empty page, errors
    c.add(b'{"status":"success","data":{"next":null,"results":[]}}', "empty-last")
    c.add(b'{"status":"success","data":{"results":[{"id":"a"}],"next":""}}', "next-empty")
    c.add(b'{"status":"error","error":{"code":"PLATFORM.RATE_LIMIT_EXCEEDED","title":'
          b'"Rate limit exceeded","message":"Too many requests."}}', "error-envelope")
    r = cl.get("/hris/employees", page_size=2, cursor="not-a-cursor")
    c.add(r.body, "error-bad-cursor")
    # records with what jtext must keep verbatim
    c.add(b'{"status":"success","data":{"next":"eyJwIjoxfQ\\u003d\\u003d","results":['
          b'{"id":"x1","n":12345678901234567890123,"r":0.1,"s":1.50,"e":-0E+00,'
          b'"u":"\\u00e9\\ud83d\\ude00\\n\\"","changed_at":"2026-11-27T10:00:00.000Z",'
          b'"remote_id":null,"remote_deleted_at":null,"nested":[[],{},[{"a":[true,false,null]}]]}]}}',
          "verbatim-numbers")
    # what jtext keeps verbatim and jansson refuses (docs/fuzzing.md, "known divergences")
    c.add(b'{"status":"success","data":{"next":null,"results":[{"id":"big","n":1' + b'0' * 400 + b'},'
          b'{"id":"real","r":1e400},{"id":"lone","s":"\\ud83d"},{"id":"utf8","s":"\xc3("},'
          b'{"id":"nul","s":"a\\u0000b"},{"id":"nulkey","\\u0000":1}]}}', "jansson-refuses")
    c.add(b'{"status":"success","data":{"next":null,"results":[{"id":"dup","id":"dup2"},'
          b'{"id":"\\u0000nul"},{"id":42},"not an object",{"id":"../etc"}]}}', "odd-records")
    cl.close()
    return records


def diffs(sb):
    c = Corpus("diff")
    cl = Client(sb.url, "sandbox-key", INTEGRATION)

    def fetch(ep):
        return {r["id"]: r for r in cl.list_all(ep, page_size=250)}

    before = {ep: fetch(ep) for ep in ("employees", "groups", "absences", "time-off-balances")}
    emp_ids = sorted(before["employees"])
    e0, e1, e2 = emp_ids[0], emp_ids[1], emp_ids[2]
    group = sorted(before["groups"])[0]
    sb.update_employee(e0, job_title="Lead Payroll Specialist", mobile_phone_number=None)
    sb.add_employment(e1, job_title="Second Role")
    sb.set_manager(e2, e0)
    sb.rename_group(group, "Renamed ~ Group / With Slash")
    absence = sorted(before["absences"])[0]
    sb.soft_delete("absences", absence)
    after = {ep: fetch(ep) for ep in before}
    n = 0
    for ep in before:
        for rid, old in before[ep].items():
            new = after[ep].get(rid)
            if new is not None and new != old and n < 24:
                c.add(compact(old) + b"\0" + compact(new), "%s-%d" % (ep, n))
                n += 1
    # a record and itself, with a patch using every operation
    rec = before["employees"][e0]
    patch = [{"op": "test", "path": "/id", "value": rec["id"]},
             {"op": "copy", "from": "/employments", "path": "/copied"},
             {"op": "move", "from": "/copied", "path": "/moved"},
             {"op": "add", "path": "/employments/-", "value": {"id": "new"}},
             {"op": "replace", "path": "/first_name", "value": "Zoë"},
             {"op": "remove", "path": "/moved"},
             {"op": "add", "path": "/a~1b~0c", "value": [1, 1.0, -0, 1e300]},
             {"op": "test", "path": "/a~1b~0c/1", "value": 1}]
    c.add(compact(rec) + b"\0" + compact(rec) + b"\0" + compact(patch), "all-ops")
    # hand-made shapes: arrays, type changes, keys that need escaping
    c.add(b'[1,2,3,4,5]\0[1,9,3,4,5,6]', "array-edit")
    c.add(b'[{"id":"a","v":1},{"id":"b","v":2}]\0[{"id":"b","v":2},{"id":"a","v":3}]', "array-reorder")
    c.add(b'{"a/b":1,"c~d":{"":2}}\0{"a/b":"1","c~d":{"":[2]},"n":1.0}', "escaped-keys")
    c.add(b'{"employments":[{"id":"e1","job_title":"A"}],"manager":{"id":"m1"},"groups":[]}\0'
          b'{"employments":[{"id":"e2"},{"id":"e1","job_title":"B"}],"manager":null,"groups":[{"name":"x"}]}',
          "nested")
    c.add(b'{"type":{"id":"t","changed_at":"2026-01-01"}}\0{"type":{"id":"t","changed_at":"2026-01-02"}}',
          "nested-changed-at")
    c.add(b'null\0{"x":"\\u0000"}\0[{"op":"add","path":"","value":{}},{"op":"add","path":"/x","value":1}]',
          "whole-doc")
    c.add(b'{}\0{}\0[{"op":"remove","path":""},{"op":"move","from":"/a","path":"/a/b"},'
          b'{"op":"add","path":"/~2","value":1},{"op":"add","path":"/01","value":1}]', "bad-patch")
    cl.close()


def webhooks():
    c = Corpus("webhook")

    def seed(secret, header, body, name):
        secret, header = secret.encode(), header if isinstance(header, bytes) else header.encode()
        c.add(bytes([len(secret), len(header)]) + secret + header + body, name)

    seed(SECRET, VECTOR_SIG, VECTOR_BODY, "test-vector")
    seed(SECRET, VECTOR_SIG[:-1] + b"V", VECTOR_BODY, "test-vector-bad-sig")
    seed(SECRET, b"", VECTOR_BODY, "no-header")
    seed("", VECTOR_SIG, VECTOR_BODY, "no-secret")
    p = Payloads(INTEGRATION)
    events = [
        p.event("data-changed", {"changed_models": ["hris_teams", "hris_absence_types",
                                                    "hris_join_employees_teams", "hris_skills"]},
                event_id="evt-data-1"),
        p.event("integration-deleted", event_id="evt-del-1", now_ms=1764237600000),
        p.event("integration-state-changed", event_id="evt-state-1", now_ms=1764237600000),
        p.event("integration-created", event_id="evt-created-1", now_ms=1764237600000),
        {"id": "evt-other", "type": "data-changed", "data": {
            "integration_id": "bamboohr:other", "integration_tool": "bamboohr",
            "integration_category": "HRIS", "changed_models": []}},
        {"id": "x" * 130, "type": "data-changed", "data": {}},
        {"id": "has space", "type": "sync-finished", "data": {}},
    ]
    for i, ev in enumerate(events):
        body = encode(ev)
        seed(SECRET, sign(SECRET, body), body, "event-%d" % i)
    body = b'{"id":"a","id":"b","type":"data-changed","data":{}}'
    seed(SECRET, sign(SECRET, body), body, "duplicate-keys")
    # listen values travel in the header slot
    for i, v in enumerate(["127.0.0.1:8080", "[::1]:443", ":9000", "localhost:1", "[::ffff:10.0.0.1]:65535",
                           "0.0.0.0:0", "::1:80", "[fe80::1%eth0]:80"]):
        seed("k", v, b"{}", "listen-%d" % i)


def fsnames(records):
    c = Corpus("fsname")
    ids = ["weird/slash/id", "..", ".", ".hidden-employee", "Zoë李-id", "a\0b", "%41", "-",
           "8fQk2LrT6vWn3XyB9cHd4JmP", "6F9619FF-8B86-D011-B42D-00C04FC964FF", "a b:c_d.e-f",
           "\xff\xfe", "~", ".." + "/" * 3, "x" * 100]
    for rec in records.get("employees", []):
        ids.append(rec["id"])
    for i, s in enumerate(ids):
        c.add(s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s, "id-%d" % i)


def controls():
    c = Corpus("control")
    for i, s in enumerate(["sync", "resync", "sync\n", "resync\r\n", "sync employees",
                           "resync time-off-balances\n", "sync absence-types\r\n", "sync legal-entities",
                           "sync changes", "SYNC", "sync  employees", "sync employees extra",
                           "sync\0employees", "sync\n\n", "resync locations\r", "\n", "",
                           "sync " + "x" * 70]):
        c.add(s, "cmd-%d" % i)


def options():
    c = Corpus("options")

    def seed(env, *args, name):
        c.add(bytes([env]) + b"\0".join(a.encode() for a in args), name)

    api, wh, iid, url = 0x01, 0x02, 0x04, 0x08
    seed(api, "personio:x", "mnt", name="source-mount")
    seed(api, "mnt", "--integration=" + INTEGRATION, "-o", "allow_other,uid=1000,gid=100,umask=027",
         name="integration-o")
    seed(0, "mnt", "--integration", "x", "--api-key-file=key", "--webhook-listen=127.0.0.1:8080",
         "--webhook-secret-file=secret", "--webhook-path=/hooks/kombo", name="files")
    seed(api | wh | iid | url, "mnt", "-oapi_url=https://api.kombo.dev/v1,full_sync_interval=7d,"
         "poll-interval=15m,overlap=90,changes_retention=30d,models=employees,groups", name="o-list")
    seed(iid, "--check", "--offline", name="check-offline")
    seed(api | iid, "mnt", "-f", "-d", "-s", "--no-kernel-notify", "--models=absences,time-off-balances",
         name="flags")
    seed(api, "mnt", "--api-key=visible", name="refused-api-key")
    seed(api, "mnt", "-o", "webhook_secret=visible", name="refused-secret")
    seed(api | iid, "mnt", "--full-sync-interval=1x", name="bad-duration")
    seed(api | iid, "file", name="not-a-dir")
    seed(0, "mnt", "--integration=x", "--api-key-file=big", name="big-key")
    seed(0, "mnt", "--integration=x", "--api-key-file=nul", name="nul-key")
    seed(0, "mnt", "--integration=x", "--api-key-file=empty", name="empty-key")
    seed(0x20 | api | iid, "mnt", name="state-directory")
    seed(0, "--help", name="help")
    seed(0, "-V", name="version")
    for i, d in enumerate(["90", "90s", "15m", "1h", "7d", "0", "9223372036854775807",
                           "106751991167300d", "1w", "-1", "1 ", ""]):
        seed(api | iid, d, "mnt", "--overlap=" + d, name="duration-%d" % i)


def dictionaries():
    """libFuzzer dictionaries (-dict=): JSON tokens and Kombo names."""
    json_tokens = ['"{"', '"}"', '"["', '"]"', '":"', '","', '"\\""', '"true"', '"false"', '"null"',
                   '"\\\\u0000"', '"\\\\ud800"', '"\\\\udc00"', '"\\\\u00e9"', '"\\\\\\\\"', '"\\\\/"',
                   '"1e400"', '"-0"', '"0.1"', '"12345678901234567890"', '"1E+2"',
                   '"\\"status\\""', '"\\"success\\""', '"\\"data\\""', '"\\"next\\""',
                   '"\\"results\\""', '"\\"id\\""', '"\\"changed_at\\""', '"\\"remote_id\\""',
                   '"\\"remote_deleted_at\\""', '"\\"employments\\""', '"\\"manager\\""',
                   '"\\"groups\\""', '"\\"type\\""', '"\\"op\\""', '"\\"path\\""', '"\\"from\\""',
                   '"\\"value\\""', '"\\"add\\""', '"\\"remove\\""', '"\\"replace\\""', '"\\"move\\""',
                   '"\\"copy\\""', '"\\"test\\""', '"/-"', '"~0"', '"~1"', '"\\"data-changed\\""',
                   '"\\"changed_models\\""', '"\\"integration_id\\""', '"\\"name\\""',
                   '"\\"hris_employees\\""', '"\\"integration-deleted\\""', '"\\"deleted_at\\""',
                   '"\\"integration-state-changed\\""', '"\\"' + INTEGRATION + '\\""']
    with open(os.path.join(HERE, "json.dict"), "w") as f:
        f.write("# JSON tokens and the Kombo names the targets look for (make_corpus.py)\n")
        for i, t in enumerate(json_tokens):
            f.write("t%d=%s\n" % (i, t))
    opts = ["--integration=", "--api-url=", "--api-key-file=", "--cache=", "--webhook-listen=",
            "--webhook-path=", "--webhook-secret-file=", "--full-sync-interval=", "--poll-interval=",
            "--overlap=", "--models=", "--changes-retention=", "--offline", "--check",
            "--no-kernel-notify", "--help", "--version", "--api-key", "--webhook-secret", "-o", "-f",
            "-d", "-s", "-h", "-V", "api_key", "api-key", "webhook_secret", "webhook-secret",
            "api_key_file=", "webhook_secret_file=", "uid=", "gid=", "umask=", "allow_other",
            "default_permissions", "employees", "time-off-balances", "mnt", "key", "secret", "big",
            "nul", "empty", "file", "http://", "https://", "7d", "15m", "1h", "90s"]
    with open(os.path.join(HERE, "options.dict"), "w") as f:
        f.write("# option names and sandbox file names (make_corpus.py)\n")
        for i, t in enumerate(opts):
            f.write('o%d="%s"\n' % (i, t))
            f.write('z%d="\\x00%s"\n' % (i, t))


def main():
    with Sandbox(employees=8, seed=3, weird_ids=True) as sb:
        records = pages(sb)
        diffs(sb)
    webhooks()
    fsnames(records)
    controls()
    options()
    dictionaries()
    total = 0
    for t in sorted(os.listdir(os.path.join(HERE, "corpus"))):
        d = os.path.join(HERE, "corpus", t)
        files = os.listdir(d)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in files)
        total += size
        print("%-8s %3d seeds %7d bytes" % (t, len(files), size))
    print("total    %7d bytes" % total)


if __name__ == "__main__":
    main()
