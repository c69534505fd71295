"""Dataset runs and their run items, and the public `DatasetRun` and `DatasetRunItem` documents.

A run's id is the stable experiment id the SDKs compute themselves (`run_id`), so Python 3 and
JS, which post run items, and Python 5, whose spans alone name the run (services/evals/
consumer.py), land in the same run. A run item is one execution of a dataset item in a run,
unique per (run, item, trace): a retried request or a replayed span updates the same row."""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from libs.common.errors import NotFound
from libs.common.json_bodies import parse_body
from libs.common.scope import read_cutoff
from services.evals.fields import (
    ID_MAX_LENGTH,
    invalid,
    iso,
    json_text,
    nul_refused,
    optional_text,
    optional_time,
    stored_json,
    text,
)

_RUN = "id, name, description, metadata::text AS metadata, dataset_id, created_at, updated_at"
_RUN_ITEM = "id, dataset_run_id, dataset_item_id, trace_id, observation_id, created_at, updated_at"


def run_id(project_id: str, dataset_id: str, run_name: str) -> str:
    """Langfuse's stable experiment id: SHA-256 of JS's JSON.stringify of the array (compact,
    non-ASCII kept), first 16 hex characters; the SDKs derive the same."""
    key = json.dumps(
        ["langfuse-experiment-v1", project_id, dataset_id, run_name],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RunItemRequest:
    """A `CreateDatasetRunItemRequest`."""

    run_name: str
    dataset_item_id: str
    run_description: str | None = None
    # The run's metadata (with `dataset_version` when the body names one); None: unchanged.
    metadata: Any = None
    trace_id: str | None = None
    observation_id: str | None = None
    created_at: datetime | None = None


def run_item_request(raw: bytes) -> RunItemRequest:
    body = parse_body(raw)
    metadata = body.get("metadata")
    version = body.get("datasetVersion")
    if version is not None:
        optional_time(version, "datasetVersion")
        if metadata is not None and not isinstance(metadata, dict):
            raise invalid("metadata must be an object when datasetVersion is given")
        metadata = {**(metadata or {}), "dataset_version": version}
    request = RunItemRequest(
        run_name=text(body.get("runName"), "runName"),
        dataset_item_id=text(body.get("datasetItemId"), "datasetItemId", max_length=ID_MAX_LENGTH),
        run_description=optional_text(
            body.get("runDescription"), "runDescription", max_length=None
        ),
        metadata=metadata,
        trace_id=optional_text(body.get("traceId"), "traceId") or None,
        observation_id=optional_text(body.get("observationId"), "observationId") or None,
        created_at=optional_time(body.get("createdAt"), "createdAt"),
    )
    if request.trace_id is None and request.observation_id is None:
        raise invalid("observationId or traceId must be provided")
    return request


async def active_item_dataset(conn: asyncpg.Connection, project_id: str, item_id: str) -> str:
    """The dataset of an item that may get run items: it must exist and be ACTIVE now."""
    dataset_id: str | None = await conn.fetchval(
        "SELECT dataset_id FROM dataset_items WHERE project_id = $1 AND id = $2"
        " AND valid_to IS NULL AND status = 'ACTIVE'",
        project_id,
        item_id,
    )
    if dataset_id is None:
        raise NotFound("Dataset item not found or not active")
    return dataset_id


async def upsert_run(
    conn: asyncpg.Connection,
    project_id: str,
    dataset_id: str,
    name: str,
    *,
    description: str | None = None,
    metadata: Any = None,
) -> asyncpg.Record:
    """The run of (dataset, name), created with the stable id when missing; a given description
    or metadata replaces the run's (None: unchanged)."""
    with nul_refused():
        row: asyncpg.Record = await conn.fetchrow(
            "INSERT INTO dataset_runs (project_id, id, dataset_id, name, description, metadata,"
            " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, now(), now())"
            " ON CONFLICT (project_id, dataset_id, name) DO UPDATE SET"
            " description = coalesce(EXCLUDED.description, dataset_runs.description),"
            " metadata = coalesce(EXCLUDED.metadata, dataset_runs.metadata), updated_at = now()"
            f" RETURNING {_RUN}",
            project_id,
            run_id(project_id, dataset_id, name),
            dataset_id,
            name,
            description,
            json_text(metadata),
        )
    return row


async def upsert_run_item(
    conn: asyncpg.Connection,
    project_id: str,
    dataset_run_id: str,
    dataset_item_id: str,
    trace_id: str,
    *,
    observation_id: str | None = None,
    created_at: datetime | None = None,
) -> asyncpg.Record:
    """The run item of (run, item, trace); a repeated call keeps the first observation id."""
    row: asyncpg.Record = await conn.fetchrow(
        "INSERT INTO dataset_run_items (project_id, id, dataset_run_id, dataset_item_id, trace_id,"
        " observation_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6,"
        " coalesce($7, now()), now())"
        " ON CONFLICT (project_id, dataset_run_id, dataset_item_id, trace_id) DO UPDATE SET"
        " observation_id = coalesce(dataset_run_items.observation_id, EXCLUDED.observation_id),"
        f" updated_at = now() RETURNING {_RUN_ITEM}",
        project_id,
        str(uuid.uuid4()),
        dataset_run_id,
        dataset_item_id,
        trace_id,
        observation_id,
        created_at,
    )
    return row


async def create_run_item(
    conn: asyncpg.Connection, project_id: str, request: RunItemRequest, trace_id: str
) -> bytes:
    """POST /dataset-run-items once the trace is known: the run is found or created by (the
    item's dataset, run name) and takes the request's description and metadata."""
    async with conn.transaction():
        dataset_id = await active_item_dataset(conn, project_id, request.dataset_item_id)
        try:
            run = await upsert_run(
                conn,
                project_id,
                dataset_id,
                request.run_name,
                description=request.run_description,
                metadata=request.metadata,
            )
            item = await upsert_run_item(
                conn,
                project_id,
                run["id"],
                request.dataset_item_id,
                trace_id,
                observation_id=request.observation_id,
                created_at=request.created_at,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            # The dataset (or the run) was deleted meanwhile.
            raise NotFound("Dataset item not found or not active") from exc
    return run_item_document(item, run["name"])


async def get_run(
    conn: asyncpg.Connection, project_id: str, dataset_id: str, name: str
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_RUN} FROM dataset_runs WHERE project_id = $1 AND dataset_id = $2 AND name = $3",
        project_id,
        dataset_id,
        name,
    )
    if row is None:
        raise NotFound(f"Dataset run {name} not found")
    return row


async def runs_page(
    conn: asyncpg.Connection, project_id: str, dataset_id: str, page_number: int, limit: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(
        f"SELECT {_RUN} FROM dataset_runs WHERE project_id = $1 AND dataset_id = $2"
        " ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
        project_id,
        dataset_id,
        limit,
        (page_number - 1) * limit,
    )
    total = await conn.fetchval(
        "SELECT count(*) FROM dataset_runs WHERE project_id = $1 AND dataset_id = $2",
        project_id,
        dataset_id,
    )
    return rows, total


async def run_names(conn: asyncpg.Connection, project_id: str, dataset_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT name FROM dataset_runs WHERE project_id = $1 AND dataset_id = $2"
        " ORDER BY created_at DESC, id",
        project_id,
        dataset_id,
    )
    return [row["name"] for row in rows]


async def delete_run(conn: asyncpg.Connection, project_id: str, dataset_id: str, name: str) -> None:
    """Deletes the run with its run items."""
    result = await conn.execute(
        "DELETE FROM dataset_runs WHERE project_id = $1 AND dataset_id = $2 AND name = $3",
        project_id,
        dataset_id,
        name,
    )
    if result.endswith(" 0"):
        raise NotFound(f"Dataset run {name} not found")


# Run items older than the project's retention are hidden, as the retention pass deletes them
# (services/evals/retention.py).
_RETAINED = "($3::timestamptz IS NULL OR created_at >= $3)"


async def run_items(conn: asyncpg.Connection, project_id: str, run: str) -> list[asyncpg.Record]:
    """Every run item of a run, newest first."""
    return await conn.fetch(
        f"SELECT {_RUN_ITEM} FROM dataset_run_items WHERE project_id = $1 AND dataset_run_id = $2"
        f" AND {_RETAINED} ORDER BY created_at DESC, id",
        project_id,
        run,
        read_cutoff(),
    )


async def run_items_page(
    conn: asyncpg.Connection, project_id: str, run: str, page_number: int, limit: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(
        f"SELECT {_RUN_ITEM} FROM dataset_run_items WHERE project_id = $1 AND dataset_run_id = $2"
        f" AND {_RETAINED} ORDER BY created_at DESC, id LIMIT $4 OFFSET $5",
        project_id,
        run,
        read_cutoff(),
        limit,
        (page_number - 1) * limit,
    )
    total = await conn.fetchval(
        "SELECT count(*) FROM dataset_run_items WHERE project_id = $1 AND dataset_run_id = $2"
        f" AND {_RETAINED}",
        project_id,
        run,
        read_cutoff(),
    )
    return rows, total


def run_document(row: asyncpg.Record, dataset_name: str, **extra: Any) -> bytes:
    """The public `DatasetRun` (`datasetRunItems` as `extra` for one run with its items)."""
    return orjson.dumps(
        {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "metadata": stored_json(row["metadata"]),
            "datasetId": row["dataset_id"],
            "datasetName": dataset_name,
            "createdAt": iso(row["created_at"]),
            "updatedAt": iso(row["updated_at"]),
            **extra,
        }
    )


def run_item_document(row: asyncpg.Record, run_name: str) -> bytes:
    return orjson.dumps(run_item_fields(row, run_name))


def run_item_fields(row: asyncpg.Record, run_name: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "datasetRunId": row["dataset_run_id"],
        "datasetRunName": run_name,
        "datasetItemId": row["dataset_item_id"],
        "traceId": row["trace_id"],
        "observationId": row["observation_id"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }
