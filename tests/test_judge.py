"""The judge's features and its saved form, without the real model: a tiny judge fitted here."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest

from indexer.records import Chunk
from service.judge import ALL_SCALARS, JUDGE_VERSION, SCALARS, TOKEN_SCALARS, Candidate, Judge, Vocabulary, features, load_judge
from service.question import QuestionReader

READER = QuestionReader(["London Borough of Barnet"])


def _chunk(text: str, kind: str = "text") -> Chunk:
    return Chunk(id="c1", doc_id="d1", text=text, char_start=0, char_end=len(text), kind=kind,
                 document_type="report", title="Report", council="London Borough of Barnet",
                 body="Health & Wellbeing Board", meeting_date=date(2018, 3, 8), agenda_item="7",
                 heading_path=("Pack", "Item 7: Screening"), page=None, tokens=len(text.split()), embed_text=text,
                 content_hash="h")


def _features(question: str, sentences: list[str], kind: str = "text"):
    chunks = [_chunk(" ".join(sentences), kind)]
    vectors = np.eye(4, dtype=np.float32)[:1]
    vocab = Vocabulary([chunks[0].text, "other words entirely", "screening uptake elsewhere"])
    cands = [Candidate(s, np.eye(4, dtype=np.float32)[i % 4], 0, 0, 1.0, False) for i, s in enumerate(sentences)]
    return features(READER.read(question), np.eye(4, dtype=np.float32)[0], cands, chunks, vectors, vocab)


def test_features_say_what_a_cosine_cannot():
    pair, scalars = _features("how much was the cervical screening budget in 2018?",
                              ["The screening budget was £1.2m in 2018.", "Screening was discussed at length."])
    assert pair.shape == (2, 8) and scalars.shape == (2, len(SCALARS))
    col = {name: i for i, name in enumerate(SCALARS)}
    assert scalars[0, col["asks_figure"]] == 1 and scalars[0, col["figure_held"]] == 1
    assert scalars[1, col["figure_held"]] == 0
    assert scalars[0, col["period_named"]] == 1 and scalars[0, col["period_reached"]] == 1
    assert scalars[0, col["idf_cover_sentence"]] > scalars[1, col["idf_cover_sentence"]]
    assert scalars[0, col["cos_sentence"]] == 1 and scalars[1, col["cos_sentence"]] == 0
    # A word the passage lacks altogether ("cervical") shows as a missing rare word.
    assert scalars[0, col["missing_rare"]] > 0
    # Against the question's other candidates: the best has gap 0 and rank 1, the other falls behind.
    assert scalars[0, col["cos_sentence_gap"]] == 0 and scalars[1, col["cos_sentence_gap"]] == -1
    assert scalars[0, col["cos_rank"]] == 1 and scalars[1, col["cos_rank"]] == 0.5


def test_decision_questions_see_resolutions():
    _, scalars = _features("what did the board resolve on screening?", ["RESOLVED that the report be noted."],
                           kind="resolution")
    col = {name: i for i, name in enumerate(SCALARS)}
    assert scalars[0, col["decision_q"]] == 1 and scalars[0, col["is_resolution"]] == 1


def test_a_saved_judge_loads_scores_and_calibrates(tmp_path):
    dim, hidden = 8, 3
    rng = np.random.default_rng(0)
    weights = {"mean": np.zeros(len(ALL_SCALARS), np.float32), "std": np.ones(len(ALL_SCALARS), np.float32),
               "w1": rng.normal(size=(dim + len(ALL_SCALARS), hidden)).astype(np.float32),
               "b1": np.zeros(hidden, np.float32), "w2": np.ones((hidden, 1), np.float32), "b2": np.zeros(1, np.float32)}
    np.savez(tmp_path / "judge.npz", **weights)
    (tmp_path / "judge.json").write_text(json.dumps({"version": JUDGE_VERSION, "scalars": list(ALL_SCALARS), "encoder": "m",
                                                     "calibration": {"x": [0.2, 0.8], "y": [0.1, 0.9]}}))
    judge = load_judge(tmp_path)
    pair, scalars = _features("how many schools?", ["16 schools signed up.", "Schools were thanked."])
    scalars = np.concatenate([scalars, np.full((2, len(TOKEN_SCALARS)), 0.5, np.float32)], axis=1)
    p = judge.probabilities(pair, scalars)
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
    # By hand: one hidden layer with ReLU, then the sigmoid.
    x = np.concatenate([pair, scalars], axis=1)
    want = 1 / (1 + np.exp(-(np.maximum(x @ weights["w1"], 0) @ weights["w2"]).ravel()))
    assert np.allclose(p, want, atol=1e-5)
    assert judge.answerable(0.0) == pytest.approx(0.1) and judge.answerable(0.5) == pytest.approx(0.5)
    assert load_judge(tmp_path / "missing") is None


def test_a_judge_with_other_features_is_refused(tmp_path):
    (tmp_path / "judge.json").write_text(json.dumps({"version": 1, "scalars": ["cos_sentence"], "calibration": {}}))
    with pytest.raises(ValueError, match="retrain"):
        Judge(tmp_path)
