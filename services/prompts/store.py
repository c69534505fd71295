"""Prompt versions in PostgreSQL. Writes to one name are serialized by an advisory lock inside
the transaction, so concurrent creates get versions 1, 2, 3... with no gap or duplicate, and a
label always sits on exactly one version of a name."""

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import asyncpg
import orjson

from libs.common.errors import InvalidArgument, NotFound
from services.prompts.composition import Reference
from services.prompts.versions import LATEST, NewPrompt, PromptType, PromptVersion

_COLUMNS = (
    "id, project_id, name, version, type, prompt::text AS prompt, config::text AS config,"
    " labels, tags, commit_message, created_at, updated_at"
)

Finder = Callable[[Reference], Awaitable[PromptVersion | None]]
P = ParamSpec("P")
R = TypeVar("R")
# Checks a draft version inside the create transaction, given a finder over the same snapshot.
Validator = Callable[[PromptVersion, Finder], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PromptSummary:
    name: str
    type: PromptType
    versions: list[int]
    labels: list[str]
    tags: list[str]
    last_updated_at: datetime
    last_config: Any


@dataclass(frozen=True, slots=True)
class ListFilter:
    name: str | None = None
    label: str | None = None
    tag: str | None = None
    from_updated_at: datetime | None = None
    to_updated_at: datetime | None = None


def _text_checked(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """PostgreSQL's text and jsonb cannot hold NUL (U+0000): a name, label or prompt carrying one
    is the client's mistake, answered as such instead of as a store failure."""

    @functools.wraps(method)
    async def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError) as exc:
            raise InvalidArgument("Text must not contain NUL (\\u0000) characters") from exc

    return checked


class PromptStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @_text_checked
    async def create(self, project_id: str, new: NewPrompt, validate: Validator) -> PromptVersion:
        """Creates the next version of `new.name`; `validate` checks the draft (composition)
        inside the transaction, with a lookup that sees the same snapshot."""
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock(conn, project_id, new.name)
            latest = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM prompts WHERE project_id = $1 AND name = $2"
                " ORDER BY version DESC LIMIT 1",
                project_id,
                new.name,
            )
            if latest is not None and latest["type"] != new.type.value:
                raise InvalidArgument(
                    f"Prompt '{new.name}' is of type {latest['type']}; a new version cannot be"
                    f" of type {new.type.value}"
                )
            version = 1 if latest is None else latest["version"] + 1
            tags = new.tags if new.tags is not None else tuple(latest["tags"] if latest else ())
            labels = (*new.labels, LATEST) if LATEST not in new.labels else new.labels
            draft = await conn.fetchrow(
                "INSERT INTO prompts (id, project_id, name, version, type, prompt, config, labels,"
                " tags, commit_message) VALUES (gen_random_uuid()::text, $1, $2, $3, $4,"
                f" $5::jsonb, $6::jsonb, $7, $8, $9) RETURNING {_COLUMNS}",
                project_id,
                new.name,
                version,
                new.type.value,
                orjson.dumps(new.prompt).decode(),
                orjson.dumps(new.config).decode(),
                list(labels),
                list(tags),
                new.commit_message,
            )
            created = _version(draft)
            await validate(created, lambda ref: _find(conn, project_id, ref))
            await _take_labels(conn, project_id, new.name, version, labels)
            if new.tags is not None:
                await conn.execute(
                    "UPDATE prompts SET tags = $3 WHERE project_id = $1 AND name = $2",
                    project_id,
                    new.name,
                    list(tags),
                )
            return created

    @_text_checked
    async def find(self, project_id: str, reference: Reference) -> PromptVersion | None:
        async with self._pool.acquire() as conn:
            return await _find(conn, project_id, reference)

    @_text_checked
    async def name_and_version(self, project_id: str, prompt_id: str) -> tuple[str, int] | None:
        """The name and version of the project's prompt version `prompt_id`."""
        row = await self._pool.fetchrow(
            "SELECT name, version FROM prompts WHERE project_id = $1 AND id = $2",
            project_id,
            prompt_id,
        )
        return None if row is None else (row["name"], row["version"])

    @_text_checked
    async def add_labels(
        self, project_id: str, name: str, version: int, labels: tuple[str, ...]
    ) -> PromptVersion:
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock(conn, project_id, name)
            row = await conn.fetchrow(
                "UPDATE prompts SET labels = labels"
                " || ARRAY(SELECT l FROM unnest($4::text[]) l WHERE l <> ALL(labels)),"
                " updated_at = now() WHERE project_id = $1 AND name = $2 AND version = $3"
                f" RETURNING {_COLUMNS}",
                project_id,
                name,
                version,
                list(labels),
            )
            if row is None:
                raise NotFound(f"Prompt not found: '{name}' with version {version}")
            await _take_labels(conn, project_id, name, version, labels)
            return _version(row)

    async def delete_project(self, project_id: str) -> int:
        """Deletes every version of every prompt of a deleted project; returns how many."""
        status = await self._pool.execute("DELETE FROM prompts WHERE project_id = $1", project_id)
        return int(status.rpartition(" ")[2])

    @_text_checked
    async def delete(
        self, project_id: str, name: str, version: int | None, label: str | None
    ) -> int:
        """Deletes the matching versions; `latest` moves to the newest survivor."""
        async with self._pool.acquire() as conn, conn.transaction():
            await _lock(conn, project_id, name)
            result = await conn.execute(
                "DELETE FROM prompts WHERE project_id = $1 AND name = $2"
                " AND ($3::int IS NULL OR version = $3) AND ($4::text IS NULL OR $4 = ANY(labels))",
                project_id,
                name,
                version,
                label,
            )
            deleted = int(result.split()[-1])
            await conn.execute(
                "UPDATE prompts SET labels = array_append(labels, $3) WHERE project_id = $1"
                " AND name = $2 AND NOT ($3 = ANY(labels)) AND version = (SELECT max(version)"
                " FROM prompts WHERE project_id = $1 AND name = $2)",
                project_id,
                name,
                LATEST,
            )
            return deleted

    @_text_checked
    async def list(
        self, project_id: str, where: ListFilter, page: int, limit: int
    ) -> tuple[list[PromptSummary], int]:
        filters = (
            "project_id = $1 AND ($2::text IS NULL OR name = $2)"
            " AND ($3::text IS NULL OR $3 = ANY(labels)) AND ($4::text IS NULL OR $4 = ANY(tags))"
            " AND ($5::timestamptz IS NULL OR updated_at >= $5)"
            " AND ($6::timestamptz IS NULL OR updated_at < $6)"
        )
        args = (
            project_id,
            where.name,
            where.label,
            where.tag,
            where.from_updated_at,
            where.to_updated_at,
        )
        rows = await self._pool.fetch(
            f"WITH matched AS (SELECT * FROM prompts WHERE {filters}),"
            " names AS (SELECT name, max(updated_at) AS last_updated_at,"
            " max(version) AS last_version, array_agg(version ORDER BY version) AS versions"
            " FROM matched GROUP BY name)"
            " SELECT n.name, n.versions, n.last_updated_at, p.type, p.tags,"
            " p.config::text AS last_config, ARRAY(SELECT DISTINCT l FROM matched m,"
            " unnest(m.labels) l WHERE m.name = n.name ORDER BY l) AS labels"
            " FROM names n JOIN matched p ON p.name = n.name AND p.version = n.last_version"
            " ORDER BY n.last_updated_at DESC, n.name LIMIT $7 OFFSET $8",
            *args,
            limit,
            (page - 1) * limit,
        )
        total = await self._pool.fetchval(
            f"SELECT count(DISTINCT name) FROM prompts WHERE {filters}", *args
        )
        summaries = [
            PromptSummary(
                name=row["name"],
                type=PromptType(row["type"]),
                versions=list(row["versions"]),
                labels=list(row["labels"]),
                tags=list(row["tags"]),
                last_updated_at=row["last_updated_at"],
                last_config=orjson.loads(row["last_config"]),
            )
            for row in rows
        ]
        return summaries, int(total)


async def _lock(conn: asyncpg.Connection, project_id: str, name: str) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{project_id}/{name}"
    )


async def _take_labels(
    conn: asyncpg.Connection, project_id: str, name: str, version: int, labels: tuple[str, ...]
) -> None:
    """A label belongs to one version of a name: remove it from every other version."""
    await conn.execute(
        "UPDATE prompts SET labels = ARRAY(SELECT l FROM unnest(labels) l WHERE l <> ALL($4))"
        " WHERE project_id = $1 AND name = $2 AND version <> $3 AND labels && $4",
        project_id,
        name,
        version,
        list(labels),
    )


async def _find(
    conn: asyncpg.Connection, project_id: str, reference: Reference
) -> PromptVersion | None:
    if reference.version is not None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM prompts WHERE project_id = $1 AND name = $2 AND version = $3",
            project_id,
            reference.name,
            reference.version,
        )
    else:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM prompts WHERE project_id = $1 AND name = $2"
            " AND $3 = ANY(labels)",
            project_id,
            reference.name,
            reference.label,
        )
    return None if row is None else _version(row)


def _version(row: asyncpg.Record) -> PromptVersion:
    return PromptVersion(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        version=row["version"],
        type=PromptType(row["type"]),
        prompt=orjson.loads(row["prompt"]),
        config=orjson.loads(row["config"]),
        labels=tuple(row["labels"]),
        tags=tuple(row["tags"]),
        commit_message=row["commit_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
