"""Hand-worked checks of the evaluation runner: no model, no index."""

from __future__ import annotations

import json

import pytest

from evals.questions import Question, Unanswerable
from evals.run import docs_from_hits, run_eval, score_ask, score_decisions, score_questions

EVIDENCE = {
    "q1": "the board approved the pharmaceutical needs assessment for publication",
    "q2": "the committee noted the annual report of the director of public health",
    "q3": "members agreed to defer the item on the leisure centre contract",
}
FILLER = [f"unrelated passage number {i} about something else entirely" for i in range(10)]


def _questions() -> list[Question]:
    kinds = {"q1": "decision", "q2": "numeric", "q3": "decision"}
    return [Question(qid, f"question {qid}", kinds[qid], "doc", (ev,), "") for qid, ev in EVIDENCE.items()]


def fake_search(question: str, k: int) -> list[str]:
    """q1: evidence at rank 1; q2: at rank 3; q3: nowhere."""
    qid = question.split()[-1]
    passages = list(FILLER)
    if qid == "q1":
        passages.insert(0, "Resolved: " + EVIDENCE["q1"] + ".")
    elif qid == "q2":
        passages.insert(2, EVIDENCE["q2"].upper() + " and more")
    return passages[:k]


def test_first_ranks_and_metrics():
    res = score_questions("fake", _questions(), fake_search, k=10)
    assert res.ranks == {"q1": 1, "q2": 3, "q3": None}
    m = res.metrics
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["recall@10"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
    # one relevant item: nDCG = 1/log2(rank+1)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / 2) / 3)
    assert res.per_kind["decision"]["recall@1"] == pytest.approx(1 / 2)
    assert res.per_kind["decision"]["n"] == 2
    assert res.per_kind["numeric"]["mrr@10"] == pytest.approx(1 / 3)


def test_run_eval_writes_metrics_json(tmp_path):
    out = tmp_path / "out"
    run_eval(_questions(), {"fake": fake_search, "other": fake_search}, out, k=10, plot=True)
    data = json.loads((out / "metrics.json").read_text())
    assert set(data) == {"fake", "other"}
    m = data["fake"]
    for key in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "n", "per_kind", "latency_ms_p50"):
        assert key in m
    assert m["n"] == 3
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert set(m["per_kind"]) == {"decision", "numeric"}
    assert set(m["per_kind"]["decision"]) >= {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "n"}
    assert (out / "report.md").read_text().startswith("# Retrieval evaluation")
    assert (out / "recall_at_k.png").stat().st_size > 0


def test_decisions_precision_recall_toy():
    gold = [
        {"doc": "a", "kind": "decision", "meeting_date": "2018-03-08",
         "quote": "that the minutes of the previous meeting be approved as a correct record",
         "quote_last": "that the minutes of the previous meeting be approved as a correct record"},
        {"doc": "a", "kind": "recommendation", "meeting_date": "2018-07-26",
         "quote": "the board is asked to note the update on the screening programme",
         "quote_last": "and to endorse the recovery plan set out in appendix one"},
        {"doc": "b", "kind": "decision", "meeting_date": "2015-01-22",
         "quote": "that the board agreed the terms of reference of the joint working group",
         "quote_last": "that the board agreed the terms of reference of the joint working group"},
    ]
    extracted = [
        {"doc_id": "a", "kind": "decision", "meeting_date": "2018-03-08",
         "text": "RESOLVED that the minutes of the previous meeting be approved as a correct record."},
        {"doc_id": "a", "kind": "recommendation", "meeting_date": "2018-07-20",
         "text": "1. The board is asked to note the update on the screening programme;\n2. and to endorse the "
                 "recovery plan set out in appendix one."},
        # right text, wrong kind: matches nothing, and gold #3 stays unmatched
        {"doc_id": "b", "kind": "recommendation", "meeting_date": "2015-01-22",
         "text": "that the board agreed the terms of reference of the joint working group"},
    ]
    res = score_decisions(gold, extracted)
    assert res["precision"] == pytest.approx(2 / 3)
    assert res["recall"] == pytest.approx(2 / 3)
    assert res["date_accuracy"] == pytest.approx(1 / 2)
    assert res["_unmatched_gold"] == [2]
    assert res["_unmatched_extracted"] == [2]


def test_decision_needs_last_quote_too():
    gold = [{"doc": "a", "kind": "recommendation", "meeting_date": None,
             "quote": "the board is asked to note the update on the screening programme",
             "quote_last": "and to endorse the recovery plan set out in appendix one"}]
    cut = [{"doc_id": "a", "kind": "recommendation", "meeting_date": None,
            "text": "The board is asked to note the update on the screening programme."}]
    assert score_decisions(gold, cut)["recall"] == 0.0


def test_score_ask_counts_evidence_declines_and_bad_quotes():
    doc = "Intro. " + EVIDENCE["q1"] + ". Other text here."
    start = doc.index(EVIDENCE["q1"])
    good = {"n": 1, "quote": EVIDENCE["q1"], "document_id": "d", "char_start": start, "char_end": start + len(EVIDENCE["q1"])}
    bad = {"n": 1, "quote": "Intro text that is not there", "document_id": "d", "char_start": 0, "char_end": 6}
    responses = {
        "question q1": {"found": True, "answer": "x", "citations": [good]},
        "question q2": {"found": True, "answer": "y", "citations": [bad]},
        "question q3": {"found": False, "answer": "no", "citations": []},
        "parking?": {"found": False, "answer": "no", "citations": []},
        "bins?": {"found": True, "answer": "yes", "citations": []},
    }
    metrics, outcomes, bad_quotes = score_ask(
        _questions(), [Unanswerable("u1", "parking?"), Unanswerable("u2", "bins?")],
        lambda q, history=(): responses[q], lambda d, s, e: doc[s:e])
    assert metrics["answered_with_evidence"] == pytest.approx(1 / 3)
    assert metrics["declined_unanswerable"] == pytest.approx(1 / 2)
    assert metrics["non_verbatim_quotes"] == 1
    assert bad_quotes[0]["question"] == "q2"
    assert metrics["n_answerable"] == 3 and metrics["n_unanswerable"] == 2


def test_score_ask_records_which_answerer_wrote_each_answer(tmp_path):
    from evals.summary import summarise

    responses = {
        "question q1": {"found": True, "answer": "x [1]", "citations": [], "answerer": "llm"},
        "question q2": {"found": True, "answer": "y", "citations": [], "answerer": "extractive"},
        "question q3": {"found": False, "answer": "no", "citations": []},  # an older service: no field
    }
    metrics, outcomes, _ = score_ask(_questions(), [], lambda q, history=(): responses[q], lambda d, s, e: None)
    assert [o.answerer for o in outcomes] == ["llm", "extractive", "extractive"]
    assert metrics["llm_answers"] == 1
    (tmp_path / "ask_llm").mkdir()
    (tmp_path / "ask_llm" / "metrics.json").write_text(json.dumps({"ask": metrics}))
    page = summarise(tmp_path, tmp_path / "RESULTS.md").read_text()
    assert "## /ask (LLM answerer, falling back to the extractive one)" in page
    assert "| answers written by the LLM (the rest fell back or declined) | 1 |" in page


def test_docs_from_hits_keeps_best_chunk_rank():
    hits = [("d1", 9.0), ("d2", 8.0), ("d1", 7.0), ("d3", 6.0)]
    assert docs_from_hits(hits, k=100) == {"d1": 1.0, "d2": 0.5, "d3": 0.25}
    assert list(docs_from_hits(hits, k=2)) == ["d1", "d2"]


def test_summary_page_quotes_the_runs(tmp_path):
    import json

    from evals.summary import summarise

    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    (out / "decisions").mkdir()
    per_kind = {"numeric": {"recall@5": 0.5, "mrr@10": 0.25, "n": 2}}
    run = {name: {"recall@1": 0.1, "recall@5": r5, "recall@10": 0.9, "mrr@10": 0.4, "ndcg@10": 0.5, "n": 2,
                  "per_kind": per_kind, "latency_ms_p50": 1.0} for name, r5 in (("bm25", 0.123), ("hybrid", 0.987))}
    (out / "run" / "metrics.json").write_text(json.dumps(run))
    (out / "decisions" / "metrics.json").write_text(json.dumps({"decisions": {"precision": 0.966, "recall": 1.0}}))
    page = summarise(out, tmp_path / "RESULTS.md").read_text()
    assert "| bm25 | 0.100 | 0.123 |" in page and "| hybrid | 0.100 | 0.987 |" in page
    assert "| precision (target ≥ 0.95) | 0.966 |" in page
    assert "/ask" not in page  # no ask run, no ask section
    assert "What each part" not in page  # nor an ablation section


def test_summary_page_quotes_the_ablation(tmp_path):
    import json

    from evals.summary import summarise

    (tmp_path / "ablate").mkdir()
    rows = {"hybrid (service default)": {"recall@1": 0.6, "recall@5": 0.93, "recall@10": 0.95, "mrr@10": 0.77,
                                         "ndcg@10": 0.8, "n": 2},
            "without best-sentence score": {"recall@1": 0.5, "recall@5": 0.9, "recall@10": 0.95, "mrr@10": 0.7,
                                            "ndcg@10": 0.75, "n": 2}}
    (tmp_path / "ablate" / "metrics.json").write_text(json.dumps(rows))
    page = summarise(tmp_path, tmp_path / "RESULTS.md").read_text()
    assert "| without best-sentence score | 0.500 | 0.900 |" in page


def test_summary_page_reports_the_held_out_set_apart(tmp_path):
    import json

    from evals.summary import summarise

    for folder, value in (("ask", 0.75), ("heldout_ask", 0.64), ("heldout2_ask", 0.65)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "metrics.json").write_text(json.dumps({"ask": {
            "answered_with_evidence": value, "answered_found": 0.9, "declined_unanswerable": 0.6,
            "non_verbatim_quotes": 0, "n_answerable": 50, "n_unanswerable": 25}}))
    page = summarise(tmp_path, tmp_path / "RESULTS.md").read_text()
    tuning, held = page.split("# Held-out questions")
    assert "(target ≥ 0.85) | 0.750 |" in tuning and "0.640" not in tuning
    assert "on held-out set 1 (evals/heldout/)" in held and "(target ≥ 0.85) | 0.640 |" in held
    # Each set is reported under its own heading, with how far it is still unseen.
    one, two = held.split("held-out set 2")[0], "held-out set 2" + held.split("held-out set 2", 1)[1]
    assert "0.650" not in one and "(target ≥ 0.85) | 0.650 |" in two and "before any change was judged on it" in held


def test_every_ablation_switches_off_a_real_setting():
    from evals.run import ABLATIONS
    from service.config import ServiceSettings

    fields = set(ServiceSettings.model_fields)
    assert ABLATIONS["hybrid (service default)"] == {}
    for name, overrides in ABLATIONS.items():
        assert set(overrides) <= fields, name


def test_summary_without_runs_is_an_error(tmp_path):
    from evals.summary import summarise

    with pytest.raises(FileNotFoundError):
        summarise(tmp_path, tmp_path / "RESULTS.md")
