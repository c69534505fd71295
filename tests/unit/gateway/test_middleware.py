from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.middleware import BodyLimit

LIMIT = 1000


async def echo_length(request: Request) -> Response:
    return Response(str(len(await request.body())))


def app() -> Starlette:
    return Starlette(
        routes=[Route("/echo", echo_length, methods=["POST"])],
        middleware=[Middleware(BodyLimit, max_bytes=LIMIT)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )


async def chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"y" * size


async def post(content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post("/echo", content=content)


async def test_bodies_within_the_limit_pass_whole() -> None:
    assert (await post(b"x" * LIMIT)).text == str(LIMIT)
    assert (await post(chunks(2, LIMIT // 2))).text == str(LIMIT)


async def test_a_chunked_body_over_the_limit_is_413_json() -> None:
    response = await post(chunks(3, LIMIT // 2))
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLargeError"
