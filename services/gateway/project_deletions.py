"""The gateway's part of a project deletion: announcing it, and, as one of the owners that consume
the announcement, removing the project's tombstone row and its Redis keys (prompt response cache,
rate-limit buckets). The keys themselves went when the project was tombstoned."""

from collections.abc import Sequence

import redis.asyncio as redis
import structlog
from aiokafka import AIOKafkaProducer

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import KafkaCluster
from libs.common.project_deletions import announce, delete_redis_keys, glob_escape
from services.gateway.store import ProjectStore

log = structlog.get_logger()


class ProjectPurger:
    def __init__(self, store: ProjectStore, client: redis.Redis) -> None:
        self._store = store
        self._redis = client

    async def handle(self, events: Sequence[events_pb2.ProjectDeleted]) -> None:
        for event in events:
            project = glob_escape(event.project_id)
            keys = await delete_redis_keys(
                self._redis,
                [
                    f"gateway.prompts:gen:{project}",
                    f"gateway.prompts:v:{project}:*",
                    f"gateway.ratelimit:*:{project}",
                ],
            )
            await self._store.purge_project(event.project_id)
            log.info("project_purged", service="gateway", project_id=event.project_id, keys=keys)


class DeletionAnnouncer:
    """Publishes ProjectDeleted for the owning services (libs/common/project_deletions.py)."""

    def __init__(self, producer: AIOKafkaProducer, cluster: KafkaCluster) -> None:
        self._producer = producer
        self._cluster = cluster

    async def announce(self, org_id: str, project_id: str) -> None:
        await announce(self._producer, self._cluster, org_id, project_id)
