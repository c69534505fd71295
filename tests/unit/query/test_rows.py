from datetime import UTC, datetime, timedelta

from services.query.pricing import Priced
from services.query.rows import Change, from_row, merge, to_row

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float, body: dict[str, object], create: bool = True) -> Change:
    return Change(T0 + timedelta(seconds=seconds), create, body)


def test_later_defined_values_win_and_missing_never_erase() -> None:
    state = merge(
        "trace", None, [at(0, {"id": "t", "name": "a", "userId": "u"}), at(1, {"name": "b"})]
    )
    assert state == {"id": "t", "name": "b", "userId": "u"}


def test_events_apply_in_time_order_whatever_the_arrival_order() -> None:
    state = merge("trace", None, [at(2, {"name": "late"}), at(1, {"name": "early"})])
    assert state["name"] == "late"


def test_on_a_tie_the_create_comes_first() -> None:
    update = at(1, {"id": "o", "name": "updated"}, create=False)
    create = at(1, {"id": "o", "name": "created"})
    assert merge("observation", None, [update, create])["name"] == "updated"


def test_first_set_wins_for_immutable_fields() -> None:
    stored = {"id": "t", "timestamp": "2026-01-01T00:00:00.000Z", "environment": "prod"}
    state = merge(
        "trace", stored, [at(5, {"timestamp": "2030-01-01T00:00:00.000Z", "environment": "dev"})]
    )
    assert (state["timestamp"], state["environment"]) == (stored["timestamp"], "prod")


def test_metadata_deep_merges_and_tags_union() -> None:
    state = merge("trace", {"metadata": {"a": {"x": 1}}, "tags": ["b"]}, [
        at(1, {"metadata": {"a": {"y": 2}, "c": 3}, "tags": ["a", "b"]}),
    ])  # fmt: skip
    assert state["metadata"] == {"a": {"x": 1, "y": 2}, "c": 3}
    assert state["tags"] == ["a", "b"]


def test_input_and_output_keep_the_last_truthy_value() -> None:
    state = merge("trace", None, [at(0, {"output": "answer"}), at(1, {"output": ""}),
                                  at(2, {"output": 0}), at(3, {"output": False})])  # fmt: skip
    assert state["output"] == "answer"


def test_empty_maps_never_erase_usage_or_cost() -> None:
    state = merge("observation", {"usageDetails": {"input": 3}}, [at(1, {"usageDetails": {}})])
    assert state["usageDetails"] == {"input": 3}


def test_replaying_events_changes_nothing() -> None:
    changes = [at(0, {"id": "t", "metadata": {"a": 1}, "tags": ["x"], "name": "n"}),
               at(1, {"metadata": {"b": 2}, "tags": ["y"]})]  # fmt: skip
    once = merge("trace", None, changes)
    assert merge("trace", once, changes) == once


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
