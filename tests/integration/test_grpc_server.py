import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from libs.common import errors
from libs.common.gen.obs.evals.v1 import evals_pb2, evals_pb2_grpc
from libs.common.rpc import (
    INTERNAL_TOKEN_KEY,
    GrpcServer,
    check_health,
    make_channel,
    make_server,
)
from libs.common.scope import ProjectScope, scope_from

SERVICE = evals_pb2.DESCRIPTOR.services_by_name["EvalsService"].full_name
TOKEN = "integration-internal-token"


class ScopedServicer(evals_pb2_grpc.EvalsServiceServicer):  # type: ignore[misc]
    """Echoes the caller's project, or raises the domain error named by the config id; counts
    the calls that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def GetScoreConfig(  # noqa: N802 (generated name)
        self, request: evals_pb2.GetScoreConfigRequest, context: grpc.aio.ServicerContext
    ) -> evals_pb2.GetScoreConfigResponse:
        self.calls += 1
        scope = scope_from(context)
        if request.config_id == "missing":
            raise errors.NotFound("score config not found")
        if request.config_id == "slow":
            await asyncio.sleep(5)
        return evals_pb2.GetScoreConfigResponse(config_json=scope.project_id.encode())


@dataclass
class Running:
    server: GrpcServer
    servicer: ScopedServicer
    address: str
    stop: asyncio.Event
    task: asyncio.Task[None]


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    servicer = ScopedServicer()
    binding = (evals_pb2_grpc.add_EvalsServiceServicer_to_server, servicer, SERVICE)
    server = make_server([binding], "127.0.0.1", 0, token=TOKEN)
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop, grace_seconds=2))
    address = f"127.0.0.1:{server.port}"
    while await check_health(address) != "SERVING":
        await asyncio.sleep(0.02)
    yield Running(server, servicer, address, stop, task)
    stop.set()
    await task


async def call(address: str, config_id: str, timeout: float = 5) -> bytes:
    async with make_channel(address, token=TOKEN) as channel:
        stub = evals_pb2_grpc.EvalsServiceStub(channel)
        reply = await stub.GetScoreConfig(
            evals_pb2.GetScoreConfigRequest(config_id=config_id),
            metadata=ProjectScope("project-a").metadata("req-1"),
            timeout=timeout,
        )
        return bytes(reply.config_json)


async def test_health_reports_each_service_and_overall(running: Running) -> None:
    async with make_channel(running.address, token=TOKEN) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(running: Running) -> None:
    async with make_channel(running.address, token=TOKEN) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request])):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_the_project_scope_travels_in_metadata(running: Running) -> None:
    assert await call(running.address, "any") == b"project-a"


async def test_domain_errors_become_status_codes(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(running.address, "missing")
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "score config not found"


async def test_a_call_without_scope_is_unauthenticated(running: Running) -> None:
    async with make_channel(running.address, token=TOKEN) as channel:
        stub = evals_pb2_grpc.EvalsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetScoreConfig(evals_pb2.GetScoreConfigRequest(config_id="x"))
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_the_client_deadline_bounds_the_handler(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(running.address, "slow", timeout=0.3)
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


async def test_stopping_reports_not_serving_and_finishes_in_flight_calls(
    running: Running,
) -> None:
    in_flight = asyncio.create_task(call(running.address, "any"))
    await asyncio.sleep(0.05)
    statuses: list[int] = []
    await running.server.set_serving(False)
    async with make_channel(running.address, token=TOKEN) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        statuses.append(reply.status)
    assert statuses == [health_pb2.HealthCheckResponse.NOT_SERVING]
    assert await in_flight == b"project-a"


async def forged_call(address: str, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    """A call as an attacker inside the network makes it: a plain channel, chosen metadata."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = evals_pb2_grpc.EvalsServiceStub(channel)
        try:
            await stub.GetScoreConfig(
                evals_pb2.GetScoreConfigRequest(config_id="x"), metadata=metadata, timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


async def test_forged_project_scope_without_the_internal_token_is_refused(
    running: Running,
) -> None:
    forged = ProjectScope("someone-elses-project").metadata()
    wrong = (*forged, (INTERNAL_TOKEN_KEY, "integration-internal-tokex"))
    empty = (*forged, (INTERNAL_TOKEN_KEY, ""))
    for metadata in (forged, wrong, empty):
        assert await forged_call(running.address, metadata) is grpc.StatusCode.UNAUTHENTICATED
    assert running.servicer.calls == 0, "no handler ran"
    right = (*forged, (INTERNAL_TOKEN_KEY, TOKEN))
    assert await forged_call(running.address, right) is grpc.StatusCode.OK
    assert running.servicer.calls == 1


async def test_a_channel_of_another_deployment_is_refused(running: Running) -> None:
    async with make_channel(running.address, token="another-deployments-token") as channel:
        stub = evals_pb2_grpc.EvalsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetScoreConfig(
                evals_pb2.GetScoreConfigRequest(config_id="x"),
                metadata=ProjectScope("project-a").metadata(),
            )
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_health_and_reflection_need_no_token(running: Running) -> None:
    async with grpc.aio.insecure_channel(running.address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for answer in stub.ServerReflectionInfo(iter([request])):
            assert answer.HasField("list_services_response")
            break
    assert await check_health(running.address) == "SERVING"


def test_a_server_without_a_token_cannot_be_made() -> None:
    binding = (evals_pb2_grpc.add_EvalsServiceServicer_to_server, ScopedServicer(), SERVICE)
    with pytest.raises(ValueError):
        make_server([binding], "127.0.0.1", 0, token="")


async def test_a_streaming_method_is_refused_too() -> None:
    async def numbers(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for n in range(3):
            yield bytes([n])

    handler = grpc.method_handlers_generic_handler(
        "test.Numbers", {"Stream": grpc.unary_stream_rpc_method_handler(numbers)}
    )

    def add(servicer: object, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((handler,))

    server = make_server([(add, None, "test.Numbers")], "127.0.0.1", 0, token=TOKEN)
    await server.server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stream = channel.unary_stream("/test.Numbers/Stream")
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                [reply async for reply in stream(b"")]
            assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
            right = ((INTERNAL_TOKEN_KEY, TOKEN),)
            assert [reply async for reply in stream(b"", metadata=right)] == [b"\0", b"\1", b"\2"]
    finally:
        await server.server.stop(0)
