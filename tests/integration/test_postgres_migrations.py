import asyncio
from pathlib import Path

import asyncpg
import pytest

from libs.common.migrate import MigrationError, load_migrations, migrate_postgres
from services.gateway.server import MIGRATIONS as GATEWAY_MIGRATIONS


async def test_creates_the_database_and_applies_each_file_once(pg_dsn: str) -> None:
    first = await migrate_postgres(pg_dsn, GATEWAY_MIGRATIONS)
    again = await migrate_postgres(pg_dsn, GATEWAY_MIGRATIONS)
    every = [m.version for m in load_migrations(GATEWAY_MIGRATIONS)]
    assert [m.version for m in first] == every and again == []
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
        versions = await conn.fetch("SELECT version FROM schema_migrations")
    finally:
        await conn.close()
    assert {"organizations", "projects", "api_keys", "schema_migrations"} <= tables
    assert [r["version"] for r in versions] == every


async def test_concurrent_runners_apply_each_migration_exactly_once(
    pg_dsn: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_counter.sql").write_text("CREATE TABLE counter (n int);")
    (tmp_path / "0002_row.sql").write_text("INSERT INTO counter VALUES (1);")
    await migrate_postgres(pg_dsn, tmp_path / "none")  # creates the database first
    await asyncio.gather(*(migrate_postgres(pg_dsn, tmp_path) for _ in range(4)))
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM counter") == 1
    finally:
        await conn.close()


async def test_an_edited_applied_migration_stops_the_runner(pg_dsn: str, tmp_path: Path) -> None:
    migration = tmp_path / "0001_t.sql"
    migration.write_text("CREATE TABLE t (x int);")
    await migrate_postgres(pg_dsn, tmp_path)
    migration.write_text("CREATE TABLE t (x bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate_postgres(pg_dsn, tmp_path)
