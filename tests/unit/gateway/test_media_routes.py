"""The media routes in the gateway: each passes the body and the path's id to its ingestion RPC
unparsed and shapes the answer as the SDKs parse it (an empty upload URL is null)."""

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from libs.common.gen.obs.ingestion.v1 import ingestion_pb2
from services.gateway.server import build_app
from services.gateway.state import GatewayState
from tests.unit.gateway.conftest import MAX_BODY, basic

AUTH = basic("pk-1", "sk-1")


class RecordingIngestionStub:
    def __init__(self, upload_url: str) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.answers: dict[str, Any] = {
            "CreateMediaUpload": ingestion_pb2.CreateMediaUploadResponse(
                media_id="m1", upload_url=upload_url
            ),
            "PatchMedia": ingestion_pb2.PatchMediaResponse(),
            "GetMedia": ingestion_pb2.GetMediaResponse(media_json=b'{"mediaId":"m1"}'),
        }

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, **kwargs: Any) -> Any:
            self.calls.append((method, request))
            return self.answers[method]

        return call


async def app_client(state: GatewayState, stub: RecordingIngestionStub) -> httpx.AsyncClient:
    backends = dataclasses.replace(state.backends, ingestion=stub)  # type: ignore[arg-type]
    app = build_app(dataclasses.replace(state, backends=backends), MAX_BODY)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


@pytest.fixture
async def calls(state: GatewayState) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    stub = RecordingIngestionStub(upload_url="")
    async with await app_client(state, stub) as client:
        yield client, stub


async def test_routes_pass_body_and_id_and_shape_the_answers(
    calls: tuple[httpx.AsyncClient, RecordingIngestionStub],
) -> None:
    client, stub = calls
    created = await client.post("/api/public/media", content=b'{"x":1}', headers=AUTH)
    assert (created.status_code, created.json()) == (200, {"mediaId": "m1", "uploadUrl": None})
    patched = await client.patch("/api/public/media/m1", content=b'{"y":2}', headers=AUTH)
    assert (patched.status_code, patched.content) == (204, b"")
    got = await client.get("/api/public/media/m1", headers=AUTH)
    assert got.json() == {"mediaId": "m1"}
    assert [(name, request) for name, request in stub.calls] == [
        ("CreateMediaUpload", ingestion_pb2.CreateMediaUploadRequest(body=b'{"x":1}')),
        ("PatchMedia", ingestion_pb2.PatchMediaRequest(media_id="m1", body=b'{"y":2}')),
        ("GetMedia", ingestion_pb2.GetMediaRequest(media_id="m1")),
    ]


async def test_an_upload_url_is_passed_on(state: GatewayState) -> None:
    async with await app_client(state, RecordingIngestionStub("http://s3/put")) as client:
        created = await client.post("/api/public/media", content=b"{}", headers=AUTH)
    assert created.json()["uploadUrl"] == "http://s3/put"


async def test_media_routes_need_a_project_key(
    calls: tuple[httpx.AsyncClient, RecordingIngestionStub],
) -> None:
    client, stub = calls
    assert (await client.get("/api/public/media/m1")).status_code == 401
    org = basic("pk-org", "sk-org")
    assert (await client.post("/api/public/media", content=b"{}", headers=org)).status_code == 403
    assert stub.calls == []
