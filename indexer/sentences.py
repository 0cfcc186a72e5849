"""Chunks -> sentences: the spans the answerer quotes, each embedded once at build time.

A chunk's vector blurs its sentences together, so a passage whose one sentence answers the
question can rank below a passage that is merely about the topic. Each sentence gets its own
vector (its section path, then the sentence: the same text the answerer scores), and the
retriever scores a passage by its best sentence as well as by the whole. Embedding them here
rather than per question also keeps `/ask` from running the model over every candidate sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from indexer.chunk import content_hash
from indexer.records import Chunk, SentenceSpan

# A sentence ends at ". ! ? ;" followed by a capital, digit or opening quote, or at a line break
# (table rows and list items are lines).
_SENT = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9(\"“‘'])|\n+")


def split(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each sentence of text[start:end], as offsets into text."""
    pos = start
    for m in _SENT.finditer(text, start, end):
        if m.start() > pos:
            yield pos, m.start()
        pos = m.end()
    if pos < end:
        yield pos, end


def embed_text(chunk: Chunk, sentence: str) -> str:
    """What the encoder sees for a sentence: where it sits (below the pack title), then the sentence."""
    return f"{' › '.join(chunk.heading_path[1:])}\n{sentence}"


def span_embed_text(span: SentenceSpan, chunks: Sequence[Chunk], texts: dict[str, str]) -> str:
    """The embedded text of a stored span: what its content hash covers and its vector encodes."""
    c = chunks[span.chunk_row]
    return embed_text(c, texts[c.doc_id][span.start:span.end])


# How sentence vectors are made (BOARDPAPERS_SENTENCE_VECTORS): "separate", each sentence encoded
# on its own as embed_text gives it; "pooled", its tokens' mean in its chunk's own forward pass.
SENTENCE_VECTORS = ("pooled", "separate")


def sentence_spans(chunks: Sequence[Chunk], texts: dict[str, str], model_name: str,
                   pooled: bool = False) -> list[SentenceSpan]:
    """Every sentence of every chunk, in chunk order, so a chunk's sentences are one contiguous run.

    A pooled sentence's vector depends on its whole chunk, so its content hash covers the chunk's
    (and its place in it): an edit elsewhere in the chunk makes a new vector, as it should.
    """
    out: list[SentenceSpan] = []
    for row, c in enumerate(chunks):
        text = texts[c.doc_id]
        for s, e in split(text, c.char_start, c.char_end):
            what = (f"pooled\x00{c.content_hash}\x00{s - c.char_start}\x00{e - c.char_start}" if pooled
                    else embed_text(c, text[s:e]))
            out.append(SentenceSpan(row, s, e, content_hash(model_name, what)))
    return out


def span_in_chunk(span: SentenceSpan, chunk: Chunk) -> tuple[int, int]:
    """The span as offsets into its chunk's embed_text, which ends with the chunk's text."""
    base = len(chunk.embed_text) - (chunk.char_end - chunk.char_start)
    return base + span.start - chunk.char_start, base + span.end - chunk.char_start
