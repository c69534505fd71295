"""Annotation queues: the bodies' rules (pure), the PostgreSQL store, the public `AnnotationQueue`
and `AnnotationQueueItem` documents, and the RPCs (AnnotationQueueApi).

A queue names the score configs its reviewers fill in: each must be a config of the project that
is not archived. Its items are traces, observations or sessions of the project (checked with
their owner, references.py), PENDING or COMPLETED; completing one records when and who (the
public API has no users: the caller's public key). Assignments keep the user id as given, there
being no users here. The scores reviewers give are ordinary scores (`source` ANNOTATION,
`queueId`, `configId`), which ingestion checks against the config like any other."""

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from libs.common.errors import Conflict, NotFound
from libs.common.gen.obs.evals.v1 import evals_pb2
from libs.common.json_bodies import parse_body
from libs.common.scope import ProjectScope, read_cutoff
from services.evals.comments import object_type
from services.evals.fields import (
    checked_page,
    findable,
    indexable,
    invalid,
    iso,
    optional_text,
    page_meta,
    text,
)
from services.evals.references import ObjectLookup

OBJECT_TYPES = ("TRACE", "OBSERVATION", "SESSION")
STATUSES = ("PENDING", "COMPLETED")
QUEUE_NOT_FOUND = "Annotation queue not found"
ITEM_NOT_FOUND = "Annotation queue item not found"


@dataclass(frozen=True, slots=True)
class NewQueue:
    name: str
    description: str | None
    score_config_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewItem:
    object_id: str
    object_type: str
    status: str


def new_queue(body: dict[str, Any]) -> NewQueue:
    """The fields of a `CreateAnnotationQueueRequest`; InvalidArgument names the field."""
    config_ids = body.get("scoreConfigIds")
    if not isinstance(config_ids, list):
        raise invalid("scoreConfigIds must be a list of score config ids")
    for config_id in config_ids:
        text(config_id, "every scoreConfigIds entry")
    return NewQueue(
        name=indexable(text(body.get("name"), "name"), "name"),
        description=optional_text(body.get("description"), "description", max_length=None),
        # Each config once, in the order given.
        score_config_ids=tuple(dict.fromkeys(config_ids)),
    )


def new_item(body: dict[str, Any]) -> NewItem:
    """The fields of a `CreateAnnotationQueueItemRequest`; status defaults to PENDING."""
    return NewItem(
        object_id=text(body.get("objectId"), "objectId"),
        object_type=object_type(body.get("objectType"), OBJECT_TYPES),
        status=status(body.get("status") or "PENDING"),
    )


def status(value: Any) -> str:
    return object_type(value, STATUSES, "status")


class AnnotationQueueApi:
    def __init__(self, pool: asyncpg.Pool, objects: ObjectLookup) -> None:
        self._store = AnnotationQueueStore(pool)
        self._objects = objects

    # Queues.

    async def create_queue(
        self, scope: ProjectScope, request: evals_pb2.CreateAnnotationQueueRequest
    ) -> evals_pb2.CreateAnnotationQueueResponse:
        scope.require_project_access()
        queue = new_queue(parse_body(request.body_json))
        document = await self._store.create_queue(scope.project_id, queue)
        return evals_pb2.CreateAnnotationQueueResponse(queue_json=orjson.dumps(document))

    async def get_queue(
        self, scope: ProjectScope, request: evals_pb2.GetAnnotationQueueRequest
    ) -> evals_pb2.GetAnnotationQueueResponse:
        document = await self._queue(scope, request.queue_id)
        return evals_pb2.GetAnnotationQueueResponse(queue_json=orjson.dumps(document))

    async def list_queues(
        self, scope: ProjectScope, request: evals_pb2.ListAnnotationQueuesRequest
    ) -> evals_pb2.ListAnnotationQueuesResponse:
        page, limit = checked_page(request.page)
        documents, total = await self._store.queues(scope.project_id, page, limit)
        return evals_pb2.ListAnnotationQueuesResponse(
            queues_json=[orjson.dumps(document) for document in documents],
            meta=page_meta(page, limit, total),
        )

    # Items.

    async def create_item(
        self, scope: ProjectScope, request: evals_pb2.CreateAnnotationQueueItemRequest
    ) -> evals_pb2.CreateAnnotationQueueItemResponse:
        scope.require_project_access()
        item = new_item(parse_body(request.body_json))
        await self._queue(scope, request.queue_id)
        await self._objects.require(scope, item.object_type, item.object_id)
        document = await self._store.create_item(
            scope.project_id, request.queue_id, item, request.actor
        )
        return evals_pb2.CreateAnnotationQueueItemResponse(item_json=orjson.dumps(document))

    async def get_item(
        self, scope: ProjectScope, request: evals_pb2.GetAnnotationQueueItemRequest
    ) -> evals_pb2.GetAnnotationQueueItemResponse:
        await self._queue(scope, request.queue_id)
        document = None
        if findable(request.item_id):
            document = await self._store.item(scope.project_id, request.queue_id, request.item_id)
        if document is None:
            raise NotFound(ITEM_NOT_FOUND)
        return evals_pb2.GetAnnotationQueueItemResponse(item_json=orjson.dumps(document))

    async def list_items(
        self, scope: ProjectScope, request: evals_pb2.ListAnnotationQueueItemsRequest
    ) -> evals_pb2.ListAnnotationQueueItemsResponse:
        page, limit = checked_page(request.page)
        wanted = status(request.status) if request.status else None
        await self._queue(scope, request.queue_id)
        documents, total = await self._store.items(
            scope.project_id, request.queue_id, wanted, page, limit
        )
        return evals_pb2.ListAnnotationQueueItemsResponse(
            items_json=[orjson.dumps(document) for document in documents],
            meta=page_meta(page, limit, total),
        )

    async def update_item(
        self, scope: ProjectScope, request: evals_pb2.UpdateAnnotationQueueItemRequest
    ) -> evals_pb2.UpdateAnnotationQueueItemResponse:
        scope.require_project_access()
        # The SDK sends no body at all when no status is given.
        body = parse_body(request.body_json) if request.body_json.strip() else {}
        given = body.get("status")
        new_status = None if given is None else status(given)
        await self._queue(scope, request.queue_id)
        document = None
        if findable(request.item_id):
            document = await self._store.update_item(
                scope.project_id, request.queue_id, request.item_id, new_status, request.actor
            )
        if document is None:
            raise NotFound(ITEM_NOT_FOUND)
        return evals_pb2.UpdateAnnotationQueueItemResponse(item_json=orjson.dumps(document))

    async def delete_item(
        self, scope: ProjectScope, request: evals_pb2.DeleteAnnotationQueueItemRequest
    ) -> evals_pb2.DeleteAnnotationQueueItemResponse:
        scope.require_project_access()
        await self._queue(scope, request.queue_id)
        deleted = findable(request.item_id) and await self._store.delete_item(
            scope.project_id, request.queue_id, request.item_id
        )
        if not deleted:
            raise NotFound(ITEM_NOT_FOUND)
        return evals_pb2.DeleteAnnotationQueueItemResponse()

    # Assignments.

    async def assign(
        self, scope: ProjectScope, request: evals_pb2.CreateAnnotationQueueAssignmentRequest
    ) -> evals_pb2.CreateAnnotationQueueAssignmentResponse:
        scope.require_project_access()
        user_id = indexable(text(parse_body(request.body_json).get("userId"), "userId"), "userId")
        await self._queue(scope, request.queue_id)
        await self._store.assign(scope.project_id, request.queue_id, user_id)
        document = {"userId": user_id, "queueId": request.queue_id, "projectId": scope.project_id}
        return evals_pb2.CreateAnnotationQueueAssignmentResponse(
            assignment_json=orjson.dumps(document)
        )

    async def unassign(
        self, scope: ProjectScope, request: evals_pb2.DeleteAnnotationQueueAssignmentRequest
    ) -> evals_pb2.DeleteAnnotationQueueAssignmentResponse:
        """Succeeds whether or not the user was assigned (as in Langfuse)."""
        scope.require_project_access()
        user_id = text(parse_body(request.body_json).get("userId"), "userId")
        await self._queue(scope, request.queue_id)
        await self._store.unassign(scope.project_id, request.queue_id, user_id)
        return evals_pb2.DeleteAnnotationQueueAssignmentResponse()

    async def _queue(self, scope: ProjectScope, queue_id: str) -> dict[str, Any]:
        document = None
        if findable(queue_id):
            document = await self._store.queue(scope.project_id, queue_id)
        if document is None:
            raise NotFound(QUEUE_NOT_FOUND)
        return document


class AnnotationQueueStore:
    """Queues, items and assignments in PostgreSQL; every query is bound to one project."""

    _QUEUE = "id, name, description, score_config_ids, created_at, updated_at"
    _ITEM = "id, queue_id, object_id, object_type, status, completed_at, created_at, updated_at"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_queue(self, project_id: str, queue: NewQueue) -> dict[str, Any]:
        """The configs are read under a share lock, so none is archived before the queue that
        names it is committed."""
        async with self._pool.acquire() as connection, connection.transaction():
            configs = await connection.fetch(
                "SELECT id, is_archived FROM score_configs"
                " WHERE project_id = $1 AND id = ANY($2::text[]) FOR SHARE",
                project_id,
                list(queue.score_config_ids),
            )
            found = {row["id"]: row["is_archived"] for row in configs}
            for config_id in queue.score_config_ids:
                if config_id not in found:
                    raise invalid(f"score config {config_id!r} not found within the project")
                if found[config_id]:
                    raise invalid(f"score config {config_id!r} is archived")
            row = await connection.fetchrow(
                "INSERT INTO annotation_queues (project_id, id, name, description,"
                " score_config_ids) VALUES ($1, $2, $3, $4, $5)"
                f" ON CONFLICT (project_id, name) DO NOTHING RETURNING {self._QUEUE}",
                project_id,
                str(uuid.uuid4()),
                queue.name,
                queue.description,
                list(queue.score_config_ids),
            )
        if row is None:
            raise Conflict("A queue with this name already exists.")
        return queue_document(row)

    async def queue(self, project_id: str, queue_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"SELECT {self._QUEUE} FROM annotation_queues WHERE project_id = $1 AND id = $2",
            project_id,
            queue_id,
        )
        return queue_document(row) if row else None

    async def queues(
        self, project_id: str, page: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page, newest first, and the project's total count."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"SELECT {self._QUEUE} FROM annotation_queues WHERE project_id = $1"
                " ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
                project_id,
                limit,
                (page - 1) * limit,
            )
            total = await connection.fetchval(
                "SELECT count(*) FROM annotation_queues WHERE project_id = $1", project_id
            )
        return [queue_document(row) for row in rows], total

    async def create_item(
        self, project_id: str, queue_id: str, item: NewItem, actor: str
    ) -> dict[str, Any]:
        completed = item.status == "COMPLETED"
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO annotation_queue_items (project_id, id, queue_id, object_id,"
                " object_type, status, completed_at, completed_by)"
                " VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END,"
                f" CASE WHEN $7 THEN $8 END) RETURNING {self._ITEM}",
                project_id,
                str(uuid.uuid4()),
                queue_id,
                item.object_id,
                item.object_type,
                item.status,
                completed,
                actor,
            )
        except asyncpg.ForeignKeyViolationError as exc:  # the queue went meanwhile
            raise NotFound(QUEUE_NOT_FOUND) from exc
        return item_document(row)

    async def item(self, project_id: str, queue_id: str, item_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"SELECT {self._ITEM} FROM annotation_queue_items"
            " WHERE project_id = $1 AND queue_id = $2 AND id = $3"
            " AND ($4::timestamptz IS NULL OR created_at >= $4)",
            project_id,
            queue_id,
            item_id,
            read_cutoff(),
        )
        return item_document(row) if row else None

    async def items(
        self, project_id: str, queue_id: str, wanted: str | None, page: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the queue's items (of status `wanted`, None: any), newest first, and
        their total count."""
        # Items older than the project's retention are hidden, as its pass deletes them.
        where = (
            "project_id = $1 AND queue_id = $2 AND ($3::text IS NULL OR status = $3)"
            " AND ($4::timestamptz IS NULL OR created_at >= $4)"
        )
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"SELECT {self._ITEM} FROM annotation_queue_items WHERE {where}"
                " ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6",
                project_id,
                queue_id,
                wanted,
                read_cutoff(),
                limit,
                (page - 1) * limit,
            )
            total = await connection.fetchval(
                f"SELECT count(*) FROM annotation_queue_items WHERE {where}",
                project_id,
                queue_id,
                wanted,
                read_cutoff(),
            )
        return [item_document(row) for row in rows], total

    async def update_item(
        self, project_id: str, queue_id: str, item_id: str, new_status: str | None, actor: str
    ) -> dict[str, Any] | None:
        """COMPLETED records now and `actor` as its completion; PENDING reopens the item (no
        completion); None changes only updatedAt, as in Langfuse."""
        row = await self._pool.fetchrow(
            "UPDATE annotation_queue_items SET status = coalesce($4::text, status),"
            " completed_at = CASE $4::text WHEN 'COMPLETED' THEN now() WHEN 'PENDING' THEN NULL"
            " ELSE completed_at END,"
            " completed_by = CASE $4::text WHEN 'COMPLETED' THEN $5 WHEN 'PENDING' THEN NULL"
            " ELSE completed_by END, updated_at = now()"
            f" WHERE project_id = $1 AND queue_id = $2 AND id = $3 RETURNING {self._ITEM}",
            project_id,
            queue_id,
            item_id,
            new_status,
            actor,
        )
        return item_document(row) if row else None

    async def delete_item(self, project_id: str, queue_id: str, item_id: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM annotation_queue_items WHERE project_id = $1 AND queue_id = $2"
            " AND id = $3",
            project_id,
            queue_id,
            item_id,
        )
        return status != "DELETE 0"

    async def assign(self, project_id: str, queue_id: str, user_id: str) -> None:
        """Idempotent: assigning a user twice keeps one assignment."""
        try:
            await self._pool.execute(
                "INSERT INTO annotation_queue_assignments (project_id, queue_id, user_id)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                project_id,
                queue_id,
                user_id,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(QUEUE_NOT_FOUND) from exc

    async def unassign(self, project_id: str, queue_id: str, user_id: str) -> None:
        await self._pool.execute(
            "DELETE FROM annotation_queue_assignments"
            " WHERE project_id = $1 AND queue_id = $2 AND user_id = $3",
            project_id,
            queue_id,
            user_id,
        )


def queue_document(row: asyncpg.Record) -> dict[str, Any]:
    """Langfuse's `AnnotationQueue`."""
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "scoreConfigIds": list(row["score_config_ids"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def item_document(row: asyncpg.Record) -> dict[str, Any]:
    """Langfuse's `AnnotationQueueItem`."""
    completed_at = row["completed_at"]
    return {
        "id": row["id"],
        "queueId": row["queue_id"],
        "objectId": row["object_id"],
        "objectType": row["object_type"],
        "status": row["status"],
        "completedAt": iso(completed_at) if completed_at else None,
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }
