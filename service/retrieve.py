"""Hybrid retrieval: BM25 and dense (FAISS) candidates, fused, filtered, de-duplicated.

Hybrid scores each candidate passage three ways, each min-max scaled over the candidates: BM25,
the passage's own vector, and its best sentence's vector (a passage with one sentence that
answers the question should not lose to one that is merely about the topic). Then soft priors:

- Questions often name a meeting ("in March 2018", "at the January 2019 meeting") or a council;
  those boost passages from that meeting or council, not a hard filter, so a wrong guess costs
  rank, not recall.
- "What did the board resolve/decide/agree" questions prefer resolutions; "what was the board
  asked to / recommended" questions prefer a report's recommendations.
- A passage of a few words (a heading left alone, a table label) answers nothing by itself.

Every weight here was chosen on evals/questions.jsonl; the README has the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from indexer.backends import SearchBackend, Where, open_backend
from indexer.backends.local import LocalBackend, columns_of
from indexer.embed import Encoder
from indexer.records import Chunk
from indexer.store import LoadedIndex
from service.question import Question, QuestionReader
from service.schemas import Filters

RETRIEVERS = ("bm25", "dense", "hybrid")
SHORT_WORDS = 10  # passages under this many words get the short-passage penalty


@dataclass(frozen=True)
class Hit:
    row: int  # row in the chunk store = FAISS id = BM25 row
    score: float
    chunk: Chunk


class UnknownRetriever(ValueError):
    pass


def where_of(f: Filters) -> Where:
    return Where(f.council, f.body, f.document_type, f.date_from, f.date_to, f.decisions_only)


class Retriever:
    def __init__(self, index: LoadedIndex, encoder: Encoder, *, candidates: int = 100, fusion: str = "rrf",
                 rrf_k: int = 60, dense_weight: float = 0.5, date_boost: float = 0.5, sentence_weight: float = 0.0,
                 kind_boost: float = 0.0, short_penalty: float = 0.0, backend: SearchBackend | None = None) -> None:
        if fusion not in ("rrf", "weighted"):
            raise ValueError(f"unknown fusion {fusion!r}: use 'rrf' or 'weighted'")
        self.index = index
        self.encoder = encoder
        # Candidates come from the backend, by chunk id; everything after that happens here, the
        # same for every backend.
        self.backend = backend if backend is not None else LocalBackend(index)
        self.candidates = candidates
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight
        self.date_boost = date_boost
        self.sentence_weight = sentence_weight if index.sentence_vectors is not None and len(index.sentences) else 0.0
        self.kind_boost = kind_boost
        self.short_penalty = short_penalty
        # Per-chunk columns, not Chunk objects: at a million chunks the index's chunk table reads
        # a chunk from disk when a hit needs it (indexer/store.py, ChunkTable).
        cols = columns_of(index.chunks)
        self._n = len(cols.ids)
        self._row_of = cols.row_of()
        self._cols = cols
        self._dates = cols.date
        undated = cols.date < 0
        days = [date.fromordinal(int(o)) for o in np.unique(cols.date[~undated])]
        by_day = {d.toordinal(): (d.year * 12 + d.month, d.year) for d in days}
        self._months = np.array([by_day[o][0] if o >= 0 else -1 for o in cols.date.tolist()], dtype=np.int64)
        self._years = np.array([by_day[o][1] if o >= 0 else -1 for o in cols.date.tolist()], dtype=np.int64)
        self._dedup_key = cols.text_key
        # Questions are read against the councils this index holds ("Barnet" names a council, not a topic).
        self.reader = QuestionReader(c for c in cols.councils if c)
        self._short = cols.words < SHORT_WORDS
        self._first_sentence = index.first_sentence()  # chunk r's sentences: rows [first[r], first[r + 1])

    @classmethod
    def from_settings(cls, index: LoadedIndex, encoder: Encoder, settings, **overrides) -> "Retriever":
        """A retriever configured as the service configures it (evals and benchmarks use this too)."""
        s = settings
        if "backend" not in overrides:
            overrides["backend"] = open_backend(getattr(s, "backend", "local"), index,
                                                uri=getattr(s, "milvus_uri", None), token=getattr(s, "milvus_token", None))
        return cls(index, encoder, **{
            "candidates": s.candidates, "fusion": s.fusion, "rrf_k": s.rrf_k, "dense_weight": s.dense_weight,
            "date_boost": s.date_boost, "sentence_weight": s.sentence_weight, "kind_boost": s.kind_boost,
            "short_penalty": s.short_penalty, **overrides})

    # ------------------------------------------------------------ public

    def search(self, question: Question | str, k: int = 10, filters: Filters | None = None, mode: str = "hybrid",
               use_hints: bool = True, query_vector: np.ndarray | None = None) -> list[Hit]:
        """The k best passages for a question, best first, each passage text at most once.

        question: a Question read by the caller, or plain search words (read here).
        query_vector: the query already encoded by the caller (the answerer needs it too), so
        the model runs once per question.
        """
        if isinstance(question, str):
            question = self.reader.read(question)
        query = question.query
        if mode not in RETRIEVERS:
            raise UnknownRetriever(f"unknown retriever {mode!r}: use one of {', '.join(RETRIEVERS)}")
        if self._n == 0:
            return []
        where = where_of(filters or Filters())
        depth = self.candidates
        fused: dict[int, float] = {}
        hybrid = mode == "hybrid"
        passage_share = 1.0 - self.sentence_weight if hybrid else 1.0
        if hybrid or mode == "dense":
            query_vector = self.encode_query(query) if query_vector is None else query_vector
        if mode in ("bm25", "hybrid"):
            self._add(fused, self._rows(self.backend.lexical(query, where, depth)), hybrid, (1.0 - self.dense_weight) * passage_share)
        if mode in ("dense", "hybrid"):
            self._add(fused, self._rows(self.backend.dense(query_vector, where, depth)), hybrid, self.dense_weight * passage_share)
        if hybrid and self.sentence_weight and fused:
            self._add(fused, self._best_sentences(list(fused), query_vector), True, self.sentence_weight)
        if hybrid and fused:
            self._priors(fused, question)
        if use_hints and fused:
            self._boost(fused, question)
        order = sorted(fused.items(), key=lambda kv: -kv[1])
        hits: list[Hit] = []
        seen: set[str] = set()
        for row, score in order:
            key = int(self._dedup_key[row])
            if key in seen:
                continue  # the same passage reached twice (a report and its copy in a pack)
            seen.add(key)
            hits.append(Hit(row, float(score), self.index.chunks[row]))
            if len(hits) == k:
                break
        return hits

    # ------------------------------------------------------------ internals

    def _rows(self, ranked: list[tuple[str, float]]) -> list[tuple[int, float]]:
        # A chunk id this chunk store does not know (a backend published from a newer build than the
        # one loaded here) cannot be shown: it is passed over.
        return [(self._row_of[i], score) for i, score in ranked if i in self._row_of]

    def sentences_of(self, row: int) -> range:
        """Indices into index.sentences of chunk row's sentences, in text order."""
        return range(int(self._first_sentence[row]), int(self._first_sentence[row + 1]))

    def encode_query(self, query: str) -> np.ndarray:
        return self.encoder.encode([query])[0]

    def _best_sentences(self, rows: list[int], query_vector: np.ndarray) -> list[tuple[int, float]]:
        """Each candidate passage scored by its best sentence, best first (by the backend: the
        folder's sentence vectors, or Milvus's sentence collection)."""
        ids = self._cols.ids
        return self._rows(self.backend.best_sentences(query_vector, [ids[r] for r in rows]))

    def _priors(self, fused: dict[int, float], question: Question) -> None:
        """Intent and length priors, scaled to the best fused score like the meeting boost."""
        if not (self.kind_boost or self.short_penalty):
            return
        want = {"decision": "resolution", "proposal": "recommendation"}.get(question.intent or "")
        kinds = self._cols.kinds
        want_code = kinds.index(want) if want in kinds else -1
        top = max(fused.values())
        for row in fused:
            if want and self._cols.kind[row] == want_code:
                fused[row] += self.kind_boost * top
            if self._short[row]:
                fused[row] -= self.short_penalty * top

    def _add(self, fused: dict[int, float], ranked: list[tuple[int, float]], hybrid: bool, weight: float) -> None:
        if not ranked:
            return
        if not hybrid:
            for row, score in ranked:
                fused[row] = score
            return
        if self.fusion == "rrf":
            for rank, (row, _) in enumerate(ranked):
                fused[row] = fused.get(row, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        else:
            top = ranked[0][1]
            low = ranked[-1][1]
            span = (top - low) or 1.0
            for row, score in ranked:
                fused[row] = fused.get(row, 0.0) + weight * (score - low) / span

    def _boost(self, fused: dict[int, float], hints: Question) -> None:
        if not (hints.dates or hints.month_years or hints.years or hints.councils) or self.date_boost == 0:
            return
        top = max(fused.values())
        rows = np.fromiter(fused.keys(), dtype=np.int64)
        bonus = np.zeros(rows.size)
        if hints.dates:
            bonus += np.isin(self._dates[rows], [d.toordinal() for d in hints.dates]) * 1.0
        if hints.month_years:
            bonus += np.isin(self._months[rows], [y * 12 + m for y, m in hints.month_years]) * 1.0
        elif hints.years:
            bonus += np.isin(self._years[rows], list(hints.years)) * 0.5
        if hints.councils:
            named = {c.lower() for c in hints.councils}
            codes = [i for i, c in enumerate(self._cols.councils) if c.lower() in named]
            bonus += np.isin(self._cols.council[rows], codes) * 0.5
        # Scaled to the best fused score so the boost means the same for RRF and raw scores.
        scale = self.date_boost * top * 0.5
        for row, b in zip(rows, bonus):
            if b:
                fused[int(row)] += scale * b

