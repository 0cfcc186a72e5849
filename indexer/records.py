"""Typed records passed between the indexer's stages and read back by the service.

Documents -> elements -> parts/blocks -> chunks -> vectors. Every record is frozen so a
stage cannot quietly change what an earlier stage produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

# Document types a chunk can carry; `document_type` filters use these names.
PART_KINDS = ("agenda", "minutes", "report", "appendix", "progress_report", "document")


@dataclass(frozen=True)
class DocumentMeta:
    """What is known of a source file: from corpus/metadata.toml or detected from its front sheet."""

    title: str
    council: str | None = None
    body: str | None = None
    meeting_date: date | None = None
    document_type: str = "document"
    source: str = "metadata"  # "metadata" (corpus/metadata.toml) | "sidecar" (<file>.meta.toml) | "detected"
    notes: tuple[str, ...] = ()  # what could not be detected, said to the user
    # From a publisher that files each paper under its agenda item (a Modern.Gov sync's sidecar).
    agenda_item: str | None = None  # "8"
    agenda_title: str | None = None  # that item's title on the agenda
    source_url: str | None = None  # where the paper was published, for citations to link back to


@dataclass(frozen=True)
class SourceFile:
    path: Path
    doc_id: str
    sha256: str
    meta: DocumentMeta | None  # None: no metadata entry, detect from the text


@dataclass(frozen=True)
class Element:
    """One paragraph-like unit of extracted text.

    `start`/`end` index into the document's extracted text, which is the join of all element
    texts with blank lines; that text is what citations point into.
    """

    kind: str  # "heading" | "text" | "list_item" | "table"
    text: str
    start: int
    end: int
    page: int | None = None
    level: int | None = None  # markdown heading level when the source marked one
    emphasis: bool = False  # the whole element was bold in the source


@dataclass(frozen=True)
class ParsedDocument:
    doc_id: str
    path: Path
    sha256: str
    text: str
    elements: tuple[Element, ...]
    has_pages: bool
    # Running headers and footers, left out of the text (they would pollute every chunk) but
    # kept here: they often name the council, the body and the meeting when nothing else does.
    running: tuple[str, ...] = ()


@dataclass(frozen=True)
class Part:
    """A document inside an agenda pack: the agenda, earlier minutes, a report, an appendix."""

    kind: str
    title: str
    meeting_date: date | None
    agenda_item: str | None
    first: int  # element index range [first, last)
    last: int


@dataclass(frozen=True)
class Block:
    """A run of elements that belongs together under one heading path.

    `kind` "resolution" and "recommendation" blocks are kept whole by the chunker where the
    model's sequence length allows.
    """

    kind: str  # "text" | "table" | "resolution" | "recommendation"
    first: int
    last: int
    part: int
    heading_path: tuple[str, ...]
    minute_item: str | None = None


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    text: str  # exactly document.text[char_start:char_end]
    char_start: int
    char_end: int
    kind: str
    document_type: str
    title: str
    council: str | None
    body: str | None
    meeting_date: date | None
    agenda_item: str | None
    heading_path: tuple[str, ...]
    page: int | None
    tokens: int  # tiktoken count of `text`
    embed_text: str  # heading path + meeting + text: what the encoder sees
    content_hash: str  # of embed_text and the model, so unchanged text is never embedded twice


@dataclass(frozen=True)
class SentenceSpan:
    """One sentence of a chunk; its vector is row i of the sentence vectors when it is span i."""

    chunk_row: int  # row of its chunk in the chunk store
    start: int  # into the document text
    end: int
    content_hash: str  # of its embedded text and the model, so unchanged sentences are reused


@dataclass(frozen=True)
class Decision:
    """A resolution (decision) or a report recommendation (proposal), with its citation."""

    id: str
    kind: str  # "decision" | "recommendation"
    doc_id: str
    council: str | None
    body: str | None
    meeting_date: date | None
    item: str | None
    text: str  # exactly document.text[char_start:char_end]
    char_start: int
    char_end: int
    page: int | None
    parts: int
    heading_path: tuple[str, ...]
    context_start: int  # the whole minute item, for "the surrounding discussion"
    context_end: int
    attendance: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class DocumentRecord:
    """One indexed source file, as the service lists it."""

    id: str
    path: str
    sha256: str
    title: str
    council: str | None
    body: str | None
    meeting_date: date | None
    document_type: str
    metadata_source: str
    notes: tuple[str, ...]
    chars: int
    pages: int | None
    parts: tuple["PartSpan", ...] = ()
    source_url: str | None = None


@dataclass(frozen=True)
class PartSpan:
    """Where a part of a pack lies in the document's extracted text."""

    kind: str
    title: str
    meeting_date: date | None
    agenda_item: str | None
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """A file with the same bytes as another, which is indexed in its place."""

    path: str
    same_as: str
