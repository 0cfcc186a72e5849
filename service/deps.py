"""Dependencies: what handlers get from app.state, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from indexer.embed import Encoder
from indexer.store import LoadedIndex
from service.config import ServiceSettings
from service.retrieve import Retriever


@dataclass
class Services:
    settings: ServiceSettings
    index: LoadedIndex
    encoder: Encoder
    retriever: Retriever
    decisions: "DecisionSearch"  # noqa: F821 - service.decisions, imported lazily
    answerer: "Answerer"  # noqa: F821 - service.answer


def get_services(request: Request) -> Services:
    """The request's one Services object, taken once: a reload swapping in another mid-request
    does not change what this request reads."""
    services = request.app.state.services
    if services is None:
        runtime = request.app.state.runtime
        raise HTTPException(status_code=503, detail=f"no index is loaded yet ({runtime.last_error or 'starting'}); "
                                                    "try again once /readyz says ready")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
