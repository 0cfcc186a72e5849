"""Loading the index into the running service, and loading it again after a build.

Every request takes `app.state.services` once, at its start (service.deps.get_services), and uses
that one object to the end: index, retriever, decisions and answerer all built from one index. A
reload builds a whole new Services beside the old one and swaps it in with one reference
assignment, so a request is served from the old index or the new one, never a mix, and requests
in flight finish on the object they took. A load that fails leaves the old one serving.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from indexer.config import DEFAULT_MODEL
from indexer.embed import Encoder, load_encoder, model_digest
from indexer.store import IndexError_, LoadedIndex, current_build, load_index
from service.config import ServiceSettings
from service.deps import Services
from service.metrics import Metrics

log = logging.getLogger(__name__)
DEFAULT_JUDGE = Path(__file__).resolve().parent.parent / "models" / "judge"
LOAD_JUDGE = object()  # build_services' default: load the judge named by the settings


def query_encoder(settings: ServiceSettings, manifest: dict) -> Encoder:
    """The encoder for queries over an index with this manifest: its model (unless the settings name
    another), run as its vectors were made (its variant), on the service's query threads."""
    from indexer.store import encoder_cache_dir

    model = manifest.get("model", {})
    return load_encoder(settings.model or model.get("name") or DEFAULT_MODEL, model.get("variant", "torch"),
                        encoder_cache_dir(settings.index_dir), threads=settings.query_threads)


def build_services(settings: ServiceSettings, encoder: Encoder | None = None, index: LoadedIndex | None = None,
                   judge=LOAD_JUDGE) -> Services:
    """Everything a request needs, built from one index (a reload builds a whole new one).

    `judge` may be one already loaded for the same encoder (a reload keeps it), else it is loaded.
    """
    from service.answer import Answerer
    from service.decisions import DecisionSearch
    from service.judge import load_judge
    from service.retrieve import Retriever

    if encoder is None:
        # Unless told otherwise, queries are encoded by the model that built the index.
        from indexer.store import read_manifest

        built = (index.manifest if index is not None else read_manifest(settings.index_dir)) or {}
        # ... and run the way it ran there (fp32 PyTorch, fp32 or int8 onnxruntime), so a query's
        # vector is comparable with the passages'.
        encoder = query_encoder(settings, built)
    index = index or load_index(settings.index_dir, expect_model=encoder.name, expect_dim=encoder.dim)
    if index.manifest["model"]["name"] != encoder.name or index.manifest["model"]["dim"] != encoder.dim:
        raise IndexError_(
            f"index was built with {index.manifest['model']['name']!r} (dim {index.manifest['model']['dim']}) "
            f"but the encoder is {encoder.name!r} (dim {encoder.dim}): rebuild the index"
        )
    # The same model name retrained (make judge) is other weights: vectors of the old ones are not
    # comparable with queries encoded by the new ones.
    digest = model_digest(encoder.name)
    built_digest = index.manifest["model"].get("digest", "")
    if digest and built_digest and digest != built_digest:
        raise IndexError_(f"index was built with other weights of {encoder.name!r} than the ones installed "
                          f"(digest {built_digest} against {digest}): rebuild the index")
    built_variant = index.manifest["model"].get("variant", "torch")
    if getattr(encoder, "variant", built_variant) != built_variant:
        log.warning("the index's vectors are %s but queries are encoded with %s: results may differ slightly",
                    built_variant, encoder.variant)
    if settings.onnx_queries and hasattr(encoder, "enable_onnx") and not encoder.onnx_enabled:
        encoder.enable_onnx()
    retriever = Retriever.from_settings(index, encoder, settings)
    decisions = DecisionSearch(index, retriever)
    if judge is LOAD_JUDGE:
        judge = load_judge(settings.judge_dir or DEFAULT_JUDGE) if settings.use_judge else None
    if judge is not None and judge.encoder == encoder.name and digest and judge.encoder_digest \
            and judge.encoder_digest != digest:
        raise IndexError_(f"the judge in {settings.judge_dir or DEFAULT_JUDGE} was trained on other weights of "
                          f"{encoder.name!r} than the ones installed: retrain it (make judge)")
    if judge is not None and judge.encoder != encoder.name:
        if settings.judge_dir is not None:
            raise IndexError_(f"the judge in {settings.judge_dir} was trained on {judge.encoder!r} vectors but the "
                              f"encoder is {encoder.name!r}: retrain it (make judge) or unset BOARDPAPERS_JUDGE_DIR")
        # The shipped judge reads the shipped encoder's vectors; an index of another model goes without.
        log.warning("no judge: the shipped one was trained on %r vectors, this index is %r", judge.encoder, encoder.name)
        judge = None
    answerer = Answerer(settings, retriever, decisions, encoder, judge)
    return Services(settings, index, encoder, retriever, decisions, answerer)


@dataclass(frozen=True)
class Loaded:
    """What one successful load put in service."""

    build: str
    model: str
    chunks: int
    documents: int
    seconds: float
    encoder_reused: bool


class ServiceState:
    """Owns app.state.services: the first load, reloads (one at a time) and the optional watcher."""

    def __init__(self, app_state, settings: ServiceSettings, metrics: Metrics) -> None:
        self.app_state = app_state
        self.settings = settings
        self.metrics = metrics
        self.app_state.services = None
        self.last_error: str | None = None
        self.loaded: Loaded | None = None
        self._lock = threading.Lock()  # two reloads at once would load twice and race to assign

    @property
    def services(self) -> Services | None:
        return self.app_state.services

    def install(self, encoder=None, index: LoadedIndex | None = None) -> Loaded:
        """The first load (at start-up), possibly of an encoder and index the caller loaded."""
        return self._load(encoder=encoder, index=index, counted=False)

    def reload(self) -> Loaded:
        """Load the index `current` points at now and swap it in. Raises IndexError_ (the old one stays)."""
        return self._load(counted=True)

    def _load(self, encoder=None, index: LoadedIndex | None = None, counted: bool = True) -> Loaded:
        with self._lock:
            t0 = time.perf_counter()
            old = self.services
            try:
                if index is None:
                    index = load_index(self.settings.index_dir)
                wanted = self.settings.model or index.manifest["model"]["name"]
                reused = encoder is None and old is not None and old.encoder.name == wanted
                if reused:
                    # Same model: keep the encoder (and its ONNX session) and the judge that reads its vectors.
                    encoder = old.encoder
                new = build_services(self.settings, encoder, index,
                                     judge=old.answerer.judge if reused else LOAD_JUDGE)
            except Exception as e:
                self.last_error = str(e)
                if counted:
                    self.metrics.reloads.labels("failed").inc()
                log.error("index load failed, %s: %s", "the previous index keeps serving" if old else "not ready",
                          e, extra={"error": type(e).__name__})
                raise
            self.app_state.services = new  # the swap: one reference assignment
            seconds = time.perf_counter() - t0
            self.last_error = None
            self.loaded = Loaded(build=new.index.path.name, model=new.encoder.name, chunks=len(new.index.chunks),
                                 documents=len(new.index.documents), seconds=round(seconds, 3), encoder_reused=reused)
            self.metrics.index_loaded(new.index.manifest, self.loaded.chunks, self.loaded.documents, seconds)
            if counted:
                self.metrics.reloads.labels("ok").inc()
            log.info("loaded index %s: %d chunks in %.2f s", new.index.path, self.loaded.chunks, seconds,
                     extra={"build": self.loaded.build, "chunks": self.loaded.chunks})
            return self.loaded

    async def watch(self, every: float) -> None:
        """Poll the `current` link; load each new build once (a build that fails is not retried until
        `current` moves again, so a broken build is one error in the log, not one per poll)."""
        tried: Path | None = self.services.index.path if self.services else None
        while True:
            await asyncio.sleep(every)
            target = current_build(self.settings.index_dir)
            if target is None or target == tried:
                continue
            tried = target
            try:
                await asyncio.to_thread(self.reload)
            except IndexError_:
                pass  # logged and counted by _load
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad build
                log.exception("watcher: loading %s failed", target)
