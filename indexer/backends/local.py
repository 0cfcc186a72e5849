"""The local backend: the index folder's FAISS and bm25s files (indexer/store.py), the default.

Filters are a boolean mask over chunk rows, applied inside FAISS (an ID selector) and to the
BM25 scores, so a filter never costs recall (on an HNSW index, a narrow filter can: the graph
walk passes over rows it may not return; see README, "A million chunks"). Best sentences are
read from the folder's sentence vectors (a chunk's sentences are one run of rows). Writes are
not by id: the indexer writes a whole new build folder and swaps it in (store.write_index),
which is what keeps it atomic.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from indexer.backends.base import Scored, Sentence, Where
from indexer.records import Chunk
from indexer.store import ChunkColumns


WRITTEN_WHOLE = "the local index is written whole: build it with `python -m indexer build`"


def columns_of(chunks) -> ChunkColumns:
    """The chunk store's search columns (cached by a ChunkTable), or computed from a plain list."""
    return chunks.columns() if hasattr(chunks, "columns") else ChunkColumns.of(chunks)


class LocalBackend:
    name = "local"

    def __init__(self, index) -> None:
        self.index = index
        self._cols = columns_of(index.chunks)
        self._ids = self._cols.ids
        self._n = len(self._ids)
        self._hnsw = (index.manifest.get("dense_index") or {}).get("kind") == "hnsw"
        self._last: tuple[Where, np.ndarray] | None = None
        self._first_sentence = index.first_sentence()  # chunk r's sentences: rows [first[r], first[r + 1])

    def mask(self, f: Where) -> np.ndarray:
        # A hybrid search asks for the same filters' mask twice (BM25, then dense); at a million
        # chunks a council's substring match over every row is worth not doing again.
        last = self._last
        if last is not None and last[0] == f:
            return last[1]
        cols = self._cols
        m = np.ones(self._n, dtype=bool)
        # Councils, bodies, types and kinds are codes into a few labels: each test runs per label.
        if f.council:
            m &= cols.matching("council", lambda v, want=f.council.lower(): want in v.lower())
        if f.body:
            m &= cols.matching("body", lambda v, want=f.body.lower(): want in v.lower())
        if f.document_type:
            m &= cols.matching("document_type", lambda v: v == f.document_type)
        if f.date_from:
            m &= cols.date >= f.date_from.toordinal()
        if f.date_to:
            m &= (cols.date >= 0) & (cols.date <= f.date_to.toordinal())
        if f.decisions_only:
            m &= cols.matching("kind", lambda v: v == "resolution")
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
        sel = faiss.IDSelectorBatch(allowed.astype(np.int64)) if allowed.size < self._n else None
        if self._hnsw:
            # HNSW takes only its own parameter type, and searches no deeper than efSearch even
            # when asked for more rows: at least `depth` deep, so the candidates are all real ones.
            ef = max(depth, self.index.faiss_index.hnsw.efSearch)
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef) if sel is not None else faiss.SearchParametersHNSW(efSearch=ef)
        else:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        scores, rows = self.index.faiss_index.search(q, depth, params=params)
        return [(self._ids[int(i)], float(s)) for i, s in zip(rows[0], scores[0]) if i >= 0]

    def best_sentences(self, vector: np.ndarray, chunk_ids: Sequence[str]) -> Scored:
        vecs = self.index.sentence_vectors
        if vecs is None or not chunk_ids:
            return []
        row_of = self._cols.row_of()
        rows_a = np.fromiter((row_of[i] for i in chunk_ids if i in row_of), dtype=np.int64)
        lo, hi = self._first_sentence[rows_a], self._first_sentence[rows_a + 1]
        has = hi > lo
        if not has.any():
            return []
        rows_a, lo, hi = rows_a[has], lo[has], hi[has]
        # One matrix product over the candidates' sentences, then the max within each passage's run.
        lengths = hi - lo
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        take = np.repeat(lo - offsets, lengths) + np.arange(lengths.sum())
        sims = vecs[take] @ np.asarray(vector, dtype=np.float32)
        best = np.maximum.reduceat(sims, offsets)
        order = np.argsort(-best, kind="stable")
        return [(self._ids[int(rows_a[i])], float(best[i])) for i in order]

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        raise NotImplementedError(WRITTEN_WHOLE)

    def delete(self, ids: Sequence[str]) -> None:
        raise NotImplementedError(WRITTEN_WHOLE)

    def count(self) -> int:
        return self._n

    def upsert_sentences(self, sentences: Sequence[Sentence], vectors: np.ndarray) -> None:
        raise NotImplementedError(WRITTEN_WHOLE)

    def delete_sentences(self, ids: Sequence[str]) -> None:
        raise NotImplementedError(WRITTEN_WHOLE)

    def count_sentences(self) -> int:
        return len(self.index.sentences)
