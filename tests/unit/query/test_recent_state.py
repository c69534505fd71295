"""The writer's memory of what it wrote last: bounded by entity count, least recently written
first out; trusted only briefly; forgotten entirely on a rebalance, and in part for what a
deletion removed."""

import time
from datetime import UTC, datetime

from services.query.deletions import END_OF_TIME
from services.query.recent_state import RecentState
from services.query.rows import Merged


def state(name: str) -> Merged:
    return Merged({"name": name})


def test_the_least_recently_written_go_first_beyond_the_capacity() -> None:
    recent = RecentState(capacity=2)
    recent.put({("trace", "p", "a"): state("a"), ("trace", "p", "b"): state("b")})
    recent.put({("trace", "p", "a"): state("a2")})  # a is now the most recent
    recent.put({("trace", "p", "c"): state("c")})
    assert recent.get(("trace", "p", "b")) is None
    assert [recent.get(("trace", "p", k)).values["name"] for k in "ac"] == ["a2", "c"]  # type: ignore[union-attr]
    assert len(recent) == 2


def test_a_state_older_than_the_age_limit_is_not_trusted() -> None:
    recent = RecentState(capacity=10, max_age_seconds=0.01)
    recent.put({("score", "p", "s"): state("s")})
    time.sleep(0.02)
    assert recent.get(("score", "p", "s")) is None and len(recent) == 0


def test_forgotten_and_cleared_states_are_gone() -> None:
    recent = RecentState(capacity=10)
    keys = [("observation", "p", "o1"), ("observation", "p", "o2"), ("observation", "q", "o1")]
    recent.put({key: state(key[2]) for key in keys})
    recent.forget([keys[0]])
    assert recent.get(keys[0]) is None and recent.get(keys[2]) is not None
    recent.clear()
    assert len(recent) == 0


def test_a_deleted_trace_is_forgotten_with_its_observations_and_scores() -> None:
    recent = RecentState(capacity=10)
    kept = [("trace", "p", "u"), ("observation", "p", "o2"), ("trace", "q", "t")]
    gone = [("trace", "p", "t"), ("observation", "p", "o1"), ("score", "p", "s")]
    recent.put({key: Merged({"traceId": "t"}) for key in gone[1:]})
    recent.put({gone[0]: state("t"), kept[0]: state("u"), kept[2]: state("t")})
    recent.put({kept[1]: Merged({"traceId": "u"})})
    recent.forget_traces("p", ["t"])
    assert [recent.get(key) for key in gone] == [None] * 3
    assert None not in [recent.get(key) for key in kept]


def at(day: int) -> Merged:
    return Merged({"timestamp": f"2026-01-{day:02d}T00:00:00.000Z"})


def test_after_a_retention_cutoff_no_older_state_is_trusted_even_one_written_later() -> None:
    """The pass that deletes the rows may run after the announcement (in another replica)."""
    recent = RecentState(capacity=10)
    recent.put({("trace", "p", "old"): at(1), ("trace", "p", "new"): at(20)})
    recent.put({("trace", "q", "old"): at(1)})
    recent.forget_older("p", datetime(2026, 1, 10, tzinfo=UTC))
    recent.put({("trace", "p", "written-after"): at(2)})
    recent.forget_older("p", datetime(2026, 1, 5, tzinfo=UTC))  # a replayed older notice
    assert recent.get(("trace", "p", "old")) is None
    assert recent.get(("trace", "p", "written-after")) is None
    assert recent.get(("trace", "p", "new")) is not None
    assert recent.get(("trace", "q", "old")) is not None


def test_no_state_of_a_deleted_project_is_trusted() -> None:
    recent = RecentState(capacity=10)
    recent.forget_older("p", END_OF_TIME)
    recent.put({("observation", "p", "o"): Merged({"startTime": "2099-01-01T00:00:00.000Z"})})
    assert recent.get(("observation", "p", "o")) is None
