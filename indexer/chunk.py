"""Cut structured blocks into chunks bounded in tokens, each an exact span of the document text.

Two tokenizers: tiktoken sets the soft size (comparable across models), and the embedding
model's own tokenizer sets the hard bound, so no chunk is silently truncated by the encoder.
The heading path and meeting are embedded with the text and count against that bound.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable

from indexer.dates import format_date
from indexer.records import Block, Chunk, DocumentMeta, Element, ParsedDocument, Part

TokenCounter = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.;:!?])\s+(?=[A-Z0-9(“\"'‘•-])")


@dataclass(frozen=True)
class ChunkSettings:
    target_tokens: int  # tiktoken
    max_model_tokens: int  # the encoder's own limit, special tokens excluded
    model_name: str


def chunk_document(
    doc: ParsedDocument,
    meta: DocumentMeta,
    parts: tuple[Part, ...],
    blocks: tuple[Block, ...],
    settings: ChunkSettings,
    count_tiktoken: TokenCounter,
    count_model: TokenCounter,
) -> list[Chunk]:
    """Chunks for one document, in document order."""
    out: list[Chunk] = []
    for block in blocks:
        part = parts[block.part]
        els = doc.elements[block.first:block.last]
        if _trivial(els):
            continue
        prefix = _prefix(meta, part, block)
        header = els[0].text if block.kind == "table" and els[0].kind == "table" else None
        for start, end in _spans(doc, els, block, prefix, header, settings, count_tiktoken, count_model):
            text = doc.text[start:end]
            table_note = f"Table columns: {header}\n" if header and start > els[0].start else ""
            embed_text = f"{prefix}\n{table_note}{text}"
            out.append(
                Chunk(
                    id=f"{doc.doc_id}:{start}-{end}",
                    doc_id=doc.doc_id,
                    text=text,
                    char_start=start,
                    char_end=end,
                    kind=block.kind,
                    document_type=part.kind,
                    title=part.title,
                    council=meta.council,
                    body=meta.body,
                    meeting_date=part.meeting_date,
                    agenda_item=_item_label(part, block),
                    heading_path=block.heading_path,
                    page=_page_at(els, start),
                    tokens=count_tiktoken(text),
                    embed_text=embed_text,
                    content_hash=content_hash(settings.model_name, embed_text),
                )
            )
    return out


def content_hash(model_name: str, embed_text: str) -> str:
    return hashlib.sha256(f"{model_name}\x00{embed_text}".encode()).hexdigest()[:24]


def _trivial(els: tuple[Element, ...]) -> bool:
    words = sum(len(e.text.split()) for e in els)
    return words < 3


def _item_label(part: Part, block: Block) -> str | None:
    if block.minute_item:
        return block.minute_item
    if part.agenda_item:
        return f"Item {part.agenda_item}: {part.title}"
    return None


def _prefix(meta: DocumentMeta, part: Part, block: Block) -> str:
    who = ", ".join(x for x in (meta.council, meta.body) if x)
    when = f"meeting of {format_date(part.meeting_date)}" if part.meeting_date else ""
    head = " › ".join(block.heading_path[1:] or block.heading_path)
    return " | ".join(x for x in (who, when, head) if x)


def _page_at(els: tuple[Element, ...], pos: int) -> int | None:
    for e in els:
        if e.end > pos:
            return e.page
    return els[-1].page if els else None


def _spans(doc, els, block, prefix, header, settings, count_tiktoken, count_model):
    """Greedy packing of element (or sentence) spans into chunks within both bounds."""
    budget_model = settings.max_model_tokens - count_model(prefix) - 2
    if header:
        budget_model -= count_model(header) + 4
    budget_model = max(budget_model, 32)
    target = settings.target_tokens
    if block.kind in ("resolution", "recommendation"):
        # Keep a resolution whole when the model can take it, whatever the soft target.
        whole = doc.text[els[0].start:els[-1].end]
        if count_model(whole) <= budget_model:
            return [(els[0].start, els[-1].end)]
        target = 10**9

    pieces: list[tuple[int, int]] = []
    for e in els:
        if count_model(e.text) <= budget_model and count_tiktoken(e.text) <= target:
            pieces.append((e.start, e.end))
        else:
            pieces.extend(_split_long(doc.text, e.start, e.end, budget_model, target, count_tiktoken, count_model))

    spans: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    for start, end in pieces:
        if cur is None:
            cur = (start, end)
            continue
        candidate = doc.text[cur[0]:end]
        if count_tiktoken(candidate) <= target and count_model(candidate) <= budget_model:
            cur = (cur[0], end)
        else:
            spans.append(cur)
            cur = (start, end)
    if cur:
        spans.append(cur)
    return spans


def _split_long(text, start, end, budget_model, target, count_tiktoken, count_model):
    """Split one long element at sentence ends, then at word boundaries if a sentence is too long."""
    cuts = [start] + [start + m.end() for m in _SENTENCE_END.finditer(text[start:end])] + [end]
    sentences = [(a, b) for a, b in zip(cuts, cuts[1:]) if text[a:b].strip()]
    out: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    for a, b in sentences:
        b = a + len(text[a:b].rstrip())
        if count_model(text[a:b]) > budget_model or count_tiktoken(text[a:b]) > target:
            if cur:
                out.append(cur)
                cur = None
            out.extend(_split_words(text, a, b, budget_model, target, count_tiktoken, count_model))
            continue
        if cur is None:
            cur = (a, b)
        elif count_tiktoken(text[cur[0]:b]) <= target and count_model(text[cur[0]:b]) <= budget_model:
            cur = (cur[0], b)
        else:
            out.append(cur)
            cur = (a, b)
    if cur:
        out.append(cur)
    return out


def _split_words(text, a, b, budget_model, target, count_tiktoken, count_model):
    out = []
    words = [(m.start() + a, m.end() + a) for m in re.finditer(r"\S+", text[a:b])]
    i = 0
    while i < len(words):
        j = i + 1
        while j < len(words):
            span = text[words[i][0]:words[j][1]]
            if count_model(span) > budget_model or count_tiktoken(span) > target:
                break
            j += 1
        out.append((words[i][0], words[j - 1][1]))
        i = j
    return out
