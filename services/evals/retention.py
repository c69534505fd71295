"""The evals service's part of retention (libs/common/retention.py): what it keeps about a
project's traced data from before the announced cutoff. Those traces, observations and scores are
gone (the query service deletes them), so their dataset run items, the comments and annotation
queue items on traces, observations and sessions, and the judge jobs that evaluated them go
too, each by its creation time (a record is made after what it refers to). Datasets, their
items, queues, score configs and comments on prompts are the project's configuration and stay.

Reads hide the same rows before the pass ran (comments.py, runs.py: read_cutoff()). Deletes run
in short batches, each its own transaction; a pass stopped half-way is finished by the next."""

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import structlog

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.retention import cutoff_of, deleted

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


class RetentionPass:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def handle(self, events: Sequence[events_pb2.ProjectRetention]) -> None:
        for event in events:
            await self.run(event.project_id, cutoff_of(event))

    async def run(self, project_id: str, cutoff: datetime) -> dict[str, int]:
        """Deletes the project's rows older than `cutoff`; returns the counts per table."""
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
        log.info("retention_applied", service="evals", project_id=project_id,
                 cutoff=cutoff.isoformat(), **counts)  # fmt: skip
        return counts
