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
    INDEX_DIR/.build.lock                    held (fcntl.flock) by the one build running

    INDEX_DIR/encoders/                  ONNX exports of the model (indexer/embed.py), kept across
                                         builds and keyed by the model's files and exporter versions

A build writes a new folder under builds/ and only then repoints `current`, so a crash or a
failed build leaves the previous index whole and loadable. The manifest lists every other file
of its build with its size and sha256 ("files"); loading refuses a build whose files are not
the ones it lists, naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
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

FORMAT_VERSION = 3  # 2: sentence spans and their vectors; 3: sizes and sha256 of every file
CURRENT = "current"
BUILDS = "builds"
LOCK = ".build.lock"
MANIFEST = "manifest.json"


class IndexError_(Exception):
    """No usable index at a path: missing, damaged (the message names the file), or built for another model."""


class BuildLocked(Exception):
    """Another build of the same index folder is running."""


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
    with _reading(path), path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def encoder_cache_dir(index_dir: Path) -> Path:
    """Where the model's ONNX exports are cached for this index (outside builds/, so they outlive a build)."""
    return Path(index_dir) / "encoders"


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
    with _reading(build / MANIFEST):
        return json.loads((build / MANIFEST).read_text(encoding="utf-8"))


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
        # Written by Python, not faiss.write_index: a full disk is then an OSError (ENOSPC) like
        # every other file's, not a RuntimeError from inside FAISS.
        (tmp / "dense.faiss").write_bytes(faiss.serialize_index(build_faiss(vectors, faiss_kind)).tobytes())
        if sentences is not None:
            _write_jsonl(tmp / "sentences.jsonl", (_encode(x) for x in sentences))
            dim = vectors.shape[1] if vectors.ndim == 2 else 1
            svec = np.zeros((0, dim), np.float32) if not sentences else sentence_vectors
            np.save(tmp / "sentence_vectors.npy", np.ascontiguousarray(svec, dtype=np.float32), allow_pickle=False)
        if chunks:
            LexicalIndex.build([lexical_text(c) for c in chunks]).save(tmp / "bm25")
        if decisions:
            LexicalIndex.build([decision_lexical_text(d) for d in decisions]).save(tmp / "decisions_bm25")
        manifest = {**manifest, "format_version": FORMAT_VERSION, "files": file_sums(tmp)}
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


def load_index(index_dir: Path, expect_model: str | None = None, expect_dim: int | None = None,
               verify: bool = True) -> LoadedIndex:
    """Load the current build.

    Args:
        index_dir: the index folder (holding `current` and `builds/`).
        expect_model, expect_dim: refuse a build made with another model.
        verify: check every file's sha256 against the manifest (sizes are always checked).

    Raises:
        IndexError_: with a plain message naming the file when the build is missing, damaged
            (truncated, altered, unreadable) or was made for another model.
    """
    build = current_build(index_dir)
    if build is None:
        raise IndexError_(f"no index at {index_dir}: build one with `python -m indexer build corpus --index {index_dir}`")
    with _reading(build / MANIFEST):
        manifest = json.loads((build / MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexError_(f"index at {index_dir} has format {manifest.get('format_version')}, expected {FORMAT_VERSION}: rebuild it")
    with _reading(build / MANIFEST):
        model = manifest["model"]
        if not isinstance(model, dict) or not {"name", "dim"} <= model.keys():
            raise ValueError("no model name and dimension")
    if expect_model is not None and model["name"] != expect_model:
        raise IndexError_(
            f"index at {index_dir} was built with model {model['name']!r} but the service is configured "
            f"for {expect_model!r}: rebuild the index or set BOARDPAPERS_MODEL={model['name']}"
        )
    if expect_dim is not None and model["dim"] != expect_dim:
        raise IndexError_(f"index vectors have dimension {model['dim']} but the model gives {expect_dim}: rebuild the index")
    verify_files(build, manifest, hashes=verify)
    try:
        return _load_build(index_dir, build, manifest)
    except IndexError_:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        # Files that match their checksums but do not read: a manifest edited by hand, or a
        # library that changed its format. Still a refused index, not a crash of the caller.
        raise IndexError_(f"index at {index_dir} cannot be read ({type(e).__name__}: {e}): rebuild it") from e


def _load_build(index_dir: Path, build: Path, manifest: dict) -> LoadedIndex:
    import faiss

    doc_rows = _read_jsonl(build / "documents.jsonl")
    documents = {d["id"]: document_from_json(d) for d in doc_rows}
    texts = {d["id"]: d["text"] for d in doc_rows}
    chunks = [chunk_from_json(c) for c in _read_jsonl(build / "chunks.jsonl")]
    decisions = [decision_from_json(d) for d in _read_jsonl(build / "decisions.jsonl")]
    with _reading(build / "vectors.npy"):
        vectors = np.load(build / "vectors.npy", allow_pickle=False)
    with _reading(build / "dense.faiss"):
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


# ---------------------------------------------------------------- integrity


def file_sums(build: Path) -> dict[str, dict]:
    """Size and sha256 of every file below a build folder, by path relative to it (the manifest's "files")."""
    out = {}
    for path in sorted(p for p in build.rglob("*") if p.is_file()):
        rel = path.relative_to(build).as_posix()
        if rel != MANIFEST:
            out[rel] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    return out


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify_files(build: Path, manifest: dict, hashes: bool = True) -> None:
    """Refuse a build whose files are not the ones its manifest lists: missing, truncated, grown or altered.

    Sizes first for every file (a stat each), then the hashes: a truncated file is named
    without reading the others.
    """
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IndexError_(f"{build / MANIFEST} lists no file checksums: rebuild the index")
    if not all(isinstance(w, dict) and {"bytes", "sha256"} <= w.keys() for w in files.values()):
        raise IndexError_(f"{build / MANIFEST} has a malformed file list: rebuild the index")
    for rel, want in files.items():
        path = build / rel
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise IndexError_(f"index file {path} is missing: rebuild the index") from None
        except OSError as e:
            raise IndexError_(f"index file {path} cannot be read ({e.strerror or e}): rebuild the index") from e
        if size != want["bytes"]:
            raise IndexError_(f"index file {path} has {size} bytes, the manifest says {want['bytes']} "
                              f"(truncated or altered): rebuild the index")
    if hashes:
        for rel, want in files.items():
            with _reading(build / rel):
                actual = _sha256(build / rel)
            if actual != want["sha256"]:
                raise IndexError_(f"index file {build / rel} does not match its checksum in the manifest "
                                  f"(altered or damaged): rebuild the index")


@contextlib.contextmanager
def _reading(path: Path):
    """Name the file in the error when it cannot be read or parsed."""
    try:
        yield
    except IndexError_:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:  # json, numpy and faiss each raise their own
        raise IndexError_(f"index file {path} cannot be read ({type(e).__name__}: {e}): rebuild the index") from e


@contextlib.contextmanager
def build_lock(index_dir: Path):
    """Hold the index folder's build lock for the duration, or raise BuildLocked at once.

    An flock, not a pid file: the kernel drops it when the holder dies, even by kill -9, so a
    crashed build never leaves a stale lock behind.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise BuildLocked(f"another build of {index_dir} is running (pid {holder}); "
                              f"wait for it to finish, the index is left to it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
