"""pytest setup for the sandbox's own tests: puts tests/sandbox on sys.path."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import pytest  # noqa: E402

from kombo_sandbox import Sandbox  # noqa: E402
from sandbox_client import Client  # noqa: E402
from sandbox_receiver import Receiver  # noqa: E402


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


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
