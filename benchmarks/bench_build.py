"""Build benchmark, side by side in one run: our builds against peers encoding the same corpus.

    python benchmarks/bench_build.py [--corpus corpus] [--pdfs ../shared/council_pdfs] [--out benchmarks/results/build.json]
                                     [--steps export,cold,unchanged,incremental,st,txtai,pdfs]

Every step runs in its own process, so each peak RSS is that step's alone:

All steps build with the variant the export step made (BENCH_VARIANT, else the settings' default).

- export:      the model exported to ONNX (and int8-quantised) once, into a cache the builds copy;
               a machine pays it once per model (the peers' equivalent is their model download).
- cold:        our whole build of a copy of the corpus into an empty index: parsing, chunks,
               sentences, both embeddings, FAISS and BM25. The row says the precision and the
               sentence vectors it ran with (BOARDPAPERS_SENTENCE_VECTORS=pooled for one pass,
               BOARDPAPERS_ENCODER_PRECISION=fp32 for main's arithmetic).
- unchanged:   the same build again (nothing to do).
- incremental: one document touched (a line appended), then rebuilt.
- st:          the peer: plain fp32 sentence-transformers encoding of the corpus text split into
               1,200-character paragraphs, with the same model (the bare encoding, model load apart).
- txtai:       txtai's hybrid index (dense + BM25) of the same paragraphs with the same model
               (txtai's own Textractor does not split plain text, so it gets the peer's paragraphs).
- pdfs:        our cold build of the PDFs in --pdfs (the four Kent papers), in pages per second.

The ratios (ours against each peer) are written with the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _n in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_n, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARAGRAPH_CHARS = 1200
STEPS = ("export", "cold", "unchanged", "incremental", "st", "txtai", "pdfs")


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def paragraphs(corpus: Path, size: int = PARAGRAPH_CHARS) -> list[str]:
    """The corpus's text files as paragraphs of at most `size` characters, blank-line paragraphs packed greedily."""
    out: list[str] = []
    for f in sorted(corpus.iterdir()):
        if f.suffix not in (".txt", ".md"):
            continue
        current = ""
        for para in f.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            para = " ".join(para.split())
            while len(para) > size:
                out.append(para[:size])
                para = para[size:]
            if current and len(current) + 1 + len(para) > size:
                out.append(current)
                current = ""
            current = f"{current} {para}".strip()
        if current:
            out.append(current)
    return [p for p in out if p]


def run_variant(work: Path) -> str:
    """The variant of this run: the one the export step made, else the settings' default."""
    from indexer.config import IndexerSettings

    for facts in sorted((work / "export-cache" / "encoders").glob("*.json")):
        return json.loads(facts.read_text(encoding="utf-8"))["variant"]
    return IndexerSettings().encoder_variant


def _build(corpus: Path, index: Path, variant: str) -> dict:
    from indexer.config import IndexerSettings
    from indexer.pipeline import build

    t0 = time.perf_counter()
    rep = build(IndexerSettings(corpus_dir=corpus, index_dir=index, progress=False, encoder_variant=variant))
    secs = time.perf_counter() - t0
    from indexer.store import read_manifest

    manifest = read_manifest(index) or {}
    pages = 0
    for line in (Path(index) / "current" / "documents.jsonl").open(encoding="utf-8"):
        pages += json.loads(line).get("pages") or 0
    return {"seconds": round(secs, 2), "documents": rep.documents, "chunks": rep.chunks, "pages": pages,
            "reparsed": rep.reparsed, "embedded": rep.embedded, "embedded_sentences": rep.embedded_sentences,
            "up_to_date": rep.up_to_date, "variant": manifest.get("model", {}).get("variant"),
            "precision": manifest.get("model", {}).get("precision", "fp32"),
            "sentence_vectors": manifest.get("fingerprint", {}).get("sentence_vectors", "separate"),
            "chunks_per_second": round(rep.chunks / secs, 1) if secs else None,
            "pages_per_second": round(pages / secs, 2) if secs and pages else None}


def step(name: str, work: Path, corpus: Path, pdfs: Path | None) -> dict:
    """One step, in this process; returns its row."""
    from indexer.config import IndexerSettings, default_model
    from indexer.embed import load_encoder, resolve_model_path
    from indexer.store import encoder_cache_dir

    model = IndexerSettings().model
    cache = work / "export-cache"
    if name == "export":
        t0 = time.perf_counter()
        enc = load_encoder(model, os.environ.get("BENCH_VARIANT") or IndexerSettings().encoder_variant,
                           encoder_cache_dir(cache))
        return {"seconds": round(time.perf_counter() - t0, 2), "variant": enc.variant}
    if name in ("cold", "pdfs"):
        index = work / ("index" if name == "cold" else "index-pdfs")
        src = corpus if name == "cold" else pdfs
        if name == "cold":
            shutil.copytree(corpus, work / "corpus")
            src = work / "corpus"
        if encoder_cache_dir(cache).exists():
            shutil.copytree(encoder_cache_dir(cache), encoder_cache_dir(index))
        return _build(src, index, run_variant(work))
    if name == "unchanged":
        return _build(work / "corpus", work / "index", run_variant(work))
    if name == "incremental":
        victim = sorted(f for f in (work / "corpus").iterdir() if f.suffix in (".txt", ".md"))[0]
        with victim.open("a", encoding="utf-8") as fh:
            fh.write("\n\nA paragraph added for the incremental build benchmark.\n")
        return {**_build(work / "corpus", work / "index", run_variant(work)), "changed_file": victim.name}
    texts = paragraphs(corpus)
    if name == "st":
        import torch
        from sentence_transformers import SentenceTransformer

        t0 = time.perf_counter()
        st = SentenceTransformer(resolve_model_path(model), device="cpu", model_kwargs={"dtype": torch.float32})
        loaded = time.perf_counter() - t0
        t0 = time.perf_counter()
        st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        secs = time.perf_counter() - t0
        return {"seconds": round(secs, 2), "model_load_seconds": round(loaded, 2), "paragraphs": len(texts),
                "paragraphs_per_second": round(len(texts) / secs, 1)}
    if name == "txtai":
        from txtai import Embeddings

        t0 = time.perf_counter()
        emb = Embeddings(path=resolve_model_path(model), method="sentence-transformers", content=True, hybrid=True)
        emb.index([(i, t, None) for i, t in enumerate(texts)])
        secs = time.perf_counter() - t0
        return {"seconds": round(secs, 2), "paragraphs": len(texts), "paragraphs_per_second": round(len(texts) / secs, 1),
                "model": default_model()}
    raise ValueError(f"unknown step {name!r}: use any of {', '.join(STEPS)}")


def run_step(name: str, work: Path, corpus: Path, pdfs: Path | None) -> dict:
    """The step in a child process, so its peak RSS is its own."""
    cmd = [sys.executable, __file__, "--step", name, "--work", str(work), "--corpus", str(corpus)]
    if pdfs:
        cmd += ["--pdfs", str(pdfs)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr, flush=True)
        return {"step": name, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    row = {"step": name, **json.loads(done.stdout.strip().splitlines()[-1])}
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    p.add_argument("--pdfs", type=Path, default=ROOT.parent / "shared" / "council_pdfs")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "build.json")
    p.add_argument("--steps", default=",".join(STEPS))
    p.add_argument("--step", help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.step:
        row = step(args.step, args.work, args.corpus, args.pdfs)
        print(json.dumps({**row, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return 0
    steps = [s for s in args.steps.split(",") if s]
    unknown = set(steps) - set(STEPS)
    if unknown:
        p.error(f"unknown steps {sorted(unknown)}: use any of {', '.join(STEPS)}")
    pdfs = args.pdfs if args.pdfs and args.pdfs.is_dir() and any(args.pdfs.glob("*.pdf")) else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        for name in steps:
            if name == "pdfs" and pdfs is None:
                print(f"pdfs: skipped, no PDFs in {args.pdfs}", flush=True)
                continue
            rows.append(run_step(name, Path(tmp), args.corpus.resolve(), pdfs))
    by = {r["step"]: r for r in rows if "error" not in r}
    ratios = {}
    if "cold" in by:
        for peer in ("st", "txtai"):
            if peer in by:
                # > 1: our whole build is faster than the peer's bare encoding (or indexing) of the corpus
                ratios[f"{peer}_seconds_over_our_cold_build"] = round(by[peer]["seconds"] / by["cold"]["seconds"], 2)
    result = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
              "load_average_at_end": os.getloadavg(), "paragraph_chars": PARAGRAPH_CHARS, "steps": rows,
              "ratios": ratios}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(ratios))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
