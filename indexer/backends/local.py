"""The local backend: the index folder's FAISS and bm25s files (indexer/store.py), the default.

Filters are a boolean mask over chunk rows, applied inside FAISS (an ID selector) and to the
BM25 scores, so a filter never costs recall. Writes are not by id: the indexer writes a whole
new build folder and swaps it in (store.write_index), which is what keeps it atomic.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from indexer.backends.base import Scored, Where
from indexer.records import Chunk


class LocalBackend:
    name = "local"

    def __init__(self, index) -> None:
        self.index = index
        chunks = index.chunks
        self._ids = [c.id for c in chunks]
        self._n = len(chunks)
        self._councils = np.array([(c.council or "").lower() for c in chunks])
        self._bodies = np.array([(c.body or "").lower() for c in chunks])
        self._types = np.array([c.document_type for c in chunks])
        self._kinds = np.array([c.kind for c in chunks])
        self._dates = np.array([c.meeting_date.toordinal() if c.meeting_date else -1 for c in chunks])
        self._last: tuple[Where, np.ndarray] | None = None

    def mask(self, f: Where) -> np.ndarray:
        # A hybrid search asks for the same filters' mask twice (BM25, then dense); at a million
        # chunks a council's substring match over every row is worth not doing again.
        last = self._last
        if last is not None and last[0] == f:
            return last[1]
        m = np.ones(self._n, dtype=bool)
        if f.council:
            m &= np.char.find(self._councils, f.council.lower()) >= 0
        if f.body:
            m &= np.char.find(self._bodies, f.body.lower()) >= 0
        if f.document_type:
            m &= self._types == f.document_type
        if f.date_from:
            m &= self._dates >= f.date_from.toordinal()
        if f.date_to:
            m &= (self._dates >= 0) & (self._dates <= f.date_to.toordinal())
        if f.decisions_only:
            m &= self._kinds == "resolution"
        m.flags.writeable = False  # shared by the requests that ask for the same filters
        self._last = (f, m)
        return m

    def lexical(self, query: str, where: Where, depth: int) -> Scored:
        mask = self.mask(where)
        depth = min(depth, int(mask.sum()))
        if depth == 0:
            return []
        scores = np.where(mask, self.index.bm25.scores(query), -1.0)
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[r], float(scores[r])) for r in top if scores[r] > 0]

    def dense(self, vector: np.ndarray, where: Where, depth: int) -> Scored:
        import faiss

        mask = self.mask(where)
        allowed = np.flatnonzero(mask)
        depth = min(depth, allowed.size)
        if depth == 0:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        params = None
        if allowed.size < self._n:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed.astype(np.int64)))
        scores, rows = self.index.faiss_index.search(q, depth, params=params)
        return [(self._ids[int(i)], float(s)) for i, s in zip(rows[0], scores[0]) if i >= 0]

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        raise NotImplementedError("the local index is written whole: build it with `python -m indexer build`")

    def delete(self, ids: Sequence[str]) -> None:
        raise NotImplementedError("the local index is written whole: build it with `python -m indexer build`")

    def count(self) -> int:
        return self._n
