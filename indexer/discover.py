"""Find the source files of a corpus folder and their metadata (corpus/metadata.toml)."""

from __future__ import annotations

import hashlib
import logging
import tomllib
from collections import Counter
from datetime import date
from pathlib import Path

from indexer.records import DocumentMeta, SourceFile

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.toml"
# "<file>.meta.toml" beside a file: that file's metadata, as a sync wrote it from the publisher's
# site. An entry for the file in metadata.toml, written by hand, takes precedence.
SIDECAR_SUFFIX = ".meta.toml"


class CorpusError(Exception):
    """The corpus folder itself is unusable (missing, or a malformed metadata file)."""


def discover(corpus_dir: Path) -> list[SourceFile]:
    """Every file below corpus_dir except the metadata file and hidden files, sorted by path.

    Unsupported types are returned too: the parse stage reports them as skipped, so the user
    sees every file that was not indexed and why.
    """
    check_corpus_dir(corpus_dir)
    metadata = load_metadata(corpus_dir / METADATA_FILE)
    rels = []
    for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(corpus_dir)
        if (path.name == METADATA_FILE or path.name.endswith(SIDECAR_SUFFIX)
                or any(part.startswith(".") for part in rel.parts)):
            continue
        rels.append(rel)
    return [
        SourceFile(
            path=corpus_dir / rel,
            doc_id=doc_id,
            sha256=_sha256(corpus_dir / rel),
            meta=metadata.get(str(rel)) or metadata.get(rel.name) or load_sidecar(corpus_dir / rel),
        )
        for rel, doc_id in zip(rels, doc_ids_for(rels))
    ]


def check_corpus_dir(corpus_dir: Path) -> None:
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder not found: {corpus_dir}")


def _sha256(path: Path) -> str:
    # Streamed: a huge file (skipped later, for its size) is never held in memory whole.
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def load_sidecar(path: Path) -> DocumentMeta | None:
    """The metadata a sidecar beside `path` holds, or None when there is none."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        raw = tomllib.loads(side.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CorpusError(f"{side}: not valid TOML ({e})") from e
    return _meta_from(raw, str(side), source="sidecar")


def doc_id_for(rel: Path, keep_suffix: bool = False) -> str:
    """A URL-safe id from the path: folders joined with "--", the suffix dropped unless asked for."""
    stem = "--".join([*rel.parts[:-1], rel.name if keep_suffix else rel.stem])
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem)


def doc_ids_for(rels: list[Path]) -> list[str]:
    """One distinct id per path, in the order given.

    A file's id is its stem ("briefing"): ids are cited elsewhere (evals/questions.jsonl,
    links), so they stay as they were. Only files that would share an id keep their suffix
    ("briefing.md", "briefing.txt"); should that still collide (names that differ only in
    characters made URL-safe), later paths in sorted order get "-2", "-3".
    """
    plain = [doc_id_for(r) for r in rels]
    shared = {i for i, n in Counter(plain).items() if n > 1}
    wanted = [doc_id_for(r, keep_suffix=True) if i in shared else i for r, i in zip(rels, plain)]
    wanted_by_some = set(wanted)
    out: list[str] = []
    used: set[str] = set()
    for doc_id in wanted:
        unique, n = doc_id, 1
        # A number never takes an id another file wants for itself.
        while unique in used or (unique != doc_id and unique in wanted_by_some):
            n += 1
            unique = f"{doc_id}-{n}"
        used.add(unique)
        out.append(unique)
    return out


def load_metadata(path: Path) -> dict[str, DocumentMeta]:
    if not path.exists():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: not valid TOML ({e})") from e
    out = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise CorpusError(f"{path}: entry [{name!r}] needs at least a title")
        out[name] = _meta_from(entry, f"{path}: entry [{name!r}]", source="metadata")
    return out


def _meta_from(entry: dict, where: str, source: str) -> DocumentMeta:
    if "title" not in entry:
        raise CorpusError(f"{where} needs at least a title")
    when = entry.get("meeting_date")
    if isinstance(when, str):
        try:
            when = date.fromisoformat(when)
        except ValueError as e:
            raise CorpusError(f"{where} meeting_date {when!r} is not YYYY-MM-DD") from e

    def text(key: str) -> str | None:
        value = entry.get(key)
        return None if value is None else str(value)  # an item number written as a TOML integer

    return DocumentMeta(
        title=str(entry["title"]),
        council=text("council"),
        body=text("body"),
        meeting_date=when,
        document_type=entry.get("document_type", "document"),
        source=source,
        agenda_item=text("agenda_item"),
        agenda_title=text("agenda_title"),
        source_url=text("source_url"),
    )
