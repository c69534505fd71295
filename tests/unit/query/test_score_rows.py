"""Score values as stored and read back: a category keeps its config's number beside its label."""

from datetime import UTC, datetime

from services.query.rows import from_row, to_row

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stored(state: dict[str, object]) -> dict[str, object]:
    return to_row("score", "p1", {"id": "s", "name": "n", **state}, NOW)


def test_a_configured_category_is_read_with_its_number_and_label() -> None:
    row = stored({"value": 2, "stringValue": "good", "dataType": "CATEGORICAL", "configId": "c"})
    assert (row["value"], row["string_value"]) == (2.0, "good")
    state = from_row("score", row)
    assert (state["value"], state["stringValue"]) == (2.0, "good")
    assert stored(state)["value"] == 2.0 and stored(state)["string_value"] == "good"  # replays


def test_a_category_without_config_is_worth_zero() -> None:
    row = stored({"value": "good"})
    assert (row["data_type"], row["value"], row["string_value"]) == ("CATEGORICAL", 0.0, "good")
    assert from_row("score", row)["value"] == 0.0
    relabelled = stored({**from_row("score", row), "value": "bad"})
    assert relabelled["string_value"] == "bad"


def test_numbers_booleans_and_texts_keep_their_values() -> None:
    assert from_row("score", stored({"value": 0.5}))["value"] == 0.5
    boolean = from_row("score", stored({"value": 1, "dataType": "BOOLEAN"}))
    assert (boolean["value"], boolean["stringValue"]) == (1.0, "True")
    text = from_row("score", stored({"value": "fine", "dataType": "TEXT"}))
    assert (text["value"], text["stringValue"]) == ("fine", "fine")
    assert "stringValue" not in from_row("score", stored({"value": 3, "stringValue": "stale"}))
