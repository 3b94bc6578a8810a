"""A short fault soak (tests/soak/soak.py for 30 s): 20% of API requests fail at random
while records change and webhooks arrive; kombofs converges, does not crash, and its
memory stays flat."""
import json
import os
import subprocess

import pytest

from conftest import KOMBOFS, ROOT, sanitized


@pytest.mark.timeout(240)
def test_thirty_second_soak_at_twenty_percent_faults():
    extra = ["--no-rss-check"] if sanitized(KOMBOFS) else []
    r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "soak", "soak.py"),
                        "--seconds", "30", "--employees", "600", "--kombofs", KOMBOFS, *extra],
                       capture_output=True, text=True, timeout=220)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    print(result)
    assert r.returncode == 0 and result["ok"], (result, r.stderr[-2000:])
    assert result["faults_injected"] >= 10
    assert result["webhooks_sent"] >= 10
