"""The evals service's part of retention (libs/common/retention.py): what it keeps about a
project's traced data from before the announced cutoff. Those traces, observations and scores are
gone (the query service deletes them), so their dataset run items, the comments and annotation
queue items on traces, observations and sessions, and the judge jobs that evaluated them go
too, by their creation time (a record is made after what it refers to). A newer comment or queue
item on an object the retention removes (a comment written today on a trace stamped last month)
goes as well: the object is looked up in the query service under the project's retention, and a
404 means it is gone. Datasets, their items, queues, score configs and comments on prompts are
the project's configuration and stay.

Reads hide the old rows before the pass ran (comments.py, runs.py, results.py: read_cutoff()).
Deletes run in short batches, each its own transaction; a pass stopped half-way is finished by
the next."""

import asyncio
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import structlog

from libs.common.errors import NotFound
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.retention import cutoff_of, deleted
from libs.common.scope import ProjectScope
from services.evals.references import ObjectLookup

log = structlog.get_logger()

_BATCH = 5_000
# Per table, which of the project's rows older than the cutoff go (a leased judge job is left to
# its worker; the next pass takes it).
_OLD_ROWS = {
    "dataset_run_items": "TRUE",
    "comments": "object_type <> 'PROMPT'",
    "annotation_queue_items": "TRUE",
    "judge_jobs": "status <> 'running'",
}


# Records about an object of the query service, checked for objects the retention removed.
_ABOUT_OBJECTS = ("comments", "annotation_queue_items")
_LOOKUPS_AT_ONCE = 8


class RetentionPass:
    def __init__(self, pool: asyncpg.Pool, objects: ObjectLookup) -> None:
        self._pool = pool
        self._objects = objects

    async def handle(self, events: Sequence[events_pb2.ProjectRetention]) -> None:
        for event in events:
            await self.run(event.project_id, cutoff_of(event), event.retention_days)

    async def run(self, project_id: str, cutoff: datetime, days: int) -> dict[str, int]:
        """Deletes the project's rows older than `cutoff` (and the newer ones about objects a
        retention of `days` removes); returns the counts per table."""
        counts = await self._old_rows(project_id, cutoff)
        scope = ProjectScope(project_id, retention_days=days)
        for table in _ABOUT_OBJECTS:
            removed = await self._about_removed_objects(scope, table)
            counts[table] += removed
            deleted("evals", table, removed)
        log.info("retention_applied", service="evals", project_id=project_id,
                 cutoff=cutoff.isoformat(), **counts)  # fmt: skip
        return counts

    async def _old_rows(self, project_id: str, cutoff: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        for table, condition in _OLD_ROWS.items():
            counts[table] = 0
            statement = (
                f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table}"
                f" WHERE project_id = $1 AND created_at < $2 AND {condition} LIMIT $3)"
            )
            while True:
                status = await self._pool.execute(statement, project_id, cutoff, _BATCH)
                removed = int(status.rpartition(" ")[2])
                counts[table] += removed
                if removed < _BATCH:
                    break
            deleted("evals", table, counts[table])
        return counts

    async def _about_removed_objects(self, scope: ProjectScope, table: str) -> int:
        """Deletes the table's rows about traces, observations and sessions the query service
        no longer shows the project; returns how many."""
        about = await self._pool.fetch(
            f"SELECT DISTINCT object_type, object_id FROM {table}"
            " WHERE project_id = $1 AND object_type IN ('TRACE', 'OBSERVATION', 'SESSION')",
            scope.project_id,
        )
        turns = asyncio.Semaphore(_LOOKUPS_AT_ONCE)

        async def removed(object_type: str, object_id: str) -> bool:
            async with turns:
                try:
                    await self._objects.require(scope, object_type, object_id)
                except NotFound:
                    return True
                return False

        gone = await asyncio.gather(*(removed(r["object_type"], r["object_id"]) for r in about))
        targets = [r for r, is_gone in zip(about, gone, strict=True) if is_gone]
        if not targets:
            return 0
        status = await self._pool.execute(
            f"DELETE FROM {table} WHERE project_id = $1 AND (object_type, object_id) IN"
            " (SELECT * FROM unnest($2::text[], $3::text[]))",
            scope.project_id,
            [r["object_type"] for r in targets],
            [r["object_id"] for r in targets],
        )
        return int(status.rpartition(" ")[2])
