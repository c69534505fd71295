"""Evaluation rules (`/v2/evaluation-rules` and `/unstable/evaluation-rules`): which targets to
judge (a filter in the SDK's types, a sampling rate), by which evaluators with which variable
mappings, enabled or not. Beyond the SDK's fields a rule has a `target` (`observation`, the
default, as the 5.x SDK's live observations; or `trace`, as Langfuse's v3 evaluators) and a
`delay` in milliseconds (default 0 for observations, 10,000 for traces, Langfuse's default): a
target is judged that long after its last matching event, so a trace whose events arrive in many
batches is judged once, on its merged state."""

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from libs.common.errors import NotFound
from libs.common.json_bodies import parse_body
from services.evals.fields import invalid, iso, stored_json, text
from services.evals.judge_fields import cursor_page, numbered_page, variable_mapping
from services.evals.rule_filters import checked_filters

TARGETS = ("observation", "trace")
DEFAULT_DELAY_MS = {"observation": 0, "trace": 10_000}
MAX_DELAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class ActiveRule:
    """An enabled rule and its active evaluators, as the trigger consumer matches it."""

    project_id: str
    id: str
    target: str
    filters: list[dict[str, Any]]
    sampling: float
    delay_ms: int
    evaluator_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Assignment:
    evaluator_id: str
    variable_mapping: list[dict[str, Any]] | None


class RuleApi:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, project_id: str, raw: bytes) -> bytes:
        body = parse_body(raw)
        name = text(body.get("name"), "name")
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise invalid("enabled must be a boolean")
        target = _target(body.get("target", "observation"))
        sampling = _sampling(body.get("sampling"))
        filters = checked_filters(body.get("filter"), target)
        delay = _delay(body.get("delay"), target)
        rule_id, now = str(uuid.uuid4()), datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            assignments = await _assignments(
                conn, project_id, body.get("evaluatorAssignments"), required=enabled
            )
            await conn.execute(_INSERT, project_id, rule_id, name, enabled, sampling,
                               orjson.dumps(filters).decode(), target, delay, now)  # fmt: skip
            await _insert_assignments(conn, project_id, rule_id, assignments)
            return await _read(conn, project_id, rule_id)

    async def update(self, project_id: str, rule_id: str, raw: bytes) -> bytes:
        body = parse_body(raw)
        async with self._pool.acquire() as conn, conn.transaction():
            current = await conn.fetchrow(_LOCK, project_id, rule_id)
            if current is None:
                raise NotFound(f"Evaluation rule {rule_id} not found")
            name = text(body["name"], "name") if body.get("name") is not None else current["name"]
            enabled = body.get("enabled", current["enabled"])
            if not isinstance(enabled, bool):
                raise invalid("enabled must be a boolean")
            target = _target(body.get("target") or current["target"])
            sampling = (
                _sampling(body["sampling"]) if body.get("sampling") is not None
                else current["sampling"]
            )  # fmt: skip
            raw_filters = body["filter"] if body.get("filter") is not None else (
                orjson.loads(current["filter"]))  # fmt: skip
            filters = checked_filters(raw_filters, target)
            delay = (
                _delay(body["delay"], target) if body.get("delay") is not None
                else current["delay_ms"]
            )  # fmt: skip
            await conn.execute(_UPDATE, project_id, rule_id, name, enabled, sampling,
                               orjson.dumps(filters).decode(), target, delay,
                               datetime.now(UTC))  # fmt: skip
            if body.get("evaluatorAssignments") is not None:
                assignments = await _assignments(
                    conn, project_id, body["evaluatorAssignments"], required=enabled
                )
                await conn.execute(_DELETE_ASSIGNMENTS, project_id, rule_id)
                await _insert_assignments(conn, project_id, rule_id, assignments)
            return await _read(conn, project_id, rule_id)

    async def get(self, project_id: str, rule_id: str) -> bytes:
        async with self._pool.acquire() as conn:
            return await _read(conn, project_id, rule_id)

    async def list_page(self, project_id: str, limit: int, cursor: str) -> tuple[list[bytes], str]:
        sql = _SELECT + _LIST_ORDER
        rows, after = await cursor_page(self._pool, sql, limit, cursor, project_id)
        return [_document(r) for r in rows], after

    async def numbered_page(
        self, project_id: str, page: int, limit: int
    ) -> tuple[list[bytes], int]:
        """A page of the page-numbered list (the `/unstable/` shape's) and the rule count."""
        sql = _SELECT + _LIST_ORDER
        rows, total = await numbered_page(self._pool, sql, _COUNT, project_id, page, limit)
        return [_document(r) for r in rows], total

    async def name_taken(self, project_id: str, name: str, except_id: str = "") -> bool:
        return bool(await self._pool.fetchval(_NAME_TAKEN, project_id, name, except_id))

    async def delete(self, project_id: str, rule_id: str) -> bytes:
        if await self._pool.fetchval(_DELETE, project_id, rule_id) is None:
            raise NotFound(f"Evaluation rule {rule_id} not found")
        return orjson.dumps({"id": rule_id})

    async def active_rules(self) -> list[ActiveRule]:
        """Every enabled rule of every project with its active evaluators (the trigger's view)."""
        rows = await self._pool.fetch(_ACTIVE)
        return [
            ActiveRule(
                r["project_id"],
                r["id"],
                r["target"],
                orjson.loads(r["filter"]),
                r["sampling"],
                r["delay_ms"],
                tuple(r["evaluator_ids"]),
            )  # fmt: skip
            for r in rows
        ]

    async def assignment(
        self, project_id: str, rule_id: str, evaluator_id: str
    ) -> tuple[str, list[dict[str, Any]], Assignment] | None:
        """A rule's target, filters and its assignment of one evaluator (the judge's view)."""
        row = await self._pool.fetchrow(_ASSIGNMENT, project_id, rule_id, evaluator_id)
        if row is None:
            return None
        mapping = None if row["variable_mapping"] is None else orjson.loads(row["variable_mapping"])
        return row["target"], orjson.loads(row["filter"]), Assignment(evaluator_id, mapping)


def _target(value: Any) -> str:
    if value not in TARGETS:
        raise invalid(f"target must be one of {', '.join(TARGETS)}")
    return str(value)


def _sampling(value: Any) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid("sampling must be a number between 0 and 1")
    if not 0 <= value <= 1:
        raise invalid("sampling must be between 0 and 1")
    return float(value)


def _delay(value: Any, target: str) -> int:
    if value is None:
        return DEFAULT_DELAY_MS[target]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DELAY_MS:
        raise invalid(f"delay must be an integer number of milliseconds, 0 to {MAX_DELAY_MS}")
    return value


async def _assignments(
    conn: asyncpg.Connection, project_id: str, value: Any, *, required: bool
) -> list[Assignment]:
    """The assignments of a body: known evaluators, each once, every variable of each
    evaluator's prompt mapped (here or by the evaluator's own mapping). An enabled rule needs
    at least one."""
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise invalid("evaluatorAssignments must be a non-empty list for an enabled rule")
    assignments, seen = [], set()
    for i, item in enumerate(value):
        where = f"evaluatorAssignments[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object")
        evaluator_id = text(item.get("evaluatorId"), f"{where}.evaluatorId")
        if evaluator_id in seen:
            raise invalid(f"{where}.evaluatorId: {evaluator_id} is assigned twice")
        seen.add(evaluator_id)
        evaluator = await conn.fetchrow(_EVALUATOR, project_id, evaluator_id)
        if evaluator is None:
            raise invalid(f"{where}.evaluatorId: no evaluator {evaluator_id} in this project")
        variables = list(evaluator["variables"])
        mapping = variable_mapping(item.get("variableMapping"), f"{where}.variableMapping",
                                   variables)  # fmt: skip
        mapped = {m["variable"] for m in mapping or ()} | {
            m["variable"] for m in orjson.loads(evaluator["variable_mapping"] or "[]")
        }
        missing = [v for v in variables if v not in mapped]
        if missing:
            raise invalid(f"{where}.variableMapping: the prompt's variable {missing[0]!r} has "
                          "no mapping")  # fmt: skip
        assignments.append(Assignment(evaluator_id, mapping))
    return assignments


async def _insert_assignments(conn: asyncpg.Connection, project_id: str, rule_id: str,
                              assignments: list[Assignment]) -> None:  # fmt: skip
    for position, a in enumerate(assignments):
        mapping = None if a.variable_mapping is None else orjson.dumps(a.variable_mapping).decode()
        await conn.execute(_INSERT_ASSIGNMENT, project_id, rule_id, a.evaluator_id, position,
                           mapping)  # fmt: skip


async def _read(conn: asyncpg.Connection, project_id: str, rule_id: str) -> bytes:
    row = await conn.fetchrow(_SELECT + " AND r.id = $2", project_id, rule_id)
    if row is None:
        raise NotFound(f"Evaluation rule {rule_id} not found")
    return _document(row)


def _document(row: asyncpg.Record) -> bytes:
    return orjson.dumps(
        {
            "id": row["id"],
            "name": row["name"],
            "createdBy": None,
            "enabled": row["enabled"],
            "sampling": row["sampling"],
            "filter": stored_json(row["filter"]),
            "evaluatorAssignments": stored_json(row["assignments"]),
            "target": row["target"],
            "delay": row["delay_ms"],
            "createdAt": iso(row["created_at"]),
            "updatedAt": iso(row["updated_at"]),
        }
    )


_SELECT = """
SELECT r.id, r.name, r.enabled, r.sampling, r.filter::text AS filter, r.target, r.delay_ms,
    r.created_at, r.updated_at,
    (SELECT coalesce(json_agg(json_build_object('evaluatorId', a.evaluator_id,
                                                'variableMapping', a.variable_mapping)
                              ORDER BY a.position), '[]')::text
     FROM evaluation_rule_evaluators a
     WHERE a.project_id = r.project_id AND a.rule_id = r.id) AS assignments
FROM evaluation_rules r
WHERE r.project_id = $1"""
_LIST_ORDER = " ORDER BY r.created_at DESC, r.id LIMIT $2 OFFSET $3"
_COUNT = "SELECT count(*) FROM evaluation_rules WHERE project_id = $1"
_NAME_TAKEN = (
    "SELECT true FROM evaluation_rules WHERE project_id = $1 AND name = $2 AND id <> $3 LIMIT 1"
)
_INSERT = """INSERT INTO evaluation_rules (project_id, id, name, enabled, sampling, filter,
    target, delay_ms, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9, $9)"""
_INSERT_ASSIGNMENT = """INSERT INTO evaluation_rule_evaluators (project_id, rule_id, evaluator_id,
    position, variable_mapping) VALUES ($1, $2, $3, $4, $5::text::jsonb)"""
_LOCK = """SELECT name, enabled, sampling, filter::text AS filter, target, delay_ms
FROM evaluation_rules WHERE project_id = $1 AND id = $2 FOR UPDATE"""
_UPDATE = """UPDATE evaluation_rules SET name = $3, enabled = $4, sampling = $5,
    filter = $6::text::jsonb, target = $7, delay_ms = $8, updated_at = $9
WHERE project_id = $1 AND id = $2"""
_DELETE_ASSIGNMENTS = (
    "DELETE FROM evaluation_rule_evaluators WHERE project_id = $1 AND rule_id = $2"
)
_DELETE = "DELETE FROM evaluation_rules WHERE project_id = $1 AND id = $2 RETURNING id"
_EVALUATOR = """SELECT v.variables, v.variable_mapping::text AS variable_mapping
FROM evaluators e JOIN evaluator_versions v
  ON v.project_id = e.project_id AND v.evaluator_id = e.id AND v.version = e.latest_version
WHERE e.project_id = $1 AND e.id = $2"""
_ACTIVE = """
SELECT r.project_id, r.id, r.target, r.filter::text AS filter, r.sampling, r.delay_ms,
    array_agg(a.evaluator_id ORDER BY a.position) AS evaluator_ids
FROM evaluation_rules r
JOIN evaluation_rule_evaluators a ON a.project_id = r.project_id AND a.rule_id = r.id
JOIN evaluators e ON e.project_id = a.project_id AND e.id = a.evaluator_id
WHERE r.enabled AND r.sampling > 0 AND e.status = 'active'
GROUP BY r.project_id, r.id"""
_ASSIGNMENT = """
SELECT r.target, r.filter::text AS filter, a.variable_mapping::text AS variable_mapping
FROM evaluation_rules r
JOIN evaluation_rule_evaluators a ON a.project_id = r.project_id AND a.rule_id = r.id
WHERE r.project_id = $1 AND r.id = $2 AND a.evaluator_id = $3"""
