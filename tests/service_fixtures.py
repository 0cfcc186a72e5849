"""Shared fixtures for the service tests: one app over the real index per session.

Test modules import with ``from service_fixtures import app_client  # noqa: F401``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TRACE_MARKERS = ("Traceback", 'File "')


def load_jsonl(name: str) -> list[dict]:
    with open(REPO / "evals" / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def assert_readable_422(r) -> str:
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail.strip(), detail
    for marker in TRACE_MARKERS:
        assert marker not in detail
    return detail


@pytest.fixture(scope="session")
def app_client(real_index):
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import ServiceSettings

    # Server errors come back as responses (the service's own 500 handler), so tests can assert "never a 500".
    with TestClient(create_app(ServiceSettings(index_dir=real_index)), raise_server_exceptions=False) as client:
        yield client


class LiveServer:
    """`with LiveServer(app) as live:` a real uvicorn server on a free loopback port, in a thread (live.url)."""

    def __init__(self, app, start_seconds: float = 240):
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app=app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.start_seconds = start_seconds  # the lifespan loads the model: long on two busy cores

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + self.start_seconds
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
