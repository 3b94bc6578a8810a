#!/usr/bin/python3
"""Reading ahead across files (issue 15 §2), by itself: N employees, one directory,
cold and warm `grep -r` and `find -exec cat`, kombofs against kombofs --no-read-ahead
against a tmpfs copy, R repetitions alternating, medians; READs and the GETATTRs of
the warm pass from .status. Root; run from the source tree after building build/.

    /usr/bin/python3 tests/bench/read_ahead.py N R

A figure script, not a test (the full table is tests/bench/run.sh)."""
import sys, os, subprocess, time, json, statistics, tempfile, shutil
sys.path.insert(0, "tests/integration")
from conftest import API_KEY, is_mounted
sys.path.insert(1, "tests/sandbox")
from kombo_sandbox import Sandbox
N=int(sys.argv[1]); REPS=int(sys.argv[2])
T=tempfile.mkdtemp(prefix="kombofs-ra.")
BIN=T+"/kombofs"; shutil.copy2("build/kombofs",BIN)
sb = Sandbox(employees=N, api_key=API_KEY, integration_id="personio:8sDjyw1Nqf6Xk2LmPq4Rt7Ua"); sb.start()
os.makedirs(T+"/mnt"); os.makedirs(T+"/tmpfs")
open(T+"/key","w").write(API_KEY+"\n")
def mount(extra):
    p = subprocess.Popen([BIN,"personio:8sDjyw1Nqf6Xk2LmPq4Rt7Ua",T+"/mnt","-f","--cache="+T+"/c.db","--api-key-file="+T+"/key",f"--api-url={sb.url}"]+extra, stderr=open(T+"/log","a"))
    while not is_mounted(T+"/mnt"): time.sleep(0.05)
    return p
def umount(p):
    subprocess.run(["fusermount3","-u",T+"/mnt"]); p.wait()
p=mount([]); umount(p)
subprocess.run("mount -t tmpfs tmpfs "+T+"/tmpfs", shell=True)
p=mount(["--offline"]); subprocess.run("cp -r "+T+"/mnt/employees "+T+"/tmpfs/", shell=True); umount(p)
cmds={"grep -r":"grep -rc job_title {d} >/dev/null", "cat":"find {d} -type f -exec cat {{}} + >/dev/null"}
res={}
for rep in range(REPS):
    for name,c in cmds.items():
        for side,extra in (("kombofs",["--offline"]),("no-read-ahead",["--offline","--no-read-ahead"]),("tmpfs",None)):
            if extra is None:
                d=T+"/tmpfs/employees"; t=time.monotonic(); subprocess.run(c.format(d=d),shell=True); dt=time.monotonic()-t; reads=None
            else:
                p=mount(extra); d=T+"/mnt/employees"
                t=time.monotonic(); subprocess.run(c.format(d=d),shell=True); dt=time.monotonic()-t
                st=json.load(open(T+"/mnt/.status")); reads=st["requests"]["read"]
                # warm pass right after
                t=time.monotonic(); subprocess.run(c.format(d=d),shell=True); wt=time.monotonic()-t
                st2=json.load(open(T+"/mnt/.status"))
                res.setdefault((name,side,"warm"),[]).append(wt)
                res.setdefault((name,side,"warm getattr"),[]).append(st2["requests"]["getattr"]-st["requests"]["getattr"])
                umount(p)
            res.setdefault((name,side,"cold"),[]).append(dt)
            if reads is not None: res.setdefault((name,side,"reads"),[]).append(reads)
    t=time.monotonic(); subprocess.run(cmds["grep -r"].format(d=T+"/tmpfs/employees"),shell=True); res.setdefault(("grep -r","tmpfs","warm"),[]).append(time.monotonic()-t)
    t=time.monotonic(); subprocess.run(cmds["cat"].format(d=T+"/tmpfs/employees"),shell=True); res.setdefault(("cat","tmpfs","warm"),[]).append(time.monotonic()-t)
for k,v in sorted(res.items()):
    print(k, "median %.4g"%statistics.median(v), "all", ["%.4g"%x for x in v])
print("load", open("/proc/loadavg").read().strip())
subprocess.run(["umount", T+"/tmpfs"]); sb.stop(); shutil.rmtree(T, ignore_errors=True)
