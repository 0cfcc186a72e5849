"""The question, read once: what a member asked, turned into the record every later stage uses.

The retriever, the decision search, the judge and the answer checks all take a `Question`; none
of them looks at the question's words again. A follow-up ("and what about breast screening?")
is resolved here against the previous question, so every stage sees the same resolved text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from indexer.dates import DAY_MONTH_YEAR, MONTHS, YEAR, YEAR_SPAN, find_month_years
from indexer.lexical import tokenize

# What a question asks for: the board's decision, or what a report put to the board.
DECISION_Q = re.compile(r"(?i)\b(resolv\w*|decid\w*|decision\w*|agree\w*|endors\w*|approv\w*|resolution\w*|"
                        r"outcome\w*|conclu\w*|signed off)\b")
PROPOSAL_Q = re.compile(r"(?i)\b(asked to|recommend\w*|propos\w*)\b")
# "How many / how much / what share" asks for a figure: quotes without one do not answer it.
ASKS_FIGURE = re.compile(r"(?i)\bhow (many|much|long|big)\b|\bwhat (share|proportion|percentage|number|rate|amount)\b"
                         r"|\bwhat (is|are|was|were)\b[^?]*\b(rates?|budget|cost|total|figure|percentage|proportion|uptake|amount)\b")
QUARTER = re.compile(r"(?i)\b(?:q|quarter\s*)([1-4])\b")
# A question leaning on the one before: it opens like a continuation or points back with a pronoun.
FOLLOW_UP = re.compile(r"(?i)^(and|what about|how about|also|same for|and what about)\b|\b(it|they|that|those|this|them)\b")
# Words every board paper shares, and the verbs of a decision question: they say nothing of the topic.
_GENERIC = frozenset(tokenize("board boards council committee meeting health wellbeing members member "
                              "before ever previously what which when who how why did does do has have "
                              "had about on regarding anything something"))
_NOT_COUNCIL_WORDS = frozenset({"london", "borough", "of", "city", "council", "the", "royal", "county"})


@dataclass(frozen=True)
class Question:
    """A question as every stage reads it.

    text is what the member typed; query is what is searched (a follow-up read with the question
    before it). Everything else is derived from query, once.
    """

    text: str
    query: str
    intent: str | None  # "decision" (what was resolved), "proposal" (what a report asked), or None
    asks_figure: bool
    councils: tuple[str, ...]  # councils of the index the question names
    dates: tuple[date, ...]
    month_years: tuple[tuple[int, int], ...]
    years: tuple[int, ...]
    named_years: tuple[tuple[str, str], ...]  # (year digits, as written: "2024/25")
    quarters: tuple[str, ...]  # "3" for Q3
    terms: frozenset[str]  # the query's stemmed words
    topic: frozenset[str]  # its topic words: no decision verbs, council names or words all papers share
    follow_up: bool = False

    @property
    def wants_decision(self) -> bool:
        return self.intent == "decision"


def wants(text: str) -> str | None:
    """"decision" for what the board resolved, "proposal" for what it was asked to do, else None."""
    if PROPOSAL_Q.search(text):
        return "proposal"
    return "decision" if DECISION_Q.search(text) else None


def council_words(council: str) -> list[str]:
    """The words that name a council in a question ("barnet" for the London Borough of Barnet)."""
    words = [w for w in re.findall(r"[a-z]+", council.lower()) if w not in _NOT_COUNCIL_WORDS]
    return words or [council.lower()]


class QuestionReader:
    """Reads questions against the councils an index holds (so "Barnet" is a council, not a topic)."""

    def __init__(self, known_councils: Iterable[str] = ()) -> None:
        self.known_councils = tuple(sorted(set(known_councils)))
        self.council_terms = frozenset(t for c in self.known_councils for t in tokenize(" ".join(council_words(c))))

    def read(self, text: str, history: Sequence[str] = ()) -> Question:
        """The Question for text, asked after the questions in history (oldest first)."""
        follow_up = bool(history) and bool(FOLLOW_UP.search(text) or len(tokenize(text)) <= 3)
        query = f"{text} {history[-1]}" if follow_up else text
        dates = []
        for m in DAY_MONTH_YEAR.finditer(query):
            try:
                dates.append(date(int(m.group(3)), MONTHS[m.group(2).lower()], int(m.group(1))))
            except ValueError:
                pass
        # Periods the answer must reach are the ones the member named now; a follow-up that names
        # none ("and what about breast screening?") keeps the previous question's.
        said = text if (YEAR.search(text) or QUARTER.search(text) or not follow_up) else query
        years = YEAR.findall(said)
        named_years = tuple((y, next(m.group(0) for m in YEAR_SPAN.finditer(said) if m.group(0).startswith(y)))
                            for y in dict.fromkeys(years))
        q = query.lower()
        councils = tuple(c for c in self.known_councils if any(w in q for w in council_words(c)))
        return Question(
            text=text,
            query=query,
            intent=wants(query),
            asks_figure=bool(ASKS_FIGURE.search(said)),
            councils=councils,
            dates=tuple(dates),
            month_years=tuple(find_month_years(query)),
            years=tuple(int(y) for y in YEAR.findall(query)),
            named_years=named_years,
            quarters=tuple(dict.fromkeys(QUARTER.findall(said))),
            terms=frozenset(tokenize(query)),
            topic=frozenset(topic_terms(query, self.council_terms)),
            follow_up=follow_up,
        )


def topic_terms(text: str, councils: frozenset[str] = frozenset()) -> set[str]:
    """The words minus the decision verbs, the council names and the words every board paper shares."""
    return set(tokenize(DECISION_Q.sub(" ", text))) - _GENERIC - councils
