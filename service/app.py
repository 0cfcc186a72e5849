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

from indexer.config import DEFAULT_MODEL
from indexer.embed import Encoder, load_encoder
from indexer.store import IndexError_, LoadedIndex, load_index
from service.config import ServiceSettings
from service.deps import Services
from service.metrics import Metrics
from service.middleware import RequestMiddleware
from service.reload import ServiceState

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DEFAULT_JUDGE = Path(__file__).resolve().parent.parent / "models" / "judge"


LOAD_JUDGE = object()  # build_services' default: load the judge named by the settings


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

        from indexer.store import encoder_cache_dir

        built = (index.manifest if index is not None else read_manifest(settings.index_dir)) or {}
        # ... and run the way it ran there (fp32 PyTorch, fp32 or int8 onnxruntime), so a query's
        # vector is comparable with the passages'.
        encoder = load_encoder(settings.model or built.get("model", {}).get("name") or DEFAULT_MODEL,
                               built.get("model", {}).get("variant", "torch"), encoder_cache_dir(settings.index_dir))
    index = index or load_index(settings.index_dir, expect_model=encoder.name, expect_dim=encoder.dim)
    if index.manifest["model"]["name"] != encoder.name or index.manifest["model"]["dim"] != encoder.dim:
        raise IndexError_(
            f"index was built with {index.manifest['model']['name']!r} (dim {index.manifest['model']['dim']}) "
            f"but the encoder is {encoder.name!r} (dim {encoder.dim}): rebuild the index"
        )
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
    if judge is not None and judge.encoder != encoder.name:
        if settings.judge_dir is not None:
            raise IndexError_(f"the judge in {settings.judge_dir} was trained on {judge.encoder!r} vectors but the "
                              f"encoder is {encoder.name!r}: retrain it (make judge) or unset BOARDPAPERS_JUDGE_DIR")
        # The shipped judge reads the shipped encoder's vectors; an index of another model goes without.
        log.warning("no judge: the shipped one was trained on %r vectors, this index is %r", judge.encoder, encoder.name)
        judge = None
    answerer = Answerer(settings, retriever, decisions, encoder, judge)
    return Services(settings, index, encoder, retriever, decisions, answerer)


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
