"""The gateway's part of a project deletion: announcing it, and, as one of the owners that consume
the announcement, removing the project's tombstone row and its Redis keys (prompt response cache,
rate-limit buckets). The project's API keys went when it was tombstoned."""

from collections.abc import Sequence

import structlog

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.gencache import GenerationCache
from libs.common.kafka import KafkaCluster, Producer
from libs.common.project_deletions import announce
from services.gateway.ratelimit import RateLimiter
from services.gateway.store import ProjectStore

log = structlog.get_logger()


class DeletionAnnouncer:
    """Publishes ProjectDeleted for the owning services (libs/common/project_deletions.py)."""

    def __init__(self, producer: Producer, cluster: KafkaCluster) -> None:
        self._producer = producer
        self._cluster = cluster

    async def announce(self, org_id: str, project_id: str) -> None:
        await announce(self._producer, self._cluster, org_id, project_id)


class ProjectPurger:
    def __init__(
        self, store: ProjectStore, prompt_cache: GenerationCache, rate_limiter: RateLimiter
    ) -> None:
        self._store = store
        self._prompt_cache = prompt_cache
        self._rate_limiter = rate_limiter

    async def handle(self, events: Sequence[events_pb2.ProjectDeleted]) -> None:
        for event in events:
            project_id = event.project_id
            keys = await self._prompt_cache.drop(project_id)
            await self._rate_limiter.forget(project_id)
            await self._store.purge_project(project_id)
            log.info("project_purged", service="gateway", project_id=project_id, cache_keys=keys)
