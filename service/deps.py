"""Dependencies: what handlers get from app.state, as Annotated aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

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
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
