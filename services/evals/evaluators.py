"""Evaluators (`/v2/evaluators` and `/unstable/evaluators`): versioned LLM-as-a-judge
definitions, a chat prompt with `{{variables}}`, their mapping, the model (a connection's
provider and one of its models) and the output definition (numeric, boolean or categorical score
with reasoning). A definition change is a new version; a name or description change is not. Code
evaluators are refused until a sandbox exists. The judge worker pauses an evaluator whose
connection keeps failing (`status`, `pausedReason`, `pausedMessage`); any update resumes it."""

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from libs.common.errors import NotFound
from libs.common.json_bodies import parse_body
from services.evals.connections import ConnectionApi
from services.evals.fields import invalid, iso, optional_text, stored_json, text
from services.evals.judge_fields import (
    cursor_page,
    numbered_page,
    template_variables,
    variable_mapping,
)

ROLES = ("system", "user", "assistant")
DATA_TYPES = ("NUMERIC", "BOOLEAN", "CATEGORICAL")
CODE_REFUSED = (
    "code evaluators are not supported: they need a sandbox this deployment does not have; "
    "use type llm_as_judge"
)
PAUSED_BY_CONNECTION = "LLM_CONNECTION_ERROR"


@dataclass(frozen=True, slots=True)
class Definition:
    prompt: list[dict[str, str]]
    variables: list[str]
    variable_mapping: list[dict[str, Any]] | None
    provider: str
    model: str
    output: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JudgeVersion:
    """What a judge job needs of an evaluator: its latest version and whether it may run."""

    evaluator_id: str
    name: str
    active: bool
    version: int
    definition: Definition


class EvaluatorApi:
    def __init__(self, pool: asyncpg.Pool, connections: ConnectionApi) -> None:
        self._pool = pool
        self._connections = connections

    async def create(self, project_id: str, raw: bytes) -> bytes:
        body, name = checked_head(raw)
        description = optional_text(body.get("description"), "description", max_length=None)
        definition = await self._definition(project_id, body)
        evaluator_id, now = str(uuid.uuid4()), datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_INSERT, project_id, evaluator_id, name, description, now)
            await _insert_version(conn, project_id, evaluator_id, 1, definition, now)
            return await _read(conn, project_id, evaluator_id)

    async def update(self, project_id: str, evaluator_id: str, raw: bytes) -> bytes:
        body = parse_body(raw)
        if body.get("type") == "code" or "sourceCode" in body:
            raise invalid(CODE_REFUSED)
        has_definition = any(k in body for k in ("prompt", "outputDefinition", "modelConfig",
                                                 "variableMapping"))  # fmt: skip
        if body.get("name") is not None:
            text(body["name"], "name")
        description = optional_text(body.get("description"), "description", max_length=None)
        definition = await self._definition(project_id, body) if has_definition else None
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            version = await conn.fetchval(_LOCK, project_id, evaluator_id)
            if version is None:
                raise NotFound(f"Evaluator {evaluator_id} not found")
            if definition is not None:
                version += 1
                await _insert_version(conn, project_id, evaluator_id, version, definition, now)
            # Any update resumes a paused evaluator: the user has looked at it.
            await conn.execute(_UPDATE, project_id, evaluator_id, body.get("name"), description,
                               "description" in body, version, now)  # fmt: skip
            return await _read(conn, project_id, evaluator_id)

    async def get(self, project_id: str, evaluator_id: str) -> bytes:
        async with self._pool.acquire() as conn:
            return await _read(conn, project_id, evaluator_id)

    async def list_page(self, project_id: str, limit: int, cursor: str) -> tuple[list[bytes], str]:
        sql = _SELECT + _LIST_ORDER
        rows, after = await cursor_page(self._pool, sql, limit, cursor, project_id)
        return [_document(r) for r in rows], after

    async def numbered_page(
        self, project_id: str, page: int, limit: int
    ) -> tuple[list[bytes], int]:
        """A page of the page-numbered list (the `/unstable/` shape's) and the evaluator count."""
        sql = _SELECT + _LIST_ORDER
        rows, total = await numbered_page(self._pool, sql, _COUNT, project_id, page, limit)
        return [_document(r) for r in rows], total

    async def documents(self, project_id: str, evaluator_ids: list[str]) -> list[bytes]:
        """The documents of these evaluators (those that exist)."""
        rows = await self._pool.fetch(_SELECT + " AND e.id = ANY($2::text[])", project_id,
                                      evaluator_ids)  # fmt: skip
        return [_document(r) for r in rows]

    async def ids_named(self, project_id: str, name: str) -> list[str]:
        """The ids of the evaluators with this name, newest first: none, one, or (names are not
        unique in v2) the first two of a clash."""
        return [r["id"] for r in await self._pool.fetch(_NAMED, project_id, name)]

    async def versions(
        self, project_id: str, evaluator_id: str, limit: int, cursor: str
    ) -> tuple[list[bytes], str]:
        async with self._pool.acquire() as conn:
            if not await conn.fetchval(_EXISTS, project_id, evaluator_id):
                raise NotFound(f"Evaluator {evaluator_id} not found")
            rows, after = await cursor_page(
                conn, _VERSIONS, limit, cursor, project_id, evaluator_id
            )
        return [_version_document(r) for r in rows], after

    async def delete(self, project_id: str, evaluator_id: str) -> bytes:
        if await self._pool.fetchval(_DELETE, project_id, evaluator_id) is None:
            raise NotFound(f"Evaluator {evaluator_id} not found")
        return orjson.dumps({"id": evaluator_id})

    async def judge_version(self, project_id: str, evaluator_id: str) -> JudgeVersion | None:
        row = await self._pool.fetchrow(_SELECT + " AND e.id = $2", project_id, evaluator_id)
        if row is None:
            return None
        return JudgeVersion(evaluator_id, row["name"], row["status"] == "active", row["version"],
                            _stored_definition(row))  # fmt: skip

    async def pause(self, project_id: str, evaluator_id: str, message: str) -> None:
        await self._pool.execute(_PAUSE, project_id, evaluator_id, PAUSED_BY_CONNECTION,
                                 message, datetime.now(UTC))  # fmt: skip

    async def _definition(self, project_id: str, body: dict[str, Any]) -> Definition:
        prompt = _prompt(body.get("prompt"))
        variables = template_variables(prompt)
        mapping = variable_mapping(body.get("variableMapping"), "variableMapping", variables)
        model_config = body.get("modelConfig")
        if not isinstance(model_config, dict):
            raise invalid("modelConfig ({provider, model}) is required: there is no default "
                          "evaluation model")  # fmt: skip
        provider = text(model_config.get("provider"), "modelConfig.provider")
        model = text(model_config.get("model"), "modelConfig.model")
        models = await self._connections.exists(project_id, provider)
        if models is None:
            raise invalid(f"modelConfig.provider: no LLM connection named {provider!r}")
        if model not in models:
            raise invalid(f"modelConfig.model: {model!r} is not a model of the connection "
                          f"{provider!r} (its customModels or default models)")  # fmt: skip
        return Definition(prompt, variables, mapping, provider, model,
                          _output(body.get("outputDefinition")))  # fmt: skip


def checked_head(raw: bytes) -> tuple[dict[str, Any], str]:
    """A new evaluator's body and name, once its type is checked (both create routes)."""
    body = parse_body(raw)
    kind = body.get("type", "llm_as_judge")
    if kind == "code":
        raise invalid(CODE_REFUSED)
    if kind != "llm_as_judge":
        raise invalid("type must be llm_as_judge")
    return body, text(body.get("name"), "name")


def _prompt(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise invalid("prompt must be a non-empty string or list of {role, content} messages")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise invalid(f"prompt[{i}].role must be one of {', '.join(ROLES)}")
        content = text(message.get("content"), f"prompt[{i}].content", max_length=200_000)
        messages.append({"role": message["role"], "content": content})
    return messages


def _output(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("dataType") not in DATA_TYPES:
        raise invalid(f"outputDefinition.dataType must be one of {', '.join(DATA_TYPES)}")
    output: dict[str, Any] = {"dataType": value["dataType"]}
    for key in ("scoreReasoningInstructions", "scoreValueInstructions"):
        output[key] = optional_text(value.get(key), f"outputDefinition.{key}", max_length=None)
    if value["dataType"] == "NUMERIC":
        for key in ("minValue", "maxValue"):
            bound = value.get(key)
            if bound is not None and (
                isinstance(bound, bool) or not isinstance(bound, int | float)
                or not math.isfinite(bound)
            ):  # fmt: skip
                raise invalid(f"outputDefinition.{key} must be a finite number")
            output[key] = bound
        if None not in (output["minValue"], output["maxValue"]) and (
            output["maxValue"] <= output["minValue"]
        ):
            raise invalid("outputDefinition.maxValue must be greater than minValue")
    if value["dataType"] == "CATEGORICAL":
        categories = value.get("categories")
        if (
            not isinstance(categories, list) or not categories
            or not all(isinstance(c, str) and c for c in categories)
            or len(set(categories)) != len(categories)
        ):  # fmt: skip
            raise invalid("outputDefinition.categories must be a non-empty list of unique strings")
        multiple = value.get("shouldAllowMultipleMatches")
        if not isinstance(multiple, bool):
            raise invalid("outputDefinition.shouldAllowMultipleMatches must be a boolean")
        output.update(categories=categories, shouldAllowMultipleMatches=multiple)
    return output


async def _insert_version(conn: asyncpg.Connection, project_id: str, evaluator_id: str,
                          version: int, d: Definition, now: datetime) -> None:  # fmt: skip
    await conn.execute(
        _INSERT_VERSION, project_id, evaluator_id, version, str(uuid.uuid4()),
        orjson.dumps(d.prompt).decode(), d.variables,
        None if d.variable_mapping is None else orjson.dumps(d.variable_mapping).decode(),
        d.provider, d.model, orjson.dumps(d.output).decode(), now,
    )  # fmt: skip


async def _read(conn: asyncpg.Connection, project_id: str, evaluator_id: str) -> bytes:
    row = await conn.fetchrow(_SELECT + " AND e.id = $2", project_id, evaluator_id)
    if row is None:
        raise NotFound(f"Evaluator {evaluator_id} not found")
    return _document(row)


def _stored_definition(row: asyncpg.Record) -> Definition:
    mapping = row["variable_mapping"]
    return Definition(
        prompt=orjson.loads(row["prompt"]),
        variables=list(row["variables"]),
        variable_mapping=None if mapping is None else orjson.loads(mapping),
        provider=row["model_provider"],
        model=row["model"],
        output=orjson.loads(row["output_definition"]),
    )


def _definition_fields(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "type": "llm_as_judge",
        "prompt": stored_json(row["prompt"]),
        "variables": list(row["variables"]),
        "variableMapping": stored_json(row["variable_mapping"]),
        "modelConfig": {"provider": row["model_provider"], "model": row["model"]},
        "outputDefinition": stored_json(row["output_definition"]),
    }


def _document(row: asyncpg.Record) -> bytes:
    return orjson.dumps(
        {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "createdBy": None,
            "status": row["status"],
            "pausedAt": iso(row["paused_at"]) if row["paused_at"] else None,
            "pausedReason": row["paused_reason"],
            "pausedMessage": row["paused_message"],
            "evaluationRuleAssignments": stored_json(row["assignments"]),
            "createdAt": iso(row["created_at"]),
            "updatedAt": iso(row["updated_at"]),
            "versionId": row["version_id"],
            "version": row["version"],
            "versionCreatedAt": iso(row["version_created_at"]),
            "versionCreatedBy": None,
            **_definition_fields(row),
        }
    )


def _version_document(row: asyncpg.Record) -> bytes:
    return orjson.dumps(
        {
            "id": row["version_id"],
            "version": row["version"],
            "createdAt": iso(row["version_created_at"]),
            "createdBy": None,
            **_definition_fields(row),
        }
    )


_VERSION_COLUMNS = """v.id AS version_id, v.version, v.created_at AS version_created_at,
    v.prompt::text AS prompt, v.variables, v.variable_mapping::text AS variable_mapping,
    v.model_provider, v.model, v.output_definition::text AS output_definition"""
_SELECT = f"""
SELECT e.id, e.name, e.description, e.status, e.paused_at, e.paused_reason, e.paused_message,
    e.created_at, e.updated_at, {_VERSION_COLUMNS},
    (SELECT coalesce(json_agg(json_build_object('evaluationRuleId', a.rule_id,
                                                'variableMappingOverride', a.variable_mapping)
                              ORDER BY a.rule_id), '[]')::text
     FROM evaluation_rule_evaluators a
     WHERE a.project_id = e.project_id AND a.evaluator_id = e.id) AS assignments
FROM evaluators e
JOIN evaluator_versions v
  ON v.project_id = e.project_id AND v.evaluator_id = e.id AND v.version = e.latest_version
WHERE e.project_id = $1"""
_LIST_ORDER = " ORDER BY e.created_at DESC, e.id LIMIT $2 OFFSET $3"
_VERSIONS = f"""SELECT {_VERSION_COLUMNS} FROM evaluator_versions v
WHERE v.project_id = $1 AND v.evaluator_id = $2 ORDER BY v.version DESC LIMIT $3 OFFSET $4"""
_INSERT = """INSERT INTO evaluators (project_id, id, name, description, status, latest_version,
    created_at, updated_at) VALUES ($1, $2, $3, $4, 'active', 1, $5, $5)"""
_INSERT_VERSION = """INSERT INTO evaluator_versions (project_id, evaluator_id, version, id, prompt,
    variables, variable_mapping, model_provider, model, output_definition, created_at)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7::text::jsonb, $8, $9, $10::text::jsonb, $11)"""
_LOCK = """SELECT latest_version FROM evaluators WHERE project_id = $1 AND id = $2 FOR UPDATE"""
_UPDATE = """UPDATE evaluators SET name = coalesce($3, name),
    description = CASE WHEN $5 THEN $4 ELSE description END, latest_version = $6,
    status = 'active', paused_at = NULL, paused_reason = NULL, paused_message = NULL,
    updated_at = $7
WHERE project_id = $1 AND id = $2"""
_EXISTS = "SELECT true FROM evaluators WHERE project_id = $1 AND id = $2"
_COUNT = "SELECT count(*) FROM evaluators WHERE project_id = $1"
_NAMED = """SELECT id FROM evaluators WHERE project_id = $1 AND name = $2
ORDER BY created_at DESC, id LIMIT 2"""
_DELETE = "DELETE FROM evaluators WHERE project_id = $1 AND id = $2 RETURNING id"
_PAUSE = """UPDATE evaluators SET status = 'paused', paused_reason = $3, paused_message = $4,
    paused_at = $5, updated_at = $5
WHERE project_id = $1 AND id = $2 AND status = 'active'"""
