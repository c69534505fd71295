"""The evals service's part of a project deletion (libs/common/project_deletions.py): its rows in
every table (judge jobs, evaluation rules, evaluators, LLM connections, comments, annotation
queues with their items and assignments, run items, runs, dataset items, datasets, score
configs) in one transaction, and the project's score-config cache generation and entries in
Redis (evals owns that namespace; libs/common/score_config_cache.py). Idempotent: a replay
deletes nothing more."""

from collections.abc import Sequence

import asyncpg
import structlog

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.gencache import GenerationCache

log = structlog.get_logger()

# Referencing tables before the ones they reference.
TABLES = (
    "judge_jobs",
    "evaluation_rule_evaluators",
    "evaluation_rules",
    "evaluator_versions",
    "evaluators",
    "llm_connections",
    "comments",
    "annotation_queue_assignments",
    "annotation_queue_items",
    "annotation_queues",
    "dataset_run_items",
    "dataset_runs",
    "dataset_items",
    "datasets",
    "score_configs",
)


class ProjectPurger:
    def __init__(self, pool: asyncpg.Pool, score_config_generations: GenerationCache) -> None:
        self._pool = pool
        self._generations = score_config_generations

    async def handle(self, events: Sequence[events_pb2.ProjectDeleted]) -> None:
        for event in events:
            rows = 0
            async with self._pool.acquire() as conn, conn.transaction():
                for table in TABLES:
                    status = await conn.execute(
                        f"DELETE FROM {table} WHERE project_id = $1", event.project_id
                    )
                    rows += int(status.rpartition(" ")[2])
            keys = await self._generations.drop(event.project_id)
            log.info("project_purged", service="evals", project_id=event.project_id,
                     rows=rows, cache_keys=keys)  # fmt: skip
