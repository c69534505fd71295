"""WriterLoad: whether the query service's writer is behind on the ingestion topic, so the judge
yields to ingestion. On a shared machine every judge job costs the writer a score, a trace and a
generation to write and the query service its target's reads (~5 ms of CPU per job in all, most
of it there): judging a backlog at full speed took a third of ingestion's rate. While the
writer's group is more than `threshold` records behind, the judge claims jobs in small rounds,
one a second (services/evals/judge.py); the others wait in PostgreSQL and lose nothing.

The lag is read once a second (the group's commits against the topic's end offsets). When it
cannot be read (Kafka away, at start too), the judge is not held back: ingestion cannot be
either, and the evals service keeps running."""

import asyncio
import contextlib

import structlog
from prometheus_client import Gauge

from libs.common.kafka import GroupLag

log = structlog.get_logger()

YIELDING = Gauge("obs_judge_yielding", "1 while the judge yields to a query writer behind")
INTERVAL_SECONDS = 1.0


class WriterLoad:
    def __init__(self, lag: GroupLag, threshold: int) -> None:
        self._lag = lag
        self._threshold = threshold
        self._started = False
        self._busy = False

    def busy(self) -> bool:
        return self._busy

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                behind = await self._records_behind()
                busy = behind > self._threshold
                if busy != self._busy:
                    event = "judge_yielding" if busy else "judge_resuming"
                    log.info(event, writer_lag_records=behind)
                    YIELDING.set(int(busy))
                self._busy = busy
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), INTERVAL_SECONDS)
        finally:
            if self._started:
                await self._lag.close()

    async def _records_behind(self) -> int:
        """The writer's lag, or 0 while Kafka cannot tell (the judge then judges as usual)."""
        try:
            if not self._started:
                await self._lag.start()
                self._started = True
            return await self._lag.behind()
        except Exception as exc:  # noqa: BLE001 - any Kafka failure, at start too
            log.warning("writer_lag_unreadable", error=str(exc))
            return 0
