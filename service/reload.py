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

from indexer.store import IndexError_, LoadedIndex, current_build, load_index
from service.config import ServiceSettings
from service.deps import Services
from service.metrics import Metrics

log = logging.getLogger(__name__)


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
        from service.app import LOAD_JUDGE, build_services

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
