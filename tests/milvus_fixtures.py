"""A real milvus-lite server on a loopback port, one per test session, stopped at the end.

Test modules import with ``from milvus_fixtures import milvus_uri  # noqa: F401``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory):
    """http://127.0.0.1:PORT of `milvus-lite server` (the milvus-lite package's gRPC server) over a temp folder."""
    pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
    folder = tmp_path_factory.mktemp("milvus")
    port = _free_port()
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder / "data"),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"milvus-lite server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
