"""The on-disk index format. The only module that knows it; the service loads through here.

    INDEX_DIR/current -> builds/<stamp>      symlink, swapped atomically after a build
    INDEX_DIR/builds/<stamp>/
        manifest.json       model, dimension, tokenizers, chunk settings, per-document hashes,
                            library versions, build time, skipped files
        documents.jsonl     one DocumentRecord per line, with its extracted text
        chunks.jsonl        one Chunk per line; row i is FAISS id i and BM25 row i
        chunks.offsets.npy  int64 [n_chunks + 1]: byte offset of each line of chunks.jsonl, so a
                            chunk is read by row without holding a million of them in memory
        vectors.npy         float32 [n_chunks, dim], L2-normalised (reused by incremental builds),
                            opened memory-mapped
        dense.faiss         FAISS index over vectors.npy (inner product = cosine): exact (flat)
                            below hnsw_min_chunks, HNSW from there (manifest "dense_index"),
                            opened memory-mapped
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

A build writes a new folder under builds/, flushes it to disk (fsync), and only then repoints
`current`, so a crash, a power cut or a failed build leaves the previous index whole and loadable.
The build `current` pointed to before stays on disk until the next build (two at most): a service
that read the old `current` a moment before the switch can still load it. The manifest lists every other file
of its build with its size and sha256 ("files"); loading refuses a build whose files are not
the ones it lists, naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import mmap
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from indexer.lexical import LexicalIndex
from indexer.records import Chunk, Decision, DocumentRecord, PartSpan, SentenceSpan

# 2: sentence spans and their vectors; 3: sizes and sha256 of every file; 4: chunk line offsets
# and the dense index's kind and settings in the manifest
FORMAT_VERSION = 4
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
    texts: Mapping[str, str]  # document id -> extracted text, read from documents.jsonl on demand
    chunks: Sequence[Chunk]  # a ChunkTable: rows read from chunks.jsonl on demand
    vectors: np.ndarray
    faiss_index: Any
    bm25: LexicalIndex
    decisions: list[Decision]
    decisions_bm25: LexicalIndex | None
    sentences: list[SentenceSpan] = dataclasses.field(default_factory=list)
    sentence_vectors: np.ndarray | None = None

    def first_sentence(self) -> np.ndarray:
        """[n_chunks + 1]: chunk r's sentences are rows [first[r], first[r + 1]) of `sentences` (stored
        in chunk order). Made once and shared by the retriever and the local backend."""
        cached = self.__dict__.get("_first_sentence")
        if cached is None:
            owner = np.fromiter((x.chunk_row for x in self.sentences), dtype=np.int64, count=len(self.sentences))
            cached = np.searchsorted(owner, np.arange(len(self.chunks) + 1))
            self.__dict__["_first_sentence"] = cached
        return cached


@dataclass(frozen=True)
class DenseSpec:
    """Which FAISS index a build gets: exact inner product below a size, HNSW from it.

    Exact search over a million 384-d vectors reads 1.5 GB per query; HNSW reads a few thousand
    vectors and loses a little recall (benchmarks/bench_million.py measures how much).
    """

    kind: str = "auto"  # "auto" (by size) | "flat" | "hnsw"
    hnsw_min_chunks: int = 100_000
    m: int = 32  # graph neighbours per node (64 on the bottom layer)
    ef_construction: int = 64
    ef_search: int = 128  # the service searches at least `depth` (its candidates) deep anyway

    def __post_init__(self) -> None:
        if self.kind not in ("auto", "flat", "hnsw"):
            raise ValueError(f"unknown FAISS index kind {self.kind!r}: use 'auto', 'flat' or 'hnsw'")

    def resolve(self, n: int) -> str:
        if self.kind != "auto":
            return self.kind
        return "hnsw" if n >= self.hnsw_min_chunks else "flat"

    def manifest_entry(self, n: int) -> dict:
        kind = self.resolve(n)
        entry: dict[str, Any] = {"kind": kind, "requested": self.kind, "hnsw_min_chunks": self.hnsw_min_chunks}
        if kind == "hnsw":
            entry.update(m=self.m, ef_construction=self.ef_construction, ef_search=self.ef_search)
        return entry


@dataclass(frozen=True)
class ChunkColumns:
    """What search needs of every chunk, as arrays: one pass over chunks.jsonl at load, then no
    Chunk objects held. Strings that repeat (council, body, type, kind) are codes into a label list."""

    ids: list[str]
    council: np.ndarray  # int32 code into councils
    councils: list[str]  # as written ("" for none)
    body: np.ndarray
    bodies: list[str]
    document_type: np.ndarray
    document_types: list[str]
    kind: np.ndarray
    kinds: list[str]
    date: np.ndarray  # int64 ordinal of the meeting date, -1 when undated
    words: np.ndarray  # int32 words in the passage text
    text_key: np.ndarray  # uint64 hash of the passage's words, lower-cased: equal texts, equal keys

    @classmethod
    def of(cls, chunks: Iterator[Chunk] | Sequence[Chunk]) -> "ChunkColumns":
        ids: list[str] = []
        codes: dict[str, tuple[dict[str, int], list[int]]] = {k: ({}, []) for k in ("council", "body", "document_type", "kind")}
        dates: list[int] = []
        words: list[int] = []
        keys: list[int] = []
        for c in chunks:
            ids.append(c.id)
            for field in codes:
                labels, out = codes[field]
                value = getattr(c, field) or ""
                out.append(labels.setdefault(value, len(labels)))
            dates.append(c.meeting_date.toordinal() if c.meeting_date else -1)
            words.append(len(c.text.split()))
            keys.append(text_key(c.text))
        cols = {}
        for field, (labels, out) in codes.items():
            cols[field] = np.array(out, dtype=np.int32)
            cols[field + "s" if field != "body" else "bodies"] = list(labels)
        return cls(ids=ids, date=np.array(dates, dtype=np.int64), words=np.array(words, dtype=np.int32),
                   text_key=np.array(keys, dtype=np.uint64), **cols)

    def row_of(self) -> dict[str, int]:
        """{chunk id: row}, made on first use and shared by whoever holds these columns (the
        retriever and the local backend), so a million chunks cost one such map, not two."""
        cached = self.__dict__.get("_row_of")
        if cached is None:
            cached = {cid: row for row, cid in enumerate(self.ids)}
            object.__setattr__(self, "_row_of", cached)  # a cache, not a field: equality ignores it
        return cached

    def matching(self, field: str, test) -> np.ndarray:
        """Boolean mask of the rows whose `field` label passes test(label)."""
        labels = getattr(self, "bodies" if field == "body" else field + "s")
        ok = np.array([bool(test(label)) for label in labels] or [False], dtype=bool)
        return ok[getattr(self, field)]


def text_key(text: str) -> int:
    """The de-duplication key of a passage: its words, lower-cased, without punctuation."""
    norm = re.sub(r"\W+", " ", text.lower()).strip()
    return int.from_bytes(hashlib.blake2b(norm.encode("utf-8"), digest_size=8).digest(), "little")


class ChunkTable(Sequence):
    """chunks.jsonl read by row through its offsets, memory-mapped: a million chunks cost their
    offsets (8 bytes each) and the pages the OS keeps, not a million Python objects."""

    def __init__(self, path: Path, offsets: np.ndarray, cache_rows: int = 16_384) -> None:
        self.path = path
        self._offsets = offsets
        self._n = len(offsets) - 1
        self._mm = None
        if self._n > 0:
            with path.open("rb") as f:
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        # A question's candidates are read several times over (fusion, answer, citations); and a
        # table that fits the cache (a council's papers: a few thousand chunks) ends up held
        # decoded, so passes over every chunk cost what a list's do.
        self._cache_rows = cache_rows
        self._row = functools.lru_cache(maxsize=cache_rows)(self._read_row)
        self._columns: ChunkColumns | None = None

    def __len__(self) -> int:
        return self._n

    def _read_row(self, row: int) -> Chunk:
        a, b = int(self._offsets[row]), int(self._offsets[row + 1])
        return chunk_from_json(json.loads(self._mm[a:b]))

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(self._n))]
        row = int(row)
        if row < 0:
            row += self._n
        if not 0 <= row < self._n:
            raise IndexError(f"chunk row {row} out of range (0..{self._n - 1})")
        return self._row(row)

    def __iter__(self) -> Iterator[Chunk]:
        if self._n <= self._cache_rows:
            for row in range(self._n):
                yield self._row(row)
            return
        # In file order, without the cache (a pass over a million chunks should not evict the hot
        # rows), and read, not through the map: the pages read stay in the page cache but do not
        # count in the process's resident memory (700 MB at a million chunks).
        with self.path.open("rb") as f:
            for _, line in zip(range(self._n), f):
                yield chunk_from_json(json.loads(line))

    def __eq__(self, other) -> bool:
        if isinstance(other, (list, tuple, ChunkTable)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None

    def columns(self) -> ChunkColumns:
        """The search columns of every row, computed on first use (one pass over the file)."""
        if self._columns is None:
            self._columns = ChunkColumns.of(iter(self))
        return self._columns


class DocumentTexts(Mapping):
    """Document id -> extracted text, read from documents.jsonl by offset when asked for."""

    def __init__(self, path: Path, spans: dict[str, tuple[int, int]]) -> None:
        self.path = path
        self._spans = spans
        self._mm = None
        if spans:
            with path.open("rb") as f:
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._get = functools.lru_cache(maxsize=64)(self._read)

    def _read(self, doc_id: str) -> str:
        a, b = self._spans[doc_id]
        return json.loads(self._mm[a:b])["text"]

    def __getitem__(self, doc_id: str) -> str:
        if doc_id not in self._spans:
            raise KeyError(doc_id)
        return self._get(doc_id)

    def __iter__(self):
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)


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


def _write_jsonl(path: Path, rows) -> np.ndarray:
    """Write one JSON object per line; returns the byte offset of each line and of the end."""
    offsets = [0]
    with path.open("wb") as f:
        for row in rows:
            line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
            f.write(line)
            offsets.append(offsets[-1] + len(line))
    return np.array(offsets, dtype=np.int64)


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
    dense: DenseSpec | str = "flat",
    sentences: list[SentenceSpan] | None = None,
    sentence_vectors: np.ndarray | None = None,
    progress: bool = False,
) -> Path:
    """Write a complete build beside the current one, then switch `current` to it atomically.

    chunks may be any iterable of Chunk (a generator, for a million of them); `dense` is the
    DenseSpec (or a kind name) choosing the FAISS index by size.
    """
    import faiss

    spec = dense if isinstance(dense, DenseSpec) else DenseSpec(kind=dense)

    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    previous = current_build(index_dir)
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tmp = builds / f".tmp-{stamp}"
    tmp.mkdir()
    try:
        _write_jsonl(tmp / "documents.jsonl", ({**_encode(rec), "text": text} for rec, text in documents))
        lexical: list[str] = []

        def encoded():
            for c in chunks:
                lexical.append(lexical_text(c))
                yield _encode(c)

        np.save(tmp / "chunks.offsets.npy", _write_jsonl(tmp / "chunks.jsonl", encoded()), allow_pickle=False)
        _write_jsonl(tmp / "decisions.jsonl", (_encode(d) for d in decisions))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(vectors) != len(lexical):
            raise ValueError(f"{len(vectors)} vectors for {len(lexical)} chunks")
        np.save(tmp / "vectors.npy", vectors, allow_pickle=False)
        # Written by Python, not faiss.write_index: a full disk is then an OSError (ENOSPC) like
        # every other file's, not a RuntimeError from inside FAISS.
        dense_index = build_faiss(vectors, spec, progress=progress)
        (tmp / "dense.faiss").write_bytes(faiss.serialize_index(dense_index).tobytes())
        del dense_index
        if sentences is not None:
            _write_jsonl(tmp / "sentences.jsonl", (_encode(x) for x in sentences))
            dim = vectors.shape[1] if vectors.ndim == 2 else 1
            svec = np.zeros((0, dim), np.float32) if not sentences else sentence_vectors
            np.save(tmp / "sentence_vectors.npy", np.ascontiguousarray(svec, dtype=np.float32), allow_pickle=False)
        if lexical:
            # A bar only where the wait is long (tokenising takes a minute per million chunks).
            LexicalIndex.build(lexical, progress=progress and len(lexical) >= 50_000).save(tmp / "bm25")
        del lexical
        if decisions:
            LexicalIndex.build([decision_lexical_text(d) for d in decisions]).save(tmp / "decisions_bm25")
        manifest = {**manifest, "format_version": FORMAT_VERSION, "dense_index": spec.manifest_entry(len(vectors)),
                    "files": file_sums(tmp)}
        # The manifest goes last: a folder without one is never taken for a build.
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        _fsync_tree(tmp)  # on disk before anything points at it: renames can reach the disk before data
        final = builds / stamp
        os.replace(tmp, final)
        _fsync_dir(builds)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    link_tmp = index_dir / f".{CURRENT}-{stamp}"
    os.symlink(Path(BUILDS) / stamp, link_tmp)
    os.replace(link_tmp, index_dir / CURRENT)
    _fsync_dir(index_dir)
    _remove_old_builds(builds, keep={final, previous})
    return final


def _remove_old_builds(builds: Path, keep: set[Path | None]) -> None:
    """Every build but those kept (this one and the one it replaced), and what failed builds left."""
    keep = {k.resolve() for k in keep if k is not None}
    for old in builds.iterdir():
        if old.resolve() not in keep:
            shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for sub in [folder, *(d for d in folder.rglob("*") if d.is_dir())]:
        _fsync_dir(sub)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_faiss(vectors: np.ndarray, spec: DenseSpec | str = "flat", progress: bool = False):
    import faiss

    spec = spec if isinstance(spec, DenseSpec) else DenseSpec(kind=spec)
    dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
    kind = spec.resolve(len(vectors))
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, spec.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
        index.hnsw.efSearch = spec.ef_search
    if not len(vectors):
        return index
    if kind == "flat" or not progress:
        index.add(vectors)
        return index
    from tqdm import tqdm

    # In slices, for a progress bar: HNSW inserts are the slow part of a million-chunk build.
    step = 20_000
    with tqdm(total=len(vectors), desc="HNSW", unit="vec") as bar:
        for a in range(0, len(vectors), step):
            index.add(vectors[a:a + step])
            bar.update(min(step, len(vectors) - a))
    return index


def set_ef_search(dense, ef: int) -> None:
    """How deep an HNSW index searches (a no-op for flat); the service reads it from the manifest."""
    import faiss

    if isinstance(dense, faiss.IndexHNSW):
        dense.hnsw.efSearch = int(ef)


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

    documents: dict[str, DocumentRecord] = {}
    spans: dict[str, tuple[int, int]] = {}
    with _reading(build / "documents.jsonl"), (build / "documents.jsonl").open("rb") as f:
        pos = 0
        for line in f:
            if line.strip():
                d = json.loads(line)
                documents[d["id"]] = document_from_json(d)
                spans[d["id"]] = (pos, pos + len(line))
            pos += len(line)
    texts = DocumentTexts(build / "documents.jsonl", spans)
    with _reading(build / "chunks.offsets.npy"):
        offsets = np.load(build / "chunks.offsets.npy", mmap_mode="r", allow_pickle=False)
        if offsets.ndim != 1 or not len(offsets) or int(offsets[-1]) != (build / "chunks.jsonl").stat().st_size:
            raise ValueError("offsets do not match chunks.jsonl")
    with _reading(build / "chunks.jsonl"):
        chunks = ChunkTable(build / "chunks.jsonl", offsets)
    decisions = [decision_from_json(d) for d in _read_jsonl(build / "decisions.jsonl")]
    with _reading(build / "vectors.npy"):
        # Memory-mapped: the service reads a few rows per question (sentence and decision scores).
        vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
    with _reading(build / "dense.faiss"):
        # IO_FLAG_MMAP_IFC maps the stored vectors of a flat index and of HNSW's storage (and
        # HNSW's graph) instead of reading them: the pages a search touches come from the page
        # cache, and a restart does not read 1.5 GB before it can answer. (IO_FLAG_MMAP proper
        # applies only to IVF lists.)
        dense = faiss.read_index(str(build / "dense.faiss"), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    entry = manifest.get("dense_index") or {}
    if entry.get("kind") == "hnsw":
        set_ef_search(dense, entry.get("ef_search", DenseSpec.ef_search))
    if dense.ntotal != len(chunks) or len(vectors) != len(chunks):
        raise IndexError_(f"index at {index_dir} is inconsistent ({dense.ntotal} vectors, {len(chunks)} chunks): rebuild it")
    if len(chunks) and not (build / "bm25").exists():
        raise IndexError_(f"index at {index_dir} has {len(chunks)} chunks but no BM25 index: rebuild it")
    bm25 = LexicalIndex.load(build / "bm25") if len(chunks) else LexicalIndex()
    dbm25 = LexicalIndex.load(build / "decisions_bm25") if (build / "decisions_bm25").exists() else None
    sentences: list[SentenceSpan] = []
    sentence_vectors = None
    if (build / "sentences.jsonl").exists():
        sentences = [SentenceSpan(**x) for x in _read_jsonl(build / "sentences.jsonl")]
        sentence_vectors = np.load(build / "sentence_vectors.npy", mmap_mode="r", allow_pickle=False)
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
