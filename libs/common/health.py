"""Health that tells the truth: a backend reports NOT_SERVING while a store it needs does not
answer a cheap ping, or while one of its consumers has been waiting out an outage for longer than
`stuck_after` seconds; SERVING again at the first check where all is well. A store must fail two
checks in a row (`interval` seconds apart), so one slow answer under load does not take the
replica out of rotation (the gateway's readiness follows its backends' health)."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from libs.common.kafka import BatchConsumer
from libs.common.metrics import HEALTH_FAILING

log = structlog.get_logger()

Ping = Callable[[], Awaitable[object]]


class HealthWatch:
    def __init__(
        self,
        pings: Mapping[str, Ping],
        consumers: Sequence[BatchConsumer[Any]] = (),
        *,
        interval: float = 5.0,
        stuck_after: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self._pings = pings
        self._consumers = consumers
        self._interval = interval
        self._stuck_after = stuck_after
        self._timeout = timeout

    async def failing(self) -> dict[str, str]:
        """What fails now: check name → why."""
        names = list(self._pings)
        errors = await asyncio.gather(*(self._ping(self._pings[name]) for name in names))
        failing = {name: error for name, error in zip(names, errors, strict=True) if error}
        for consumer in self._consumers:
            if (stuck := consumer.stuck_for()) > self._stuck_after:
                failing[consumer.name] = f"consumer stuck for {stuck:.0f} s"
        return failing

    async def run(
        self, stop: asyncio.Event, set_serving: Callable[[bool], Awaitable[None]]
    ) -> None:
        """Checks every `interval` until `stop`; reports each change through `set_serving`
        (GrpcServer.set_serving, which the server itself sets to SERVING when it starts)."""
        serving = True
        failed_before: dict[str, str] = {}
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            if stop.is_set():
                return  # the server's drain owns the status from here
            failing_now = await self.failing()
            failing = {
                name: why
                for name, why in failing_now.items()
                if name in failed_before or name not in self._pings
            }
            failed_before = failing_now
            for name in [*self._pings, *(consumer.name for consumer in self._consumers)]:
                HEALTH_FAILING.labels(name).set(1 if name in failing else 0)
            if serving != (not failing) and not stop.is_set():
                serving = not failing
                if serving:
                    log.info("health_serving")
                else:
                    log.warning("health_not_serving", failing=failing)
                await set_serving(serving)

    async def _ping(self, ping: Ping) -> str:
        try:
            async with asyncio.timeout(self._timeout):
                await ping()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        return ""
