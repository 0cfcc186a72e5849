"""The judge: how likely a candidate sentence is to answer the question, as a calibrated probability.

Trained here (python -m evals train-judge) on members' questions, because no reranker or QA model
can be installed. It is a small network over the frozen encoder: the question and sentence vectors
combined as [u * v, |u - v|] (what the two share and where they part), beside features a cosine
cannot see: how much of the question's rarer words the sentence and its passage hold, the rarest
question word the passage lacks, whether an amount, a date or a name is asked for and present,
whether a named year, quarter or council is reached, whether a decision question meets a
resolution. One place computes the features, for training and for serving alike.

Saved as judge.json (feature names, calibration, training record) and judge.npz (weights; numpy,
no pickle). Inference is two matrix products in numpy: no model run per question beyond the
query vector the retriever already has.

A third piece decides whether the question is answered at all (answerable.json beside the judge, when
trained): question_features() sums up the whole candidate list (the best few probabilities and their
gaps, how many candidates and passages support, what the question asks for against what the best
candidates hold, the rarest question word every passage lacks) and a logistic regression over it,
calibrated on dev, gives the confidence /ask compares with its threshold. Without that file the best
candidate's calibrated probability decides, as before.

Two additions are built and measured but off in the shipped judge (README, "The judge"): token-level
match features (service/tokens.py; a judge trained with them lists them in its scalars) and a
cross-encoder second stage over the light judge's best K (service/crossjudge.py; used when judge.json
says so and cross.onnx is in the folder, else the light judge decides with its own calibration).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.dates import YEAR
from indexer.lexical import tokenize
from service.question import QUARTER, Question
from service.tokens import TokenEncoder, Tokens

# 2: features relative to the question's best candidate; 3: optional token-level match and second stage
JUDGE_VERSION = 3
# Answer types a question can ask for, and how a sentence shows it holds one.
_ASKS = {
    "who": re.compile(r"(?i)\b(who|whom|whose|which (organisation|officer|member|body|team|partner)s?|lead|chair\w*|name)\b"),
    "when": re.compile(r"(?i)\b(when|what (date|time|day|month|year)|deadline|how long|by when|timescale)\b"),
    "where": re.compile(r"(?i)\b(where|venue|location|held at)\b"),
}
_HOLDS = {
    "number": re.compile(r"\d"),
    "money": re.compile(r"£\s?\d|\d\s?(k|m|bn|million|billion)\b|\bpounds\b", re.I),
    "percent": re.compile(r"\d\s?%|\bper ?cent\b", re.I),
    "date": re.compile(r"(?i)\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{2,4}\b|\b\d{1,2}(st|nd|rd|th)?\s+"
                       r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)|\b(19|20)\d\d\b|\bq[1-4]\b"),
    "name": re.compile(r"\b(Cllr|Councillor|Dr|Mr|Mrs|Ms|Director|Chair\w*|Lead|Head|Officer|Manager)\b|\b[A-Z][a-z]+ [A-Z][a-z]+\b"),
    "place": re.compile(r"\b(Hall|House|Centre|Room|Chamber|Street|Road|Square)\b|\b[A-Z]{1,2}\d{1,2}[A-Z]? ?\d[A-Z]{2}\b"),
}
SCALARS = (
    "cos_sentence", "cos_passage", "passage_score", "passage_rank", "overlap", "idf_cover_sentence",
    "idf_cover_passage", "missing_rare", "topic_cover", "asks_figure", "figure_held", "asks_who", "name_held",
    "asks_when", "date_held", "asks_where", "place_held", "period_named", "period_reached", "council_named",
    "council_match", "decision_q", "is_resolution", "proposal_q", "is_recommendation", "log_words", "whole_quote",
    "best_in_passage", "cos_sentence_gap", "overlap_gap", "idf_cover_gap", "passage_score_gap", "cos_rank",
)
# Token-level match (service/tokens.py): for each content word piece of the question, its best cosine to
# the candidate's pieces; weighted by rarity (mean), the worst of the rare pieces (min) and the share
# of rare pieces matched; then the same against all the candidates of its passage.
TOKEN_SCALARS = ("tok_mean", "tok_rare_min", "tok_rare_share", "tok_mean_passage", "tok_rare_min_passage",
                 "tok_rare_share_passage", "tok_mean_gap")
RARE_PIECE = 0.5  # a question piece is rare when its idf is at least this share of the highest possible
PIECE_MATCHED = 0.8  # the cosine at which a rare piece counts as matched
# A pointwise judge sees one candidate at a time; these say how it stands against the question's
# other candidates (its gap to the best of them, and its rank by meaning), which is what picking
# the one sentence that answers needs.
_GAPS = (("cos_sentence", "cos_sentence_gap"), ("overlap", "overlap_gap"), ("idf_cover_sentence", "idf_cover_gap"),
         ("passage_score", "passage_score_gap"))


@dataclass(frozen=True)
class Candidate:
    """What the judge sees of one candidate sentence (built by the answerer's selection)."""

    text: str
    vector: np.ndarray
    chunk_row: int  # -1 for a decision record outside the hits
    passage_rank: int  # 0 for the best passage
    passage_score: float  # relative to the best passage's
    whole: bool  # a resolution or decision record quoted whole


class Vocabulary:
    """Inverse document frequencies over the index's passages, for rare-word coverage."""

    def __init__(self, passages: list[str]) -> None:
        df = Counter()
        for text in passages:
            df.update(set(tokenize(text)))
        self.n = max(1, len(passages))
        self.df = df
        self.top = math.log(1 + self.n)

    def idf(self, term: str) -> float:
        return math.log(1 + self.n / (1 + self.df.get(term, 0)))


def features(q: Question, qv: np.ndarray, cands: list[Candidate], chunks, vectors: np.ndarray,
             vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """(pair features [n, 2*dim], scalar features [n, len(SCALARS)]) for the candidates."""
    n = len(cands)
    u = np.asarray(qv, dtype=np.float32)
    v = np.stack([c.vector for c in cands]).astype(np.float32) if n else np.zeros((0, u.size), np.float32)
    pair = np.concatenate([v * u, np.abs(v - u)], axis=1)
    terms = sorted(q.terms)
    idf = {t: vocab.idf(t) for t in terms}
    total = sum(idf.values()) or 1.0
    asks = {k: bool(p.search(q.text)) for k, p in _ASKS.items()}
    period_named = bool(q.named_years or q.quarters)
    cos_s = v @ u if n else np.zeros(0)
    best_by_row: dict[int, float] = {}
    for c, s in zip(cands, cos_s):
        best_by_row[c.chunk_row] = max(best_by_row.get(c.chunk_row, -1.0), float(s))
    out = np.zeros((n, len(SCALARS)), dtype=np.float32)
    passage_terms: dict[int, set[str]] = {}
    for i, c in enumerate(cands):
        chunk = chunks[c.chunk_row] if c.chunk_row >= 0 else None
        s_terms = set(tokenize(c.text))
        if c.chunk_row not in passage_terms:
            where = f"{chunk.text} {' '.join(chunk.heading_path)} {chunk.agenda_item or ''}" if chunk else c.text
            passage_terms[c.chunk_row] = set(tokenize(where))
        p_terms = passage_terms[c.chunk_row] | s_terms
        missing = [idf[t] for t in terms if t not in p_terms]
        seen = f"{c.text} {' '.join(chunk.heading_path) if chunk else ''} {chunk.title if chunk else ''} " \
               f"{chunk.meeting_date if chunk and chunk.meeting_date else ''}"
        reached = (all(y in set(YEAR.findall(seen)) for y, _ in q.named_years)
                   and all(x in set(QUARTER.findall(seen)) for x in q.quarters)) if period_named else False
        council = (chunk.council or "") if chunk else ""
        holds = {k: bool(p.search(c.text)) for k, p in _HOLDS.items()}
        out[i] = (
            float(cos_s[i]),
            float(vectors[c.chunk_row] @ u) if c.chunk_row >= 0 else float(cos_s[i]),
            c.passage_score,
            1.0 / (1 + c.passage_rank),
            len(q.terms & s_terms) / max(1, len(q.terms)),
            sum(idf[t] for t in terms if t in s_terms) / total,
            sum(idf[t] for t in terms if t in p_terms) / total,
            max(missing, default=0.0) / vocab.top,
            len(q.topic & p_terms) / max(1, len(q.topic)),
            float(q.asks_figure), float(holds["number"] or holds["money"] or holds["percent"]),
            float(asks["who"]), float(holds["name"]),
            float(asks["when"]), float(holds["date"]),
            float(asks["where"]), float(holds["place"]),
            float(period_named), float(reached),
            float(bool(q.councils)), float(bool(q.councils) and council in q.councils),
            float(q.intent == "decision"), float(chunk is not None and chunk.kind == "resolution"),
            float(q.intent == "proposal"), float(chunk is not None and chunk.kind == "recommendation"),
            math.log(1 + len(c.text.split())),
            float(c.whole),
            float(cos_s[i] >= best_by_row.get(c.chunk_row, 0.0) - 1e-6),
            0.0, 0.0, 0.0, 0.0, 0.0,
        )
    if n:
        col = {name: i for i, name in enumerate(SCALARS)}
        for src, dst in _GAPS:
            out[:, col[dst]] = out[:, col[src]] - out[:, col[src]].max()
        order = np.argsort(-out[:, col["cos_sentence"]], kind="stable")
        ranks = np.empty(n, dtype=np.float32)
        ranks[order] = np.arange(n, dtype=np.float32)
        out[:, col["cos_rank"]] = 1.0 / (1.0 + ranks)
    return pair, out


def token_features(q: Tokens, cands: list[Tokens], rows: list[int], weights: np.ndarray,
                   rare: np.ndarray) -> np.ndarray:
    """[n, len(TOKEN_SCALARS)]: how the question's word pieces are matched by each candidate and its passage.

    Args:
        q: the question's content pieces (the caller leaves out stop words and punctuation).
        cands: each candidate's pieces; rows: its passage (candidates of one row pool their pieces).
        weights: each question piece's idf; rare: which question pieces are rare.
    """
    n = len(cands)
    out = np.zeros((n, len(TOKEN_SCALARS)), dtype=np.float32)
    if n == 0 or len(q.ids) == 0:
        out[:, [1, 2, 4, 5]] = 1.0  # nothing to match: nothing missed
        return out
    w = weights / max(float(weights.sum()), 1e-9)
    best = [np.max(c.vectors @ q.vectors.T, axis=0) if len(c.ids) else np.zeros(len(q.ids), np.float32)
            for c in cands]
    by_row: dict[int, np.ndarray] = {}
    for r, b in zip(rows, best):
        by_row[r] = np.maximum(by_row.get(r, b), b)

    def summary(m: np.ndarray) -> tuple[float, float, float]:
        if rare.any():
            return float(m @ w), float(m[rare].min()), float((m[rare] >= PIECE_MATCHED).mean())
        return float(m @ w), 1.0, 1.0

    for i, (r, b) in enumerate(zip(rows, best)):
        out[i, :6] = (*summary(b), *summary(by_row[r]))
    out[:, 6] = out[:, 0] - out[:, 0].max()
    return out


ALL_SCALARS = SCALARS + TOKEN_SCALARS  # a judge trained with the token match reads these, in this order

# What the answerability model reads of a question's whole candidate list (question_features).
QUESTION_FEATURES = (
    "logit_1", "logit_2", "logit_3", "gap_12", "gap_13", "mean_top5", "support_half", "support_03", "n_candidates",
    "passages_top5", "top3_one_passage", "best_cos_sentence", "best_cos_passage", "max_cos_passage",
    "best_idf_cover_sentence", "best_idf_cover_passage", "max_idf_cover_passage", "best_missing_rare",
    "missing_rare_everywhere", "best_topic_cover", "max_topic_cover", "asks_figure", "figure_best", "figure_top3",
    "asks_who", "name_best", "asks_when", "date_best", "period_named", "period_best", "period_top5",
    "council_named", "council_best", "decision_q", "resolution_best", "resolution_top5", "proposal_q",
    "recommendation_best", "best_passage_rank", "best_passage_score",
)
ANSWERABILITY_VERSION = 1


def question_features(probs: np.ndarray, scalars: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[len(QUESTION_FEATURES)]: one question's candidate list summed up for the answerability model.

    Args:
        probs: the judge's probability for each candidate; scalars: their scalar features (SCALARS
            first, as features() gives them); rows: each candidate's passage (chunk row, -1 outside the hits).
    """
    n = len(probs)
    out = np.zeros(len(QUESTION_FEATURES), dtype=np.float32)
    if n == 0:
        return out
    col = {name: i for i, name in enumerate(SCALARS)}
    order = np.argsort(-np.asarray(probs, dtype=np.float64), kind="stable")
    p = np.asarray(probs, dtype=np.float64)[order]
    s = np.asarray(scalars)[order]
    r = np.asarray(rows)[order]
    pad = np.concatenate([p, np.zeros(3)])[:3]
    logit = np.log(np.clip(pad, 1e-4, 1 - 1e-4) / (1 - np.clip(pad, 1e-4, 1 - 1e-4)))
    best, top3, top5 = s[0], s[:3], s[:5]

    def c(name: str, among: np.ndarray | None = None) -> np.ndarray:
        return (s if among is None else among)[:, col[name]]

    asks_figure, asks_who, asks_when = best[col["asks_figure"]], best[col["asks_who"]], best[col["asks_when"]]
    period, council = best[col["period_named"]], best[col["council_named"]]
    decision, proposal = best[col["decision_q"]], best[col["proposal_q"]]
    out[:] = (
        logit[0], logit[1], logit[2], pad[0] - pad[1], pad[0] - pad[2], float(p[:5].mean()),
        math.log1p(int((p >= 0.5 * p[0]).sum())), math.log1p(int((p >= 0.3).sum())), math.log1p(n),
        len(set(r[:5].tolist())) / min(5, n), float(np.mean(r[1:3] == r[0])) if n > 1 else 1.0,
        best[col["cos_sentence"]], best[col["cos_passage"]], float(c("cos_passage").max()),
        best[col["idf_cover_sentence"]], best[col["idf_cover_passage"]], float(c("idf_cover_passage").max()),
        best[col["missing_rare"]], float(c("missing_rare").min()),
        best[col["topic_cover"]], float(c("topic_cover").max()),
        asks_figure, asks_figure * best[col["figure_held"]], asks_figure * float(c("figure_held", top3).max()),
        asks_who, asks_who * best[col["name_held"]], asks_when, asks_when * best[col["date_held"]],
        period, period * best[col["period_reached"]], period * float(c("period_reached", top5).max()),
        council, council * best[col["council_match"]],
        decision, decision * best[col["is_resolution"]], decision * float(c("is_resolution", top5).max()),
        proposal, proposal * best[col["is_recommendation"]],
        best[col["passage_rank"]], best[col["passage_score"]],
    )
    return out


class Answerability:
    """Whether the question's best candidate answers it, read from the whole candidate list: a logistic
    regression over question_features(), then an isotonic calibration measured on dev (answerable.json)."""

    FILE = "answerable.json"

    def __init__(self, meta: dict) -> None:
        if meta.get("version") != ANSWERABILITY_VERSION or tuple(meta.get("features", ())) != QUESTION_FEATURES:
            raise ValueError("the answerability model was trained with other question features; "
                             "retrain the judge with `python -m evals train-judge`")
        self.meta = meta
        self.mean, self.std = np.asarray(meta["mean"]), np.asarray(meta["std"])
        self.coef, self.intercept = np.asarray(meta["coef"]), float(meta["intercept"])
        self.cal_x, self.cal_y = np.asarray(meta["calibration"]["x"]), np.asarray(meta["calibration"]["y"])

    @classmethod
    def load(cls, folder: Path) -> "Answerability | None":
        path = Path(folder) / cls.FILE
        return cls(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None

    def raw(self, feats: np.ndarray) -> float:
        """The regression's probability, before calibration."""
        z = float(((np.asarray(feats) - self.mean) / self.std) @ self.coef + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def __call__(self, feats: np.ndarray) -> float:
        return float(np.interp(self.raw(feats), self.cal_x, self.cal_y))


class Judge:
    """The trained network and its calibration; probabilities for candidates and for a question."""

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        meta = json.loads((folder / "judge.json").read_text(encoding="utf-8"))
        # Version 2 files are version 3's light judge alone (the same 33 features, no second stage).
        version, scalars = meta.get("version"), tuple(meta.get("scalars", ()))
        if not ((version == JUDGE_VERSION and scalars in (SCALARS, ALL_SCALARS)) or (version == 2 and scalars == SCALARS)):
            raise ValueError(f"judge at {folder} was trained with other features (version {meta.get('version')}); "
                             "retrain it with `python -m evals train-judge`")
        w = np.load(folder / "judge.npz", allow_pickle=False)
        self.meta = meta
        self.uses_tokens = tuple(meta["scalars"]) == ALL_SCALARS
        self.mean, self.std = w["mean"], w["std"]
        self.w1, self.b1, self.w2, self.b2 = w["w1"], w["b1"], w["w2"], w["b2"]
        self.encoder = meta.get("encoder")
        self.encoder_digest = meta.get("encoder_digest", "")  # the weights it read ("" in older files)
        from service.crossjudge import load_cross

        # The second stage, when trained with this judge; without its file the light judge decides alone.
        self.cross = load_cross(folder) if meta.get("cross") else None
        # Isotonic calibration of the question's best candidate (breakpoints and probabilities), measured
        # on dev for the judge as it runs: with its second stage, or the light judge's own without it.
        self.calibration = meta.get("calibration_light") if self.cross is None and meta.get("calibration_light") else \
            meta["calibration"]
        self.cal_x, self.cal_y = np.asarray(self.calibration["x"]), np.asarray(self.calibration["y"])
        # The question-level decision, when trained with this judge (for its light judge alone: a judge with
        # a second stage keeps the best candidate's calibration); without the file, that calibration decides.
        self.answerability = Answerability.load(folder) if self.cross is None else None

    def logits(self, pair: np.ndarray, scalars: np.ndarray) -> np.ndarray:
        x = np.concatenate([pair, (scalars - self.mean) / self.std], axis=1)
        h = np.maximum(x @ self.w1 + self.b1, 0.0)
        return (h @ self.w2 + self.b2).ravel()

    def probabilities(self, pair: np.ndarray, scalars: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(pair, scalars)))

    def scores(self, question: str, pair: np.ndarray, scalars: np.ndarray, texts: list[str]) -> np.ndarray:
        """Each candidate's probability of answering: the light judge's, and for its best K the cross-encoder's
        over question and candidate read together (texts: crossjudge.pair_text of each candidate)."""
        z = self.logits(pair, scalars)
        if self.cross is None or not len(z):
            return 1.0 / (1.0 + np.exp(-z))
        top = np.argsort(-z, kind="stable")[:self.cross.k]
        return combine(z, top, self.cross.logits(question, [texts[i] for i in top]), self.cross.weight)

    def answerable(self, best_probability: float) -> float:
        """The calibrated chance that the question's best candidate answers it (measured on dev)."""
        return float(np.interp(best_probability, self.cal_x, self.cal_y))

    def confidence(self, probs: np.ndarray, scalars: np.ndarray, rows: np.ndarray) -> float:
        """The calibrated chance that the question's best candidate answers it: from the whole candidate
        list when the judge has its answerability model, else from the best probability alone."""
        if self.answerability is None:
            return self.answerable(float(np.max(probs)))
        return self.answerability(question_features(probs, scalars, rows))


def combine(light: np.ndarray, top: np.ndarray, cross: np.ndarray, weight: float) -> np.ndarray:
    """Final probabilities: the top candidates by the cross-encoder's logit (plus weight times the light
    judge's); the rest rank below them all (0), since the second stage never read them."""
    out = np.zeros(len(light), dtype=np.float64)
    out[top] = 1.0 / (1.0 + np.exp(-(cross + weight * light[top])))
    return out


def load_judge(folder: Path | None) -> Judge | None:
    if folder is None or not (Path(folder) / "judge.json").exists():
        return None
    return Judge(folder)
