"""The ClickHouse connection, embedded (chDB) or remote (clickhouse-driver, native protocol).

Both sides bind `{name:Type}` parameters server-side, so every statement is written once and runs
unchanged on either. Calls run in a worker thread (both clients block). A chDB session keeps query
parameters as per-connection state, so each session serves one call at a time; a few sessions on
the same data let reads run beside the writer's inserts and beside each other.

Inserts are columnar on both sides: an Arrow stream into chDB, the driver's columnar Native blocks
into a server. JSONEachRow text, which ClickHouse parsed back row by row, cost ~30 µs of CPU per
2 KiB observation; Arrow columns cost ~22 µs, most of it building the columns in Python.
"""

import asyncio
import itertools
import os
import queue
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import orjson
import pyarrow as pa

from libs.common.migrate import Migration


class ClickHouse(Protocol):
    async def execute(self, sql: str, params: dict[str, Any] | None = None) -> None: ...

    async def select(
        self, sql: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...

    async def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Rows of one table, every row with the same keys (the columns written)."""
        ...

    def batches(
        self, sql: str, params: dict[str, Any], schema: pa.Schema
    ) -> AsyncIterator[pa.RecordBatch]:
        """A SELECT's rows as record batches of `schema`, read as they are consumed (the blob
        export streams whole tables through it)."""
        ...

    def close(self) -> None: ...


class EmbeddedClickHouse:
    SESSIONS = 4
    # Decompressed blocks kept for reads of few rows (ClickHouse skips the cache for large
    # scans): a page of the newest traces or one trace otherwise decompresses whole blocks of
    # inputs and outputs again on every request.
    UNCOMPRESSED_CACHE_BYTES = 256 * 1024 * 1024

    def __init__(self, path: str) -> None:
        # chDB's allocator (jemalloc) keeps freed pages for seconds: a scan of large strings (the
        # blob export) churned through enough in that time to hold 100-250 MiB more. Return them
        # at once; set before the engine's first allocation, and only if the operator has not.
        os.environ.setdefault("JE_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
        from chdb import session

        engine = f"{path}?uncompressed_cache_size={self.UNCOMPRESSED_CACHE_BYTES}"
        self._all = [session.Session(engine) for _ in range(self.SESSIONS)]
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for each in self._all:
            each.query("SET use_uncompressed_cache = 1")
            self._idle.put(each)
        # Column types per table, for the Arrow schema of inserts; forgotten by any statement
        # (a migration may have changed them).
        self._types: dict[str, dict[str, str]] = {}

    def _run(self, sql: str, fmt: str, params: dict[str, Any] | None) -> bytes:
        text_params = {k: _param_text(v) for k, v in (params or {}).items()}
        chosen = self._idle.get()  # blocks this worker thread until a session is free
        try:
            result = chosen.query(sql, fmt, params=text_params)
        finally:
            self._idle.put(chosen)
        return bytes(result.bytes())

    async def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._types.clear()
        await asyncio.to_thread(self._run, sql, "CSV", params)

    async def select(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        raw = await asyncio.to_thread(self._run, sql, "JSONEachRow", params)
        return [orjson.loads(line) for line in raw.splitlines() if line]

    async def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0])
        types = self._types.get(table) or await self._column_types(table)
        sql = f"INSERT INTO {table} ({', '.join(columns)})"
        await asyncio.to_thread(self._insert, sql, rows, {c: types[c] for c in columns})

    def _insert(self, sql: str, rows: list[dict[str, Any]], types: dict[str, str]) -> None:
        # Off the event loop: building the columns takes milliseconds per thousand rows (and
        # pyarrow's first conversion in a process seconds).
        stream = arrow_stream(rows, types)
        chosen = self._idle.get()
        try:
            with chosen.send_insert(sql, "ArrowStream") as inserter:
                inserter.append(stream)
                inserter.finish()
        except RuntimeError as exc:
            # chDB wraps the engine's error ("Code: N. ..."), which the writer classifies.
            raise (exc.__cause__ or exc) from None
        finally:
            self._idle.put(chosen)

    async def _column_types(self, table: str) -> dict[str, str]:
        rows = await self.select(
            "SELECT name, type FROM system.columns"
            " WHERE database = currentDatabase() AND table = {table:String}",
            {"table": table},
        )
        self._types[table] = {row["name"]: row["type"] for row in rows}
        return self._types[table]

    async def batches(
        self, sql: str, params: dict[str, Any], schema: pa.Schema
    ) -> AsyncIterator[pa.RecordBatch]:
        text_params = {k: _param_text(v) for k, v in params.items()}
        chosen = await asyncio.to_thread(self._idle.get)  # one session for the whole stream
        stream = None
        try:
            stream = await asyncio.to_thread(chosen.send_query, sql, "Arrow", params=text_params)
            while (chunk := await asyncio.to_thread(stream.fetch)) is not None:
                for batch in pa.ipc.open_file(chunk.bytes()).read_all().to_batches():
                    yield batch.cast(schema)
        finally:
            if stream is not None:
                await asyncio.to_thread(stream.close)
            self._idle.put(chosen)

    def close(self) -> None:
        for each in self._all:
            each.close()


class RemoteClickHouse:
    def __init__(self, url: str) -> None:
        from clickhouse_driver import Client

        parts = urlsplit(url)
        self._settings: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "port": parts.port or 9000,
            "user": unquote(parts.username or "default"),
            "password": unquote(parts.password or ""),
            "database": parts.path.lstrip("/") or "default",
            "settings": {"server_side_params": True},
        }
        self._client = Client(**self._settings)
        self._lock = threading.Lock()

    def _run(self, sql: str, params: dict[str, Any] | None) -> tuple[list[Any], list[Any]]:
        with self._lock:
            rows, columns = self._client.execute(sql, params or {}, with_column_types=True)
        return rows, columns

    async def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        await asyncio.to_thread(self._run, sql, params)

    async def select(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        rows, columns = await asyncio.to_thread(self._run, sql, params)
        names = [name for name, _ in columns]
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        sql = f"INSERT INTO {table} ({', '.join(rows[0])}) VALUES"
        await asyncio.to_thread(self._insert, sql, rows)

    def _insert(self, sql: str, rows: list[dict[str, Any]]) -> None:
        columns = [[row.get(column) for row in rows] for column in rows[0]]
        with self._lock:
            self._client.execute(sql, columns, columnar=True)

    async def batches(
        self, sql: str, params: dict[str, Any], schema: pa.Schema
    ) -> AsyncIterator[pa.RecordBatch]:
        from clickhouse_driver import Client

        # A connection of its own: the shared one serves every other call, one at a time.
        client = Client(**self._settings)
        rows = client.execute_iter(sql, params, settings={"max_block_size": _STREAM_ROWS})
        try:
            while chunk := await asyncio.to_thread(list, itertools.islice(rows, _STREAM_ROWS)):
                yield pa.RecordBatch.from_pylist(
                    [dict(zip(schema.names, row, strict=True)) for row in chunk], schema=schema
                )
        finally:
            await asyncio.to_thread(client.disconnect)

    def close(self) -> None:
        self._client.disconnect()


_STREAM_ROWS = 1024  # rows per batch of a remote stream


def _param_text(value: Any) -> str:
    """A parameter in ClickHouse's text format, which chDB expects (the native driver escapes
    parameters itself): arrays as quoted, escaped literals; strings escaped as in TabSeparated,
    which is how ClickHouse reads a scalar parameter (`abc\\` would not parse, `a\\x41` would
    read as `aA`)."""
    if isinstance(value, list | tuple):
        return "[" + ",".join(_quoted(item) for item in value) + "]"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, str):
        return value.translate(_TSV_ESCAPES)
    return str(value)


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _quoted(item: Any) -> str:
    if isinstance(item, str):
        return "'" + item.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(item)


def arrow_stream(rows: list[dict[str, Any]], types: dict[str, str]) -> bytes:
    """The rows as one Arrow IPC stream, a column per key of `types` (column -> ClickHouse type)."""
    table = pa.table(
        {column: _arrow_column([row.get(column) for row in rows], kind)
         for column, kind in types.items()}
    )  # fmt: skip
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _arrow_column(values: list[Any], kind: str) -> pa.Array:
    if "Decimal" in kind:
        # As text, which ClickHouse parses exactly (a float64 column would be converted in
        # binary: 123456.123456789 would be stored as 123456.123456789008).
        values = [_decimal_text(value) for value in values]
    return pa.array(values, _arrow_type(kind))


def _decimal_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _decimal_text(item) for key, item in value.items()}
    return None if value is None else repr(value)


def _arrow_type(kind: str) -> pa.DataType:
    """The Arrow type a column of ClickHouse type `kind` is sent as; ClickHouse converts it."""
    for wrapper in ("Nullable(", "LowCardinality("):
        if kind.startswith(wrapper):
            return _arrow_type(kind[len(wrapper) : -1])
    if kind.startswith("Array("):
        return pa.list_(_arrow_type(kind[len("Array(") : -1]))
    if kind.startswith("Map("):
        key, value = _map_types(kind[len("Map(") : -1])
        return pa.map_(_arrow_type(key), _arrow_type(value))
    if kind.startswith("DateTime64("):
        return pa.timestamp("ms", tz="UTC")  # aware datetimes; floored to milliseconds
    if kind.startswith("Decimal"):
        return pa.string()
    return _ARROW_SCALARS[kind]


def _map_types(arguments: str) -> tuple[str, str]:
    """`K, V` of a Map type: split at the first top-level comma."""
    depth = 0
    for at, char in enumerate(arguments):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            return arguments[:at].strip(), arguments[at + 1 :].strip()
    raise ValueError(f"not a Map type: Map({arguments})")


_ARROW_SCALARS = {
    "String": pa.string(), "Bool": pa.bool_(), "Float32": pa.float32(), "Float64": pa.float64(),
    "Date": pa.date32(), "DateTime": pa.timestamp("s", tz="UTC"),
    "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(), "UInt64": pa.uint64(),
    "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(), "Int64": pa.int64(),
}  # fmt: skip


def open_clickhouse(url: str) -> ClickHouse:
    if url.startswith("chdb://"):
        return EmbeddedClickHouse(url.removeprefix("chdb://"))
    if url.startswith("clickhouse://"):
        return RemoteClickHouse(url)
    raise ValueError(f"unsupported ClickHouse URL scheme: {url!r}")


class ClickHouseTarget:
    """Migration target: statements run one by one; applied versions in `schema_migrations`."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse

    async def applied(self) -> dict[int, str]:
        await self._ch.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String,"
            " checksum String, applied_at DateTime64(3) DEFAULT now64(3))"
            " ENGINE = ReplacingMergeTree ORDER BY version"
        )
        rows = await self._ch.select("SELECT version, checksum FROM schema_migrations FINAL")
        return {int(row["version"]): str(row["checksum"]) for row in rows}

    async def apply(self, migration: Migration) -> None:
        for statement in migration.statements():
            await self._ch.execute(statement)
        await self._ch.execute(
            "INSERT INTO schema_migrations (version, name, checksum)"
            " VALUES ({version:UInt32}, {name:String}, {checksum:String})",
            {"version": migration.version, "name": migration.name, "checksum": migration.checksum},
        )
