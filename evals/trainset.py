"""Training data: the members' questions written for training, split into train and dev by group.

The writers (who saw only the papers) left one file per part of the papers; `python -m evals split-training`
merges them and splits them into groups that stay on one side: questions under one (paper, section)
label, and questions whose evidence quotes overlap in the paper. The second matters because two
writers over the same part of a paper name its sections differently ("Minutes 8 March 2018 – 6.
Screening Update" and "Minutes of the previous meeting"), so labels alone let a near-duplicate of a
dev question into train. The held-out sets (evals/heldout*/) are never read here.

Layout (evals/train/):
    train_questions.jsonl  train_unanswerable.jsonl   fitting (encoder and judge)
    dev_questions.jsonl    dev_unanswerable.jsonl     early stopping and calibration

The questions written about the four Kent PDFs were moved out to evals/kent/ before any training:
papers the models have never been fitted on, so they measure how far the training generalises.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from evals.questions import KINDS
from evals.relevance import normalise

HERE = Path(__file__).resolve().parent
TRAIN_DIR = HERE / "train"
CORPUS_DIR = HERE.parent / "corpus"  # where the writers' papers are, as plain text
DEV_SHARE = 4  # one group in four goes to dev (groups are lumpy: about one row in five)
TRAPS = ("figure_not_given", "wrong_council", "wrong_body", "wrong_period", "decision_not_taken",
         "detail_not_stated", "off_topic")


@dataclass(frozen=True)
class Split:
    train_questions: list[dict]
    train_unanswerable: list[dict]
    dev_questions: list[dict]
    dev_unanswerable: list[dict]


def section_key(row: dict) -> str:
    """What keeps near-duplicates together: the paper and the section the question is about."""
    section = re.sub(r"\W+", " ", (row.get("section") or "").lower()).strip()
    if not section:  # an off-topic question has no section; it stands alone
        section = f"#{row['id']}"
    return f"{row.get('doc') or ''}|{section}"


def is_dev(key: str) -> bool:
    """Whether a group (named by group_keys) goes to dev."""
    return hashlib.sha256(key.encode()).digest()[0] % DEV_SHARE == 0


def fold_of(key: str, folds: int) -> int:
    """Which of `folds` folds a group (named by group_keys) falls in, for cross-fitting the training
    split itself (the encoder trained without a fold gives that fold's judge examples)."""
    return zlib.crc32(key.encode()) % folds


def group_keys(rows: list[dict], papers: dict[str, str] | None = None) -> list[str]:
    """Each row's group: rows that share a section label or whose evidence quotes overlap in the
    paper are joined (transitively); a group is named by its smallest section key, so it keeps its
    name, and its side of the split, while other groups grow. `papers` maps a doc id to its
    normalised text (default: the bundled corpus); a quote not found there joins nothing."""
    papers = corpus_texts() if papers is None else papers
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    spans: dict[str, list[tuple[int, int, int]]] = {}
    for i, r in enumerate(rows):
        parent[find(i)] = find(first.setdefault(section_key(r), i))
        text = papers.get(r.get("doc") or "")
        for quote in (r.get("evidence") or []) if text else []:
            q = normalise(str(quote))
            at = text.find(q) if q else -1
            if at >= 0:
                spans.setdefault(r["doc"], []).append((at, at + len(q), i))
    for found in spans.values():
        found.sort()
        end, last = -1, -1
        for start, stop, i in found:
            if last >= 0 and start < end:  # overlaps a quote seen before it
                parent[find(i)] = find(last)
            if stop > end:
                end, last = stop, i
    names: dict[int, str] = {}
    for i, r in enumerate(rows):
        root = find(i)
        names[root] = min(names.get(root, section_key(r)), section_key(r))
    return [names[find(i)] for i in range(len(rows))]


@functools.lru_cache(maxsize=1)
def corpus_texts() -> dict[str, str]:
    return {p.stem: normalise(p.read_text(encoding="utf-8")) for p in sorted(CORPUS_DIR.glob("*.txt"))}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def validate(row: dict) -> str | None:
    """Why a written row cannot be used, or None."""
    if not str(row.get("question", "")).strip() or not row.get("id"):
        return "no id or question"
    if "evidence" in row:
        if row.get("kind") not in KINDS:
            return f"kind {row.get('kind')!r}"
        if not row["evidence"] or any(len(str(e).split()) < 3 for e in row["evidence"]):
            return "evidence missing or under 3 words"
        if not str(row.get("answer", "")).strip():
            return "no answer"
    elif row.get("trap") not in (*TRAPS, None):  # the tuning set's unanswerable rows name no trap
        return f"trap {row.get('trap')!r}"
    if row.get("history") is not None and not (isinstance(row["history"], list) and all(row["history"])):
        return "history is not a list of questions"
    return None


def split(files: Iterable[Path]) -> tuple[Split, list[str]]:
    """Merge the writers' files and split them; returns the split and the rows left out, with why."""
    parts: dict[str, list[dict]] = {"tq": [], "tu": [], "dq": [], "du": []}
    dropped: list[str] = []
    seen_ids, seen_text = set(), set()
    kept: list[dict] = []
    for path in files:
        for row in _rows(path):
            why = validate(row)
            text = " ".join(str(row.get("question", "")).lower().split())
            if why is None and row["id"] in seen_ids:
                why = "duplicate id"
            if why is None and (text, tuple(row.get("history") or ())) in seen_text:
                why = "duplicate question"
            if why:
                dropped.append(f"{path.name}:{row.get('id')}: {why}")
                continue
            seen_ids.add(row["id"])
            seen_text.add((text, tuple(row.get("history") or ())))
            kept.append(row)
    for row, key in zip(kept, group_keys(kept)):
        parts[("d" if is_dev(key) else "t") + ("q" if "evidence" in row else "u")].append(row)
    return Split(parts["tq"], parts["tu"], parts["dq"], parts["du"]), dropped


def write(s: Split, out: Path = TRAIN_DIR) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in ("train_questions", "train_unanswerable", "dev_questions", "dev_unanswerable"):
        rows = getattr(s, name)
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                           encoding="utf-8")
        counts[name] = len(rows)
    return counts


def load(name: str, root: Path = TRAIN_DIR) -> list[dict]:
    """One of the four files, as rows (the judge needs fields the eval Question record leaves out)."""
    return _rows(root / f"{name}.jsonl")


def describe(rows: list[dict]) -> dict[str, dict[str, int]]:
    return {f: dict(Counter(r.get(f) or "-" for r in rows)) for f in ("kind", "style", "trap", "doc")}
