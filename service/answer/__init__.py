"""Answers for the chat box: short, every statement cited with an exact quote.

The question is read once (service/question.py); then selection (select.py) gathers the sentences
of the best passages, the judge (service/judge.py) says how likely each is to answer the question,
the checks (checks.py) test what the question asks for against the chosen quotes, and composition
(compose.py) names the meeting each quote comes from, or says why the papers do not answer. Without
a trained judge the older scorer (meaning + word overlap) decides. An optional OpenAI-compatible
endpoint can write the answer instead; any failure falls back to the extractive answer.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
from dataclasses import dataclass

import numpy as np

from service.answer.checks import unanswered
from service.answer.compose import NO_RESOLUTION, compose, declined, unsure
from service.answer.select import Selector, Sentence
from service.config import ServiceSettings
from service.convert import search_result, with_source_urls
from service.decisions import DecisionSearch
from service.judge import RARE_PIECE, Candidate, Judge, Vocabulary, features, token_features
from service.tokens import TokenEncoder
from service.question import Question
from service.retrieve import Hit, Retriever
from service.schemas import AskRequest, AskResponse, Filters

log = logging.getLogger(__name__)

__all__ = ["Answerer", "Gathered", "Sentence"]


@dataclass(frozen=True)
class Gathered:
    """Everything an answer is chosen from: the question read, its filters, passages and candidates."""

    question: Question
    filters: Filters
    council: str | None  # the one council the question names, made a filter
    query_vector: np.ndarray
    hits: list[Hit]
    candidates: list[Sentence]
    vectors: np.ndarray  # one row per candidate


class Answerer:
    def __init__(self, settings: ServiceSettings, retriever: Retriever, decisions: DecisionSearch, encoder,
                 judge: Judge | None = None) -> None:
        self.settings = settings
        self.retriever = retriever
        self.decisions = decisions
        self.encoder = encoder
        self.selector = Selector(settings, retriever, decisions, encoder)
        self.checks = settings.enabled_checks()
        self.judge = judge
        index = retriever.index
        if judge is not None:
            _ = self.vocab  # at start, not on the first member's question
            if judge.uses_tokens:
                _ = self.token_encoder
        self._row_of = {c.id: i for i, c in enumerate(index.chunks)}

    @functools.cached_property
    def vocab(self) -> Vocabulary:
        """Word rarity over the index's passages, for the judge's coverage features (built on first use)."""
        return Vocabulary([f"{c.text} {' '.join(c.heading_path)}" for c in self.retriever.index.chunks])

    @functools.cached_property
    def token_encoder(self) -> TokenEncoder:
        """The encoder's word-piece vectors, for the judge's token match (exported on first use)."""
        from indexer.embed import resolve_model_path

        enc = TokenEncoder(resolve_model_path(self.encoder.name))
        enc.fit_idf([f"{c.text} {' '.join(c.heading_path)}" for c in self.retriever.index.chunks])
        return enc

    def read(self, req: AskRequest) -> Question:
        """The request's question, read with the conversation before it."""
        return self.retriever.reader.read(req.question, [turn.question for turn in req.history])

    def gather(self, req: AskRequest) -> Gathered:
        q = self.read(req)
        filters, named = self._council_named(q, req.filters)
        qv = self.retriever.encode_query(q.query)
        hits = self.retriever.search(q, self.settings.ask_passages, filters, query_vector=qv)
        candidates = self.selector.candidates(q, hits, qv, filters) if hits else []
        vectors = self.selector.vectors(candidates) if candidates else np.zeros((0, qv.size), np.float32)
        return Gathered(q, filters, named, qv, hits, candidates, vectors)

    def judge_features(self, g: Gathered, tokens: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The judge's features for each candidate (training reads them through here too); with tokens,
        the token-level match too (a model pass over the candidates: see README, "The judge")."""
        top = g.hits[0].score or 1.0 if g.hits else 1.0
        rank = {h.chunk.id: (i, max(0.0, h.score / top)) for i, h in enumerate(g.hits)}
        cands = []
        for s, vec, row in zip(g.candidates, g.vectors, self.candidate_rows(g)):
            r, score = rank.get(s.chunk.id, (0, 1.0))  # a decision record counts as a best passage
            cands.append(Candidate(s.text, vec, int(row), r, score, s.index < 0))
        index = self.retriever.index
        pair, scalars = features(g.question, g.query_vector, cands, index.chunks, index.vectors, self.vocab)
        if not tokens:
            return pair, scalars
        tok = self.token_encoder
        qt, idf, rare = tok.question(g.question.query, RARE_PIECE)
        ct = tok.encode([s.text for s in g.candidates])
        match = token_features(qt, ct, [c.chunk_row for c in cands], idf, rare)
        return pair, np.concatenate([scalars, match], axis=1)

    def candidate_rows(self, g: Gathered) -> np.ndarray:
        """Each candidate's passage (its chunk row; -1 for a decision record outside the index's chunks)."""
        return np.asarray([self._row_of.get(s.chunk.id, -1) for s in g.candidates], dtype=np.int64)

    def judge_scores(self, g: Gathered, features: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The judge's probability that each candidate answers (both stages when it has its second)."""
        from service.crossjudge import pair_text

        pair, scalars = features if features is not None else self.judge_features(g, self.judge.uses_tokens)
        # The texts only the second stage reads (not built when the judge has none, as shipped).
        texts = [pair_text(c) for c in g.candidates] if self.judge.cross is not None else []
        return self.judge.scores(g.question.query, pair, scalars, texts)

    def search_reranked(self, text: str, k: int, filters: Filters | None = None, depth: int = 20) -> list[Hit]:
        """The first `depth` passages of the hybrid search, reordered by the judge; the best k.
        What `/search?rerank=true` and the evals' "reranked" retriever run."""
        q = self.retriever.reader.read(text)
        qv = self.retriever.encode_query(q.query)
        first = self.retriever.search(q, max(k, depth), filters, query_vector=qv)
        return self.rerank(q, first, qv)[:k]

    def rerank(self, q: Question, hits: list[Hit], qv: np.ndarray) -> list[Hit]:
        """The hits reordered by the judge: each passage by its best sentence's probability of
        answering the question (ties keep the first-stage order). Without a judge, unchanged."""
        if self.judge is None or not hits:
            return hits
        candidates = self.selector.candidates(q, hits, qv, Filters())
        vectors = self.selector.vectors(candidates) if candidates else np.zeros((0, qv.size), np.float32)
        g = Gathered(q, Filters(), None, qv, hits, candidates, vectors)
        p = self.judge_scores(g) if candidates else np.zeros(0)
        best: dict[str, float] = {}
        for c, x in zip(candidates, p):
            best[c.chunk.id] = max(best.get(c.chunk.id, 0.0), float(x))
        order = sorted(range(len(hits)), key=lambda i: (-best.get(hits[i].chunk.id, 0.0), i))
        return [dataclasses.replace(hits[i], score=best.get(hits[i].chunk.id, 0.0)) for i in order]

    def answer(self, req: AskRequest) -> AskResponse:
        """The answer to a request, its citations linking back to where each paper was published."""
        return with_source_urls(self.retriever.index, self._answer(req))

    def _answer(self, req: AskRequest) -> AskResponse:
        g = self.gather(req)
        q = g.question
        passages = [search_result(self.retriever.index, i + 1, h.score, h.chunk) for i, h in enumerate(g.hits[:5])]
        papers = f"{g.council} papers" if g.council else "board papers"
        if not g.candidates:
            return declined("weak_evidence", papers, passages)
        s = self.settings
        if self.judge is not None:
            feats = self.judge_features(g, self.judge.uses_tokens)
            p = self.judge_scores(g, feats)
            scored = [dataclasses.replace(c, score=float(x)) for c, x in zip(g.candidates, p)]
            # Found or not is decided over the whole candidate list when the judge has its answerability
            # model, else from the best candidate's calibrated probability (service/judge.py).
            confidence = self.judge.confidence(p, feats[1], self.candidate_rows(g))
            chosen = self.selector.choose(scored, g.hits, s.judge_quote_margin, 0.0)
            found = confidence >= s.judge_threshold
        else:
            scored = self.selector.score(q, g.candidates, g.vectors, g.query_vector)
            confidence = None
            chosen = self.selector.choose(scored, g.hits, s.ask_quote_margin, s.ask_passage_weight)
            found = max(c.score for c in scored) >= s.found_threshold
        # A named check that fails says more than "weak evidence" (the year asked is not reached, the
        # figure is not given), so it is asked first, whether or not the evidence would pass.
        reason, periods = unanswered(q, chosen, self.checks) if chosen else (None, [])
        if reason:
            return declined(reason, papers, passages, periods, confidence=confidence)
        if not found or not chosen:
            if confidence is not None and confidence >= s.judge_unsure and chosen:
                return unsure(papers, chosen, passages, confidence)
            return declined("weak_evidence", papers, passages, confidence=confidence)
        if s.llm_url:
            try:
                from service.llm import llm_answer

                written = llm_answer(s, q.text, g.hits[:6])
                if written is not None:
                    return AskResponse(answer=written[0], found=True, citations=written[1], passages=passages,
                                       answerer="llm", confidence=confidence)
            except Exception as e:  # any LLM failure falls back to the extractive answer
                log.warning("LLM answer failed, using extractive answer: %s", e)
        answer, citations = compose(chosen)
        if q.wants_decision and not any(c.chunk.kind == "resolution" for c in chosen):
            # Asked what was resolved, but nothing quoted is a resolution: say so rather than
            # letting a report's proposal or a discussion read like the board's decision.
            answer = f"{NO_RESOLUTION}\n{answer}"
        return AskResponse(answer=answer, found=True, citations=citations, passages=passages, confidence=confidence)

    def _council_named(self, q: Question, filters: Filters) -> tuple[Filters, str | None]:
        """A question that names one council is answered from that council's papers only.

        Search treats a named council as a soft boost, which is right for a ranked list; an answer
        is different: "what did Westminster decide on a SEND strategy?" must not be answered with
        Barnet's decision, so the council becomes a filter (unless the caller set one).
        """
        if "council" not in self.checks or filters.council or len(q.councils) != 1:
            return filters, None
        return filters.model_copy(update={"council": q.councils[0]}), q.councils[0]

    def stream_events(self, req: AskRequest):
        """Server-sent events: the answer in pieces, then the whole response."""
        return self.events_for(self.answer(req))

    @staticmethod
    def events_for(result: AskResponse):
        """The server-sent events of an answer already made."""
        for piece in re.findall(r"\S+\s*", result.answer):
            yield f"event: delta\ndata: {json.dumps({'text': piece})}\n\n"
        yield f"event: done\ndata: {result.model_dump_json()}\n\n"
