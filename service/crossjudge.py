"""The judge's second stage: a cross-encoder over the light judge's best few candidates.

The light judge (service/judge.py) sees the question and a sentence as two separate vectors, so it
cannot tell which of several on-topic sentences holds the figure or the name asked for. The
cross-encoder reads the question and the candidate (its heading, then the sentence) as one
sequence, every question word attending to every sentence word, and gives one score. It is the
tuned encoder's first layers with a fresh scoring head (evals/train_cross.py), run by onnxruntime
from models/judge/cross.onnx; without that file the light judge decides alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from indexer.sentences import embed_text

CROSS_VERSION = 1


def pair_text(sentence) -> str:
    """What the cross-encoder reads of a candidate: where it sits (its headings), then its text."""
    return embed_text(sentence.chunk, sentence.text)


class CrossJudge:
    """question + candidate -> a logit (higher: more likely to answer), batched over the candidates."""

    def __init__(self, folder: Path, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        meta = json.loads((folder / "cross.json").read_text(encoding="utf-8"))
        if meta.get("version") != CROSS_VERSION:
            raise ValueError(f"cross-encoder at {folder} is version {meta.get('version')}, not {CROSS_VERSION}: "
                             "retrain it with `python -m evals train-judge`")
        self.meta = meta
        self.k = int(meta["k"])
        self.max_tokens = int(meta["max_tokens"])
        self.weight = float(meta.get("light_weight", 0.0))  # how much of the light judge's logit is added
        self.tokenizer = Tokenizer.from_file(str(folder / "cross_tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens, strategy="only_second")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / "cross.onnx"), options, providers=["CPUExecutionProvider"])

    def logits(self, question: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, np.float32)
        ids, mask, types = encode_pairs(self.tokenizer, question, texts)
        return np.asarray(self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                                  "token_type_ids": types})[0], dtype=np.float32).ravel()


def encode_pairs(tokenizer, question: str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[CLS] question [SEP] candidate [SEP], padded to the longest (the candidate is truncated first)."""
    encs = tokenizer.encode_batch([(question, t) for t in texts])
    width = max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), width), np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for r, e in enumerate(encs):
        n = len(e.ids)
        ids[r, :n], mask[r, :n], types[r, :n] = e.ids, 1, e.type_ids
    return ids, mask, types


def load_cross(folder: Path | None) -> CrossJudge | None:
    """The cross-encoder in folder, or None when it has none (the light judge then decides alone)."""
    if folder is None or not (Path(folder) / "cross.onnx").exists():
        return None
    return CrossJudge(folder)
