"""The question-level answerability model: its features by hand, its saved form, the fallback without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.judge import (ANSWERABILITY_VERSION, JUDGE_VERSION, QUESTION_FEATURES, SCALARS, Answerability, Judge,
                           question_features)

COL = {name: i for i, name in enumerate(SCALARS)}
QF = {name: i for i, name in enumerate(QUESTION_FEATURES)}


def _scalars(n: int, **columns) -> np.ndarray:
    s = np.zeros((n, len(SCALARS)), np.float32)
    for name, values in columns.items():
        s[:, COL[name]] = values
    return s


def test_question_features_by_hand():
    # Candidates out of order: the judge's best is the second row, from passage 7.
    probs = np.array([0.2, 0.8, 0.6, 0.1])
    rows = np.array([3, 7, 7, 5])
    s = _scalars(4, asks_figure=1, figure_held=[0, 0, 1, 1], missing_rare=[0.4, 0.5, 0.5, 0.3],
                 idf_cover_passage=[0.2, 0.6, 0.6, 0.9], cos_sentence=[0.1, 0.7, 0.5, 0.2])
    f = question_features(probs, s, rows)
    assert f.shape == (len(QUESTION_FEATURES),)
    assert f[QF["logit_1"]] == pytest.approx(np.log(0.8 / 0.2), rel=1e-5)
    assert f[QF["gap_12"]] == pytest.approx(0.2) and f[QF["gap_13"]] == pytest.approx(0.6)
    assert f[QF["mean_top5"]] == pytest.approx(np.mean(probs))
    # 0.8 and 0.6 are within half of the best; 0.8 and 0.6 reach 0.3.
    assert f[QF["support_half"]] == pytest.approx(np.log1p(2)) and f[QF["support_03"]] == pytest.approx(np.log1p(2))
    assert f[QF["n_candidates"]] == pytest.approx(np.log1p(4))
    assert f[QF["passages_top5"]] == pytest.approx(3 / 4)
    assert f[QF["top3_one_passage"]] == pytest.approx(0.5)  # of the 2nd and 3rd best, one shares the best's passage
    assert f[QF["best_cos_sentence"]] == pytest.approx(0.7)
    assert f[QF["best_idf_cover_passage"]] == pytest.approx(0.6) and f[QF["max_idf_cover_passage"]] == pytest.approx(0.9)
    assert f[QF["best_missing_rare"]] == pytest.approx(0.5) and f[QF["missing_rare_everywhere"]] == pytest.approx(0.3)
    # A figure is asked for: the best candidate holds none, one of the top three does.
    assert f[QF["asks_figure"]] == 1 and f[QF["figure_best"]] == 0 and f[QF["figure_top3"]] == 1


def test_no_candidates_no_features():
    assert not question_features(np.zeros(0), np.zeros((0, len(SCALARS))), np.zeros(0, int)).any()


def _model(**coef) -> dict:
    n = len(QUESTION_FEATURES)
    w = np.zeros(n)
    for name, value in coef.items():
        w[QF[name]] = value
    return {"version": ANSWERABILITY_VERSION, "features": list(QUESTION_FEATURES), "mean": [0.0] * n, "std": [1.0] * n,
            "coef": w.tolist(), "intercept": -1.0, "calibration": {"x": [0.0, 1.0], "y": [0.0, 1.0]}}


def _light_judge(folder: Path) -> None:
    n, dim = len(SCALARS), 4
    np.savez(folder / "judge.npz", mean=np.zeros(n, np.float32), std=np.ones(n, np.float32),
             w1=np.ones((dim + n, 2), np.float32), b1=np.zeros(2, np.float32), w2=np.ones((2, 1), np.float32),
             b2=np.zeros(1, np.float32))
    (folder / "judge.json").write_text(json.dumps({"version": JUDGE_VERSION, "scalars": list(SCALARS), "encoder": "m",
                                                   "calibration": {"x": [0.2, 0.8], "y": [0.1, 0.9]}}))


def test_without_the_file_the_best_probability_decides(tmp_path):
    _light_judge(tmp_path)
    judge = Judge(tmp_path)
    assert judge.answerability is None
    probs, s, rows = np.array([0.3, 0.65]), _scalars(2), np.array([1, 2])
    # By hand: 0.65 lies three quarters of the way from 0.2 to 0.8, so 0.1 + 0.75 * 0.8.
    assert judge.confidence(probs, s, rows) == pytest.approx(judge.answerable(0.65)) == pytest.approx(0.7)


def test_a_saved_model_loads_and_decides(tmp_path):
    _light_judge(tmp_path)
    (tmp_path / Answerability.FILE).write_text(json.dumps(_model(logit_1=1.0, figure_best=2.0, support_half=0.5)))
    judge = Judge(tmp_path)
    assert judge.answerability is not None
    probs, rows = np.array([0.3, 0.6]), np.array([1, 2])
    s = _scalars(2)
    got = judge.confidence(probs, s, rows)
    z = np.log(0.6 / 0.4) + 0.5 * np.log1p(2) - 1.0  # by hand: logit_1, support_half, intercept
    assert got == pytest.approx(1 / (1 + np.exp(-z)), rel=1e-5)
    assert got != pytest.approx(judge.answerable(0.6))  # not the best-probability calibration


def test_the_score_moves_with_its_inputs(tmp_path):
    model = Answerability(_model(logit_1=1.0, gap_12=-1.0, figure_best=2.0))
    rows = np.array([1, 2, 3])
    base = _scalars(3, asks_figure=1)
    low, high = np.array([0.4, 0.3, 0.1]), np.array([0.9, 0.3, 0.1])
    assert model(question_features(high, base, rows)) > model(question_features(low, base, rows))
    held = _scalars(3, asks_figure=1, figure_held=[1, 0, 0])  # the figure asked for is in the best candidate
    assert model(question_features(low, held, rows)) > model(question_features(low, base, rows))
    # The calibration is applied after the regression: a flat one decides nothing.
    flat = Answerability(_model(logit_1=1.0) | {"calibration": {"x": [0.0, 1.0], "y": [0.3, 0.3]}})
    assert flat(question_features(high, base, rows)) == pytest.approx(0.3)


def test_a_model_of_other_features_is_refused(tmp_path):
    _light_judge(tmp_path)
    bad = _model() | {"features": list(QUESTION_FEATURES[:-1])}
    (tmp_path / Answerability.FILE).write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="other question features"):
        Judge(tmp_path)


def test_fitted_on_out_of_fold_scores_it_beats_chance_and_serves_as_fitted():
    from evals.train_judge import Examples, fit_answerability, out_of_fold, question_table

    rng = np.random.default_rng(3)

    def examples(questions: int) -> Examples:
        pair, scalars, labels, owner, rows = [], [], [], [], []
        for q in range(questions):
            n = 5
            y = np.zeros(n, np.float32)
            if q % 2:
                y[rng.integers(n)] = 1
            s = rng.normal(size=(n, len(SCALARS))).astype(np.float32)
            s[:, COL["cos_sentence"]] += 3.0 * y
            pair.append(rng.normal(size=(n, 4)).astype(np.float32))
            scalars.append(s)
            labels += list(y)
            owner += [q] * n
            rows += list(rng.integers(0, 50, size=n))
        return Examples(np.concatenate(pair), np.concatenate(scalars), np.asarray(labels, np.float32),
                        np.asarray(owner), np.asarray([bool(q % 2) for q in range(questions)]),
                        rows=np.asarray(rows), groups=[f"paper {q // 2}" for q in range(questions)])

    train, dev = examples(120), examples(60)
    oof = out_of_fold(train, dev, folds=3, hidden=8, epochs=15, lr=5e-3)
    assert oof.shape == train.labels.shape and np.all((oof > 0) & (oof < 1))
    dev_p = np.clip(1 / (1 + np.exp(-dev.scalars[:, COL["cos_sentence"]])), 1e-3, 1 - 1e-3)
    record = fit_answerability(train, oof, dev, dev_p)
    assert record["training"]["dev_auc"] > 0.7
    served = Answerability(json.loads(json.dumps(record)))  # through JSON, as saved
    x, _ = question_table(dev, dev_p)
    raw = np.array([served.raw(f) for f in x])
    assert np.all((raw > 0) & (raw < 1))
    # The calibrated score is monotone in the regression's (isotonic), within [0, 1].
    cal = np.array([served(f) for f in x])
    order = np.argsort(raw)
    assert np.all(np.diff(cal[order]) >= -1e-9) and cal.min() >= 0 and cal.max() <= 1


def test_train_judge_writes_the_model_only_when_asked(tmp_path):
    from evals.train_judge import Examples, fit_and_save

    rng = np.random.default_rng(4)

    def examples(questions: int) -> Examples:
        n = 4
        y = np.zeros((questions, n), np.float32)
        y[1::2, 0] = 1
        s = rng.normal(size=(questions * n, len(SCALARS))).astype(np.float32)
        s[:, COL["cos_sentence"]] += 3.0 * y.ravel()
        return Examples(rng.normal(size=(questions * n, 4)).astype(np.float32), s, y.ravel(),
                        np.repeat(np.arange(questions), n), np.arange(questions) % 2 == 1,
                        rows=rng.integers(0, 30, size=questions * n), groups=[f"g{q // 3}" for q in range(questions)])

    train, dev = examples(60), examples(30)
    meta = fit_and_save(train, dev, tmp_path, "m", 60, 30, 0.0, folds=2, hidden=4, epochs=3)
    assert (tmp_path / Answerability.FILE).exists() and meta["answerability"]["folds"] == 2
    assert Judge(tmp_path).answerability is not None
    # Retrained without it (the default), a stale model does not outlive the retrain.
    fit_and_save(train, dev, tmp_path, "m", 60, 30, 0.0, hidden=4, epochs=3)
    assert not (tmp_path / Answerability.FILE).exists() and Judge(tmp_path).answerability is None
