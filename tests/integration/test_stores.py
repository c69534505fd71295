from contextlib import AsyncExitStack
from datetime import UTC, datetime

import asyncpg

from libs.common.migrate import migrate_postgres
from services.gateway.config import InitSettings
from services.gateway.init import apply_init
from services.gateway.keys import hash_secret
from services.gateway.server import MIGRATIONS
from services.gateway.store import KeyScope, ProjectStore
from services.ingestion.config import IngestionConfig
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


def s3_config(bucket_prefix: str) -> IngestionConfig:
    """The local S3 with a bucket of this test's own."""
    return IngestionConfig(
        s3_bucket=unique(bucket_prefix).replace("_", "-"),
        evals_addr=ENV["EVALS_ADDR"],
        redis_url=ENV["INGESTION_REDIS_URL"],
        kafka_bootstrap_servers=ENV["KAFKA_BOOTSTRAP_SERVERS"],
        internal_auth_token=ENV["INTERNAL_AUTH_TOKEN"],
        s3_endpoint_url=ENV["S3_ENDPOINT_URL"],
        s3_access_key=ENV["S3_ACCESS_KEY"],
        s3_secret_key=ENV["S3_SECRET_KEY"],
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


async def test_event_log_deletes_exactly_the_objects_of_the_deleted_traces() -> None:
    cfg = s3_config("it-log")
    now = datetime.now(UTC)
    async with AsyncExitStack() as stack:
        log = EventLog(await open_s3(cfg, stack), cfg.s3_bucket)
        await log.ensure_bucket()
        # "a/" must not be the prefix of "a/b"'s objects, nor a long id overflow S3's key limit.
        for trace_id in ("a", "a", "a/b", "x" * 900):
            await log.put(EventLog.key("p1", trace_id, now), b"events")
        await log.put(EventLog.key("p2", "a", now), b"events")
        assert await log.delete_traces("p1", ["a", "x" * 900]) == 3
        assert await log.delete_traces("p1", ["a"]) == 0
        assert await log.delete_traces("p1", ["a/b"]) == 1
        assert await log.delete_traces("p2", ["a"]) == 1
