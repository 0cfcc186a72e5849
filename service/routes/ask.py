from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from service.deps import ServicesDep
from service.schemas import INVALID, AskRequest, AskResponse

router = APIRouter(tags=["ask"], responses=INVALID)


@router.post("/ask", response_model=AskResponse)
async def ask(req: AskRequest, s: ServicesDep, request: Request) -> AskResponse:
    result = await run_in_threadpool(s.answerer.answer, req)
    request.app.state.metrics.count_answer(result.found, result.reason)
    return result


@router.post("/ask/stream", response_class=StreamingResponse, responses={200: {
    "content": {"text/event-stream": {}},
    "description": "`delta` events with pieces of the answer, then a `done` event holding the whole AskResponse. "
                   "With an LLM configured the deltas are the model's as it writes; if its answer is then "
                   "rejected, a `reset` event says to discard them and the extractive answer's deltas follow."}})
async def ask_stream(req: AskRequest, s: ServicesDep, request: Request) -> StreamingResponse:
    if s.settings.llm_url:
        from service.llm import stream_events

        # A generator: each event is sent as the model produces it (iterated on a worker thread);
        # the answer is counted when its outcome is known, just before `done`.
        metrics = request.app.state.metrics
        return StreamingResponse(stream_events(s.answerer, req, lambda r: metrics.count_answer(r.found, r.reason)),
                                 media_type="text/event-stream")
    result = await run_in_threadpool(s.answerer.answer, req)
    request.app.state.metrics.count_answer(result.found, result.reason)
    return StreamingResponse(iter(list(s.answerer.events_for(result))), media_type="text/event-stream")
