"""Dataset items, versioned by time, and the public `DatasetItem` document.

Every change closes the item's current row (`valid_to`) and inserts its new state from the same
instant (`valid_from`); a deletion only closes it. So the items of a dataset at instant t are the
rows with valid_from <= t < valid_to (or no valid_to): a deleted item is absent after its
deletion, an item archived later is ACTIVE before. Instants come from PostgreSQL's clock at
millisecond precision, the precision the API prints, and each version of an item starts at least
1 ms after the one before, so a printed `updatedAt` read back as `version` finds that very row.

Ids are project-unique: an id that names an item of another dataset is refused (Langfuse's 404).
An upsert's null or absent fields leave the item's values as they are (the Python SDKs archive an
item by sending input, expectedOutput and metadata as null). Lists are ordered as Langfuse's,
newest first (createdAt desc, id), and every version keeps the item's first createdAt, so an item
keeps its place across versions. Pages pick their ids on an index alone, then read those rows."""

import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from libs.common.errors import NotFound
from libs.common.json_bodies import parse_body
from services.evals import datasets
from services.evals.fields import (
    ID_MAX_LENGTH,
    invalid,
    iso,
    json_text,
    nul_refused,
    optional_text,
    stored_json,
    text,
)
from services.evals.schemas import ItemSchemas

STATUSES = ("ACTIVE", "ARCHIVED")
# Every ANCHOR_EVERY-th row of a list is remembered (PositionCache): deep pages seek to it.
ANCHOR_EVERY = 1000
_VALUES = (
    "status, input::text AS input, expected_output::text AS expected_output,"
    " metadata::text AS metadata, source_trace_id, source_observation_id"
)
# Columns of a document: an item row `i` joined with its dataset `d`.
_DOCUMENT = (
    "i.id, i.status, i.input::text AS input, i.expected_output::text AS expected_output,"
    " i.metadata::text AS metadata, i.source_trace_id, i.source_observation_id, i.dataset_id,"
    " d.name AS dataset_name, i.created_at, i.valid_from"
)
# What an insert returns for the document (the dataset's name is known already).
_RETURNED = (
    "id, status, input::text AS input, expected_output::text AS expected_output,"
    " metadata::text AS metadata, source_trace_id, source_observation_id, dataset_id,"
    " created_at, valid_from"
)
# The JSON fields of a body and their columns.
_JSON_FIELDS = {"input": "input", "expectedOutput": "expected_output", "metadata": "metadata"}
_TEXT_FIELDS = {"sourceTraceId": "source_trace_id", "sourceObservationId": "source_observation_id"}


@dataclass(frozen=True, slots=True)
class ItemChange:
    """An upsert body (`CreateDatasetItemRequest`); None leaves a value as it is (a new item
    starts ACTIVE with the others null)."""

    dataset_name: str
    item_id: str | None
    status: str | None
    values: dict[str, Any]  # column → new value, only the fields the body sets


@dataclass(frozen=True, slots=True)
class ItemQuery:
    dataset_id: str | None = None
    source_trace_id: str | None = None
    source_observation_id: str | None = None
    # The items as they were at this instant; None: as they are.
    version: datetime | None = None
    # The named dataset's items revision: the list's positions are kept under it.
    dataset_revision: int | None = None


@dataclass(frozen=True, slots=True)
class Positions:
    """Where a list's rows are: its total, and the key (created_at, id) of every `every`-th row,
    so a page seeks to the anchor before it and skips fewer than `every` index entries."""

    total: int
    every: int
    anchors: tuple[tuple[datetime, str], ...]

    def anchor(self, offset: int) -> tuple[int, tuple[datetime, str]] | None:
        """The position and key of the last anchor at or before `offset` (None: the start)."""
        index = min(offset // self.every, len(self.anchors) - 1)
        return (index * self.every, self.anchors[index]) if index >= 1 else None


class PositionCache:
    """Positions of item lists by query, the dataset's items revision included: a dataset is
    counted and its anchors found once per revision (paging through it, as the SDKs do, costs
    one scan), and a write bumps the revision, so stale positions are never used. Lists that
    name no dataset have no revision and are counted every time. The oldest entries go first."""

    def __init__(self, size: int = 10_000, anchor_every: int = ANCHOR_EVERY) -> None:
        self._size = size
        self.anchor_every = anchor_every
        self._positions: OrderedDict[tuple[str, ItemQuery], Positions] = OrderedDict()

    def get(self, project_id: str, query: ItemQuery) -> Positions | None:
        return self._positions.get((project_id, query))

    def put(self, project_id: str, query: ItemQuery, positions: Positions) -> None:
        self._positions[(project_id, query)] = positions
        while len(self._positions) > self._size:
            self._positions.popitem(last=False)


def item_change(raw: bytes) -> ItemChange:
    body = parse_body(raw)
    status = body.get("status")
    if status is not None and status not in STATUSES:
        raise invalid("status must be ACTIVE or ARCHIVED")
    values: dict[str, Any] = {}
    for field, column in _JSON_FIELDS.items():
        if body.get(field) is not None:
            values[column] = body[field]
    for field, column in _TEXT_FIELDS.items():
        if body.get(field) is not None:
            values[column] = optional_text(body[field], field)
    return ItemChange(
        dataset_name=text(body.get("datasetName"), "datasetName"),
        item_id=item_id(body["id"]) if body.get("id") is not None else None,
        status=status,
        values=values,
    )


def item_id(value: Any) -> str:
    return text(value, "id", max_length=ID_MAX_LENGTH)


async def upsert(
    conn: asyncpg.Connection, project_id: str, change: ItemChange
) -> Mapping[str, Any]:
    dataset = await datasets.get(conn, project_id, change.dataset_name)
    new_id = change.item_id or str(uuid.uuid4())
    async with conn.transaction():
        current = None
        if change.item_id is not None:
            # Writers of one item take turns: each closes the row the previous one inserted.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", project_id, new_id
            )
        # The schemas as of the lock: a schema change waits for this write or this for it.
        schemas = await _changing(conn, dataset)
        if change.item_id is not None:
            current = await conn.fetchrow(
                f"SELECT dataset_id, valid_from, created_at, {_VALUES} FROM dataset_items"
                " WHERE project_id = $1 AND id = $2 AND valid_to IS NULL",
                project_id,
                new_id,
            )
        if current is not None and current["dataset_id"] != dataset["id"]:
            raise NotFound(
                f"The dataset item with id {new_id} already exists in a dataset other than"
                f" {dataset['name']}"
            )
        merged = _merged(current, change)
        if not schemas.empty:
            schemas.check(merged["input"], merged["expected_output"])
        if current is not None and _same(merged, _stored(current)):
            return await get(conn, project_id, new_id)  # nothing changes: no new version
        instant = await conn.fetchval(
            "SELECT greatest(date_trunc('milliseconds', clock_timestamp()),"
            " $1::timestamptz + interval '1 millisecond')",
            current["valid_from"] if current is not None else None,
        )
        if current is not None:
            await conn.execute(
                "UPDATE dataset_items SET valid_to = $3"
                " WHERE project_id = $1 AND id = $2 AND valid_to IS NULL",
                project_id,
                new_id,
                instant,
            )
        with nul_refused():
            row = await conn.fetchrow(
                "INSERT INTO dataset_items (project_id, id, valid_from, dataset_id, status, input,"
                " expected_output, metadata, source_trace_id, source_observation_id, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11)"
                f" RETURNING {_RETURNED}",
                project_id,
                new_id,
                instant,
                dataset["id"],
                merged["status"],
                json_text(merged["input"]),
                json_text(merged["expected_output"]),
                json_text(merged["metadata"]),
                merged["source_trace_id"],
                merged["source_observation_id"],
                current["created_at"] if current is not None else instant,
            )
    return {**row, "dataset_name": dataset["name"]}


async def get(
    conn: asyncpg.Connection | asyncpg.Pool, project_id: str, item: str
) -> asyncpg.Record:
    """The item as it is now (any status)."""
    row = await conn.fetchrow(
        f"SELECT {_DOCUMENT} FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id"
        " WHERE i.project_id = $1 AND i.id = $2 AND i.valid_to IS NULL",
        project_id,
        item,
    )
    if row is None:
        raise NotFound(f"Dataset item {item} not found")
    return row


async def page(
    conn: asyncpg.Connection,
    project_id: str,
    query: ItemQuery,
    page_number: int,
    limit: int,
    positions: PositionCache,
) -> tuple[list[asyncpg.Record], int]:
    where, args = _where(project_id, query)
    offset = (page_number - 1) * limit
    known = positions.get(project_id, query)
    if known is None and query.dataset_revision is not None:
        known = await _positions(conn, where, args, positions.anchor_every)
        positions.put(project_id, query, known)
    if known is None:
        total = await conn.fetchval(f"SELECT count(*) FROM dataset_items WHERE {where}", *args)
    else:
        total = known.total
        anchored = known.anchor(offset)
        if anchored is not None:
            position, (created_at, item) = anchored
            args += [created_at, item]
            n = len(args)
            where += f" AND created_at <= ${n - 1} AND (created_at < ${n - 1} OR id >= ${n})"
            offset -= position
    if offset >= total:
        return [], total
    # The page's ids come from an index alone (offsets skip index entries, not rows); then only
    # those rows are read. At a version the row is (id, valid_from), now it is the current one.
    if query.version is None:
        picked, joined = "id, created_at", "i.id = p.id AND i.valid_to IS NULL"
    else:
        picked, joined = "id, valid_from, created_at", "i.id = p.id AND i.valid_from = p.valid_from"
    # Limit and offset are written into the statement (checked integers): with parameters there,
    # a generic plan would not know a page is small and could join the whole table.
    rows = await conn.fetch(
        f"WITH p AS (SELECT {picked} FROM dataset_items WHERE {where}"
        f" ORDER BY created_at DESC, id LIMIT {limit:d} OFFSET {offset:d})"
        f" SELECT {_DOCUMENT} FROM p"
        f" JOIN dataset_items i ON i.project_id = $1 AND {joined}"
        " JOIN datasets d ON d.id = i.dataset_id"
        " ORDER BY p.created_at DESC, p.id",
        *args,
    )
    return rows, total


async def _positions(
    conn: asyncpg.Connection, where: str, args: list[Any], every: int
) -> Positions:
    """One scan of the list's index entries: the total and every `every`-th key."""
    row = await conn.fetchrow(
        "SELECT count(*) AS total,"
        f" array_agg(created_at ORDER BY n) FILTER (WHERE n % {every:d} = 0) AS times,"
        f" array_agg(id ORDER BY n) FILTER (WHERE n % {every:d} = 0) AS ids"
        " FROM (SELECT created_at, id, row_number() OVER (ORDER BY created_at DESC, id) - 1 AS n"
        f" FROM dataset_items WHERE {where}) ranked",
        *args,
    )
    anchors = tuple(zip(row["times"] or (), row["ids"] or (), strict=True))
    return Positions(row["total"], every, anchors)


async def active(
    conn: asyncpg.Connection, project_id: str, dataset_id: str
) -> list[asyncpg.Record]:
    """Every active item of a dataset as it is now (Langfuse's legacy `GET /datasets/{name}`)."""
    return await conn.fetch(
        f"SELECT {_DOCUMENT} FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id"
        " WHERE i.project_id = $1 AND i.dataset_id = $2 AND i.valid_to IS NULL"
        " AND i.status = 'ACTIVE' ORDER BY i.created_at DESC, i.id",
        project_id,
        dataset_id,
    )


async def current_ids(conn: asyncpg.Connection, project_id: str, dataset_id: str) -> list[str]:
    """The ids of a dataset's items as they are now (Langfuse's legacy `GET /datasets`)."""
    rows = await conn.fetch(
        "SELECT id FROM dataset_items WHERE project_id = $1 AND dataset_id = $2"
        " AND valid_to IS NULL ORDER BY created_at DESC, id",
        project_id,
        dataset_id,
    )
    return [row["id"] for row in rows]


async def delete(conn: asyncpg.Connection, project_id: str, item: str) -> None:
    """Ends the item now (reads at earlier versions still see it) and deletes its run items."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", project_id, item
        )
        dataset = await conn.fetchrow(
            "SELECT d.id, d.name FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id"
            " WHERE i.project_id = $1 AND i.id = $2 AND i.valid_to IS NULL",
            project_id,
            item,
        )
        if dataset is None:
            raise NotFound(f"Dataset item {item} not found")
        await _changing(conn, dataset)
        await conn.execute(
            "UPDATE dataset_items SET valid_to = greatest(date_trunc('milliseconds',"
            " clock_timestamp()), valid_from + interval '1 millisecond')"
            " WHERE project_id = $1 AND id = $2 AND valid_to IS NULL",
            project_id,
            item,
        )
        await conn.execute(
            "DELETE FROM dataset_run_items WHERE project_id = $1 AND dataset_item_id = $2",
            project_id,
            item,
        )


def document(row: Mapping[str, Any]) -> bytes:
    """The public `DatasetItem`. `version` is when this state became current; media references
    are not resolved here, so `mediaReferences` (a key the Python SDK requires) is empty."""
    return orjson.dumps(
        {
            "id": row["id"],
            "status": row["status"],
            "input": stored_json(row["input"]),
            "expectedOutput": stored_json(row["expected_output"]),
            "metadata": stored_json(row["metadata"]),
            "sourceTraceId": row["source_trace_id"],
            "sourceObservationId": row["source_observation_id"],
            "datasetId": row["dataset_id"],
            "datasetName": row["dataset_name"],
            "createdAt": iso(row["created_at"]),
            "updatedAt": iso(row["valid_from"]),
            "version": iso(row["valid_from"]),
            "mediaReferences": [],
        }
    )


async def _changing(conn: asyncpg.Connection, dataset: asyncpg.Record) -> ItemSchemas:
    """Bumps the dataset's items revision at the start of an item write and answers its schemas:
    the row stays locked until the commit, taken before any item row, in the order a dataset's
    deletion takes them (so the two never deadlock). A dataset deleted meanwhile is a 404."""
    bumped = await conn.fetchrow(
        "UPDATE datasets SET items_revision = items_revision + 1 WHERE id = $1"
        " RETURNING input_schema::text AS input_schema,"
        " expected_output_schema::text AS expected_output_schema",
        dataset["id"],
    )
    if bumped is None:
        raise NotFound(f"Dataset {dataset['name']} not found")
    return ItemSchemas.of(bumped["input_schema"], bumped["expected_output_schema"])


def _merged(current: asyncpg.Record | None, change: ItemChange) -> dict[str, Any]:
    """The item's values after the change (column → value)."""
    if current is not None:
        merged = _stored(current)
    else:
        merged = {"status": "ACTIVE", **dict.fromkeys(_JSON_FIELDS.values())}
        merged.update(dict.fromkeys(_TEXT_FIELDS.values()))
    if change.status is not None:
        merged["status"] = change.status
    merged.update(change.values)
    return merged


def _stored(row: asyncpg.Record) -> dict[str, Any]:
    values = {column: _value(row[column]) for column in _JSON_FIELDS.values()}
    values.update({column: row[column] for column in ("status", *_TEXT_FIELDS.values())})
    return values


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal values, key order aside (jsonb keeps its own), `true` and `1` apart."""
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS
    )


def _value(stored: str | None) -> Any:
    return None if stored is None else orjson.loads(stored)


def _where(project_id: str, query: ItemQuery) -> tuple[str, list[Any]]:
    conditions: list[str] = ["project_id = $1"]
    args: list[Any] = [project_id]
    for column, value in (
        ("dataset_id", query.dataset_id),
        ("source_trace_id", query.source_trace_id),
        ("source_observation_id", query.source_observation_id),
    ):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    if query.version is None:
        conditions.append("valid_to IS NULL")
    else:
        args.append(query.version)
        n = len(args)
        # An item's first version starts at its creation: the bound on created_at lets the index
        # skip the items created after the version.
        conditions.append(
            f"created_at <= ${n} AND valid_from <= ${n} AND (valid_to IS NULL OR valid_to > ${n})"
        )
    return " AND ".join(conditions), args
