"""BM25 over chunk texts (bm25s), with the one tokenizer used for documents and queries alike."""

from __future__ import annotations

import json
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
    """BM25 over rows of text: bm25s builds it; searching reads its arrays memory-mapped.

    bm25s stores every (word, row) score precomputed, column-compressed by word (data, indices,
    indptr). A query's scores are the sums of its words' columns, so a search touches only the
    postings of the words it asks for: np.load(mmap_mode="r") of the three arrays keeps the
    postings on disk (the page cache) instead of in the process, which at a million chunks is
    the difference between ~1 GB resident and the few pages a query reads.
    """

    def __init__(self, data=None, indices=None, indptr=None, vocab: dict[str, int] | None = None,
                 num_docs: int = 0, dtype: str = "float32", retriever=None) -> None:
        self._data, self._indices, self._indptr = data, indices, indptr
        self._vocab = vocab or {}
        self._n = num_docs
        self._dtype = np.dtype(dtype)
        self._retriever = retriever  # set after build, until saved: what save() writes

    def __len__(self) -> int:
        return self._n

    @classmethod
    def build(cls, texts: Sequence[str], progress: bool = False) -> "LexicalIndex":
        if not texts:
            return cls()  # bm25s cannot index nothing (max() of an empty sequence)
        import bm25s

        if progress:
            from tqdm import tqdm

            texts = tqdm(texts, desc="BM25 tokens", unit="chunk")
        retriever = bm25s.BM25()
        # An empty document still needs a row so BM25 rows stay aligned with chunk rows.
        retriever.index([tokenize(t) or [""] for t in texts], show_progress=False)
        sc = retriever.scores
        return cls(sc["data"], sc["indices"], sc["indptr"], retriever.vocab_dict, sc["num_docs"], retriever.dtype,
                   retriever=retriever)

    def save(self, folder: Path) -> None:
        if self._retriever is None:
            raise ValueError("only a freshly built index with rows can be saved (bm25s needs at least one document)")
        self._retriever.save(str(folder), show_progress=False, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        """The arrays bm25s saved, memory-mapped; the vocabulary (one entry per word) in memory."""
        folder = Path(folder)
        params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
        if params.get("method", "lucene") != "lucene" or (folder / "nonoccurrence_array.index.npy").exists():
            # Other BM25 variants add a per-row score for absent words, which these sums leave out.
            raise ValueError(f"BM25 variant {params.get('method')!r} is not supported: rebuild the index")
        arrays = [np.load(folder / f"{name}.csc.index.npy", mmap_mode="r", allow_pickle=False)
                  for name in ("data", "indices", "indptr")]
        vocab = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
        return cls(*arrays, vocab=vocab, num_docs=int(params["num_docs"]), dtype=params.get("dtype", "float32"))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for the query (zeros when no query word is indexed).

        The same sums, in the same order and dtype, as bm25s's get_scores: equal to the last bit.
        """
        ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        out = np.zeros(self._n, dtype=self._dtype)
        for t in ids:
            a, b = int(self._indptr[t]), int(self._indptr[t + 1])
            np.add.at(out, self._indices[a:b], self._data[a:b])  # as bm25s does, so the same floats
        return np.asarray(out, dtype=np.float32)
