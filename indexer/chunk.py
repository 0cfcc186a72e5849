"""Cut structured blocks into chunks bounded in tokens, each an exact span of the document text.

Two tokenizers: tiktoken sets the soft size (comparable across models), and the embedding
model's own tokenizer sets the hard bound, so no chunk is silently truncated by the encoder.
The heading path and meeting are embedded with the text and count against that bound.

A block too long for one chunk is cut into pieces: its elements, a long one at sentence ends,
then between words, then inside a word. Pieces are not tokenised one by one: each takes its share
of the measured span it was cut from, and chunks are packed greedily by those shares, tokenising
only the guessed chunk and correcting the guess by what that shows. Every chunk is measured before
it is kept, so both bounds hold exactly, and each character is tokenised only a few times: the
cost is linear in the length of the text, not in words times chunk size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Callable

from indexer.dates import format_date
from indexer.records import Block, Chunk, DocumentMeta, Element, ParsedDocument, Part
from indexer.structure import item_title

TokenCounter = Callable[[str], int]

# A capital, digit, bracket, quote or bullet after . ; : ! ? opens a sentence; so does a lowercase
# word after . ! ? (abstracts open sentences with "mRNA", "p53"), unless the stop ends an abbreviation.
_SENTENCE_END = re.compile(
    r"(?<=[.;:!?])\s+(?=[A-Z0-9(“\"'‘•-])"
    r"|(?<=[.!?])(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<!\bcf\.)(?<!\bvs\.)(?<!\bal\.)(?<!\bapprox\.)\s+(?=[a-z])"
)
_WORD = re.compile(r"\S+")
_HAS_WORD = re.compile(r"[^\W_]")  # a letter or digit in any script

# Kept from the model's budget for the joins between prefix, header note and text, which a
# tokenizer may count differently together than apart.
_JOIN_SLACK = 2
# Below this the prefix has eaten the model's budget; chunks stay readable rather than empty.
_MIN_MODEL_BUDGET = 32
# A piece whose share of a measured span's tokens is under this part of the budget is taken to fit,
# and one whose share is over the budget divided by it is taken not to, without tokenising either;
# only the chunks they end up in are measured.
_SURE_SHARE = 0.5


@dataclass(frozen=True)
class ChunkSettings:
    target_tokens: int  # tiktoken
    max_model_tokens: int  # the encoder's own limit, special tokens excluded
    model_name: str


@dataclass(frozen=True)
class _Span:
    """A stretch of the document text with its counts under both tokenizers."""

    start: int
    end: int
    tiktoken: float  # exact counts when measured, else a share of a measured span's counts
    model: float
    measured: bool = True


@dataclass(frozen=True)
class _Budget:
    """What the text of one chunk may hold: the tiktoken target and the model tokens left to it."""

    target: int
    model: int
    count_tiktoken: TokenCounter
    count_model: TokenCounter

    def measure(self, text: str, start: int, end: int) -> _Span:
        piece = text[start:end]
        return _Span(start, end, self.count_tiktoken(piece), self.count_model(piece))

    def fits(self, span: _Span) -> bool:
        return span.tiktoken <= self.target and span.model <= self.model


@dataclass(frozen=True)
class _TableHeader:
    """A table's header row, repeated in the embedded text of chunks that start after it."""

    start: int
    note: str
    model_tokens: int


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
        room = settings.max_model_tokens - count_model(prefix) - _JOIN_SLACK
        header = _table_header(block, els, room, count_model)
        model_budget = max(room - (header.model_tokens if header else 0), _MIN_MODEL_BUDGET)
        budget = _Budget(settings.target_tokens, model_budget, count_tiktoken, count_model)
        for span in _spans(doc.text, els, block, budget):
            text = doc.text[span.start:span.end]
            if not _HAS_WORD.search(text):
                continue  # a rule of dashes or dots split off a table says nothing to search for
            table_note = header.note if header and span.start > header.start else ""
            embed_text = f"{prefix}\n{table_note}{text}"
            out.append(
                Chunk(
                    id=f"{doc.doc_id}:{span.start}-{span.end}",
                    doc_id=doc.doc_id,
                    text=text,
                    char_start=span.start,
                    char_end=span.end,
                    kind=block.kind,
                    document_type=part.kind,
                    title=part.title,
                    council=meta.council,
                    body=meta.body,
                    meeting_date=part.meeting_date,
                    agenda_item=_item_label(part, block, meta),
                    heading_path=block.heading_path,
                    page=_page_at(els, span.start),
                    tokens=int(span.tiktoken),
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


def _item_label(part: Part, block: Block, meta: DocumentMeta) -> str | None:
    if block.minute_item:
        return block.minute_item
    if part.agenda_item:
        return f"Item {part.agenda_item}: {item_title(part, meta)}"
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


def _table_header(block: Block, els: tuple[Element, ...], room: int, count_model: TokenCounter) -> _TableHeader | None:
    # The first row, wherever it sits: structure keeps a heading together with the table below it.
    row = next((e for e in els if e.kind == "table"), None) if block.kind == "table" else None
    if row is None or not _looks_like_header(row.text):
        return None
    note = f"Table columns: {row.text}\n"
    tokens = count_model(note)
    # A header taking over half of what the model sees would leave too little room for the rows.
    return _TableHeader(row.start, note, tokens) if tokens <= room // 2 else None


def _looks_like_header(row: str) -> bool:
    """Column names are words; a first row whose cells are mostly figures is data (a table with no
    header row), and repeating it above later rows would label them with one row's values."""
    cells = [c for c in (x.strip() for x in row.split("\t")) if c]
    figures = sum(bool(re.search(r"\d", c)) and not re.search(r"[A-Za-z]{3,}", c) for c in cells)
    return bool(cells) and figures * 2 <= len(cells)


def _spans(text: str, els: tuple[Element, ...], block: Block, budget: _Budget) -> list[_Span]:
    """The chunks of one block, as measured spans within both bounds."""
    whole = budget.measure(text, els[0].start, els[-1].end)
    if block.kind in ("resolution", "recommendation"):
        # Keep a resolution whole when the model can take it, whatever the soft target.
        if whole.model <= budget.model:
            return [whole]
        budget = dataclasses.replace(budget, target=10**9)
    if budget.fits(whole):
        return [whole]
    parts = [(e.start, e.end) for e in els] if len(els) > 1 else _parts(text, whole.start, whole.end)
    return _pack(text, _cut(text, whole, parts, budget), budget)


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    cuts = [start] + [m.end() for m in _SENTENCE_END.finditer(text, start, end)] + [end]
    return [(a, a + len(text[a:b].rstrip())) for a, b in zip(cuts, cuts[1:]) if text[a:b].strip()]


def _words(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [m.span() for m in _WORD.finditer(text, start, end)]


def _halves(text: str, start: int, end: int) -> list[tuple[int, int]]:
    # Only whitespace-free runs get here (a long URL, a dashed rule): any cut keeps the spans exact.
    mid = (start + end) // 2
    return [(start, mid), (mid, end)]


def _parts(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A span too long for one chunk, cut at sentence ends, else between words, else in halves."""
    for split in (_sentences, _words, _halves):
        parts = split(text, start, end)
        if len(parts) > 1:
            return parts
    return [(start, end)]


def _cut(text: str, span: _Span, parts: list[tuple[int, int]], budget: _Budget) -> list[_Span]:
    """Pieces that each fit (or are guessed to), from the parts of a measured span that does not fit.

    A part is first given its share of the span's counts by length; only a part whose share comes
    near the budget is tokenised, and cut again if it does not fit. Guesses are checked when packed.
    """
    total = sum(b - a for a, b in parts)
    out: list[_Span] = []
    for a, b in parts:
        share = (b - a) / total
        guess = _Span(a, b, span.tiktoken * share, span.model * share, measured=False)
        if guess.tiktoken <= budget.target * _SURE_SHARE and guess.model <= budget.model * _SURE_SHARE:
            out.append(guess)
            continue
        if guess.tiktoken > budget.target / _SURE_SHARE or guess.model > budget.model / _SURE_SHARE:
            out.extend(_cut(text, guess, _parts(text, a, b), budget))  # far over: no need to measure it
            continue
        measured = budget.measure(text, a, b)
        if budget.fits(measured) or b - a < 2:
            out.append(measured)  # a single character over the budget cannot be cut any further
        else:
            out.extend(_cut(text, measured, _parts(text, a, b), budget))
    return out


def _pack(text: str, pieces: list[_Span], budget: _Budget) -> list[_Span]:
    """Greedy packing: each chunk takes as many of the following pieces as fit in both bounds."""
    sum_tiktoken = list(accumulate((p.tiktoken for p in pieces), initial=0.0))
    sum_model = list(accumulate((p.model for p in pieces), initial=0.0))
    out: list[_Span] = []
    i = 0
    while i < len(pieces):
        j, span = _longest_run(text, pieces, sum_tiktoken, sum_model, i, budget)
        if budget.fits(span) or span.end - span.start < 2:
            out.append(span)
        else:  # a piece guessed to fit alone does not: cut it finer
            out.extend(_pack(text, _cut(text, span, _parts(text, span.start, span.end), budget), budget))
        i = j + 1
    return out


def _longest_run(
    text: str, pieces: list[_Span], sum_tiktoken: list[float], sum_model: list[float], i: int, budget: _Budget
) -> tuple[int, _Span]:
    """The last piece j of the chunk opening at piece i, and the chunk's measured span.

    Pieces i..j count about the sum of their own counts (exactly, for a WordPiece model and cuts
    at whitespace); the guess is corrected by what each measurement shows, so one or two
    tokenisations of the chunk usually settle it instead of one per piece.
    """
    lo, best = i, pieces[i]
    hi = len(pieces)  # the first j known not to fit
    off_tiktoken = off_model = 0.0  # measured minus summed counts, from the latest measurement
    while True:
        # bisect_right gives one past the last prefix sum within bounds, and sum[k] ends at piece k-1.
        end_t = bisect_right(sum_tiktoken, sum_tiktoken[i] + budget.target - off_tiktoken)
        end_m = bisect_right(sum_model, sum_model[i] + budget.model - off_model)
        j = min(end_t - 2, end_m - 2, hi - 1)
        if j <= lo:
            break
        span = budget.measure(text, pieces[i].start, pieces[j].end)
        off_tiktoken = span.tiktoken - (sum_tiktoken[j + 1] - sum_tiktoken[i])
        off_model = span.model - (sum_model[j + 1] - sum_model[i])
        if budget.fits(span):
            lo, best = j, span
        else:
            hi = j
    return lo, best if best.measured else budget.measure(text, best.start, best.end)
