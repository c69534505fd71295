"""Blob-storage export against real engines: chDB holds the rows, PostgreSQL the integration and
its runs, and the customer's bucket is a second MinIO server with credentials of its own. The
files are read back (Parquet with pyarrow) and compared with the rows as ClickHouse returns
them; runs are incremental, a crash between chunk writes or before the watermark commit is run
again without gaps or duplicates, refused credentials are a readable failure, and two exporters
never run one project at once."""

import asyncio
import csv
import gzip
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from libs.common.errors import InvalidArgument
from libs.common.migrate import load_migrations, migrate, migrate_postgres
from libs.common.secret_box import SecretBox
from services.query.blob_export import BlobExporter
from services.query.clickhouse import ClickHouse, ClickHouseTarget, EmbeddedClickHouse
from services.query.export_api import ExportApi, status_document
from services.query.export_files import OBSERVATIONS, TABLES, ExportTable
from services.query.export_store import ExportStore, Run
from services.query.export_targets import parse_networks
from services.query.rows import to_row
from tests.support.minio import SecondMinio, second_minio

MIGRATIONS = Path(__file__).parents[2] / "services" / "query" / "migrations"


class Crash(BaseException):
    """A process dying: nothing in the exporter handles it, so nothing is cleaned up either."""


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondMinio]:
    with second_minio(tmp_path_factory.mktemp("customer-s3")) as server:
        yield server


@pytest.fixture(scope="module")
async def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClickHouse]:
    engine = EmbeddedClickHouse(str(tmp_path_factory.mktemp("chdb")))
    await migrate(ClickHouseTarget(engine), load_migrations(MIGRATIONS / "clickhouse"))
    yield engine
    engine.close()


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate_postgres(pg_dsn, MIGRATIONS / "postgres")
    async with asyncpg.create_pool(pg_dsn, min_size=1, max_size=8) as created:
        yield created


BOX = SecretBox(bytes(range(32)))
LOCAL = parse_networks("127.0.0.0/8")  # the second MinIO
# The exporters' clock: an hour that has not come yet, so that PostgreSQL's now() (which
# stamps triggers) is always before it.
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d_%H-%M-%S")


def body(server: SecondMinio, bucket: str, **overrides: Any) -> bytes:
    fields = {
        "projectId": "ignored: the scope decides",
        "type": "S3_COMPATIBLE",
        "bucketName": bucket,
        "endpoint": server.endpoint,
        "region": "us-east-1",
        "accessKeyId": server.access_key,
        "secretAccessKey": server.secret_key,
        "prefix": "exports/",
        "exportFrequency": "hourly",
        "enabled": True,
        "forcePathStyle": True,
        "fileType": "PARQUET",
        "exportMode": "FULL_HISTORY",
        **overrides,
    }
    return orjson.dumps(fields)


def exporter(pool: asyncpg.Pool, clickhouse: ClickHouse, now: datetime) -> BlobExporter:
    return BlobExporter(
        ExportStore(pool),
        clickhouse,
        BOX,
        lag=timedelta(0),
        allowed_networks=LOCAL,
        clock=lambda: now,
    )


async def write_rows(
    clickhouse: ClickHouse, project: str, traces: int, written_at: datetime, input_bytes: int = 64
) -> list[str]:
    """`traces` traces with two observations and a score each, stamped `written_at` by the
    writer; returns the trace ids."""
    ids = [f"t-{uuid.uuid4().hex[:12]}" for _ in range(traces)]
    text = "x" * input_bytes
    trace_rows, observation_rows, score_rows = [], [], []
    for n, trace_id in enumerate(ids):
        trace = {"id": trace_id, "timestamp": "2026-02-27T10:00:00.123Z", "name": f"chat {n}",
                 "userId": "u1", "tags": ["a", "b"], "metadata": {"k": n, "s": "v"},
                 "input": {"q": text}, "output": "done"}  # fmt: skip
        trace_rows.append(to_row("trace", project, trace, written_at))
        for k in range(2):
            observation = {
                "id": f"{trace_id}-o{k}", "traceId": trace_id, "type": "GENERATION",
                "name": "llm", "startTime": "2026-02-27T10:00:01.000Z",
                "endTime": "2026-02-27T10:00:02.500Z", "input": [{"role": "user", "content": text}],
                "output": {"content": "hi"}, "model": "gpt-4o", "metadata": {"step": k},
                "usageDetails": {"input": 10 + k, "output": 5}, "costDetails": {"input": 0.000125},
                "totalCost": 0.000125, "promptName": "p", "promptVersion": 3,
            }  # fmt: skip
            observation_rows.append(to_row("observation", project, observation, written_at))
        score = {"id": f"{trace_id}-s", "traceId": trace_id, "name": "quality", "value": 0.5,
                 "dataType": "NUMERIC", "source": "API", "timestamp": "2026-02-27T10:00:03Z",
                 "comment": "ok"}  # fmt: skip
        score_rows.append(to_row("score", project, score, written_at))
    await clickhouse.insert("traces", trace_rows)
    await clickhouse.insert("observations", observation_rows)
    await clickhouse.insert("scores", score_rows)
    return ids


async def stored(
    clickhouse: ClickHouse, table: ExportTable, project: str, schema: pa.Schema | None = None
) -> list[dict[str, Any]]:
    """The source rows as ClickHouse returns them in JSON (not the export's Arrow path)."""
    columns = ", ".join((schema or table.schema).names)
    rows = await clickhouse.select(
        f"SELECT {columns} FROM {table.name} FINAL WHERE project_id = {{p:String}}"
        " SETTINGS output_format_json_quote_64bit_integers = 0,"
        " output_format_json_quote_decimals = 0",
        {"p": project},
    )
    return [canonical(schema or table.schema, row) for row in rows]


def canonical(schema: pa.Schema, row: dict[str, Any], *, from_csv: bool = False) -> dict[str, Any]:
    """One row in one form whichever file or engine it came from: times as UTC datetimes, maps
    as dicts, costs as floats; CSV cells parsed by their column's type."""
    out: dict[str, Any] = {}
    for f in schema:
        value = row[f.name]
        if from_csv:
            value = _from_cell(f.type, value)
        if value is None:
            out[f.name] = None
        elif pa.types.is_timestamp(f.type):
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
            out[f.name] = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
        elif pa.types.is_map(f.type):
            items = value.items() if isinstance(value, dict) else value
            numbers = not pa.types.is_string(f.type.item_type)
            out[f.name] = {k: float(v) if numbers else v for k, v in items}
        elif pa.types.is_decimal(f.type) or pa.types.is_floating(f.type):
            out[f.name] = float(value)
        else:
            out[f.name] = value
    return out


def _from_cell(kind: pa.DataType, cell: str) -> Any:
    if cell == "":
        return None if not pa.types.is_string(kind) else ""
    if pa.types.is_map(kind) or pa.types.is_list(kind):
        return json.loads(cell)
    if pa.types.is_boolean(kind):
        return cell == "true"
    if pa.types.is_integer(kind):
        return int(cell)
    return cell


def read_file(file_type: str, schema: pa.Schema, data: bytes) -> list[dict[str, Any]]:
    if file_type == "PARQUET":
        table = pq.read_table(io.BytesIO(data))
        assert table.schema.names == schema.names
        return [canonical(schema, row) for row in table.to_pylist()]
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if file_type == "JSONL":
        rows = [orjson.loads(line) for line in data.splitlines()]
    elif file_type == "JSON":
        rows = orjson.loads(data)
    else:
        reader = csv.DictReader(io.StringIO(data.decode()))
        assert reader.fieldnames == schema.names
        return [canonical(schema, row, from_csv=True) for row in reader]
    return [canonical(schema, row) for row in rows]


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keyed = {row["id"]: row for row in rows}
    assert len(keyed) == len(rows), "a row is in the file twice"
    return keyed


def blank_strings(rows: list[dict[str, Any]], schema: pa.Schema) -> list[dict[str, Any]]:
    """CSV writes None and "" alike."""
    text = {f.name for f in schema if pa.types.is_string(f.type)}
    return [{k: ("" if k in text and v is None else v) for k, v in row.items()} for row in rows]


async def files_of(server: SecondMinio, bucket: str, table: str) -> dict[str, bytes]:
    objects = await asyncio.to_thread(server.objects, bucket)
    return {key: data for key, data in objects.items() if f"/{table}/" in key}


# ---- every format reads back as the source rows


@pytest.mark.parametrize(
    ("file_type", "compressed"),
    [("PARQUET", None), ("JSONL", True), ("JSONL", False), ("JSON", True), ("CSV", False)],
)
async def test_each_format_reads_back_as_the_source_rows(
    pool: asyncpg.Pool,
    clickhouse: ClickHouse,
    target: SecondMinio,
    file_type: str,
    compressed: bool | None,
) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    bucket = await asyncio.to_thread(target.new_bucket)
    await write_rows(clickhouse, project, 30, T0 - timedelta(hours=2))
    await write_rows(clickhouse, f"{project}-other", 5, T0 - timedelta(hours=2))
    api = ExportApi(ExportStore(pool), BOX, allowed_networks=LOCAL)
    await api.upsert(project, body(target, bucket, fileType=file_type, compressed=compressed))

    run = await exporter(pool, clickhouse, T0).export_project(project)

    assert run is not None and run.status == "succeeded", run
    assert run.rows == 30 + 60 + 30
    suffix = {"PARQUET": "parquet", "JSONL": "jsonl", "JSON": "json", "CSV": "csv"}[file_type]
    suffix += ".gz" if compressed is not False and file_type != "PARQUET" else ""
    assert sorted(run.objects or []) == sorted(
        f"exports/{project}/{table.name}/{stamp(T0)}.{suffix}" for table in TABLES
    )
    for table in TABLES:
        [(key, data)] = (await files_of(target, bucket, table.name)).items()
        exported = read_file(file_type, table.schema, data)
        expected = await stored(clickhouse, table, project)
        if file_type == "CSV":
            expected = blank_strings(expected, table.schema)
        assert by_id(exported) == by_id(expected), key
    integration = await ExportStore(pool).get(project)
    assert integration is not None and integration.last_sync_at == T0
    assert status_document(integration)["syncStatus"] == "up_to_date"


async def test_field_groups_choose_the_observation_columns(
    pool: asyncpg.Pool, clickhouse: ClickHouse, target: SecondMinio
) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    bucket = await asyncio.to_thread(target.new_bucket)
    await write_rows(clickhouse, project, 3, T0 - timedelta(hours=1))
    groups = ["core", "usage", "trace_context"]  # trace_context has no columns here
    await ExportApi(ExportStore(pool), BOX, allowed_networks=LOCAL).upsert(
        project,
        body(
            target,
            bucket,
            exportSource="LEGACY_TRACES_OBSERVATIONS",
            exportFieldGroups=groups,
        ),
    )

    await exporter(pool, clickhouse, T0).export_project(project)

    [data] = (await files_of(target, bucket, "observations")).values()
    schema = OBSERVATIONS.columns(groups)
    assert "input" not in schema.names and "total_cost" in schema.names
    exported = read_file("PARQUET", schema, data)
    assert by_id(exported) == by_id(await stored(clickhouse, OBSERVATIONS, project, schema))


# ---- incremental runs


async def test_a_later_run_exports_only_what_was_written_since(
    pool: asyncpg.Pool, clickhouse: ClickHouse, target: SecondMinio
) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    bucket = await asyncio.to_thread(target.new_bucket)
    first = await write_rows(clickhouse, project, 10, T0 - timedelta(minutes=30))
    store = ExportStore(pool)
    await ExportApi(store, BOX, allowed_networks=LOCAL).upsert(
        project, body(target, bucket, fileType="JSONL")
    )
    assert (await exporter(pool, clickhouse, T0).export_project(project)) is not None

    # Not due yet: nothing runs. Then new traces, and an update of an exported one.
    assert (
        await exporter(pool, clickhouse, T0 + timedelta(minutes=5)).export_project(project) is None
    )
    second = await write_rows(clickhouse, project, 4, T0 + timedelta(minutes=10))
    updated = to_row("trace", project, {"id": first[0], "timestamp": "2026-02-27T10:00:00.123Z",
                                        "name": "renamed"}, T0 + timedelta(minutes=20))  # fmt: skip
    await clickhouse.insert("traces", [updated])
    later = T0 + timedelta(hours=1)
    run = await exporter(pool, clickhouse, later).export_project(project)

    assert run is not None and (run.window_start, run.window_end) == (T0, later)
    files = await files_of(target, bucket, "traces")
    second_file = files[f"exports/{project}/traces/{stamp(later)}.jsonl.gz"]
    exported = by_id(read_file("JSONL", TRACES_SCHEMA, second_file))
    assert sorted(exported) == sorted([*second, first[0]])
    assert exported[first[0]]["name"] == "renamed"
    # Every trace's current version is in exactly one file.
    everything = [row for data in files.values() for row in read_file("JSONL", TRACES_SCHEMA, data)]
    newest = {row["id"]: row for row in sorted(everything, key=lambda r: r["event_ts"])}
    assert list(by_id(list(newest.values()))) and len(everything) == 10 + 4 + 1
    assert by_id(list(newest.values())) == by_id(await stored(clickhouse, TABLES[0], project))

    # Nothing new: the schedule moves, no run and no file.
    await store.trigger(project)
    assert await exporter(pool, clickhouse, later).export_project(project) is None
    assert len(await files_of(target, bucket, "traces")) == 2


TRACES_SCHEMA = TABLES[0].schema


# ---- crashes


class CrashingReads:
    """ClickHouse whose observation stream dies after `batches` batches."""

    def __init__(self, inner: ClickHouse, batches: int) -> None:
        self._inner = inner
        self._batches = batches

    async def batches(
        self, sql: str, params: dict[str, Any], schema: pa.Schema
    ) -> AsyncIterator[pa.RecordBatch]:
        served = 0
        async for batch in self._inner.batches(sql, params, schema):
            if " FROM observations " in sql and served == self._batches:
                raise Crash
            served += 1
            yield batch


class CrashingCommit(ExportStore):
    """A store whose process dies after the files are written, before the watermark moves."""

    async def finish_run(
        self, run: Run, rows: int, objects: list[str], next_sync_at: datetime
    ) -> None:
        raise Crash


@pytest.mark.parametrize("crash", ["between chunks", "before the watermark commit"])
async def test_a_crashed_run_is_run_again_without_gaps_or_duplicates(
    pool: asyncpg.Pool, clickhouse: ClickHouse, target: SecondMinio, crash: str
) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    bucket = await asyncio.to_thread(target.new_bucket)
    # ~20 MB of observations: several upload parts and batches before the crash.
    await write_rows(clickhouse, project, 1200, T0 - timedelta(hours=1), input_bytes=8000)
    store = ExportStore(pool)
    await ExportApi(store, BOX, allowed_networks=LOCAL).upsert(
        project, body(target, bucket, fileType="JSONL", compressed=False)
    )
    if crash == "between chunks":
        dying = BlobExporter(
            store,
            CrashingReads(clickhouse, 2),
            BOX,
            lag=timedelta(0),
            allowed_networks=LOCAL,
            clock=lambda: T0,
        )  # type: ignore[arg-type]
    else:
        dying = BlobExporter(
            CrashingCommit(pool),
            clickhouse,
            BOX,
            lag=timedelta(0),
            allowed_networks=LOCAL,
            clock=lambda: T0,
        )
    with pytest.raises(Crash):
        await dying.export_project(project)

    [interrupted] = await store.runs(project, limit=10)
    if crash == "between chunks":  # traces were written; observations never completed
        assert len(await files_of(target, bucket, "traces")) == 1
        assert await files_of(target, bucket, "observations") == {}
    assert (interrupted.status, interrupted.window_end) == ("running", T0)
    integration = await store.get(project)
    assert integration is not None and integration.last_sync_at is None
    assert status_document(integration)["syncStatus"] == "running"
    assert project in await store.due()

    # The next exporter, later and with the lock free again, runs the same window.
    run = await exporter(pool, clickhouse, T0 + timedelta(minutes=7)).export_project(project)

    assert run is not None and (run.id, run.status, run.attempts) == (
        interrupted.id,
        "succeeded",
        2,
    )
    assert run.window_end == T0
    integration = await store.get(project)
    assert integration is not None and integration.last_sync_at == T0
    for table in TABLES:
        [data] = (await files_of(target, bucket, table.name)).values()
        assert by_id(read_file("JSONL", table.schema, data)) == by_id(
            await stored(clickhouse, table, project)
        )


# ---- refused credentials, one exporter at a time


async def test_credentials_the_bucket_refuses_are_a_400_on_save_and_a_readable_failed_run(
    pool: asyncpg.Pool, clickhouse: ClickHouse, target: SecondMinio
) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    bucket = await asyncio.to_thread(target.new_bucket)
    store = ExportStore(pool)
    api = ExportApi(store, BOX, allowed_networks=LOCAL)
    with pytest.raises(InvalidArgument, match="InvalidAccessKeyId|SignatureDoesNotMatch"):
        await api.upsert(project, body(target, bucket, secretAccessKey="wrong-secret-key"))
    with pytest.raises(InvalidArgument, match="NoSuchBucket"):
        await api.upsert(project, body(target, "no-such-bucket"))
    assert await store.get(project) is None

    # Saved while valid, then the credentials are revoked (sealed here with another value).
    await api.upsert(project, body(target, bucket))
    integration = await store.get(project)
    assert integration is not None
    await store.upsert(project, integration.settings, BOX.seal("revoked-secret", project))
    await write_rows(clickhouse, project, 2, T0 - timedelta(hours=1))

    run = await exporter(pool, clickhouse, T0).export_project(project)

    assert run is not None and run.status == "failed"
    assert run.error and "SignatureDoesNotMatch" in run.error
    integration = await store.get(project)
    assert integration is not None and integration.last_sync_at is None
    status = status_document(integration)
    assert (status["syncStatus"], status["lastError"]) == ("error", run.error)
    assert await asyncio.to_thread(target.objects, bucket) == {}


async def test_one_exporter_at_a_time_runs_a_project(
    pool: asyncpg.Pool, clickhouse: ClickHouse, target: SecondMinio, pg_dsn: str
) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    bucket = await asyncio.to_thread(target.new_bucket)
    await write_rows(clickhouse, project, 50, T0 - timedelta(hours=1))
    await ExportApi(ExportStore(pool), BOX, allowed_networks=LOCAL).upsert(
        project, body(target, bucket)
    )
    # A second replica: its own pool (its own PostgreSQL sessions).
    async with asyncpg.create_pool(pg_dsn, min_size=1, max_size=4) as other_pool:
        async with ExportStore(other_pool).locked(project) as held:
            assert held
            assert await exporter(pool, clickhouse, T0).export_project(project) is None
        runs = await asyncio.gather(
            exporter(pool, clickhouse, T0).export_project(project),
            exporter(other_pool, clickhouse, T0).export_project(project),
        )
    assert sorted(run is None for run in runs) == [False, True]
    assert len(await ExportStore(pool).runs(project, limit=10)) == 1
