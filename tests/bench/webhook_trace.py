#!/usr/bin/python3
"""Webhook -> visible, one event at a time, with the daemon's own -v log (issue 15 §4):
a sandbox of 1,000 employees, kombofs with --webhook-listen and --overlap=1s; C changes,
each 0.4 s after the previous one became visible; prints each POST's reply time and the
time until `cat` shows the change. The daemon's log (/tmp/tr/log) has the webhook, the
API request (with its duration) and the end of the fetch, in milliseconds.

    /usr/bin/python3 tests/bench/webhook_trace.py C
"""
import sys, os, subprocess, time, json, http.client
sys.path.insert(0, "tests/integration")
from conftest import API_KEY, is_mounted, free_port
sys.path.insert(1, "tests/sandbox")
from kombo_sandbox import Sandbox
from sandbox_webhooks import sign
SECRET="whsec-trace"
port=free_port()
sb = Sandbox(employees=1000, api_key=API_KEY, integration_id="personio:8sDjyw1Nqf6Xk2LmPq4Rt7Ua", webhook_secret=SECRET, webhook_delay=3600, webhook_url=f"http://127.0.0.1:{port}/webhook"); sb.start()
subprocess.run("rm -rf /tmp/tr; mkdir -p /tmp/tr/mnt", shell=True)
open("/tmp/tr/key","w").write(API_KEY+"\n")
env=dict(os.environ, KOMBO_WEBHOOK_SECRET=SECRET)
p = subprocess.Popen(["build/kombofs","personio:8sDjyw1Nqf6Xk2LmPq4Rt7Ua","/tmp/tr/mnt","-f","-v","--cache=/tmp/tr/c.db","--api-key-file=/tmp/tr/key",f"--api-url={sb.url}",f"--webhook-listen=127.0.0.1:{port}","--overlap=1s"], stderr=open("/tmp/tr/log","w"), env=env)
while not is_mounted("/tmp/tr/mnt"): time.sleep(0.05)
emp=sb.visible("employees")[5]
path="/tmp/tr/mnt/employees/"+emp["id"]+".json"
open(path).read()
time.sleep(1.5)
res=[]
for k in range(int(sys.argv[1])):
    title=f"Trace {k}"
    sb.update_employee(emp["id"], job_title=title)
    t0=time.monotonic(); w0=time.time()
    e=sb.flush_webhooks()
    t1=time.monotonic()
    while True:
        with open(path) as f:
            if json.load(f)["job_title"]==title: break
    t2=time.monotonic()
    res.append((w0, (t1-t0)*1000, (t2-t0)*1000))
    time.sleep(0.4)
for w0,a,b in res: print("%.3f POST %.2f ms visible %.2f ms"%(w0%60,a,b))
subprocess.run(["fusermount3","-u","/tmp/tr/mnt"]); p.wait(); sb.stop()
