"""What a blob-storage export writes: the exported tables and their columns (as stored in
ClickHouse, so a file reads back as the source rows), and the encoders that turn record batches
into JSONL, JSON, CSV or Parquet bytes a chunk at a time, so no file is ever held whole.

`event_ts` is the version of a row: an updated trace is exported again by a later run with a newer
`event_ts`, and a reader keeps the newest version of each id, as ClickHouse does."""

import csv
import io
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from services.query.entities import OBSERVATION

_TEXT = pa.string()
_TIME = pa.timestamp("ms", tz="UTC")
_COST = pa.decimal128(18, 12)
_TEXT_MAP = pa.map_(pa.string(), pa.string())


def _column(name: str, kind: pa.DataType, *, nullable: bool = False) -> pa.Field:
    return pa.field(name, kind, nullable=nullable)


@dataclass(frozen=True, slots=True)
class ExportTable:
    name: str  # the ClickHouse table, and the folder of its files
    schema: pa.Schema
    # Observation columns by Langfuse's export field groups (exportFieldGroups); other tables
    # are exported whole.
    groups: dict[str, str]

    def columns(self, field_groups: Sequence[str] | None) -> pa.Schema:
        """The columns exported with these field groups (None or empty: all)."""
        if not field_groups or not self.groups:
            return self.schema
        return pa.schema(
            [f for f in self.schema if self.groups.get(f.name, "core") in field_groups]
        )


TRACES = ExportTable(
    "traces",
    pa.schema(
        [
            _column("project_id", _TEXT),
            _column("id", _TEXT),
            _column("timestamp", _TIME),
            _column("name", _TEXT),
            _column("user_id", _TEXT, nullable=True),
            _column("session_id", _TEXT, nullable=True),
            _column("release", _TEXT, nullable=True),
            _column("version", _TEXT, nullable=True),
            _column("environment", _TEXT),
            _column("public", pa.bool_()),
            _column("bookmarked", pa.bool_()),
            _column("tags", pa.list_(pa.string())),
            _column("metadata", _TEXT_MAP),
            _column("input", _TEXT, nullable=True),
            _column("output", _TEXT, nullable=True),
            _column("created_at", _TIME),
            _column("updated_at", _TIME),
            _column("event_ts", _TIME),
        ]
    ),
    {},
)

OBSERVATIONS = ExportTable(
    "observations",
    pa.schema(
        [
            _column("project_id", _TEXT),
            _column("id", _TEXT),
            _column("trace_id", _TEXT),
            _column("parent_observation_id", _TEXT, nullable=True),
            _column("type", _TEXT),
            _column("name", _TEXT),
            _column("start_time", _TIME),
            _column("end_time", _TIME, nullable=True),
            _column("completion_start_time", _TIME, nullable=True),
            _column("environment", _TEXT),
            _column("level", _TEXT),
            _column("status_message", _TEXT, nullable=True),
            _column("version", _TEXT, nullable=True),
            _column("metadata", _TEXT_MAP),
            _column("input", _TEXT, nullable=True),
            _column("output", _TEXT, nullable=True),
            _column("provided_model_name", _TEXT, nullable=True),
            _column("internal_model_id", _TEXT, nullable=True),
            _column("model_parameters", _TEXT, nullable=True),
            _column("provided_usage_details", pa.map_(pa.string(), pa.uint64())),
            _column("usage_details", pa.map_(pa.string(), pa.uint64())),
            _column("provided_cost_details", pa.map_(pa.string(), _COST)),
            _column("cost_details", pa.map_(pa.string(), _COST)),
            _column("total_cost", _COST, nullable=True),
            _column("usage_pricing_tier_name", _TEXT, nullable=True),
            _column("prompt_id", _TEXT, nullable=True),
            _column("prompt_name", _TEXT, nullable=True),
            _column("prompt_version", pa.uint16(), nullable=True),
            _column("created_at", _TIME),
            _column("updated_at", _TIME),
            _column("event_ts", _TIME),
        ]
    ),
    # Langfuse's export field groups are the list documents' field groups (a column's group is
    # its field's, entities.py), and columns the API does not show are usage. Columns in none are
    # `core`. Langfuse's `metrics`, `tools` and `trace_context` have no stored counterpart in this
    # data model and are omitted, as Langfuse omits them too.
    {field.column: field.group for field in OBSERVATION.fields if field.group}
    | {"provided_usage_details": "usage", "provided_cost_details": "usage"},
)

SCORES = ExportTable(
    "scores",
    pa.schema(
        [
            _column("project_id", _TEXT),
            _column("id", _TEXT),
            _column("timestamp", _TIME),
            _column("trace_id", _TEXT, nullable=True),
            _column("observation_id", _TEXT, nullable=True),
            _column("session_id", _TEXT, nullable=True),
            _column("dataset_run_id", _TEXT, nullable=True),
            _column("environment", _TEXT),
            _column("name", _TEXT),
            _column("value", pa.float64()),
            _column("string_value", _TEXT, nullable=True),
            _column("data_type", _TEXT),
            _column("source", _TEXT),
            _column("comment", _TEXT, nullable=True),
            _column("metadata", _TEXT_MAP),
            _column("config_id", _TEXT, nullable=True),
            _column("queue_id", _TEXT, nullable=True),
            _column("author_user_id", _TEXT, nullable=True),
            _column("created_at", _TIME),
            _column("updated_at", _TIME),
            _column("event_ts", _TIME),
        ]
    ),
    {},
)

TABLES = (TRACES, OBSERVATIONS, SCORES)
FIELD_GROUPS = (
    "core", "basic", "time", "io", "metadata", "model", "usage", "prompt", "metrics", "tools",
    "trace_context",
)  # fmt: skip


class Encoder(Protocol):
    """A file's bytes, a record batch at a time: `encode` returns what is ready so far, `finish`
    the rest (a footer, a closing bracket)."""

    def encode(self, batch: pa.RecordBatch) -> bytes: ...

    def finish(self) -> bytes: ...


def extension(file_type: str, compressed: bool) -> str:
    base = {"JSONL": "jsonl", "JSON": "json", "CSV": "csv", "PARQUET": "parquet"}[file_type]
    return f"{base}.gz" if compressed and file_type != "PARQUET" else base


def encoder(file_type: str, compressed: bool, schema: pa.Schema) -> Encoder:
    """Parquet compresses its own pages (zstd); the text formats are gzipped when `compressed`."""
    if file_type == "PARQUET":
        return ParquetEncoder(schema)
    text = _TEXT_ENCODERS[file_type](schema)
    return GzipEncoder(text) if compressed else text


# ---- text formats: one JSON object per row, with times as ISO 8601 (UTC, milliseconds), costs
# as numbers and maps as objects; CSV holds maps and lists as JSON text.


def _time_text(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(kind: pa.DataType) -> Callable[[Any], Any]:
    """How one column's Python value (from Arrow) becomes a JSON value."""
    if pa.types.is_timestamp(kind):
        return lambda v: None if v is None else _time_text(v)
    if pa.types.is_decimal(kind):
        return lambda v: None if v is None else float(v)
    if pa.types.is_map(kind):
        item = _plain(kind.item_type)
        return lambda v: {key: item(value) for key, value in v or ()}
    return lambda v: v


def _documents(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    converters = [(f.name, _plain(f.type)) for f in batch.schema]
    columns = [(name, convert, batch.column(name).to_pylist()) for name, convert in converters]
    return [
        {name: convert(values[i]) for name, convert, values in columns}
        for i in range(batch.num_rows)
    ]


class JsonLinesEncoder:
    def __init__(self, schema: pa.Schema) -> None:
        del schema

    def encode(self, batch: pa.RecordBatch) -> bytes:
        return b"".join(orjson.dumps(d) + b"\n" for d in _documents(batch))

    def finish(self) -> bytes:
        return b""


class JsonArrayEncoder:
    def __init__(self, schema: pa.Schema) -> None:
        del schema
        self._started = False

    def encode(self, batch: pa.RecordBatch) -> bytes:
        parts = []
        for document in _documents(batch):
            parts.append(b"," if self._started else b"[")
            self._started = True
            parts.append(orjson.dumps(document))
        return b"".join(parts)

    def finish(self) -> bytes:
        return b"]" if self._started else b"[]"


class CsvEncoder:
    def __init__(self, schema: pa.Schema) -> None:
        self._names = schema.names
        self._header = True

    def encode(self, batch: pa.RecordBatch) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if self._header:
            writer.writerow(self._names)
            self._header = False
        for document in _documents(batch):
            writer.writerow([_csv_cell(document[name]) for name in self._names])
        return out.getvalue().encode()

    def finish(self) -> bytes:
        if not self._header:
            return b""
        self._header = False
        return (",".join(self._names) + "\n").encode()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class GzipEncoder:
    def __init__(self, inner: Encoder) -> None:
        self._inner = inner
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip container

    def encode(self, batch: pa.RecordBatch) -> bytes:
        return self._gzip.compress(self._inner.encode(batch))

    def finish(self) -> bytes:
        return self._gzip.compress(self._inner.finish()) + self._gzip.flush()


_TEXT_ENCODERS: dict[str, Callable[[pa.Schema], Encoder]] = {
    "JSONL": JsonLinesEncoder,
    "JSON": JsonArrayEncoder,
    "CSV": CsvEncoder,
}


# ---- Parquet: batches are gathered into row groups of about ROW_GROUP_BYTES (Arrow memory), so
# a file has few, large row groups while memory stays bounded.

ROW_GROUP_BYTES = 8 * 2**20


class _Sink:
    """The file-like object pyarrow writes to; what it wrote is taken away chunk by chunk."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        self._buffer += data
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self._buffer = bytes(self._buffer), bytearray()
        return data


class ParquetEncoder:
    def __init__(self, schema: pa.Schema) -> None:
        self._sink = _Sink()
        self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd")
        self._pending: list[pa.RecordBatch] = []
        self._pending_bytes = 0

    def encode(self, batch: pa.RecordBatch) -> bytes:
        self._pending.append(batch)
        self._pending_bytes += batch.nbytes
        if self._pending_bytes >= ROW_GROUP_BYTES:
            self._write_group()
        return self._sink.take()

    def finish(self) -> bytes:
        self._write_group()
        self._writer.close()
        return self._sink.take()

    def _write_group(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending))
        self._pending, self._pending_bytes = [], 0
        pa.default_memory_pool().release_unused()  # the allocator keeps freed pages otherwise
