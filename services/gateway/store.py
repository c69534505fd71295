"""Organizations, projects and API keys in the gateway's PostgreSQL database."""

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    org_id: str
    org_name: str
    metadata: dict[str, Any]
    retention_days: int | None


class ProjectStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def key_by_secret_hash(self, secret_hash: str) -> ApiKey | None:
        row = await self._pool.fetchrow(
            "SELECT public_key, scope, org_id, project_id FROM api_keys WHERE secret_hash = $1",
            secret_hash,
        )
        return _key(row)

    async def key_by_public_key(self, public_key: str) -> ApiKey | None:
        row = await self._pool.fetchrow(
            "SELECT public_key, scope, org_id, project_id FROM api_keys WHERE public_key = $1",
            public_key,
        )
        return _key(row)

    async def project(self, project_id: str) -> Project | None:
        row = await self._pool.fetchrow(
            "SELECT p.id, p.name, p.org_id, o.name AS org_name, p.metadata::text AS metadata,"
            " p.retention_days FROM projects p JOIN organizations o ON o.id = p.org_id"
            " WHERE p.id = $1",
            project_id,
        )
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
        await self._pool.execute(
            "INSERT INTO projects (id, org_id, name) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
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


def _key(row: asyncpg.Record | None) -> ApiKey | None:
    if row is None:
        return None
    return ApiKey(row["public_key"], KeyScope(row["scope"]), row["org_id"], row["project_id"])
