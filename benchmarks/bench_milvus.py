"""/search over N synthetic passages on the Milvus backend (a milvus-lite server on loopback) and on
the local backend, from the same index folder.

    python benchmarks/bench_milvus.py [--passages 100000] [--requests 200] [--out benchmarks/results/milvus.json]

Passages are synthetic, so that 100k of them can be made here in a minute: texts of 40-80 words drawn
(Zipf-like) from the bundled corpus's own vocabulary, random unit vectors of the model's dimension,
20 councils, meeting dates over ten years. The query side is real: questions from
evals/questions.jsonl encoded by the shipped model, through the service's /search (FastAPI
TestClient, in-process), plain and with a council filter. Reported: publish time, p50/p95 of
/search per backend, and the milvus-lite server's resident memory once loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

for _n in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_n, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.synthetic import COUNCILS, pct, vocabulary, write_result  # noqa: E402


def synthetic_index(folder: Path, n: int, dim: int, model: dict) -> None:
    from indexer import store
    from indexer.records import Chunk, DocumentRecord

    rng = np.random.default_rng(0)
    vocab = np.array(vocabulary())
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    zipf /= zipf.sum()
    per_doc = 50
    chunks, documents = [], []
    for d in range(0, n, per_doc):
        doc_id = f"synthetic-{d // per_doc:06d}"
        council = COUNCILS[(d // per_doc) % len(COUNCILS)]
        when = date.fromordinal(date(2015, 1, 1).toordinal() + int(rng.integers(0, 3650)))
        texts = [" ".join(rng.choice(vocab, size=int(rng.integers(40, 80)), p=zipf)) for _ in range(min(per_doc, n - d))]
        full = "\n\n".join(texts)
        pos = 0
        for t in texts:
            chunks.append(Chunk(id=f"{doc_id}:{pos}-{pos + len(t)}", doc_id=doc_id, text=t, char_start=pos,
                                char_end=pos + len(t), kind="text", document_type="report", title=doc_id,
                                council=council, body="Cabinet", meeting_date=when, agenda_item=None,
                                heading_path=(doc_id,), page=None, tokens=len(t.split()), embed_text=t,
                                content_hash=f"{doc_id}:{pos}"))
            pos += len(t) + 2
        documents.append((DocumentRecord(id=doc_id, path=f"{doc_id}.txt", sha256=doc_id, title=doc_id, council=council,
                                         body="Cabinet", meeting_date=when, document_type="report",
                                         metadata_source="metadata", notes=(), chars=len(full), pages=None), full))
    vectors = rng.standard_normal((len(chunks), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    manifest = {"model": model, "counts": {"documents": len(documents), "chunks": len(chunks), "decisions": 0},
                "documents": {}, "skipped": [], "chunking": {}, "built_at": "synthetic"}
    store.write_index(folder, manifest, documents, chunks, vectors, [], "flat")


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data), "--host",
                             "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("milvus-lite server did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(client, queries: list[str], requests: int, council: str | None) -> dict:
    lat = []
    for i in range(requests):
        body = {"query": queries[i % len(queries)], "k": 10}
        if council:
            body["filters"] = {"council": council}
        t0 = time.perf_counter()
        r = client.post("/search", json=body)
        lat.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
    return {"p50_ms": round(pct(lat, 50), 1), "p95_ms": round(pct(lat, 95), 1), "requests": requests}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "milvus.json")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from indexer import store
    from indexer.backends.milvus import publish
    from indexer.config import default_model
    from indexer.embed import load_encoder
    from service.app import create_app
    from service.config import ServiceSettings

    encoder = load_encoder(default_model())
    encoder.enable_onnx()
    work = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    t0 = time.perf_counter()
    synthetic_index(work / "index", args.passages, encoder.dim,
                    {"name": encoder.name, "dim": encoder.dim, "max_tokens": encoder.max_tokens})
    made = time.perf_counter() - t0
    index = store.load_index(work / "index")
    proc, uri = start_server(work / "milvus")
    result = {"passages": args.passages, "dim": encoder.dim, "make_index_s": round(made, 1)}
    try:
        t0 = time.perf_counter()
        entry = publish(index.chunks, index.vectors, index.sentences, index.sentence_vectors, encoder.name, uri=uri,
                        alias="bench")
        store.record_backend(index.path, "milvus", entry)
        result["publish_s"] = round(time.perf_counter() - t0, 1)
        index = store.load_index(work / "index")
        queries = [json.loads(x)["question"] for x in (ROOT / "evals" / "questions.jsonl").read_text().splitlines()[:40]]
        for backend in ("milvus", "local"):
            settings = ServiceSettings(index_dir=work / "index", backend=backend, milvus_uri=uri, use_judge=False)
            with TestClient(create_app(settings, encoder=encoder, index=index)) as client:
                measure(client, queries, 10, None)  # warm-up
                result[backend] = {"search": measure(client, queries, args.requests, None),
                                   "search_one_council": measure(client, queries, args.requests, COUNCILS[3])}
            if backend == "milvus":
                result["milvus_server_rss_mb"] = round(rss_mb(proc.pid), 0)
            print(backend, result[backend], flush=True)
    finally:
        proc.terminate()
        proc.wait()
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
