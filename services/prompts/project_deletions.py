"""The prompts service's part of a project deletion (libs/common/project_deletions.py): every
version of every prompt of the project, and its cache entries (generation token and prompts) in
Redis and in this replica's memory. Idempotent: a replay deletes nothing more."""

from collections.abc import Sequence

import structlog

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.gencache import GenerationCache
from services.prompts.store import PromptStore

log = structlog.get_logger()


class ProjectPurger:
    def __init__(self, store: PromptStore, cache: GenerationCache) -> None:
        self._store = store
        self._cache = cache

    async def handle(self, events: Sequence[events_pb2.ProjectDeleted]) -> None:
        for event in events:
            versions = await self._store.delete_project(event.project_id)
            keys = await self._cache.drop(event.project_id)
            log.info("project_purged", service="prompts", project_id=event.project_id,
                     versions=versions, cache_keys=keys)  # fmt: skip
