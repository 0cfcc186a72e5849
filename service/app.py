"""App factory. The index and encoder are loaded once, in the lifespan, never at import time."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from indexer.embed import Encoder
from indexer.store import IndexError_, LoadedIndex
from service.config import ServiceSettings
from service.metrics import Metrics
from service.middleware import RequestMiddleware
from service.reload import ServiceState

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def create_app(settings: ServiceSettings | None = None, *, encoder: Encoder | None = None,
               index: LoadedIndex | None = None) -> FastAPI:
    """The FastAPI app; heavy loading happens when it starts, through the lifespan."""
    settings = settings or ServiceSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = app.state.runtime
        watcher = None
        try:
            state.install(encoder, index)
        except IndexError_:
            if not settings.watch_index:
                raise
            # Watching: serve /healthz and a 503 /readyz until a build appears (e.g. an indexer
            # container still writing the first one); the watcher loads it.
            log.warning("no usable index yet at %s; waiting for a build", settings.index_dir)
        if settings.watch_index:
            watcher = asyncio.create_task(state.watch(settings.watch_index))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()

    app = FastAPI(title="Board Papers Search", version="0.1.0", lifespan=lifespan,
                  description="Cited search, answers and decision records over council board papers.")
    app.state.metrics = metrics
    app.state.runtime = ServiceState(app.state, settings, metrics)
    app.add_middleware(RequestMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def readable_422(request: Request, exc: RequestValidationError):
        # One sentence per problem, naming the field; never the input echoed back as a trace.
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            msg = err.get("msg", "invalid value").removeprefix("Value error, ")
            problems.append(f"{where}: {msg}" if where else msg)
        return JSONResponse(status_code=422, content={"detail": "; ".join(problems) or "invalid request"})

    @app.exception_handler(Exception)
    async def no_stack_traces(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal error; it has been logged"})

    from service.routes import admin, ask, decisions, documents, meta, search

    for module in (meta, search, documents, decisions, ask):
        app.include_router(module.router)
    if settings.admin_token:
        # No token configured: the admin routes do not exist at all (404), rather than exist and refuse.
        app.include_router(admin.router)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index_page():
        return FileResponse(STATIC / "index.html")

    return app
