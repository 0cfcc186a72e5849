"""python -m indexer build --ray: the build's heavy stages as a Ray Data pipeline.

Parsing (one task per file) and embedding (an actor pool, each actor loading the model once,
fed batches of `4 x batch_size` texts) run on Ray; local Ray on this machine by default, the
cluster at RAY_ADDRESS when it is set. Everything between them - metadata resolved across
papers, structure, chunking, decisions, sentence spans, the incremental reuse of unchanged
documents and vectors, the atomic write and the backend publish - is indexer/pipeline.py's
own code, handed the parsed documents and an encoder whose encode() runs on Ray. So a Ray
build produces the same chunk ids and texts as a local one by construction, and the test
compares them anyway.

Structure and chunking stay on the driver: a paper's council can depend on the other papers of
its meeting, so they need every document parsed first, and they take a small part of a build
(parsing and embedding are most of it; README, "Running it big").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from indexer.config import IndexerSettings
from indexer.discover import discover
from indexer.embed import Encoder, load_encoder
from indexer.records import ParsedDocument, SourceFile

log = logging.getLogger(__name__)


def _init_ray() -> None:
    import ray

    if not ray.is_initialized():
        # Ray reads RAY_ADDRESS itself: a cluster when it is set, else a local Ray started here.
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False


def _parse_row(row: dict) -> dict:
    from indexer.parse import ParseError, parse

    src: SourceFile = row["source"]
    try:
        return {"doc_id": src.doc_id, "parsed": parse(src, row["strategy"]), "error": ""}
    except (ParseError, OSError) as e:
        # Reported by the pipeline, which parses a failed file again to give its reason.
        return {"doc_id": src.doc_id, "parsed": None, "error": str(e)}


def parse_all(sources: Sequence[SourceFile], strategy: str) -> dict[str, ParsedDocument]:
    """{doc_id: ParsedDocument} of every file that parses, one Ray task per file."""
    import ray.data

    _init_ray()
    if not sources:
        return {}
    ds = ray.data.from_items([{"source": s, "strategy": strategy} for s in sources], override_num_blocks=len(sources))
    out = {}
    for row in ds.map(_parse_row).iter_rows():
        if row["parsed"] is not None:
            out[row["doc_id"]] = row["parsed"]
    return out


class _EmbedActor:
    """One per worker: the model is loaded once and encodes batch after batch."""

    def __init__(self, model: str, variant: str, cache_dir: str) -> None:
        import torch

        torch.set_num_threads(1)  # the pool's actors share the CPUs instead of each taking all
        # The driver's variant, from the export it cached: every vector of a build from one variant.
        self.encoder = load_encoder(model, variant, Path(cache_dir), threads=1)

    def __call__(self, batch: dict) -> dict:
        vectors = self.encoder.encode(list(batch["text"]), batch_size=len(batch["text"]))
        return {"i": batch["i"], "vector": np.asarray(vectors, dtype=np.float32)}


@dataclass
class RayEncoder:
    """The driver's encoder (name, dimension, token counts for chunking), with encode() on Ray."""

    local: Encoder
    actors: int
    rows_per_batch: int
    cache_dir: Path  # the index's ONNX exports, which the actors load instead of exporting again

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
    def max_tokens(self) -> int:
        return self.local.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.local.count_tokens(text)

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False,
               desc: str = "embed") -> np.ndarray:
        import ray.data

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        _init_ray()
        ds = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)])
        ds = ds.map_batches(_EmbedActor, fn_constructor_args=(self.local.name, self.local.variant, str(self.cache_dir)), batch_size=self.rows_per_batch,
                            concurrency=self.actors, batch_format="numpy")
        out = np.zeros((len(texts), self.dim), np.float32)
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            out[batch["i"]] = batch["vector"]  # blocks come back in any order: rows say where they go
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
    parsed = parse_all(changed, settings.pdf_strategy)
    encoder = RayEncoder(pipeline._load_encoder(settings), actors or max(1, cpus), 4 * settings.batch_size,
                         store.encoder_cache_dir(settings.index_dir))
    return pipeline.build(settings, encoder=encoder, preparsed=parsed)
