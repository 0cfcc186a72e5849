"""Train the judge (python -m evals train-judge): does this sentence answer this question?

Examples come from the answerer's own candidates (Answerer.gather, the path /ask takes): for each
training question, every candidate sentence of its top passages, labelled 1 when it holds the
question's evidence; every candidate of an unanswerable question is a 0. The network (pair features
of the frozen encoder's vectors beside the scalar features of service/judge.py, one hidden layer)
is fitted with a weighted binary cross-entropy plus a listwise term per question, early-stopped
on the dev split's question-level AUC (answered-with-evidence against the rest), then its best-candidate probability is calibrated
on dev by isotonic regression, so the threshold /ask uses is a probability measured on questions
the network was not fitted on. Deterministic: fixed seeds, full-batch order from a seeded generator.

With folds > 1 (`--folds 5`; off by default, see README "The judge") it also fits the question-level
answerability model (service.judge.Answerability): k light judges refitted without each fold give
every training candidate an out-of-fold probability, a logistic regression over question_features()
learns from those, and its score is calibrated on dev with the full judge's probabilities.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evals.metrics import auc
from evals.train_encoder import sentence_holds
from service.judge import JUDGE_VERSION

log = logging.getLogger(__name__)


@dataclass
class Examples:
    pair: np.ndarray
    scalars: np.ndarray
    labels: np.ndarray
    question: np.ndarray  # which question (row index in the input) each candidate belongs to
    answerable: np.ndarray  # per question
    texts: list[str] = dataclasses.field(default_factory=list)  # what the cross-encoder reads of each candidate
    asked: list[str] = dataclasses.field(default_factory=list)  # each question's query text (per row)
    rows: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))  # each candidate's passage
    groups: list[str] = dataclasses.field(default_factory=list)  # each question's split group, for folds

    def subset(self, questions: np.ndarray) -> "Examples":
        """The candidates of these questions only (question numbers and per-question arrays kept whole)."""
        m = np.isin(self.question, questions)
        return dataclasses.replace(self, pair=self.pair[m], scalars=self.scalars[m], labels=self.labels[m],
                                   question=self.question[m], rows=self.rows[m] if len(self.rows) else self.rows,
                                   texts=[t for t, k in zip(self.texts, m) if k] if self.texts else [])


def collect(rows: list[dict], answerer, tokens: bool = False) -> Examples:
    """Features and labels of every candidate of every row (answerable rows have "evidence")."""
    from tqdm import tqdm

    from service.schemas import AskRequest, Turn

    from service.crossjudge import pair_text

    from evals.trainset import group_keys

    pairs, scalars, labels, owner, answerable, texts, asked, passage = [], [], [], [], [], [], [], []
    groups = group_keys(rows)  # the split's own groups (evals/trainset.py), so folds keep near-duplicates together
    for i, r in enumerate(tqdm(rows, desc="judge examples", unit="q")):
        req = AskRequest(question=r["question"], history=[Turn(question=h) for h in r.get("history") or []])
        g = answerer.gather(req)
        answerable.append("evidence" in r)
        asked.append(g.question.query)
        if not g.candidates:
            continue
        p, s = answerer.judge_features(g, tokens)
        ev = r.get("evidence") or []
        # A candidate answers when the quote /ask would show for it (the sentence widened to about 40
        # words with the ones after it) holds the evidence: a figure's sentence often names what it
        # counts only in the next one.
        y = [float(bool(ev) and (sentence_holds(c.text, ev) or sentence_holds(answerer.selector.widen(c).text, ev)))
             for c in g.candidates]
        pairs.append(p)
        scalars.append(s)
        texts += [pair_text(c) for c in g.candidates]
        passage += answerer.candidate_rows(g).tolist()
        labels += y
        owner += [i] * len(y)
    return Examples(np.concatenate(pairs).astype(np.float32), np.concatenate(scalars).astype(np.float32),
                    np.asarray(labels, np.float32), np.asarray(owner), np.asarray(answerable, bool),
                    texts, asked, np.asarray(passage, np.int64), groups)


def collect_folds(rows: list[dict], answerers: list, folds: list[int]) -> Examples:
    """collect() of each fold's rows by its own answerer, merged back in row order (question numbers
    are row indexes, as collect() numbers them)."""
    parts = []
    for f, answerer in enumerate(answerers):
        mine = [i for i, k in enumerate(folds) if k == f]
        ex = collect([rows[i] for i in mine], answerer)
        ex.question = np.asarray(mine)[ex.question] if len(ex.question) else ex.question
        parts.append((mine, ex))
    answerable, groups, asked = np.zeros(len(rows), bool), [""] * len(rows), [""] * len(rows)
    for mine, ex in parts:
        answerable[mine] = ex.answerable
        for j, i in enumerate(mine):
            groups[i], asked[i] = ex.groups[j], ex.asked[j]
    exs = [ex for _, ex in parts]
    return Examples(np.concatenate([e.pair for e in exs]), np.concatenate([e.scalars for e in exs]),
                    np.concatenate([e.labels for e in exs]), np.concatenate([e.question for e in exs]), answerable,
                    sum((e.texts for e in exs), []), asked, np.concatenate([e.rows for e in exs]), groups)


def question_scores(ex: Examples, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best probability, 1 if that best candidate holds the evidence) per question with candidates."""
    best, good = [], []
    for qi in np.unique(ex.question):
        m = ex.question == qi
        j = int(np.argmax(probs[m]))
        best.append(float(probs[m][j]))
        good.append(float(ex.labels[m][j]))
    return np.asarray(best), np.asarray(good)


def fit(train: Examples, dev: Examples, *, hidden: int = 64, epochs: int = 20, lr: float = 1e-3,
        weight_decay: float = 1e-4, seed: int = 13, listwise_weight: float = 0.5) -> tuple[dict[str, np.ndarray], list[dict]]:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mean = train.scalars.mean(0)
    std = train.scalars.std(0) + 1e-6

    def x_of(ex: Examples):
        return torch.from_numpy(np.concatenate([ex.pair, (ex.scalars - mean) / std], axis=1).astype(np.float32))

    xt, yt, xd = x_of(train), torch.from_numpy(train.labels), x_of(dev)
    net = torch.nn.Sequential(torch.nn.Linear(xt.shape[1], hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    pos_weight = torch.tensor([(1 - train.labels.mean()) / max(train.labels.mean(), 1e-6)])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight.sqrt())
    history, best, best_state = [], -1.0, None
    # Besides each candidate's own label (BCE: is it an answer at all), a listwise term per question:
    # the softmax over the question's candidates should put its mass on the ones that answer, since
    # /ask quotes the best few of them. Questions are shuffled in groups of 32.
    groups = [np.flatnonzero(train.question == q) for q in np.unique(train.question)]
    for epoch in range(1, epochs + 1):
        net.train()
        perm = rng.permutation(len(groups))
        for start in range(0, len(perm), 32):
            chunk = [groups[g] for g in perm[start:start + 32]]
            idx = torch.from_numpy(np.concatenate(chunk))
            logits = net(xt[idx]).squeeze(1)
            loss = loss_fn(logits, yt[idx])
            listwise, offset = [], 0
            for g in chunk:
                z, y = logits[offset:offset + len(g)], yt[idx[offset:offset + len(g)]]
                offset += len(g)
                if y.sum() > 0:
                    listwise.append(torch.logsumexp(z, 0) - torch.logsumexp(z[y > 0.5], 0))
            if listwise:
                loss = loss + listwise_weight * torch.stack(listwise).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            pd = torch.sigmoid(net(xd).squeeze(1)).numpy()
        best_p, good = question_scores(dev, pd)
        qlabel = good * dev.answerable[np.unique(dev.question)]
        score = auc(best_p, qlabel)
        top1 = float(good.sum() / max(1, dev.answerable.sum()))  # answerable dev questions whose best candidate answers
        history.append({"epoch": epoch, "dev_question_auc": round(score, 4), "dev_top1": round(top1, 4)})
        log.info("judge epoch %d: dev question AUC %.3f, best candidate answers %.3f", epoch, score, top1)
        if score > best:
            best, best_state = score, {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    w = {"mean": mean, "std": std, "w1": net[0].weight.detach().numpy().T.copy(), "b1": net[0].bias.detach().numpy().copy(),
         "w2": net[3].weight.detach().numpy().T.copy(), "b2": net[3].bias.detach().numpy().copy()}
    return w, history


def out_of_fold(train: Examples, dev: Examples, folds: int = 5, seed: int = 13, **kw) -> np.ndarray:
    """Each training candidate's probability from a light judge fitted without its fold (folds of whole
    split groups (evals/trainset.py), so near-duplicate questions never straddle one), early-stopped on dev as the
    full judge is. In-sample probabilities are over-confident; the answerability model trains on these."""
    qids = np.unique(train.question)
    keys = sorted({train.groups[q] for q in qids}) if train.groups else [str(q) for q in qids]
    fold_of_key = {k: i % folds for i, k in enumerate(np.random.default_rng(seed).permutation(keys))}
    fold = np.asarray([fold_of_key[train.groups[q] if train.groups else str(q)] for q in qids])
    probs = np.zeros(len(train.labels))
    for f in range(folds):
        log.info("out-of-fold light judge %d/%d", f + 1, folds)
        weights, _ = fit(train.subset(qids[fold != f]), dev, seed=seed, **kw)
        held = np.isin(train.question, qids[fold == f])
        x = np.concatenate([train.pair[held], (train.scalars[held] - weights["mean"]) / weights["std"]], axis=1)
        z = (np.maximum(x @ weights["w1"] + weights["b1"], 0.0) @ weights["w2"] + weights["b2"]).ravel()
        probs[held] = 1.0 / (1.0 + np.exp(-z))
    return probs


def question_table(ex: Examples, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(question features [questions, len(QUESTION_FEATURES)], label) for each question with candidates:
    1 when it is answerable and its best candidate holds the evidence (what calibrate() measures)."""
    from service.judge import question_features

    xs, ys = [], []
    for qi in np.unique(ex.question):
        m = ex.question == qi
        xs.append(question_features(probs[m], ex.scalars[m], ex.rows[m]))
        ys.append(float(ex.answerable[qi] and ex.labels[m][int(np.argmax(probs[m]))] > 0.5))
    return np.stack(xs), np.asarray(ys)


def fit_answerability(train: Examples, train_probs: np.ndarray, dev: Examples, dev_probs: np.ndarray,
                      strengths: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)) -> dict:
    """The question-level model (service.judge.Answerability): a logistic regression on the training
    questions' out-of-fold features, its strength chosen on dev AUC, then calibrated on dev by isotonic
    regression. Returns the record written to answerable.json."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    from service.judge import ANSWERABILITY_VERSION, QUESTION_FEATURES

    xt, yt = question_table(train, train_probs)
    xd, yd = question_table(dev, dev_probs)
    mean, std = xt.mean(0), xt.std(0) + 1e-6
    tried = {}
    for c in strengths:
        lr = LogisticRegression(C=c, max_iter=2000).fit((xt - mean) / std, yt)
        tried[c] = (auc(lr.decision_function((xd - mean) / std), yd), lr)
    c = max(tried, key=lambda k: tried[k][0])
    lr = tried[c][1]
    raw = 1.0 / (1.0 + np.exp(-lr.decision_function((xd - mean) / std)))
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, yd)
    best_p = np.asarray([dev_probs[dev.question == q].max() for q in np.unique(dev.question)])
    return {"version": ANSWERABILITY_VERSION, "features": list(QUESTION_FEATURES),
            "mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std],
            "coef": [round(float(v), 6) for v in lr.coef_.ravel()], "intercept": round(float(lr.intercept_[0]), 6),
            "calibration": {"x": [round(float(v), 6) for v in iso.X_thresholds_],
                            "y": [round(float(v), 6) for v in iso.y_thresholds_]},
            "training": {"train_questions": int(len(yt)), "train_positives": int(yt.sum()),
                         "dev_questions": int(len(yd)), "dev_positives": int(yd.sum()), "C": c,
                         "dev_auc_by_C": {str(k): round(v[0], 4) for k, v in tried.items()},
                         "dev_auc": round(tried[c][0], 4), "dev_auc_best_probability": round(auc(best_p, yd), 4),
                         "train_auc_best_probability_out_of_fold": round(
                             auc(np.asarray([train_probs[train.question == q].max() for q in np.unique(train.question)]),
                                 yt), 4)}}


def calibrate(dev: Examples, probs: np.ndarray) -> dict:
    """Isotonic map from a question's best-candidate probability to the share of such questions whose
    best candidate answers them (answerable questions only count as answered), on dev."""
    from sklearn.isotonic import IsotonicRegression

    best_p, good = question_scores(dev, probs)
    y = good * dev.answerable[np.unique(dev.question)]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(best_p, y)
    return {"x": [round(float(v), 6) for v in iso.X_thresholds_], "y": [round(float(v), 6) for v in iso.y_thresholds_],
            "n_questions": int(len(y)), "n_answered": int(y.sum())}


def train_judge(answerer, train_rows: list[dict], dev_rows: list[dict], out: Path, encoder_name: str,
                cross: bool = False, cross_options: dict | None = None, index_note: str = "", folds: int = 0,
                fold_answerers: list | None = None, train_folds: list[int] | None = None, **kw) -> dict:
    """Both stages, trained and calibrated: the light judge, then (cross=True) the cross-encoder over its
    top K; without a second stage, the answerability model over `folds` out-of-fold refits (0: none).
    With fold_answerers (cross-fitting), training row i is gathered by fold_answerers[train_folds[i]], the
    answerer over an index whose encoder never trained on that row; dev is always `answerer`'s (the
    shipped encoder's), as served. Returns the record written to judge.json."""
    t0 = time.time()
    if fold_answerers:
        train = collect_folds(train_rows, fold_answerers, train_folds)
    else:
        train = collect(train_rows, answerer)
    dev = collect(dev_rows, answerer)
    meta = fit_and_save(train, dev, out, encoder_name, len(train_rows), len(dev_rows), t0, cross, cross_options,
                        folds=folds, **kw)
    if index_note:  # which index the candidates came from (its papers decide the unanswerable questions' candidates)
        meta["training"]["index"] = index_note
        (out / "judge.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


def fit_and_save(train: Examples, dev: Examples, out: Path, encoder_name: str, n_train: int, n_dev: int, t0: float,
                 cross: bool = False, cross_options: dict | None = None, folds: int = 0, **kw) -> dict:
    weights, history = fit(train, dev, **kw)
    from service.judge import ALL_SCALARS, SCALARS, Answerability, Judge, combine

    out.mkdir(parents=True, exist_ok=True)
    # A stale second stage or answerability model never outlives a retrain.
    for name in ("cross.onnx", "cross.json", "cross_tokenizer.json", Answerability.FILE):
        (out / name).unlink(missing_ok=True)
    np.savez(out / "judge.npz", **weights)
    names = list(ALL_SCALARS if train.scalars.shape[1] == len(ALL_SCALARS) else SCALARS)
    probe = {"version": JUDGE_VERSION, "scalars": names, "calibration": {"x": [0, 1], "y": [0, 1]}}
    (out / "judge.json").write_text(json.dumps(probe), encoding="utf-8")
    light = Judge(out)
    dev_light = light.logits(dev.pair, dev.scalars)
    cal_light = calibrate(dev, 1.0 / (1.0 + np.exp(-dev_light)))
    from indexer.embed import model_digest

    meta = {"version": JUDGE_VERSION, "scalars": names, "encoder": encoder_name,
            "encoder_digest": model_digest(encoder_name), "calibration": cal_light,
            "calibration_light": cal_light,
            "training": {"train_questions": n_train, "dev_questions": n_dev,
                         "data": "evals/train/{train,dev}_{questions,unanswerable}.jsonl",
                         "train_pairs": int(len(train.labels)), "train_positives": int(train.labels.sum()),
                         "dev_pairs": int(len(dev.labels)), "epochs": history, **{k: v for k, v in kw.items()}}}
    if cross:
        from evals.train_cross import export, fit_cross
        from indexer.embed import resolve_model_path
        from service.crossjudge import CrossJudge

        opts = {"k": 8, "layers": 2, "max_tokens": 64, "epochs": 2} | (cross_options or {})
        path = resolve_model_path(encoder_name)
        model, _tok, cross_history = fit_cross(train, dev, light.logits(train.pair, train.scalars), dev_light, path,
                                               **opts)
        export(model, out, path, {"k": opts["k"], "max_tokens": opts["max_tokens"], "layers": opts["layers"],
                                  "light_weight": opts.get("light_weight", 1.0)})
        served = CrossJudge(out)  # dev scores from the exported (int8) graph, as /ask will run it
        dev_cross = _cross_logits(served, dev, dev_light)
        # How much of the light judge's logit to add to the cross-encoder's, chosen on dev (top-1, then AUC).
        tried = {}
        for w in (0.5, 1.0, 1.5):
            probs = _final(dev, dev_light, dev_cross, served.k, w, combine)
            best_p, good = question_scores(dev, probs)
            y = good * dev.answerable[np.unique(dev.question)]
            tried[w] = (round(float(y.sum() / max(1, dev.answerable.sum())), 4), round(auc(best_p, y), 4))
        weight = max(tried, key=lambda w: tried[w])
        cj = json.loads((out / "cross.json").read_text(encoding="utf-8")) | {"light_weight": weight}
        (out / "cross.json").write_text(json.dumps(cj, indent=1) + "\n", encoding="utf-8")
        meta["cross"] = True
        meta["calibration"] = calibrate(dev, _final(dev, dev_light, dev_cross, served.k, weight, combine))
        meta["training"]["cross"] = {**opts, "epochs_run": cross_history, "light_weight": weight,
                                     "dev_top1_auc_by_light_weight": {str(k): v for k, v in tried.items()},
                                     "onnx_bytes": (out / "cross.onnx").stat().st_size}
    elif folds > 1 and len(train.rows):
        oof = out_of_fold(train, dev, folds=folds, **kw)
        model = fit_answerability(train, oof, dev, 1.0 / (1.0 + np.exp(-dev_light)))
        model["training"]["folds"] = folds
        (out / Answerability.FILE).write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
        meta["answerability"] = model["training"]
    meta["training"]["seconds"] = round(time.time() - t0, 1)
    (out / "judge.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


def _cross_logits(served, ex: Examples, light_logits: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per question: (its top K candidate rows by the light judge, the cross-encoder's logits for them)."""
    from tqdm import tqdm

    out = {}
    for qi in tqdm(np.unique(ex.question), desc="cross-encoder dev", unit="q"):
        idx = np.flatnonzero(ex.question == qi)
        top = idx[np.argsort(-light_logits[idx], kind="stable")[:served.k]]
        out[int(qi)] = (top, served.logits(ex.asked[qi], [ex.texts[r] for r in top]))
    return out


def _final(ex: Examples, light_logits: np.ndarray, cross: dict, k: int, weight: float, combine) -> np.ndarray:
    """The served probabilities (judge.combine) of every candidate, from cached cross-encoder logits."""
    probs = np.zeros(len(ex.labels))
    for qi, (top, z) in cross.items():
        idx = np.flatnonzero(ex.question == qi)
        local = np.searchsorted(idx, top)
        probs[idx] = combine(light_logits[idx], local, z, weight)
    return probs
