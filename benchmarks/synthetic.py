"""What the synthetic-index benchmarks (bench_milvus.py, bench_million.py) share: councils, words, percentiles."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COUNCILS = [f"Synthetic Borough Council {i:02d}" for i in range(20)]


def pct(values, p):
    return float(np.percentile(values, p)) if len(values) else None


def vocabulary() -> list[str]:
    """The bundled corpus's 8,000 commonest words: synthetic texts drawn from them tokenize like real ones."""
    words = Counter()
    for f in (ROOT / "corpus").glob("*.txt"):
        words.update(w for w in f.read_text(encoding="utf-8").lower().split() if w.isalpha() and len(w) > 2)
    return [w for w, _ in words.most_common(8000)]


def write_result(out: Path, result: dict) -> None:
    """The benchmark's result as JSON at out (benchmarks/results/*.json), and on stdout."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
