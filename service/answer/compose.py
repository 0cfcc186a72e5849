"""Composition: the chosen quotes become the answer text and its citations, or a decline that says why."""

from __future__ import annotations

import re
from collections.abc import Sequence

from indexer.dates import format_date
from indexer.records import Chunk
from service.answer.select import Sentence
from service.schemas import AskCitation, AskResponse

SHOWN_WORDS = 50  # words of a (non-resolution) quote shown in the answer; its citation holds all of it
NO_RESOLUTION = ("I found no resolution on this in the minutes I have; "
                 "the nearest passages in the papers say:")
# Why a question was declined, and what the member is told. Past the evidence threshold, a decline
# says what is missing: the papers near the question are about it, but not for the period asked,
# or give no figure.
NEAREST = "The nearest passages are listed below in case they help."
DECLINED = {
    "weak_evidence": "The {papers} I have don't appear to cover this.",
    "period_not_covered": "The {papers} I have don't appear to cover this for {periods}: "
                          "the passages nearest to it are about other periods.",
    "no_figure": "The {papers} I have touch on this but don't appear to give the figure asked for.",
}


def compose(chosen: Sequence[Sentence]) -> tuple[str, list[AskCitation]]:
    """One line per quote, grouped under the paper and meeting they come from (named once), in
    the order those sources first appear; [n] follows the text so [1] is read first."""
    groups: dict[tuple[bool, str], list[Sentence]] = {}
    for s in chosen:
        groups.setdefault((s.chunk.kind == "resolution", meeting_phrase(s.chunk)), []).append(s)
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
            shown.append(f"“{one_line(quote) if resolution else shorten(quote)}” [{n}]")
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


def declined(reason: str, papers: str, passages: list, periods: Sequence[str] = (),
             confidence: float | None = None) -> AskResponse:
    text = DECLINED[reason].format(papers=papers, periods=" or ".join(periods))
    return AskResponse(answer=f"{text} {nearest_cover(passages)}", found=False, citations=[], passages=passages, reason=reason,
                       confidence=None if confidence is None else round(confidence, 3))


def unsure(papers: str, chosen: Sequence[Sentence], passages: list, confidence: float) -> AskResponse:
    """The judge leans against an answer, but not far: the member sees the closest quotes, cited and
    flagged with how likely they are to answer, rather than a flat decline."""
    body, citations = compose(chosen)
    lead = (f"I'm not sure the {papers} I have answer this (confidence {confidence:.0%}). "
            "The closest passages say:")
    return AskResponse(answer=f"{lead}\n{body}", found=False, citations=citations, passages=passages,
                       reason="unsure", confidence=round(confidence, 3))


def nearest_cover(passages: list) -> str:
    """What the nearest papers are about: their sections (heading and meeting), each named once, so
    a member who was declined knows where the papers come closest."""
    seen: list[str] = []
    for p in passages[:5]:
        c = p.citation
        where = (c.title or c.document_title).strip().rstrip(":")
        when = f" ({format_date(c.meeting_date)})" if c.meeting_date else ""
        if where and f"{where}{when}" not in seen:
            seen.append(f"{where}{when}")
        if len(seen) == 3:
            break
    if not seen:
        return ""
    return f"The nearest papers are about: {'; '.join(f'“{x}”' for x in seen)}. {NEAREST}"


def shorten(text: str) -> str:
    words = one_line(text).split()
    return " ".join(words) if len(words) <= SHOWN_WORDS else " ".join(words[:SHOWN_WORDS]) + " …"


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def meeting_phrase(c: Chunk) -> str:
    who = " ".join(x for x in (c.council, c.body) if x)
    kind = {"minutes": "minutes of the", "report": "report to the", "appendix": "appendix for the",
            "agenda": "agenda of the"}.get(c.document_type, "papers of the")
    item = f", {c.agenda_item}" if c.agenda_item else ""
    if c.document_type in ("progress_report",) or not c.meeting_date:
        return f"{c.title} ({who}){item}" if who else f"{c.title}{item}"
    # A file with no detected council or body still names its meeting by date.
    return f"{kind} {who + ' ' if who else ''}meeting of {format_date(c.meeting_date)}{item}"
