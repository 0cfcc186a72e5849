"""The question sets themselves: well formed, and every evidence quote really is in the papers.

The tuning set (evals/questions.jsonl, evals/unanswerable.jsonl), on which weights and the /ask
threshold were chosen, and two held-out sets (evals/heldout/, evals/heldout2/), each written without
looking at the service, used only to measure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.relevance import normalise

EVALS = Path(__file__).resolve().parent.parent / "evals"
KINDS = {"decision", "numeric", "who_when", "paraphrase", "disambiguation"}


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (EVALS / name).read_text(encoding="utf-8").splitlines() if line.strip()]


SETS = [("questions.jsonl", "unanswerable.jsonl", 80, 30),
        ("heldout/questions.jsonl", "heldout/unanswerable.jsonl", 40, 20),
        ("heldout2/questions.jsonl", "heldout2/unanswerable.jsonl", 60, 30)]


@pytest.mark.parametrize("answerable, _u, least, _l", SETS)
def test_question_set_is_well_formed(answerable, _u, least, _l):
    rows = _rows(answerable)
    assert len(rows) >= least
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["kind"] for r in rows} == KINDS
    for r in rows:
        assert r["question"].strip() and r["answer"].strip() and r["evidence"], r["id"]
        assert all(len(e.split()) >= 3 for e in r["evidence"]), r["id"]


@pytest.mark.parametrize("_a, unanswerable, _l, least", SETS)
def test_unanswerable_set_is_well_formed(_a, unanswerable, _l, least):
    rows = _rows(unanswerable)
    assert len(rows) >= least and len({r["id"] for r in rows}) == len(rows)
    assert all(r["question"].strip() and r["why"].strip() for r in rows)


def test_held_out_sets_share_no_question_or_id_with_each_other_or_the_tuning_set():
    files = [(a, u) for a, u, _, _ in SETS]
    for i, (a, u) in enumerate(files):
        rows = _rows(a) + _rows(u)
        for a2, u2 in files[:i]:
            earlier = _rows(a2) + _rows(u2)
            assert not {r["question"].lower() for r in rows} & {r["question"].lower() for r in earlier}, (a, a2)
            assert not {r["id"] for r in rows} & {r["id"] for r in earlier}, (a, a2)


@pytest.mark.model
@pytest.mark.parametrize("answerable", [s[0] for s in SETS])
def test_every_evidence_quote_occurs_in_the_papers(real_index, answerable):
    """The first quote is in the question's own document; any other (a second passage that answers
    the question as well, found by judging the pooled results) is in some bundled document."""
    from indexer.store import load_index

    texts = {doc_id: normalise(t) for doc_id, t in load_index(real_index).texts.items()}
    missing = []
    for r in _rows(answerable):
        first, *others = [normalise(e) for e in r["evidence"]]
        if first not in texts.get(r["doc"], ""):
            missing.append((r["id"], r["evidence"][0][:80]))
        missing += [(r["id"], e[:80]) for e in others if not any(e in t for t in texts.values())]
    assert not missing, missing
