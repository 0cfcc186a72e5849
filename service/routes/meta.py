from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from service.deps import ServicesDep
from service.metrics import CONTENT_TYPE_LATEST
from service.schemas import ErrorOut

router = APIRouter(tags=["meta"])


@router.get("/healthz")
def healthz(request: Request) -> dict:
    """The process is up. Cheap on purpose: no index work, answered while loading too."""
    s = request.app.state.services
    if s is None:
        return {"status": "ok", "ready": False}
    return {"status": "ok", "ready": True, "chunks": len(s.index.chunks), "documents": len(s.index.documents)}


@router.get("/readyz", responses={503: {"model": ErrorOut, "description": "No index is loaded yet."}})
def readyz(request: Request):
    """Ready to serve: an index is loaded (503 until then). Names the build being served."""
    runtime = request.app.state.runtime
    loaded = runtime.loaded
    if request.app.state.services is None or loaded is None:
        return JSONResponse(status_code=503, content={
            "detail": f"not ready: no index is loaded ({runtime.last_error or 'starting'})", "ready": False})
    out = {"ready": True, "build": loaded.build, "model": loaded.model, "chunks": loaded.chunks,
           "documents": loaded.documents}
    if runtime.last_error:  # a later load failed; this build still serves
        out["last_reload_error"] = runtime.last_error
    return out


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                                                                  "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/stats")
def stats(s: ServicesDep) -> dict:
    m = s.index.manifest
    return {
        "manifest": m,
        "counts": {
            "documents": len(s.index.documents),
            "chunks": len(s.index.chunks),
            "decisions": sum(d.kind == "decision" for d in s.index.decisions),
            "recommendations": sum(d.kind == "recommendation" for d in s.index.decisions),
            "tokens": m["counts"]["tokens"],
            "skipped": len(m.get("skipped", [])),
        },
        "retrieval": {"fusion": s.settings.fusion, "dense_weight": s.settings.dense_weight,
                      "candidates": s.settings.candidates, "date_boost": s.settings.date_boost},
    }
