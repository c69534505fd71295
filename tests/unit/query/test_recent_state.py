"""The writer's memory of what it wrote last: bounded by entity count, least recently written
first out; trusted only briefly; forgotten entirely on a rebalance."""

import time

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
