from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import ValidationError
from fastapi.concurrency import run_in_threadpool

from service.convert import search_result
from service.deps import ServicesDep
from service.schemas import INVALID, DateFrom, DateTo, Filters, SearchRequest, SearchResponse

router = APIRouter(tags=["search"], responses=INVALID)


RERANK_DEPTH = 20  # first-stage passages the judge reorders when a search asks for rerank


def run_search(s, req: SearchRequest) -> SearchResponse:
    t0 = time.perf_counter()
    if req.rerank and s.answerer.judge is not None:
        hits = s.answerer.search_reranked(req.query, req.k, req.filters, RERANK_DEPTH)
    else:
        hits = s.retriever.search(req.query, req.k, req.filters)
    results = [search_result(s.index, i + 1, h.score, h.chunk) for i, h in enumerate(hits)]
    return SearchResponse(query=req.query, took_ms=round((time.perf_counter() - t0) * 1000, 2), results=results)


@router.post("/search", response_model=SearchResponse)
async def search_post(req: SearchRequest, s: ServicesDep) -> SearchResponse:
    return await run_in_threadpool(run_search, s, req)


@router.get("/search", response_model=SearchResponse)
async def search_get(
    s: ServicesDep,
    q: Annotated[str, Query(description="the question or words to search for")],
    k: Annotated[int, Query(ge=1, le=50)] = 10,
    council: str | None = None,
    body: str | None = None,
    document_type: str | None = None,
    date_from: DateFrom | None = None,
    date_to: DateTo | None = None,
    decisions_only: bool = False,
    rerank: bool = False,
) -> SearchResponse:
    try:
        req = SearchRequest(query=q, k=k, rerank=rerank,
                            filters=Filters(council=council, body=body, document_type=document_type,
                                            date_from=date_from, date_to=date_to, decisions_only=decisions_only))
    except ValidationError as e:
        # Built here rather than by FastAPI, so its validation errors must become 422s here.
        detail = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())
        raise HTTPException(status_code=422, detail=detail) from e
    return await run_in_threadpool(run_search, s, req)
