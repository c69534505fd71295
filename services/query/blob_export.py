"""The blob-storage exporter: a loop in every query replica that exports each due project's
traces, observations and scores to the project's own bucket (services/query/export_api.py keeps
the settings).

A run exports the rows whose current version was written in a window (watermark, now - lag] of
`event_ts` (the writer's clock; the lag covers inserts still on their way), one file per table
at `{prefix}{project}/{table}/{window end}.{ext}`. Rows are streamed: ClickHouse batches go
through an encoder into multipart-upload parts, so memory holds a batch, a row group and a part,
never a table. The watermark moves to the window's end only once all three files are complete,
in the same transaction that records the run as succeeded. A run interrupted by a crash stays
recorded as running with its window; the next exporter to take the project's lock runs that
window again and writes the same keys, replacing whatever the first attempt left. So every row
version is in exactly one window's files, and an update of a row is exported again (newer
`event_ts`) by a later run. Deletions are not exported."""

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pyarrow as pa
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from libs.common.secret_box import SecretBox, SecretKeyError
from services.query.clickhouse import ClickHouse
from services.query.config import QueryConfig
from services.query.export_files import TABLES, ExportTable, encoder, extension
from services.query.export_store import ExportSettings, ExportStore, Integration, Run
from services.query.export_targets import (
    Network,
    ObjectUpload,
    Target,
    TargetError,
    describe,
    s3_client,
)

log = structlog.get_logger()

POLL_SECONDS = 5.0
_CLI_WAIT_SECONDS = 600.0
FREQUENCIES = {
    "every_20_minutes": timedelta(minutes=20),
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
}
_RETRY_AFTER = timedelta(minutes=10)  # at most; sooner for integrations that run more often
# One reading thread and small blocks: a batch of observations with their input and output is a
# few MB, and chDB's memory stays flat. The scan stays out of the decompressed-block cache the
# reads keep (it would only evict their blocks and grow the process). A row's versions never span
# partitions (months of an immutable time), so FINAL need not merge across them.
_READ_SETTINGS = (
    "SETTINGS max_threads = 1, max_block_size = 1024, max_read_buffer_size = 131072,"
    " use_uncompressed_cache = 0, do_not_merge_across_partitions_select_final = 1,"
    " output_format_arrow_string_as_string = 1"
)


def target_of(
    settings: ExportSettings, secret: str, allowed_networks: tuple[Network, ...]
) -> Target:
    """Where an integration's files go (also probed before its settings are saved)."""
    return Target(
        endpoint=settings.endpoint,
        region=settings.region,
        bucket=settings.bucket_name,
        access_key_id=settings.access_key_id,
        secret_access_key=secret,
        force_path_style=settings.force_path_style,
        allowed_networks=allowed_networks,
    )


def object_key(integration: Integration, table: str, window_end: datetime) -> str:
    settings = integration.settings
    stamp = window_end.astimezone(UTC).strftime("%Y-%m-%d_%H-%M-%S")
    suffix = extension(settings.file_type, settings.compressed)
    return f"{settings.prefix}{integration.project_id}/{table}/{stamp}.{suffix}"


def select_sql(table: ExportTable, schema: pa.Schema, *, bounded_below: bool) -> str:
    where = "project_id = {project_id:String} AND event_ts <= {until:DateTime64(3, 'UTC')}"
    if bounded_below:
        where += " AND event_ts > {since:DateTime64(3, 'UTC')}"
    columns = ", ".join(schema.names)
    return f"SELECT {columns} FROM {table.name} FINAL WHERE {where} {_READ_SETTINGS}"


class BlobExporter:
    def __init__(
        self,
        store: ExportStore,
        clickhouse: ClickHouse,
        box: SecretBox | None,
        *,
        lag: timedelta,
        allowed_networks: tuple[Network, ...] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._allowed_networks = allowed_networks
        self._clickhouse = clickhouse
        self._box = box
        self._lag = lag
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Every POLL_SECONDS, the due projects one after the other, until `stop`."""
        while not stop.is_set():
            try:
                await self.run_due()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("blob_export_poll_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)

    async def run_due(self) -> None:
        for project_id in await self._store.due():
            await self.export_project(project_id)

    async def export_project(self, project_id: str) -> Run | None:
        """Runs the project's due (or interrupted) export unless another exporter holds it;
        returns the run, or None when there was nothing to run here."""
        async with self._store.locked(project_id) as held:
            if not held:
                return None
            integration = await self._store.get(project_id)
            if integration is None or not integration.settings.enabled:
                return None
            now = self._clock()
            run = await self._store.interrupted_run(project_id)
            if run is not None:
                log.info("blob_export_resumed", project_id=project_id, run_id=run.id)
                run = await self._store.resume_run(run)
            else:
                if integration.next_sync_at is not None and integration.next_sync_at > now:
                    return None  # another exporter has just run it
                run = await self._new_run(integration, now)
                if run is None:
                    return None
            return await self._execute(integration, run)

    async def _new_run(self, integration: Integration, now: datetime) -> Run | None:
        since = integration.last_sync_at or _start_of(integration)
        until = (now - self._lag).replace(microsecond=0)
        if since is not None and until <= since:
            await self._store.up_to_date(integration.project_id, now + _interval(integration))
            return None
        return await self._store.start_run(integration.project_id, since, until)

    async def _execute(self, integration: Integration, run: Run) -> Run:
        started = time.perf_counter()
        try:
            rows, objects = await self._export_window(integration, run)
        except (TargetError, SecretKeyError) as exc:
            return await self._failed(integration, run, str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is the run's status, not the loop's end
            log.exception("blob_export_error", project_id=run.project_id, run_id=run.id)
            return await self._failed(integration, run, describe(exc))
        next_sync_at = self._clock() + _interval(integration)
        await self._store.finish_run(run, rows, objects, next_sync_at)
        log.info(
            "blob_export_succeeded",
            project_id=run.project_id,
            run_id=run.id,
            rows=rows,
            window_end=run.window_end.isoformat(),
            seconds=round(time.perf_counter() - started, 3),
        )
        return (await self._store.runs(run.project_id))[0]

    async def _failed(self, integration: Integration, run: Run, error: str) -> Run:
        retry = self._clock() + min(_interval(integration), _RETRY_AFTER)
        await self._store.fail_run(run, error, retry)
        log.warning("blob_export_failed", project_id=run.project_id, run_id=run.id, error=error)
        return (await self._store.runs(run.project_id))[0]

    async def _export_window(self, integration: Integration, run: Run) -> tuple[int, list[str]]:
        if self._box is None:
            raise SecretKeyError("QUERY_ENCRYPTION_KEY is not set: the credentials cannot be read")
        secret = self._box.open(integration.sealed_secret, integration.project_id)
        target = target_of(integration.settings, secret, self._allowed_networks)
        total, objects = 0, []
        try:
            async with s3_client(target) as client:
                for table in TABLES:
                    key = object_key(integration, table.name, run.window_end)
                    total += await self._export_table(client, target, key, integration, table, run)
                    objects.append(key)
        except (ClientError, BotoCoreError) as exc:  # refused credentials, unreachable endpoint
            raise TargetError(describe(exc)) from exc
        return total, objects

    async def _export_table(
        self,
        client: Any,
        target: Target,
        key: str,
        integration: Integration,
        table: ExportTable,
        run: Run,
    ) -> int:
        settings = integration.settings
        schema = table.columns(settings.export_field_groups)
        encode = encoder(settings.file_type, settings.compressed, schema)
        params: dict[str, Any] = {"project_id": run.project_id, "until": run.window_end}
        if run.window_start is not None:
            params["since"] = run.window_start
        sql = select_sql(table, schema, bounded_below=run.window_start is not None)
        upload = ObjectUpload(client, target.bucket, key)
        rows = 0
        try:
            async for batch in self._clickhouse.batches(sql, params, schema):
                rows += batch.num_rows
                # Encoding is CPU work (Parquet pages, JSON text): off the event loop.
                await upload.write(await asyncio.to_thread(encode.encode, batch))
            await upload.write(await asyncio.to_thread(encode.finish))
            await upload.complete()
        except Exception:
            await upload.abort()
            raise
        return rows


def _interval(integration: Integration) -> timedelta:
    return FREQUENCIES[integration.settings.export_frequency]


def _start_of(integration: Integration) -> datetime | None:
    """Where a first run starts: everything (FULL_HISTORY), or just before the start date."""
    start = integration.settings.export_start_date
    if integration.settings.export_mode == "FULL_HISTORY" or start is None:
        return None
    return start - timedelta(milliseconds=1)


# ---- `python -m services.query export run [--project P]`


async def export_command(cfg: QueryConfig, project_id: str | None) -> int:
    """Makes the enabled exports due now and waits until the running query service has run them
    (whichever replica takes each), printing one line per project: its latest run's status,
    window end, rows and error. Asks PostgreSQL only: with chDB, the query service is the one
    process that may open ClickHouse."""
    pool = await asyncpg.create_pool(cfg.database_url, min_size=1, max_size=2)
    try:
        store = ExportStore(pool)
        waiting = await store.trigger(project_id)
        if not waiting:
            print("no enabled blob-storage export" + (f" for {project_id}" if project_id else ""))
            return 1 if project_id else 0
        deadline = time.monotonic() + _CLI_WAIT_SECONDS
        failed = False
        while waiting:
            for project, triggered_at in list(waiting.items()):
                integration = await store.get(project)
                if integration is not None and (
                    integration.running
                    or integration.next_sync_at is None
                    or integration.next_sync_at <= triggered_at
                ):
                    continue
                waiting.pop(project)
                runs = await store.runs(project)
                failed |= _print_outcome(project, triggered_at, integration, runs)
            if waiting and time.monotonic() > deadline:
                print(f"still waiting for {', '.join(waiting)}: is the query service running?")
                return 1
            if waiting:
                await asyncio.sleep(1.0)
        return 1 if failed else 0
    finally:
        await pool.close()


def _print_outcome(
    project_id: str, triggered_at: datetime, integration: Integration | None, runs: list[Run]
) -> bool:
    """Prints one project's line; whether its run failed."""
    if integration is None:
        print(f"{project_id}\tdeleted")
        return False
    run = runs[0] if runs else None
    if run is None or run.finished_at is None or run.finished_at < triggered_at:
        print(f"{project_id}\tup_to_date\t{_iso(integration.last_sync_at)}\t0")
        return False
    error = f"\t{run.error}" if run.error else ""
    print(f"{project_id}\t{run.status}\t{_iso(run.window_end)}\t{run.rows or 0}{error}")
    return run.status == "failed"


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()
