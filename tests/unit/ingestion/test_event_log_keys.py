"""Event-log keys: any client trace id makes a key S3 servers accept, and the deleter's prefix
is exactly the writer's."""

from datetime import UTC, datetime

import pytest

from services.ingestion.store import EventLog, _prefix

NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.mark.parametrize("trace_id", ["", ".", "..", "a/b", "../x", "trace.1", "x" * 500, "ü %"])
def test_every_segment_is_a_valid_path_segment(trace_id: str) -> None:
    prefix = _prefix("project", trace_id)
    segments = prefix.split("/")[:-1]
    assert segments[0] == "events"
    assert all(segment not in ("", ".", "..") and "/" not in segment for segment in segments)
    assert len(prefix) < 300
    assert EventLog.key("project", trace_id, NOW).startswith(prefix)


def test_ids_never_share_a_prefix() -> None:
    ids = ["", ".", "..", "...", "a", "a/", "a/b", "%2E", "sha256"]
    prefixes = [_prefix("p", trace_id) for trace_id in ids]
    assert len(set(prefixes)) == len(ids)
    assert not any(a != b and b.startswith(a) for a in prefixes for b in prefixes)


def test_ordinary_ids_keep_their_key() -> None:
    assert _prefix("project-1", "0af7651916cd43dd8448eb211c80319c") == (
        "events/project-1/0af7651916cd43dd8448eb211c80319c/"
    )
