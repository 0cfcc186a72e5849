"""Selection: from the retrieved passages, the sentences that answer the question, and how well.

Candidates are the sentences of the top passages (with the vectors the indexer stored for them)
and, for a decision question, whole resolutions and the best decision records on its topic. Each
is scored by meaning (its vector against the question's) and the share of question words it holds;
up to ask_max_quotes within ask_quote_margin of the best are quoted, ordered with their passage's
retrieval score too. The evidence score that decides found/declined leaves the retrieval score
out: adding it raised the evidence score of unanswerable questions as much as that of answerable ones.
Every number here is a setting (service/config.py), beside the threshold it was tuned with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from indexer.lexical import tokenize
from indexer.records import Chunk
from indexer.sentences import embed_text as sentence_embed_text
from service.question import Question
from service.retrieve import Hit

QUOTE_WORDS = 40  # a quote shorter than this many words takes in the sentences after it (same passage)


@dataclass(frozen=True)
class Sentence:
    chunk: Chunk
    start: int  # into the document text
    end: int
    text: str
    score: float
    index: int = -1  # into index.sentences, or -1 for text quoted whole


class Selector:
    def __init__(self, settings, retriever, decisions, encoder) -> None:
        self.settings = settings
        self.retriever = retriever
        self.decisions = decisions
        self.encoder = encoder

    def candidates(self, q: Question, hits: list[Hit], qv: np.ndarray, filters) -> list[Sentence]:
        """The sentences of the top passages, and for a decision question whole resolutions and
        the best decision records on its topic."""
        index = self.retriever.index
        texts = index.texts
        out: list[Sentence] = []
        for hit in hits:
            c = hit.chunk
            if q.wants_decision and c.kind == "resolution":
                # A resolution is quoted whole: its numbered parts are the answer.
                out.append(Sentence(c, c.char_start, c.char_end, c.text, 0.0))
                continue
            for i in self.retriever.sentences_of(hit.row):
                x = index.sentences[i]
                text = texts[c.doc_id][x.start:x.end]
                if len(text.split()) >= 4 and not is_label(text, c):
                    out.append(Sentence(c, x.start, x.end, text, 0.0, i))
        if q.wants_decision:
            out += self._decision_records(q, qv, filters, out)
        return out

    def vectors(self, candidates: list[Sentence]) -> np.ndarray:
        """The candidates' vectors: stored at build time for sentences; text quoted whole (a resolution,
        a decision record) is encoded here, a handful per question."""
        index = self.retriever.index
        out = np.empty((len(candidates), index.vectors.shape[1]), dtype=np.float32)
        have = np.array([c.index >= 0 for c in candidates], dtype=bool)
        if have.any():
            out[have] = index.sentence_vectors[[c.index for c in candidates if c.index >= 0]]
        if not have.all():
            out[~have] = self.encoder.encode([sentence_embed_text(c.chunk, c.text) for c in candidates if c.index < 0])
        return out

    def score(self, q: Question, candidates: list[Sentence], vectors: np.ndarray, qv: np.ndarray) -> list[Sentence]:
        """Each candidate with its evidence score: meaning and word overlap, resolution bonus, short penalty."""
        s = self.settings
        dense = vectors @ qv
        scored = []
        for c, d in zip(candidates, dense):
            overlap = len(q.terms & set(tokenize(c.text))) / max(1, len(q.terms))
            score = s.ask_dense_weight * float(d) + s.ask_overlap_weight * overlap
            if q.wants_decision and c.chunk.kind == "resolution":
                score += s.ask_resolution_bonus  # only resolutions on the question's topic got this far
            if len(c.text.split()) < s.ask_short_words:
                score -= s.ask_short_penalty  # a label or table cell rarely answers anything on its own
            scored.append(dataclasses.replace(c, score=score))
        return scored

    def choose(self, scored: list[Sentence], hits: list[Hit], margin: float, passage_weight: float) -> list[Sentence]:
        """Up to ask_max_quotes within margin of the best, ordered with their passage's retrieval
        score times passage_weight (relative to the best passage's; a decision record counts as a
        best passage)."""
        s = self.settings
        top = hits[0].score or 1.0
        passage = {h.chunk.id: max(0.0, h.score / top) for h in hits[:s.ask_passages]}

        def rank_of(x: Sentence) -> float:
            return x.score + passage_weight * passage.get(x.chunk.id, 1.0)

        ordered = sorted(scored, key=lambda x: -rank_of(x))
        best = rank_of(ordered[0])
        chosen: list[Sentence] = []
        for x in ordered:
            if len(chosen) == s.ask_max_quotes or rank_of(x) < best - margin:
                break
            wide = self.widen(x)
            # Skipped: the same sentence again, one inside or running into a quote already chosen,
            # and one repeating a chosen quote's words (a summary paragraph repeated in the body).
            if any(overlaps(o, wide) or similar(o.text, x.text) or similar(o.text, wide.text) for o in chosen):
                continue
            chosen.append(wide)
        return chosen

    def widen(self, s: Sentence) -> Sentence:
        """A short sentence is quoted with the sentences after it in its passage until the quote has
        QUOTE_WORDS words, so a figure and what it refers to ("£772k ... For 2018/19 the fund grew
        to £1.1m") stay together; no quote grows past three times that."""
        if s.index < 0 or len(s.text.split()) >= QUOTE_WORDS:
            return s
        index = self.retriever.index
        text = index.texts[s.chunk.doc_id]
        end = s.end
        for i in range(s.index + 1, self.retriever.sentences_of(index.sentences[s.index].chunk_row).stop):
            words = len(text[s.start:index.sentences[i].end].split())
            if words > 3 * QUOTE_WORDS:
                break
            end = index.sentences[i].end
            if words >= QUOTE_WORDS:
                break
        return s if end == s.end else dataclasses.replace(s, end=end, text=text[s.start:end])

    def _decision_records(self, q: Question, qv: np.ndarray, filters, have: list[Sentence]) -> list[Sentence]:
        """The best decision records for the question, quoted whole, as candidates beside the passages.

        Passage search can rank a resolution below the report that led to it; the decision records
        (the same spans, searched on their own) put the board's actual decision in front of the
        sentence scorer whenever one matches.
        """
        from service.decisions import DecisionQuery

        f = filters
        dq = DecisionQuery(q=q, kind="decision", council=f.council, body=f.body, date_from=f.date_from,
                           date_to=f.date_to)
        out: list[Sentence] = []
        seen = {(s.chunk.doc_id, s.start) for s in have}
        chunks = self.retriever.index.chunks
        for d, _score in self.decisions.search(dq, query_vector=qv)[:self.settings.ask_decision_records]:
            if (d.doc_id, d.char_start) in seen:
                continue
            # Decision search matches loosely (any shared word, or meaning alone); the judge decides
            # whether a record answers the question.
            rows = self.decisions.rows_of(d.id)
            if rows.size == 0:
                continue
            # The chunk holding the decision carries its meeting (the minutes' own date) for the citation.
            chunk = next((chunks[r] for r in rows if chunks[r].kind == "resolution"), chunks[int(rows[0])])
            out.append(Sentence(chunk, d.char_start, d.char_end, d.text, 0.0))
        return out


def is_label(text: str, c: Chunk) -> bool:
    """A document title or heading repeated in the text is not an answer to anything."""
    t = " ".join(text.split()).strip().rstrip(":").lower()
    return t == (c.title or "").lower() or any(t == h.lower() for h in c.heading_path)


def overlaps(a: Sentence, b: Sentence) -> bool:
    return a.chunk.doc_id == b.chunk.doc_id and a.start < b.end and b.start < a.end


def similar(a: str, b: str) -> bool:
    ta, tb = set(tokenize(a)), set(tokenize(b))
    return bool(ta and tb) and len(ta & tb) / min(len(ta), len(tb)) > 0.8
