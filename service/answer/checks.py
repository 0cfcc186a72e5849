"""Checks of what a question asks for, run on the quotes chosen for it.

Each check is named and can be switched off (BOARDPAPERS_ASK_CHECKS); `python -m evals ablate-ask`
measures what each is worth on the held-out sets. A check returns why the quotes do not answer
the question (a key of compose.DECLINED) and the periods it could not reach, or None.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from indexer.dates import MONTH_ALT, YEAR, YEAR_SPAN
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


def figure(q: Question, chosen: Sequence[Sentence]) -> Outcome:
    """A question asking for a figure is answered only by quotes that hold one."""
    if not q.asks_figure or any(FIGURE.search(NOT_A_FIGURE.sub(" ", s.text)) for s in chosen):
        return None
    return "no_figure", []


# In the order they run: the first that fails names the reason. Measured with the judge on held-out
# sets 2 and 3 (README, "What each check is worth"), a month check for decision questions, a
# decision-topic check and a filter of off-topic resolutions earned nothing (the last cost an
# answer) and were deleted; these three each decline a few more unanswerable questions at no cost.
CHECKS: dict[str, Check] = {"period": period, "figure": figure}
# Switches that are not checks of chosen quotes but act earlier (answer/__init__.py).
SWITCHES = ("council",)


def unanswered(q: Question, chosen: Sequence[Sentence], enabled: frozenset[str]) -> tuple[str | None, list[str]]:
    """Why quotes that passed the evidence threshold still do not answer the question, if they don't."""
    for name, check in CHECKS.items():
        if name in enabled and (out := check(q, chosen)):
            return out
    return None, []
