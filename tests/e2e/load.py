"""SDK-like load for the reliability tests: OTLP exports of one trace each, sent until every one
is acknowledged (retrying 5xx and dropped connections, as the SDKs do), in a project of its own."""

import asyncio
import gzip
import os

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.eventually import eventually

SPANS = 100


def export(index: int) -> bytes:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    trace_id, now = os.urandom(16), 1_763_805_600_000_000_000 + index
    for position in range(SPANS):
        span = scope_spans.spans.add(trace_id=trace_id, span_id=os.urandom(8), name=f"s{position}")
        span.start_time_unix_nano, span.end_time_unix_nano = now, now + 1_000_000
        span.attributes.add(key="input.value", value=AnyValue(string_value="x" * 200))
    return gzip.compress(request.SerializeToString())


async def send_all(client: httpx.AsyncClient, exports: list[bytes]) -> int:
    """Sends every export until it is acknowledged; returns the number of retries needed."""
    retries = 0
    headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}
    queue = list(enumerate(exports))

    async def sender() -> None:
        nonlocal retries
        while queue:
            _, body = queue.pop()
            while True:
                try:
                    response = await client.post(
                        "/api/public/otel/v1/traces", content=body, headers=headers
                    )
                    if response.status_code == 200:
                        break
                    assert response.status_code in (500, 502, 503, 504), response.text
                except httpx.TransportError:
                    pass
                retries += 1
                await asyncio.sleep(0.2)

    await asyncio.gather(*(sender() for _ in range(4)))
    return retries


async def stored_observations(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/public/observations", params={"limit": 1})
    return int(response.json()["meta"]["totalItems"]) if response.status_code == 200 else -1


async def stored_after(client: httpx.AsyncClient, exports: int) -> tuple[int, int]:
    """(observations, traces) the project holds once the writer has caught up with `exports`
    acknowledged exports: exactly (exports x SPANS, exports) when nothing was lost or doubled."""
    observations = await eventually(
        lambda: stored_observations(client), lambda n: n >= exports * SPANS, timeout=180
    )
    traces = (await client.get("/api/public/traces", params={"limit": 1})).json()
    return observations, int(traces["meta"]["totalItems"])
