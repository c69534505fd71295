"""The query service's part of a project deletion (libs/common/project_deletions.py): the
project's traces, observations and scores in ClickHouse, its models and its blob-storage export
(settings and runs) in PostgreSQL.
Idempotent: a replay deletes nothing more.

Events the ingestion service accepted before the deletion may still wait in Kafka for the
writer; deleted first, their rows would land afterwards. So the rows go only once the writer's
group has committed every ingestion event published before the deletion was handled."""

import asyncio
import time
from collections.abc import Sequence

import structlog

from libs.common.errors import Unavailable
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import ConsumerSettings, GroupLag
from services.query.export_store import ExportStore
from services.query.models import ModelCatalogs, ModelStore
from services.query.store import TraceStore

log = structlog.get_logger()


# How long one handling waits for the writer before giving up as Unavailable (the consumer then
# waits that out and tries again).
_WRITER_WAIT_SECONDS = 60.0


class WriterBacklog:
    """Whether the writer's group (`writer`, libs/common/kafka.ConsumerSettings) has committed
    every record its topics held when asked."""

    def __init__(self, writer: ConsumerSettings) -> None:
        self._writer = writer

    async def drained(self) -> None:
        """Returns once the writer caught up with the end offsets of now; Unavailable if it has
        not within _WRITER_WAIT_SECONDS (a stopped writer, a long backlog)."""
        writer = self._writer
        lag = GroupLag(writer.bootstrap_servers, writer.group_id, writer.topics)
        await lag.start()
        try:
            ends = await lag.ends()
            deadline = time.monotonic() + _WRITER_WAIT_SECONDS
            while (behind := await lag.behind(ends)) > 0:
                if time.monotonic() > deadline:
                    raise Unavailable(f"the writer is {behind} records behind")
                await asyncio.sleep(0.2)
        finally:
            await lag.close()


class ProjectPurger:
    def __init__(
        self,
        store: TraceStore,
        models: ModelStore,
        catalogs: ModelCatalogs,
        exports: ExportStore,
        backlog: WriterBacklog,
    ) -> None:
        self._store = store
        self._models = models
        self._catalogs = catalogs
        self._exports = exports
        self._backlog = backlog

    async def handle(self, events: Sequence[events_pb2.ProjectDeleted]) -> None:
        await self._backlog.drained()
        for event in events:
            await self._store.delete_project(event.project_id)
            models = await self._models.delete_project(event.project_id)
            self._catalogs.forget(event.project_id)
            export = await self._exports.delete(event.project_id)
            log.info(
                "project_purged",
                service="query",
                project_id=event.project_id,
                models=models,
                blob_storage_export=export,
            )
