"""What operators scrape at /metrics (Prometheus text format, through prometheus_client).

Each app has its own registry, so two apps in one process (the tests) never share counters.
Routes are labelled by their template (`/decisions/{decision_id}`), never by the path asked for:
a fuzzer or a scanner cannot grow the number of series.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401 - re-exported for the /metrics route

# Seconds: /search is a few ms, /ask a few hundred at worst on two busy cores, a reload seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ANSWER_OUTCOMES = ("found", "declined", "unsure")


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("boardpapers_http_requests", "HTTP requests answered, by route template and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("boardpapers_http_request_duration_seconds", "Time to answer a request",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.answers = Counter("boardpapers_answers", "/ask answers: found, declined, or unsure (quotes shown, flagged)",
                               ["outcome"], registry=r)
        self.reloads = Counter("boardpapers_index_reloads", "Index loads after start (admin or watcher), ok or failed",
                               ["result"], registry=r)
        self.ready = Gauge("boardpapers_ready", "1 when an index is loaded and requests are served", registry=r)
        self.chunks = Gauge("boardpapers_index_chunks", "Chunks in the index being served", registry=r)
        self.documents = Gauge("boardpapers_index_documents", "Documents in the index being served", registry=r)
        self.built = Gauge("boardpapers_index_built_timestamp_seconds", "When the served index was built (Unix time)",
                           registry=r)
        self.loaded = Gauge("boardpapers_index_loaded_timestamp_seconds", "When the served index was loaded (Unix time)",
                            registry=r)
        self.reload_seconds = Gauge("boardpapers_index_last_reload_seconds", "How long the last successful load took",
                                    registry=r)
        self.build_seconds = Gauge("boardpapers_index_build_duration_seconds",
                                   "How long the served index took to build (the manifest's build_seconds; NaN if absent)",
                                   registry=r)
        self.age = Gauge("boardpapers_index_age_seconds", "Seconds since the served index was built", registry=r)
        self._built_at = math.nan
        self.age.set_function(lambda: time.time() - self._built_at)
        for outcome in ANSWER_OUTCOMES:  # present at 0 from the start, so rate() works on the first answer
            self.answers.labels(outcome)
        for result in ("ok", "failed"):
            self.reloads.labels(result)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def count_answer(self, found: bool, reason: str | None) -> None:
        self.answers.labels("found" if found else "unsure" if reason == "unsure" else "declined").inc()

    def index_loaded(self, manifest: dict, chunks: int, documents: int, seconds: float) -> None:
        self.ready.set(1)
        self.chunks.set(chunks)
        self.documents.set(documents)
        self.loaded.set(time.time())
        self.reload_seconds.set(seconds)
        try:
            self._built_at = datetime.fromisoformat(manifest["built_at"]).timestamp()
        except (KeyError, TypeError, ValueError):
            self._built_at = math.nan  # an index without a build time has no age
        self.built.set(self._built_at)
        took = manifest.get("build_seconds")
        self.build_seconds.set(took if isinstance(took, (int, float)) else math.nan)

    def render(self) -> bytes:
        return generate_latest(self.registry)
