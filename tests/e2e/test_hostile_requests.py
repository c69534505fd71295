"""Client mistakes and odd inputs on the read path get a clear 4xx in Langfuse's error shape, never
a 500: each case below was a 500 once (found by hand or by schemathesis)."""

import base64
import uuid
from typing import Any

import grpc
import httpx
import pytest

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.query.v1 import query_pb2, query_pb2_grpc
from libs.common.rpc import make_channel
from libs.common.scope import ProjectScope
from tests.e2e.conftest import PROJECT_ID, PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
DEEP = b'{"name": "deep", "prompt": "x", "config": ' + b"[" * 300 + b"]" * 300 + b"}"


def assert_client_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["message"], str) and isinstance(body["error"], str)


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        # Numbers past the int32 fields they travel in.
        ("GET", "/api/public/traces?page=2147483648", None, 400),
        ("GET", "/api/public/traces?page=99999999999999999999999", None, 400),
        ("GET", "/api/public/v2/prompts?page=2147483648", None, 400),
        ("GET", "/api/public/v2/prompts/any?version=2147483648", None, 400),
        ("PATCH", "/api/public/v2/prompts/any/versions/2147483648", b'{"newLabels": []}', 400),
        ("GET", "/api/public/v2/observations?limit=2147483648", None, 400),
        # Timestamps before the year 1000, or that overflow once moved to UTC.
        ("GET", "/api/public/traces?fromTimestamp=0001-01-01T00:00:00Z", None, 400),
        ("GET", "/api/public/traces?toTimestamp=0999-12-31T00:00:00Z", None, 400),
        ("GET", "/api/public/sessions?fromTimestamp=0001-01-01T00:00:00Z", None, 400),
        ("GET", "/api/public/v2/scores?toTimestamp=9999-12-31T23:00:00-05:00", None, 400),
        ("GET", "/api/public/v2/prompts?fromUpdatedAt=99999-01-01T00:00:00Z", None, 400),
        # Ids with a trailing backslash or control characters are ids that do not exist.
        ("GET", "/api/public/traces/abc%5C", None, 404),
        ("GET", "/api/public/traces/a%5Cx41", None, 404),
        ("GET", "/api/public/observations/%00", None, 404),
        ("GET", "/api/public/observations/a%0Ab%09c", None, 404),
        ("GET", "/api/public/v2/scores/%5C", None, 404),
        ("GET", "/api/public/sessions/%5C%0A", None, 404),
        # NUL cannot be stored in PostgreSQL text.
        ("GET", "/api/public/v2/prompts/a%00b", None, 400),
        ("DELETE", "/api/public/v2/prompts/a%00b", None, 400),
        ("POST", "/api/public/v2/prompts", b'{"name": "a\\u0000b", "prompt": "x"}', 400),
        ("POST", "/api/public/v2/prompts", b'{"name": "nul-text", "prompt": "a\\u0000"}', 400),
        # Wrong JSON types in a prompt.
        ("POST", "/api/public/v2/prompts", b'{"name": "t", "prompt": "x", "type": ["text"]}', 400),
        ("POST", "/api/public/v2/prompts", b'{"name": "t", "prompt": "x", "type": {}}', 400),
        (
            "POST",
            "/api/public/v2/prompts",
            b'{"name": "c", "type": "chat", "prompt": [{"role": "u", "content": "x", "type": 5}]}',
            400,
        ),
        # JSON deeper than orjson writes (254 levels).
        ("POST", "/api/public/v2/prompts", DEEP, 400),
        ("DELETE", "/api/public/traces", b'{"traceIds": ' + b"[" * 300 + b"]" * 300 + b"}", 400),
        # Trace ids that could never have been stored, and too many at once.
        ("DELETE", "/api/public/traces", b'{"traceIds": [""]}', 400),
        ("DELETE", "/api/public/traces", b'{"traceIds": ["a\\u0000"]}', 400),
        ("DELETE", "/api/public/traces", b'{"traceIds": ["' + b"x" * 801 + b'"]}', 400),
        (
            "DELETE",
            "/api/public/traces",
            b'{"traceIds": [' + b",".join([b'"x"'] * 1001) + b"]}",
            400,
        ),
    ],
)
async def test_a_client_mistake_is_a_4xx_in_langfuses_shape(
    stack: Stack, method: str, path: str, content: bytes | None, status: int
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.request(method, path, content=content)
    assert_client_error(response, status)


async def test_odd_headers_are_handled(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        # A request id that cannot go into logs and gRPC metadata is replaced, not a 500.
        response = await client.get("/api/public/traces", headers={b"x-request-id": b"\xe9t\xe9"})
        assert response.status_code == 200
    latin1 = b"Basic " + base64.b64encode("p\xe9:s\xe9".encode("latin-1"))
    for authorization in (b"Basic \xe9\xe9", latin1):
        response = httpx.get(
            f"{stack.gateway_url}/api/public/traces", headers={b"authorization": authorization}
        )
        assert_client_error(response, 401)


async def test_a_duplicate_model_is_a_conflict(stack: Stack) -> None:
    model = {
        "modelName": f"dup-{uuid.uuid4().hex[:8]}",
        "matchPattern": "(?i)^dup$",
        "inputPrice": 0.001,
        "startDate": "2026-01-01T00:00:00Z",
    }
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        assert (await client.post("/api/public/models", json=model)).status_code == 200
        assert_client_error(await client.post("/api/public/models", json=model), 409)


async def ingest_trace(client: httpx.AsyncClient, trace_id: str, **body: Any) -> None:
    event = {"id": uuid.uuid4().hex, "type": "trace-create", "timestamp": "2026-11-22T10:00:00Z"}
    batch = {"batch": [{**event, "body": {"id": trace_id, **body}}]}
    response = await client.post("/api/public/ingestion", json=batch)
    assert response.status_code == 207 and not response.json()["errors"], response.text


async def test_ids_with_backslashes_and_escapes_are_read_as_they_are(stack: Stack) -> None:
    # chDB reads string parameters with escapes: `\x41` once matched the trace `A`.
    base = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        await ingest_trace(client, f"{base}A")
        await ingest_trace(client, f"{base}\\")
        response = await eventually(
            lambda: client.get(f"/api/public/traces/{base}%5C"), lambda r: r.status_code == 200
        )
        assert response.json()["id"] == f"{base}\\"
        await eventually(
            lambda: client.get(f"/api/public/traces/{base}A"), lambda r: r.status_code == 200
        )
        assert (await client.get(f"/api/public/traces/{base}%5Cx41")).status_code == 404


async def test_sessions_filter_by_environment(stack: Stack) -> None:
    session = f"session-{uuid.uuid4().hex}"
    environment = f"env-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        await ingest_trace(client, uuid.uuid4().hex, sessionId=session, environment=environment)

        async def sessions_in(env: str) -> list[str]:
            response = await client.get("/api/public/sessions", params={"environment": env})
            assert response.status_code == 200, response.text
            return [s["id"] for s in response.json()["data"]]

        await eventually(lambda: sessions_in(environment), lambda ids: ids == [session])
        assert session not in await sessions_in("production")


@pytest.mark.parametrize(
    "request_message",
    [
        query_pb2.ListTracesRequest(page=common_pb2.PageRequest(page=1, limit=0)),
        query_pb2.ListTracesRequest(page=common_pb2.PageRequest(page=0, limit=10)),
        query_pb2.ListTracesRequest(page=common_pb2.PageRequest(page=1, limit=100_000)),
        query_pb2.ListObservationsRequest(cursor=common_pb2.CursorRequest(limit=100_000)),
        query_pb2.ListScoresRequest(page=common_pb2.PageRequest(page=1, limit=0)),
        query_pb2.ListSessionsRequest(page=common_pb2.PageRequest(page=-1, limit=10)),
        query_pb2.ListModelsRequest(page=common_pb2.PageRequest(page=1, limit=0)),
        query_pb2.DeleteTracesRequest(trace_ids=[""]),
    ],
)
async def test_the_query_service_checks_its_own_arguments(
    stack: Stack, request_message: Any
) -> None:
    method = type(request_message).__name__.removesuffix("Request")
    async with make_channel(
        stack.env["QUERY_ADDR"], token=stack.env["INTERNAL_AUTH_TOKEN"]
    ) as channel:
        call = getattr(query_pb2_grpc.QueryServiceStub(channel), method)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request_message, metadata=ProjectScope(PROJECT_ID).metadata(), timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_trace_with_a_dot_id_is_deleted_like_any_other(stack: Stack) -> None:
    # "." and ".." are ids ingestion accepts (the event log hashes them into its keys), so the
    # trace can be deleted too.
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        for trace_id, path in ((".", "%2E"), ("..", "%2E%2E")):
            await ingest_trace(client, trace_id)
            await eventually(
                lambda p=path: client.get(f"/api/public/traces/{p}"), lambda r: r.status_code == 200
            )
            deleted = await client.request(
                "DELETE", "/api/public/traces", json={"traceIds": [trace_id]}
            )
            assert deleted.status_code == 200, deleted.text
            assert (await client.get(f"/api/public/traces/{path}")).status_code == 404
