"""The question sets themselves: well formed, and every evidence quote really is in the papers.

The tuning set (evals/questions.jsonl, evals/unanswerable.jsonl), on which weights and the /ask
threshold were chosen, four held-out sets (evals/heldout/, evals/heldout2/, evals/heldout3/, evals/heldout4/), each
written without looking at the service, used only to measure, and the training data (evals/train/:
train and dev, split by group) on which the encoder and the judge are fitted.
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
        ("heldout2/questions.jsonl", "heldout2/unanswerable.jsonl", 60, 30),
        ("heldout3/questions.jsonl", "heldout3/unanswerable.jsonl", 100, 50),
        ("heldout4/questions.jsonl", "heldout4/unanswerable.jsonl", 100, 50),
        ("kent/questions.jsonl", "kent/unanswerable.jsonl", 100, 40)]
HELD_OUT = SETS[1:]
TRAIN = [("train/train_questions.jsonl", "train/train_unanswerable.jsonl", 700, 300),
         ("train/dev_questions.jsonl", "train/dev_unanswerable.jsonl", 200, 80)]
KENT_PDFS = Path(__file__).resolve().parents[2] / "shared" / "council_pdfs"


@pytest.mark.parametrize("answerable, _u, least, _l", SETS + TRAIN)
def test_question_set_is_well_formed(answerable, _u, least, _l):
    rows = _rows(answerable)
    assert len(rows) >= least
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["kind"] for r in rows} == KINDS
    for r in rows:
        assert r["question"].strip() and r["answer"].strip() and r["evidence"], r["id"]
        assert all(len(e.split()) >= 3 for e in r["evidence"]), r["id"]


@pytest.mark.parametrize("_a, unanswerable, _l, least", SETS + TRAIN)
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


def test_training_data_never_holds_a_held_out_question():
    held = {r["question"].lower() for a, u, _, _ in HELD_OUT for r in _rows(a) + _rows(u)}
    for a, u, _, _ in TRAIN:
        assert not {r["question"].lower() for r in _rows(a) + _rows(u)} & held, a


def test_train_and_dev_share_no_group():
    """Split by group (one section label, or overlapping evidence): near-duplicates never straddle it."""
    from evals.trainset import group_keys

    sides = [_rows(a) + _rows(u) for a, u, _, _ in TRAIN]
    keys = group_keys(sides[0] + sides[1])
    assert not set(keys[:len(sides[0])]) & set(keys[len(sides[0]):])


@pytest.fixture(scope="module")
def kent_texts() -> dict[str, str]:
    """The Kent PDFs' extracted text, parsed here (they are not in the bundled corpus, nor committed)."""
    if not KENT_PDFS.is_dir():
        return {}
    from indexer.discover import discover
    from indexer.parse import parse

    return {s.doc_id: normalise(parse(s).text) for s in discover(KENT_PDFS) if s.path.suffix == ".pdf"}


@pytest.mark.model
@pytest.mark.parametrize("answerable", [s[0] for s in SETS + TRAIN])
def test_every_evidence_quote_occurs_in_the_papers(real_index, kent_texts, answerable):
    """The first quote is in the question's own document; any other (a second passage that answers
    the question as well, found by judging the pooled results) is in some bundled document. Questions
    on the Kent PDFs are checked when ../shared is beside the checkout."""
    from indexer.store import load_index

    texts = {doc_id: normalise(t) for doc_id, t in load_index(real_index).texts.items()} | kent_texts
    missing, checked = [], 0
    for r in _rows(answerable):
        if r["doc"].startswith("cabinet__") and not kent_texts:
            continue
        checked += 1
        first, *others = [normalise(e) for e in r["evidence"]]
        if first not in texts.get(r["doc"], ""):
            missing.append((r["id"], r["evidence"][0][:80]))
        missing += [(r["id"], e[:80]) for e in others if not any(e in t for t in texts.values())]
    assert checked and not missing, missing
