"""The ingestion service's part of a project deletion (libs/common/project_deletions.py): the
project's event-log objects and their index rows, and its media, objects and records. Idempotent:
a replay finds nothing left to delete."""

from collections.abc import Sequence

import structlog

from libs.common.gen.obs.events.v1 import events_pb2
from services.ingestion.event_index import EventLogIndex
from services.ingestion.media import Media
from services.ingestion.store import EventLog

log = structlog.get_logger()


class ProjectPurger:
    def __init__(self, event_log: EventLog, index: EventLogIndex, media: Media) -> None:
        self._event_log = event_log
        self._index = index
        self._media = media

    async def handle(self, events: Sequence[events_pb2.ProjectDeleted]) -> None:
        for event in events:
            events_deleted = await self._event_log.delete_project(event.project_id)
            await self._index.forget_project(event.project_id)
            media_deleted = await self._media.forget_project(event.project_id)
            log.info("project_purged", service="ingestion", project_id=event.project_id,
                     event_log_objects=events_deleted, media_objects=media_deleted)  # fmt: skip
