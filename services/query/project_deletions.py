"""The query service's part of a project deletion (libs/common/project_deletions.py): the
project's traces, observations and scores in ClickHouse and its models in PostgreSQL.
Idempotent: a replay deletes nothing more."""

from collections.abc import Sequence

import structlog

from libs.common.gen.obs.events.v1 import events_pb2
from services.query.models import ModelCatalogs, ModelStore
from services.query.store import TraceStore

log = structlog.get_logger()


class ProjectPurger:
    def __init__(self, store: TraceStore, models: ModelStore, catalogs: ModelCatalogs) -> None:
        self._store = store
        self._models = models
        self._catalogs = catalogs

    async def handle(self, events: Sequence[events_pb2.ProjectDeleted]) -> None:
        for event in events:
            await self._store.delete_project(event.project_id)
            models = await self._models.delete_project(event.project_id)
            self._catalogs.forget(event.project_id)
            log.info("project_purged", service="query", project_id=event.project_id, models=models)
