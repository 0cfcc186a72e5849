"""The question-set format: one JSON object per line, independent of how documents are chunked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

KINDS = ("decision", "numeric", "who_when", "paraphrase", "disambiguation")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    kind: str
    doc: str
    evidence: tuple[str, ...]
    answer: str
    history: tuple[str, ...] = ()  # the questions asked before it, oldest first (a follow-up leans on them)


@dataclass(frozen=True)
class Unanswerable:
    id: str
    question: str
    trap: str | None = None  # what makes it look answerable ("off_topic" when nothing near it is in the papers)
    history: tuple[str, ...] = ()


def load_questions(path: Path) -> list[Question]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            q = Question(d["id"], d["question"], d["kind"], d["doc"], tuple(d["evidence"]), d.get("answer", ""),
                         tuple(d.get("history") or ()))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a question record ({e})") from e
        if q.kind not in KINDS:
            raise ValueError(f"{path}:{n}: kind {q.kind!r} is not one of {', '.join(KINDS)}")
        if not q.evidence:
            raise ValueError(f"{path}:{n}: no evidence quotes")
        out.append(q)
    return out


def load_unanswerable(path: Path) -> list[Unanswerable]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                d = json.loads(line)
                out.append(Unanswerable(d["id"], d["question"], d.get("trap"), tuple(d.get("history") or ())))
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(f"{path}:{n}: not a question record ({e})") from e
    return out
