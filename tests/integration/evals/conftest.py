"""The evals service's PostgreSQL schema, migrated once per test into the test database."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.common.migrate import migrate_postgres
from services.evals.server import MIGRATIONS


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate_postgres(pg_dsn, MIGRATIONS)
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=8)
    yield pool
    await pool.close()
