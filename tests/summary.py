"""Print one closing line for a meson test run: every TAP subtest and every pytest
test counted, e.g. "tests: 212 passed, 0 failed, 3 skipped".

Usage: summary.py TESTLOG.json...   (exit 1 if anything failed)
"""
import json
import re
import sys


def count(entry):
    out = entry.get("stdout") or ""
    passed = failed = skipped = 0
    if entry.get("protocol") == "tap" or re.search(r"^1\.\.\d+$", out, re.M):
        for line in out.splitlines():
            if line.startswith("not ok"):
                failed += 1
            elif line.startswith("ok"):
                if "# SKIP" in line:
                    skipped += 1
                else:
                    passed += 1
    else:
        tail = out.strip().splitlines()[-1:] or [""]
        for n, word in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", tail[0]):
            if word == "passed":
                passed += int(n)
            elif word == "skipped":
                skipped += int(n)
            else:
                failed += int(n)
    if entry.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP") and failed == 0:
        failed = 1  # crashed or timed out before it could report
    return passed, failed, skipped


def main():
    totals = [0, 0, 0]
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    for i, n in enumerate(count(json.loads(line))):
                        totals[i] += n
    print(f"tests: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
