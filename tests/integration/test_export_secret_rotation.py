"""Rotating QUERY_ENCRYPTION_KEY: the blob-storage export secrets sealed with the previous key are
re-sealed with the new one (`python -m services.query.rotate_secrets`), against real PostgreSQL."""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from libs.common.migrate import migrate_postgres
from libs.common.secret_box import SecretBox
from services.query.export_store import ExportSettings, ExportStore

MIGRATIONS = Path(__file__).parents[2] / "services" / "query" / "migrations" / "postgres"
SETTINGS = ExportSettings(
    type="S3_COMPATIBLE", bucket_name="b", endpoint="http://127.0.0.1:1", region="us-east-1",
    access_key_id="AKIA", prefix="", force_path_style=True, export_frequency="daily",
    file_type="JSONL", compressed=True, export_mode="FULL_HISTORY", export_start_date=None,
    export_source="LEGACY_TRACES_OBSERVATIONS", export_field_groups=None, enabled=True,
)  # fmt: skip


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate_postgres(pg_dsn, MIGRATIONS)
    async with asyncpg.create_pool(pg_dsn, min_size=1, max_size=2) as created:
        yield created


async def test_a_key_rotation_reseals_every_export_secret_with_the_new_key(
    pool: asyncpg.Pool,
) -> None:
    old, new = os.urandom(32), os.urandom(32)
    store = ExportStore(pool)
    for project in ("p1", "p2"):
        await store.upsert(project, SETTINGS, SecretBox(old).seal(f"secret-of-{project}", project))

    rotating = SecretBox(new, previous=old)
    assert await store.reseal_all(rotating) == 2
    assert await store.reseal_all(rotating) == 0

    for project in ("p1", "p2"):
        integration = await store.get(project)
        assert integration is not None
        assert SecretBox(new).open(integration.sealed_secret, project) == f"secret-of-{project}"
