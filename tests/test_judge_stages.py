"""The judge's token-level match, its two stages and the fallback when the second is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.judge import ALL_SCALARS, JUDGE_VERSION, TOKEN_SCALARS, Judge, combine, token_features
from service.tokens import Tokens

ENCODER = Path(__file__).resolve().parent.parent / "models" / "encoder"


def _unit(*rows) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_token_match_by_hand():
    # Question pieces: a common one (idf 1) and a rare one (idf 3) along two axes.
    q = Tokens(np.array([1, 2]), _unit([1, 0, 0], [0, 1, 0]))
    weights, rare = np.array([1.0, 3.0], np.float32), np.array([False, True])
    holds_both = Tokens(np.array([1, 2]), _unit([1, 0, 0], [0, 1, 0]))
    common_only = Tokens(np.array([1]), _unit([1, 0, 0]))
    elsewhere = Tokens(np.array([9]), _unit([0, 0, 1]))
    out = token_features(q, [holds_both, common_only, elsewhere], [0, 1, 1], weights, rare)
    col = {n: i for i, n in enumerate(TOKEN_SCALARS)}
    assert out.shape == (3, len(TOKEN_SCALARS))
    # IDF-weighted mean of each piece's best cosine: (1*1 + 3*1)/4, (1*1 + 3*0)/4, 0.
    assert out[:, col["tok_mean"]] == pytest.approx([1.0, 0.25, 0.0])
    assert out[:, col["tok_rare_min"]] == pytest.approx([1.0, 0.0, 0.0])
    assert out[:, col["tok_rare_share"]] == pytest.approx([1.0, 0.0, 0.0])
    # Candidates 1 and 2 share a passage: it matches the common piece but not the rare one.
    assert out[1, col["tok_mean_passage"]] == pytest.approx(0.25) and out[2, col["tok_mean_passage"]] == pytest.approx(0.25)
    assert out[:, col["tok_mean_gap"]] == pytest.approx([0.0, -0.75, -1.0])


def test_token_match_without_content_words_misses_nothing():
    out = token_features(Tokens(np.zeros(0, np.int64), np.zeros((0, 3), np.float32)),
                         [Tokens(np.array([1]), _unit([1, 0, 0]))], [0], np.zeros(0), np.zeros(0, bool))
    col = {n: i for i, n in enumerate(TOKEN_SCALARS)}
    assert out[0, col["tok_rare_min"]] == 1 and out[0, col["tok_mean"]] == 0


def test_combine_ranks_the_unread_below_the_read():
    light = np.array([2.0, -1.0, 0.5, -3.0])
    top = np.array([0, 2])
    p = combine(light, top, np.array([-1.0, 1.0]), weight=0.0)
    assert p[1] == 0 and p[3] == 0
    assert p[2] > p[0] > 0  # the second stage reorders what it read
    assert combine(light, top, np.array([-1.0, 1.0]), weight=1.0)[0] == pytest.approx(1 / (1 + np.exp(-1.0)))


def _light_judge(folder: Path, cross: bool) -> None:
    dim, hidden, n = 8, 3, len(ALL_SCALARS)
    rng = np.random.default_rng(0)
    np.savez(folder / "judge.npz", mean=np.zeros(n, np.float32), std=np.ones(n, np.float32),
             w1=rng.normal(size=(dim + n, hidden)).astype(np.float32), b1=np.zeros(hidden, np.float32),
             w2=np.ones((hidden, 1), np.float32), b2=np.zeros(1, np.float32))
    (folder / "judge.json").write_text(json.dumps({
        "version": JUDGE_VERSION, "scalars": list(ALL_SCALARS), "encoder": "m", "cross": cross,
        "calibration": {"x": [0.0, 1.0], "y": [0.0, 0.5]}, "calibration_light": {"x": [0.0, 1.0], "y": [0.0, 1.0]}}))


def test_without_its_second_stage_the_light_judge_decides_with_its_own_calibration(tmp_path):
    _light_judge(tmp_path, cross=True)  # trained with a cross-encoder whose file is missing
    judge = Judge(tmp_path)
    assert judge.cross is None
    rng = np.random.default_rng(1)
    pair, scalars = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(3, len(ALL_SCALARS))).astype(np.float32)
    assert np.allclose(judge.scores("q", pair, scalars, ["a", "b", "c"]), judge.probabilities(pair, scalars))
    assert judge.answerable(0.8) == pytest.approx(0.8)  # calibration_light, not the two-stage one


def test_a_trained_light_judge_beats_chance():
    from evals.train_judge import Examples, fit, question_scores

    rng = np.random.default_rng(5)

    def examples(questions: int) -> Examples:
        pair, scalars, labels, owner = [], [], [], []
        for q in range(questions):
            n = 6
            y = np.zeros(n, np.float32)
            if q % 3:  # two in three questions are answerable: one candidate answers
                y[rng.integers(n)] = 1
            s = rng.normal(size=(n, len(ALL_SCALARS))).astype(np.float32)
            s[:, 0] += 3.0 * y  # the answering candidate is closer in meaning, with noise
            pair.append(rng.normal(size=(n, 4)).astype(np.float32))
            scalars.append(s)
            labels += list(y)
            owner += [q] * n
        return Examples(np.concatenate(pair), np.concatenate(scalars), np.asarray(labels, np.float32),
                        np.asarray(owner), np.asarray([bool(q % 3) for q in range(questions)]))

    train, dev = examples(150), examples(60)
    weights, history = fit(train, dev, hidden=8, epochs=40, lr=5e-3)
    assert max(h["dev_question_auc"] for h in history) > 0.6
    x = np.concatenate([dev.pair, (dev.scalars - weights["mean"]) / weights["std"]], axis=1)
    logits = (np.maximum(x @ weights["w1"] + weights["b1"], 0) @ weights["w2"] + weights["b2"]).ravel()
    _, good = question_scores(dev, logits)
    # Chance picks the answering one of six for one in six answerable questions.
    assert good.sum() / dev.answerable.sum() > 0.4


@pytest.mark.model
@pytest.mark.skipif(not (ENCODER / "config.json").exists(), reason="the tuned encoder is not in models/encoder")
def test_the_exported_cross_encoder_scores_as_torch_does(tmp_path):
    import torch

    from evals.train_cross import build_model, export
    from service.crossjudge import CrossJudge, encode_pairs, load_cross

    torch.manual_seed(0)
    model = build_model(str(ENCODER), layers=1).eval()
    export(model, tmp_path, str(ENCODER), {"k": 4, "max_tokens": 32, "layers": 1}, int8=False)
    served = load_cross(tmp_path)
    assert isinstance(served, CrossJudge) and served.k == 4
    texts = ["Budget › Public health\nThe grant was £1.2m in 2018/19.", "Thanks were recorded."]
    got = served.logits("how big was the public health grant?", texts)
    ids, mask, types = encode_pairs(served.tokenizer, "how big was the public health grant?", texts)
    assert ids.shape[1] <= 32 and (types[0] == 1).any()  # the candidate is the second segment
    with torch.no_grad():
        want = model(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)).numpy()
    assert np.allclose(got, want, atol=1e-4)
    assert load_cross(tmp_path / "missing") is None


def test_the_shipped_judge_loads_as_the_light_judge_alone():
    folder = Path(__file__).resolve().parent.parent / "models" / "judge"
    judge = Judge(folder)
    assert judge.cross is None and not judge.uses_tokens
    assert 0.0 <= judge.answerable(0.5) <= 1.0


@pytest.mark.model
@pytest.mark.skipif(not (ENCODER / "config.json").exists(), reason="the tuned encoder is not in models/encoder")
def test_token_vectors_of_the_real_encoder():
    from service.judge import RARE_PIECE
    from service.tokens import TokenEncoder

    enc = TokenEncoder(ENCODER)
    enc.fit_idf(["the screening budget grew", "the board met", "the board noted the report"])
    q, idf, rare = enc.question("what was the screening budget?", RARE_PIECE)
    words = [enc.tokenizer.id_to_token(int(i)) for i in q.ids]
    assert "what" not in words and "?" not in words and "screening" in words
    assert np.allclose(np.linalg.norm(q.vectors, axis=1), 1.0, atol=1e-5)
    assert idf[words.index("screening")] > 0 and rare.all()  # each content word is in at most one passage
    near, far = enc.encode(["The screening budget was £1.2m.", "The board met in March."])
    match = token_features(q, [near, far], [0, 1], idf, rare)
    assert match[0, 0] > match[1, 0]  # the sentence holding the words matches them better
    # Asked again (a candidate of the next question), a text comes from the cache, not a model pass;
    # a new one beside it is run alone, and batched or not its vectors are the same.
    runs = []
    real_run = enc._run
    enc._run = lambda texts, batch: runs.append(list(texts)) or real_run(texts, batch)
    again, other = enc.encode(["The screening budget was £1.2m.", "Cabinet approved the plan."])
    assert again is near and runs == [["Cabinet approved the plan."]]
    alone = real_run(["Cabinet approved the plan."], 4096)[0]
    assert np.allclose(alone.vectors, other.vectors, atol=1e-5)


@pytest.mark.parametrize("argv, seed", [([], 13), (["--seed", "7"], 7)])
def test_train_judge_seed_reaches_the_fit(monkeypatch, tmp_path, argv, seed):
    # `python -m evals train-judge --seed S` hands S to fit() (through train_judge's **kw, which the
    # training record keeps); without it the shipped judge's seed, 13.
    from types import SimpleNamespace

    import evals.train_judge
    import evals.training
    from evals.__main__ import main

    seen = {}

    def fake_train_judge(answerer, train_rows, dev_rows, out, encoder, **kw):
        seen.update(kw)
        return {"training": {}, "calibration": {}}

    index = SimpleNamespace(manifest={"model": {"name": "m"}}, chunks=[])
    monkeypatch.setattr(evals.training, "_services", lambda *a, **k: SimpleNamespace(answerer=None, index=index))
    monkeypatch.setattr(evals.train_judge, "train_judge", fake_train_judge)
    assert main(["train-judge", "--index", str(tmp_path), "--out", str(tmp_path / "j"), *argv]) == 0
    assert seen["seed"] == seed
