"""OTLP exports: the JSON declarations refuse wrong value types, ids and times are checked
against what the stores hold, gzip is capped, and numeric attributes the columns cannot hold are
ignored rather than stored."""

import gzip
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest

from libs.common.errors import PayloadTooLarge
from services.ingestion.otel import otel_events
from services.ingestion.otlp import OtlpError, read_export

START = "1764547200000000000"  # 2025-12-01


def export(attributes: list[dict[str, Any]] | None = None, **span: Any) -> bytes:
    record = {"traceId": "a" * 32, "spanId": "b" * 16, "name": "llm", "startTimeUnixNano": START,
              "endTimeUnixNano": START, "attributes": attributes or [], **span}  # fmt: skip
    return msgspec.json.encode({"resourceSpans": [{"scopeSpans": [{"spans": [record]}]}]})


def attribute(key: str, **value: Any) -> dict[str, Any]:
    return {"key": key, "value": value}


def observation(body: bytes, encoding: str = "") -> dict[str, Any]:
    spans = read_export(body, "application/json", encoding, 1_000_000)
    events = otel_events(spans, "proj", datetime.now(UTC), "", "")
    return orjson.loads(events[-1].body_json)  # type: ignore[no-any-return]


def nested_array(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(levels):
        value = {"arrayValue": {"values": [value]}}
    return value


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (export([attribute("k", boolValue="true")]), "attributes[0].value.boolValue"),
        (export([{"key": "k", "value": 5}]), "attributes[0].value"),
        (export([attribute("k", arrayValue="x")]), "attributes[0].value.arrayValue"),
        (export([attribute("k", doubleValue="abc")]), "not a number"),
        (export([attribute("k", intValue=str(2**64))]), "64-bit range"),
        (export(status="error"), "spans[0].status"),
        (export(startTimeUnixNano={"low": "x"}), "startTimeUnixNano.low"),
        (export(traceId="xyz"), "16-byte traceId"),
        (export(parentSpanId="b\n"), "parentSpanId must be 8 bytes"),
        (export(startTimeUnixNano=str(4_102_444_800 * 10**9)), "times must be between"),
        (export([attribute("k", **nested_array(101))]), "nest deeper than 100"),
        (b'{"resourceSpans": {}}', "resourceSpans"),
        (b"not json", "not valid JSON"),
    ],
)
def test_exports_of_the_wrong_shape_are_400(body: bytes, error: str) -> None:
    with pytest.raises(OtlpError, match=re.escape(error)):
        read_export(body, "application/json", "", 1_000_000)


def test_numeric_attributes_the_columns_cannot_hold_are_ignored() -> None:
    stored = observation(export([
        attribute("langfuse.observation.type", stringValue="generation"),
        attribute("langfuse.observation.prompt.name", stringValue="p"),
        attribute("langfuse.observation.prompt.version", intValue=-1),
        attribute("gen_ai.usage.input_tokens", intValue="5"),
        attribute("gen_ai.usage.output_tokens", doubleValue="NaN"),
        attribute("gen_ai.usage.cost", doubleValue="Infinity"),
        attribute("langfuse.observation.completion_start_time",
                  stringValue='"0999-01-01T00:00:00Z"'),
        attribute("gen_ai.request.model", intValue=4),
    ]))  # fmt: skip
    assert stored["usageDetails"] == {"input": 5} and "costDetails" not in stored
    assert "promptVersion" not in stored and "completionStartTime" not in stored
    assert stored["model"] == "4"


def test_costs_and_usage_within_range_are_kept() -> None:
    stored = observation(export([
        attribute("langfuse.observation.usage_details", stringValue='{"input": 9, "x": -1}'),
        attribute("langfuse.observation.cost_details", stringValue='{"input": 0.5, "y": 1e6}'),
        attribute("langfuse.observation.completion_start_time",
                  stringValue='"2025-12-01T00:00:00.5+01:00"'),
    ]))  # fmt: skip
    assert stored["usageDetails"] == {"input": 9} and stored["costDetails"] == {"input": 0.5}
    assert stored["completionStartTime"] == "2025-11-30T23:00:00.500000Z"


def test_json_attributes_nested_too_deep_stay_text() -> None:
    deep = "[" * 101 + "]" * 101
    stored = observation(export([attribute("langfuse.observation.input", stringValue=deep)]))
    assert stored["input"] == deep


def test_gzip_is_read_up_to_its_cap() -> None:
    body = export()
    members = gzip.compress(body[:50]) + gzip.compress(body[50:])  # as gzip -c a b > c does
    assert observation(members, "gzip")["id"] == "b" * 16
    with pytest.raises(PayloadTooLarge):
        read_export(gzip.compress(b" " * 1_000_001), "application/json", "gzip", 1_000_000)
    for broken in (gzip.compress(body)[:-12], b"not gzip"):
        with pytest.raises(OtlpError, match="gzip"):
            read_export(broken, "application/json", "gzip", 1_000_000)
