"""Cross-fitting the judge's training examples: folds of the training split by group, an encoder
trained without each fold, each training question gathered through the index of the encoder that
never saw it (evals/trainset.py fold_of, evals/train_judge.py collect_folds, the two CLI options)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from evals import trainset
from evals.train_judge import Examples


def test_folds_keep_each_group_whole_and_split_the_real_training_set():
    rows = trainset.load("train_questions") + trainset.load("train_unanswerable")
    keys = trainset.group_keys(rows)
    folds = [trainset.fold_of(k, 2) for k in keys]
    by_group: dict[str, set[int]] = {}
    for k, f in zip(keys, folds):
        by_group.setdefault(k, set()).add(f)
    assert all(len(f) == 1 for f in by_group.values())
    share = sum(folds) / len(folds)
    assert 0.3 < share < 0.7, share  # both halves are a real share of the questions
    assert [trainset.fold_of(k, 2) for k in keys] == folds  # the same every time (no process-salted hash)


def test_collect_folds_takes_each_row_from_its_own_folds_answerer(monkeypatch):
    import evals.train_judge as tj

    def fake_collect(rows, answerer, tokens=False):
        n = 3  # three candidates a question, each scalar saying which answerer made it
        q = len(rows)
        return Examples(np.zeros((q * n, 2), np.float32), np.full((q * n, 1), answerer, np.float32),
                        np.tile(np.array([1, 0, 0], np.float32), q), np.repeat(np.arange(q), n),
                        np.array(["evidence" in r for r in rows]), ["t"] * (q * n), [r["question"] for r in rows],
                        np.arange(q * n), [f"g-{r['question']}" for r in rows])

    monkeypatch.setattr(tj, "collect", fake_collect)
    rows = [{"question": f"q{i}", **({"evidence": ["x"]} if i % 3 else {})} for i in range(7)]
    folds = [0, 1, 1, 0, 1, 0, 0]
    ex = tj.collect_folds(rows, [10, 11], folds)
    for i, f in enumerate(folds):
        m = ex.question == i
        assert m.sum() == 3 and np.all(ex.scalars[m, 0] == 10 + f)
        assert ex.asked[i] == f"q{i}" and ex.groups[i] == f"g-q{i}"
        assert ex.answerable[i] == (i % 3 != 0)


def test_train_judge_fold_indexes_reach_the_training(monkeypatch, tmp_path):
    import evals.train_judge
    import evals.training
    from evals.__main__ import main

    seen = {}

    def fake_train_judge(answerer, train_rows, dev_rows, out, encoder, **kw):
        seen.update(kw, rows=len(train_rows))
        return {"training": {}, "calibration": {}}

    index = SimpleNamespace(manifest={"model": {"name": "m"}}, chunks=[])
    monkeypatch.setattr(evals.training, "_services", lambda p, *a, **k: SimpleNamespace(answerer=str(p), index=index))
    monkeypatch.setattr(evals.train_judge, "train_judge", fake_train_judge)
    assert main(["train-judge", "--index", str(tmp_path), "--out", str(tmp_path / "j"),
                 "--fold-indexes", "/a,/b"]) == 0
    assert seen["fold_answerers"] == ["/a", "/b"]
    assert len(seen["train_folds"]) == seen["rows"] and set(seen["train_folds"]) == {0, 1}


def test_train_encoder_without_a_fold_never_sees_its_questions(monkeypatch, tmp_path):
    import evals.train_encoder
    import evals.training
    from evals.__main__ import main

    seen = {}

    def fake_mine(rows, index, retriever):
        seen["rows"] = rows
        return []

    index = SimpleNamespace(manifest={"model": {"name": "m"}}, chunks=[])
    monkeypatch.setattr(evals.training, "_services",
                        lambda *a, **k: SimpleNamespace(index=index, retriever=SimpleNamespace(reader=None)))
    monkeypatch.setattr(evals.train_encoder, "mine", fake_mine)
    monkeypatch.setattr(evals.train_encoder, "train", lambda *a, **k: {"epochs": [{"epoch": 0, "dev_recall@5": 0.0}]})
    monkeypatch.setattr(evals.train_encoder, "write_card", lambda *a, **k: None)
    assert main(["train-encoder", "--index", str(tmp_path), "--out", str(tmp_path / "e"), "--folds", "2",
                 "--fold", "0"]) == 0
    rows = trainset.load("train_questions") + trainset.load("train_unanswerable")
    fold = dict(zip((r["id"] for r in rows), (trainset.fold_of(k, 2) for k in trainset.group_keys(rows))))
    assert seen["rows"] and all(fold[r["id"]] == 1 and "evidence" in r for r in seen["rows"])
    assert len(seen["rows"]) == sum(1 for r in rows if fold[r["id"]] == 1 and "evidence" in r)
