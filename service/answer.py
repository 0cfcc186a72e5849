"""Answers for the chat box: short, every statement cited with an exact quote.

Default answerer needs no LLM: it picks the sentences of the best passages that answer the
question and names the meeting each comes from. For "what did the board resolve/decide"
questions it prefers resolution text. When the evidence is weak it says so (found = false).
An optional OpenAI-compatible endpoint can write the answer instead; any failure falls back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.dates import MONTH_ALT, MONTH_YEAR, MONTHS, YEAR, YEAR_SPAN, find_month_years, format_date
from indexer.lexical import tokenize
from indexer.records import Chunk
from indexer.sentences import embed_text as sentence_embed_text
from service.config import ServiceSettings
from service.convert import search_result
from service.decisions import DecisionSearch
from service.retrieve import DECISION_Q, Hit, Retriever, wants
from service.schemas import AskCitation, AskRequest, AskResponse, Filters

log = logging.getLogger(__name__)

FOLLOW_UP = re.compile(r"(?i)^(and|what about|how about|also|same for|and what about)\b|\b(it|they|that|those|this|them)\b")
# Sentence selection, tuned on evals/questions.jsonl (see README, "/ask"): sentences come from the
# top 8 passages (the right one is in the top 8 more often than in the top 5), are scored by the
# dense similarity of heading+sentence to the question plus the share of question words they hold,
# and up to 4 within 0.2 of the best are quoted, ordered with their passage's retrieval score too.
# The evidence score that decides found/declined leaves the retrieval score out: adding it raised
# the evidence score of unanswerable questions as much as that of answerable ones.
SENTENCE_HITS = 8
DECISION_CANDIDATES = 2  # decision records offered to the scorer for "what did the board resolve" questions
MAX_QUOTES = 4
QUOTE_MARGIN = 0.2
W_DENSE, W_OVERLAP, RESOLUTION_BONUS, SHORT_PENALTY, SHORT_WORDS = 0.5, 0.2, 0.15, 0.1, 8
W_PASSAGE = 0.2  # weight of the passage's retrieval score when ordering quotes (not in the evidence score)
QUOTE_WORDS = 40  # a quote shorter than this many words takes in the sentences after it (same passage)
SHOWN_WORDS = 50  # words of a (non-resolution) quote shown in the answer; its citation holds all of it
# "How many / how much / what share" asks for a figure: quotes without one do not answer it, however
# close their topic ("what is the MMR vaccination uptake rate in Westminster?" drew the item's title
# and a resolution asking for uptake data). Every such question in the eval sets, tuning and
# held-out, has a number in its gold evidence.
ASKS_FIGURE = re.compile(r"(?i)\bhow (many|much|long|big)\b|\bwhat (share|proportion|percentage|number|rate|amount)\b"
                         r"|\bwhat (is|are|was|were)\b[^?]*\b(rates?|budget|cost|total|figure|percentage|proportion|uptake|amount)\b")
FIGURE = re.compile(r"(?i)\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                    r"fifty|hundred|thousand|million|half|third|quarter|dozen|double|twice|\w+fold)\b")
QUARTER = re.compile(r"(?i)\b(?:q|quarter\s*)([1-4])\b")
# Digits that name a time or a place in the papers rather than a quantity: years ("2021-22"),
# quarters, dates ("31 July", "Mar-18"), paragraph numbers ("1.20 ") and references ("Minute 6",
# "pages 43 - 52", "Appendix 1").
NOT_A_FIGURE = re.compile(
    r"(?i)^\s*\d+(?:\.\d+)+\s"  # a paragraph number
    rf"|{YEAR_SPAN.pattern}|\bq[1-4]\b"  # a year, "2021-22", a quarter
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{MONTH_ALT})\b|\b(?:{MONTH_ALT})-\d\d\b"  # "31 July", "Mar-18"
    r"|\b(?:pages?|minute|item|paragraph|appendix|annex|section|table|chart|figure)\s+\d+(?:\s*-\s*\d+)?")
NO_RESOLUTION = ("I found no resolution on this in the minutes I have; "
                 "the nearest passages in the papers say:")
# Why a question was declined, and what the member is told. Past the evidence threshold, a decline
# says what is missing: the papers near the question are about it, but not for the period asked,
# give no figure, or record no decision of the board on it.
NEAREST = "The nearest passages are listed below in case they help."
DECLINED = {
    "weak_evidence": "The {papers} I have don't appear to cover this.",
    "period_not_covered": "The {papers} I have don't appear to cover this for {periods}: "
                          "the passages nearest to it are about other periods.",
    "no_figure": "The {papers} I have touch on this but don't appear to give the figure asked for.",
    "no_decision": "I found no decision of the board on this in the {papers} I have.",
}


@dataclass(frozen=True)
class Sentence:
    chunk: Chunk
    start: int  # into the document text
    end: int
    text: str
    score: float
    index: int = -1  # into index.sentences, or -1 for text quoted whole


class Answerer:
    def __init__(self, settings: ServiceSettings, retriever: Retriever, decisions: DecisionSearch, encoder) -> None:
        self.settings = settings
        self.retriever = retriever
        self.decisions = decisions
        self.encoder = encoder

    def contextual_query(self, req: AskRequest) -> str:
        """A follow-up ("and what about breast screening?") is read against the previous question."""
        q = req.question
        if req.history and (FOLLOW_UP.search(q) or len(tokenize(q)) <= 3):
            prev = req.history[-1].question
            return f"{q} {prev}"
        return q

    def answer(self, req: AskRequest) -> AskResponse:
        query = self.contextual_query(req)
        # "What was the board asked to agree" wants a report's proposal, not a resolution.
        wants_decision = wants(req.question) == "decision"
        filters, named = self._council_named(query, req.filters)
        qv = self.retriever.encode_query(query)
        hits = self.retriever.search(query, SENTENCE_HITS, filters, query_vector=qv)
        passages = [search_result(self.retriever.index, i + 1, h.score, h.chunk) for i, h in enumerate(hits[:5])]
        papers = f"{named} papers" if named else "board papers"
        if not hits:
            return _declined("weak_evidence", papers, [])
        topic = _topic_terms(query, self.retriever.council_terms)
        chosen, evidence = self._select(query, topic, hits, qv, wants_decision, filters)
        if evidence < self.settings.found_threshold or not chosen:
            return _declined("weak_evidence", papers, passages)
        reason, periods = _unanswered(req.question, chosen, topic, wants_decision)
        if reason:
            return _declined(reason, papers, passages, periods)
        if self.settings.llm_url:
            try:
                from service.llm import llm_answer

                written = llm_answer(self.settings, req.question, hits[:6])
                if written is not None:
                    return AskResponse(answer=written[0], found=True, citations=written[1], passages=passages,
                                       answerer="llm")
            except Exception as e:  # any LLM failure falls back to the extractive answer
                log.warning("LLM answer failed, using extractive answer: %s", e)
        answer, citations = self._compose(chosen)
        if wants_decision and not any(s.chunk.kind == "resolution" for s in chosen):
            # Asked what was resolved, but nothing quoted is a resolution: say so rather than
            # letting a report's proposal or a discussion read like the board's decision.
            answer = f"{NO_RESOLUTION}\n{answer}"
        return AskResponse(answer=answer, found=True, citations=citations, passages=passages)

    def _council_named(self, query: str, filters: Filters) -> tuple[Filters, str | None]:
        """A question that names one council is answered from that council's papers only.

        Search treats a named council as a soft boost, which is right for a ranked list; an answer
        is different: "what did Westminster decide on a SEND strategy?" must not be answered with
        Barnet's decision, so the council becomes a filter (unless the caller set one).
        """
        councils = self.retriever.hints(query).councils
        if filters.council or len(councils) != 1:
            return filters, None
        return filters.model_copy(update={"council": councils[0]}), councils[0]

    # ------------------------------------------------------------ selection

    def _select(self, query: str, topic: set[str], hits: list[Hit], qv: np.ndarray, wants_decision: bool,
                filters=None):
        q_terms = set(tokenize(query))
        index = self.retriever.index
        texts = index.texts
        # Sentences of the passages come with the vectors the indexer stored for them; only text
        # quoted whole (a resolution, a decision record) is encoded here, a handful per question.
        candidates: list[Sentence] = []
        for hit in hits[:SENTENCE_HITS]:
            c = hit.chunk
            if wants_decision and c.kind == "resolution":
                # A resolution is quoted whole: its numbered parts are the answer. One on another
                # topic is left out: "the board resolved ..." must answer the question asked.
                whole = Sentence(c, c.char_start, c.char_end, c.text, 0.0)
                if _on_topic(topic, whole):
                    candidates.append(whole)
                continue
            for i in self.retriever.sentences_of(hit.row):
                x = index.sentences[i]
                text = texts[c.doc_id][x.start:x.end]
                if len(text.split()) >= 4 and not _is_label(text, c):
                    candidates.append(Sentence(c, x.start, x.end, text, 0.0, i))
        if wants_decision:
            candidates += self._decision_candidates(query, topic, qv, filters, candidates)
        if not candidates:
            return [], 0.0
        dense = np.empty(len(candidates), dtype=np.float32)
        have = np.array([s.index >= 0 for s in candidates])
        if have.any():
            dense[have] = index.sentence_vectors[[s.index for s in candidates if s.index >= 0]] @ qv
        if not have.all():
            fresh = [sentence_embed_text(s.chunk, s.text) for s in candidates if s.index < 0]
            dense[~have] = self.encoder.encode(fresh) @ qv
        scored = []
        for s, d in zip(candidates, dense):
            terms = set(tokenize(s.text))
            overlap = len(q_terms & terms) / max(1, len(q_terms))
            score = W_DENSE * float(d) + W_OVERLAP * overlap
            if wants_decision and s.chunk.kind == "resolution":
                score += RESOLUTION_BONUS  # only resolutions on the question's topic got this far
            if len(s.text.split()) < SHORT_WORDS:
                score -= SHORT_PENALTY  # a label or table cell rarely answers anything on its own
            scored.append(dataclasses.replace(s, score=score))
        # Quotes are ordered with their passage's retrieval score as well (relative to the best
        # passage's; a decision record counts as a best passage), but whether the papers answer
        # at all is judged on the sentence score alone.
        top = hits[0].score or 1.0
        passage = {h.chunk.id: max(0.0, h.score / top) for h in hits[:SENTENCE_HITS]}

        def rank_of(s: Sentence) -> float:
            return s.score + W_PASSAGE * passage.get(s.chunk.id, 1.0)

        evidence = max(s.score for s in scored)
        scored.sort(key=lambda s: -rank_of(s))
        best = rank_of(scored[0])
        chosen: list[Sentence] = []
        for s in scored:
            if len(chosen) == MAX_QUOTES or rank_of(s) < best - QUOTE_MARGIN:
                break
            wide = self._widen(s)
            # Skipped: the same sentence again, one inside or running into a quote already chosen,
            # and one repeating a chosen quote's words (a summary paragraph repeated in the body).
            if any(_overlaps(o, wide) or _similar(o.text, s.text) or _similar(o.text, wide.text) for o in chosen):
                continue
            chosen.append(wide)
        return chosen, evidence

    def _widen(self, s: Sentence) -> Sentence:
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

    def _decision_candidates(self, query: str, topic: set[str], qv: np.ndarray, filters,
                             have: list[Sentence]) -> list[Sentence]:
        """The best decision records for the question, quoted whole, as candidates beside the passages.

        Passage search can rank a resolution below the report that led to it; the decision records
        (the same spans, searched on their own) put the board's actual decision in front of the
        sentence scorer whenever one matches.
        """
        from service.decisions import DecisionQuery

        f = filters
        dq = DecisionQuery(q=query, kind="decision", council=getattr(f, "council", None), body=getattr(f, "body", None),
                           date_from=getattr(f, "date_from", None), date_to=getattr(f, "date_to", None))
        out: list[Sentence] = []
        seen = {(s.chunk.doc_id, s.start) for s in have}
        chunks = self.retriever.index.chunks
        for d, _score in self.decisions.search(dq, query_vector=qv)[:DECISION_CANDIDATES]:
            if (d.doc_id, d.char_start) in seen:
                continue
            # Decision search matches loosely (any shared word, or meaning alone); a resolution
            # quoted as "the board resolved" must be about the question's topic, so more than half
            # of the topic words have to be in it.
            if not _holds_topic(topic, f"{d.item or ''} {d.text}"):
                continue
            rows = self.decisions.rows_of(d.id)
            if rows.size == 0:
                continue
            # The chunk holding the decision carries its meeting (the minutes' own date) for the citation.
            chunk = next((chunks[r] for r in rows if chunks[r].kind == "resolution"), chunks[int(rows[0])])
            out.append(Sentence(chunk, d.char_start, d.char_end, d.text, 0.0))
        return out

    # ------------------------------------------------------------ composition

    def _compose(self, chosen: list[Sentence]) -> tuple[str, list[AskCitation]]:
        """One line per quote, grouped under the paper and meeting they come from (named once), in
        the order those sources first appear; [n] follows the text so [1] is read first."""
        groups: dict[tuple[bool, str], list[Sentence]] = {}
        for s in chosen:
            groups.setdefault((s.chunk.kind == "resolution", _meeting_phrase(s.chunk)), []).append(s)
        lines, citations = [], []
        for (resolution, where), quotes in groups.items():
            lead = f"The board resolved ({where})" if resolution else where[0].upper() + where[1:]
            shown = []
            for s in quotes:
                c = s.chunk
                quote = s.text.strip()
                n = len(citations) + 1
                # A resolution is shown whole (its numbered parts are the answer); other quotes are
                # cut to SHOWN_WORDS in the answer, and the citation opens all of it.
                shown.append(f"“{_one_line(quote) if resolution else _shorten(quote)}” [{n}]")
                citations.append(AskCitation(
                    n=n, quote=quote, document_id=c.doc_id, title=c.title, council=c.council, body=c.body,
                    meeting_date=c.meeting_date, agenda_item=c.agenda_item, page=c.page,
                    char_start=s.start, char_end=s.start + len(quote),
                ))
            if len(shown) == 1:
                lines.append(f"{lead}: {shown[0]}")
            else:
                lines += [f"{lead}:", *(f"• {line}" for line in shown)]
        return "\n".join(lines), citations

    def stream_events(self, req: AskRequest):
        """Server-sent events: the answer in pieces, then the whole response."""
        result = self.answer(req)
        for piece in re.findall(r"\S+\s*", result.answer):
            yield f"event: delta\ndata: {json.dumps({'text': piece})}\n\n"
        yield f"event: done\ndata: {result.model_dump_json()}\n\n"


def _holds_topic(topic: set[str], text: str) -> bool:
    """More than half of the question's topic words are in the text (both of two, two of three)."""
    return bool(topic) and len(topic & set(tokenize(text))) * 2 > len(topic)


def _on_topic(topic: set[str], s: Sentence) -> bool:
    return _holds_topic(topic, f"{s.chunk.agenda_item or ''} {' '.join(s.chunk.heading_path)} {s.text}")


def _unanswered(question: str, chosen: list[Sentence], topic: set[str],
                wants_decision: bool) -> tuple[str | None, list[str]]:
    """Why quotes that passed the evidence threshold still do not answer the question, if they don't.

    Returns (reason, periods named by the question that no quote reaches); reason is a DECLINED key or None.
    Checks of what the question itself asks for, each reading a different part of the quotes: a
    named year or quarter must be reached (and, for a decision, a named month), a figure asked for
    must be given, and a decision asked about must be on the question's topic.
    """
    missing = _periods_missing(question, chosen) + (_meetings_missing(question, chosen) if wants_decision else [])
    if missing:
        return "period_not_covered", missing
    if not _figure_given(question, chosen):
        return "no_figure", []
    if wants_decision and not any(_on_topic(topic, s) for s in chosen):
        return "no_decision", []
    return None, []


def _meetings_missing(question: str, chosen: list[Sentence]) -> list[str]:
    """The months a decision question names ("at its November 2018 meeting") that no quote reaches,
    by its meeting's date or its own words ("the minutes of 18 September 2014 be agreed").

    A decision is dated by the meeting that made it, so here a named month must match: the 8 March
    2018 resolutions do not answer what the board decided in November 2018. Other questions are
    not held to months: a table's "Mar-18" answers "as at March 2018".
    """
    named = {m.group(0): (int(m.group(2)), MONTHS[m.group(1).lower()]) for m in MONTH_YEAR.finditer(question)}
    if not named:
        return []
    reached = {(s.chunk.meeting_date.year, s.chunk.meeting_date.month) for s in chosen if s.chunk.meeting_date}
    for s in chosen:
        reached.update(find_month_years(s.text))
    return [said for said, month in named.items() if month not in reached]


def _declined(reason: str, papers: str, passages: list, periods: Sequence[str] = ()) -> AskResponse:
    text = DECLINED[reason].format(papers=papers, periods=" or ".join(periods))
    return AskResponse(answer=f"{text} {NEAREST}", found=False, citations=[], passages=passages, reason=reason)


def _periods_missing(question: str, chosen: list[Sentence]) -> list[str]:
    """The years and quarters the question names that no quoted passage reaches (its text, headings,
    title or meeting date): "Band D council tax for 2024/25" is not answered by other years' figures,
    nor "at the end of Q3 2021-22" by Q2's. Months are not required: tables say "Mar-18", and a
    figure "by December 2018" comes from the January 2019 papers."""
    years, quarters = YEAR.findall(question), QUARTER.findall(question)
    if not (years or quarters):
        return []
    seen = " ".join(f"{s.chunk.text} {' '.join(s.chunk.heading_path)} {s.chunk.title} {s.chunk.meeting_date or ''}"
                    for s in chosen)
    have_years, have_quarters = set(YEAR.findall(seen)), set(QUARTER.findall(seen))
    # Named as the question writes it ("2024/25", not "2024").
    said = {y: next(m.group(0) for m in YEAR_SPAN.finditer(question) if m.group(0).startswith(y)) for y in years}
    missing = [text for y, text in said.items() if y not in have_years]
    return missing + [f"Q{q}" for q in dict.fromkeys(quarters) if q not in have_quarters]


def _figure_given(question: str, chosen: list[Sentence]) -> bool:
    """A question asking for a figure is answered only by quotes that hold one."""
    return not ASKS_FIGURE.search(question) or any(FIGURE.search(NOT_A_FIGURE.sub(" ", s.text)) for s in chosen)


_GENERIC = frozenset(tokenize("board boards council committee meeting health wellbeing members member "
                              "before ever previously what which when who how why did does do has have "
                              "had about on regarding anything something"))


def _topic_terms(question: str, councils: frozenset[str] = frozenset()) -> set[str]:
    """The question's words minus the decision verbs, the council names and the words every board paper shares."""
    return set(tokenize(DECISION_Q.sub(" ", question))) - _GENERIC - councils


def _is_label(text: str, c: Chunk) -> bool:
    """A document title or heading repeated in the text is not an answer to anything."""
    t = _one_line(text).strip().rstrip(":").lower()
    return t == (c.title or "").lower() or any(t == h.lower() for h in c.heading_path)


def _overlaps(a: Sentence, b: Sentence) -> bool:
    return a.chunk.doc_id == b.chunk.doc_id and a.start < b.end and b.start < a.end


def _similar(a: str, b: str) -> bool:
    ta, tb = set(tokenize(a)), set(tokenize(b))
    return bool(ta and tb) and len(ta & tb) / min(len(ta), len(tb)) > 0.8


def _shorten(text: str) -> str:
    words = _one_line(text).split()
    return " ".join(words) if len(words) <= SHOWN_WORDS else " ".join(words[:SHOWN_WORDS]) + " …"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _meeting_phrase(c: Chunk) -> str:
    who = " ".join(x for x in (c.council, c.body) if x)
    kind = {"minutes": "minutes of the", "report": "report to the", "appendix": "appendix for the",
            "agenda": "agenda of the"}.get(c.document_type, "papers of the")
    item = f", {c.agenda_item}" if c.agenda_item else ""
    if c.document_type in ("progress_report",) or not c.meeting_date:
        return f"{c.title} ({who}){item}" if who else f"{c.title}{item}"
    # A file with no detected council or body still names its meeting by date.
    return f"{kind} {who + ' ' if who else ''}meeting of {format_date(c.meeting_date)}{item}"
