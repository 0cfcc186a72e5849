"""BM25 over chunk texts (bm25s), with the one tokenizer used for documents and queries alike."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:['.][a-z0-9]+)*")
_FOLD = str.maketrans({"’": "'", "‘": "'", "–": "-", "—": "-"})


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-worded, Snowball-stemmed words; "2017/18" and "£1.5m" keep their digits."""
    words = [w.replace("'", "") for w in _WORD.findall(text.lower().translate(_FOLD))]
    stop = _stopwords()
    return _stemmer().stemWords([w for w in words if w not in stop])


class LexicalIndex:
    def __init__(self, retriever=None) -> None:
        self._retriever = retriever  # None: an index of no rows
        self._vocab = retriever.vocab_dict if retriever is not None else {}

    def __len__(self) -> int:
        return self._retriever.scores["num_docs"] if self._retriever is not None else 0

    @classmethod
    def build(cls, texts: Sequence[str]) -> "LexicalIndex":
        if not texts:
            return cls()  # bm25s cannot index nothing (max() of an empty sequence)
        import bm25s

        retriever = bm25s.BM25()
        # An empty document still needs a row so BM25 rows stay aligned with chunk rows.
        retriever.index([tokenize(t) or [""] for t in texts], show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        if self._retriever is None:
            raise ValueError("an index of no rows cannot be saved: bm25s needs at least one document")
        self._retriever.save(str(folder), show_progress=False, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        import bm25s

        return cls(bm25s.BM25.load(str(folder), show_progress=False, allow_pickle=False, verbosity=0))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for the query (zeros when no query word is indexed)."""
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens:
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)
