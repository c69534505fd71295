"""The ClickHouse connection, embedded (chDB) or remote (clickhouse-driver, native protocol).

Both sides bind `{name:Type}` parameters server-side, so every statement is written once and runs
unchanged on either. Calls run in a worker thread (both clients block). A chDB session keeps query
parameters as per-connection state, so each session serves one call at a time; a few sessions on
the same data let reads run beside the writer's inserts and beside each other.
"""

import asyncio
import queue
import threading
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import orjson

from libs.common.migrate import Migration


class ClickHouse(Protocol):
    async def execute(self, sql: str, params: dict[str, Any] | None = None) -> None: ...

    async def select(
        self, sql: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...

    async def insert(self, table: str, rows: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class EmbeddedClickHouse:
    SESSIONS = 4

    def __init__(self, path: str) -> None:
        from chdb import session

        self._all = [session.Session(path) for _ in range(self.SESSIONS)]
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for each in self._all:
            self._idle.put(each)

    def _run(self, sql: str, fmt: str, params: dict[str, Any] | None) -> bytes:
        text_params = {k: _param_text(v) for k, v in (params or {}).items()}
        chosen = self._idle.get()  # blocks this worker thread until a session is free
        try:
            result = chosen.query(sql, fmt, params=text_params)
        finally:
            self._idle.put(chosen)
        return bytes(result.bytes())

    async def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        await asyncio.to_thread(self._run, sql, "CSV", params)

    async def select(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        raw = await asyncio.to_thread(self._run, sql, "JSONEachRow", params)
        return [orjson.loads(line) for line in raw.splitlines() if line]

    async def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        # orjson writes datetimes as RFC 3339 (fast, in C); best_effort parsing reads them.
        lines = b"\n".join(orjson.dumps(row) for row in rows)
        sql = (
            f"INSERT INTO {table} SETTINGS date_time_input_format = 'best_effort'"
            " FORMAT JSONEachRow\n" + lines.decode()
        )
        await asyncio.to_thread(self._run, sql, "CSV", None)

    def close(self) -> None:
        for each in self._all:
            each.close()


class RemoteClickHouse:
    def __init__(self, url: str) -> None:
        from clickhouse_driver import Client

        parts = urlsplit(url)
        self._client = Client(
            host=parts.hostname or "localhost",
            port=parts.port or 9000,
            user=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or "default",
            settings={"server_side_params": True},
        )
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
        with self._lock:
            self._client.execute(sql, rows)

    def close(self) -> None:
        self._client.disconnect()


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
