"""Datasets: upsert by name, reads, deletion, and the public `Dataset` document.

An upsert changes only the fields it gives (null or absent: unchanged), as Langfuse's. Setting or
changing a schema checks the dataset's current items against it, so a dataset never holds an
item its schemas refuse."""

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from libs.common.errors import NotFound
from libs.common.json_bodies import parse_body
from services.evals.fields import (
    iso,
    json_text,
    nul_refused,
    optional_text,
    stored_json,
    text,
)
from services.evals.schemas import ItemSchemas, checked_schema

COLUMNS = (
    "id, name, description, metadata::text AS metadata, input_schema::text AS input_schema,"
    " expected_output_schema::text AS expected_output_schema, created_at, updated_at,"
    " items_revision"
)
# Current items are checked against a new schema in batches of this many.
_CHECK_BATCH = 1000


@dataclass(frozen=True, slots=True)
class DatasetFields:
    """An upsert body (`CreateDatasetRequest`); None leaves a field as it is."""

    name: str
    description: str | None = None
    metadata: Any = None
    input_schema: Any = None
    expected_output_schema: Any = None


def dataset_fields(raw: bytes) -> DatasetFields:
    body = parse_body(raw)
    return DatasetFields(
        name=text(body.get("name"), "name"),
        description=optional_text(body.get("description"), "description", max_length=None),
        metadata=body.get("metadata"),
        input_schema=checked_schema(body.get("inputSchema"), "inputSchema"),
        expected_output_schema=checked_schema(
            body.get("expectedOutputSchema"), "expectedOutputSchema"
        ),
    )


def dataset_name(value: str) -> str:
    """A name taken from a request path or parameter."""
    return text(value, "datasetName")


async def upsert(
    conn: asyncpg.Connection, project_id: str, fields: DatasetFields
) -> asyncpg.Record:
    async with conn.transaction():
        before = await conn.fetchrow(
            "SELECT input_schema::text AS input_schema,"
            " expected_output_schema::text AS expected_output_schema"
            " FROM datasets WHERE project_id = $1 AND name = $2 FOR UPDATE",
            project_id,
            fields.name,
        )
        with nul_refused():
            row = await conn.fetchrow(
                "INSERT INTO datasets (id, project_id, name, description, metadata, input_schema,"
                " expected_output_schema, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, now(), now())"
                " ON CONFLICT (project_id, name) DO UPDATE SET"
                " description = coalesce(EXCLUDED.description, datasets.description),"
                " metadata = coalesce(EXCLUDED.metadata, datasets.metadata),"
                " input_schema = coalesce(EXCLUDED.input_schema, datasets.input_schema),"
                " expected_output_schema ="
                " coalesce(EXCLUDED.expected_output_schema, datasets.expected_output_schema),"
                " updated_at = now()"
                f" RETURNING {COLUMNS}",
                uuid.uuid4().hex,
                project_id,
                fields.name,
                fields.description,
                json_text(fields.metadata),
                json_text(fields.input_schema),
                json_text(fields.expected_output_schema),
            )
        if before is not None and (
            _changed(before["input_schema"], row["input_schema"])
            or _changed(before["expected_output_schema"], row["expected_output_schema"])
        ):
            await _check_current_items(conn, project_id, row)
    return row


async def get(
    conn: asyncpg.Connection | asyncpg.Pool, project_id: str, name: str
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM datasets WHERE project_id = $1 AND name = $2", project_id, name
    )
    if row is None:
        raise NotFound(f"Dataset {name} not found")
    return row


async def page(
    conn: asyncpg.Connection, project_id: str, page_number: int, limit: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM datasets WHERE project_id = $1"
        " ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
        project_id,
        limit,
        (page_number - 1) * limit,
    )
    total = await conn.fetchval("SELECT count(*) FROM datasets WHERE project_id = $1", project_id)
    return rows, total


async def delete(conn: asyncpg.Connection | asyncpg.Pool, project_id: str, name: str) -> None:
    """Deletes the dataset with every version of its items, its runs and their run items."""
    result = await conn.execute(
        "DELETE FROM datasets WHERE project_id = $1 AND name = $2", project_id, name
    )
    if result.endswith(" 0"):
        raise NotFound(f"Dataset {name} not found")


def document(row: asyncpg.Record, project_id: str, **extra: Any) -> bytes:
    """The public `Dataset` (Langfuse's legacy v1 shape adds `items` and `runs` as `extra`)."""
    return orjson.dumps(
        {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "metadata": stored_json(row["metadata"]),
            "inputSchema": stored_json(row["input_schema"]),
            "expectedOutputSchema": stored_json(row["expected_output_schema"]),
            "projectId": project_id,
            "createdAt": iso(row["created_at"]),
            "updatedAt": iso(row["updated_at"]),
            **extra,
        }
    )


def _changed(before: str | None, after: str | None) -> bool:
    return after is not None and (before is None or orjson.loads(before) != orjson.loads(after))


async def _check_current_items(
    conn: asyncpg.Connection, project_id: str, dataset: asyncpg.Record
) -> None:
    """Every current item against the dataset's (new) schemas; the first violation is a 400 that
    names the item, and the caller's transaction rolls the schema change back."""
    schemas = ItemSchemas.of(dataset["input_schema"], dataset["expected_output_schema"])
    cursor = await conn.cursor(
        "SELECT id, input::text AS input, expected_output::text AS expected_output"
        " FROM dataset_items WHERE project_id = $1 AND dataset_id = $2 AND valid_to IS NULL",
        project_id,
        dataset["id"],
    )
    while rows := await cursor.fetch(_CHECK_BATCH):
        for row in rows:
            schemas.check(
                orjson.loads(row["input"] or "null"),
                orjson.loads(row["expected_output"] or "null"),
                item_id=row["id"],
            )
