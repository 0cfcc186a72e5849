"""The training helpers that need no model: the split, the batches, the AUC."""

from __future__ import annotations

import json
import random

import numpy as np

from evals.train_encoder import Triplet, batches, sentence_holds
from evals.metrics import auc
from evals.trainset import group_keys, section_key, split


def test_split_keeps_a_section_on_one_side_and_leaves_out_bad_rows(tmp_path):
    rows = []
    for s in range(40):
        for n in range(3):
            rows.append({"id": f"a{s}-{n}", "question": f"question {s} {n}?", "kind": "numeric", "doc": "d",
                         "section": f"Section {s}", "evidence": ["three words here"], "answer": "x"})
    rows.append({"id": "u1", "question": "parking permits?", "trap": "off_topic", "why": "never"})
    rows.append({"id": "bad", "question": "no evidence?", "kind": "numeric", "doc": "d", "evidence": [], "answer": "x"})
    rows.append(dict(rows[0], id="dup"))  # the same question under another id
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s, dropped = split([path])
    assert sorted(d.split(": ")[1] for d in dropped) == ["duplicate question", "evidence missing or under 3 words"]
    train_keys = {section_key(r) for r in s.train_questions}
    dev_keys = {section_key(r) for r in s.dev_questions}
    assert train_keys and dev_keys and not train_keys & dev_keys
    assert all(len([r for r in s.train_questions + s.dev_questions if section_key(r) == k]) == 3 for k in dev_keys)
    assert len(s.train_unanswerable) + len(s.dev_unanswerable) == 1
    # Section names are compared without case or punctuation.
    assert section_key({"id": "x", "doc": "d", "section": "Item 7: Screening"}) == \
        section_key({"id": "y", "doc": "d", "section": "item 7 screening"})


def test_questions_whose_evidence_overlaps_are_one_group_whatever_their_labels():
    paper = "the board noted the report. it asked for an update on screening uptake in six months. any other business."
    row = {"question": "q", "kind": "decision", "doc": "d", "answer": "x"}
    rows = [dict(row, id="a", section="Minutes 6. Screening Update", evidence=["asked for an update on screening"]),
            dict(row, id="b", section="Minutes of the previous meeting", evidence=["screening uptake in six months"]),
            dict(row, id="c", section="Any other business", evidence=["any other business"]),
            {"id": "u", "question": "who chaired it?", "trap": "detail_not_stated", "doc": "d",
             "section": "minutes of the previous meeting", "why": "not said"}]
    keys = group_keys(rows, {"d": paper})
    assert keys[0] == keys[1] == keys[3] != keys[2]  # u joins b by its label, b joins a by its quote
    assert keys[0] == min(section_key(r) for r in (rows[0], rows[1], rows[3]))


def test_batches_never_hold_one_positive_twice():
    triplets = [Triplet(f"q{i}", f"p{i % 5}", "n", f"{'s' if i % 2 else 'c'}{i % 5}") for i in range(23)]
    out = batches(triplets, 4, random.Random(1))
    assert sum(len(b) for b in out) == 23
    assert all(len({t.group for t in b}) == len(b) <= 4 for b in out)


def test_a_sentence_holds_evidence_when_it_holds_most_of_a_quote_or_is_part_of_one():
    quote = "The Board noted the report. It asked for an update in six months on screening uptake."
    assert sentence_holds("It asked for an update in six months on screening uptake.", [quote])
    assert not sentence_holds("Screening uptake was discussed.", [quote])


def test_auc_against_hand_computed_values():
    assert auc(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0])) == 1.0
    assert auc(np.array([0.1, 0.9]), np.array([1, 0])) == 0.0
    # Positives 0.8 and 0.3 against negatives 0.5 and 0.3: pairs won 1 + 0 + 0.5(tie) + 1 = 2.5 of 4.
    assert auc(np.array([0.8, 0.3, 0.5, 0.3]), np.array([1, 1, 0, 0])) == 0.625
