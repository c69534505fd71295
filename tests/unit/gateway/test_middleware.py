import asyncio
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.middleware import BodyLimit, RequestContext

LIMIT = 1000


async def echo_length(request: Request) -> Response:
    return Response(str(len(await request.body())))


async def request_id(request: Request) -> Response:
    return Response(request.state.request_id)


def app(body_timeout: float = 60.0) -> Starlette:
    return Starlette(
        routes=[
            Route("/echo", echo_length, methods=["POST"]),
            Route("/id", request_id, methods=["GET"]),
        ],
        middleware=[
            Middleware(RequestContext),
            Middleware(BodyLimit, max_bytes=LIMIT, timeout_seconds=body_timeout),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"y" * size


async def stalled_body() -> AsyncIterator[bytes]:
    """A client that sends a first chunk and then nothing, never ending its body."""
    yield b"y"
    await asyncio.Event().wait()


async def post(content: bytes | AsyncIterator[bytes], body_timeout: float = 60.0) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(body_timeout))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post("/echo", content=content)


async def get_request_id(value: bytes) -> str:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return (await client.get("/id", headers={b"x-request-id": value})).text


async def test_bodies_within_the_limit_pass_whole() -> None:
    assert (await post(b"x" * LIMIT)).text == str(LIMIT)
    assert (await post(chunks(2, LIMIT // 2))).text == str(LIMIT)


async def test_a_chunked_body_over_the_limit_is_413_json() -> None:
    response = await post(chunks(3, LIMIT // 2))
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLargeError"


async def test_a_body_that_never_completes_is_408_and_the_connection_closes() -> None:
    response = await post(stalled_body(), body_timeout=0.05)
    assert response.status_code == 408
    assert response.json()["error"] == "RequestTimeoutError"
    assert response.headers["connection"] == "close"


async def test_a_printable_ascii_request_id_is_kept() -> None:
    assert await get_request_id(b"req-123_ABC") == "req-123_ABC"


async def test_a_request_id_that_cannot_travel_in_logs_and_grpc_metadata_is_replaced() -> None:
    for bad in ("é".encode("latin-1"), "é".encode(), b"a b", b"x" * 129):
        replaced = await get_request_id(bad)
        assert replaced != bad.decode("latin-1")
        assert len(replaced) == 32 and replaced.isalnum()
