"""Forward-only SQL migrations for PostgreSQL and ClickHouse, one runner for both.

Files are `NNNN_snake_name.sql` in a service's `migrations/<engine>/` folder. Each target keeps a
`schema_migrations` table of applied versions with a checksum; a changed applied file is an error,
never silently re-run. To undo something, add a new migration.
"""

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncpg
import structlog

log = structlog.get_logger()

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The file split into statements: a `;` at the end of a line ends one (ClickHouse runs
        one statement per query)."""
        parts = re.split(r";\s*$", self.sql, flags=re.MULTILINE)
        return [part.strip() for part in parts if part.strip()]


def load_migrations(folder: Path) -> list[Migration]:
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"bad migration file name: {path.name}")
        migrations.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {folder}")
    return migrations


class MigrationTarget(Protocol):
    """A database that records applied migrations. `apply` runs one migration and records it."""

    async def applied(self) -> dict[int, str]: ...

    async def apply(self, migration: Migration) -> None: ...


async def migrate(target: MigrationTarget, migrations: Sequence[Migration]) -> list[Migration]:
    """Apply pending migrations in order; return the ones applied now."""
    applied = await target.applied()
    done: list[Migration] = []
    for migration in migrations:
        checksum = applied.get(migration.version)
        if checksum is None:
            await target.apply(migration)
            log.info("migration_applied", version=migration.version, name=migration.name)
            done.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version}_{migration.name} changed after it was applied"
            )
    return done


class PostgresTarget:
    """Runs each migration in its own transaction under an advisory lock, so concurrent runners
    (two replicas, a hook job and a developer) apply each file exactly once."""

    _LOCK_ID = 7_150_291

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def applied(self) -> dict[int, str]:
        await self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await self._conn.fetch("SELECT version, checksum FROM schema_migrations")
        return {row["version"]: row["checksum"] for row in rows}

    async def apply(self, migration: Migration) -> None:
        async with self._conn.transaction():
            await self._conn.execute("SELECT pg_advisory_xact_lock($1)", self._LOCK_ID)
            exists = await self._conn.fetchval(
                "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
            )
            if exists:
                return
            await self._conn.execute(migration.sql)
            await self._conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )


async def migrate_postgres(dsn: str, folder: Path) -> list[Migration]:
    """Create the database named in `dsn` if missing, then apply `folder`'s migrations."""
    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(PostgresTarget(conn), load_migrations(folder))
    finally:
        await conn.close()


async def ensure_database(dsn: str) -> None:
    """Each service owns a database; in development they share one server, so create it on
    first use by connecting to the server's `postgres` database."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return
    prefix, _, rest = dsn.rpartition("/")
    name, _, query = rest.partition("?")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise MigrationError(f"refusing to create database with name {name!r}")
    admin = await asyncpg.connect(f"{prefix}/postgres" + (f"?{query}" if query else ""))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.DuplicateDatabaseError:
        pass
    finally:
        await admin.close()
