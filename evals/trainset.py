"""Training data: the members' questions written for training, split into train and dev by section.

The writers (who saw only the papers) left one file per part of the papers; `python -m evals split-training`
merges them and splits by (paper, section), so near-duplicate questions about one section never
straddle the split. The held-out sets (evals/heldout*/) are never read here.

Layout (evals/train/):
    train_questions.jsonl  train_unanswerable.jsonl   fitting (encoder and judge)
    dev_questions.jsonl    dev_unanswerable.jsonl     early stopping and calibration

The questions written about the four Kent PDFs were moved out to evals/kent/ before any training:
papers the models have never been fitted on, so they measure how far the training generalises.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from evals.questions import KINDS

HERE = Path(__file__).resolve().parent
TRAIN_DIR = HERE / "train"
DEV_SHARE = 5  # one section in five goes to dev
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


def is_dev(row: dict) -> bool:
    digest = hashlib.sha256(section_key(row).encode()).digest()
    return digest[0] % DEV_SHARE == 0


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
            answerable = "evidence" in row
            parts[("d" if is_dev(row) else "t") + ("q" if answerable else "u")].append(row)
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
