"""App factory. The index and encoder are loaded once, in the lifespan, never at import time."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from indexer.config import DEFAULT_MODEL
from indexer.embed import Encoder, load_encoder
from indexer.store import LoadedIndex, load_index
from service.config import ServiceSettings
from service.deps import Services

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DEFAULT_JUDGE = Path(__file__).resolve().parent.parent / "models" / "judge"


def build_services(settings: ServiceSettings, encoder: Encoder | None = None, index: LoadedIndex | None = None) -> Services:
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
        from indexer.store import IndexError_

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
    judge = load_judge(settings.judge_dir or DEFAULT_JUDGE) if settings.use_judge else None
    if judge is not None and judge.encoder != encoder.name:
        if settings.judge_dir is not None:
            from indexer.store import IndexError_

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

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.services = build_services(settings, encoder, index)
        log.info("loaded index %s: %d chunks", settings.index_dir, len(app.state.services.index.chunks))
        yield

    app = FastAPI(title="Board Papers Search", version="0.1.0", lifespan=lifespan,
                  description="Cited search, answers and decision records over council board papers.")

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

    from service.routes import ask, decisions, documents, meta, search

    for module in (meta, search, documents, decisions, ask):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index_page():
        return FileResponse(STATIC / "index.html")

    return app
