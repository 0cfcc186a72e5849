"""Operator routes, behind a bearer token (BOARDPAPERS_ADMIN_TOKEN); mounted only when one is set."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from indexer.store import IndexError_
from service.schemas import ErrorOut

log = logging.getLogger(__name__)


def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    token = request.app.state.runtime.settings.admin_token
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(status_code=401, detail="admin routes need `Authorization: Bearer <token>`",
                            headers={"WWW-Authenticate": "Bearer"})
    # Constant-time, so the token cannot be guessed a character at a time from response times.
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(status_code=403, detail="the admin token is wrong")


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses={
    401: {"model": ErrorOut, "description": "No bearer token."},
    403: {"model": ErrorOut, "description": "Wrong bearer token."}})


class ReloadOut(BaseModel):
    status: str
    build: str
    model: str
    chunks: int
    documents: int
    seconds: float
    encoder_reused: bool


@router.post("/reload", response_model=ReloadOut, responses={
    409: {"model": ErrorOut, "description": "The index on disk is missing, corrupt or for another model; "
                                            "`detail` names the problem and the previous index keeps serving."},
    500: {"model": ErrorOut, "description": "Loading failed unexpectedly; the previous index keeps serving."}})
async def reload(request: Request) -> ReloadOut:
    """Load the build `current` points at and swap it in whole; requests in flight finish on the old one."""
    runtime = request.app.state.runtime
    try:
        loaded = await run_in_threadpool(runtime.reload)
    except IndexError_ as e:
        raise HTTPException(status_code=409, detail=f"reload refused, the previous index keeps serving: {e}") from e
    except Exception as e:  # noqa: BLE001 - whatever broke the load, the caller is told and the old index stays
        raise HTTPException(status_code=500, detail=f"reload failed, the previous index keeps serving: "
                                                    f"{type(e).__name__}: {e}") from e
    return ReloadOut(status="reloaded", build=loaded.build, model=loaded.model, chunks=loaded.chunks,
                     documents=loaded.documents, seconds=loaded.seconds, encoder_reused=loaded.encoder_reused)
