"""RecentState: the merged state of the entities the writer wrote last, so that merging their
next events needs no read of ClickHouse. A partition has one writer at a time and an entity's
events all travel on its trace's partition, so what this writer wrote last is what ClickHouse
holds, as long as the partitions stay its own and nothing deleted the rows: the writer clears it
on every rebalance and forgets what an insert that failed may or may not have written, and
deletions (services/query/deletions.py) take out what they delete, so that a late event of a
deleted trace starts it afresh instead of bringing the deleted fields back. Bounded by entity
count (least recently written go first) and by age."""

import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

from services.query.rows import Merged, parse_time

Key = tuple[str, str, str]  # (kind, project id, entity id)

MAX_AGE_SECONDS = 60.0
# The field a retention cutoff is compared with, per kind (services/query/retention.py).
_TIME_FIELDS = {"trace": "timestamp", "observation": "startTime", "score": "timestamp"}


class RecentState:
    def __init__(self, capacity: int, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self._capacity = capacity
        self._max_age = max_age_seconds
        self._states: OrderedDict[Key, tuple[float, Merged]] = OrderedDict()
        # Per project, the time before which its rows are (or are about to be) deleted.
        self._cutoffs: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: Key) -> Merged | None:
        found = self._states.get(key)
        if found is None:
            return None
        expires, state = found
        if expires < time.monotonic() or self._cut_off(key, state):
            del self._states[key]
            return None
        return state

    def put(self, states: dict[Key, Merged]) -> None:
        expires = time.monotonic() + self._max_age
        for key, state in states.items():
            self._states[key] = (expires, state)
            self._states.move_to_end(key)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)

    def forget(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self._states.pop(key, None)

    def forget_traces(self, project_id: str, trace_ids: Iterable[str]) -> None:
        """Deleted traces: each trace and the observations and scores it holds."""
        deleted = set(trace_ids)
        self.forget(
            [
                key
                for key, (_, state) in self._states.items()
                if key[1] == project_id
                and (key[2] if key[0] == "trace" else state.values.get("traceId")) in deleted
            ]
        )

    def forget_older(self, project_id: str, cutoff: datetime) -> None:
        """A project's rows older than `cutoff` are deleted (retention; a deleted project's
        cutoff is the end of time): none of its states older than that is trusted from now on,
        even one written after this call, since the deletion may run later than it."""
        known = self._cutoffs.get(project_id)
        if known is None or cutoff > known:  # a replayed older notice never lowers it
            self._cutoffs[project_id] = cutoff
        self.forget([key for key, (_, state) in self._states.items() if self._cut_off(key, state)])

    def clear(self) -> None:
        self._states.clear()

    def _cut_off(self, key: Key, state: Merged) -> bool:
        cutoff = self._cutoffs.get(key[1])
        if cutoff is None:
            return False
        at = parse_time(state.values.get(_TIME_FIELDS[key[0]]))
        return at is None or at < cutoff
