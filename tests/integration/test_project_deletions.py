"""What each owner deletes of a deleted project, against the real stores: everything of that
project, nothing of another whose id it prefixes or that looks like a pattern, and a second run
finds nothing left (replays are harmless)."""

import dataclasses
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common.errors import Unavailable
from libs.common.gencache import GenerationCache
from libs.common.kafka import KafkaCluster, Topic, ensure_topics, make_producer
from libs.common.migrate import load_migrations, migrate, migrate_postgres
from services.evals import project_deletions as evals_deletions
from services.evals.server import MIGRATIONS as EVALS_MIGRATIONS
from services.ingestion.store import EventLog, open_s3
from services.query import project_deletions as query_deletions
from services.query.clickhouse import ClickHouseTarget, EmbeddedClickHouse
from services.query.consumer import writer_settings
from services.query.server import MIGRATIONS
from services.query.store import TraceStore
from tests.integration.conftest import ENV, unique
from tests.integration.test_stores import s3_config


async def test_a_dropped_cache_scope_loses_its_token_and_entries_and_no_other() -> None:
    client = redis.from_url(f"redis://127.0.0.1:{ENV['REDIS_PORT']}/0")
    cache = GenerationCache(client, unique("ns"))
    deleted = unique("p*")
    pattern_like = deleted.replace("*", "x")  # matched by the scope's pattern unless escaped
    prefixed = f"{deleted}-2"
    try:
        for scope in (deleted, pattern_like, prefixed):
            generation = await cache.generation(scope)
            assert generation is not None
            await cache.put(scope, generation, "k", b"v")
        assert await cache.drop(deleted) == 2
        assert await cache.drop(deleted) == 0
        for scope in (pattern_like, prefixed):
            generation = await cache.generation(scope)
            assert generation is not None and await cache.get(scope, generation, "k") == b"v"
    finally:
        await client.aclose()


async def test_a_deleted_projects_event_log_goes_and_a_prefixed_projects_stays() -> None:
    cfg = s3_config("it-project-deletion")
    async with AsyncExitStack() as stack:
        s3 = await open_s3(cfg, stack)
        event_log = EventLog(s3, cfg.s3_bucket)
        await event_log.ensure_bucket()
        now = datetime.now(UTC)
        for project, requests in (("p", 1005), ("p2", 1)):  # more than one listed page
            for _ in range(requests):
                await event_log.put(EventLog.key(project, now), b"x")
        assert await event_log.delete_project("p") == 1005
        assert await event_log.delete_project("p") == 0
        left = await s3.list_objects_v2(Bucket=cfg.s3_bucket)
        assert [item["Key"].split("/")[1] for item in left["Contents"]] == ["p2"]


async def test_a_deleted_projects_clickhouse_rows_go_for_good(tmp_path: Path) -> None:
    clickhouse = EmbeddedClickHouse(str(tmp_path / "chdb"))
    try:
        await migrate(ClickHouseTarget(clickhouse), load_migrations(MIGRATIONS / "clickhouse"))
        for project in ("gone", "kept"):
            await clickhouse.execute(
                "INSERT INTO traces (project_id, id, timestamp, created_at, updated_at, event_ts)"
                " VALUES ({p:String}, 't1', now64(3), now64(3), now64(3), now64(3))",
                {"p": project},
            )
            await clickhouse.execute(
                "INSERT INTO observations (project_id, id, trace_id, type, name, start_time,"
                " created_at, updated_at, event_ts) VALUES ({p:String}, 'o1', 't1', 'SPAN', 'n',"
                " now64(3), now64(3), now64(3), now64(3))",
                {"p": project},
            )
        store = TraceStore(clickhouse)
        await store.delete_project("gone")
        await store.delete_project("gone")
        counts = {
            table: await clickhouse.select(
                f"SELECT project_id, count() AS n FROM {table} GROUP BY project_id"
            )
            for table in ("traces", "observations", "scores")
        }
    finally:
        clickhouse.close()
    assert counts == {
        "traces": [{"project_id": "kept", "n": 1}],
        "observations": [{"project_id": "kept", "n": 1}],
        "scores": [],
    }


async def test_the_evals_purger_covers_every_evals_table_with_project_data(pg_dsn: str) -> None:
    await migrate_postgres(pg_dsn, EVALS_MIGRATIONS)
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name = 'project_id'"
        )
    finally:
        await conn.close()
    assert sorted(evals_deletions.TABLES) == sorted(t["table_name"] for t in tables)


async def test_the_query_purger_waits_for_the_writer_to_commit_what_was_published(
    kafka: KafkaCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of events published before a deletion must not land after it, so the deletion waits
    until the writer's group has committed them (an outage of the writer is Unavailable: the
    deletion is retried, never done early)."""
    await ensure_topics(kafka, {Topic.INGESTION_EVENTS: 1})
    topic = kafka.topic(Topic.INGESTION_EVENTS)
    # Only the writer's group and topics matter to the wait, not its batch bound.
    settings = writer_settings(kafka, batch_bytes=1)
    writer = dataclasses.replace(settings, group_id=unique("it-writer"))
    producer = make_producer(kafka, "it")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"event", key=b"p:t")
    finally:
        await producer.stop()
    monkeypatch.setattr(query_deletions, "_WRITER_WAIT_SECONDS", 0.0)
    with pytest.raises(Unavailable):
        await query_deletions.WriterBacklog(writer).drained()

    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=writer.group_id,
        enable_auto_commit=False,
    )
    await committer.start()
    try:
        partition = TopicPartition(topic, 0)
        committer.assign([partition])
        await committer.commit({partition: 1})  # what the writer does once it wrote the event
    finally:
        await committer.stop()
    await query_deletions.WriterBacklog(writer).drained()
