#!/usr/bin/python3
"""Fault soak (issue 8): the sandbox fails a fraction of API requests at random while
records change and signed webhooks arrive, for a given time. kombofs must converge
(after the faults stop, one full fetch makes the mirror equal to the sandbox), never
crash, and keep its memory flat.

    tests/soak/soak.py --seconds 300 [--fail-rate 0.2] [--employees 2000] [--kombofs build/kombofs]

Prints one line of figures and exits 0 when all held. tests/integration/test_soak.py
runs it for 30 seconds in the suite.
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "sandbox"))

from kombo_sandbox import Sandbox  # noqa: E402

INTEGRATION = "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"
SECRET = "soak-secret"
DIRS = ["employees", "employments", "groups", "absences", "absence-types",
        "time-off-balances", "timesheets", "legal-entities", "locations"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def read_dir(mnt, d):
    out = {}
    for name in os.listdir(os.path.join(mnt, d)):
        with open(os.path.join(mnt, d, name)) as f:
            rec = json.load(f)
        out[rec["id"]] = rec
    return out


def control(mnt, command):
    fd = os.open(os.path.join(mnt, ".control"), os.O_WRONLY)
    try:
        os.write(fd, command.encode() + b"\n")
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def change(sb, rng, step):
    emps = sb.visible("employees")
    e = rng.choice(emps)
    op = rng.randrange(6)
    if op == 0:
        sb.update_employee(e["id"], job_title=f"soak {step}")
    elif op == 1 and e["employments"]:
        sb.update_employment(e["employments"][0]["id"], pay_rate=step)
    elif op == 2:
        sb.create_employee(first_name=f"Soak{step}")
    elif op == 3:
        sb.soft_delete("employees", e["id"])
    elif op == 4 and e["time_off_balances"]:
        sb.update_balance(e["time_off_balances"][0]["id"], balance=step % 40)
    else:
        sb.update_record("locations", rng.choice(sb.visible("locations"))["id"], name=f"L{step}")


def soak(args):
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="kombofs-soak-")
    port = free_port()
    sb = Sandbox(employees=args.employees, seed=args.seed, integration_id=INTEGRATION,
                 webhook_url=f"http://127.0.0.1:{port}/webhook", webhook_secret=SECRET,
                 webhook_delay=0.05)
    sb.start()
    key = os.path.join(tmp, "key")
    secret = os.path.join(tmp, "secret")
    with open(key, "w") as f:
        f.write("sandbox-key\n")
    with open(secret, "w") as f:
        f.write(SECRET)
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    log = open(os.path.join(tmp, "kombofs.log"), "w")
    proc = subprocess.Popen([args.kombofs, INTEGRATION, mnt, "-f", f"--cache={tmp}/c.db",
                             f"--api-url={sb.url}", f"--api-key-file={key}",
                             f"--webhook-listen=127.0.0.1:{port}", f"--webhook-secret-file={secret}",
                             "--poll-interval=2s", "--full-sync-interval=15s"],
                            stdout=log, stderr=subprocess.STDOUT)
    result = {"ok": False}
    try:
        deadline = time.monotonic() + 120
        while not mounted(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kombofs did not mount")
            time.sleep(0.05)
        sb.set_faults(fail_rate=args.fail_rate, fault_seed=args.seed)
        samples, step, controls, failed_controls = [], 0, 0, 0
        t_end = time.monotonic() + args.seconds
        next_sample = time.monotonic()
        while time.monotonic() < t_end:
            change(sb, rng, step)
            step += 1
            if rng.random() < 0.05:
                controls += 1
                failed_controls += control(mnt, rng.choice(["sync", "resync employees"])) != 0
            if time.monotonic() >= next_sample:
                samples.append(rss_kb(proc.pid))
                next_sample += 1
            if proc.poll() is not None:
                raise RuntimeError(f"kombofs exited with {proc.returncode} during the soak")
            time.sleep(0.05)
        stats = sb.stats()
        sb.set_faults()
        assert control(mnt, "resync") == 0, "the final resync failed"
        diffs = [d for d in DIRS if read_dir(mnt, d) != {r["id"]: r for r in sb.visible(d)}]
        third = max(1, len(samples) // 3)
        early = sum(samples[:third]) / third
        late = sum(samples[-third:]) / third
        result = {
            "ok": not diffs and (args.no_rss_check or late <= early * 1.25 + 4096),
            "seconds": args.seconds, "changes": step, "controls": controls,
            "failed_controls": failed_controls,
            "api_requests": stats["total"],
            "faults_injected": sum(n for s, n in stats["by_status"].items() if s != "200"),
            "webhooks_sent": stats["webhooks_sent"],
            "rss_kb_early": int(early), "rss_kb_late": int(late), "rss_kb_max": max(samples),
            "mirror_differs": diffs,
        }
    finally:
        subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        sb.stop()
        log.close()
        text = open(os.path.join(tmp, "kombofs.log")).read()
        for bad in ("fatal:", "AddressSanitizer", "runtime error:", "LeakSanitizer"):
            if bad in text:
                result["ok"] = False
                result["log"] = bad
        subprocess.run(["rm", "-rf", tmp])
    result["exit_status"] = proc.returncode
    result["ok"] = result["ok"] and proc.returncode == 0
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--fail-rate", type=float, default=0.2)
    ap.add_argument("--employees", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kombofs", default=os.path.join(ROOT, "build", "kombofs"))
    ap.add_argument("--no-rss-check", action="store_true",
                    help="do not judge memory (AddressSanitizer's quarantine grows by design)")
    args = ap.parse_args()
    result = soak(args)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
