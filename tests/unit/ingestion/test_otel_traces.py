"""The trace events of an OTLP export: a root span makes a full one; a child span carrying trace
attributes (user, session, tags, name, metadata, public, input/output) makes a partial one
without a timestamp; any other child only a shallow one per trace, so the trace exists even if
its root never arrives."""

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from libs.common.gen.obs.events.v1 import events_pb2
from services.ingestion.otel import otel_events
from services.ingestion.otlp import SpanRecord

TRACE = "a" * 32
START_NS = 1_764_547_200_000_000_000  # 2025-12-01T00:00:00Z


def span(span_id: str, parent: str | None = "c" * 16, **attributes: Any) -> SpanRecord:
    return SpanRecord(
        trace_id=TRACE, span_id=span_id, parent_span_id=parent, name=f"span-{span_id[0]}",
        start_ns=START_NS, end_ns=START_NS, attributes=attributes, status_code=0,
        status_message="", resource={}, scope_name="langfuse-sdk", scope_version="4.0.0",
    )  # fmt: skip


def trace_bodies(*spans: SpanRecord) -> list[dict[str, Any]]:
    events = otel_events(list(spans), "proj", datetime.now(UTC), "", "")
    return [
        orjson.loads(event.body_json)
        for event in events
        if event.type == events_pb2.EVENT_TYPE_TRACE_CREATE
    ]


def test_a_child_without_trace_attributes_makes_one_shallow_trace_per_trace() -> None:
    assert trace_bodies(span("b" * 16), span("d" * 16)) == [
        {"id": TRACE, "environment": "default", "timestamp": "2025-12-01T00:00:00.000Z"}
    ]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"user.id": "u1"}, {"userId": "u1"}),
        ({"langfuse.session.id": "s1"}, {"sessionId": "s1"}),
        ({"langfuse.trace.tags": '["a", "b"]'}, {"tags": ["a", "b"]}),
        ({"langfuse.trace.name": "chat"}, {"name": "chat"}),
        ({"langfuse.trace.public": True}, {"public": True}),
        ({"langfuse.trace.metadata.team": "core"}, {"metadata": {"team": "core"}}),
        ({"langfuse.trace.input": '{"q": 1}'}, {"input": {"q": 1}}),
    ],
)
def test_a_child_with_trace_attributes_makes_a_partial_trace(
    attributes: dict[str, Any], expected: dict[str, Any]
) -> None:
    [partial] = trace_bodies(span("b" * 16, **attributes))
    assert partial == {"id": TRACE, "environment": "default", **expected}


def test_a_child_whose_trace_attribute_is_empty_still_makes_a_partial_trace() -> None:
    # The attribute's presence says the span speaks for its trace, even with nothing to set.
    assert trace_bodies(span("b" * 16, **{"session.id": ""})) == [
        {"id": TRACE, "environment": "default"}
    ]


def test_the_root_in_the_same_export_makes_the_shallow_trace_unnecessary() -> None:
    [full] = trace_bodies(span("c" * 16, parent=None), span("b" * 16))
    assert full["name"] == "span-c" and full["timestamp"] == "2025-12-01T00:00:00.000Z"
