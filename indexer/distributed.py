"""python -m indexer build --ray: the build's heavy stages on Ray.

Parsing (one task per file, from _POOL_FROM_FILES files to parse, as the local build's process pool)
and embedding (a pool of actors, each loading the model once for the whole build, fed units of
`4 x batch_size` texts, longest first) run on Ray; local Ray on this machine by default, the
cluster at RAY_ADDRESS when it is set. Everything between them - metadata resolved across
papers, structure, chunking, decisions, sentence spans, the incremental reuse of unchanged
documents and vectors, the atomic write and the backend publish - is indexer/pipeline.py's
own code, handed the parsed documents and an encoder whose encode() runs on Ray. So a Ray
build produces the same chunk ids and texts as a local one by construction, and the test
compares them anyway.

What it costs on a small machine, and why it is built this way (README, "Running it big", has
the measurements):

- The actors start as the build starts, while the driver parses and chunks: their seconds of
  importing PyTorch and loading the model overlap the driver's work instead of following it. They
  are started once and serve both encode() calls of a build (chunks, then sentences); a Ray Data
  map_batches starts a new actor pool for each dataset, so the model was loaded four times.
- Each actor runs the driver's encoder variant and precision (bf16 where the CPU has it): the
  vectors are the local build's, as the manifest (which records the precision) says they are.
- Texts are sorted longest first over the whole call, then cut into units, as sentence-
  transformers sorts within one local encode(): units of similar lengths pad little.
- A handful of files is parsed by the driver itself, as the local build does below
  _POOL_FROM_FILES: a Ray worker starts by importing unstructured and its PDF stack (seconds).

Structure and chunking stay on the driver: a paper's council can depend on the other papers of
its meeting, so they need every document parsed first, and they take a small part of a build
(parsing and embedding are most of it; README, "Running it big").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from indexer.config import IndexerSettings
from indexer.discover import discover
from indexer.embed import Encoder, load_encoder
from indexer.records import ParsedDocument, SourceFile

log = logging.getLogger(__name__)

IN_FLIGHT_PER_ACTOR = 2  # units queued on each actor: one running, one waiting, none idle between


def _init_ray() -> None:
    import ray

    if not ray.is_initialized():
        # Ray reads RAY_ADDRESS itself: a cluster when it is set, else a local Ray started here.
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)


def _parse_one(src: SourceFile, strategy: str) -> tuple[str, ParsedDocument | None]:
    from indexer import offline
    from indexer.parse import ParseError, parse

    offline.configure()  # a Ray worker starts without the driver's offline switches
    try:
        return src.doc_id, parse(src, strategy)
    except (ParseError, OSError):
        # Reported by the pipeline, which parses a failed file again to give its reason.
        return src.doc_id, None


def parse_all(sources: Sequence[SourceFile], strategy: str) -> dict[str, ParsedDocument]:
    """{doc_id: ParsedDocument} of every file that parses, one Ray task per file."""
    import ray

    if not sources:
        return {}
    _init_ray()
    task = ray.remote(num_cpus=1)(_parse_one)
    out = {}
    for doc_id, parsed in ray.get([task.remote(s, strategy) for s in sources]):
        if parsed is not None:
            out[doc_id] = parsed
    return out


class _EmbedActor:
    """One per worker: the model is loaded once and encodes unit after unit."""

    def __init__(self, model: str, variant: str, cache_dir: str, precision: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # the pool's actors share the CPUs instead of each taking all
        # The driver's variant (from the export it cached) and precision: every vector of a build alike.
        self.encoder = load_encoder(model, variant, Path(cache_dir), threads=threads, precision=precision)
        self.encoder.encode(["warm up"] * 8, batch_size=8)  # the model's weights loaded now, not on the first unit

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return np.asarray(self.encoder.encode(texts, batch_size=batch_size), dtype=np.float32)


@dataclass
class RayEncoder:
    """The driver's encoder (name, dimension, token counts for chunking), with encode() on Ray actors."""

    local: Encoder
    actors: int
    rows_per_unit: int
    cache_dir: Path  # the index's ONNX exports, which the actors load instead of exporting again
    threads_per_actor: int = 1
    _pool: list = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        return self.local.name

    @property
    def dim(self) -> int:
        return self.local.dim

    @property
    def variant(self) -> str:
        return self.local.variant

    @property
    def precision(self) -> str:
        return getattr(self.local, "precision", "fp32")

    @property
    def max_tokens(self) -> int:
        return self.local.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.local.count_tokens(text)

    def start(self) -> None:
        """Start the actors (model loads begin at once, in the background); idempotent."""
        import ray

        if self._pool:
            return
        _init_ray()
        actor = ray.remote(num_cpus=self.threads_per_actor)(_EmbedActor)
        self._pool = [actor.remote(self.local.name, self.local.variant, str(self.cache_dir), self.precision,
                                   self.threads_per_actor) for _ in range(self.actors)]

    def close(self) -> None:
        import ray

        for a in self._pool:
            ray.kill(a)
        self._pool = []

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False,
               desc: str = "embed") -> np.ndarray:
        import ray

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        self.start()
        # Longest first over the whole call, as sentence-transformers sorts one local encode().
        order = np.argsort([-len(t) for t in texts], kind="stable")
        units = [order[lo:lo + self.rows_per_unit] for lo in range(0, len(order), self.rows_per_unit)]
        out = np.zeros((len(texts), self.dim), np.float32)
        free = [a for a in self._pool for _ in range(IN_FLIGHT_PER_ACTOR)]
        running: dict = {}  # future -> (actor, rows)
        next_unit = 0
        while next_unit < len(units) or running:
            while free and next_unit < len(units):
                a, rows = free.pop(0), units[next_unit]
                running[a.encode.remote([texts[i] for i in rows], batch_size)] = (a, rows)
                next_unit += 1
            done, _ = ray.wait(list(running), num_returns=1)
            a, rows = running.pop(done[0])
            out[rows] = ray.get(done[0])
            free.append(a)  # whichever actor finished takes the next unit
        return out


def build(settings: IndexerSettings, actors: int | None = None):
    """pipeline.build with parsing and embedding on Ray. Returns the pipeline's BuildReport."""
    from indexer import pipeline, store

    _init_ray()
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    sources, _ = pipeline.distinct(discover(settings.corpus_dir))
    # Files the previous build holds unchanged are reused by the pipeline, not parsed: leave them out.
    # (A file this guess leaves out that the pipeline does need is parsed there.)
    held = (store.read_manifest(settings.index_dir) or {}).get("documents", {})
    changed = [s for s in sources if held.get(s.doc_id, {}).get("sha256") != s.sha256]
    encoder = RayEncoder(pipeline._load_encoder(settings), actors or max(1, cpus), 4 * settings.batch_size,
                         store.encoder_cache_dir(settings.index_dir))
    try:
        if len(changed) >= pipeline._POOL_FROM_FILES:
            parsed = parse_all(changed, settings.pdf_strategy)
            # Started after parsing: actors that hold the CPUs would leave the parse tasks none.
            encoder.start()
        else:
            # Below the local build's pool threshold the pipeline parses them itself, as a local build
            # does, while the actors load the model.
            if changed:
                encoder.start()
            parsed = {}
        return pipeline.build(settings, encoder=encoder, preparsed=parsed)
    finally:
        encoder.close()
