"""The declarations of ingested bodies: each rule once, with the field its error names. Ranges
are those the ClickHouse columns hold (libs.common.limits)."""

from datetime import UTC, datetime
from typing import Any

import pytest

from libs.common.scope import AccessLevel
from services.ingestion.batch import EventError, accept, score_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STAMP = "2026-11-22T10:00:00Z"


def envelope(kind: str, body: Any, **extra: Any) -> dict[str, Any]:
    return {"id": "evt-1", "type": kind, "timestamp": STAMP, "body": body, **extra}


def error_of(item: Any) -> str:
    with pytest.raises(EventError) as raised:
        accept(item, "proj", AccessLevel.PROJECT, NOW)
    assert (raised.value.status, raised.value.message) == (400, "Invalid request data")
    return raised.value.error


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


GENERATION = {"id": "g", "traceId": "t"}
SCORE = {"name": "s", "traceId": "t", "value": 1}


@pytest.mark.parametrize(
    ("item", "error"),
    [
        # The envelope.
        ({"type": "trace-create", "timestamp": STAMP, "body": {}}, "id: required"),
        (envelope("trace-create", {}, id=""), "id: Expected str of length >= 1"),
        (envelope("trace-create", {}, id="x" * 801), "id: Expected str of length <= 800"),
        (envelope("trace-create", {}, id="a\r\nb"), "id: must have no control characters"),
        (envelope("trace-create", {}, id="trailing\n"), "id: must have no control characters"),
        (envelope("trace-create", {}, timestamp="2026-11-22T10:00:00"),
         "timestamp: Expected datetime with a timezone component"),
        (envelope("trace-create", {}, timestamp="0999-01-01T00:00:00Z"),
         "timestamp must be between 1970-01-01 and 2099-12-31"),
        (envelope("trace-create", {}, timestamp="10000-01-01T00:00:00Z"),
         "timestamp: Invalid RFC3339 encoded datetime"),
        (envelope("trace-create", "not an object"), "body: Expected object, got str"),
        (envelope("what-create", {}), "type: unknown event type 'what-create'"),
        (envelope("dataset-run-item-create", {}), "type: unknown event type"),
        ("not an object", "Expected object, got str"),
        # Traces.
        (envelope("trace-create", {"name": "x" * 1001}), "body.name: Expected str of length"),
        (envelope("trace-create", {"tags": "one"}), "body.tags: Expected array | null, got str"),
        (envelope("trace-create", {"public": "yes"}), "body.public: Expected bool | null"),
        (envelope("trace-create", {"sessionId": "s\x00"}), "body.sessionId: must have no"),
        (envelope("trace-create", {"metadata": {"a": nested(100)}}), "metadata is nested deeper"),
        # Observations.
        (envelope("span-create", {}), "body.id: required"),
        (envelope("span-create", {"id": "o", "traceId": ""}), "body.traceId: Expected str of"),
        (envelope("span-create", {"id": "o", "level": "LOUD"}), "body.level: Invalid enum value"),
        (envelope("span-create", {"id": "o", "endTime": "2100-01-01T00:00:00Z"}),
         "endTime must be between 1970-01-01 and 2099-12-31"),
        (envelope("span-create", {"id": "o", "input": nested(101)}), "input is nested deeper"),
        (envelope("generation-create", {**GENERATION, "promptName": "p"}),
         "promptName and promptVersion go together"),
        (envelope("generation-create", {**GENERATION, "promptName": "p", "promptVersion": -1}),
         "body.promptVersion: Expected int >= 0"),
        (envelope("generation-create", {**GENERATION, "promptName": "p", "promptVersion": 65536}),
         "body.promptVersion: Expected int <= 65535"),
        (envelope("generation-create", {**GENERATION, "modelParameters": [1]}),
         "body.modelParameters: Expected object | null, got array"),
        (envelope("generation-create", {**GENERATION, "costDetails": {"total": 1e6}}),
         "costDetails.total must be less than 1,000,000 USD"),
        (envelope("generation-create", {**GENERATION, "usageDetails": {"a": 2**63 - 1, "b": 1}}),
         "usageDetails must sum to less than 2^63"),
        (envelope("observation-create", {"id": "o", "type": "NOPE"}),
         "body.type: Invalid enum value 'NOPE'"),
        # Scores.
        (envelope("score-create", {"name": "s", "value": 1}), "exactly one of traceId"),
        (envelope("score-create", {**SCORE, "sessionId": "s"}), "exactly one of traceId"),
        (envelope("score-create", {"name": "s", "value": 1, "sessionId": "s",
                                   "observationId": "o"}), "observationId needs traceId"),
        (envelope("score-create", {**SCORE, "name": ""}), "body.name: Expected str of length"),
        (envelope("score-create", {**SCORE, "value": True}), "body.value: Expected float | str"),
        (envelope("score-create", {**SCORE, "id": "a\nb"}), "id must have 1-800 characters"),
        (envelope("score-create", {**SCORE, "dataType": "COLOR"}), "body.dataType: Invalid enum"),
        (envelope("score-create", {**SCORE, "dataType": "NUMERIC", "value": "high"}),
         "a NUMERIC score needs a number"),
        (envelope("score-create", {**SCORE, "dataType": "BOOLEAN", "value": 2}),
         "a BOOLEAN score is 0 or 1"),
        (envelope("score-create", {**SCORE, "dataType": "CATEGORICAL"}),
         "a CATEGORICAL score needs a string"),
        (envelope("score-create", {**SCORE, "dataType": "TEXT", "value": ""}),
         "a TEXT score has 1-500 characters"),
    ],
)  # fmt: skip
def test_each_rule_refuses_its_event_naming_the_field(item: Any, error: str) -> None:
    assert error in error_of(item)


def test_unknown_fields_are_ignored_and_nulls_are_absent() -> None:
    body = {"id": "t", "name": None, "externalId": "x", "color": [1], "tags": None}
    [event] = accept(envelope("trace-create", body), "proj", AccessLevel.PROJECT, NOW).events
    assert event.body_json == b'{"id":"t","environment":"default"}'


def test_the_ranges_bounds_themselves_are_accepted() -> None:
    body = {
        **GENERATION, "promptName": "p", "promptVersion": 65535, "input": nested(100),
        "startTime": "1970-01-01T00:00:00Z", "endTime": "2099-12-31T23:59:59.999Z",
        "usageDetails": {"input": 2**63 - 2, "output": 1}, "costDetails": {"total": 999_999.99},
    }  # fmt: skip
    assert accept(envelope("generation-create", body), "proj", AccessLevel.PROJECT, NOW).events


def test_scores_posted_alone_follow_the_same_rules_with_their_own_timestamp() -> None:
    event = score_event({**SCORE, "timestamp": "2026-01-01T00:00:00Z"}, "proj", NOW)
    assert event.event_time.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 1, tzinfo=UTC)
    assert b"timestamp" not in event.body_json
    with pytest.raises(EventError, match="Invalid request data") as raised:
        score_event({**SCORE, "timestamp": "1969-12-31T23:59:59Z"}, "proj", NOW)
    assert "timestamp must be between" in raised.value.error
