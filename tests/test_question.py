"""The question read once: intent, periods, councils, topic words and follow-ups."""

from __future__ import annotations

from datetime import date

from service.question import QuestionReader

READER = QuestionReader(["London Borough of Barnet", "City of Westminster"])


def test_a_question_is_read_into_one_record():
    q = READER.read("what did Westminster's board decide on 20 November 2014 about the BCF in 2014/15?")
    assert q.intent == "decision" and q.wants_decision
    assert q.councils == ("City of Westminster",)
    assert q.dates == (date(2014, 11, 20),)
    assert q.month_years == ((2014, 11),)
    assert q.named_years == (("2014", "2014"),)  # named as first written
    assert READER.read("the BCF plan for 2014/15").named_years == (("2014", "2014/15"),)
    assert "bcf" in q.topic and "westminst" not in q.topic and "decid" not in q.topic
    assert q.query == q.text and not q.follow_up


def test_intent_and_figures():
    assert READER.read("what was the board asked to agree on the PNA?").intent == "proposal"
    assert READER.read("how many schools signed up?").asks_figure
    assert not READER.read("who chairs the board?").asks_figure
    assert READER.read("what were households in temporary accommodation at the end of Q3?").quarters == ("3",)


def test_a_follow_up_is_read_with_the_question_before_it():
    first = "how many children were in care in barnet in march 2018?"
    q = READER.read("and what about westminster?", [first])
    assert q.follow_up and q.query.startswith("and what about westminster?") and first in q.query
    # It names no period itself, so it keeps the previous question's; the council named now counts.
    assert q.named_years == (("2018", "2018"),) and q.asks_figure
    assert set(q.councils) == {"London Borough of Barnet", "City of Westminster"}
    # A follow-up naming its own year is held to that year only.
    assert READER.read("and in 2019?", [first]).named_years == (("2019", "2019"),)
    # A question that stands on its own is not glued to the one before it.
    alone = READER.read("what is the pharmaceutical needs assessment for?", [first])
    assert not alone.follow_up and alone.query == alone.text
