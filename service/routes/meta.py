from __future__ import annotations

from fastapi import APIRouter

from service.deps import ServicesDep

router = APIRouter(tags=["meta"])


@router.get("/healthz")
def healthz(s: ServicesDep) -> dict:
    return {"status": "ok", "chunks": len(s.index.chunks), "documents": len(s.index.documents)}


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
