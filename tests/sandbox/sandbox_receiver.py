"""A tiny webhook receiver for tests, and the receiver-side signature check.

    r = Receiver()                     # listens on 127.0.0.1, a free port
    sb = Sandbox(webhook_url=r.url, webhook_secret="s")
    headers, body, event = r.next()    # blocks up to 5 s
    assert verify(headers, body, "s")
    r.close()
"""

import base64
import hashlib
import hmac
import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(headers, body, secret):
    """What a receiver does: HMAC-SHA256 over the raw bytes, base64url without
    padding, compared in constant time with X-Kombo-Signature."""
    key = secret.encode() if isinstance(secret, str) else secret
    expected = base64.urlsafe_b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode().rstrip("=")
    return hmac.compare_digest(headers.get("x-kombo-signature", ""), expected)


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
