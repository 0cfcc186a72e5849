"""Around every HTTP request: its id, the body-size limit, metrics and one access-log line.

A plain ASGI middleware rather than Starlette's BaseHTTPMiddleware, so streamed answers
(/ask/stream) pass through untouched and the body limit can stop a body as it arrives.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from service.logs import request_id
from service.metrics import Metrics

log = logging.getLogger("service.access")
# A caller's id is echoed back and logged, so only a short, plain one is taken; anything else is replaced.
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class _TooLarge(Exception):
    pass


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _route_label(scope) -> str:
    # Set by the router on the scope it was given (the same dict) when a route matched.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path or "unmatched"


class RequestMiddleware:
    def __init__(self, app, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _header(scope, b"x-request-id")
        rid = given if given and _GOOD_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        t0 = time.perf_counter()
        state = {"status": 500, "started": False, "too_large": False, "swallow": False}
        rid_header = (b"x-request-id", rid.encode())

        async def send_json(status: int, content: dict, *extra_headers):
            body = json.dumps(content).encode()
            state.update(status=status, started=True)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                    rid_header, *extra_headers]})
            await send({"type": "http.response.body", "body": body})

        async def send_413():
            # Connection: close, as the rest of the body may still be on its way.
            await send_json(413, {"detail": f"the request body is larger than the limit of {self.limit} bytes"},
                            (b"connection", b"close"))

        async def send_wrapper(message):
            if state["swallow"]:
                return  # the app's own answer to a body we cut off (FastAPI makes it a 400); ours went instead
            if message["type"] == "http.response.start":
                if state["too_large"]:
                    state["swallow"] = True
                    await send_413()
                    return
                state.update(status=message["status"], started=True)
                message = {**message, "headers": [*message.get("headers", ()), rid_header]}
            await send(message)

        received = 0

        async def receive_wrapper():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    state["too_large"] = True
                    raise _TooLarge
            return message

        try:
            length = _header(scope, b"content-length")
            if length is not None and length.isdigit() and int(length) > self.limit:
                await send_413()  # refused before a byte of the body is read
            else:
                try:
                    await self.app(scope, receive_wrapper, send_wrapper)
                except _TooLarge:
                    if not state["started"]:
                        await send_413()
                except Exception:
                    # Answered here rather than by Starlette's outermost error middleware, so the
                    # 500 carries the request id that the logged traceback names.
                    if state["started"]:
                        raise
                    log.exception("unhandled error on %s", scope.get("path"), extra={"request_id": rid})
                    await send_json(500, {"detail": "internal error; it has been logged"})
        finally:
            seconds = time.perf_counter() - t0
            route = _route_label(scope)
            self.metrics.observe_request(scope["method"], route, state["status"], seconds)
            if log.isEnabledFor(logging.INFO):  # the line's fields are not even gathered when it is not written
                log.info("request", extra={"request_id": rid, "method": scope["method"], "route": route, "path": scope.get("path"),
                                           "status": state["status"], "duration_ms": round(seconds * 1000, 2)})
            request_id.reset(token)
