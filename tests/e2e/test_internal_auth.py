"""Backends take project scope only from the services themselves: a gRPC call with forged
`x-obs-project-id` metadata but without the deployment's internal token (INTERNAL_AUTH_TOKEN) is
refused before any handler runs, on every backend of a real stack."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx

from libs.common.gen.obs.common.v1 import common_pb2
from libs.common.gen.obs.evals.v1 import evals_pb2, evals_pb2_grpc
from libs.common.gen.obs.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from libs.common.gen.obs.prompts.v1 import prompts_pb2, prompts_pb2_grpc
from libs.common.gen.obs.query.v1 import query_pb2, query_pb2_grpc
from libs.common.rpc import INTERNAL_TOKEN_KEY
from libs.common.scope import ProjectScope
from tests.e2e.conftest import PROJECT_ID, PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually

FORGED = ProjectScope(PROJECT_ID).metadata()
PAGE = common_pb2.PageRequest(page=1, limit=10)


async def status_of(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def with_token(token: str) -> tuple[tuple[str, str], ...]:
    return (*FORGED, (INTERNAL_TOKEN_KEY, token))


async def test_forged_scope_cannot_read_or_delete_traces(stack: Stack) -> None:
    trace_id = uuid.uuid4().hex
    event = {"id": f"{trace_id}-e", "type": "trace-create", "timestamp": "2026-11-22T10:00:00Z"}
    batch = {"batch": [{**event, "body": {"id": trace_id}}]}
    auth = (PUBLIC_KEY, SECRET_KEY)
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=auth) as client:
        (await client.post("/api/public/ingestion", json=batch)).raise_for_status()
        url = f"/api/public/traces/{trace_id}"
        await eventually(lambda: client.get(url), lambda r: r.status_code == 200)

        async with grpc.aio.insecure_channel(stack.env["QUERY_ADDR"]) as channel:
            query = query_pb2_grpc.QueryServiceStub(channel)
            for metadata in (FORGED, with_token("not-the-internal-token")):
                listed = query.ListTraces(query_pb2.ListTracesRequest(page=PAGE), metadata=metadata)
                assert await status_of(listed) is grpc.StatusCode.UNAUTHENTICATED
                request = query_pb2.DeleteTracesRequest(trace_ids=[trace_id])
                deleted = query.DeleteTraces(request, metadata=metadata)
                assert await status_of(deleted) is grpc.StatusCode.UNAUTHENTICATED
            assert (await client.get(url)).status_code == 200, "nothing was deleted"

            right = with_token(stack.env["INTERNAL_AUTH_TOKEN"])
            reply = await query.GetTrace(
                query_pb2.GetTraceRequest(trace_id=trace_id), metadata=right
            )
            assert trace_id.encode() in reply.trace_json


async def test_every_backend_refuses_calls_without_the_token(stack: Stack) -> None:
    def calls(channels: dict[str, grpc.aio.Channel]) -> dict[str, Callable[..., Awaitable[Any]]]:
        evals = evals_pb2_grpc.EvalsServiceStub(channels["EVALS_ADDR"])
        ingestion = ingestion_pb2_grpc.IngestionServiceStub(channels["INGESTION_ADDR"])
        prompts = prompts_pb2_grpc.PromptsServiceStub(channels["PROMPTS_ADDR"])
        return {
            "evals": lambda md: evals.ListScoreConfigs(
                evals_pb2.ListScoreConfigsRequest(page=PAGE), metadata=md
            ),
            "ingestion": lambda md: ingestion.IngestBatch(
                ingestion_pb2.IngestBatchRequest(), metadata=md
            ),
            "prompts": lambda md: prompts.ListPrompts(
                prompts_pb2.ListPromptsRequest(), metadata=md
            ),
        }

    addresses = ("EVALS_ADDR", "INGESTION_ADDR", "PROMPTS_ADDR")
    channels = {name: grpc.aio.insecure_channel(stack.env[name]) for name in addresses}
    try:
        for service, call in calls(channels).items():
            for metadata in (FORGED, with_token("not-the-internal-token"), with_token("")):
                assert await status_of(call(metadata)) is grpc.StatusCode.UNAUTHENTICATED, service
        right = with_token(stack.env["INTERNAL_AUTH_TOKEN"])
        status = await status_of(calls(channels)["evals"](right))
        # The handler ran: whatever it answers, it is not the refusal.
        assert status is not grpc.StatusCode.UNAUTHENTICATED
    finally:
        for channel in channels.values():
            await channel.close()
