"""Standard ranking metrics through ranx, from "where did the first relevant passage come".

Our relevance rule is about evidence quotes, not passage ids (a quote may be split across
chunks, or a passage repeated), so each question has one relevant item, "its evidence", which a
run finds at the rank of the first passage that contains it. Recall@k is then the share of
questions answered within the top k (success@k), MRR@10 and nDCG@10 follow from that rank.
"""

from __future__ import annotations

from typing import Mapping

METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
_EVIDENCE = "evidence"


def from_first_ranks(first_ranks: Mapping[str, int | None], metrics=METRICS) -> dict[str, float]:
    """Metrics for a set of questions given the 1-based rank of the first relevant passage (None: not found)."""
    from ranx import Qrels, Run, evaluate

    if not first_ranks:
        raise ValueError("no questions to score")
    qrels = {q: {_EVIDENCE: 1} for q in first_ranks}
    run = {}
    for q, rank in first_ranks.items():
        # Filler items keep the found evidence at its rank; an empty run needs one dummy item.
        depth = max(rank or 1, 1)
        items = {f"other-{i}": 1.0 / i for i in range(1, depth + 1)}
        if rank is not None:
            items.pop(f"other-{rank}")
            items[_EVIDENCE] = 1.0 / rank
        run[q] = items
    scores = evaluate(Qrels(qrels), Run(run), list(metrics), make_comparable=True)
    if isinstance(scores, float):
        scores = {metrics[0]: scores}
    return {m: float(v) for m, v in scores.items()}


def from_graded_run(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                    metrics=("ndcg@10", "recall@100")) -> dict[str, float]:
    """Metrics for a benchmark with its own judged documents (BEIR, Cranfield)."""
    from ranx import Qrels, Run, evaluate

    scores = evaluate(Qrels({q: dict(d) for q, d in qrels.items()}),
                      Run({q: dict(d) if d else {"__none__": 0.0} for q, d in run.items()}),
                      list(metrics), make_comparable=True)
    if isinstance(scores, float):
        scores = {metrics[0]: scores}
    return {m: float(v) for m, v in scores.items()}


def auc(scores, labels) -> float:
    """Area under the ROC curve: the chance a random positive outranks a random negative (ties count half).
    What the judges are early-stopped on (evals/train_judge.py, evals/train_cross.py)."""
    import numpy as np

    scores, labels = np.asarray(scores), np.asarray(labels)
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    if not len(pos) or not len(neg):
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))
