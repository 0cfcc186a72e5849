"""The question sets themselves: well formed, and every evidence quote really is in the papers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.relevance import normalise

EVALS = Path(__file__).resolve().parent.parent / "evals"
KINDS = {"decision", "numeric", "who_when", "paraphrase", "disambiguation"}


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (EVALS / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_question_set_is_well_formed():
    rows = _rows("questions.jsonl")
    assert len(rows) >= 80
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["kind"] for r in rows} == KINDS
    for r in rows:
        assert r["question"].strip() and r["answer"].strip() and r["evidence"], r["id"]
        assert all(len(e.split()) >= 3 for e in r["evidence"]), r["id"]


def test_unanswerable_set_is_well_formed():
    rows = _rows("unanswerable.jsonl")
    assert len(rows) >= 30 and len({r["id"] for r in rows}) == len(rows)
    assert all(r["question"].strip() and r["why"].strip() for r in rows)


@pytest.mark.model
def test_every_evidence_quote_occurs_in_the_papers(real_index):
    """The first quote is in the question's own document; any other (a second passage that answers
    the question as well, found by judging the pooled results) is in some bundled document."""
    from indexer.store import load_index

    texts = {doc_id: normalise(t) for doc_id, t in load_index(real_index).texts.items()}
    missing = []
    for r in _rows("questions.jsonl"):
        first, *others = [normalise(e) for e in r["evidence"]]
        if first not in texts.get(r["doc"], ""):
            missing.append((r["id"], r["evidence"][0][:80]))
        missing += [(r["id"], e[:80]) for e in others if not any(e in t for t in texts.values())]
    assert not missing, missing
