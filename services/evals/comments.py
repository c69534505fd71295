"""Comments on traces, observations, sessions and prompt versions: the create body's rules (pure),
the PostgreSQL store, the public `Comment` document, and the RPCs (CommentApi).

A comment is written only once the object's owner (query or prompts service) has found the object
in the caller's project (references.py). Langfuse's rules: content of 1 to 5,000 characters after
trimming, an objectType of its enum; the body's projectId is checked against the key's project
(Langfuse replaces it silently, we refuse another project's id rather than guess)."""

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from libs.common.errors import NotFound, PermissionDenied
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.json_bodies import parse_body
from libs.common.scope import ProjectScope, read_cutoff
from services.evals.fields import (
    checked_page,
    checked_text,
    findable,
    indexable,
    invalid,
    iso,
    optional_text,
    page_meta,
    text,
)
from services.evals.references import ObjectLookup

OBJECT_TYPES = ("TRACE", "OBSERVATION", "SESSION", "PROMPT")
# The limit Langfuse's API reference states for a comment's content.
CONTENT_MAX_LENGTH = 5000


@dataclass(frozen=True, slots=True)
class NewComment:
    object_type: str
    object_id: str
    content: str
    author_user_id: str | None


def object_type(value: Any, allowed: tuple[str, ...], field: str = "objectType") -> str:
    if value not in allowed:
        raise invalid(f"{field} must be one of {', '.join(allowed)}")
    return str(value)


def new_comment(body: dict[str, Any], project_id: str) -> NewComment:
    """The fields of a `CreateCommentRequest`; InvalidArgument names the field."""
    given_project = text(body.get("projectId"), "projectId")
    if given_project != project_id:
        raise PermissionDenied(
            "projectId does not match the project of the API key; comments can only be created"
            " in the key's project"
        )
    content = body.get("content")
    if not isinstance(content, str) or not content.strip():
        raise invalid("content must be a non-empty string")
    return NewComment(
        object_type=object_type(body.get("objectType"), OBJECT_TYPES),
        object_id=indexable(text(body.get("objectId"), "objectId"), "objectId"),
        content=checked_text(content.strip(), "content", CONTENT_MAX_LENGTH),
        author_user_id=optional_text(body.get("authorUserId"), "authorUserId"),
    )


class CommentApi:
    def __init__(self, pool: asyncpg.Pool, objects: ObjectLookup) -> None:
        self._store = CommentStore(pool)
        self._objects = objects

    async def create(
        self, scope: ProjectScope, request: evals_pb2.CreateCommentRequest
    ) -> evals_pb2.CreateCommentResponse:
        scope.require_project_access()
        comment = new_comment(parse_body(request.body_json), scope.project_id)
        await self._objects.require(scope, comment.object_type, comment.object_id)
        comment_id = await self._store.create(scope.project_id, comment)
        return evals_pb2.CreateCommentResponse(comment_id=comment_id)

    async def get(
        self, scope: ProjectScope, request: evals_pb2.GetCommentRequest
    ) -> evals_pb2.GetCommentResponse:
        found = findable(request.comment_id)
        document = await self._store.get(scope.project_id, request.comment_id) if found else None
        if document is None:
            raise NotFound("Comment not found within authorized project")
        return evals_pb2.GetCommentResponse(comment_json=orjson.dumps(document))

    async def list(
        self, scope: ProjectScope, request: evals_pb2.ListCommentsRequest
    ) -> evals_pb2.ListCommentsResponse:
        page, limit = checked_page(request.page)
        if request.object_id and not request.object_type:
            raise invalid("objectType is required when objectId is given")
        if request.object_type:
            object_type(request.object_type, OBJECT_TYPES)
        filters = CommentFilter(
            request.object_type or None,
            optional_text(request.object_id or None, "objectId"),
            optional_text(request.author_user_id or None, "authorUserId"),
        )
        documents, total = await self._store.page(scope.project_id, filters, page, limit)
        return evals_pb2.ListCommentsResponse(
            comments_json=[orjson.dumps(document) for document in documents],
            meta=page_meta(page, limit, total),
        )


@dataclass(frozen=True, slots=True)
class CommentFilter:
    """None: any."""

    object_type: str | None
    object_id: str | None
    author_user_id: str | None


# Comments on the project's traced data (not on prompts) older than its retention are hidden, as
# the retention pass deletes them (services/evals/retention.py).
_RETAINED = "({cutoff}::timestamptz IS NULL OR object_type = 'PROMPT' OR created_at >= {cutoff})"


class CommentStore:
    """Comments in PostgreSQL; every query is bound to one project."""

    _COLUMNS = (
        "id, project_id, object_type, object_id, content, author_user_id, created_at, updated_at"
    )
    # A filter that is NULL matches every row.
    _WHERE = (
        "project_id = $1 AND ($2::text IS NULL OR object_type = $2)"
        " AND ($3::text IS NULL OR object_id = $3) AND ($4::text IS NULL OR author_user_id = $4)"
        f" AND {_RETAINED.format(cutoff='$5')}"
    )

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, project_id: str, comment: NewComment) -> str:
        comment_id = str(uuid.uuid4())
        await self._pool.execute(
            "INSERT INTO comments (project_id, id, object_type, object_id, content,"
            " author_user_id) VALUES ($1, $2, $3, $4, $5, $6)",
            project_id,
            comment_id,
            comment.object_type,
            comment.object_id,
            comment.content,
            comment.author_user_id,
        )
        return comment_id

    async def get(self, project_id: str, comment_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"SELECT {self._COLUMNS} FROM comments WHERE project_id = $1 AND id = $2"
            f" AND {_RETAINED.format(cutoff='$3')}",
            project_id,
            comment_id,
            read_cutoff(),
        )
        return comment_document(row) if row else None

    async def page(
        self, project_id: str, filters: CommentFilter, page: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page, newest first, and the count of all matching comments."""
        args = (project_id, filters.object_type, filters.object_id, filters.author_user_id,
                read_cutoff())  # fmt: skip
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"SELECT {self._COLUMNS} FROM comments WHERE {self._WHERE}"
                " ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7",
                *args,
                limit,
                (page - 1) * limit,
            )
            total = await connection.fetchval(
                f"SELECT count(*) FROM comments WHERE {self._WHERE}", *args
            )
        return [comment_document(row) for row in rows], total


def comment_document(row: asyncpg.Record) -> dict[str, Any]:
    """Langfuse's `Comment`."""
    return {
        "id": row["id"],
        "projectId": row["project_id"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "objectType": row["object_type"],
        "objectId": row["object_id"],
        "content": row["content"],
        "authorUserId": row["author_user_id"],
    }
