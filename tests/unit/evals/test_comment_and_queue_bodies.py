"""The bodies of comments, annotation queues and queue items: what Langfuse accepts, and a 400
naming the field (or a 403 for another project's id) for everything else."""

from typing import Any

import pytest

from libs.common.errors import InvalidArgument, PermissionDenied
from services.evals.annotation_queues import new_item, new_queue, status
from services.evals.comments import CONTENT_MAX_LENGTH, new_comment

PROJECT = "project-a"


def comment(**changes: Any) -> dict[str, Any]:
    body = {"projectId": PROJECT, "objectType": "TRACE", "objectId": "t-1", "content": "fine"}
    return {**body, **changes}


def test_a_comment_keeps_its_fields_and_trims_its_content() -> None:
    parsed = new_comment(comment(content="  looks right \n", authorUserId="u-1"), PROJECT)
    assert (parsed.object_type, parsed.object_id) == ("TRACE", "t-1")
    assert (parsed.content, parsed.author_user_id) == ("looks right", "u-1")
    assert new_comment(comment(objectType="PROMPT"), PROJECT).author_user_id is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({"content": "x" * (CONTENT_MAX_LENGTH + 1)}, "content"),
        ({"content": 5}, "content"),
        ({"content": "a\x00b"}, "content"),
        ({"objectType": "trace"}, "objectType"),
        ({"objectType": "DATASET"}, "objectType"),
        ({"objectId": ""}, "objectId"),
        ({"objectId": "x" * 1001}, "objectId"),
        ({"authorUserId": 7}, "authorUserId"),
        ({"projectId": None}, "projectId"),
    ],
)
def test_a_bad_comment_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        new_comment(comment(**changes), PROJECT)


# 1,000 distinct four-byte characters: within the character limit, beyond an index entry's bytes.
WIDE = "".join(chr(0x1F300 + i) for i in range(1000))


def test_indexed_values_are_bounded_in_bytes_too() -> None:
    with pytest.raises(InvalidArgument, match="objectId must be at most 2000 bytes"):
        new_comment(comment(objectId=WIDE), PROJECT)
    with pytest.raises(InvalidArgument, match="name must be at most 2000 bytes"):
        new_queue({"name": WIDE, "scoreConfigIds": []})
    assert new_queue({"name": WIDE[:500], "scoreConfigIds": []}).name == WIDE[:500]


def test_content_at_the_limit_is_accepted() -> None:
    content = "x" * CONTENT_MAX_LENGTH
    assert new_comment(comment(content=content), PROJECT).content == content


def test_a_comment_for_another_project_is_forbidden() -> None:
    with pytest.raises(PermissionDenied, match="projectId"):
        new_comment(comment(projectId="project-b"), PROJECT)


def test_a_queue_names_each_config_once_in_the_order_given() -> None:
    queue = new_queue({"name": "review", "scoreConfigIds": ["b", "a", "b"]})
    assert (queue.name, queue.description, queue.score_config_ids) == ("review", None, ("b", "a"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scoreConfigIds": []}, "name"),
        ({"name": "x" * 1001, "scoreConfigIds": []}, "name"),
        ({"name": "q"}, "scoreConfigIds"),
        ({"name": "q", "scoreConfigIds": "a"}, "scoreConfigIds"),
        ({"name": "q", "scoreConfigIds": [1]}, "scoreConfigIds"),
        ({"name": "q", "scoreConfigIds": [""]}, "scoreConfigIds"),
        ({"name": "q", "scoreConfigIds": [], "description": 3}, "description"),
    ],
)
def test_a_bad_queue_is_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        new_queue(body)


def test_an_item_is_pending_unless_told_otherwise() -> None:
    assert new_item({"objectId": "s", "objectType": "SESSION"}).status == "PENDING"
    assert new_item({"objectId": "s", "objectType": "SESSION", "status": None}).status == "PENDING"
    completed = new_item({"objectId": "o", "objectType": "OBSERVATION", "status": "COMPLETED"})
    assert completed.status == "COMPLETED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"objectType": "TRACE"}, "objectId"),
        ({"objectId": "t"}, "objectType"),
        ({"objectId": "t", "objectType": "PROMPT"}, "objectType"),
        ({"objectId": "t", "objectType": "TRACE", "status": "DONE"}, "status"),
    ],
)
def test_a_bad_item_is_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        new_item(body)


def test_statuses_are_langfuses_two() -> None:
    assert [status(s) for s in ("PENDING", "COMPLETED")] == ["PENDING", "COMPLETED"]
    with pytest.raises(InvalidArgument, match="status"):
        status("pending")
