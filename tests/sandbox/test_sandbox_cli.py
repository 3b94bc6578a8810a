"""The command line: listening line, ready file, key/secret files, signals."""

import http.client
import os
import signal
import subprocess
import sys

import pytest

from sandbox_client import Client
from sandbox_receiver import Receiver, verify

pytestmark = pytest.mark.timeout(30)

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kombo_sandbox.py")


def start(*args):
    return subprocess.Popen([sys.executable, SCRIPT] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_listening_line_ready_file_and_clean_exit(tmp_path, sig):
    key = tmp_path / "key"
    key.write_text("file-key\n")
    ready = tmp_path / "port"
    p = start("--employees", "15", "--seed", "3", "--api-key-file", str(key), "--integration",
              "bamboohr:AbCdEfGhIjKlMnOpQrStUvWx", "--ready-file", str(ready))
    try:
        line = p.stdout.readline()
        assert line.startswith("kombo-sandbox listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert ready.read_text().strip() == str(port)
        assert not os.path.exists(str(ready) + ".tmp")
        c = Client("http://127.0.0.1:%d/v1" % port, "file-key", "bamboohr:AbCdEfGhIjKlMnOpQrStUvWx")
        assert len(c.list_all("employees")) == 15
        c.close()
        assert Client("http://127.0.0.1:%d/v1" % port, "sandbox-key", None).get("/check-api-key").status == 401
    finally:
        p.send_signal(sig)
        out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert out == "" and err == ""


def test_webhook_options(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("test-webhook-secret\n")
    receiver = Receiver()
    p = start("--employees", "5", "--webhook-url", receiver.url, "--webhook-secret-file", str(secret),
              "--webhook-delay", "0")
    try:
        port = int(p.stdout.readline().rsplit(":", 1)[1])
        import json
        import urllib.request
        req = urllib.request.Request("http://127.0.0.1:%d/_sandbox/webhooks/send" % port, method="POST",
                                     data=json.dumps({"type": "integration-deleted"}).encode())
        urllib.request.urlopen(req).read()
        headers, body, event = receiver.next()
        assert verify(headers, body, "test-webhook-secret") and event["type"] == "integration-deleted"
    finally:
        p.terminate()
        p.communicate(timeout=10)
        receiver.close()
    assert p.returncode == 0


def test_fail_rate_option():
    p = start("--employees", "5", "--fail-rate", "1")
    try:
        port = int(p.stdout.readline().rsplit(":", 1)[1])
        c = Client("http://127.0.0.1:%d/v1" % port, "sandbox-key", "personio:Q4vX8kLm2PzR7tYb3NcW9sHd")
        for _ in range(10):
            try:
                r = c.get("/hris/employees")
            except (ConnectionError, http.client.HTTPException):
                c.close()
                continue
            assert r.status != 200 or not r.body.endswith(b"]}}")  # error or truncated
    finally:
        p.terminate()
        p.communicate(timeout=10)
    assert p.returncode == 0
