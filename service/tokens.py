"""Token vectors of the encoder, for the judge's token-level match features.

A sentence vector is one mean over its tokens, so a question word the sentence lacks can hide
behind the words it shares. The judge also looks token by token: for each question word piece,
its best cosine to the candidate's pieces (the encoder's last hidden state, L2-normalised), the
word pieces weighted by their rarity over the index's passages.

The tuned encoder's transformer is exported to ONNX in memory when the service starts (a second;
nothing written, nothing downloaded) and run by onnxruntime, for training and serving alike.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

QUESTION_WORDS = frozenset({"what", "which", "who", "whom", "whose", "when", "where", "why", "how", "did", "does",
                            "do", "was", "were", "is", "are", "much", "many"})
MAX_PIECES = 64  # a candidate's first 64 word pieces: sentences are mostly shorter, and the cost grows with it
# Texts whose pieces are kept: one index's candidates are its own sentences, asked again and again (by
# every question near them, and by training's pass over thousands of questions). A sentence's ~25
# pieces in float32 are ~40 KB, so at most about 0.5 GB, held only by a judge that reads tokens (off as
# shipped); the training corpus has about 10,000 sentences.
CACHE_TEXTS = 12_288


@dataclass(frozen=True)
class Tokens:
    """One text's word pieces: their vocabulary ids and unit vectors ([CLS]/[SEP] left out)."""

    ids: np.ndarray  # [n] int64
    vectors: np.ndarray  # [n, dim] float32, unit rows


class TokenEncoder:
    """The encoder's contextual word-piece vectors (onnxruntime over an in-memory export)."""

    def __init__(self, model_path: str | Path, threads: int = 0, max_pieces: int = MAX_PIECES) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.path = Path(model_path)
        self.max_pieces = max_pieces
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_pieces + 2)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(_export(self.path), options, providers=["CPUExecutionProvider"])
        self.special = {self.tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")} - {None}
        self.df: Counter = Counter()
        self.n = 1
        self._cache: OrderedDict[str, Tokens] = OrderedDict()
        self._lock = threading.Lock()  # requests run on a thread pool; the model pass runs outside it

    def fit_idf(self, passages: Sequence[str]) -> None:
        """Word-piece document frequencies over the index's passages (the rarity weights)."""
        tok = self.tokenizer
        tok.no_truncation()
        try:
            for e in tok.encode_batch(list(passages)):
                self.df.update(set(e.ids))
        finally:
            tok.enable_truncation(self.max_pieces + 2)
        self.n = max(1, len(passages))

    def idf(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray([math.log(1 + self.n / (1 + self.df.get(int(i), 0))) for i in ids], dtype=np.float32)

    @property
    def top_idf(self) -> float:
        return math.log(1 + self.n)

    def question(self, text: str, rare_share: float) -> tuple[Tokens, np.ndarray, np.ndarray]:
        """The question's content pieces (no stop words, no punctuation), their idf, and which are rare."""
        from bm25s.stopwords import STOPWORDS_EN

        t = self.encode([text])[0]
        words = [self.tokenizer.id_to_token(int(i)) or "" for i in t.ids]
        # Question words are rare in the papers, so their idf is high, but no sentence is meant to hold them.
        stop = set(STOPWORDS_EN) | QUESTION_WORDS
        keep = np.asarray([w.removeprefix("##").isalnum() and w not in stop for w in words], dtype=bool)
        t = Tokens(t.ids[keep], t.vectors[keep])
        idf = self.idf(t.ids)
        return t, idf, idf >= rare_share * self.top_idf

    def encode(self, texts: Sequence[str], batch_tokens: int = 4096) -> list[Tokens]:
        """Each text's word pieces and their vectors (the last CACHE_TEXTS texts' kept)."""
        cache = self._cache
        with self._lock:
            found = {t: cache[t] for t in texts if t in cache}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        found.update(zip(missing, self._run(missing, batch_tokens) if missing else []))
        with self._lock:
            for t in dict.fromkeys(texts):
                cache[t] = found[t]
                cache.move_to_end(t)
            while len(cache) > CACHE_TEXTS:
                cache.popitem(last=False)
        return [found[t] for t in texts]

    def _run(self, texts: Sequence[str], batch_tokens: int) -> list[Tokens]:
        """A model pass over the texts, batched longest first, each batch padded to its longest."""
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        out: list[Tokens | None] = [None] * len(texts)
        i = 0
        while i < len(order):
            width = int(lengths[order[i]])
            rows = order[i:i + max(1, batch_tokens // max(width, 1))]
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, row in enumerate(rows):
                e = encodings[row]
                ids[r, :len(e.ids)] = e.ids
                mask[r, :len(e.ids)] = 1
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            for r, row in enumerate(rows):
                keep = [j for j, t in enumerate(encodings[row].ids) if t not in self.special]
                v = hidden[r, keep]
                v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
                out[row] = Tokens(np.asarray(ids[r, keep]), v.astype(np.float32))
            i += len(rows)
        return out  # type: ignore[return-value]


def _export(path: Path) -> bytes:
    """The transformer's last hidden state as an ONNX graph (bytes), exported from the model folder."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(path), dtype=torch.float32).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    example = torch.ones((1, 4), dtype=torch.int64)
    buffer = io.BytesIO()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden().eval(), (example, example, torch.zeros_like(example)), buffer, input_names=names,
                          output_names=["hidden"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "hidden": {0: "batch", 1: "tokens"}})
    return buffer.getvalue()
