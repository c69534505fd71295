"""ASGI middleware: request context and metrics, and the request body's size and time limits."""

import asyncio
import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.common.metrics import HTTP_SECONDS
from services.gateway.errors import BodyTimeout, BodyTooLarge, error_response

# A client's request id is kept when it is short printable ASCII: it goes into log lines and gRPC
# metadata, which take nothing else. Anything else is replaced by a new id.
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")


class RequestContext:
    """Binds a request id (the client's `x-request-id` or a new one) to the log context and
    records latency per route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = given.decode() if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
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
    """Bounds the request body. Size: 413 before parsing when Content-Length is over the limit,
    and reading a chunked body (no Content-Length, as the JS OTLP exporter sends) stops once it
    passes the limit. Time: the whole body must arrive within `timeout_seconds` of the request's
    headers, else 408 and the connection is closed (a client trickling its body would otherwise
    hold a handler forever)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float = 60.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await error_response(413, BodyTooLarge(self.max_bytes).message)(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        received = 0
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body only a disconnect can come: no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.timeout_seconds) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                complete = not message.get("more_body", False)
            return message

        # A handler reading past a limit raises BodyTooLarge or BodyTimeout: the ApiError handler
        # answers 413 or 408.
        await self.app(scope, limited_receive, send)
