"""The on-disk index format. The only module that knows it; the service loads through here.

    INDEX_DIR/current -> builds/<stamp>      symlink, swapped atomically after a build
    INDEX_DIR/builds/<stamp>/
        manifest.json       model, dimension, tokenizers, chunk settings, per-document hashes,
                            library versions, build time, skipped files
        documents.jsonl     one DocumentRecord per line, with its extracted text
        chunks.jsonl        one Chunk per line; row i is FAISS id i and BM25 row i
        vectors.npy         float32 [n_chunks, dim], L2-normalised (reused by incremental builds)
        dense.faiss         FAISS index over vectors.npy (inner product = cosine)
        sentences.jsonl     one SentenceSpan per line, in chunk order (a chunk's sentences are
                            one contiguous run); absent for collections indexed without them
        sentence_vectors.npy  float32 [n_sentences, dim], L2-normalised, row i = sentence i
        bm25/               bm25s arrays (numpy, no pickle) and vocabulary (JSON); absent when
                            there are no chunks (bm25s cannot index nothing)
        decisions.jsonl     one Decision per line
        decisions_bm25/     BM25 over decision texts; absent when there are no decisions

A build writes a new folder under builds/ and only then repoints `current`, so a crash or a
failed build leaves the previous index whole and loadable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from indexer.lexical import LexicalIndex
from indexer.records import Chunk, Decision, DocumentRecord, PartSpan, SentenceSpan

FORMAT_VERSION = 2  # 2: sentence spans and their vectors
CURRENT = "current"
BUILDS = "builds"


class IndexError_(Exception):
    """No usable index at a path, or one built for another model."""


@dataclass
class LoadedIndex:
    path: Path
    manifest: dict[str, Any]
    documents: dict[str, DocumentRecord]
    texts: dict[str, str]
    chunks: list[Chunk]
    vectors: np.ndarray
    faiss_index: Any
    bm25: LexicalIndex
    decisions: list[Decision]
    decisions_bm25: LexicalIndex | None
    sentences: list[SentenceSpan] = dataclasses.field(default_factory=list)
    sentence_vectors: np.ndarray | None = None


def _encode(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def chunk_from_json(d: dict) -> Chunk:
    return Chunk(**{**d, "meeting_date": _date(d["meeting_date"]), "heading_path": tuple(d["heading_path"])})


def decision_from_json(d: dict) -> Decision:
    return Decision(**{
        **d,
        "meeting_date": _date(d["meeting_date"]),
        "heading_path": tuple(d["heading_path"]),
        "attendance": tuple(d.get("attendance", ())),
    })


def document_from_json(d: dict) -> DocumentRecord:
    d = {k: v for k, v in d.items() if k != "text"}
    parts = tuple(PartSpan(**{**p, "meeting_date": _date(p["meeting_date"])}) for p in d.get("parts", ()))
    return DocumentRecord(**{**d, "meeting_date": _date(d["meeting_date"]), "notes": tuple(d["notes"]), "parts": parts})


def _write_jsonl(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def current_build(index_dir: Path) -> Path | None:
    link = index_dir / CURRENT
    if link.is_symlink() or link.is_dir():
        target = link.resolve()
        if (target / "manifest.json").exists():
            return target
    return None


def read_manifest(index_dir: Path) -> dict | None:
    build = current_build(index_dir)
    if build is None:
        return None
    return json.loads((build / "manifest.json").read_text(encoding="utf-8"))


def write_index(
    index_dir: Path,
    manifest: dict,
    documents: list[tuple[DocumentRecord, str]],
    chunks: list[Chunk],
    vectors: np.ndarray,
    decisions: list[Decision],
    faiss_kind: str = "flat",
    sentences: list[SentenceSpan] | None = None,
    sentence_vectors: np.ndarray | None = None,
) -> Path:
    """Write a complete build beside the current one, then switch `current` to it atomically."""
    import faiss

    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tmp = builds / f".tmp-{stamp}"
    tmp.mkdir()
    try:
        _write_jsonl(tmp / "documents.jsonl", ({**_encode(rec), "text": text} for rec, text in documents))
        _write_jsonl(tmp / "chunks.jsonl", (_encode(c) for c in chunks))
        _write_jsonl(tmp / "decisions.jsonl", (_encode(d) for d in decisions))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        np.save(tmp / "vectors.npy", vectors, allow_pickle=False)
        faiss.write_index(build_faiss(vectors, faiss_kind), str(tmp / "dense.faiss"))
        if sentences is not None:
            _write_jsonl(tmp / "sentences.jsonl", (_encode(x) for x in sentences))
            dim = vectors.shape[1] if vectors.ndim == 2 else 1
            svec = np.zeros((0, dim), np.float32) if not sentences else sentence_vectors
            np.save(tmp / "sentence_vectors.npy", np.ascontiguousarray(svec, dtype=np.float32), allow_pickle=False)
        if chunks:
            LexicalIndex.build([lexical_text(c) for c in chunks]).save(tmp / "bm25")
        if decisions:
            LexicalIndex.build([decision_lexical_text(d) for d in decisions]).save(tmp / "decisions_bm25")
        manifest = {**manifest, "format_version": FORMAT_VERSION}
        # The manifest goes last: a folder without one is never taken for a build.
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        final = builds / stamp
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    link_tmp = index_dir / f".{CURRENT}-{stamp}"
    os.symlink(Path(BUILDS) / stamp, link_tmp)
    os.replace(link_tmp, index_dir / CURRENT)
    _remove_old_builds(builds, keep=final)
    return final


def _remove_old_builds(builds: Path, keep: Path) -> None:
    for old in builds.iterdir():
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def build_faiss(vectors: np.ndarray, kind: str = "flat"):
    import faiss

    dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"unknown FAISS index kind {kind!r}: use 'flat' or 'hnsw'")
    if len(vectors):
        index.add(vectors)
    return index


def lexical_text(chunk: Chunk) -> str:
    """What BM25 sees: the section path and item, then the passage."""
    return " ".join([*chunk.heading_path[1:], chunk.agenda_item or "", chunk.text])


def decision_lexical_text(d: Decision) -> str:
    return " ".join([d.item or "", *d.heading_path[1:], d.text])


def load_index(index_dir: Path, expect_model: str | None = None, expect_dim: int | None = None) -> LoadedIndex:
    """Load the current build. Raises IndexError_ with a plain message when it can't be used."""
    import faiss

    build = current_build(index_dir)
    if build is None:
        raise IndexError_(f"no index at {index_dir}: build one with `python -m indexer build corpus --index {index_dir}`")
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexError_(f"index at {index_dir} has format {manifest.get('format_version')}, expected {FORMAT_VERSION}: rebuild it")
    model = manifest["model"]
    if expect_model is not None and model["name"] != expect_model:
        raise IndexError_(
            f"index at {index_dir} was built with model {model['name']!r} but the service is configured "
            f"for {expect_model!r}: rebuild the index or set BOARDPAPERS_MODEL={model['name']}"
        )
    if expect_dim is not None and model["dim"] != expect_dim:
        raise IndexError_(f"index vectors have dimension {model['dim']} but the model gives {expect_dim}: rebuild the index")
    doc_rows = _read_jsonl(build / "documents.jsonl")
    documents = {d["id"]: document_from_json(d) for d in doc_rows}
    texts = {d["id"]: d["text"] for d in doc_rows}
    chunks = [chunk_from_json(c) for c in _read_jsonl(build / "chunks.jsonl")]
    decisions = [decision_from_json(d) for d in _read_jsonl(build / "decisions.jsonl")]
    vectors = np.load(build / "vectors.npy", allow_pickle=False)
    dense = faiss.read_index(str(build / "dense.faiss"))
    if dense.ntotal != len(chunks) or len(vectors) != len(chunks):
        raise IndexError_(f"index at {index_dir} is inconsistent ({dense.ntotal} vectors, {len(chunks)} chunks): rebuild it")
    if chunks and not (build / "bm25").exists():
        raise IndexError_(f"index at {index_dir} has {len(chunks)} chunks but no BM25 index: rebuild it")
    bm25 = LexicalIndex.load(build / "bm25") if chunks else LexicalIndex()
    dbm25 = LexicalIndex.load(build / "decisions_bm25") if (build / "decisions_bm25").exists() else None
    sentences: list[SentenceSpan] = []
    sentence_vectors = None
    if (build / "sentences.jsonl").exists():
        sentences = [SentenceSpan(**x) for x in _read_jsonl(build / "sentences.jsonl")]
        sentence_vectors = np.load(build / "sentence_vectors.npy", allow_pickle=False)
        # Spans are in chunk order, so the last one names the highest chunk row.
        if len(sentence_vectors) != len(sentences) or (sentences and sentences[-1].chunk_row >= len(chunks)):
            raise IndexError_(f"index at {index_dir} has inconsistent sentence vectors: rebuild it")
    return LoadedIndex(build, manifest, documents, texts, chunks, vectors, dense, bm25, decisions, dbm25,
                       sentences, sentence_vectors)


def encode_record(value: Any) -> Any:
    """JSON-ready form of a record (dates as ISO strings), for the service's responses."""
    return _encode(value)


def record_backend(build: Path, key: str, entry: dict) -> None:
    """Add to a build's manifest what serves it besides its files (key "milvus": the collection), atomically."""
    path = Path(build) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest[key] = entry
    tmp = path.with_name(f".manifest-{os.getpid()}.json")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
