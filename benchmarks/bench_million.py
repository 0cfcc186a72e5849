"""A million synthetic chunks on one machine: build, HNSW recall against exact, /search latency, RSS.

    python benchmarks/bench_million.py [--chunks 1000000] [--cache /tmp/million] [--requests 200]
                                       [--out benchmarks/results/million.json]

The index is built once per size into the cache folder and reused by later runs (delete the
folder to rebuild). Chunks are synthetic, made the way benchmarks/bench_milvus.py makes them:
texts of 40-80 words drawn (Zipf-like) from the bundled corpus's vocabulary, 20 councils,
meeting dates over ten years. Vectors are unit vectors around 2,000 random centres (each
cos ~0.65 to its centre), so that the graph has neighbourhoods to find, as real passages do;
uniform random vectors in 384 dimensions have none and are the hardest case for any ANN index.

Measured:
- build: making the chunks, and store.write_index (chunk files, BM25, HNSW, checksums);
- exact (flat) search time per query at growing sizes, which is what chose BOARDPAPERS_HNSW_MIN_CHUNKS;
- HNSW recall@10 against exact search on 200 held-out queries drawn like the data, at several
  efSearch values, at k=10 and at the service's candidate depth (100);
- /search through the real service (FastAPI TestClient, in a child process that loads the index
  as the service does) with the HNSW index and, side by side, the same chunks with an exact index:
  p50/p95, plain and with a council filter, and the child's resident memory (anonymous and
  file-backed pages apart: mapped index files count only for the pages read).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
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

CENTRES = 2000
PER_DOC = 50
SPREAD = 1.2  # noise norm around a centre: cos(vector, centre) = 1 / sqrt(1 + SPREAD**2) ~ 0.64


def clustered_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    centres = np.random.default_rng(1234).standard_normal((CENTRES, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        noise = rng.standard_normal((b - a, dim)).astype(np.float32)
        noise *= SPREAD / np.sqrt(dim)
        v = centres[rng.integers(0, CENTRES, b - a)] + noise
        out[a:b] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def synthetic_chunks(n: int, rng):
    """(documents, chunk generator): chunks are made as they are written, not held."""
    from indexer.records import Chunk, DocumentRecord

    vocab = np.array(vocabulary())
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    cdf = np.cumsum(zipf / zipf.sum())
    docs = []
    plan = []
    for d in range(0, n, PER_DOC):
        doc_id = f"synthetic-{d // PER_DOC:06d}"
        council = COUNCILS[(d // PER_DOC) % len(COUNCILS)]
        when = date.fromordinal(date(2015, 1, 1).toordinal() + int(rng.integers(0, 3650)))
        plan.append((doc_id, council, when, min(PER_DOC, n - d)))

    def texts_of(k):
        lengths = rng.integers(40, 80, k)
        words = vocab[np.searchsorted(cdf, rng.random(int(lengths.sum())))]
        cut = np.concatenate([[0], np.cumsum(lengths)])
        return [" ".join(words[cut[i]:cut[i + 1]]) for i in range(k)]

    # Documents first (the store writes them first); their texts are the chunks' texts joined.
    all_texts = []
    for doc_id, council, when, k in plan:
        texts = texts_of(k)
        all_texts.append(texts)
        full = "\n\n".join(texts)
        docs.append((DocumentRecord(id=doc_id, path=f"{doc_id}.txt", sha256=doc_id, title=doc_id, council=council,
                                    body="Cabinet", meeting_date=when, document_type="report",
                                    metadata_source="metadata", notes=(), chars=len(full), pages=None), full))

    def chunks():
        for (doc_id, council, when, _), texts in zip(plan, all_texts):
            pos = 0
            for t in texts:
                yield Chunk(id=f"{doc_id}:{pos}-{pos + len(t)}", doc_id=doc_id, text=t, char_start=pos,
                            char_end=pos + len(t), kind="text", document_type="report", title=doc_id,
                            council=council, body="Cabinet", meeting_date=when, agenda_item=None,
                            heading_path=(doc_id,), page=None, tokens=len(t.split()), embed_text=t,
                            content_hash=f"{doc_id}:{pos}")
                pos += len(t) + 2

    return docs, chunks()


def build(folder: Path, n: int, model: dict, spec) -> dict:
    """Build the synthetic index into folder (once); returns what the build measured."""
    from indexer import store

    info_path = folder / "bench-build.json"
    if store.current_build(folder) is not None and info_path.exists():
        info = json.loads(info_path.read_text())
        built = info.get("spec", {})
        # The graph depends on m and ef_construction only (the threshold is not used: HNSW is forced).
        if info.get("chunks") == n and (built.get("m"), built.get("ef_construction")) == (spec.m, spec.ef_construction):
            print(f"reusing the {n}-chunk index in {folder}", flush=True)
            return {**info, "reused": True}
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    documents, chunks = synthetic_chunks(n, rng)
    vectors = clustered_vectors(n, model["dim"], seed=1)
    made = time.perf_counter() - t0
    print(f"made {n} chunks' documents and vectors in {made:.0f} s", flush=True)
    manifest = {"model": model, "counts": {"documents": len(documents), "chunks": n, "decisions": 0},
                "documents": {}, "skipped": [], "chunking": {}, "built_at": "synthetic (benchmarks/bench_million.py)"}
    t1 = time.perf_counter()
    store.write_index(folder, manifest, documents, chunks, vectors, [], spec, progress=True)
    written = time.perf_counter() - t1
    info = {"chunks": n, "spec": dataclasses.asdict(spec), "make_s": round(made, 1), "write_index_s": round(written, 1),
            "kind": spec.resolve(n), "disk_mb": round(sum(p.stat().st_size for p in store.current_build(folder).rglob("*")
                                                         if p.is_file()) / 2**20)}
    info_path.write_text(json.dumps(info, indent=2))
    return info


def flat_times(vectors: np.ndarray, queries: np.ndarray, sizes: list[int]) -> dict:
    """Exact search time per query (one at a time, as the service asks) over the first n vectors."""
    import faiss

    out = {}
    for n in sizes:
        if n > len(vectors):
            continue
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors[:n]))
        lat = []
        for q in queries[:50]:
            t0 = time.perf_counter()
            index.search(q.reshape(1, -1), 100)
            lat.append((time.perf_counter() - t0) * 1000)
        out[str(n)] = {"p50_ms": round(pct(lat, 50), 2), "p95_ms": round(pct(lat, 95), 2)}
        print("flat", n, out[str(n)], flush=True)
        del index
    return out


def recall(dense, vectors: np.ndarray, queries: np.ndarray, efs: list[int]) -> dict:
    import faiss

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(np.ascontiguousarray(vectors))
    t0 = time.perf_counter()
    _, truth = exact.search(queries, 10)
    exact_ms = (time.perf_counter() - t0) * 1000 / len(queries)
    del exact
    out = {"queries": len(queries), "exact_batch_ms_per_query": round(exact_ms, 2)}
    for ef in efs:
        for k in (10, 100):
            params = faiss.SearchParametersHNSW(efSearch=max(ef, k))  # as the service asks (backends/local.py)
            lat = []
            rows = []
            for q in queries:
                t0 = time.perf_counter()
                _, r = dense.search(q.reshape(1, -1), k, params=params)
                lat.append((time.perf_counter() - t0) * 1000)
                rows.append(r[0][:10])
            found = np.mean([len(set(r.tolist()) & set(t.tolist())) / 10 for r, t in zip(rows, truth)])
            out[f"ef{ef}_k{k}"] = {"recall_at_10": round(float(found), 4), "p50_ms": round(pct(lat, 50), 2),
                                   "p95_ms": round(pct(lat, 95), 2)}
            print("hnsw", ef, k, out[f"ef{ef}_k{k}"], flush=True)
    return out


def rss() -> dict:
    keys = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name = line.split(":")[0]
        if name in keys:
            out[name + "_mb"] = round(int(line.split()[1]) / 1024)
    return out


def child(index_dir: Path, flat: Path | None, requests: int) -> dict:
    """In a fresh process: load the index as the service does, start the app, time /search."""
    from fastapi.testclient import TestClient

    from indexer import store
    from indexer.config import default_model
    from indexer.embed import load_encoder
    from service.app import create_app
    from service.config import ServiceSettings

    before = rss()
    encoder = load_encoder(default_model())
    encoder.enable_onnx()
    encoder.encode(["warm up"])
    with_encoder = rss()
    t0 = time.perf_counter()
    index = store.load_index(index_dir, verify=False)
    if flat is not None:
        import faiss

        dense = faiss.read_index(str(flat), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        index = dataclasses.replace(index, faiss_index=dense,
                                    manifest={**index.manifest, "dense_index": {"kind": "flat"}})
    queries = [json.loads(x)["question"] for x in (ROOT / "evals" / "questions.jsonl").read_text().splitlines()[:40]]
    settings = ServiceSettings(index_dir=index_dir, use_judge=False)
    result = {"dense": index.manifest["dense_index"]["kind"]}
    with TestClient(create_app(settings, encoder=encoder, index=index)) as client:
        result["start_s"] = round(time.perf_counter() - t0, 1)
        result["rss_started"] = rss()
        for name, council in (("search", None), ("search_one_council", COUNCILS[3])):
            lat = []
            for i in range(requests + 10):
                body = {"query": queries[i % len(queries)], "k": 10}
                if council:
                    body["filters"] = {"council": council}
                t1 = time.perf_counter()
                r = client.post("/search", json=body)
                if i >= 10:  # the first ten warm up
                    lat.append((time.perf_counter() - t1) * 1000)
                if r.status_code != 200 or not r.json().get("results"):
                    raise SystemExit(f"/search answered {r.status_code}: {r.text[:300]}")
            result[name] = {"p50_ms": round(pct(lat, 50), 1), "p95_ms": round(pct(lat, 95), 1), "requests": requests}
            print(result["dense"], name, result[name], flush=True)
    result["rss_after"] = rss()
    result["rss_before_load"] = before
    result["rss_with_encoder"] = with_encoder
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/million"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "million.json")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--flat", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.flat, args.requests)), flush=True)
        return 0

    import faiss

    from indexer import store
    from indexer.config import IndexerSettings, default_model

    s = IndexerSettings()
    # Forced HNSW whatever the size, so a development run at 100k measures the same index kind.
    spec = store.DenseSpec("hnsw", s.hnsw_min_chunks, s.hnsw_m, s.hnsw_ef_construction, s.hnsw_ef_search)
    folder = args.cache / f"index-{args.chunks}"
    from indexer.embed import load_encoder

    enc = load_encoder(default_model())
    model = {"name": enc.name, "dim": enc.dim, "max_tokens": enc.max_tokens}
    del enc
    result = {"chunks": args.chunks, "dim": model["dim"], "load_average_start": os.getloadavg(),
              "cpus": os.cpu_count(), "build": build(folder, args.chunks, model, spec)}
    index = store.load_index(folder, verify=False)
    vectors = index.vectors
    queries = clustered_vectors(200, model["dim"], seed=99)  # held out: never added to the index
    sizes = [50_000, 100_000, 200_000, 500_000, 1_000_000]
    result["flat_search_by_size"] = flat_times(vectors, queries, sizes)
    result["recall"] = recall(index.faiss_index, vectors, queries, [32, 64, 128, 256])
    flat = args.cache / f"flat-{args.chunks}.faiss"
    if not flat.exists():
        exact = faiss.IndexFlatIP(model["dim"])
        exact.add(np.ascontiguousarray(vectors))
        faiss.write_index(exact, str(flat))
        del exact
    del index, vectors
    result["service"] = {}
    for kind, extra in (("hnsw", []), ("flat", ["--flat", str(flat)])):
        proc = subprocess.run([sys.executable, __file__, "--child", str(folder), "--requests", str(args.requests), *extra],
                              capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            raise SystemExit(f"the {kind} service run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        result["service"][kind] = json.loads(line[0][7:])
    result["load_average_end"] = os.getloadavg()
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
