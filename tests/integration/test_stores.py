from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from libs.common.event_batches import decode_event_batch, encode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.migrate import migrate_postgres
from services.gateway.config import InitSettings
from services.gateway.init import apply_init
from services.gateway.keys import hash_secret
from services.gateway.server import MIGRATIONS
from services.gateway.store import KeyScope, ProjectStore
from services.ingestion.config import IngestionConfig
from services.ingestion.deletions import EventLogCleaner
from services.ingestion.event_index import EventLogIndex
from services.ingestion.media import Media, MediaObjects
from services.ingestion.project_deletions import ProjectPurger
from services.ingestion.server import MIGRATIONS as INGESTION_MIGRATIONS
from services.ingestion.store import EventLog, open_s3
from tests.integration.conftest import ENV, unique

INIT = InitSettings("org-1", "Org", "proj-1", "Proj", "pk-init", "sk-init")


async def test_headless_init_is_idempotent_and_keys_resolve_by_secret_hash(pg_dsn: str) -> None:
    await migrate_postgres(pg_dsn, MIGRATIONS)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        store = ProjectStore(pool)
        await apply_init(store, INIT, "salt")
        await apply_init(store, INIT, "salt")
        key = await store.key_by_secret_hash(hash_secret("sk-init", "salt"))
        project = await store.project("proj-1")
        by_public = await store.key_by_public_key("pk-init")
        stored_secrets = await pool.fetchval(
            "SELECT count(*) FROM api_keys WHERE secret_hash = $1 OR display_secret_key = $1",
            "sk-init",
        )
        keys = await pool.fetchval("SELECT count(*) FROM api_keys")
    finally:
        await pool.close()
    assert key is not None and key.project_id == "proj-1" and key.scope is KeyScope.PROJECT
    assert by_public == key
    assert project is not None and (project.name, project.org_name) == ("Proj", "Org")
    assert stored_secrets == 0 and keys == 1


def s3_config(bucket_prefix: str, database_url: str = "") -> IngestionConfig:
    """The local S3 with a bucket of this test's own (and this database, when one is needed)."""
    return IngestionConfig(
        s3_bucket=unique(bucket_prefix).replace("_", "-"),
        evals_addr=ENV["EVALS_ADDR"],
        redis_url=ENV["INGESTION_REDIS_URL"],
        kafka_bootstrap_servers=ENV["KAFKA_BOOTSTRAP_SERVERS"],
        internal_auth_token=ENV["INTERNAL_AUTH_TOKEN"],
        s3_endpoint_url=ENV["S3_ENDPOINT_URL"],
        s3_access_key=ENV["S3_ACCESS_KEY"],
        s3_secret_key=ENV["S3_SECRET_KEY"],
        database_url=database_url,
    )


async def test_event_log_bucket_is_created_once() -> None:
    cfg = s3_config("it-bucket")
    async with AsyncExitStack() as stack:
        s3 = await open_s3(cfg, stack)
        log = EventLog(s3, cfg.s3_bucket)
        await log.ensure_bucket()
        await log.ensure_bucket()
        await log.ping()
        buckets = {b["Name"] for b in (await s3.list_buckets())["Buckets"]}
    assert cfg.s3_bucket in buckets


def request_events(project_id: str, *trace_ids: str) -> list[events_pb2.IngestionEvent]:
    """A trace event and two observation events per trace, as one request brings them."""
    return [
        events_pb2.IngestionEvent(
            event_id=f"{trace_id}-{n}",
            project_id=project_id,
            trace_id=trace_id,
            entity_id=trace_id if n == 0 else f"{trace_id}-o{n}",
            type=events_pb2.EVENT_TYPE_TRACE_CREATE
            if n == 0
            else events_pb2.EVENT_TYPE_OBSERVATION_CREATE,
            body_json=orjson.dumps({"id": trace_id, "input": "x" * 100 * n}),
        )  # fmt: skip
        for trace_id in trace_ids
        for n in range(3)
    ]


class IndexedLog:
    """The event log and its index as ingestion writes them (one object per request), and the
    consumers that delete from them."""

    def __init__(self, s3: Any, bucket: str, pool: asyncpg.Pool) -> None:
        self.s3, self.bucket = s3, bucket
        self.log, self.index = EventLog(s3, bucket), EventLogIndex(pool)
        media = Media(pool, MediaObjects(s3, s3, bucket, 60), max_bytes=1)
        self.cleaner = EventLogCleaner(self.log, self.index, media)
        self.purger = ProjectPurger(self.log, self.index, media)

    async def request(self, project_id: str, *trace_ids: str) -> str:
        key = EventLog.key(project_id, datetime.now(UTC))
        events = request_events(project_id, *trace_ids)
        for event in events:
            event.event_log_key = key
        await self.log.put(key, encode_event_batch(events_pb2.IngestionEventBatch(events=events)))
        await self.index.add(project_id, key, set(trace_ids))
        return key

    async def events(self, key: str) -> list[events_pb2.IngestionEvent] | None:
        body = await self.log.get(key)
        return None if body is None else list(decode_event_batch(body).events)

    async def delete(self, project_id: str, *trace_ids: str) -> None:
        notice = events_pb2.TracesDeleted(project_id=project_id, trace_ids=trace_ids)
        await self.cleaner.handle([notice])


@pytest.fixture
async def indexed_log(pg_dsn: str) -> AsyncIterator[IndexedLog]:
    cfg = s3_config("it-log", pg_dsn)
    await migrate_postgres(pg_dsn, INGESTION_MIGRATIONS)
    async with AsyncExitStack() as stack:
        pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
        stack.push_async_callback(pool.close)
        s3 = await open_s3(cfg, stack)
        await EventLog(s3, cfg.s3_bucket).ensure_bucket()
        yield IndexedLog(s3, cfg.s3_bucket, pool)


async def test_deleting_traces_removes_their_events_from_shared_objects(
    indexed_log: IndexedLog,
) -> None:
    # "a/" is no prefix of "a/b", and an id of 800 characters fits the index.
    long_id = "ü" * 800
    shared = await indexed_log.request("p1", "a", "a/b", long_id, "kept")
    only_a = await indexed_log.request("p1", "a")
    kept_before = [e for e in await indexed_log.events(shared) or [] if e.trace_id == "kept"]
    other_project = await indexed_log.request("p2", "a")

    await indexed_log.delete("p1", "a", long_id)

    # The shared object keeps the other traces' events exactly; an object of the deleted trace
    # alone is gone; another project's trace of the same id is untouched.
    left = await indexed_log.events(shared)
    assert left is not None and {e.trace_id for e in left} == {"a/b", "kept"}
    assert [e.SerializeToString() for e in left if e.trace_id == "kept"] == [
        e.SerializeToString() for e in kept_before
    ]
    assert await indexed_log.events(only_a) is None
    assert {e.trace_id for e in await indexed_log.events(other_project) or []} == {"a"}
    assert await indexed_log.index.keys_of("p1", ["a", long_id]) == []
    assert await indexed_log.index.keys_of("p1", ["kept"]) == [shared]
    assert await indexed_log.index.keys_of("p2", ["a"]) == [other_project]

    # The last traces of an object take it with them.
    await indexed_log.delete("p1", "a/b", "kept")
    assert await indexed_log.events(shared) is None


async def test_a_redelivered_or_interrupted_deletion_converges(indexed_log: IndexedLog) -> None:
    first = await indexed_log.request("p1", "gone", "kept")
    second = await indexed_log.request("p1", "gone", "kept")
    # A crash after rewriting the first object: its index rows are still there.
    assert await indexed_log.log.remove_traces(first, {"gone"}) == "rewritten"
    assert await indexed_log.log.remove_traces(first, {"gone"}) == "unchanged"
    await indexed_log.delete("p1", "gone")
    after_one = {key: await indexed_log.events(key) for key in (first, second)}
    await indexed_log.delete("p1", "gone")  # redelivered: nothing changes
    assert {key: await indexed_log.events(key) for key in (first, second)} == after_one
    for events in after_one.values():
        assert events is not None and {e.trace_id for e in events} == {"kept"}
        assert len(events) == 3
    assert await indexed_log.index.keys_of("p1", ["gone"]) == []


async def test_a_deleted_project_loses_its_objects_and_index_rows(indexed_log: IndexedLog) -> None:
    for trace_id in ("t1", "t2"):
        await indexed_log.request("p", trace_id, "t3")
    kept = await indexed_log.request("p2", "t1")
    deleted = events_pb2.ProjectDeleted(project_id="p")
    await indexed_log.purger.handle([deleted])
    await indexed_log.purger.handle([deleted])  # a replay: nothing left
    assert await indexed_log.index.keys_of("p", ["t1", "t2", "t3"]) == []
    left = await indexed_log.s3.list_objects_v2(Bucket=indexed_log.bucket)
    assert [item["Key"] for item in left["Contents"]] == [kept]
    assert await indexed_log.index.keys_of("p2", ["t1"]) == [kept]


class DeletedOnceRead:
    """The real S3, where the first object read is deleted right after (as a project's deletion
    or the retention pass would, between a trace deletion's read and its rewrite)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.deleted = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    async def get_object(self, **kwargs: Any) -> Any:
        reply = await self._s3.get_object(**kwargs)
        if not self.deleted:
            self.deleted = True
            await self._s3.delete_object(**kwargs)
        return reply


async def test_an_object_deleted_during_its_rewrite_is_not_written_back(
    indexed_log: IndexedLog,
) -> None:
    key = await indexed_log.request("p1", "gone", "kept")
    racing = EventLog(DeletedOnceRead(indexed_log.s3), indexed_log.bucket)
    assert await racing.remove_traces(key, {"gone"}) == "unchanged"
    assert await indexed_log.events(key) is None
