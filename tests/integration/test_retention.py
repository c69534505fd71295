"""Retention against the real stores: each owner's pass deletes a project's data from before the
cutoff and nothing newer, nothing of another project; reads hide the old data before any pass;
a pass run again (after a crash, or a replayed announcement) deletes nothing more and finishes
what a stopped one left; the gateway announces each project once a day."""

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaTimeoutError

from libs.common.errors import NotFound
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import KafkaCluster, Topic, ensure_topics, make_producer
from libs.common.migrate import load_migrations, migrate, migrate_postgres
from libs.common.retention import announce, cutoff_of
from libs.common.scope import RETENTION_DAYS_KEY, ProjectScope, reading_within
from services.evals.annotation_queues import AnnotationQueueStore
from services.evals.comments import CommentFilter, CommentStore
from services.evals.references import ObjectLookup
from services.evals.retention import RetentionPass as EvalsRetention
from services.evals.runs import run_items_page
from services.evals.server import MIGRATIONS as EVALS_MIGRATIONS
from services.gateway import retention as gateway_retention
from services.gateway.retention import RetentionAnnouncer
from services.gateway.server import MIGRATIONS as GATEWAY_MIGRATIONS
from services.gateway.store import ProjectStore
from services.ingestion.event_index import EventLogIndex
from services.ingestion.media import Media, MediaObjects
from services.ingestion.retention import RetentionPass as IngestionRetention
from services.ingestion.server import MIGRATIONS as INGESTION_MIGRATIONS
from services.ingestion.store import EventLog, open_s3
from services.query import analytics
from services.query.clickhouse import ClickHouse, ClickHouseTarget, EmbeddedClickHouse
from services.query.filters import Where
from services.query.retention import DAY_TABLES, TIME_COLUMNS
from services.query.retention import RetentionPass as QueryRetention
from services.query.server import MIGRATIONS as QUERY_MIGRATIONS
from services.query.store import TraceStore
from tests.integration.test_stores import s3_config

NOW = datetime.now(UTC)
CUTOFF = NOW - timedelta(days=7)
OLD = NOW - timedelta(days=10)
# A week's retention: what reads within a call of such a project see.
WEEK = {RETENTION_DAYS_KEY: "7"}


# ---- query: ClickHouse


@pytest.fixture
async def clickhouse(tmp_path: Path) -> AsyncIterator[ClickHouse]:
    clickhouse = EmbeddedClickHouse(str(tmp_path / "chdb"))
    await migrate(ClickHouseTarget(clickhouse), load_migrations(QUERY_MIGRATIONS / "clickhouse"))
    yield clickhouse
    clickhouse.close()


async def _insert(ch: ClickHouse, project: str, name: str, moment: datetime) -> None:
    """A trace `name` at `moment` with an observation and a score, each written twice (two
    versions, as the writer's updates leave them until merged)."""
    params = {"p": project, "id": name, "at": moment}
    for _ in range(2):
        await ch.execute(
            "INSERT INTO traces (project_id, id, timestamp, session_id, created_at, updated_at,"
            " event_ts) VALUES ({p:String}, {id:String}, {at:DateTime64(3)}, 's', now64(3),"
            " now64(3), now64(3))",
            params,
        )
        await ch.execute(
            "INSERT INTO observations (project_id, id, trace_id, type, name, start_time,"
            " created_at, updated_at, event_ts) VALUES ({p:String}, {id:String}, {id:String},"
            " 'SPAN', 'n', {at:DateTime64(3)}, now64(3), now64(3), now64(3))",
            params,
        )
        await ch.execute(
            "INSERT INTO scores (project_id, id, trace_id, name, value, data_type, source,"
            " timestamp, created_at, updated_at, event_ts) VALUES ({p:String}, {id:String},"
            " {id:String}, 'q', 1, 'NUMERIC', 'API', {at:DateTime64(3)}, now64(3), now64(3),"
            " now64(3))",
            params,
        )


async def _ids(ch: ClickHouse) -> dict[str, list[tuple[str, str]]]:
    """Every ClickHouse table that holds rows of a project: its projects and traces (or days)."""
    tables = await ch.select(
        "SELECT table, groupArray(name) AS columns FROM system.columns"
        " WHERE database = currentDatabase() AND table IN (SELECT name FROM system.tables"
        " WHERE database = currentDatabase() AND engine NOT LIKE '%View')"
        " GROUP BY table HAVING has(columns, 'project_id')"
    )
    found = {}
    for table in tables:
        columns = table["columns"]
        # What tells a row's trace (or day) apart.
        trace = next(c for c in ("trace_id", "id", "day") if c in columns)
        rows = await ch.select(
            f"SELECT DISTINCT project_id, {trace} AS trace FROM {table['table']}"
            " ORDER BY project_id, trace"
        )
        if rows:
            found[table["table"]] = [(row["project_id"], row["trace"]) for row in rows]
    return found


async def test_reads_hide_what_the_retention_keeps_no_more_even_before_a_pass(
    clickhouse: ClickHouse,
) -> None:
    await _insert(clickhouse, "p", "old", OLD)
    await _insert(clickhouse, "p", "new", NOW)
    store = TraceStore(clickhouse)

    async def visible() -> dict[str, Any]:
        traces, total = await store.page_of("trace", "p", Where(), "id", 50, 0)
        observations, _ = await store.page_of("observation", "p", Where(), "id", 50, 0)
        scores = await store.scores_of_traces("p", ["old", "new"])
        sessions, _ = await store.sessions("p", None, None, None, 10, 0)
        return {
            "traces": [t["id"] for t in traces],
            "total": total,
            "old trace": await store.trace("p", "old") is not None,
            "observations": [o["id"] for o in observations],
            "observations of old": len(await store.observations_of("p", "old")),
            "scores": [s["id"] for s in scores],
            "session start": sessions[0]["created_at"][:10],
        }

    forever = await visible()
    with reading_within(WEEK):
        week = await visible()
    assert forever["traces"] == ["new", "old"] and forever["old trace"]
    assert week == {
        "traces": ["new"],
        "total": 1,
        "old trace": False,
        "observations": ["new"],
        "observations of old": 0,
        "scores": ["new"],
        "session start": f"{NOW:%Y-%m-%d}",
    }


# A metrics query of observations per day over the last 30 days (the fast path reads whole past
# days from per-day rollups).
PER_DAY = orjson.dumps({
    "view": "observations", "timeDimension": {"granularity": "day"},
    "metrics": [{"measure": "count", "aggregation": "count"}],
    "fromTimestamp": (NOW - timedelta(days=30)).isoformat(), "toTimestamp": NOW.isoformat(),
}).decode()  # fmt: skip


async def _counted(store: TraceStore, project_id: str) -> int:
    rows = await analytics.answer(store, project_id, 2, PER_DAY)
    return sum(row["count_count"] for row in rows)


@pytest.fixture
def rollups_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rollups stay valid for parts a second older than their build (instead of ten)."""
    monkeypatch.setattr(analytics, "ROLLUP_SLACK", timedelta(seconds=1))


async def test_metrics_read_from_daily_rollups_leave_out_the_days_the_retention_hides(
    clickhouse: ClickHouse, rollups_kept: None
) -> None:
    """A day's rollup built while the project kept everything is not read under a retention
    that hides that day: such days are read live, through the cutoff."""
    await _insert(clickhouse, "p", "old", OLD)
    await _insert(clickhouse, "p", "recent", NOW - timedelta(days=2))
    store = TraceStore(clickhouse)
    await asyncio.sleep(2)  # parts older than the builds: the builds stay valid

    assert await _counted(store, "p") == 2  # builds the past days' rollups
    assert await clickhouse.select("SELECT day FROM observation_rollups")
    with reading_within(WEEK):
        assert await _counted(store, "p") == 1
    assert await _counted(store, "p") == 2


async def test_the_query_pass_deletes_old_rows_of_the_project_only_and_once(
    clickhouse: ClickHouse, rollups_kept: None
) -> None:
    for project in ("p", "p2"):
        await _insert(clickhouse, project, "old", OLD)
        await _insert(clickhouse, project, "new", NOW)
        await _insert(clickhouse, project, "edge", CUTOFF)  # at the cutoff: kept
    store = TraceStore(clickhouse)
    await asyncio.sleep(2)
    assert await _counted(store, "p") == await _counted(store, "p2") == 3  # rollups built
    retention = QueryRetention(clickhouse)

    first = await retention.run("p", CUTOFF)
    again = await retention.run("p", CUTOFF)

    # Rows counted with their versions, as many as background merges left; each table with
    # rows of the old day had some.
    assert set(first) == {*TIME_COLUMNS, *DAY_TABLES}
    assert all(
        first[table]
        for table in (
            *TIME_COLUMNS,
            "observation_days",
            "score_days",
            "observation_rollups",
            "observation_rollup_builds",
        )
    )
    assert again == dict.fromkeys(first, 0)
    days = {name: f"{moment:%Y-%m-%d}" for name, moment in (("old", OLD), ("edge", CUTOFF))}
    expected = {("p", "edge"), ("p2", "edge"), ("p2", "old")}
    for table, rows in (await _ids(clickhouse)).items():
        if "rollup" in table:  # per day (builds: each past day of the window, rows or none)
            kept_days = {day for project, day in rows if project == "p"}
            assert min(kept_days) == days["edge"] and ("p2", days["old"]) in rows, table
        else:
            assert set(rows) == {*expected, ("p", "new"), ("p2", "new")}, table
    assert await _counted(store, "p") == 2 and await _counted(store, "p2") == 3


async def test_rows_written_after_a_pass_land_and_stay(clickhouse: ClickHouse) -> None:
    """Lightweight deletes mask rows; a later insert of the same ids is a new row, visible."""
    await _insert(clickhouse, "p", "t", OLD)
    await QueryRetention(clickhouse).run("p", CUTOFF)
    await _insert(clickhouse, "p", "t", NOW)
    trace = await TraceStore(clickhouse).trace("p", "t")
    assert trace is not None and trace["timestamp"].startswith(f"{NOW:%Y-%m-%d}")


# ---- ingestion: event log, its index, media


# The S3 client, the bucket, ingestion's database and its media.
Ingestion = tuple[Any, str, asyncpg.Pool, Media]


@pytest.fixture
async def ingestion(pg_dsn: str) -> AsyncIterator[Ingestion]:
    await migrate_postgres(pg_dsn, INGESTION_MIGRATIONS)
    cfg = s3_config("it-retention")
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(pool.close)
        s3 = await open_s3(cfg, stack)
        await EventLog(s3, cfg.s3_bucket).ensure_bucket()
        yield s3, cfg.s3_bucket, pool, Media(pool, MediaObjects(s3, s3, cfg.s3_bucket, 60), 1000)


async def _request(s3: Any, bucket: str, index: EventLogIndex, project: str, at: datetime) -> str:
    """One request's event-log object and its index row, as ingestion writes them at `at`."""
    key = EventLog.key(project, at)
    await EventLog(s3, bucket).put(key, b"events")
    await index.add(project, key, [f"trace-{at:%Y%m%d%H}"])
    return key


async def _medium(ingestion: Ingestion, project: str, trace: str, at: datetime) -> str:
    """A medium linked to `trace`, its object stored and its link made at `at`."""
    s3, bucket, pool, media = ingestion
    content = f"{project} {trace}".encode()
    digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
    body = {"traceId": trace, "field": "input", "contentType": "text/plain",
            "contentLength": len(content), "sha256Hash": digest}  # fmt: skip
    media_id, _ = await media.create_upload(project, orjson.dumps(body))
    key = MediaObjects.key(project, media_id)
    await s3.put_object(Bucket=bucket, Key=key, Body=content, ContentType="text/plain")
    uploaded = {"uploadedAt": at.isoformat(), "uploadHttpStatus": 200}
    await media.patch(project, media_id, orjson.dumps(uploaded))
    await pool.execute(
        "UPDATE media_links SET created_at = $3 WHERE project_id = $1 AND trace_id = $2",
        project, trace, at,
    )  # fmt: skip
    return key


async def _keys(s3: Any, bucket: str) -> set[str]:
    found: set[str] = set()
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found |= {item["Key"] for item in page.get("Contents", [])}
    return found


async def test_the_ingestion_pass_expires_old_hours_index_rows_and_media(
    ingestion: Ingestion,
) -> None:
    s3, bucket, pool, media = ingestion
    index = EventLogIndex(pool)
    cutoff = datetime(2026, 11, 24, 5, 30, tzinfo=UTC)
    old_times = [
        datetime(2025, 12, 31, 23, tzinfo=UTC),  # an older year
        datetime(2026, 10, 24, 6, tzinfo=UTC),  # an older month
        datetime(2026, 11, 23, 23, tzinfo=UTC),  # an older day
        datetime(2026, 11, 24, 4, 59, tzinfo=UTC),  # an older hour of the cutoff's day
    ]
    new_times = [
        datetime(2026, 11, 24, 5, 10, tzinfo=UTC),  # the cutoff's hour: kept until tomorrow
        datetime(2026, 11, 24, 6, tzinfo=UTC),
        datetime(2026, 11, 30, 1, tzinfo=UTC),
    ]
    old = [await _request(s3, bucket, index, "p", at) for at in old_times]
    new = [await _request(s3, bucket, index, "p", at) for at in new_times]
    # Another project, and one whose quoted id the project's prefixes: untouched.
    others = [await _request(s3, bucket, index, project, old_times[0]) for project in ("q", "p2")]
    old_medium = await _medium(ingestion, "p", "old-trace", cutoff - timedelta(days=1))
    new_medium = await _medium(ingestion, "p", "new-trace", cutoff + timedelta(hours=1))
    others.append(await _medium(ingestion, "q", "old-trace", cutoff - timedelta(days=1)))

    first = await IngestionRetention(s3, bucket, pool, media).run("p", cutoff)
    again = await IngestionRetention(s3, bucket, pool, media).run("p", cutoff)

    assert first == {"event_log_objects": 4, "event_log_index_rows": 4, "media": 1}
    assert again == {"event_log_objects": 0, "event_log_index_rows": 0, "media": 0}
    assert await _keys(s3, bucket) == {*new, *others, new_medium}
    indexed = await pool.fetch("SELECT project_id, object_key FROM event_log_index")
    assert {r["object_key"] for r in indexed} == {*new, *others[:2]}
    linked = await pool.fetch("SELECT project_id, trace_id FROM media_links ORDER BY 1")
    assert [tuple(r) for r in linked] == [("p", "new-trace"), ("q", "old-trace")]
    assert old_medium not in await _keys(s3, bucket) and old


async def test_media_only_old_traces_use_are_hidden_before_a_pass(ingestion: Ingestion) -> None:
    media = ingestion[3]
    old = (await _medium(ingestion, "p", "old-trace", OLD)).rpartition("/")[2]
    new = (await _medium(ingestion, "p", "new-trace", NOW)).rpartition("/")[2]
    with reading_within(WEEK):
        with pytest.raises(NotFound):
            await media.get("p", old)
        assert orjson.loads(await media.get("p", new))["mediaId"] == new
    assert orjson.loads(await media.get("p", old))["mediaId"] == old


async def test_a_pass_stopped_between_stores_is_finished_by_the_next(
    ingestion: Ingestion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the event log went but before the media: the announcement is handled
    again (its offset was not committed) and the second pass does the rest."""
    s3, bucket, pool, media = ingestion
    old = await _request(s3, bucket, EventLogIndex(pool), "p", OLD)
    old_medium = await _medium(ingestion, "p", "t", OLD)
    retention = IngestionRetention(s3, bucket, pool, media)

    async def crash(*args: Any) -> int:
        raise ConnectionResetError("killed mid-pass")

    with monkeypatch.context() as patched:
        patched.setattr(media, "forget_traces", crash)
        with pytest.raises(ConnectionResetError):
            await retention.run("p", CUTOFF)
    assert old not in await _keys(s3, bucket) and old_medium in await _keys(s3, bucket)

    again = await retention.run("p", CUTOFF)
    assert again == {"event_log_objects": 0, "event_log_index_rows": 0, "media": 1}
    assert await _keys(s3, bucket) == set()


# ---- evals: run items, comments, queue items, judge jobs


@pytest.fixture
async def evals_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate_postgres(pg_dsn, EVALS_MIGRATIONS)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def _evals_rows(pool: asyncpg.Pool, project: str, name: str, at: datetime) -> None:
    """A run item, comments on a trace and on a prompt, a queue item and a judge job at `at`."""
    await pool.execute(
        "INSERT INTO datasets (project_id, id, name, created_at, updated_at)"
        " VALUES ($1, 'd', 'd', $2, $2) ON CONFLICT DO NOTHING", project, at,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO dataset_runs (project_id, id, dataset_id, name, created_at, updated_at)"
        " VALUES ($1, 'r', 'd', 'r', $2, $2) ON CONFLICT DO NOTHING", project, at,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO dataset_run_items (project_id, id, dataset_run_id, dataset_item_id,"
        " trace_id, created_at, updated_at) VALUES ($1, $2, 'r', 'i', $2, $3, $3)",
        project, name, at,
    )  # fmt: skip
    for object_type in ("TRACE", "PROMPT"):
        await pool.execute(
            "INSERT INTO comments (project_id, id, object_type, object_id, content, created_at,"
            " updated_at) VALUES ($1, $2, $3, $4, 'c', $5, $5)",
            project, f"{name}-{object_type}", object_type, name, at,
        )  # fmt: skip
    await pool.execute(
        "INSERT INTO annotation_queues (project_id, id, name, score_config_ids)"
        " VALUES ($1, 'q', 'q', '{}') ON CONFLICT DO NOTHING", project,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO annotation_queue_items (project_id, id, queue_id, object_id, object_type,"
        " status, created_at, updated_at) VALUES ($1, $2, 'q', $2, 'TRACE', 'PENDING', $3, $3)",
        project, name, at,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO judge_jobs (project_id, id, rule_id, evaluator_id, trace_id, observation_id,"
        " status, run_after, created_at, updated_at)"
        " VALUES ($1, gen_random_uuid(), 'rule', 'e', $2, '', 'completed', $3, $3, $3)",
        project, name, at,
    )  # fmt: skip


async def _evals_ids(pool: asyncpg.Pool) -> dict[str, list[tuple[str, str]]]:
    return {
        table: [
            tuple(r)
            for r in await pool.fetch(f"SELECT project_id, {column} FROM {table} ORDER BY 1, 2")
        ]
        for table, column in (
            ("dataset_run_items", "id"),
            ("comments", "id"),
            ("annotation_queue_items", "id"),
            ("judge_jobs", "trace_id"),
        )
    }


async def test_evals_reads_hide_old_run_items_comments_and_queue_items_before_a_pass(
    evals_pool: asyncpg.Pool,
) -> None:
    await _evals_rows(evals_pool, "p", "old", OLD)
    await _evals_rows(evals_pool, "p", "new", NOW)
    comments = CommentStore(evals_pool)
    everything = CommentFilter(None, None, None)

    queues = AnnotationQueueStore(evals_pool)

    async def visible() -> tuple[list[str], int, list[str], bool, list[str], bool]:
        listed, total = await comments.page("p", everything, 1, 50)
        async with evals_pool.acquire() as conn:
            items, _ = await run_items_page(conn, "p", "r", 1, 50)
        queued, _ = await queues.items("p", "q", None, 1, 50)
        return (
            sorted(c["id"] for c in listed),
            total,
            sorted(i["id"] for i in items),
            await comments.get("p", "old-TRACE") is not None,
            sorted(i["id"] for i in queued),
            await queues.item("p", "q", "old") is not None,
        )

    everything_listed = ["new-PROMPT", "new-TRACE", "old-PROMPT", "old-TRACE"]
    assert await visible() == (everything_listed, 4, ["new", "old"], True, ["new", "old"], True)
    with reading_within(WEEK):
        # Comments on prompts are configuration: the retention keeps them.
        kept = ["new-PROMPT", "new-TRACE", "old-PROMPT"]
        assert await visible() == (kept, 3, ["new"], False, ["new"], False)


class KnownObjects(ObjectLookup):
    """The query service's answer to the pass's lookups, as a stand-in: these objects exist (under
    the retention the pass asks with), every other is a 404."""

    def __init__(self, *existing: str) -> None:
        self._existing = set(existing)
        self.asked: list[ProjectScope] = []

    async def require(self, scope: ProjectScope, object_type: str, object_id: str) -> None:
        self.asked.append(scope)
        if object_id not in self._existing:
            raise NotFound(f"{object_type} {object_id}")


async def test_the_evals_pass_deletes_old_traced_data_of_the_project_only_and_once(
    evals_pool: asyncpg.Pool,
) -> None:
    for project in ("p", "p2"):
        await _evals_rows(evals_pool, project, "old", OLD)
        await _evals_rows(evals_pool, project, "new", NOW)
    retention = EvalsRetention(evals_pool, KnownObjects("new", "old"))

    first = await retention.run("p", CUTOFF, 7)
    again = await retention.run("p", CUTOFF, 7)

    tables = ("dataset_run_items", "comments", "annotation_queue_items", "judge_jobs")
    assert first == dict.fromkeys(tables, 1) and again == dict.fromkeys(tables, 0)
    assert await _evals_ids(evals_pool) == {
        "dataset_run_items": [("p", "new"), ("p2", "new"), ("p2", "old")],
        "comments": [("p", "new-PROMPT"), ("p", "new-TRACE"), ("p", "old-PROMPT"),
                     ("p2", "new-PROMPT"), ("p2", "new-TRACE"), ("p2", "old-PROMPT"),
                     ("p2", "old-TRACE")],
        "annotation_queue_items": [("p", "new"), ("p2", "new"), ("p2", "old")],
        "judge_jobs": [("p", "new"), ("p2", "new"), ("p2", "old")],
    }  # fmt: skip


async def test_newer_comments_and_queue_items_on_objects_the_retention_removed_go_too(
    evals_pool: asyncpg.Pool,
) -> None:
    """A comment written today on a trace stamped last month: the trace is gone, so is it."""
    await _evals_rows(evals_pool, "p", "stale", NOW)  # the query service no longer has "stale"
    await _evals_rows(evals_pool, "p", "new", NOW)
    objects = KnownObjects("new")

    counts = await EvalsRetention(evals_pool, objects).run("p", CUTOFF, 7)

    assert counts["comments"] == 1 and counts["annotation_queue_items"] == 1
    assert {scope.retention_days for scope in objects.asked} == {7}
    ids = await _evals_ids(evals_pool)
    assert ids["comments"] == [("p", "new-PROMPT"), ("p", "new-TRACE"), ("p", "stale-PROMPT")]
    assert ids["annotation_queue_items"] == [("p", "new")]


# ---- gateway: the daily announcement


async def _announced(kafka: KafkaCluster) -> list[events_pb2.ProjectRetention]:
    reader = AIOKafkaConsumer(
        kafka.topic(Topic.PROJECT_RETENTION),
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await reader.start()
    try:
        batches = await reader.getmany(timeout_ms=3000)
    finally:
        await reader.stop()
    return [
        events_pb2.ProjectRetention.FromString(record.value)
        for records in batches.values()
        for record in records
    ]


async def test_the_gateway_announces_each_limited_project_once_a_day(
    pg_dsn: str, kafka: KafkaCluster
) -> None:
    await migrate_postgres(pg_dsn, GATEWAY_MIGRATIONS)
    await ensure_topics(kafka, {Topic.PROJECT_RETENTION: 1})
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    producer = make_producer(kafka, "it")
    await producer.start()
    try:
        await pool.execute("INSERT INTO organizations (id, name) VALUES ('o', 'o')")
        await pool.execute(
            "INSERT INTO projects (id, org_id, name, retention_days, deleted_at) VALUES"
            " ('week', 'o', 'w', 7, NULL), ('forever', 'o', 'f', NULL, NULL),"
            " ('gone', 'o', 'g', 7, now())"
        )
        announcer = RetentionAnnouncer(pool, producer, kafka)
        # Two replicas at once, then a second round the same day: one announcement.
        rounds = await asyncio.gather(announcer.announce_due(), announcer.announce_due())
        later = await announcer.announce_due()
        forced = await announcer.announce_due(datetime.now(UTC))  # `retention run`
        # A new retention is announced at the next round, not a day later.
        await ProjectStore(pool).update_project(
            "o", "week", name="w", metadata=None, retention_days=3, set_retention=True
        )
        changed = await announcer.announce_due()
    finally:
        await producer.stop()
        await pool.close()
    assert sorted(rounds) == [0, 1] and later == 0 and forced == 1 and changed == 1
    announced = await _announced(kafka)
    assert [(a.project_id, a.retention_days) for a in announced] == [
        ("week", 7), ("week", 7), ("week", 3)
    ]  # fmt: skip
    expected = datetime.now(UTC) - timedelta(days=7)
    assert abs(cutoff_of(announced[0]) - expected) < timedelta(minutes=1)


async def test_an_announcement_that_failed_stays_due(
    pg_dsn: str, kafka: KafkaCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker refused the send (a crash there is the same): nothing is marked, so the next
    round announces the project."""
    await migrate_postgres(pg_dsn, GATEWAY_MIGRATIONS)
    await ensure_topics(kafka, {Topic.PROJECT_RETENTION: 1})
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    producer = make_producer(kafka, "it")
    await producer.start()
    try:
        await pool.execute("INSERT INTO organizations (id, name) VALUES ('o', 'o')")
        await pool.execute(
            "INSERT INTO projects (id, org_id, name, retention_days) VALUES"
            " ('a', 'o', 'a', 30), ('b', 'o', 'b', 30)"
        )
        announcer = RetentionAnnouncer(pool, producer, kafka)
        sent: list[str] = []

        async def refused_after_one(*args: Any) -> None:
            if sent:
                raise KafkaTimeoutError("the broker did not answer")
            sent.append(args[2])
            await announce(*args)

        with monkeypatch.context() as patched:
            patched.setattr(gateway_retention, "announce", refused_after_one)
            with pytest.raises(KafkaTimeoutError):
                await announcer.announce_due()
        marked = await pool.fetchval("SELECT count(retention_announced_at) FROM projects")
        announced = await announcer.announce_due()
    finally:
        await producer.stop()
        await pool.close()
    # Both again: one announced twice, which the owners handle as once.
    assert marked == 0 and announced == 2
    assert sorted(a.project_id for a in await _announced(kafka)) == ["a", "a", "b"]
