"""Polite HTTP for reading a council's website: one Fetcher per run.

A council's site serves its residents first, so every request waits `sync_delay_seconds` after
the one before, names the project in its User-Agent, is retried with exponential backoff only
when the failure may pass (a timeout, a dropped connection, 429, 5xx; a Retry-After is honoured
up to a minute), and counts toward a cap per run. A download larger than the size cap is
abandoned rather than filling the disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import httpx

from indexer.config import IndexerSettings

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


class FetchError(Exception):
    """A request that failed for good. `status` is the HTTP status, None when the site could not be reached."""

    def __init__(self, url: str, reason: str, status: int | None = None):
        super().__init__(f"{url}: {reason}")
        self.url, self.reason, self.status = url, reason, status


class RequestCapReached(Exception):
    """The run has made as many requests as it may."""


@dataclass(frozen=True)
class Response:
    url: str  # after redirects
    status: int  # 200, or 304 for a conditional request whose document is unchanged
    content: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


class Fetcher:
    def __init__(self, settings: IndexerSettings, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.requests = 0
        self._sleep, self._clock = sleep, clock
        self._last: float | None = None
        self._client = httpx.Client(headers={"User-Agent": settings.sync_user_agent}, follow_redirects=True,
                                    timeout=settings.sync_timeout_seconds, transport=transport)

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(self, url: str, params: dict | None = None, headers: dict | None = None) -> Response:
        """GET with the delay, retries and caps; raises FetchError or RequestCapReached."""
        s = self.settings
        for attempt in range(s.sync_retries + 1):
            wait = self._pause()
            if wait > 0:
                self._sleep(wait)
            if self.requests >= s.sync_max_requests:
                raise RequestCapReached(f"stopped after {self.requests} requests (BOARDPAPERS_SYNC_MAX_REQUESTS)")
            self.requests += 1
            last_try = attempt == s.sync_retries
            try:
                with self._client.stream("GET", url, params=params, headers=headers) as r:
                    if r.status_code in RETRY_STATUS and not last_try:
                        self._sleep(_retry_after(r) or s.sync_backoff_seconds * 2 ** attempt)
                        continue
                    if r.status_code >= 400:
                        raise FetchError(str(r.url), f"{r.status_code} {r.reason_phrase}", r.status_code)
                    content = b"" if r.status_code == 304 else self._read(r)
                    return Response(str(r.url), r.status_code, content, r.headers.get("content-type", ""),
                                    r.headers.get("etag"), r.headers.get("last-modified"))
            except httpx.TransportError as e:  # timeouts, refused and dropped connections
                if last_try:
                    raise FetchError(url, _why(e)) from e
                self._sleep(s.sync_backoff_seconds * 2 ** attempt)
            finally:
                self._last = self._clock()
        raise AssertionError("the last try returns or raises")

    def _pause(self) -> float:
        # A retry waits its backoff, then the usual delay as well.
        if self._last is None:
            return 0.0
        return self._last + self.settings.sync_delay_seconds - self._clock()

    def _read(self, r: httpx.Response) -> bytes:
        cap = int(self.settings.sync_max_document_mb * 1024 * 1024)
        declared = r.headers.get("content-length")
        too_big = FetchError(str(r.url), f"larger than {self.settings.sync_max_document_mb:g} MB "
                                         "(BOARDPAPERS_SYNC_MAX_DOCUMENT_MB)", r.status_code)
        if declared and declared.isdigit() and int(declared) > cap:
            raise too_big
        chunks, size = [], 0
        for chunk in r.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("retry-after", "")
    return min(float(value), MAX_RETRY_AFTER) if value.strip().isdigit() else None


def _why(e: httpx.TransportError) -> str:
    if isinstance(e, httpx.TimeoutException):
        return "timed out"
    if isinstance(e, httpx.ConnectError):
        return f"cannot connect ({str(e) or type(e).__name__})"
    return f"connection failed ({type(e).__name__}: {str(e) or 'no detail'})"
