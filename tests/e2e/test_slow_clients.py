"""Slow clients cannot hold the gateway: a connection must send its request headers, and then its
body, within deadlines (here a gateway started with 1-second ones), and headers are bounded in
size; others are served meanwhile."""

import asyncio
import base64
import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack, free_port
from tests.e2e.probes import wait_until_up

# How long a test waits for the gateway to act before it fails: far beyond the 1 s deadlines.
FAILSAFE_SECONDS = 30
HALF_HEADERS = b"GET /api/public/health HTTP/1.1\r\nHost: gateway\r\nX-Slow: "


@pytest.fixture(scope="module")
async def strict_gateway(stack: Stack) -> AsyncIterator[int]:
    """A second gateway of the stack with 1-second header and body deadlines; yields its port."""
    port = free_port()
    gateway = stack.start(
        "gateway",
        GATEWAY_HTTP_PORT=str(port),
        GATEWAY_HEADER_TIMEOUT_SECONDS="1",
        GATEWAY_BODY_TIMEOUT_SECONDS="1",
    )
    try:
        await wait_until_up(f"http://127.0.0.1:{port}", "/api/public/health")
        yield port
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (b"" when it resets it, as a
    close with unread bytes from the client does)."""
    try:
        return await asyncio.wait_for(reader.read(), FAILSAFE_SECONDS)
    except ConnectionResetError:
        return b""


async def test_a_connection_that_never_finishes_its_headers_is_closed(strict_gateway: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_gateway)
    writer.write(HALF_HEADERS)
    await writer.drain()
    assert await read_until_closed(reader) == b""
    writer.close()


async def test_trickling_header_bytes_does_not_extend_the_deadline(strict_gateway: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_gateway)
    closed = asyncio.create_task(read_until_closed(reader))
    writer.write(HALF_HEADERS)
    for _ in range(FAILSAFE_SECONDS * 10):
        if closed.done():
            break
        try:
            writer.write(b"x")
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0.1)
    assert await closed == b""
    writer.close()


async def test_a_kept_alive_connection_must_send_its_next_headers_in_time(
    strict_gateway: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_gateway)
    writer.write(b"GET /api/public/health HTTP/1.1\r\nHost: gateway\r\n\r\n")
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), FAILSAFE_SECONDS)
    assert status_line.startswith(b"HTTP/1.1 200")
    writer.write(HALF_HEADERS)
    await writer.drain()
    rest = await read_until_closed(reader)
    assert b"HTTP/1.1" not in rest.partition(b"\r\n\r\n")[2]  # the first answer, then nothing
    writer.close()


async def test_headers_over_64_kib_are_431_and_the_connection_closes(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(stack.env["GATEWAY_HTTP_PORT"]))
    writer.write(HALF_HEADERS + b"x" * 66 * 1024)
    await writer.drain()
    answer = await read_until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 431")
    assert b'"error":"RequestHeaderFieldsTooLargeError"' in answer
    writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_408_and_the_connection_closes(
    strict_gateway: int, stack: Stack
) -> None:
    credentials = b"Basic " + base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode())
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_gateway)
    writer.write(
        b"POST /api/public/v2/prompts HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: " + credentials + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"name": "sl'
    )
    await writer.drain()
    answer = await read_until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"error":"RequestTimeoutError"' in answer
    writer.close()


async def test_requests_are_served_while_200_slow_connections_are_open(stack: Stack) -> None:
    port = int(stack.env["GATEWAY_HTTP_PORT"])
    slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
    try:
        for _, writer in slow:
            writer.write(HALF_HEADERS)
        await asyncio.gather(*(writer.drain() for _, writer in slow))
        auth = (PUBLIC_KEY, SECRET_KEY)
        async with httpx.AsyncClient(base_url=stack.gateway_url, auth=auth) as client:
            assert (await client.get("/api/public/projects")).status_code == 200
    finally:
        for _, writer in slow:
            writer.close()
