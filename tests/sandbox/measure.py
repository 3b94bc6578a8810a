#!/usr/bin/python3
"""Measure the sandbox: start-up (generation) time, memory, and the throughput
of serving employee pages on loopback.

    /usr/bin/python3 tests/sandbox/measure.py [--employees 100000] [--page-size 250]
    /usr/bin/python3 tests/sandbox/measure.py --employees 100000 --delta [--samples 7]
    /usr/bin/python3 tests/sandbox/measure.py --integrations 1000 --employees 100 [--max-loaded K] [--preload]

The sandbox runs as a separate process (the CLI), so the client does not share
its GIL.  Passes: a cold pass (pages rendered on demand), then warm passes
(cached pages) with a keep-alive Python client and with curl (one curl
process, one connection, all page URLs), plain and gzip.

--delta instead times one delta request (100 employees created after T, then
GET employees?updated_after=T&include_deleted=true&page_size=250), each
sample being the first request after a further mutation (an update of one of
those employees), as a real delta fetch sees it: page caches are cold.

--integrations N instead starts a sandbox serving N integrations of
--employees each, then makes two passes over all of them (GET
/integrations/{id}, then every employees page), reporting time and memory:
the first pass generates every integration, the second finds them generated
or cached (or regenerates those --max-loaded dropped).
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from sandbox_client import Client  # noqa: E402
from sandbox_data import iso_ms  # noqa: E402

INTEGRATION = "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"


def proc_mem(pid):
    """(VmRSS, VmHWM) of a process in MiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":")
                out[name] = int(value.split()[0]) / 1024
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def start_sandbox(employees, tmp, extra=()):
    ready = os.path.join(tmp, "port")
    t = time.time()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "kombo_sandbox.py"),
                             "--employees", str(employees), "--ready-file", ready] + list(extra),
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().rsplit(":", 1)[1])
    return proc, port, time.time() - t


def python_pass(base, page_size, gzip_ok=False):
    """Walk every employees page; returns (seconds, bytes on the wire, page urls)."""
    c = Client(base, "sandbox-key", INTEGRATION)
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    urls, nbytes, cursor = [], 0, None
    t = time.time()
    while True:
        params = {"page_size": page_size}
        if cursor:
            params["cursor"] = cursor
        query = urllib.parse.urlencode(params)
        urls.append(base + "/hris/employees?" + query)
        conn = c._connection()
        conn.request("GET", c.prefix + "/hris/employees?" + query, headers=c.headers(headers))
        resp = conn.getresponse()
        raw = resp.read()
        nbytes += len(raw)
        body = raw if not gzip_ok else __import__("gzip").decompress(raw)
        cursor = __import__("json").loads(body)["data"]["next"]
        if not cursor:
            break
    elapsed = time.time() - t
    c.close()
    return elapsed, nbytes, urls


def curl_pass(urls, tmp, gzip_ok=False):
    """One curl process fetching all URLs over one kept-alive connection."""
    cfg = os.path.join(tmp, "curl.cfg")
    with open(cfg, "w") as f:
        f.write('header = "Authorization: Bearer sandbox-key"\n')
        f.write('header = "X-Integration-Id: %s"\n' % INTEGRATION)
        if gzip_ok:
            f.write('header = "Accept-Encoding: gzip"\n')
        for u in urls:
            f.write('url = "%s"\noutput = "/dev/null"\n' % u)
    t = time.time()
    out = subprocess.run(["curl", "-s", "-K", cfg, "-w", "%{size_download}\\n"],
                         check=True, capture_output=True, text=True).stdout
    elapsed = time.time() - t
    return elapsed, sum(int(x) for x in out.split())


def delta_pass(port, samples, changes=100):
    """Median seconds of the first delta request after a mutation; also the result count."""
    admin = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def mutate(op, **args):
        admin.request("POST", "/_sandbox/mutate", json.dumps({"op": op, "args": args}).encode(),
                      {"Content-Type": "application/json"})
        resp = admin.getresponse()
        body = json.loads(resp.read())
        if resp.status != 200:
            raise RuntimeError("mutate %s: %r" % (op, body))
        return body["result"]

    since = iso_ms(int(time.time() * 1000) - 1000)  # generated data is older
    ids = [mutate("create_employee") for _ in range(changes)]
    c = Client("http://127.0.0.1:%d/v1" % port, "sandbox-key", INTEGRATION)
    times, counts = [], set()
    for i in range(samples):
        mutate("update_employee", id=ids[i % changes], job_title="Delta %d" % i)
        t = time.perf_counter()
        r = c.get("/hris/employees", updated_after=since, include_deleted="true", page_size=250)
        times.append(time.perf_counter() - t)
        assert r.status == 200, r.body[:300]
        counts.add(len(r.json()["data"]["results"]))
    c.close()
    admin.close()
    times.sort()
    return times[len(times) // 2], times, counts


def integrations_pass(base, ids, page_size):
    """GET /integrations/{id} and every employees page of every integration;
    returns (seconds, bytes, employees)."""
    c = Client(base, "sandbox-key", None)
    t, nbytes, count = time.time(), 0, 0
    for iid in ids:
        c.integration_id = None
        r = c.get("/integrations/" + iid)
        assert r.status == 200, r.body[:300]
        nbytes += len(r.body)
        c.integration_id = iid
        cursor = None
        while True:
            params = {"page_size": page_size}
            if cursor:
                params["cursor"] = cursor
            r = c.get("/hris/employees", **params)
            assert r.status == 200, r.body[:300]
            nbytes += len(r.body)
            data = r.json()["data"]
            count += len(data["results"])
            cursor = data["next"]
            if not cursor:
                break
    c.close()
    return time.time() - t, nbytes, count


def measure_integrations(args, tmp):
    from sandbox_integrations import generated_ids
    extra = ["--integrations", str(args.integrations), "--max-loaded", str(args.max_loaded)]
    if args.preload:
        extra.append("--preload")
    proc, port, startup = start_sandbox(args.employees, tmp, extra)
    base = "http://127.0.0.1:%d/v1" % port
    try:
        rss, hwm = proc_mem(proc.pid)
        print("integrations: %d x %d employees, page_size: %d, max-loaded: %s%s" % (
            args.integrations, args.employees, args.page_size, args.max_loaded or "no limit",
            ", preload" if args.preload else ""))
        print("start-up (listening): %.2f s; RSS %.0f MiB (peak %.0f MiB)" % (startup, rss, hwm))
        ids = generated_ids(args.integrations, seed=1)
        for name in ("first pass (generates)", "second pass"):
            secs, nbytes, count = integrations_pass(base, ids, args.page_size)
            rss, hwm = proc_mem(proc.pid)
            print("%s: %d employees in %.1f s (%.1f ms per integration), %.0f MB; RSS %.0f MiB (peak %.0f MiB)"
                  % (name, count, secs, secs * 1000 / len(ids), nbytes / 1e6, rss, hwm))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def row(name, seconds, nbytes):
    print("%-34s %8.2f s %10.1f MB %9.1f MB/s" % (name, seconds, nbytes / 1e6, nbytes / 1e6 / seconds))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--employees", type=int, default=100000)
    ap.add_argument("--page-size", type=int, default=250)
    ap.add_argument("--delta", action="store_true", help="time delta requests instead of full passes")
    ap.add_argument("--samples", type=int, default=7, help="delta requests to time (--delta)")
    ap.add_argument("--integrations", type=int, help="serve this many integrations of --employees each")
    ap.add_argument("--max-loaded", type=int, default=256, help="with --integrations (0 = no limit)")
    ap.add_argument("--preload", action="store_true", help="with --integrations: generate all at start")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sandbox-measure-")
    if args.integrations:
        try:
            measure_integrations(args, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    proc, port, startup = start_sandbox(args.employees, tmp)
    base = "http://127.0.0.1:%d/v1" % port
    try:
        rss, hwm = proc_mem(proc.pid)
        print("employees: %d, page_size: %d" % (args.employees, args.page_size))
        print("start-up (generate + load + listen): %.1f s; RSS %.0f MiB (peak %.0f MiB)" % (startup, rss, hwm))
        if args.delta:
            median, times, counts = delta_pass(port, args.samples)
            print("delta request (%s results): median %.2f ms of %d; all: %s" % (
                "/".join(map(str, sorted(counts))), median * 1000, len(times),
                " ".join("%.2f" % (t * 1000) for t in times)))
            return
        secs, nbytes, urls = python_pass(base, args.page_size)
        row("cold pass, python keep-alive", secs, nbytes)
        for i in range(2):
            secs, nbytes, _ = python_pass(base, args.page_size)
            row("warm pass %d, python keep-alive" % (i + 1), secs, nbytes)
        if shutil.which("curl"):
            for i in range(2):
                secs, nbytes = curl_pass(urls, tmp)
                row("warm pass %d, curl keep-alive" % (i + 1), secs, nbytes)
            python_pass(base, args.page_size, gzip_ok=True)  # compress once
            secs, nbytes = curl_pass(urls, tmp, gzip_ok=True)
            row("warm pass, curl gzip (wire bytes)", secs, nbytes)
        rss, hwm = proc_mem(proc.pid)
        print("sandbox RSS after the passes: %.0f MiB (peak %.0f MiB)" % (rss, hwm))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
