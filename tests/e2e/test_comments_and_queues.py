"""Comments and annotation queues through the gateway, driven by the Python SDK 5's `api.comments`
and `api.annotation_queues` clients: comments on a trace, an observation, a session and a prompt
version, each checked with its owning service; queues with their score configs, items that are
completed (when and by which key) and reopened, assignments; the reviewers' scores are ordinary
scores with `queueId` and source ANNOTATION. Bad input is a 4xx naming it, and another project's
key sees none of it."""

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import pytest
from langfuse import Langfuse
from langfuse.api import AccessDeniedError, NotFoundError
from langfuse.api.core import ApiError

from tests.e2e.admin import new_project
from tests.e2e.conftest import PROJECT_ID, PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
QUEUES = "/api/public/annotation-queues"
# 1,000 distinct four-byte characters: too many bytes for an index entry of PostgreSQL.
WIDE = "".join(chr(0x1F300 + i) for i in range(1000))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sdk(stack: Stack, public_key: str = PUBLIC_KEY, secret_key: str = SECRET_KEY) -> Langfuse:
    return Langfuse(
        public_key=public_key, secret_key=secret_key, host=stack.gateway_url, tracing_enabled=False
    )


def newest_first(documents: Sequence[Any]) -> bool:
    """Lists are ordered by creation time, newest first."""
    times = [document.created_at for document in documents]
    return times == sorted(times, reverse=True)


async def traced(client: httpx.AsyncClient) -> dict[str, str]:
    """A trace with one span in a session, once the query service can read them."""
    ids = {"trace": unique("trace"), "observation": unique("span"), "session": unique("session")}
    events = [
        {"id": unique("e"), "type": "trace-create", "timestamp": "2026-11-30T10:00:00Z",
         "body": {"id": ids["trace"], "name": "reviewed", "sessionId": ids["session"]}},
        {"id": unique("e"), "type": "span-create", "timestamp": "2026-11-30T10:00:00Z",
         "body": {"id": ids["observation"], "traceId": ids["trace"],
                  "startTime": "2026-11-30T10:00:00Z"}},
    ]  # fmt: skip
    response = await client.post("/api/public/ingestion", json={"batch": events})
    assert response.status_code == 207 and not response.json()["errors"], response.text

    async def observation_status() -> int:
        reply = await client.get(f"/api/public/observations/{ids['observation']}")
        return reply.status_code

    await eventually(observation_status, lambda status: status == 200)
    return ids


async def prompt_id(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/api/public/v2/prompts", json={"name": unique("prompt"), "prompt": "hi", "type": "text"}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def score_config(client: httpx.AsyncClient, **body: Any) -> str:
    body = {"name": unique("cfg")[:30], "dataType": "NUMERIC", **body}
    response = await client.post("/api/public/score-configs", json=body)
    assert response.status_code == 200, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def project_of(stack: Stack, public_key: str, secret_key: str) -> str:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=(public_key, secret_key)) as c:
        return (await c.get("/api/public/projects")).json()["data"][0]["id"]  # type: ignore[no-any-return]


async def test_comments_on_every_kind_of_object_are_created_read_and_filtered(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        ids = await traced(client)
        ids["prompt"] = await prompt_id(client)
    langfuse = sdk(stack)
    author = unique("reviewer")
    created = {}
    for kind in ("trace", "observation", "session", "prompt"):
        reply = langfuse.api.comments.create(
            project_id=PROJECT_ID,
            object_type=kind.upper(),
            object_id=ids[kind],
            content=f"**{kind}** looks right",
            author_user_id=author,
        )
        created[kind] = reply.id

    comment = langfuse.api.comments.get_by_id(created["observation"])
    assert (comment.id, comment.project_id) == (created["observation"], PROJECT_ID)
    assert (comment.object_type, comment.object_id) == ("OBSERVATION", ids["observation"])
    assert (comment.content, comment.author_user_id) == ("**observation** looks right", author)
    assert comment.created_at == comment.updated_at

    on_trace = langfuse.api.comments.get(object_type="TRACE", object_id=ids["trace"])
    assert [c.id for c in on_trace.data] == [created["trace"]]
    assert on_trace.meta.total_items == 1 and on_trace.meta.total_pages == 1
    by_author = langfuse.api.comments.get(author_user_id=author, limit=3)
    assert by_author.meta.total_items == 4 and by_author.meta.total_pages == 2
    second = langfuse.api.comments.get(author_user_id=author, limit=3, page=2)
    pages = [*by_author.data, *second.data]
    assert sorted(c.id for c in pages) == sorted(created.values())  # each once
    assert newest_first(pages)
    prompts = langfuse.api.comments.get(object_type="PROMPT", author_user_id=author)
    assert [(c.object_id, c.content) for c in prompts.data] == [
        (ids["prompt"], "**prompt** looks right")
    ]

    without_author = langfuse.api.comments.create(
        project_id=PROJECT_ID, object_type="SESSION", object_id=ids["session"], content="ok"
    )
    assert langfuse.api.comments.get_by_id(without_author.id).author_user_id is None


async def test_a_comment_needs_an_existing_object_and_valid_fields(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        ids = await traced(client)
        good = {"projectId": PROJECT_ID, "objectType": "TRACE", "objectId": ids["trace"],
                "content": "fine"}  # fmt: skip
        for kind in ("TRACE", "OBSERVATION", "SESSION", "PROMPT"):
            missing = {**good, "objectType": kind, "objectId": unique("missing")}
            response = await client.post("/api/public/comments", json=missing)
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "LangfuseNotFoundError"
            assert kind in response.json()["message"]
        # The object types are not interchangeable: a trace's id names no observation.
        as_observation = {**good, "objectType": "OBSERVATION"}
        assert (await client.post("/api/public/comments", json=as_observation)).status_code == 404

        bad_bodies = [
            {**good, "content": ""},
            {**good, "content": "  \n "},
            {**good, "content": "x" * 5001},
            {**good, "objectType": "DATASET"},
            {**good, "objectType": "trace"},
            {**good, "objectId": ""},
            {**good, "objectId": "x" * 1001},
            {**good, "objectId": WIDE},
            {key: value for key, value in good.items() if key != "projectId"},
            {**good, "content": "a\u0000b"},
            [good],
        ]
        for body in bad_bodies:
            response = await client.post("/api/public/comments", json=body)
            assert response.status_code == 400, (body, response.text)
            assert set(response.json()) == {"message", "error"}
        at_limit = await client.post("/api/public/comments", json={**good, "content": "x" * 5000})
        assert at_limit.status_code == 200, at_limit.text
        not_json = await client.post("/api/public/comments", content=b"{")
        assert not_json.status_code == 400

        other_project = await client.post(
            "/api/public/comments", json={**good, "projectId": "someone-else"}
        )
        assert other_project.status_code == 403, other_project.text

        for params in (
            {"objectId": ids["trace"]},  # objectId needs objectType
            {"objectType": "DATASET"},
            {"limit": "101"},
            {"page": "-1"},
            {"authorUserId": "a\u0000b"},
        ):
            response = await client.get("/api/public/comments", params=params)
            assert response.status_code == 400, (params, response.text)
        for missing in (unique("comment"), "a%00b"):
            response = await client.get(f"/api/public/comments/{missing}")
            assert response.status_code == 404, response.text
    with pytest.raises(AccessDeniedError):
        sdk(stack).api.comments.create(
            project_id="someone-else", object_type="TRACE", object_id=ids["trace"], content="x"
        )


async def test_a_queue_is_reviewed_item_by_item_and_its_scores_are_annotations(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        ids = await traced(client)
        accuracy_name = unique("accuracy")
        accuracy = await score_config(client, name=accuracy_name, minValue=0, maxValue=1)
        correct = await score_config(client, dataType="BOOLEAN")
    langfuse = sdk(stack)
    queues = langfuse.api.annotation_queues
    name = unique("review")
    queue = queues.create_queue(
        name=name, description="first pass", score_config_ids=[accuracy, correct]
    )
    assert (queue.name, queue.description) == (name, "first pass")
    assert queue.score_config_ids == [accuracy, correct]
    assert queues.get_queue(queue.id) == queue
    listed = queues.list_queues(limit=100)
    assert queue in listed.data and newest_first(listed.data)
    with pytest.raises(ApiError) as conflict:  # the SDK has no ConflictError for this route
        queues.create_queue(name=name, score_config_ids=[])
    assert conflict.value.status_code == 409

    trace_item = queues.create_queue_item(queue.id, object_id=ids["trace"], object_type="TRACE")
    assert (trace_item.queue_id, trace_item.object_id) == (queue.id, ids["trace"])
    assert (trace_item.status, trace_item.completed_at) == ("PENDING", None)
    observation_item = queues.create_queue_item(
        queue.id, object_id=ids["observation"], object_type="OBSERVATION", status="COMPLETED"
    )
    assert observation_item.status == "COMPLETED" and observation_item.completed_at is not None
    session_item = queues.create_queue_item(
        queue.id, object_id=ids["session"], object_type="SESSION"
    )

    everything = queues.list_queue_items(queue.id)
    assert {i.id for i in everything.data} == {session_item.id, observation_item.id, trace_item.id}
    assert everything.meta.total_items == 3 and newest_first(everything.data)
    pending = queues.list_queue_items(queue.id, status="PENDING", limit=1)
    assert pending.data[0].id in (session_item.id, trace_item.id)
    assert (pending.meta.total_items, pending.meta.total_pages) == (2, 2)
    assert queues.get_queue_item(queue.id, trace_item.id) == trace_item

    # A reviewer scores the trace against the queue's configs, then completes the item.
    score = {"traceId": ids["trace"], "name": accuracy_name, "value": 0.75, "configId": accuracy,
             "queueId": queue.id, "source": "ANNOTATION"}  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.post("/api/public/scores", json=score)
        assert response.status_code == 200, response.text
        out_of_range = await client.post("/api/public/scores", json={**score, "value": 2})
        assert out_of_range.status_code == 400, out_of_range.text
        unconfigured = {key: value for key, value in score.items() if key != "configId"}
        no_config = await client.post("/api/public/scores", json=unconfigured)
        assert no_config.status_code == 400 and "configId" in no_config.text, no_config.text

        async def scores() -> list[dict[str, Any]]:
            reply = await client.get("/api/public/v2/scores", params={"traceId": ids["trace"]})
            return reply.json()["data"]  # type: ignore[no-any-return]

        stored = (await eventually(scores, lambda found: len(found) == 1))[0]
    assert (stored["queueId"], stored["source"], stored["configId"]) == (
        queue.id, "ANNOTATION", accuracy)  # fmt: skip

    completed = queues.update_queue_item(queue.id, trace_item.id, status="COMPLETED")
    assert completed.status == "COMPLETED" and completed.completed_at is not None
    assert completed.updated_at >= trace_item.updated_at
    assert await completed_by(stack, trace_item.id) == PUBLIC_KEY
    untouched = queues.update_queue_item(queue.id, trace_item.id)  # no status: nothing changes
    assert (untouched.status, untouched.completed_at) == ("COMPLETED", completed.completed_at)
    reopened = queues.update_queue_item(queue.id, trace_item.id, status="PENDING")
    assert (reopened.status, reopened.completed_at) == ("PENDING", None)
    assert await completed_by(stack, trace_item.id) is None

    deleted = queues.delete_queue_item(queue.id, session_item.id)
    assert deleted.success and deleted.message
    with pytest.raises(NotFoundError):
        queues.get_queue_item(queue.id, session_item.id)
    with pytest.raises(NotFoundError):
        queues.delete_queue_item(queue.id, session_item.id)

    assignment = queues.create_queue_assignment(queue.id, user_id="user-1")
    assert (assignment.user_id, assignment.queue_id, assignment.project_id) == (
        "user-1", queue.id, PROJECT_ID)  # fmt: skip
    assert queues.create_queue_assignment(queue.id, user_id="user-1") == assignment  # idempotent
    assert await assignments(stack, queue.id) == ["user-1"]
    assert queues.delete_queue_assignment(queue.id, user_id="user-1").success
    assert queues.delete_queue_assignment(queue.id, user_id="user-1").success  # gone already
    assert await assignments(stack, queue.id) == []


async def completed_by(stack: Stack, item_id: str) -> str | None:
    connection = await asyncpg.connect(stack.env["EVALS_DATABASE_URL"])
    try:
        return await connection.fetchval(  # type: ignore[no-any-return]
            "SELECT completed_by FROM annotation_queue_items WHERE id = $1", item_id
        )
    finally:
        await connection.close()


async def assignments(stack: Stack, queue_id: str) -> list[str]:
    connection = await asyncpg.connect(stack.env["EVALS_DATABASE_URL"])
    try:
        rows = await connection.fetch(
            "SELECT user_id FROM annotation_queue_assignments WHERE queue_id = $1", queue_id
        )
    finally:
        await connection.close()
    return [row["user_id"] for row in rows]


async def test_bad_queue_input_is_a_clear_4xx(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        ids = await traced(client)
        config = await score_config(client)
        archived = await score_config(client)
        response = await client.patch(f"/api/public/score-configs/{archived}",
                                      json={"isArchived": True})  # fmt: skip
        assert response.status_code == 200
        queue = await client.post(QUEUES, json={"name": unique("q"), "scoreConfigIds": [config]})
        assert queue.status_code == 200, queue.text
        queue_id = queue.json()["id"]
        on_trace = {"objectId": ids["trace"], "objectType": "TRACE"}
        item = await client.post(f"{QUEUES}/{queue_id}/items", json=on_trace)
        item_id = item.json()["id"]

        bad_queues = [
            ({"name": unique("q"), "scoreConfigIds": [unique("missing")]}, "not found"),
            ({"name": unique("q"), "scoreConfigIds": [config, archived]}, "archived"),
            ({"name": "x" * 1001, "scoreConfigIds": []}, "name"),
            ({"name": WIDE, "scoreConfigIds": []}, "name"),
            ({"name": "", "scoreConfigIds": []}, "name"),
            ({"name": unique("q")}, "scoreConfigIds"),
            ({"name": unique("q"), "scoreConfigIds": [3]}, "scoreConfigIds"),
            ({"name": unique("q"), "scoreConfigIds": ["a\u0000"]}, "scoreConfigIds"),
        ]
        for body, reason in bad_queues:
            response = await client.post(QUEUES, json=body)
            assert response.status_code == 400, (body, response.text)
            assert reason in response.json()["message"]
        bad_items = [
            {"objectId": ids["trace"], "objectType": "PROMPT"},
            {"objectId": ids["trace"], "objectType": "TRACE", "status": "DONE"},
            {"objectId": "", "objectType": "TRACE"},
            {"objectType": "TRACE"},
        ]
        for body in bad_items:
            response = await client.post(f"{QUEUES}/{queue_id}/items", json=body)
            assert response.status_code == 400, (body, response.text)
        ghost = {"objectId": "ghost", "objectType": "SESSION"}
        missing_object = await client.post(f"{QUEUES}/{queue_id}/items", json=ghost)
        assert missing_object.status_code == 404, missing_object.text
        patch = await client.patch(f"{QUEUES}/{queue_id}/items/{item_id}", json={"status": "done"})
        assert patch.status_code == 400, patch.text
        for params in ({"status": "DONE"}, {"limit": "101"}, {"page": "-1"}):
            response = await client.get(f"{QUEUES}/{queue_id}/items", params=params)
            assert response.status_code == 400, (params, response.text)
        for user_id in ("", WIDE, None):
            assign = await client.post(f"{QUEUES}/{queue_id}/assignments", json={"userId": user_id})
            assert assign.status_code == 400, assign.text

        missing = unique("missing")
        not_found = [
            ("GET", f"{QUEUES}/{missing}", None),
            ("GET", f"{QUEUES}/a%00b", None),
            ("GET", f"{QUEUES}/{missing}/items", None),
            ("POST", f"{QUEUES}/{missing}/items", on_trace),
            ("GET", f"{QUEUES}/{queue_id}/items/{missing}", None),
            ("GET", f"{QUEUES}/{queue_id}/items/a%00b", None),
            ("PATCH", f"{QUEUES}/{queue_id}/items/{missing}", {"status": "COMPLETED"}),
            ("DELETE", f"{QUEUES}/{queue_id}/items/{missing}", None),
            ("POST", f"{QUEUES}/{missing}/assignments", {"userId": "u"}),
            ("DELETE", f"{QUEUES}/{missing}/assignments", {"userId": "u"}),
        ]  # fmt: skip
        for method, path, body in not_found:
            response = await client.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"] == "LangfuseNotFoundError"
    with pytest.raises(ApiError) as refused:  # the SDK raises its generic Error on a 400 here
        sdk(stack).api.annotation_queues.create_queue(name=unique("q"), score_config_ids=["nope"])
    assert refused.value.status_code == 400


async def test_another_projects_key_sees_none_of_it(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        ids = await traced(client)
        ids["prompt"] = await prompt_id(client)
        config = await score_config(client)
    mine = sdk(stack)
    queue = mine.api.annotation_queues.create_queue(name=unique("q"), score_config_ids=[config])
    item = mine.api.annotation_queues.create_queue_item(
        queue.id, object_id=ids["trace"], object_type="TRACE"
    )
    comment = mine.api.comments.create(
        project_id=PROJECT_ID, object_type="TRACE", object_id=ids["trace"], content="mine"
    )

    public_key, secret_key = new_project(stack)
    other_project = await project_of(stack, public_key, secret_key)
    theirs = sdk(stack, public_key, secret_key)
    for kind in ("TRACE", "OBSERVATION", "SESSION", "PROMPT"):
        with pytest.raises(NotFoundError):
            theirs.api.comments.create(
                project_id=other_project,
                object_type=kind,
                object_id=ids[kind.lower()],
                content="not yours",
            )
    with pytest.raises(NotFoundError):
        theirs.api.comments.get_by_id(comment.id)
    assert theirs.api.comments.get(object_type="TRACE", object_id=ids["trace"]).data == []

    queues = theirs.api.annotation_queues
    assert queue.id not in [q.id for q in queues.list_queues(limit=100).data]
    attempts = [
        lambda: queues.get_queue(queue.id),
        lambda: queues.list_queue_items(queue.id),
        lambda: queues.get_queue_item(queue.id, item.id),
        lambda: queues.update_queue_item(queue.id, item.id, status="COMPLETED"),
        lambda: queues.delete_queue_item(queue.id, item.id),
        lambda: queues.create_queue_item(queue.id, object_id=ids["trace"], object_type="TRACE"),
        lambda: queues.create_queue_assignment(queue.id, user_id="intruder"),
        lambda: queues.delete_queue_assignment(queue.id, user_id="intruder"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError):
            attempt()
    with pytest.raises(ApiError) as refused:  # the first project's config is no config of theirs
        queues.create_queue(name=unique("q"), score_config_ids=[config])
    assert refused.value.status_code == 400
    own = queues.create_queue(name=queue.name, score_config_ids=[])  # names are per project
    for kind in ("TRACE", "OBSERVATION", "SESSION"):
        with pytest.raises(NotFoundError):
            queues.create_queue_item(own.id, object_id=ids[kind.lower()], object_type=kind)

    # Nothing of the first project changed.
    assert mine.api.annotation_queues.get_queue_item(queue.id, item.id) == item
    assert await assignments(stack, queue.id) == []
