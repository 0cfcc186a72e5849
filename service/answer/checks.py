"""Checks of what a question asks for, run on the quotes chosen for it.

Each check is named and can be switched off (BOARDPAPERS_ASK_CHECKS); `python -m evals ablate-ask`
measures what each is worth on the held-out sets. A check returns why the quotes do not answer
the question (a key of compose.DECLINED) and the periods it could not reach, or None.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from indexer.dates import MONTH_ALT, YEAR, YEAR_SPAN, find_month_years
from indexer.lexical import tokenize
from service.answer.select import Sentence
from service.question import QUARTER, Question

FIGURE = re.compile(r"(?i)\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                    r"fifty|hundred|thousand|million|half|third|quarter|dozen|double|twice|\w+fold)\b")
# Digits that name a time or a place in the papers rather than a quantity: years ("2021-22"),
# quarters, dates ("31 July", "Mar-18"), paragraph numbers ("1.20 ") and references ("Minute 6",
# "pages 43 - 52", "Appendix 1").
NOT_A_FIGURE = re.compile(
    r"(?i)^\s*\d+(?:\.\d+)+\s"  # a paragraph number
    rf"|{YEAR_SPAN.pattern}|\bq[1-4]\b"  # a year, "2021-22", a quarter
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{MONTH_ALT})\b|\b(?:{MONTH_ALT})-\d\d\b"  # "31 July", "Mar-18"
    r"|\b(?:pages?|minute|item|paragraph|appendix|annex|section|table|chart|figure)\s+\d+(?:\s*-\s*\d+)?")

Outcome = tuple[str, list[str]] | None
Check = Callable[[Question, Sequence[Sentence]], Outcome]


def period(q: Question, chosen: Sequence[Sentence]) -> Outcome:
    """The years and quarters the question names must be reached by a quoted passage (its text,
    headings, title or meeting date): "Band D council tax for 2024/25" is not answered by other
    years' figures, nor "at the end of Q3 2021-22" by Q2's. Months are not required: tables say
    "Mar-18", and a figure "by December 2018" comes from the January 2019 papers."""
    if not (q.named_years or q.quarters):
        return None
    seen = " ".join(f"{s.chunk.text} {' '.join(s.chunk.heading_path)} {s.chunk.title} {s.chunk.meeting_date or ''}"
                    for s in chosen)
    have_years, have_quarters = set(YEAR.findall(seen)), set(QUARTER.findall(seen))
    missing = [said for y, said in q.named_years if y not in have_years]
    missing += [f"Q{n}" for n in q.quarters if n not in have_quarters]
    return ("period_not_covered", missing) if missing else None


def month(q: Question, chosen: Sequence[Sentence]) -> Outcome:
    """The months a decision question names ("at its November 2018 meeting") must be reached by a
    quote's meeting date or its own words ("the minutes of 18 September 2014 be agreed").

    A decision is dated by the meeting that made it, so the 8 March 2018 resolutions do not answer
    what the board decided in November 2018. Other questions are not held to months: a table's
    "Mar-18" answers "as at March 2018".
    """
    if not (q.wants_decision and q.named_months):
        return None
    reached = {(s.chunk.meeting_date.year, s.chunk.meeting_date.month) for s in chosen if s.chunk.meeting_date}
    for s in chosen:
        reached.update(find_month_years(s.text))
    missing = [said for said, ym in q.named_months if ym not in reached]
    return ("period_not_covered", missing) if missing else None


def figure(q: Question, chosen: Sequence[Sentence]) -> Outcome:
    """A question asking for a figure is answered only by quotes that hold one."""
    if not q.asks_figure or any(FIGURE.search(NOT_A_FIGURE.sub(" ", s.text)) for s in chosen):
        return None
    return "no_figure", []


def decision_topic(q: Question, chosen: Sequence[Sentence]) -> Outcome:
    """A question about a decision needs a quote on its topic: another item's resolution is not an answer."""
    if not q.wants_decision or any(on_topic(q.topic, s) for s in chosen):
        return None
    return "no_decision", []


# In the order they run: the first that fails names the reason (periods before figures, as before).
CHECKS: dict[str, Check] = {"period": period, "month": month, "figure": figure, "decision_topic": decision_topic}
# Switches that are not checks of chosen quotes but act earlier, in selection (answer/__init__.py).
SWITCHES = ("council", "resolution_topic")


def unanswered(q: Question, chosen: Sequence[Sentence], enabled: frozenset[str]) -> tuple[str | None, list[str]]:
    """Why quotes that passed the evidence threshold still do not answer the question, if they don't.

    Periods come first: a period and a month both missing are named together.
    """
    periods: list[str] = []
    for name in ("period", "month"):
        if name in enabled and (out := CHECKS[name](q, chosen)):
            periods += out[1]
    if periods:
        return "period_not_covered", periods
    for name in ("figure", "decision_topic"):
        if name in enabled and (out := CHECKS[name](q, chosen)):
            return out
    return None, []


def holds_topic(topic: frozenset[str] | set[str], text: str) -> bool:
    """More than half of the question's topic words are in the text (both of two, two of three)."""
    return bool(topic) and len(topic & set(tokenize(text))) * 2 > len(topic)


def on_topic(topic: frozenset[str] | set[str], s: Sentence) -> bool:
    return holds_topic(topic, f"{s.chunk.agenda_item or ''} {' '.join(s.chunk.heading_path)} {s.text}")
