"""pytest setup for the sandbox's own tests: puts tests/sandbox on sys.path."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import json  # noqa: E402
import queue  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

import pytest  # noqa: E402

from kombo_sandbox import Sandbox  # noqa: E402
from sandbox_client import Client  # noqa: E402


@pytest.fixture
def sb():
    """A small running sandbox (40 employees), stopped after the test."""
    s = Sandbox(employees=40, seed=3)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def client(sb):
    c = Client(sb.url, sb.api_key, sb.integration_id)
    yield c
    c.close()


class Receiver:
    """Tiny webhook receiver: records (headers, raw body), answers `status`."""

    def __init__(self, status=200, delay=0.0):
        self.status = status
        self.delay = delay
        self.events = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.events.put(({k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/webhook" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def next(self, timeout=5):
        headers, body = self.events.get(timeout=timeout)
        return headers, body, json.loads(body)

    def empty(self, wait=0.0):
        """True if nothing arrived (after waiting `wait` seconds)."""
        time.sleep(wait)
        return self.events.empty()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
