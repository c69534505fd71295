"""Judge jobs in PostgreSQL: durable, one per (rule, evaluator, target), claimed with a lease.

- `enqueue`: a matching event creates the job `pending`, due after the rule's delay; another
  matching event while it is still pending pushes it back (debounce); once it has started, later
  events change nothing, so a target is judged once per rule.
- `claim`: due pending jobs, and running jobs whose lease expired (their worker died), become
  `running` with a new lease and one more attempt (`FOR UPDATE SKIP LOCKED`: replicas never
  claim the same job).
- `complete` (many jobs in one statement), `retry`, `finish`: only by the claim that holds the
  job (same attempt number), so a worker whose lease expired cannot overwrite the outcome of the
  one that took over.

A job re-run after a crash sends the same score ids (derived from the job id), which the query
service's writer merges into one row: never a double score."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.evals.fields import iso
from services.evals.judge_fields import cursor_page

STATUSES = ("pending", "running", "completed", "error", "skipped")


@dataclass(frozen=True, slots=True)
class Match:
    project_id: str
    rule_id: str
    evaluator_id: str
    trace_id: str
    observation_id: str  # '' for a trace target
    delay_ms: int


@dataclass(frozen=True, slots=True)
class Job:
    project_id: str
    id: uuid.UUID
    rule_id: str
    evaluator_id: str
    trace_id: str
    observation_id: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """A judged job: the evaluator version that judged it, its scores and the judge's trace."""

    job: Job
    version: int
    score_ids: list[str]
    judge_trace_id: str


class JobStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def enqueue(self, matches: list[Match]) -> None:
        unique = {
            (m.project_id, m.rule_id, m.evaluator_id, m.trace_id, m.observation_id): m
            for m in matches
        }
        if not unique:
            return
        columns = list(zip(*((*key, m.delay_ms) for key, m in unique.items()), strict=True))
        await self._pool.execute(_ENQUEUE, *map(list, columns))

    async def claim(self, limit: int, lease_seconds: float) -> list[Job]:
        rows = await self._pool.fetch(_CLAIM, limit, lease_seconds)
        return [Job(**dict(r)) for r in rows]

    async def complete(self, outcomes: list[Outcome]) -> None:
        """Many judged jobs in one statement (score ids travel comma-joined: an array of arrays
        would not unnest row by row)."""
        await self._pool.execute(
            _COMPLETE, [o.job.project_id for o in outcomes], [o.job.id for o in outcomes],
            [o.job.attempts for o in outcomes], [o.version for o in outcomes],
            [",".join(o.score_ids) for o in outcomes], [o.judge_trace_id for o in outcomes],
        )  # fmt: skip

    async def retry(
        self, job: Job, delay: float, error: str | None, *, counts: bool = True
    ) -> None:
        """Back to pending, due in `delay` seconds; `counts` False gives the attempt back (the
        job waited for something else: its target to be readable, its evaluator resumed)."""
        await self._pool.execute(_RETRY, job.project_id, job.id, job.attempts, delay, error,
                                 0 if counts else 1)  # fmt: skip

    async def finish(self, job: Job, status: str, error: str) -> None:
        await self._pool.execute(_FINISH, job.project_id, job.id, job.attempts, status, error)

    async def list_page(
        self, project_id: str, limit: int, cursor: str, filters: dict[str, str]
    ) -> tuple[list[bytes], str]:
        rows, after = await cursor_page(
            self._pool, _LIST, limit, cursor, project_id, filters.get("evaluator_id") or None,
            filters.get("rule_id") or None, filters.get("trace_id") or None,
            filters.get("status") or None,
        )  # fmt: skip
        return [_document(r) for r in rows], after


def _document(row: asyncpg.Record) -> bytes:
    document: dict[str, Any] = {
        "id": str(row["id"]),
        "status": row["status"],
        "evaluationRuleId": row["rule_id"],
        "evaluatorId": row["evaluator_id"],
        "evaluatorVersion": row["evaluator_version"],
        "traceId": row["trace_id"],
        "observationId": row["observation_id"] or None,
        "attempts": row["attempts"],
        "error": row["error"],
        "scoreIds": list(row["score_ids"] or ()),
        "judgeTraceId": row["judge_trace_id"],
        "runAfter": iso(row["run_after"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }
    return orjson.dumps(document)


_ENQUEUE = """
INSERT INTO judge_jobs AS j (project_id, id, rule_id, evaluator_id, trace_id, observation_id,
    status, run_after, created_at, updated_at)
SELECT p, gen_random_uuid(), r, e, t, o, 'pending', now() + d * interval '1 millisecond', now(),
    now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[])
    AS m(p, r, e, t, o, d)
ON CONFLICT (project_id, rule_id, evaluator_id, trace_id, observation_id) DO UPDATE
SET run_after = EXCLUDED.run_after, updated_at = EXCLUDED.updated_at
WHERE j.status = 'pending' AND EXCLUDED.run_after > j.run_after
"""
_CLAIM = """
WITH due AS (
    SELECT project_id, id FROM judge_jobs
    WHERE (status = 'pending' AND run_after <= now())
       OR (status = 'running' AND lease_until < now())
    ORDER BY run_after
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE judge_jobs j
SET status = 'running', lease_until = now() + $2 * interval '1 second',
    attempts = j.attempts + 1, updated_at = now()
FROM due
WHERE j.project_id = due.project_id AND j.id = due.id
RETURNING j.project_id, j.id, j.rule_id, j.evaluator_id, j.trace_id, j.observation_id,
    j.attempts, j.created_at
"""
_HELD = "project_id = $1 AND id = $2 AND attempts = $3 AND status = 'running'"
_COMPLETE = """
UPDATE judge_jobs j SET status = 'completed', lease_until = NULL, error = NULL,
    evaluator_version = o.version, score_ids = string_to_array(o.score_ids, ','),
    judge_trace_id = o.judge_trace_id, updated_at = now()
FROM unnest($1::text[], $2::uuid[], $3::int[], $4::int[], $5::text[], $6::text[])
    AS o(project_id, id, attempts, version, score_ids, judge_trace_id)
WHERE j.project_id = o.project_id AND j.id = o.id AND j.attempts = o.attempts
  AND j.status = 'running'
"""
_RETRY = f"""UPDATE judge_jobs SET status = 'pending', lease_until = NULL, error = $5,
    run_after = now() + $4 * interval '1 second', attempts = attempts - $6, updated_at = now()
WHERE {_HELD}"""
_FINISH = f"""UPDATE judge_jobs SET status = $4, error = $5, lease_until = NULL, updated_at = now()
WHERE {_HELD}"""
_LIST = """
SELECT * FROM judge_jobs
WHERE project_id = $1 AND ($2::text IS NULL OR evaluator_id = $2)
  AND ($3::text IS NULL OR rule_id = $3) AND ($4::text IS NULL OR trace_id = $4)
  AND ($5::text IS NULL OR status = $5)
ORDER BY created_at DESC, id
LIMIT $6 OFFSET $7
"""
