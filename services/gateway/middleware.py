"""ASGI middleware: request context and metrics, and the request-body size limit."""

import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common.metrics import HTTP_SECONDS
from services.gateway.errors import BodyTooLarge, error_response


class RequestContext:
    """Binds a request id (the client's `x-request-id` or a new one) to the log context and
    records latency per route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode() or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_status)
            finally:
                route = scope.get("route")
                name = getattr(route, "path", "unmatched")
                HTTP_SECONDS.labels(name, str(status)).observe(time.perf_counter() - started)


class BodyLimit:
    """Answers 413 before parsing when Content-Length is over the limit, and stops reading a
    chunked body (no Content-Length, as the JS OTLP exporter sends) once it passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await error_response(413, BodyTooLarge(self.max_bytes).message)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        # A handler reading past the limit raises BodyTooLarge: the ApiError handler answers 413.
        await self.app(scope, limited_receive, send)
