from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.query.pricing import Priced
from services.query.rows import (
    Change,
    Merged,
    encode_clocks,
    from_row,
    from_stored,
    iso,
    merge,
    stored_row,
    to_row,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float, body: dict[str, object], create: bool = True, event: str = "") -> Change:
    return Change(T0 + timedelta(seconds=seconds), create, body, event or f"e{seconds}")


def merged(kind: str, *changes: Change, stored: Merged | None = None) -> dict[str, Any]:
    return merge(kind, stored, changes)[0].values


def in_batches(kind: str, *batches: list[Change]) -> dict[str, Any]:
    """Merged one batch at a time, each time from the state read back from its row."""
    state = None
    for batch in batches:
        state = merge(kind, state, batch)[0]
        state = from_stored(kind, stored_row(kind, "p", state, T0))
    assert state is not None
    return state.values


def test_later_defined_values_win_and_missing_never_erase() -> None:
    state = merged("trace", at(0, {"id": "t", "name": "a", "userId": "u"}), at(1, {"name": "b"}))
    assert state == {"id": "t", "name": "b", "userId": "u"}


def test_events_apply_in_time_order_whatever_the_arrival_order() -> None:
    assert merged("trace", at(2, {"name": "late"}), at(1, {"name": "early"}))["name"] == "late"
    batches = in_batches("trace", [at(2, {"name": "late"})], [at(1, {"name": "early"})])
    assert batches["name"] == "late"


def test_on_a_tie_the_create_comes_first() -> None:
    update = at(1, {"id": "o", "name": "updated"}, create=False)
    create = at(1, {"id": "o", "name": "created"})
    assert merged("observation", update, create)["name"] == "updated"


def test_first_set_wins_for_immutable_fields() -> None:
    stored = Merged({"id": "t", "timestamp": "2026-01-01T00:00:00.000Z", "environment": "prod"})
    state = merged(
        "trace",
        at(5, {"timestamp": "2030-01-01T00:00:00.000Z", "environment": "dev"}),
        stored=stored,
    )
    assert (state["timestamp"], state["environment"]) == ("2026-01-01T00:00:00.000Z", "prod")


def test_an_earlier_create_arriving_later_sets_the_immutable_fields() -> None:
    late = at(5, {"id": "t", "timestamp": "2026-01-01T00:00:05.000Z"})
    early = at(1, {"id": "t", "timestamp": "2026-01-01T00:00:01.000Z"})
    assert in_batches("trace", [late], [early])["timestamp"] == "2026-01-01T00:00:01.000Z"


def test_an_update_before_its_create_never_fixes_the_start_time() -> None:
    """Regression (issue 14): an update in an earlier batch than its create set startTime."""
    end = "2026-01-01T00:00:09.000Z"
    update = at(9, {"id": "o", "startTime": end, "endTime": end}, create=False)
    create = at(1, {"id": "o", "startTime": "2026-01-01T00:00:01.000Z", "name": "n"})
    state = in_batches("observation", [update], [create])
    assert state["startTime"] == "2026-01-01T00:00:01.000Z"
    assert (state["endTime"], state["name"]) == (end, "n")


def test_conflicting_immutable_values_keep_the_first_create_and_are_reported() -> None:
    first = at(1, {"id": "o", "traceId": "t1"}, event="ev-1")
    second = at(2, {"id": "o", "traceId": "t2"}, event="ev-2")
    state, conflicts = merge("observation", merge("observation", None, [second])[0], [first])
    assert state.values["traceId"] == "t1"
    assert [(c.field, c.kept, c.refused, c.event_id) for c in conflicts] == [
        ("traceId", "t1", "t2", "ev-1")
    ]


def test_metadata_deep_merges_and_tags_union() -> None:
    stored = from_stored(
        "trace", {"id": "t", "metadata": {"a": '{"x": 1}'}, "tags": ["b"]}
    )  # a row written before clocks were kept
    state = merged(
        "trace", at(1, {"metadata": {"a": {"y": 2}, "c": 3}, "tags": ["a", "b"]}), stored=stored
    )
    assert state["metadata"] == {"a": {"x": 1, "y": 2}, "c": 3}
    assert state["tags"] == ["a", "b"]


def test_metadata_deep_merges_in_time_order_whatever_the_batches() -> None:
    """A value replaced by an object and back again: only the order of the events counts."""
    events = [
        at(1, {"metadata": {"a": {"x": 1}}}),
        at(2, {"metadata": {"a": 5}}),
        at(3, {"metadata": {"a": {"y": 2}, "b": {}}}),
        at(4, {"metadata": {"b": {"z": 1}}}),
    ]
    expected = {"a": {"y": 2}, "b": {"z": 1}}
    assert merged("trace", *events)["metadata"] == expected
    assert in_batches("trace", [events[2]], [events[0]], [events[3], events[1]])["metadata"] == (
        expected
    )
    assert in_batches("trace", [events[1]], [events[0]])["metadata"] == {"a": 5}


def test_input_and_output_keep_the_last_truthy_value() -> None:
    changes = [at(0, {"output": "answer"}), at(1, {"output": ""}), at(2, {"output": 0}),
               at(3, {"output": False})]  # fmt: skip
    assert merged("trace", *changes)["output"] == "answer"


def test_empty_maps_never_erase_usage_or_cost() -> None:
    state = merged(
        "observation", at(1, {"usageDetails": {}}), stored=Merged({"usageDetails": {"input": 3}})
    )
    assert state["usageDetails"] == {"input": 3}


def test_replaying_events_changes_nothing() -> None:
    changes = [at(0, {"id": "t", "metadata": {"a": 1}, "tags": ["x"], "name": "n"}),
               at(1, {"metadata": {"b": 2}, "tags": ["y"]})]  # fmt: skip
    once = merge("trace", None, changes)[0]
    again = merge("trace", once, reversed(changes))[0]
    assert again.values == once.values and encode_clocks(again) == encode_clocks(once)


def test_one_event_id_sent_twice_with_different_bodies_merges_alike_either_way() -> None:
    a = at(1, {"name": "a"}, event="same")
    b = at(1, {"name": "b"}, event="same")
    assert merged("trace", a, b) == merged("trace", b, a)


def test_rows_round_trip_through_the_clickhouse_shape() -> None:
    state = {
        "id": "o", "traceId": "t", "type": "GENERATION", "name": "llm",
        "startTime": "2026-01-01T00:00:00.000Z", "endTime": "2026-01-01T00:00:01.500Z",
        "metadata": {"k": "v", "n": [1]}, "input": {"q": 1}, "output": "a",
        "usageDetails": {"input": 2, "output": 3}, "costDetails": {"input": 0.5},
        "modelParameters": {"t": 0}, "level": "DEFAULT", "environment": "default",
    }  # fmt: skip
    usage = {"input": 2, "output": 3, "total": 5}
    priced = Priced(usage, {"input": 0.5, "total": 0.5}, 0.5, "model-1", None)
    row = to_row("observation", "p", state, T0, priced)
    assert row["usage_details"] == {"input": 2, "output": 3, "total": 5}
    assert row["provided_usage_details"] == {"input": 2, "output": 3}
    assert (row["total_cost"], row["internal_model_id"]) == (0.5, "model-1")
    back = from_row("observation", row)
    assert back["metadata"] == state["metadata"] and back["input"] == {"q": 1}
    assert back["endTime"] == "2026-01-01T00:00:01.500Z" and back["totalCost"] == 0.5
    # What the client gave is what later merges start from, never the computed values.
    assert back["usageDetails"] == {"input": 2, "output": 3}
    assert back["costDetails"] == {"input": 0.5}


_leaf = st.one_of(st.none(), st.integers(0, 2), st.sampled_from(["", "x"]), st.just({}))
_metadata = st.recursive(
    _leaf, lambda inner: st.dictionaries(st.sampled_from("ab"), inner), max_leaves=6
)
_bodies = st.fixed_dictionaries(
    {},
    optional={
        "id": st.just("e"),
        "traceId": st.sampled_from(["t1", "t2"]),
        "timestamp": st.just("2026-01-01T00:00:00.000Z"),
        "name": st.one_of(st.none(), st.sampled_from(["", "n"])),
        "metadata": _metadata,
        "tags": st.lists(st.sampled_from("xyz")),
        "input": st.one_of(st.none(), st.sampled_from(["", 0, False, "q", {"q": 1}])),
        "output": st.one_of(st.none(), st.sampled_from(["", "a"])),
        "usageDetails": st.one_of(st.just({}), st.just({"input": 1})),
        "costDetails": st.one_of(st.just({}), st.just({"total": 0.5})),
    },
)


@given(
    kind=st.sampled_from(["trace", "observation", "score"]),
    body=_bodies,
    create=st.booleans(),
)
def test_a_new_entitys_first_event_merges_as_into_an_empty_state(
    kind: str, body: dict[str, Any], create: bool
) -> None:
    """The writer's shortcut for a new entity (one event, nothing stored) gives the state, the
    clocks and the metadata's merge record that the full merge gives."""
    change = at(1, body, create)
    shortcut, conflicts = merge(kind, None, [change])
    full, _ = merge(kind, Merged(), [change])
    assert conflicts == []
    assert shortcut.values == full.values and shortcut.clocks == full.clocks
    assert shortcut.metadata == full.metadata
    assert encode_clocks(shortcut) == encode_clocks(full)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2299, 12, 31)))
def test_chdb_time_text_reads_as_the_iso_time_it_stands_for(moment: datetime) -> None:
    text = moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]  # a DateTime64(3, 'UTC') from chDB
    parsed = datetime.fromisoformat(text).replace(tzinfo=UTC)
    assert iso(text) == parsed.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert iso(moment.replace(tzinfo=UTC)) == iso(text)
