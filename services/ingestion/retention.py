"""The ingestion service's part of retention (libs/common/retention.py): a project's event-log
objects and index rows, and its media, older than the announced cutoff.

The event log is laid out by the hour it was written (events/<project>/YYYY/MM/DD/HH/, the keys
of EventLog.key), so whole years, months, days and hours before the cutoff's hour go by prefix,
without reading an object; the cutoff's own hour stays until the next day's pass (the log keeps
at most one hour more than the retention; reads never use it). Media go with the traces linked
to them before the cutoff, through the same unlinking as a trace deletion: a medium another
(newer) trace or a dataset item still uses stays. Each step is idempotent and driven by the
cutoff alone, so a pass stopped between them is finished by the next one."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.retention import cutoff_of, deleted
from services.ingestion.media import Media
from services.ingestion.store import EventLog, delete_prefix

log = structlog.get_logger()

_INDEX_BATCH = 10_000
_TRACE_BATCH = 1_000
# How deep the time prefixes go under a project: year, month, day, hour.
_LEVELS = 4


class RetentionPass:
    def __init__(self, s3: Any, bucket: str, pool: asyncpg.Pool, media: Media) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._pool = pool
        self._media = media

    async def handle(self, events: Sequence[events_pb2.ProjectRetention]) -> None:
        for event in events:
            await self.run(event.project_id, cutoff_of(event))

    async def run(self, project_id: str, cutoff: datetime) -> dict[str, int]:
        """Deletes what the project holds from before `cutoff`; returns the counts."""
        hour = _hour_prefix(project_id, cutoff)
        project_root = "/".join(hour.split("/")[:2]) + "/"
        counts = {
            "event_log_objects": await self._expire(project_root, hour[len(project_root) :]),
            "event_log_index_rows": await self._forget_index(project_id, hour),
            "media": await self._forget_media(project_id, cutoff),
        }
        for store, count in counts.items():
            deleted("ingestion", store, count)
        log.info("retention_applied", service="ingestion", project_id=project_id,
                 cutoff=cutoff.isoformat(), **counts)  # fmt: skip
        return counts

    async def _expire(self, prefix: str, hour: str, level: int = 0) -> int:
        """Deletes the time prefixes under `prefix` that sort before `hour` ("YYYY/MM/DD/HH/",
        zero-padded, so text order is time order), descending into the one that contains it."""
        count = 0
        for child in await self._children(prefix):
            part = child[len(prefix) :]
            bound = hour.split("/", 1)[0] + "/"
            if len(part) != len(bound) or not part[:-1].isdigit():
                continue  # not a time prefix (none of the layout's, e.g. a legacy trace prefix)
            if part < bound:
                count += await delete_prefix(self._s3, self._bucket, child)
            elif part == bound and level + 1 < _LEVELS:
                count += await self._expire(child, hour[len(bound) :], level + 1)
        return count

    async def _children(self, prefix: str) -> list[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        children: list[str] = []
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix, Delimiter="/"):
            children += [common["Prefix"] for common in page.get("CommonPrefixes", [])]
        return children

    async def _forget_index(self, project_id: str, hour: str) -> int:
        """Index rows of objects written before the cutoff's hour, in short transactions."""
        count = 0
        while True:
            status = await self._pool.execute(_FORGET_INDEX_ROWS, project_id, hour, _INDEX_BATCH)
            removed = int(status.rpartition(" ")[2])
            count += removed
            if removed < _INDEX_BATCH:
                return count

    async def _forget_media(self, project_id: str, cutoff: datetime) -> int:
        count = 0
        while True:
            rows = await self._pool.fetch(_OLD_TRACES, project_id, cutoff, _TRACE_BATCH)
            if not rows:
                return count
            # forget_traces removes these traces' links, so the next query moves on.
            count += await self._media.forget_traces(project_id, [r["trace_id"] for r in rows])


def _hour_prefix(project_id: str, moment: datetime) -> str:
    """The event-log prefix of the project's objects written in `moment`'s hour, taken from the
    writer's own key so that the layout is defined once (EventLog.key)."""
    return EventLog.key(project_id, moment).rsplit("/", 1)[0] + "/"


_FORGET_INDEX_ROWS = """
DELETE FROM event_log_index WHERE ctid IN (
    SELECT ctid FROM event_log_index
    WHERE project_id = $1 AND object_key COLLATE "C" < $2 LIMIT $3
)
"""
_OLD_TRACES = """
SELECT DISTINCT trace_id FROM media_links
WHERE project_id = $1 AND trace_id <> '' AND created_at < $2 LIMIT $3
"""
