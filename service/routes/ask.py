from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from service.deps import ServicesDep
from service.schemas import AskRequest, AskResponse

router = APIRouter(tags=["ask"])


@router.post("/ask", response_model=AskResponse)
async def ask(req: AskRequest, s: ServicesDep) -> AskResponse:
    return await run_in_threadpool(s.answerer.answer, req)


@router.post("/ask/stream")
async def ask_stream(req: AskRequest, s: ServicesDep) -> StreamingResponse:
    events = await run_in_threadpool(lambda: list(s.answerer.stream_events(req)))
    return StreamingResponse(iter(events), media_type="text/event-stream")
