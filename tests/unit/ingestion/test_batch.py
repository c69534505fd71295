from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.scope import AccessLevel
from services.ingestion.batch import EventError, accept, parse_envelope
from services.ingestion.bodies import normalize_environment

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STAMP = "2026-11-22T11:59:59.123456+01:00"


def envelope(kind: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "evt-1", "type": kind, "timestamp": STAMP, "body": body, **extra}


def events(item: dict[str, Any], access: AccessLevel = AccessLevel.PROJECT) -> list[Any]:
    return accept(item, "proj", access, NOW).events


def body_of(event: events_pb2.IngestionEvent) -> dict[str, Any]:
    return orjson.loads(event.body_json)  # type: ignore[no-any-return]


def test_the_envelope_must_hold_a_batch_array() -> None:
    assert parse_envelope(b'{"batch": [1, 2]}') == [1, 2]
    for raw in (b"nope", b"[]", b'{"batch": {}}'):
        with pytest.raises(ValueError):
            parse_envelope(raw)


def test_a_trace_event_is_keyed_by_its_id_and_normalized() -> None:
    [event] = events(envelope("trace-create", {"id": "t1", "name": "n", "metadata": [1]}))
    assert (event.type, event.entity_id, event.trace_id) == (
        events_pb2.EVENT_TYPE_TRACE_CREATE, "t1", "t1",
    )  # fmt: skip
    assert body_of(event) == {
        "id": "t1", "name": "n", "metadata": {"metadata": [1]}, "environment": "default",
    }  # fmt: skip
    assert event.event_time.ToDatetime(tzinfo=UTC) == datetime(
        2026, 11, 22, 10, 59, 59, 123456, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("kind", "observation_type"),
    [("span-create", "SPAN"), ("generation-update", "GENERATION"), ("event-create", "EVENT"),
     ("tool-create", "TOOL"), ("guardrail-create", "GUARDRAIL")],
)  # fmt: skip
def test_observation_types_follow_the_event_type(kind: str, observation_type: str) -> None:
    [event] = events(envelope(kind, {"id": "o1", "traceId": "t1"}))
    assert (event.observation_type, event.trace_id) == (observation_type, "t1")


def test_an_observation_without_trace_gets_a_wrapper_trace() -> None:
    trace, observation = events(envelope("span-create", {"id": "o1"}))
    assert trace.type == events_pb2.EVENT_TYPE_TRACE_CREATE and trace.entity_id == "o1"
    assert body_of(observation)["traceId"] == "o1"


def test_legacy_observation_events_carry_their_type_in_the_body() -> None:
    [event] = events(envelope("observation-create", {"id": "o", "traceId": "t", "type": "EVENT"}))
    assert event.observation_type == "EVENT"
    with pytest.raises(EventError):
        events(envelope("observation-create", {"id": "o", "traceId": "t", "type": "NOPE"}))


def test_sdk_logs_succeed_and_publish_nothing() -> None:
    assert events(envelope("sdk-log", {"log": "x"})) == []


@pytest.mark.parametrize(
    "item",
    [
        envelope("what-create", {}),
        envelope("span-create", {"id": "x" * 801}),
        envelope("span-create", {"id": "a\rb"}),
        envelope("span-create", {"id": "o", "level": "LOUD"}),
        envelope("generation-create", {"id": "o", "promptName": "p"}),
        envelope("trace-create", {"id": "t", "tags": "one"}),
        envelope("trace-create", {"id": "t"}, timestamp="2026-11-22T10:00:00"),
        envelope("trace-create", {"id": "t"}, timestamp=None),
        envelope("score-create", {"name": "s", "value": 1}),
        envelope("score-create", {"name": "s", "value": 1, "traceId": "t", "sessionId": "s"}),
        envelope("score-create", {"name": "s", "value": 1, "observationId": "o", "sessionId": "s"}),
        envelope("score-create", {"name": "s", "value": True, "traceId": "t"}),
        envelope("dataset-run-item-create", {}),
        {"id": "e", "type": "trace-create", "timestamp": STAMP, "body": "not an object"},
        "not an object",
    ],
)
def test_invalid_events_are_400(item: Any) -> None:
    with pytest.raises(EventError) as raised:
        events(item)
    assert raised.value.status == 400


def test_a_public_key_may_only_send_scores() -> None:
    score = envelope("score-create", {"name": "s", "value": 1, "traceId": "t"})
    assert len(events(score, AccessLevel.SCORES)) == 1
    with pytest.raises(EventError) as raised:
        events(envelope("trace-create", {"id": "t"}), AccessLevel.SCORES)
    assert (raised.value.status, raised.value.message) == (401, "Access Scope Denied")


@pytest.mark.parametrize(
    ("given", "stored"),
    [(None, "default"), ("Production", "production"), ("langfuse-langfuse_dev", "dev"),
     ("has space", "default"), ("prod\n", "default"), ("x" * 50, "x" * 40), ("", "default")],
)  # fmt: skip
def test_environments_are_normalized_silently(given: Any, stored: str) -> None:
    assert normalize_environment(given) == stored


@pytest.mark.parametrize(
    ("data_type", "value"),
    [("NUMERIC", "high"), ("BOOLEAN", 2), ("CATEGORICAL", 1), ("TEXT", ""), ("COLOR", 1)],
)
def test_score_values_must_suit_their_data_type(data_type: str, value: Any) -> None:
    body = {"name": "s", "traceId": "t", "value": value, "dataType": data_type}
    with pytest.raises(EventError):
        events(envelope("score-create", body))


def test_an_annotation_score_needs_a_config() -> None:
    body = {"name": "s", "traceId": "t", "value": 1, "source": "ANNOTATION", "queueId": "q"}
    with pytest.raises(EventError) as refused:
        events(envelope("score-create", body))
    assert "an ANNOTATION score needs a configId" in refused.value.error
    configured = body_of(events(envelope("score-create", {**body, "configId": "c"}))[0])
    assert (configured["source"], configured["queueId"]) == ("ANNOTATION", "q")
    correction = {**body, "value": "fixed", "dataType": "CORRECTION"}
    assert len(events(envelope("score-create", correction))) == 1


def test_boolean_scores_take_zero_or_one() -> None:
    body = {"name": "s", "traceId": "t", "value": 1, "dataType": "BOOLEAN"}
    assert body_of(events(envelope("score-create", body))[0])["value"] == 1
