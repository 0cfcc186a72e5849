"""Decision records as precedent: ranked search, filters, timeline.

Ranking uses the same two signals as passage search: BM25 over the decision's own text and
item title, and the dense similarity of the chunks that hold it (a resolution block is kept
whole in one chunk when the model allows, so its vector is the resolution's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from indexer.records import Decision
from indexer.store import LoadedIndex
from service.question import Question
from service.retrieve import Retriever

MIN_DENSE = 0.35  # below this cosine a decision is not counted as matching a query on meaning alone


@dataclass(frozen=True)
class DecisionQuery:
    q: Question | str | None = None  # search words, or a question the caller has read already
    council: str | None = None
    body: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    kind: str | None = None


class DecisionSearch:
    def __init__(self, index: LoadedIndex, retriever: Retriever) -> None:
        self.index = index
        self.retriever = retriever
        self.by_id = {d.id: d for d in index.decisions}
        # Chunk rows covering each decision span, for its dense score.
        # One pass over the chunks (a million of them are read from disk, not held), by document.
        wanted = {d.doc_id for d in index.decisions}
        spans: dict[str, list[tuple[int, int, int]]] = {doc: [] for doc in wanted}
        if wanted:
            for i, c in enumerate(index.chunks):
                if c.doc_id in wanted:
                    spans[c.doc_id].append((i, c.char_start, c.char_end))
        self._rows: list[np.ndarray] = []
        for d in index.decisions:
            rows = [i for i, a, b in spans[d.doc_id] if a < d.char_end and b > d.char_start]
            self._rows.append(np.array(rows, dtype=np.int64))
        self._rows_by_id = {d.id: rows for d, rows in zip(index.decisions, self._rows)}

    def search(self, query: DecisionQuery, query_vector: np.ndarray | None = None) -> list[tuple[Decision, float | None]]:
        """Matching decisions: by relevance to q (ties newest first), or newest first without q.

        query_vector: q already encoded by the caller, so the model does not run twice.
        """
        pool = [i for i, d in enumerate(self.index.decisions) if self._keep(d, query)]
        if not query.q:
            pool.sort(key=lambda i: self._newest_key(self.index.decisions[i]))
            return [(self.index.decisions[i], None) for i in pool]
        question = query.q if isinstance(query.q, Question) else self.retriever.reader.read(query.q)
        scores = self._scores(question, query_vector)
        matched = [i for i in pool if scores[i] is not None]
        matched.sort(key=lambda i: (-round(scores[i], 6), self._newest_key(self.index.decisions[i])))
        return [(self.index.decisions[i], scores[i]) for i in matched]

    def rows_of(self, decision_id: str) -> np.ndarray:
        """Chunk rows whose spans overlap the decision's span."""
        return self._rows_by_id.get(decision_id, np.array([], dtype=np.int64))

    def timeline(self, query: DecisionQuery, limit: int = 200) -> list[Decision]:
        found = [d for d, _ in self.search(query)][:limit]
        return sorted(found, key=lambda d: (d.meeting_date or date.min, d.char_start))

    def _keep(self, d: Decision, f: DecisionQuery) -> bool:
        if f.kind and d.kind != f.kind:
            return False
        if f.council and f.council.lower() not in (d.council or "").lower():
            return False
        if f.body and f.body.lower() not in (d.body or "").lower():
            return False
        if f.date_from and (d.meeting_date is None or d.meeting_date < f.date_from):
            return False
        if f.date_to and (d.meeting_date is None or d.meeting_date > f.date_to):
            return False
        return True

    @staticmethod
    def _newest_key(d: Decision):
        return (-(d.meeting_date.toordinal() if d.meeting_date else 0), d.doc_id, d.char_start)

    def _scores(self, question: Question, qv: np.ndarray | None = None) -> list[float | None]:
        n = len(self.index.decisions)
        if n == 0:
            return []
        lexical = self.index.decisions_bm25.scores(question.query) if self.index.decisions_bm25 else np.zeros(n)
        if qv is None:
            qv = self.retriever.encode_query(question.query)
        dense = np.array([float(np.max(self.index.vectors[r] @ qv)) if r.size else 0.0 for r in self._rows])
        top = float(lexical.max()) or 1.0
        out: list[float | None] = []
        for i, d in enumerate(self.index.decisions):
            if lexical[i] <= 0 and dense[i] < MIN_DENSE:
                out.append(None)
                continue
            score = 0.5 * lexical[i] / top + 0.5 * dense[i]
            if d.meeting_date and (
                (d.meeting_date.year, d.meeting_date.month) in question.month_years or d.meeting_date in question.dates
            ):
                score += 0.25
            out.append(score)
        return out
