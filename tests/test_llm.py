"""The optional LLM answerer against a tiny local OpenAI-compatible server, and its fallbacks."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.model

QUESTION = "what did the board resolve on cancer screening?"


class FakeLLM:
    """Behaviour is switchable: 'cite1', 'cite9', 'slow', 'error'."""

    def __init__(self):
        self.mode = "cite1"
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body})
                if fake.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"boom")
                    return
                if fake.mode == "slow":
                    time.sleep(2.5)
                cite = "[9]" if fake.mode == "cite9" else "[1]"
                reply = {"choices": [{"message": {"role": "assistant",
                                                  "content": f"On 8 March 2018 the board noted the screening report {cite}."}}]}
                data = json.dumps(reply).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client timed out and went away

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake_llm():
    fake = FakeLLM()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def llm_client(real_index, fake_llm):
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import ServiceSettings

    settings = ServiceSettings(index_dir=real_index, llm_url=f"http://127.0.0.1:{fake_llm.port}/v1", llm_timeout=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def ask(client):
    r = client.post("/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    return r.json()


def test_llm_answer_is_used_and_cited(llm_client, fake_llm):
    fake_llm.mode = "cite1"
    fake_llm.requests.clear()
    a = ask(llm_client)
    assert a["answerer"] == "llm"
    assert a["found"] is True
    assert "[1]" in a["answer"]
    assert len(a["citations"]) == 1
    c = a["citations"][0]
    assert c["n"] == 1
    # The citation names the first passage the service gave the model (passages are its top hits).
    first = a["passages"][0]["citation"]
    assert (c["document_id"], c["char_start"], c["char_end"]) == (
        first["document_id"], first["char_start"], first["char_end"])
    assert c["quote"] == a["passages"][0]["text"]

    assert len(fake_llm.requests) == 1
    req = fake_llm.requests[0]
    assert req["path"] == "/v1/chat/completions"
    messages = req["body"]["messages"]
    user = messages[-1]["content"]
    assert QUESTION in user
    assert "[1]" in user
    assert a["passages"][0]["text"] in user


@pytest.mark.parametrize("mode", ["cite9", "slow", "error"])
def test_llm_failures_fall_back_to_extractive(llm_client, fake_llm, mode):
    fake_llm.mode = mode
    fake_llm.requests.clear()
    t0 = time.perf_counter()
    a = ask(llm_client)
    assert fake_llm.requests, "the service did not call the LLM"
    assert a["answerer"] == "extractive"
    assert a["found"] is True
    assert "8 March 2018" in a["answer"] and a["citations"]
    if mode == "slow":
        assert time.perf_counter() - t0 < 2.5 + 20  # the 1 s timeout, not the server's sleep, bounds it
