"""The one interface every search backend offers the retriever.

A backend ranks chunks, by id: dense (inner product of normalised vectors) and BM25 (the
tokens of indexer/lexical.py, so both backends see the same words), each under the same
filters. Scores are the backend's own (cosine, BM25); the retriever fuses and re-scores them
(best sentence, priors, boosts) the same way whichever backend produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol, Sequence

import numpy as np

from indexer.records import Chunk

BACKENDS = ("local", "milvus")

Scored = list[tuple[str, float]]  # (chunk id, score), best first


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}")
    return name


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

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Add chunks, or replace those whose id is already held."""

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks by id; unknown ids are ignored."""

    def count(self) -> int:
        """How many chunks the backend holds."""
