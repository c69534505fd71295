"""Merging an entity's events into its current state, and state to and from ClickHouse rows.
Pure: no I/O.

Langfuse's rules: events apply in envelope time order, creates before updates on a tie; a later
defined value overwrites; some fields keep their first value; metadata deep-merges; tags union;
input/output take the last truthy value; an empty usage or cost map never erases one.

Events arrive in any order, more than once, split over batches at random, so the merge does not
replay them in order: every field remembers the clock of the event that set it (`Clock`), and a
value replaces another only when its clock says it comes later (earlier, for the fields that
keep their first value). Fields that keep their first value take it from a create whenever one
exists: an update only fills them until its create arrives (an observation's startTime falls
back to the update's own time). Metadata keeps a clock per leaf and what each deep-merge step
erased (`Metadata`). So merging events one batch at a time gives the state that merging them
all at once gives, whatever the batches, and replaying an event changes nothing. The clocks are
stored with the row (`merge_clocks`), so a state read back from ClickHouse merges as exactly."""

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.query.entities import DATETIME, ENTITIES
from services.query.pricing import Priced

IMMUTABLE = {
    "trace": {"id", "timestamp", "environment"},
    "observation": {"id", "traceId", "startTime", "environment", "type"},
    "score": {"id", "timestamp", "traceId", "environment"},
}
# Immutable fields whose second, different value is a client's mistake worth a log line (a
# trace's timestamp differs between its upserts as a matter of course).
CONFLICTING = {"traceId", "type"}
_NEVER_ERASED_BY_EMPTY = {"usageDetails", "costDetails"}

# (event time in µs since the epoch, 0 for a create or 1 for an update, event id): later
# clocks win. A field of a row written before clocks were kept has LEGACY, which every event
# overwrites, except for the fields that keep their first value, which it keeps.
Clock = tuple[int, int, str]
LEGACY: Clock = (-1, -1, "")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Change:
    """One event's body for an entity, with what orders it."""

    event_time: datetime
    is_create: bool
    body: dict[str, Any]
    event_id: str = ""

    @property
    def clock(self) -> Clock:
        micros = (self.event_time - _EPOCH) // _MICROSECOND
        return (micros, 0 if self.is_create else 1, self.event_id)


@dataclass(frozen=True, slots=True)
class Conflict:
    """An immutable field given another value than the one that stands."""

    field: str
    kept: Any
    refused: Any
    event_id: str


Path = tuple[str, ...]


@dataclass(slots=True)
class Metadata:
    """Deep-merged metadata as a set of leaf writes (a non-object value, or an empty object, at
    a path) that merges in any order. Merging objects in clock order, a write at a path erases
    an older value there; a non-object one also erases everything older below it, and any write
    erases an older non-object value at each path above it. `leaves` keeps the newest surviving
    write per path; `erased_below` and `written_below` keep, per path, the newest write that
    erased below it and the newest write below it, so an old write arriving late is erased too."""

    leaves: dict[Path, tuple[Clock, Any]] = dataclasses.field(default_factory=dict)
    erased_below: dict[Path, Clock] = dataclasses.field(default_factory=dict)
    written_below: dict[Path, Clock] = dataclasses.field(default_factory=dict)

    @classmethod
    def first(cls, value: dict[str, Any], clock: Clock) -> "Metadata":
        """`write` into empty metadata: every leaf stands, nothing older to compare or erase."""
        metadata = cls()
        for path, leaf in _leaves(value, ()):
            metadata.leaves[path] = (clock, leaf)
            if leaf != {}:
                metadata.erased_below[path] = clock
            for depth in range(1, len(path)):
                metadata.written_below[path[:depth]] = clock
        return metadata

    def copy(self) -> "Metadata":
        return Metadata(dict(self.leaves), dict(self.erased_below), dict(self.written_below))

    def write(self, value: dict[str, Any], clock: Clock) -> None:
        for path, leaf in _leaves(value, ()):
            for depth in range(1, len(path)):
                _raise(self.written_below, path[:depth], clock)
            if leaf != {}:
                _raise(self.erased_below, path, clock)
            current = self.leaves.get(path)
            if current is None or _later(clock, leaf, *current):
                self.leaves[path] = (clock, leaf)
        if self.written_below:  # else every leaf is a top-level one, which nothing above erases
            self._drop_erased()

    def merged(self) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        for path in sorted(self.leaves, key=len):
            node = tree
            for key in path[:-1]:
                node = node.setdefault(key, {})
            value = self.leaves[path][1]
            if value == {}:
                node.setdefault(path[-1], {})
            else:
                node[path[-1]] = value
        return tree

    def _drop_erased(self) -> None:
        written, erased = self.written_below, self.erased_below
        for path, (clock, _) in list(self.leaves.items()):
            if written.get(path, LEGACY) > clock:
                del self.leaves[path]
                continue
            for depth in range(1, len(path)):
                if erased.get(path[:depth], LEGACY) > clock:
                    del self.leaves[path]
                    break


def _leaves(value: dict[str, Any], path: Path) -> Iterator[tuple[Path, Any]]:
    for key, item in value.items():
        if isinstance(item, dict) and item:
            yield from _leaves(item, (*path, key))
        else:
            yield (*path, key), item


def _raise(clocks: dict[Path, Clock], path: Path, clock: Clock) -> None:
    if clocks.get(path, LEGACY) < clock:
        clocks[path] = clock


def _later(clock: Clock, value: Any, current_clock: Clock, current: Any) -> bool:
    """Whether (clock, value) replaces (current_clock, current) in a latest-wins field. Two
    bodies under one event id and time (a client re-sending an id) are ordered by their JSON,
    so which one arrives first does not matter."""
    if clock != current_clock:
        return clock > current_clock
    return value != current and _json(value) > _json(current)


def _first(clock: Clock, value: Any, current_clock: Clock, current: Any) -> bool:
    """Whether (clock, value) replaces (current_clock, current) in a first-wins field: creates
    before updates, then the earliest."""
    mine, theirs = (
        (clock[1], clock[0], clock[2]),
        (current_clock[1], current_clock[0], current_clock[2]),
    )
    if mine != theirs:
        return mine < theirs
    return value != current and _json(value) < _json(current)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(slots=True)
class Merged:
    """An entity's merged state: `values` as rows and pricing read them, `clocks` of its fields."""

    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    clocks: dict[str, Clock] = dataclasses.field(default_factory=dict)
    metadata: Metadata = dataclasses.field(default_factory=Metadata)

    def copy(self) -> "Merged":
        return Merged(dict(self.values), dict(self.clocks), self.metadata.copy())


def merge(
    kind: str, stored: Merged | None, changes: Sequence[Change]
) -> tuple[Merged, list[Conflict]]:
    """The stored state with these events merged in, in any order; and the immutable fields the
    events tried to change."""
    if stored is None and len(changes) == 1:
        return _first_state(changes[0]), []
    state = stored.copy() if stored else Merged()
    values, clocks = state.values, state.clocks
    immutable = IMMUTABLE[kind]
    disputed: list[tuple[str, Any, str]] = []  # (field, a value given, the event giving it)
    metadata_changed = False
    for change in changes:
        clock = change.clock
        for key, value in change.body.items():
            if value is None:
                continue
            current = values.get(key)
            if key in immutable:
                if current is not None and value != current and key in CONFLICTING:
                    disputed += [(key, current, change.event_id), (key, value, change.event_id)]
                if current is None or _first(clock, value, clocks.get(key, LEGACY), current):
                    values[key], clocks[key] = value, clock
            elif key == "tags":
                values[key] = sorted(set(current or []) | set(value))
            elif key == "metadata":
                if value != {}:
                    state.metadata.write(value if isinstance(value, dict) else {key: value}, clock)
                    metadata_changed = True
            elif (key in ("input", "output") and not value) or (
                key in _NEVER_ERASED_BY_EMPTY and value == {}
            ):
                continue  # "", 0 and false never replace an input or output; {} never a map
            elif current is None or _later(clock, value, clocks.get(key, LEGACY), current):
                values[key], clocks[key] = value, clock
    if metadata_changed:
        values["metadata"] = state.metadata.merged()
    conflicts = [
        Conflict(key, values[key], value, event_id)
        for key, value, event_id in disputed
        if value != values[key]
    ]
    return state, conflicts


def _first_state(change: Change) -> Merged:
    """`merge` of one event into nothing, the writer's common case (a new entity): the same
    state without comparing clocks, since every field the event sets is the first of its kind."""
    clock = change.clock
    state = Merged()
    values, clocks = state.values, state.clocks
    for key, value in change.body.items():
        if value is None:
            continue
        if key == "tags":
            values[key] = sorted(set(value))
        elif key == "metadata":
            if value != {}:
                written = value if isinstance(value, dict) else {key: value}
                state.metadata = Metadata.first(written, clock)
                values[key] = written  # equal to `merged()`, keys in the order sent
        elif (key in ("input", "output") and not value) or (
            key in _NEVER_ERASED_BY_EMPTY and value == {}
        ):
            continue
        else:
            values[key], clocks[key] = value, clock
    return state


def encode_clocks(state: Merged) -> str:
    """The clocks of a state, for the row's `merge_clocks` column: distinct clocks once, fields
    and metadata paths pointing at them. Sorted, so equal states encode alike."""
    index: dict[Clock, int] = {}

    def at(clock: Clock) -> int:
        return index.setdefault(clock, len(index))

    metadata = state.metadata
    document = {
        "f": {name: at(clock) for name, clock in sorted(state.clocks.items())},
        "m": [[list(path), at(clock)] for path, (clock, _) in sorted(metadata.leaves.items())],
        # A leaf's own clock is its `erased_below` unless an older write there erased more.
        "e": [
            [list(path), at(clock)]
            for path, clock in sorted(metadata.erased_below.items())
            if metadata.leaves.get(path, (None,))[0] != clock
        ],
        "w": [[list(path), at(clock)] for path, clock in sorted(metadata.written_below.items())],
    }
    clocks = sorted(index, key=index.__getitem__)
    return orjson.dumps({"c": [list(c) for c in clocks], **document}).decode()


def stored_row(
    kind: str, project_id: str, state: Merged, now: datetime, priced: Priced | None = None
) -> dict[str, Any]:
    """The row of a merged state, its clocks included."""
    row = to_row(kind, project_id, state.values, now, priced)
    row["merge_clocks"] = encode_clocks(state)
    return row


def from_stored(kind: str, row: dict[str, Any]) -> Merged:
    """The merge state of a stored row: `from_row`'s values with the clocks of `merge_clocks`
    (LEGACY for a row written before they were kept)."""
    values = from_row(kind, row)
    raw = row.get("merge_clocks")
    document = orjson.loads(raw) if raw else {}
    clocks = [(int(t), int(r), str(i)) for t, r, i in document.get("c", [])]
    fields = {name: clocks[i] for name, i in document.get("f", {}).items()}
    leaf_clocks = {tuple(path): clocks[i] for path, i in document.get("m", [])}
    metadata = Metadata()
    for path, leaf in _leaves(values.get("metadata") or {}, ()):
        clock = leaf_clocks.get(path, LEGACY)
        metadata.leaves[path] = (clock, leaf)
        if leaf != {}:
            metadata.erased_below[path] = clock
    for path, clock in leaf_clocks.items():
        # An empty object written where older writes left keys is no leaf of the merged tree,
        # yet it is newer than what they wrote there: an older non-object value at its path,
        # arriving later, must still lose to it.
        metadata.leaves.setdefault(path, (clock, {}))
    for path, i in document.get("e", []):
        _raise(metadata.erased_below, tuple(path), clocks[i])
    for path, i in document.get("w", []):
        metadata.written_below[tuple(path)] = clocks[i]
    return Merged(values, fields, metadata)


def parse_time(value: Any) -> datetime | None:
    """ISO strings (ours) and ClickHouse DateTime64 values (strings from chDB, datetimes from the
    native driver), all as aware UTC datetimes."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(value: Any) -> str | None:
    if isinstance(value, str) and len(value) == 23 and value[10] == " ":
        # chDB's text of a DateTime64(3, 'UTC') column, already UTC: most times of every read.
        return f"{value[:10]}T{value[11:]}Z"
    parsed = parse_time(value)
    if parsed is None:
        return None
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def decode_json(value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def encode_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    return {str(k): orjson.dumps(v).decode() for k, v in (metadata or {}).items()}


def decode_metadata(metadata: dict[str, str] | None) -> dict[str, Any]:
    return {k: decode_json(v) for k, v in (metadata or {}).items()}


# Merge-state field -> its column, per kind: the fields stored as they are (the others below);
# times as datetimes in rows, ISO text in the state.
_COLUMNS = {kind: entity.stored_columns() for kind, entity in ENTITIES.items()}
_TIME_FIELDS = {
    f.name for e in ENTITIES.values() for f in e.fields if f.stored and f.kind == DATETIME
}


def usage_with_total(usage: dict[str, Any] | None) -> dict[str, int]:
    """Usage as priced and stored: `total` sums the other keys when the client gave none."""
    counts = {k: int(v) for k, v in (usage or {}).items()}
    if counts and "total" not in counts:
        counts["total"] = sum(counts.values())
    return counts


def to_row(
    kind: str, project_id: str, state: dict[str, Any], now: datetime, priced: Priced | None = None
) -> dict[str, Any]:
    """The ClickHouse row of a merged state; observations also take their computed price."""
    row: dict[str, Any] = {"project_id": project_id}
    for field, column in _COLUMNS[kind].items():
        value = state.get(field)
        row[column] = parse_time(value) if field in _TIME_FIELDS else value
    row["metadata"] = encode_metadata(state.get("metadata"))
    row["created_at"] = parse_time(state.get("createdAt")) or now
    row["updated_at"] = now
    row["event_ts"] = now
    row["is_deleted"] = 0
    if kind == "trace":
        row["name"] = state.get("name") or ""
        row["public"] = bool(state.get("public", False))
        row["tags"] = state.get("tags") or []
        row["environment"] = state.get("environment") or "default"
        row["input"], row["output"] = (
            encode_json(state.get("input")),
            encode_json(state.get("output")),
        )
    elif kind == "observation":
        row["name"] = state.get("name") or ""
        row["level"] = state.get("level") or "DEFAULT"
        row["environment"] = state.get("environment") or "default"
        row["input"], row["output"] = (
            encode_json(state.get("input")),
            encode_json(state.get("output")),
        )
        row["model_parameters"] = encode_json(state.get("modelParameters"))
        row["provided_usage_details"] = {
            k: int(v) for k, v in (state.get("usageDetails") or {}).items()
        }
        row["usage_details"] = (
            priced.usage_details if priced else usage_with_total(state.get("usageDetails"))
        )
        row["provided_cost_details"] = {
            k: float(v) for k, v in (state.get("costDetails") or {}).items()
        }
        row["cost_details"] = priced.cost_details if priced else {}
        row["total_cost"] = priced.total_cost if priced else None
        row["internal_model_id"] = priced.model_id if priced else None
        row["usage_pricing_tier_name"] = priced.tier_name if priced else None
    else:
        value = state.get("value")
        row["value"] = float(value) if isinstance(value, int | float) else 0.0
        row["data_type"] = state.get("dataType") or (
            "CATEGORICAL" if isinstance(value, str) else "NUMERIC"
        )
        if row["data_type"] == "BOOLEAN":
            row["string_value"] = "True" if value == 1 else "False"
        elif isinstance(value, str):
            row["string_value"] = value
        elif row["data_type"] == "CATEGORICAL":  # checked against a config: number and label
            row["string_value"] = state.get("stringValue")
        else:
            row["string_value"] = None
        row["source"] = state.get("source") or "API"
        row["environment"] = state.get("environment") or "default"
    return row


def from_row(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """The merge state of a stored row (the inverse of `to_row`)."""
    state: dict[str, Any] = {}
    for field, column in _COLUMNS[kind].items():
        value = row.get(column)
        state[field] = iso(value) if field in _TIME_FIELDS else value
    state["metadata"] = decode_metadata(row.get("metadata"))
    state["createdAt"] = iso(row.get("created_at"))
    state["updatedAt"] = iso(row.get("updated_at"))
    if kind in ("trace", "observation"):
        state["input"], state["output"] = (
            decode_json(row.get("input")),
            decode_json(row.get("output")),
        )
    if kind == "observation":
        state["modelParameters"] = decode_json(row.get("model_parameters"))
        # What the client gave (the input of later merges), and what was computed from it.
        state["usageDetails"] = _ints(row.get("provided_usage_details"))
        state["costDetails"] = _floats(row.get("provided_cost_details"))
        state["computedUsage"] = _ints(row.get("usage_details"))
        state["computedCost"] = _floats(row.get("cost_details"))
        state["pricingTier"] = row.get("usage_pricing_tier_name")
        total = row.get("total_cost")
        state["totalCost"] = float(total) if total is not None else None
    if kind == "score":
        # As Langfuse's v2 scores: a category's value is its config's number (0 without one).
        text = row.get("data_type") == "TEXT"
        state["value"] = row.get("string_value") if text else row.get("value")
        state["stringValue"] = row.get("string_value")
    return {k: v for k, v in state.items() if v is not None}


def _ints(values: dict[str, Any] | None) -> dict[str, int]:
    return {k: int(v) for k, v in (values or {}).items()}


def _floats(values: dict[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (values or {}).items()}
