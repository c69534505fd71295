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
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from libs.common.errors import Unavailable
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import ConsumerSettings
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
        servers = self._writer.bootstrap_servers
        reader = AIOKafkaConsumer(bootstrap_servers=servers)
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await reader.start()
        await admin.start()
        try:
            described = await admin.describe_topics(list(self._writer.topics))
            partitions = [
                TopicPartition(topic["topic"], partition["partition"])
                for topic in described
                for partition in topic["partitions"]
            ]
            ends = await reader.end_offsets(partitions)
            deadline = time.monotonic() + _WRITER_WAIT_SECONDS
            while True:
                committed = await admin.list_consumer_group_offsets(self._writer.group_id)
                behind = sum(
                    end - (committed[tp].offset if tp in committed else 0)
                    for tp, end in ends.items()
                    if end > 0
                )
                if behind <= 0:
                    return
                if time.monotonic() > deadline:
                    raise Unavailable(f"the writer is {behind} records behind")
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
            await reader.stop()


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
