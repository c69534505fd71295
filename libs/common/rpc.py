"""gRPC plumbing shared by the backend services: server bootstrap and client channels.

A server gets the standard health service (one status per service name plus the overall ""),
reflection, one interceptor that authenticates internal callers, maps domain errors to status codes
and binds log context, a deadline on every handler, and a graceful drain: on stop it reports
NOT_SERVING, refuses new calls and lets in-flight ones finish within the grace period.

Internal authentication: every call but health and reflection must carry the deployment's shared
secret (INTERNAL_AUTH_TOKEN, see libs/common/config.py) in `x-obs-internal-token` metadata, checked
in constant time; without it the call is UNAUTHENTICATED and no handler runs, so project scope in
metadata is only trusted from the services themselves. `make_channel` attaches the token to every
call. Health and reflection stay open for Kubernetes probes and `make health`.
"""

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from libs.common import errors
from libs.common.metrics import RPC_SECONDS
from libs.common.scope import PROJECT_ID_KEY, REQUEST_ID_KEY, reading_within

log = structlog.get_logger()

_STATUS: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

INTERNAL_TOKEN_KEY = "x-obs-internal-token"
# Services any caller may use: the standard health checks and reflection (descriptors only).
_OPEN_SERVICES = (
    f"/{health.SERVICE_NAME}/",
    f"/{reflection.SERVICE_NAME}/",
    "/grpc.reflection.v1.ServerReflection/",
)
# A refusal must be a handler of the same kind as the one it replaces.
_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}

# Handlers without a client deadline still end: a stuck store call must not pin a worker forever.
DEFAULT_DEADLINE_SECONDS = 30.0


def status_for(exc: errors.DomainError) -> grpc.StatusCode:
    for kind in type(exc).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return grpc.StatusCode.UNKNOWN


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without the internal token (health and reflection excepted), binds
    request/project ids to the log context and the project's retention to read_cutoff(), bounds
    the handler by the call's deadline, maps
    DomainError to its status code, and records latency per method and code."""

    def __init__(self, token: str) -> None:
        # An empty token would match calls that carry none.
        if not token:
            raise ValueError("the internal auth token must not be empty")
        self._token = token.encode()

    def _authenticated(self, method: str, metadata: dict[str, Any]) -> bool:
        if method.startswith(_OPEN_SERVICES):
            return True
        given = metadata.get(INTERNAL_TOKEN_KEY, "")
        if not isinstance(given, str):
            return False
        return hmac.compare_digest(given.encode(), self._token)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method: str = details.method
        metadata = dict(details.invocation_metadata or ())
        if not self._authenticated(method, metadata):
            log.warning("rpc_unauthenticated", rpc=method)
            return _refusal(handler)
        if handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            remaining = context.time_remaining()
            with structlog.contextvars.bound_contextvars(
                rpc=method,
                request_id=metadata.get(REQUEST_ID_KEY, ""),
                project_id=metadata.get(PROJECT_ID_KEY, ""),
            ):
                try:
                    with reading_within(metadata):
                        async with asyncio.timeout(remaining or DEFAULT_DEADLINE_SECONDS):
                            return await inner(request, context)
                except errors.DomainError as exc:
                    code = status_for(exc)
                    await context.abort(code, str(exc))
                except TimeoutError:
                    code = grpc.StatusCode.DEADLINE_EXCEEDED
                    await context.abort(code, "deadline exceeded")
                except Exception:
                    code = grpc.StatusCode.INTERNAL
                    log.exception("rpc_failed")
                    raise
                finally:
                    RPC_SECONDS.labels(method, code.name).observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same kind that answers UNAUTHENTICATED without running the real one."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "internal authentication required")

    make = _HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


# (generated add_XServicer_to_server, the servicer, the service's full proto name)
Binding = tuple[Callable[[Any, grpc.aio.Server], None], object, str]


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]
    port: int

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def serve(self, stop: asyncio.Event, grace_seconds: float) -> None:
        """Serve until `stop` is set, then drain: NOT_SERVING first, in-flight calls finish."""
        await self.server.start()
        await self.set_serving(True)
        log.info("grpc_serving", port=self.port, services=self.service_names)
        await stop.wait()
        await self.set_serving(False)
        log.info("grpc_draining", grace_seconds=grace_seconds)
        await self.server.stop(grace_seconds)


def make_server(bindings: Iterable[Binding], host: str, port: int, *, token: str) -> GrpcServer:
    """A server whose calls (health and reflection excepted) must carry `token`."""
    server = grpc.aio.server(
        interceptors=[ServerInterceptor(token)],
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            # Clients hold one connection per address; recycling it every few minutes makes
            # them reconnect through the Kubernetes Service, so new replicas get a share of
            # the calls. In-flight calls get the grace period to finish.
            ("grpc.max_connection_age_ms", 300_000),
            ("grpc.max_connection_age_grace_ms", 30_000),
            # Accept the clients' 30 s keepalive pings (the default minimum is 5 minutes).
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
        ],
    )
    names: list[str] = []
    for add_to_server, servicer, name in bindings:
        add_to_server(servicer, server)
        names.append(name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    return GrpcServer(server, health_servicer, tuple(names), bound)


# Retries only what is safe to repeat at the transport level: the call never reached a handler.
_SERVICE_CONFIG = """{
  "methodConfig": [{
    "name": [{}],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.05s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}"""


class _AttachToken(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds the internal token to the metadata of every call made on a channel (every RPC of the
    contracts is unary; a streaming one would need the matching interceptor too)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata[INTERNAL_TOKEN_KEY] = self._token
        return await continuation(details._replace(metadata=metadata), request)


def make_channel(address: str, *, token: str) -> grpc.aio.Channel:
    """A client channel to a peer service that presents the internal `token` on every call
    (INTERNAL_AUTH_TOKEN); callers pass a `timeout` on every call."""
    if not token:
        raise ValueError("the internal auth token must not be empty")
    return _channel(address, [_AttachToken(token)])


def _channel(address: str, interceptors: list[grpc.aio.ClientInterceptor]) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        address,
        interceptors=interceptors,
        options=[
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )


async def check_health(address: str, timeout: float = 2.0) -> str:
    """The overall health status name of the server at `address` ("UNREACHABLE" if none).
    Health needs no token, so this works from any process (probes, `make health`)."""
    async with _channel(address, []) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return "UNREACHABLE"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
