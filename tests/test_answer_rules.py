"""The answerer's plain rules, without a model: the question as read, named periods, asked-for figures."""

from __future__ import annotations

import dataclasses
from datetime import date

from indexer.records import Chunk
from service.answer import Sentence
from service.answer.checks import CHECKS, figure, period, unanswered
from service.answer.compose import SHOWN_WORDS, compose, declined
from service.question import QuestionReader, topic_terms

READER = QuestionReader(["London Borough of Barnet", "City of Westminster"])
ALL = frozenset(CHECKS)


def _periods_missing(question: str, chosen) -> list[str]:
    out = period(READER.read(question), chosen)
    return out[1] if out else []


def _figure_given(question: str, chosen) -> bool:
    return figure(READER.read(question), chosen) is None


def _unanswered(question: str, chosen, enabled=ALL):
    return unanswered(READER.read(question), chosen, enabled)


def _chunk(text: str, *, title: str = "Report", heading: tuple[str, ...] = ("Pack", "Item 7: Screening"),
           meeting: date | None = date(2018, 3, 8)) -> Chunk:
    return Chunk(id="c1", doc_id="d1", text=text, char_start=0, char_end=len(text), kind="text",
                 document_type="report", title=title, council="London Borough of Barnet",
                 body="Health & Wellbeing Board", meeting_date=meeting, agenda_item="7", heading_path=heading,
                 page=None, tokens=len(text.split()), embed_text=text, content_hash="h")


def _quote(text: str, **kw) -> Sentence:
    return Sentence(_chunk(text, **kw), 0, len(text), text, 0.0)


def test_topic_words_leave_out_decision_verbs_common_board_words_and_council_names():
    assert READER.read("what did Barnet's board decide about a child poverty strategy?").topic == \
        {"child", "poverti", "strategi"}
    assert topic_terms("has the board endorsed a SEND strategy before?") == {"send", "strategi"}



def test_a_named_year_must_appear_in_a_quoted_passage():
    q = "what is Barnet's Band D council tax for 2024/25?"
    assert _periods_missing(q, [_quote("Band D council tax is set each year by the council.")]) == ["2024/25"]
    assert _periods_missing(q, [_quote("For 2024/25 the Band D council tax is £1,800.")]) == []
    # The passage's title, headings or meeting date count as mentioning it.
    assert _periods_missing("who chaired the March 2018 meeting?", [_quote("Chairman: Cllr Helena Hart")]) == []
    assert _periods_missing("how many schools signed up?", [_quote("16 schools")]) == []  # no year named


def test_a_named_quarter_must_appear_in_a_quoted_passage():
    q = "how many households were in temporary accommodation at the end of Q3 2021-22?"
    q2_only = _quote("At the end of Q2 2021/22 there were 2,312 households in temporary accommodation.",
                     title="Barnet Plan 2021-22 Q2", meeting=None)
    assert _periods_missing(q, [q2_only]) == ["Q3"]
    assert _periods_missing(q.replace("Q3", "Q2"), [q2_only]) == []
    assert _periods_missing(q.replace("Q3", "quarter 2"), [q2_only]) == []



def test_a_decline_past_the_threshold_says_what_the_quotes_lack():
    """The period is checked first, then the figure; a check switched off no longer declines."""
    other_year = [_quote("In 2019/20 uptake was 64%.", meeting=date(2020, 1, 9))]
    assert _unanswered("what was the uptake in 2017/18?", other_year) == ("period_not_covered", ["2017/18"])
    no_number = [_quote("Uptake of screening was discussed by the board.")]
    assert _unanswered("what was the screening uptake rate?", no_number) == ("no_figure", [])
    assert _unanswered("what was the screening uptake rate?", no_number, ALL - {"figure"}) == (None, [])
    assert _unanswered("what was the uptake in 2017/18?", other_year, ALL - {"period"}) == (None, [])
    r = declined("period_not_covered", "London Borough of Barnet papers", [], ["2017/18", "Q3"])
    assert r.found is False and r.citations == [] and r.reason == "period_not_covered"
    assert r.answer.startswith("The London Borough of Barnet papers I have don't appear to cover this for 2017/18 or Q3")


def test_a_question_asking_for_a_figure_needs_a_quote_holding_one():
    assert not _figure_given("how many GP practices are there in Westminster?",
                             [_quote("GP practices in Westminster are commissioned by NHS England.")])
    assert _figure_given("how many GP practices are there in Westminster?",
                         [_quote("There are 38 GP practices in Westminster.")])
    assert _figure_given("what share of schools are rated good?", [_quote("Nine in ten schools are good or better.")])
    assert _figure_given("who chairs the board?", [_quote("Cllr Helena Hart chairs the board.")])  # not a figure question
    # Years, dates, quarters and paragraph numbers are not the figure asked for.
    assert not _figure_given("what is the MMR vaccination uptake rate in Westminster?",
                             [_quote("1.2 MMR uptake in Westminster was discussed on 20 November 2014 and in Q3 2015/16.")])
    assert _figure_given("what is the MMR vaccination uptake rate in Westminster?", [_quote("MMR uptake was 72.5%.")])
    # Nor are references to other papers, or "all" (a resolution asking to improve uptake for all).
    assert not _figure_given("how many GP practices are there in Westminster?",
                             [_quote("7.1 At its last meeting (Minute 6), the Board received a report on GP practices; "
                                     "see Appendix 2 and pages 43 - 52.")])
    assert not _figure_given("what is the MMR uptake rate?",
                             [_quote("That a report set out how uptake for all immunisations could be improved.")])
    assert _figure_given("how many foster carers came from the campaign?",
                         [_quote("22 new foster carers were approved directly from this campaign.")])


def test_answer_names_each_meeting_once_and_shortens_long_quotes_but_not_their_citations():
    long_text = " ".join(f"word{i}" for i in range(SHOWN_WORDS + 20))
    chosen = [_quote("The grant for 2019/20 is £16.703m."), _quote(long_text),
              _quote("The grant was £967,402.", meeting=date(2015, 1, 22))]
    answer, citations = compose(chosen)
    lines = answer.splitlines()
    assert lines[0] == "Report to the London Borough of Barnet Health & Wellbeing Board meeting of 8 March 2018, 7:"
    assert lines[1] == "• “The grant for 2019/20 is £16.703m.” [1]"
    assert lines[2].startswith("• “word0 word1") and lines[2].endswith(f"word{SHOWN_WORDS - 1} …” [2]")
    assert lines[3].startswith("Report to the London Borough of Barnet Health & Wellbeing Board meeting of 22 January 2015")
    assert lines[3].endswith(": “The grant was £967,402.” [3]")
    assert [c.n for c in citations] == [1, 2, 3]
    assert citations[1].quote == long_text and citations[1].char_end - citations[1].char_start == len(long_text)


def test_a_resolution_is_shown_whole():
    text = "RESOLVED that: " + " ".join(f"part{i}" for i in range(SHOWN_WORDS + 20))
    res = Sentence(dataclasses.replace(_chunk(text), kind="resolution", document_type="minutes"), 0, len(text), text, 0.0)
    answer, _ = compose([res])
    assert answer.startswith("The board resolved (minutes of the London Borough of Barnet Health & Wellbeing Board "
                             "meeting of 8 March 2018, 7): “RESOLVED that:")
    assert f"part{SHOWN_WORDS + 19}” [1]" in answer
