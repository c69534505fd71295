"""Whether the gateway can serve: every backend it calls answers SERVING on its gRPC health
service, asked over the very channels requests use. The answer is kept briefly, so load
balancers probing every second from many places cost one check per backend per period."""

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.gateway.clients import Backends

# clients.connect opens the channels in this order.
BACKEND_NAMES = ("ingestion", "query", "prompts", "evals")
_CHECK_TIMEOUT_SECONDS = 1.0
_KEEP_SECONDS = 2.0


class BackendReadiness:
    def __init__(self, backends: Backends) -> None:
        self._stubs = {
            name: health_pb2_grpc.HealthStub(channel)
            for name, channel in zip(BACKEND_NAMES, backends.channels, strict=True)
        }
        self._lock = asyncio.Lock()
        self._checked_at = -_KEEP_SECONDS
        self._not_serving: list[str] = []

    async def not_serving(self) -> list[str]:
        """The names of the backends that are down, unreachable or not SERVING."""
        async with self._lock:  # concurrent probes share one round of checks
            if time.monotonic() - self._checked_at >= _KEEP_SECONDS:
                names = list(self._stubs)
                serving = await asyncio.gather(*(self._serving(name) for name in names))
                self._not_serving = [n for n, ok in zip(names, serving, strict=True) if not ok]
                self._checked_at = time.monotonic()
            return self._not_serving

    async def _serving(self, name: str) -> bool:
        try:
            reply = await self._stubs[name].Check(
                health_pb2.HealthCheckRequest(service=""), timeout=_CHECK_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
