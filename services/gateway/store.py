"""Organizations, projects and API keys in the gateway's PostgreSQL database.

A deleted project keeps its row as a tombstone (`deleted_at`) until the gateway's own consumer of
the deletion event removes it: every read here skips tombstones, so a deleted project is gone for
the API at once.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg
import orjson


class KeyScope(StrEnum):
    PROJECT = "project"
    ORGANIZATION = "organization"


@dataclass(frozen=True, slots=True)
class ApiKey:
    public_key: str
    scope: KeyScope
    org_id: str
    project_id: str | None
    # The project's retention, which reads of the key's calls respect (libs/common/scope.py).
    retention_days: int | None = None


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    org_id: str
    org_name: str
    metadata: dict[str, Any]
    retention_days: int | None


@dataclass(frozen=True, slots=True)
class OrgProject:
    """A project as the organization's project list shows it."""

    id: str
    name: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class KeySummary:
    """A stored key as the management API lists it: never its secret."""

    id: str
    public_key: str
    display_secret_key: str
    note: str | None
    created_at: datetime


class KeyConflict(Exception):
    """The public key or the secret of a new key is taken already."""


_PROJECT = (
    "SELECT p.id, p.name, p.org_id, o.name AS org_name, p.metadata::text AS metadata,"
    " p.retention_days FROM projects p JOIN organizations o ON o.id = p.org_id"
    " WHERE p.id = $1 AND p.deleted_at IS NULL"
)
_KEY = (
    "SELECT k.public_key, k.scope, k.org_id, k.project_id, p.retention_days FROM api_keys k"
    " LEFT JOIN projects p ON p.id = k.project_id"
)
_KEY_SUMMARY = "SELECT id, public_key, display_secret_key, note, created_at FROM api_keys"


class ProjectStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def key_by_secret_hash(self, secret_hash: str) -> ApiKey | None:
        row = await self._pool.fetchrow(_KEY + " WHERE k.secret_hash = $1", secret_hash)
        return _key(row)

    async def key_by_public_key(self, public_key: str) -> ApiKey | None:
        row = await self._pool.fetchrow(_KEY + " WHERE k.public_key = $1", public_key)
        return _key(row)

    async def project(self, project_id: str) -> Project | None:
        """A live project (tombstones are not found)."""
        return _project(await self._pool.fetchrow(_PROJECT, project_id))

    async def org_project(self, org_id: str, project_id: str) -> Project | None:
        """A live project of this organization; another organization's is not found."""
        return _project(
            await self._pool.fetchrow(_PROJECT + " AND p.org_id = $2", project_id, org_id)
        )

    async def org_projects(self, org_id: str) -> list[OrgProject]:
        rows = await self._pool.fetch(
            "SELECT id, name, metadata::text AS metadata, created_at, updated_at FROM projects"
            " WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
            org_id,
        )
        return [
            OrgProject(
                r["id"], r["name"], orjson.loads(r["metadata"]), r["created_at"], r["updated_at"]
            )
            for r in rows
        ]

    async def create_project(
        self, org_id: str, name: str, metadata: dict[str, Any], retention_days: int | None
    ) -> Project:
        project_id = str(uuid.uuid4())
        await self._pool.execute(
            "INSERT INTO projects (id, org_id, name, metadata, retention_days)"
            " VALUES ($1, $2, $3, $4::jsonb, $5)",
            project_id,
            org_id,
            name,
            orjson.dumps(metadata).decode(),
            retention_days,
        )
        created = await self.project(project_id)
        assert created is not None
        return created

    async def update_project(
        self,
        org_id: str,
        project_id: str,
        *,
        name: str,
        metadata: dict[str, Any] | None,
        retention_days: int | None,
        set_retention: bool,
    ) -> Project | None:
        """Renames the project; metadata None and `set_retention` False keep what is stored. A
        retention set is announced again at the next round (services/gateway/retention.py)."""
        updated = await self._pool.fetchval(
            "UPDATE projects SET name = $3, metadata = COALESCE($4::jsonb, metadata),"
            " retention_days = CASE WHEN $5 THEN $6 ELSE retention_days END,"
            " retention_announced_at = CASE WHEN $5 THEN NULL ELSE retention_announced_at END,"
            " updated_at = now()"
            " WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL RETURNING id",
            project_id,
            org_id,
            name,
            None if metadata is None else orjson.dumps(metadata).decode(),
            set_retention,
            retention_days,
        )
        return None if updated is None else await self.project(project_id)

    async def mark_project_deleted(self, org_id: str, project_id: str) -> bool:
        """Tombstones the project and deletes its keys in one transaction; False if this
        organization has no such project. A tombstone is found again, so a repeated deletion
        (a retry) announces it again."""
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                "UPDATE projects SET deleted_at = COALESCE(deleted_at, now())"
                " WHERE id = $1 AND org_id = $2 RETURNING id",
                project_id,
                org_id,
            )
            await conn.execute("DELETE FROM api_keys WHERE project_id = $1", project_id)
        return found is not None

    async def purge_project(self, project_id: str) -> None:
        """Removes a tombstoned project's row (its keys went with the tombstone). A project that
        headless init brought back in the meantime is left alone."""
        await self._pool.execute(
            "DELETE FROM projects WHERE id = $1 AND deleted_at IS NOT NULL", project_id
        )

    async def project_keys(self, project_id: str) -> list[KeySummary]:
        rows = await self._pool.fetch(
            _KEY_SUMMARY + " WHERE project_id = $1 ORDER BY created_at, id", project_id
        )
        return [_summary(r) for r in rows]

    async def org_keys(self, org_id: str) -> list[KeySummary]:
        rows = await self._pool.fetch(
            _KEY_SUMMARY + " WHERE org_id = $1 AND scope = 'organization' ORDER BY created_at, id",
            org_id,
        )
        return [_summary(r) for r in rows]

    async def create_key(
        self,
        *,
        public_key: str,
        secret_hash: str,
        display_secret_key: str,
        org_id: str,
        project_id: str,
        note: str | None,
    ) -> KeySummary:
        """A new project key; KeyConflict if its public key or secret is taken."""
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO api_keys (id, public_key, secret_hash, display_secret_key, scope,"
                " org_id, project_id, note) VALUES ($1, $2, $3, $4, 'project', $5, $6, $7)"
                " RETURNING id, public_key, display_secret_key, note, created_at",
                str(uuid.uuid4()),
                public_key,
                secret_hash,
                display_secret_key,
                org_id,
                project_id,
                note,
            )
        except asyncpg.UniqueViolationError as exc:
            raise KeyConflict from exc
        assert row is not None
        return _summary(row)

    async def delete_key(self, project_id: str, key_id: str) -> bool:
        deleted = await self._pool.fetchval(
            "DELETE FROM api_keys WHERE id = $1 AND project_id = $2 RETURNING id",
            key_id,
            project_id,
        )
        return deleted is not None

    async def upsert_organization(self, org_id: str, name: str) -> None:
        await self._pool.execute(
            "INSERT INTO organizations (id, name) VALUES ($1, $2)"
            " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
            org_id,
            name,
        )

    async def add_organization_if_missing(self, org_id: str, name: str) -> None:
        await self._pool.execute(
            "INSERT INTO organizations (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            org_id,
            name,
        )

    async def upsert_project(self, project_id: str, org_id: str, name: str) -> None:
        """Creates or renames the project; a tombstoned one comes back (headless init names it
        at every start, as Langfuse's does)."""
        await self._pool.execute(
            "INSERT INTO projects (id, org_id, name) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, deleted_at = NULL,"
            " updated_at = now()",
            project_id,
            org_id,
            name,
        )

    async def put_key(
        self,
        *,
        public_key: str,
        secret_hash: str,
        display_secret_key: str,
        scope: KeyScope,
        org_id: str,
        project_id: str | None,
        note: str = "",
    ) -> None:
        """Create the key, or re-point an existing public key at this secret and owner."""
        await self._pool.execute(
            "INSERT INTO api_keys (id, public_key, secret_hash, display_secret_key, scope,"
            " org_id, project_id, note)"
            " VALUES (gen_random_uuid()::text, $1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (public_key) DO UPDATE SET secret_hash = EXCLUDED.secret_hash,"
            " display_secret_key = EXCLUDED.display_secret_key, scope = EXCLUDED.scope,"
            " org_id = EXCLUDED.org_id, project_id = EXCLUDED.project_id",
            public_key,
            secret_hash,
            display_secret_key,
            scope.value,
            org_id,
            project_id,
            note,
        )


def _project(row: asyncpg.Record | None) -> Project | None:
    if row is None:
        return None
    return Project(
        id=row["id"],
        name=row["name"],
        org_id=row["org_id"],
        org_name=row["org_name"],
        metadata=orjson.loads(row["metadata"]),
        retention_days=row["retention_days"],
    )


def _summary(row: asyncpg.Record) -> KeySummary:
    return KeySummary(
        row["id"], row["public_key"], row["display_secret_key"], row["note"], row["created_at"]
    )


def _key(row: asyncpg.Record | None) -> ApiKey | None:
    if row is None:
        return None
    return ApiKey(
        row["public_key"],
        KeyScope(row["scope"]),
        row["org_id"],
        row["project_id"],
        row["retention_days"],
    )
