"""The one interface every search backend offers the retriever.

A backend ranks chunks, by id: dense (inner product of normalised vectors) and BM25 (the
tokens of indexer/lexical.py, so both backends see the same words), each under the same
filters, and scores candidate chunks by their best sentence (the inner product of the query
vector with each of their sentence spans' vectors, the best of them). Scores are the backend's
own (cosine, BM25); the retriever fuses and re-scores them (priors, boosts) the same way
whichever backend produced them.

Writes are by id, for chunks and for sentence spans alike: a sentence span's id is its chunk's
id and its offsets (`sentence_id`), and its content hash says whether its vector changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol, Sequence

import numpy as np

from indexer.records import Chunk, SentenceSpan

BACKENDS = ("local", "milvus")

Scored = list[tuple[str, float]]  # (chunk id, score), best first


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}")
    return name


@dataclass(frozen=True)
class Sentence:
    """A sentence span as a backend keys it: by id, under its chunk's id, with its content hash."""

    id: str  # sentence_id(chunk id, start, end)
    chunk_id: str
    content_hash: str  # of the model and the embedded text (indexer/sentences.py): its vector's identity


def sentence_id(chunk_id: str, start: int, end: int) -> str:
    """Unique within a build: chunks of one document may overlap, so the chunk id is part of it."""
    return f"{chunk_id}/{start}-{end}"


def sentences_of(chunk_ids: Sequence[str], spans: Sequence[SentenceSpan]) -> list[Sentence]:
    """The backend's view of the index folder's sentence spans, in the same order (row i = vector i)."""
    return [Sentence(sentence_id(chunk_ids[x.chunk_row], x.start, x.end), chunk_ids[x.chunk_row], x.content_hash)
            for x in spans]


@dataclass(frozen=True)
class Where:
    """The filters of a search, as the index reads them (the API's Filters stays in service/)."""

    council: str | None = None  # case-insensitive substring of the chunk's council
    body: str | None = None  # case-insensitive substring of the chunk's body
    document_type: str | None = None  # exact
    date_from: date | None = None  # meeting on or after; undated chunks do not pass
    date_to: date | None = None  # meeting on or before; undated chunks do not pass
    decisions_only: bool = False  # resolution chunks only


class SearchBackend(Protocol):
    name: str

    def dense(self, vector: np.ndarray, where: Where, depth: int) -> Scored:
        """The depth chunks nearest the (normalised) query vector that pass `where`."""

    def lexical(self, query: str, where: Where, depth: int) -> Scored:
        """The depth best BM25 matches of the query that pass `where`; chunks with score 0 are left out."""

    def best_sentences(self, vector: np.ndarray, chunk_ids: Sequence[str]) -> Scored:
        """Each of these chunks scored by its best sentence (the largest inner product of the query
        vector with its sentences' vectors), best first; chunks without sentences are left out."""

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Add chunks, or replace those whose id is already held."""

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""

    def count(self) -> int:
        """How many chunks the backend holds."""

    def upsert_sentences(self, sentences: Sequence[Sentence], vectors: np.ndarray) -> None:
        """Add sentence spans (row i's vector is vectors[i]), or replace those whose id is already held."""

    def delete_sentences(self, ids: Sequence[str]) -> None:
        """Remove sentence spans by id; unknown ids are ignored."""

    def count_sentences(self) -> int:
        """How many sentence spans the backend holds."""
