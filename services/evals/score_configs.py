"""Score configs: validation of create and update bodies (pure), the PostgreSQL store, the public
`ScoreConfig` document, and the RPCs (ScoreConfigApi).

Langfuse's rules: NUMERIC may bound its values (maxValue > minValue), CATEGORICAL lists categories
with unique labels and unique values, BOOLEAN gets the categories True/1 and False/0 by itself,
TEXT has neither. An update is merged into the stored config and the result is checked by the same
rules as a create, so no request can leave a config that a create would refuse.

Every change starts a new cache generation of its project (libs/common/score_config_cache.py)
before it is answered, so no ingestion replica checks a score against the config as it was before
an answered change."""

import math
import re
import uuid
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import orjson
from redis.exceptions import RedisError

from libs.common.errors import NotFound, Unavailable
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.gencache import GenerationCache
from libs.common.json_bodies import parse_body
from libs.common.scope import ProjectScope
from services.evals.fields import (
    checked_page,
    checked_text,
    findable,
    invalid,
    iso,
    nul_refused,
    optional_text,
    page_meta,
)

DATA_TYPES = ("NUMERIC", "CATEGORICAL", "BOOLEAN", "TEXT")
BOOLEAN_CATEGORIES = ({"label": "True", "value": 1}, {"label": "False", "value": 0})
# Langfuse's ScoreConfigNameSchema: 1-35 letters, digits, spaces, `_`, `.`, `(`, `)` and `-`.
NAME_MAX_LENGTH = 35
_NAME = re.compile(r"^[\w .()\-]+$")
_UPDATABLE = ("isArchived", "name", "description", "categories", "minValue", "maxValue")


@dataclass(frozen=True, slots=True)
class ConfigFields:
    """The client-controlled part of a config, always valid for its data type."""

    name: str
    data_type: str
    min_value: float | None = None
    max_value: float | None = None
    categories: tuple[dict[str, Any], ...] | None = None
    description: str | None = None
    is_archived: bool = False


def new_config(body: dict[str, Any]) -> ConfigFields:
    """The fields of a create body (`CreateScoreConfigRequest`); InvalidArgument names the field."""
    data_type = body.get("dataType")
    if data_type not in DATA_TYPES:
        raise invalid(f"dataType must be one of {', '.join(DATA_TYPES)}")
    if data_type == "BOOLEAN" and body.get("categories") is not None:
        raise invalid("categories are set automatically for BOOLEAN configs and cannot be given")
    fields = ConfigFields(
        name=_name(body.get("name")),
        data_type=data_type,
        min_value=_bound(body, "minValue"),
        max_value=_bound(body, "maxValue"),
        categories=_categories(body["categories"]) if body.get("categories") is not None else None,
        description=optional_text(body.get("description"), "description", max_length=None),
    )
    if data_type == "BOOLEAN":
        fields = replace(fields, categories=BOOLEAN_CATEGORIES)
    return _checked(fields)


def updated_config(current: ConfigFields, body: dict[str, Any]) -> ConfigFields:
    """`current` changed by an update body (`UpdateScoreConfigRequest`). Explicit nulls leave a
    field as it was; fields it does not know (such as dataType) are ignored, as in Langfuse."""
    given = {key: body[key] for key in _UPDATABLE if body.get(key) is not None}
    if not given:
        raise invalid("at least one of " + ", ".join(_UPDATABLE) + " must be given")
    changes: dict[str, Any] = {}
    if "isArchived" in given:
        if not isinstance(given["isArchived"], bool):
            raise invalid("isArchived must be a boolean")
        changes["is_archived"] = given["isArchived"]
    if "name" in given:
        changes["name"] = _name(given["name"])
    if "description" in given:
        changes["description"] = optional_text(given["description"], "description", max_length=None)
    if "minValue" in given:
        changes["min_value"] = _bound(given, "minValue")
    if "maxValue" in given:
        changes["max_value"] = _bound(given, "maxValue")
    if "categories" in given:
        if current.data_type == "BOOLEAN":
            raise invalid("the categories of a BOOLEAN config cannot be changed")
        changes["categories"] = _categories(given["categories"])
    return _checked(replace(current, **changes))


def _checked(fields: ConfigFields) -> ConfigFields:
    """The rules of the data type, on the whole config."""
    bounded = fields.min_value is not None or fields.max_value is not None
    if fields.data_type != "NUMERIC" and bounded:
        raise invalid("minValue and maxValue are only allowed for NUMERIC configs")
    if fields.data_type in ("NUMERIC", "TEXT") and fields.categories is not None:
        raise invalid(f"categories are not allowed for {fields.data_type} configs")
    if fields.data_type == "CATEGORICAL" and not fields.categories:
        raise invalid("categories are required for CATEGORICAL configs")
    low, high = fields.min_value, fields.max_value
    if low is not None and high is not None and high <= low:
        raise invalid("maxValue must be greater than minValue")
    return fields


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise invalid("name is required")
    if len(value) > NAME_MAX_LENGTH:
        raise invalid(f"name must be at most {NAME_MAX_LENGTH} characters")
    if not _NAME.match(value):
        raise invalid(
            "name may only contain letters, numbers, spaces, underscores, periods,"
            " parentheses and hyphens"
        )
    return value


def _bound(body: dict[str, Any], field: str) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if not _is_number(value):
        raise invalid(f"{field} must be a finite number")
    return float(value)


def _categories(value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        raise invalid("categories must be a list of {label, value} objects")
    labels: set[str] = set()
    values: set[float] = set()
    categories = []
    for category in value:
        if not isinstance(category, dict):
            raise invalid("categories must be a list of {label, value} objects")
        label, number = category.get("label"), category.get("value")
        if not isinstance(label, str) or not label:
            raise invalid("every category needs a non-empty string label")
        checked_text(label, "a category label", max_length=None)
        if not _is_number(number):
            raise invalid(f"category {label!r} needs a finite number as its value")
        if label in labels:
            raise invalid(f"duplicate category label {label!r}: labels must be unique")
        if number in values:
            raise invalid(f"duplicate category value {number}: values must be unique")
        labels.add(label)
        values.add(number)
        categories.append({"label": label, "value": number})
    return tuple(categories)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class ScoreConfigApi:
    """The score-config RPCs, for the gateway and internal callers (ingestion checks scores)."""

    def __init__(self, pool: asyncpg.Pool, generations: GenerationCache) -> None:
        self._store = ScoreConfigStore(pool)
        self._generations = generations

    async def get(
        self, scope: ProjectScope, request: evals_pb2.GetScoreConfigRequest
    ) -> evals_pb2.GetScoreConfigResponse:
        found = findable(request.config_id)
        document = await self._store.get(scope.project_id, request.config_id) if found else None
        if document is None:
            raise NotFound("Score config not found within authorized project")
        return evals_pb2.GetScoreConfigResponse(config_json=orjson.dumps(document))

    async def list(
        self, scope: ProjectScope, request: evals_pb2.ListScoreConfigsRequest
    ) -> evals_pb2.ListScoreConfigsResponse:
        page, limit = checked_page(request.page)
        documents, total = await self._store.page(scope.project_id, page, limit)
        return evals_pb2.ListScoreConfigsResponse(
            configs_json=[orjson.dumps(document) for document in documents],
            meta=page_meta(page, limit, total),
        )

    async def create(
        self, scope: ProjectScope, request: evals_pb2.CreateScoreConfigRequest
    ) -> evals_pb2.CreateScoreConfigResponse:
        scope.require_project_access()
        fields = new_config(parse_body(request.body_json))
        with nul_refused():
            document = await self._store.create(scope.project_id, fields)
        await self._new_generation(scope.project_id, saved=True)
        return evals_pb2.CreateScoreConfigResponse(config_json=orjson.dumps(document))

    async def update(
        self, scope: ProjectScope, request: evals_pb2.UpdateScoreConfigRequest
    ) -> evals_pb2.UpdateScoreConfigResponse:
        scope.require_project_access()
        body = parse_body(request.body_json)
        # A new generation before the change too: when Redis cannot take one, nothing changes,
        # so an unreachable Redis never leaves a replica checking against an outdated config.
        await self._new_generation(scope.project_id, saved=False)
        with nul_refused():
            document = await self._store.update(scope.project_id, request.config_id, body)
        if document is None:
            raise NotFound("Score config not found within authorized project")
        await self._new_generation(scope.project_id, saved=True)
        return evals_pb2.UpdateScoreConfigResponse(config_json=orjson.dumps(document))

    async def _new_generation(self, project_id: str, *, saved: bool) -> None:
        try:
            await self._generations.invalidate(project_id)
        except RedisError as exc:
            outcome = "was saved, but" if saved else "was not saved:"
            raise Unavailable(
                f"The score config change {outcome} caches could not be invalidated; retry"
            ) from exc


class ScoreConfigStore:
    """Score configs in PostgreSQL; every query is bound to one project."""

    _COLUMNS = (
        "id, project_id, name, data_type, is_archived, min_value, max_value,"
        " categories::text AS categories, description, created_at, updated_at"
    )

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, project_id: str, config_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"SELECT {self._COLUMNS} FROM score_configs WHERE project_id = $1 AND id = $2",
            project_id,
            config_id,
        )
        return config_document(row) if row else None

    async def page(
        self, project_id: str, page: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page, newest first, and the project's total count."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"SELECT {self._COLUMNS} FROM score_configs WHERE project_id = $1"
                " ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                project_id,
                limit,
                (page - 1) * limit,
            )
            total = await connection.fetchval(
                "SELECT count(*) FROM score_configs WHERE project_id = $1", project_id
            )
        return [config_document(row) for row in rows], total

    async def create(self, project_id: str, fields: ConfigFields) -> dict[str, Any]:
        row = await self._pool.fetchrow(
            "INSERT INTO score_configs (id, project_id, name, data_type, is_archived, min_value,"
            " max_value, categories, description)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9) RETURNING {self._COLUMNS}",
            str(uuid.uuid4()),
            project_id,
            *_values(fields),
        )
        return config_document(row)

    async def update(
        self, project_id: str, config_id: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Applies an update body under a row lock (concurrent updates never lose each other's
        fields); None when the project has no such config."""
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                f"SELECT {self._COLUMNS} FROM score_configs"
                " WHERE project_id = $1 AND id = $2 FOR UPDATE",
                project_id,
                config_id,
            )
            if row is None:
                return None
            fields = updated_config(_fields(row), body)
            row = await connection.fetchrow(
                "UPDATE score_configs SET name = $3, data_type = $4, is_archived = $5,"
                " min_value = $6, max_value = $7, categories = $8::jsonb, description = $9,"
                f" updated_at = now() WHERE project_id = $1 AND id = $2 RETURNING {self._COLUMNS}",
                project_id,
                config_id,
                *_values(fields),
            )
        return config_document(row)


def _values(fields: ConfigFields) -> tuple[Any, ...]:
    categories = None if fields.categories is None else orjson.dumps(fields.categories).decode()
    return (
        fields.name,
        fields.data_type,
        fields.is_archived,
        fields.min_value,
        fields.max_value,
        categories,
        fields.description,
    )


def _fields(row: asyncpg.Record) -> ConfigFields:
    categories = orjson.loads(row["categories"]) if row["categories"] else None
    return ConfigFields(
        name=row["name"],
        data_type=row["data_type"],
        min_value=row["min_value"],
        max_value=row["max_value"],
        categories=tuple(categories) if categories is not None else None,
        description=row["description"],
        is_archived=row["is_archived"],
    )


def config_document(row: asyncpg.Record) -> dict[str, Any]:
    """Langfuse's `ScoreConfig`; the optional keys are always present (null when unset)."""
    fields = _fields(row)
    return {
        "id": row["id"],
        "name": fields.name,
        "dataType": fields.data_type,
        "isArchived": fields.is_archived,
        "minValue": fields.min_value,
        "maxValue": fields.max_value,
        "categories": list(fields.categories) if fields.categories is not None else None,
        "description": fields.description,
        "projectId": row["project_id"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }
