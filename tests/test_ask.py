"""/ask and /ask/stream over the real index: cited answers, declines, follow-ups, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from service_fixtures import app_client  # noqa: F401
from service_fixtures import assert_readable_422, load_jsonl

from evals.relevance import is_relevant

pytestmark = pytest.mark.model

QUESTIONS = {q["id"]: q for q in load_jsonl("questions.jsonl")}
UNANSWERABLE = {u["id"]: u for u in load_jsonl("unanswerable.jsonl")}
# Varied kinds the service answers with a citation quoting the evidence (checked on the real index).
ANSWERABLE = ["q001", "q002", "q003", "q005", "q016", "q019", "q041", "q062", "q075", "q098", "q115"]
# u003 (Hendon library's opening hours, once answered with another centre's) was the first judge's
# known miss; the judge retrained on the second round of questions declines it.
DECLINED = ["u001", "u002", "u003", "u004", "u006", "u007", "u008", "u010"]
# A known miss of the retrained judge, kept visible (strict: the suite fails once it is declined, so
# the mark comes off): a decision question naming a month the papers hold no meeting of is answered
# with another meeting's resolution of the same year (confidence 0.51). The period check reads years
# and quarters, not months; a month check earned nothing on the held-out sets and was deleted.
_JUDGE_MISS = pytest.mark.xfail(strict=True, reason="answered by the judge with a resolution of another meeting")
CANCER = "what did the board resolve on cancer screening?"


def ask(client, question, **extra):
    r = client.post("/ask", json={"question": question, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def check_quotes_match_text(client, citations):
    for c in citations:
        r = client.get(f"/documents/{c['document_id']}/text", params={"start": c["char_start"], "end": c["char_end"]})
        assert r.status_code == 200, r.text
        assert r.json()["text"] == c["quote"]


@pytest.mark.parametrize("qid", ANSWERABLE)
def test_answerable_question_is_found_and_cited(app_client, qid):
    q = QUESTIONS[qid]
    a = ask(app_client, q["question"])
    assert a["found"] is True
    assert a["answerer"] == "extractive"
    assert a["citations"] and a["passages"]
    assert any(is_relevant(c["quote"], e) for c in a["citations"] for e in q["evidence"]), a["answer"]
    for c in a["citations"]:
        assert f"[{c['n']}]" in a["answer"]
    check_quotes_match_text(app_client, a["citations"])


@pytest.mark.parametrize("uid", DECLINED)
def test_unanswerable_question_is_declined(app_client, uid):
    a = ask(app_client, UNANSWERABLE[uid]["question"])
    assert a["found"] is False
    assert a["passages"]
    if a["reason"] == "unsure":
        # The judge leans against an answer: the closest quotes are shown, flagged, with its confidence.
        assert a["answer"].startswith("I'm not sure") and a["citations"] and a["confidence"] < 0.35, a
        check_quotes_match_text(app_client, a["citations"])
    else:
        assert a["citations"] == [] and "don't appear to" in a["answer"], a["answer"]
        assert a["reason"] in ("weak_evidence", "period_not_covered", "no_figure"), a["reason"]


@pytest.fixture(scope="module")
def whole_set_rates(app_client):
    found = evidence = 0
    for q in QUESTIONS.values():
        a = ask(app_client, q["question"])
        found += a["found"]
        evidence += a["found"] and any(is_relevant(c["quote"], e) for c in a["citations"] for e in q["evidence"])
    declined = sum(not ask(app_client, u["question"])["found"] for u in UNANSWERABLE.values())
    rates = {"found": found / len(QUESTIONS), "evidence": evidence / len(QUESTIONS),
             "declined": declined / len(UNANSWERABLE)}
    print(f"\nwhole-set rates: found {found}/{len(QUESTIONS)} = {rates['found']:.3f}, "
          f"declined {declined}/{len(UNANSWERABLE)} = {rates['declined']:.3f}")
    return rates


def test_whole_question_set_found_rate(whole_set_rates):
    assert whole_set_rates["found"] >= 0.70, whole_set_rates


# Regression guard: 86/115 (75%) answered with a quote holding the evidence when measured; the target is 90%.
def test_whole_question_set_evidence_rate(whole_set_rates):
    assert whole_set_rates["evidence"] >= 0.68, whole_set_rates


# 39/45 (87%) declined at found_threshold 0.34 when measured (evals/RESULTS.md); the target is 80%.
def test_whole_unanswerable_set_declined_rate(whole_set_rates):
    assert whole_set_rates["declined"] >= 0.78, whole_set_rates


@pytest.mark.parametrize("question, council", [
    ("what did Westminster's health and wellbeing board decide on a SEND strategy?", "City of Westminster"),
    ("did Westminster's board ask NHS England for an adult cancer screening recovery plan?", "City of Westminster"),
])
def test_question_naming_a_council_is_not_answered_from_the_other(app_client, question, council):
    """Barnet made these decisions, Westminster did not: the answer must not borrow Barnet's."""
    a = ask(app_client, question)
    assert all(c["council"] == council for c in a["citations"]), a["answer"]
    if not a["found"]:  # the decline names the council whose papers were searched
        assert f"{council} papers I have" in a["answer"], a["answer"]


def test_question_about_a_year_the_papers_do_not_reach_is_declined(app_client):
    a = ask(app_client, "what is Barnet's Band D council tax for 2024/25?")
    assert a["found"] is False and a["citations"] == []
    # Said as what is missing when the quotes chosen are about other years; the "Corporate Plan
    # 2019-2024" reaches 2024, and then the decline is for weak evidence.
    assert a["reason"] in ("period_not_covered", "weak_evidence"), a
    if a["reason"] == "period_not_covered":
        assert "for 2024/25" in a["answer"], a["answer"]


@_JUDGE_MISS
def test_decision_question_about_a_meeting_the_papers_do_not_hold_is_declined(app_client):
    """The bundled papers hold no minutes of an October 2018 meeting: March 2018's resolutions don't answer it."""
    a = ask(app_client, "what did Barnet's health and wellbeing board decide at its October 2018 meeting?")
    assert a["found"] is False, a["answer"]


def test_question_asking_for_a_figure_the_papers_do_not_give_says_so(app_client):
    a = ask(app_client, "what is the MMR vaccination uptake rate in Westminster?")
    assert a["found"] is False and a["citations"] == [] and a["passages"]
    # The figure check runs on the quotes chosen; when they hold some other figure it passes and the
    # judge's low confidence declines instead (the check itself: tests/test_answer_rules.py).
    assert a["reason"] in ("no_figure", "weak_evidence"), a["reason"]
    said = "don't appear to give the figure" if a["reason"] == "no_figure" else "don't appear to cover this"
    assert said in a["answer"], a["answer"]


def test_found_answer_has_no_decline_reason(app_client):
    assert ask(app_client, CANCER)["reason"] is None


def test_decision_question_on_an_unrelated_topic_does_not_quote_another_resolution(app_client):
    a = ask(app_client, "what did Barnet's board decide about a child poverty strategy?")
    assert "SEND" not in a["answer"] or not a["found"], a["answer"]


def test_short_sentence_is_quoted_with_the_next_one(app_client):
    a = ask(app_client, "how much CAMHS transformation money has the CCG had?")
    assert a["found"] is True
    assert any("£772k" in c["quote"] and "£1.1m" in c["quote"] for c in a["citations"]), a["answer"]
    check_quotes_match_text(app_client, a["citations"])


def test_cancer_screening_answer(app_client):
    a = ask(app_client, CANCER)
    assert a["found"] is True
    assert "8 March 2018" in a["answer"]
    assert "[1]" in a["answer"]
    assert a["citations"][0]["n"] == 1
    assert a["citations"][0]["meeting_date"] == "2018-03-08"


def test_follow_up_uses_history(app_client):
    first = ask(app_client, CANCER)
    a = ask(app_client, "and what about breast screening?",
            history=[{"question": CANCER, "answer": first["answer"]}])
    # Answered, or the closest quotes shown as unsure: either way read with the question before it.
    assert a["found"] is True or a["reason"] == "unsure", a
    assert a["citations"]
    assert any("screening" in c["quote"].lower() for c in a["citations"]), a["answer"]
    check_quotes_match_text(app_client, a["citations"])


def test_stream_matches_ask(app_client):
    expected = ask(app_client, CANCER)
    r = app_client.post("/ask/stream", json={"question": CANCER})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [block for block in r.text.split("\n\n") if block.strip()]
    assert any(e.startswith("event: delta\n") for e in events)
    last = events[-1]
    assert last.startswith("event: done\ndata: ")
    done = json.loads(last.split("data: ", 1)[1])
    assert done["answer"] == expected["answer"]
    assert done["found"] is True
    pieces = "".join(json.loads(e.split("data: ", 1)[1])["text"] for e in events[:-1])
    assert pieces == expected["answer"]


@pytest.mark.parametrize("path", ["/ask", "/ask/stream"])
@pytest.mark.parametrize("body", [
    {"question": ""}, {"question": "   "}, {"question": "a" * 2001}, {"question": 123}, {},
    {"question": "screening", "filters": {"colour": "blue"}},
    {"question": "screening", "filters": {"date_from": "2018-13-01"}},
    {"question": "screening", "filters": {"date_from": "2019-01-01", "date_to": "2018-01-01"}},
    {"question": "screening", "history": [{"answer": "no question"}]},
    {"question": "screening", "history": [{"question": "q"}] * 21},
], ids=["empty", "whitespace", "too-long", "not-string", "missing", "unknown-filter", "bad-date",
        "reversed-window", "history-no-question", "history-too-long"])
def test_bad_ask_input_422(app_client, path, body):
    assert_readable_422(app_client.post(path, json=body))


def test_ask_invalid_json_422(app_client):
    r = app_client.post("/ask", content=b"not json", headers={"content-type": "application/json"})
    assert_readable_422(r)


def test_resolve_question_without_a_resolution_says_so(app_client):
    # The papers hold a PNA report with recommendations but no minute resolving anything on it
    # (evals/decisions_gold.jsonl has only a recommendation), so a proposal must not pass for a decision.
    a = ask(app_client, "what did the board resolve about the pharmaceutical needs assessment?")
    if a["found"]:
        assert a["answer"].startswith("I found no resolution on this"), a["answer"]
        assert not a["answer"].startswith("The board resolved")
    check_quotes_match_text(app_client, a["citations"])


def test_asked_to_question_is_not_treated_as_a_resolution_question(app_client):
    a = ask(app_client, "what was the board asked to agree on the health and wellbeing strategy review in July 2018?")
    assert a["found"] is True
    assert "no resolution" not in a["answer"]
    assert any("asked to" in c["quote"] or c["quote"].startswith("That the Health and Wellbeing Board")
               for c in a["citations"]), a["answer"]


def test_meeting_phrase_without_council_or_body():
    from datetime import date

    from indexer.records import Chunk
    from service.answer.compose import meeting_phrase

    c = Chunk(id="x", doc_id="d", text="t", char_start=0, char_end=1, kind="text", document_type="report",
              title="Cabinet papers", council=None, body=None, meeting_date=date(2025, 1, 30), agenda_item="Item 8",
              heading_path=("Cabinet papers",), page=3, tokens=1, embed_text="t", content_hash="h")
    phrase = meeting_phrase(c)
    assert phrase == "report to the meeting of 30 January 2025, Item 8", phrase
    assert "the board papers" not in phrase


def test_decide_question_cites_the_decision_record(app_client):
    # Westminster's endorsement sits in the 20 November 2014 minutes inside the 22 January 2015 pack.
    a = ask(app_client, "what did the Westminster board decide about the CCGs' contracting intentions?")
    assert a["found"] is True
    hits = [c for c in a["citations"] if "Contracting Intentions" in c["quote"] and "endorsed" in c["quote"]]
    assert hits, a["answer"]
    assert hits[0]["meeting_date"] == "2014-11-20"
    assert "The board resolved" in a["answer"]
    check_quotes_match_text(app_client, a["citations"])


def test_topic_terms_drop_decision_verbs_and_board_words():
    from service.question import topic_terms

    assert topic_terms("what did the board resolve about the pharmaceutical needs assessment?") == \
        topic_terms("pharmaceutical needs assessment")
    assert topic_terms("has the Health and Wellbeing Board ever endorsed anything?") == set()


def test_a_judge_with_an_answerability_model_decides_found_with_it(real_index, tmp_path):
    """The answerer asks the judge's question-level model when its folder has one: a model that is sure
    of nothing declines what the best-probability calibration answers, and its confidence is the model's."""
    import shutil

    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import ServiceSettings
    from service.judge import ANSWERABILITY_VERSION, QUESTION_FEATURES, Answerability

    shipped = Path(__file__).resolve().parent.parent / "models" / "judge"
    for name in ("judge.json", "judge.npz"):
        shutil.copy(shipped / name, tmp_path / name)
    n = len(QUESTION_FEATURES)
    (tmp_path / Answerability.FILE).write_text(json.dumps({
        "version": ANSWERABILITY_VERSION, "features": list(QUESTION_FEATURES), "mean": [0.0] * n, "std": [1.0] * n,
        "coef": [0.0] * n, "intercept": 0.0, "calibration": {"x": [0.0, 1.0], "y": [0.1, 0.1]}}))
    q = QUESTIONS[ANSWERABLE[0]]["question"]
    with TestClient(create_app(ServiceSettings(index_dir=real_index, judge_dir=tmp_path))) as client:
        a = ask(client, q)
    assert a["found"] is False and a["confidence"] == pytest.approx(0.1), a
