"""The blob-storage exports in the query service's PostgreSQL: each project's integration (its
target, format and schedule, the secret sealed) and each run of it (window, status, rows).

Only one exporter runs a project's export at a time, whichever replica it is in: `locked` holds a
session advisory lock on a connection of its own for the length of the run, and PostgreSQL
releases it if that process dies, so a crashed run is picked up by the next exporter."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from libs.common.secret_box import SecretBox


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSettings:
    """What a client configures (checked by services/query/export_api.py)."""

    type: str
    bucket_name: str
    endpoint: str | None
    region: str
    access_key_id: str
    prefix: str
    force_path_style: bool
    export_frequency: str
    file_type: str
    compressed: bool
    export_mode: str
    export_start_date: datetime | None
    export_source: str
    export_field_groups: list[str] | None
    enabled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Integration:
    project_id: str
    settings: ExportSettings
    sealed_secret: bytes
    last_sync_at: datetime | None
    next_sync_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime
    updated_at: datetime
    running: bool  # a run is recorded as running (in progress, or interrupted and due again)


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    project_id: str
    window_start: datetime | None  # exclusive; None: from the beginning
    window_end: datetime  # inclusive
    status: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    rows: int | None
    objects: list[str] | None
    error: str | None


_SETTINGS = [f.name for f in fields(ExportSettings)]
_SELECT = (
    "SELECT e.*, EXISTS (SELECT 1 FROM blob_storage_export_runs r"
    " WHERE r.project_id = e.project_id AND r.status = 'running') AS running"
    " FROM blob_storage_exports e"
)
_RUN_COLUMNS = ", ".join(f.name for f in fields(Run))


class ExportStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, project_id: str) -> Integration | None:
        row = await self._pool.fetchrow(f"{_SELECT} WHERE e.project_id = $1", project_id)
        return None if row is None else _integration(row)

    async def upsert(
        self, project_id: str, settings: ExportSettings, sealed_secret: bytes
    ) -> Integration:
        """Creates the integration (due at once) or replaces its settings; the watermark and the
        schedule of an existing one are kept."""
        values = [getattr(settings, name) for name in _SETTINGS]
        columns = ", ".join(_SETTINGS)
        placeholders = ", ".join(f"${i}" for i in range(3, len(_SETTINGS) + 3))
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _SETTINGS)
        await self._pool.execute(
            f"INSERT INTO blob_storage_exports (project_id, secret_access_key, {columns},"
            f" next_sync_at) VALUES ($1, $2, {placeholders}, now())"
            f" ON CONFLICT (project_id) DO UPDATE SET {updates},"
            " secret_access_key = EXCLUDED.secret_access_key, updated_at = now()",
            project_id,
            sealed_secret,
            *values,
        )
        integration = await self.get(project_id)
        assert integration is not None
        return integration

    async def reseal_all(self, box: SecretBox) -> int:
        """Re-seals every secret not sealed with the box's current key (key rotation, with the
        old key as the box's previous one); the count re-sealed."""
        count = 0
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT project_id, secret_access_key FROM blob_storage_exports FOR UPDATE"
            )
            for row in rows:
                sealed, project_id = row["secret_access_key"], row["project_id"]
                if box.is_current(sealed):
                    continue
                await conn.execute(
                    "UPDATE blob_storage_exports SET secret_access_key = $2 WHERE project_id = $1",
                    project_id,
                    box.seal(box.open(sealed, project_id), project_id),
                )
                count += 1
        return count

    async def delete(self, project_id: str) -> bool:
        """The integration and its runs (ON DELETE CASCADE); whether there was one."""
        status = await self._pool.execute(
            "DELETE FROM blob_storage_exports WHERE project_id = $1", project_id
        )
        return status != "DELETE 0"

    async def due(self) -> list[str]:
        """Enabled integrations whose next run is due, or whose run was interrupted."""
        rows = await self._pool.fetch(
            "SELECT project_id FROM blob_storage_exports e WHERE enabled AND"
            " (next_sync_at <= now() OR EXISTS (SELECT 1 FROM blob_storage_export_runs r"
            "  WHERE r.project_id = e.project_id AND r.status = 'running'))"
            " ORDER BY next_sync_at"
        )
        return [row["project_id"] for row in rows]

    async def trigger(self, project_id: str | None) -> dict[str, datetime]:
        """Makes enabled integrations (all, or one project's) due now; returns when, per project."""
        rows = await self._pool.fetch(
            "UPDATE blob_storage_exports SET next_sync_at = now()"
            " WHERE enabled AND ($1::text IS NULL OR project_id = $1)"
            " RETURNING project_id, next_sync_at",
            project_id,
        )
        return {row["project_id"]: row["next_sync_at"] for row in rows}

    @asynccontextmanager
    async def locked(self, project_id: str) -> AsyncIterator[bool]:
        """Whether this process got the project's export lock, held until the block ends."""
        key = f"blob-export:{project_id}"
        async with self._pool.acquire() as connection:
            held = await connection.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key
            )
            try:
                yield bool(held)
            finally:
                if held:
                    await connection.execute(
                        "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key
                    )

    async def interrupted_run(self, project_id: str) -> Run | None:
        """A run left 'running' by an exporter that died (call with the lock held)."""
        row = await self._pool.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM blob_storage_export_runs"
            " WHERE project_id = $1 AND status = 'running' ORDER BY id DESC LIMIT 1",
            project_id,
        )
        return None if row is None else Run(**row)

    async def resume_run(self, run: Run) -> Run:
        row = await self._pool.fetchrow(
            "UPDATE blob_storage_export_runs SET attempts = attempts + 1, started_at = now()"
            f" WHERE id = $1 RETURNING {_RUN_COLUMNS}",
            run.id,
        )
        return Run(**row)

    async def start_run(
        self, project_id: str, window_start: datetime | None, window_end: datetime
    ) -> Run:
        row = await self._pool.fetchrow(
            "INSERT INTO blob_storage_export_runs (project_id, window_start, window_end, status)"
            f" VALUES ($1, $2, $3, 'running') RETURNING {_RUN_COLUMNS}",
            project_id,
            window_start,
            window_end,
        )
        return Run(**row)

    async def finish_run(
        self, run: Run, rows: int, objects: list[str], next_sync_at: datetime
    ) -> None:
        """The run's files are all written: its window end becomes the watermark."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE blob_storage_export_runs SET status = 'succeeded', finished_at = now(),"
                " rows = $2, objects = $3, error = NULL WHERE id = $1",
                run.id,
                rows,
                objects,
            )
            await connection.execute(
                "UPDATE blob_storage_exports SET last_sync_at = $2, next_sync_at = $3,"
                " last_error = NULL, last_error_at = NULL WHERE project_id = $1",
                run.project_id,
                run.window_end,
                next_sync_at,
            )

    async def fail_run(self, run: Run, error: str, next_sync_at: datetime) -> None:
        """The watermark stays; the next run exports this window again (a new window end)."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE blob_storage_export_runs SET status = 'failed', finished_at = now(),"
                " error = $2 WHERE id = $1",
                run.id,
                error,
            )
            await connection.execute(
                "UPDATE blob_storage_exports SET next_sync_at = $2, last_error = $3,"
                " last_error_at = now() WHERE project_id = $1",
                run.project_id,
                next_sync_at,
                error,
            )

    async def up_to_date(self, project_id: str, next_sync_at: datetime) -> None:
        """Nothing new to export yet: only the schedule moves."""
        await self._pool.execute(
            "UPDATE blob_storage_exports SET next_sync_at = $2 WHERE project_id = $1",
            project_id,
            next_sync_at,
        )

    async def runs(self, project_id: str, limit: int = 1) -> list[Run]:
        rows = await self._pool.fetch(
            f"SELECT {_RUN_COLUMNS} FROM blob_storage_export_runs WHERE project_id = $1"
            " ORDER BY id DESC LIMIT $2",
            project_id,
            limit,
        )
        return [Run(**row) for row in rows]


def _integration(row: asyncpg.Record) -> Integration:
    values: dict[str, Any] = dict(row)
    settings = ExportSettings(**{name: values[name] for name in _SETTINGS})
    return Integration(
        project_id=values["project_id"],
        settings=settings,
        sealed_secret=values["secret_access_key"],
        last_sync_at=values["last_sync_at"],
        next_sync_at=values["next_sync_at"],
        last_error=values["last_error"],
        last_error_at=values["last_error_at"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        running=values["running"],
    )
