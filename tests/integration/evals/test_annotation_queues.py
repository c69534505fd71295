"""Annotation queues and comments in PostgreSQL: a queue name taken once per project even under
concurrency, only the project's live score configs, completions recorded and undone, items
reached only through their own queue, and a project deletion that takes all of it and nothing
of another project."""

import asyncio

import asyncpg
import pytest
import redis.asyncio as redis

from libs.common.errors import Conflict, InvalidArgument
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.score_config_cache import score_config_generations
from services.evals.annotation_queues import AnnotationQueueStore, NewItem, NewQueue
from services.evals.comments import CommentFilter, CommentStore, NewComment
from services.evals.project_deletions import ProjectPurger
from services.evals.score_configs import ConfigFields, ScoreConfigStore
from tests.integration.conftest import ENV, unique

A, B = unique("project-a"), unique("project-b")


async def config(pool: asyncpg.Pool, project_id: str, *, archived: bool = False) -> str:
    fields = ConfigFields(name=unique("c")[:30], data_type="NUMERIC", is_archived=archived)
    document = await ScoreConfigStore(pool).create(project_id, fields)
    return str(document["id"])


async def test_a_name_is_taken_once_per_project_even_at_once(pool: asyncpg.Pool) -> None:
    store = AnnotationQueueStore(pool)
    queue = NewQueue("review", None, ())
    outcomes = await asyncio.gather(
        *(store.create_queue(A, queue) for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(o, dict) for o in outcomes) == 1
    assert sum(isinstance(o, Conflict) for o in outcomes) == 4
    assert (await store.create_queue(B, queue))["name"] == "review"  # another project's name


async def test_a_queue_takes_only_live_configs_of_its_project(pool: asyncpg.Pool) -> None:
    store = AnnotationQueueStore(pool)
    live, archived, foreign = await asyncio.gather(
        config(pool, A), config(pool, A, archived=True), config(pool, B)
    )
    with pytest.raises(InvalidArgument, match="archived"):
        await store.create_queue(A, NewQueue("q1", None, (live, archived)))
    with pytest.raises(InvalidArgument, match="not found"):
        await store.create_queue(A, NewQueue("q1", None, (live, foreign)))
    created = await store.create_queue(A, NewQueue("q1", "why", (live,)))
    assert (created["scoreConfigIds"], created["description"]) == ([live], "why")
    assert await store.queue(A, created["id"]) == created
    assert await store.queue(B, created["id"]) is None


async def test_completion_is_recorded_and_undone(pool: asyncpg.Pool) -> None:
    store = AnnotationQueueStore(pool)
    queue = await store.create_queue(A, NewQueue("q", None, ()))
    other_queue = await store.create_queue(A, NewQueue("other", None, ()))
    item = await store.create_item(A, queue["id"], NewItem("t", "TRACE", "PENDING"), "pk-a")

    async def completed_by() -> str | None:
        return await pool.fetchval(  # type: ignore[no-any-return]
            "SELECT completed_by FROM annotation_queue_items WHERE id = $1", item["id"]
        )

    assert item["completedAt"] is None and await completed_by() is None
    done = await store.update_item(A, queue["id"], item["id"], "COMPLETED", "pk-reviewer")
    assert done is not None and done["completedAt"] is not None
    assert await completed_by() == "pk-reviewer"
    unchanged = await store.update_item(A, queue["id"], item["id"], None, "pk-someone")
    assert unchanged is not None and unchanged["completedAt"] == done["completedAt"]
    assert await completed_by() == "pk-reviewer"
    reopened = await store.update_item(A, queue["id"], item["id"], "PENDING", "pk-reviewer")
    assert reopened is not None and reopened["completedAt"] is None
    assert await completed_by() is None
    # An item is reached only through its own queue and project.
    assert await store.item(A, other_queue["id"], item["id"]) is None
    assert await store.update_item(B, queue["id"], item["id"], "COMPLETED", "pk-b") is None
    assert not await store.delete_item(A, other_queue["id"], item["id"])
    assert await store.delete_item(A, queue["id"], item["id"])


async def test_a_project_deletion_takes_its_comments_and_queues_only(pool: asyncpg.Pool) -> None:
    queues, comments = AnnotationQueueStore(pool), CommentStore(pool)
    for project_id in (A, B):
        queue = await queues.create_queue(project_id, NewQueue("q", None, ()))
        await queues.create_item(project_id, queue["id"], NewItem("t", "TRACE", "PENDING"), "pk")
        await queues.assign(project_id, queue["id"], "user")
        await comments.create(project_id, NewComment("TRACE", "t", "note", None))

    client = redis.from_url(f"redis://127.0.0.1:{ENV['REDIS_PORT']}/2")
    try:
        purger = ProjectPurger(pool, score_config_generations(client))
        await purger.handle([events_pb2.ProjectDeleted(project_id=A)])
    finally:
        await client.aclose()
    for table in ("comments", "annotation_queues", "annotation_queue_items",
                  "annotation_queue_assignments"):  # fmt: skip
        counts = await pool.fetch(
            f"SELECT project_id, count(*) FROM {table} GROUP BY project_id"  # noqa: S608
        )
        assert {row["project_id"]: row["count"] for row in counts} == {B: 1}, table
    everything = CommentFilter(None, None, None)
    assert (await comments.page(B, everything, 1, 10))[1] == 1
