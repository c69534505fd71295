"""The prompts service behind the gateway: concurrency, provable cache freshness across replicas,
and the gRPC API internal services use directly."""

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from libs.common.gen.obs.prompts.v1 import prompts_pb2, prompts_pb2_grpc
from libs.common.rpc import check_health, make_channel
from libs.common.scope import ProjectScope
from tests.e2e.conftest import PROJECT_ID, PUBLIC_KEY, SECRET_KEY, Stack, free_port
from tests.e2e.probes import wait_until_up
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)


def encoded(name: str) -> str:
    return name.replace("/", "%2F")


@pytest.fixture
async def second_replica(stack: Stack) -> AsyncIterator[str]:
    """A second prompts replica and a gateway in front of it; yields that gateway's URL."""
    grpc_port, http_port = free_port(), free_port()
    prompts = stack.start("prompts", PROMPTS_GRPC_PORT=str(grpc_port))
    gateway = stack.start(
        "gateway", GATEWAY_HTTP_PORT=str(http_port), PROMPTS_ADDR=f"127.0.0.1:{grpc_port}"
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        await eventually(lambda: check_health(f"127.0.0.1:{grpc_port}"), lambda s: s == "SERVING")
        await wait_until_up(url)
        yield url
    finally:
        for process in (gateway, prompts):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


async def test_fifty_parallel_creates_yield_versions_one_to_fifty(stack: Stack) -> None:
    name = f"parallel/{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.post("/api/public/v2/prompts", json={"name": name, "prompt": f"v{i}"})
                for i in range(50)
            )
        )
    assert all(r.status_code == 201 for r in responses)
    assert sorted(r.json()["version"] for r in responses) == list(range(1, 51))


async def test_a_label_change_is_visible_at_once_on_another_replica(
    stack: Stack, second_replica: str
) -> None:
    name = f"fresh/{uuid.uuid4().hex[:8]}"
    path = f"/api/public/v2/prompts/{encoded(name)}"
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as writer,
        httpx.AsyncClient(base_url=second_replica, auth=AUTH) as reader,
    ):
        for text in ("one", "two"):
            await writer.post("/api/public/v2/prompts", json={"name": name, "prompt": text})
        for round_number in range(6):
            version = 1 + round_number % 2
            for _ in range(3):  # warm both replicas' caches with the current answer
                await reader.get(path)
            patched = await writer.patch(
                f"{path}/versions/{version}", json={"newLabels": ["production"]}
            )
            assert patched.status_code == 200
            served = await reader.get(path)
            assert served.status_code == 200 and served.json()["version"] == version

        deleted = await writer.delete(path, params={"label": "production"})
        assert deleted.status_code == 204
        assert (await reader.get(path)).status_code == 404


async def test_etag_changes_when_the_served_version_changes(stack: Stack) -> None:
    name = f"etag/{uuid.uuid4().hex[:8]}"
    path = f"/api/public/v2/prompts/{encoded(name)}"
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        body = {"name": name, "prompt": "a", "labels": ["production"]}
        await client.post("/api/public/v2/prompts", json=body)
        etag = (await client.get(path)).headers["etag"]
        assert (await client.get(path, headers={"If-None-Match": etag})).status_code == 304
        await client.post("/api/public/v2/prompts", json={**body, "prompt": "b"})
        changed = await client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["prompt"] == "b"


async def test_composition_is_checked_on_create_and_resolved_on_read(stack: Stack) -> None:
    base = f"comp/{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        missing = await client.post(
            "/api/public/v2/prompts",
            json={"name": f"{base}-root", "prompt": f"@@@langfusePrompt:name={base}|version=1@@@"},
        )
        assert missing.status_code == 400
        await client.post(
            "/api/public/v2/prompts",
            json={"name": base, "prompt": "inner", "labels": ["production"]},
        )
        root = {
            "name": f"{base}-root",
            "prompt": f"[@@@langfusePrompt:name={base}|label=production@@@]",
            "labels": ["production"],
        }
        assert (await client.post("/api/public/v2/prompts", json=root)).status_code == 201
        resolved = (await client.get(f"/api/public/v2/prompts/{encoded(base)}-root")).json()
        raw = (
            await client.get(f"/api/public/v2/prompts/{encoded(base)}-root?resolve=false")
        ).json()
    assert resolved["prompt"] == "[inner]"
    assert resolved["resolutionGraph"]["dependencies"][resolved["id"]][0]["name"] == base
    assert raw["prompt"] == root["prompt"] and raw["resolutionGraph"] is None


async def test_internal_services_compile_prompts_over_grpc(stack: Stack) -> None:
    name = f"grpc/{uuid.uuid4().hex[:8]}"
    metadata = ProjectScope(PROJECT_ID).metadata()
    async with make_channel(
        stack.env["PROMPTS_ADDR"], token=stack.env["INTERNAL_AUTH_TOKEN"]
    ) as channel:
        stub = prompts_pb2_grpc.PromptsServiceStub(channel)
        created = await stub.CreatePrompt(
            prompts_pb2.CreatePromptRequest(
                name=name,
                type=prompts_pb2.PROMPT_TYPE_CHAT,
                messages=[
                    prompts_pb2.ChatMessage(role="system", content="Help {{who}}"),
                    prompts_pb2.ChatMessage(type="placeholder", name="history"),
                ],
                labels=["production"],
            ),
            metadata=metadata,
        )
        compiled = await stub.CompilePrompt(
            prompts_pb2.CompilePromptRequest(
                prompt=prompts_pb2.GetPromptRequest(name=name, resolve=True),
                variables={"who": "Ada"},
                placeholders_json={"history": orjson.dumps([{"role": "user", "content": "hi"}])},
            ),
            metadata=metadata,
        )
        prompt_id = await stub.GetPromptId(
            prompts_pb2.GetPromptIdRequest(name=name, version=1), metadata=metadata
        )
    assert [(m.role, m.content) for m in compiled.compiled_messages] == [
        ("system", "Help Ada"),
        ("user", "hi"),
    ]
    assert prompt_id.prompt_id == created.prompt.id
