"""RecentState: the merged state of the entities the writer wrote last, so that merging their
next events needs no read of ClickHouse. A partition has one writer at a time and an entity's
events all travel on its trace's partition, so what this writer wrote last is what ClickHouse
holds, as long as the partitions stay its own: the writer clears it on every rebalance, and
forgets what an insert that failed may or may not have written. Bounded by entity count (least
recently written go first) and by age: a trace deleted through the API is not seen here, so a
state is trusted only briefly."""

import time
from collections import OrderedDict

from services.query.rows import Merged

Key = tuple[str, str, str]  # (kind, project id, entity id)

MAX_AGE_SECONDS = 60.0


class RecentState:
    def __init__(self, capacity: int, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self._capacity = capacity
        self._max_age = max_age_seconds
        self._states: OrderedDict[Key, tuple[float, Merged]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: Key) -> Merged | None:
        found = self._states.get(key)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._states[key]
            return None
        return found[1]

    def put(self, states: dict[Key, Merged]) -> None:
        expires = time.monotonic() + self._max_age
        for key, state in states.items():
            self._states[key] = (expires, state)
            self._states.move_to_end(key)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)

    def forget(self, keys: list[Key]) -> None:
        for key in keys:
            self._states.pop(key, None)

    def clear(self) -> None:
        self._states.clear()
