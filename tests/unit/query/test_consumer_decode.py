"""The writer's decode step refuses a record holding a value no column can hold (as ingestion
refuses it at the door, libs/common/limits.py): InvalidMessage, which sends the record straight
to the DLQ instead of into an insert that fails and splits its batch."""

from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from google.protobuf.timestamp_pb2 import Timestamp

from libs.common.event_batches import encode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import InvalidMessage, Record
from services.query.consumer import decode_events

TRACE = events_pb2.EVENT_TYPE_TRACE_CREATE
OBSERVATION = events_pb2.EVENT_TYPE_OBSERVATION_CREATE
SCORE = events_pb2.EVENT_TYPE_SCORE_CREATE
NOW = Timestamp(seconds=1_790_000_000)  # 2026-09-21


def record(*events: tuple[int, dict[str, Any]], event_time: Timestamp = NOW) -> Record:
    """A message of `ingestion.events.v1` holding these events of trace "t"."""
    batch = events_pb2.IngestionEventBatch()
    for index, (kind, body) in enumerate(events):
        batch.events.add(
            event_id=f"e{index}",
            project_id="p",
            type=kind,  # type: ignore[arg-type]
            observation_type="GENERATION" if kind == OBSERVATION else "",
            entity_id=str(body.get("id") or "x"),
            trace_id="t",
            event_time=event_time,
            received_at=event_time,
            body_json=orjson.dumps(body),
        )
    value = encode_event_batch(batch)
    return ConsumerRecord("topic", 0, 0, 0, 0, b"p:t", value, None, 3, len(value), [])


def generation(**body: Any) -> tuple[int, dict[str, Any]]:
    return OBSERVATION, {"id": "o", "traceId": "t", **body}


def test_events_whose_values_every_column_holds_are_decoded() -> None:
    decoded = decode_events(
        record(
            (TRACE, {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "sessionId": "s"}),
            generation(
                parentObservationId="root",
                startTime="1970-01-01T00:00:00Z",
                endTime="2099-12-31T23:59:59.999Z",
                completionStartTime="2026-01-01T00:00:00.5+02:00",
                promptName="p",
                promptVersion=65_535,
                usageDetails={"input": 2**62, "output": 1.0},
                costDetails={"input": 0, "output": 999_999.5},
            ),
            (SCORE, {"id": "s", "traceId": "t", "observationId": "o", "name": "n", "value": 1}),
        )
    )
    assert [(event.kind, event.entity_id) for event in decoded] == [
        ("trace", "t"),
        ("observation", "o"),
        ("score", "s"),
    ]
    # Times the body leaves out are the envelope's, as before: checked like the others.
    assert decoded[2].change.body["timestamp"] == "2026-09-21T14:13:20.000Z"


@pytest.mark.parametrize(
    ("event", "named"),
    [
        pytest.param(generation(costDetails={"total": 1e7}), "costDetails", id="cost-too-big"),
        pytest.param(generation(costDetails={"a": 6e5, "b": 6e5}), "costDetails", id="cost-sum"),
        pytest.param(generation(costDetails={"total": -1}), "costDetails", id="cost-negative"),
        pytest.param(generation(costDetails={"total": "1"}), "costDetails", id="cost-string"),
        pytest.param(generation(costDetails=[1]), "costDetails", id="costs-not-a-map"),
        pytest.param(generation(usageDetails={"input": 2**63}), "usageDetails", id="usage-big"),
        pytest.param(
            generation(usageDetails={"input": 2**62, "output": 2**62}), "usageDetails", id="sum"
        ),
        pytest.param(generation(usageDetails={"input": -1}), "usageDetails", id="usage-negative"),
        pytest.param(generation(usageDetails={"input": True}), "usageDetails", id="usage-bool"),
        pytest.param(generation(usageDetails="10"), "usageDetails", id="usage-not-a-map"),
        pytest.param(generation(promptVersion=-1), "promptVersion", id="prompt-version-negative"),
        pytest.param(generation(promptVersion=65_536), "promptVersion", id="prompt-version-big"),
        pytest.param(generation(promptVersion=1.5), "promptVersion", id="prompt-version-float"),
        pytest.param(generation(startTime="2100-01-01T00:00:00Z"), "startTime", id="time-late"),
        pytest.param(generation(endTime="1969-12-31T23:59:59Z"), "endTime", id="time-early"),
        pytest.param(generation(completionStartTime="soon"), "completionStartTime", id="no-time"),
        pytest.param(generation(endTime=1_700_000_000), "endTime", id="time-number"),
        pytest.param((TRACE, {"id": "t", "timestamp": ""}), "timestamp", id="trace-time-empty"),
        pytest.param((TRACE, {"id": "t", "sessionId": 7}), "sessionId", id="id-number"),
        pytest.param(generation(traceId="a\nb"), "traceId", id="id-control-character"),
        pytest.param(generation(parentObservationId="x" * 801), "parentObservationId", id="long"),
        pytest.param((SCORE, {"id": "", "traceId": "t"}), "id", id="id-empty"),
        pytest.param((SCORE, {"id": "s", "datasetRunId": {}}), "datasetRunId", id="id-object"),
    ],
)
def test_an_event_with_a_value_no_column_holds_makes_the_record_invalid(
    event: tuple[int, dict[str, Any]], named: str
) -> None:
    good = (TRACE, {"id": "t"})
    with pytest.raises(InvalidMessage, match=rf"(^| ){named} must"):
        decode_events(record(good, event))


def test_an_envelope_time_out_of_range_makes_the_record_invalid() -> None:
    """It becomes the time of a body without one."""
    with pytest.raises(InvalidMessage, match="timestamp must"):
        decode_events(record((TRACE, {"id": "t"}), event_time=Timestamp(seconds=5_000_000_000)))
