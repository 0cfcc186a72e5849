from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from service.convert import decision_out
from service.decisions import DecisionQuery
from service.deps import ServicesDep
from service.schemas import INVALID, MAX_QUERY_CHARS, NOT_FOUND, DateFrom, DateTo, DecisionDetail, DecisionList, Timeline

router = APIRouter(tags=["decisions"], responses=INVALID)

Q = Annotated[str | None, Query(max_length=MAX_QUERY_CHARS, description="what the decision was about")]
Kind = Annotated[Literal["decision", "recommendation"] | None, Query()]


def _query(q, council, body, date_from, date_to, kind) -> DecisionQuery:
    if date_from and date_to and date_from > date_to:
        raise HTTPException(status_code=422, detail="date_from is after date_to")
    return DecisionQuery((q or "").strip() or None, council, body, date_from, date_to, kind)


@router.get("/decisions", response_model=DecisionList)
async def list_decisions(
    s: ServicesDep, q: Q = None, council: str | None = None, body: str | None = None,
    date_from: DateFrom | None = None, date_to: DateTo | None = None, kind: Kind = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20, offset: Annotated[int, Query(ge=0)] = 0,
) -> DecisionList:
    found = await run_in_threadpool(s.decisions.search, _query(q, council, body, date_from, date_to, kind))
    page = found[offset:offset + limit]
    return DecisionList(total=len(found), decisions=[decision_out(s.index, d, sc) for d, sc in page])


@router.get("/decisions/timeline", response_model=Timeline)
async def timeline(
    s: ServicesDep, q: Q = None, council: str | None = None, body: str | None = None,
    date_from: DateFrom | None = None, date_to: DateTo | None = None, kind: Kind = None,
) -> Timeline:
    query = _query(q, council, body, date_from, date_to, kind)
    found = await run_in_threadpool(s.decisions.timeline, query)
    return Timeline(query=query.q or "", decisions=[decision_out(s.index, d) for d in found])


@router.get("/decisions/{decision_id}", response_model=DecisionDetail, responses=NOT_FOUND)
def get_decision(decision_id: str, s: ServicesDep) -> DecisionDetail:
    d = s.decisions.by_id.get(decision_id)
    if d is None:
        raise HTTPException(status_code=404, detail=f"no decision with id {decision_id!r}")
    text = s.index.texts[d.doc_id]
    base = decision_out(s.index, d)
    return DecisionDetail(**base.model_dump(), discussion=text[d.context_start:d.context_end],
                          discussion_start=d.context_start, discussion_end=d.context_end,
                          attendance=list(d.attendance))
