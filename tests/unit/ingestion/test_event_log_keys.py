"""Event-log keys: any client project id makes a key S3 servers accept, one project's prefix never
holds another's objects, and a project's keys sort by arrival under the hour they arrived."""

from datetime import UTC, datetime

import pytest

from services.ingestion.store import EventLog

NOW = datetime(2026, 11, 22, 10, 5, 7, 123456, tzinfo=UTC)


@pytest.mark.parametrize("project_id", ["", ".", "..", "a/b", "../x", "p.1", "x" * 500, "ü %"])
def test_every_segment_is_a_valid_path_segment(project_id: str) -> None:
    key = EventLog.key(project_id, NOW)
    segments = key.split("/")
    assert segments[0] == "events" and len(segments) == 7
    assert all(segment not in ("", ".", "..") for segment in segments)
    assert len(key) < 400


def test_projects_never_share_a_prefix() -> None:
    ids = ["", ".", "..", "...", "p", "p/", "p/2", "%2E", "sha256"]
    prefixes = [EventLog.key(project_id, NOW).split("/")[1] + "/" for project_id in ids]
    assert len(set(prefixes)) == len(ids)
    assert not any(a != b and b.startswith(a) for a in prefixes for b in prefixes)


def test_keys_are_filed_by_hour_and_sort_by_arrival() -> None:
    key = EventLog.key("project-1", NOW)
    assert key.startswith("events/project-1/2026/11/22/10/20261122T100507.123456-")
    later = EventLog.key("project-1", NOW.replace(microsecond=123457))
    assert key < later and key != EventLog.key("project-1", NOW)
