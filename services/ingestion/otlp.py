"""OTLP/HTTP trace exports, protobuf or JSON, gzip or not, read into plain span records.

OTLP/JSON is not the protobuf JSON mapping: ids are hex strings (not base64), int64 values may be
strings or numbers, and JS exporters send `{low, high}` halves. So JSON is read by hand here
rather than with json_format. Pure: no I/O."""

import gzip
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


class OtlpError(Exception):
    """The whole export is rejected (Langfuse answers 400 `{"error": ...}`)."""


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    scope_attributes: dict[str, Any] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()


_HEX = re.compile("[0-9a-f]*")


def read_export(body: bytes, content_type: str, content_encoding: str) -> list[SpanRecord]:
    if content_encoding.strip().lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise OtlpError("body is not valid gzip") from exc
    kind = content_type.lower()
    if "application/x-protobuf" in kind or "application/protobuf" in kind:
        return _from_protobuf(body)
    if "application/json" in kind:
        return _from_json(body)
    raise OtlpError(f"unsupported content type: {content_type or 'none'}")


def _from_protobuf(body: bytes) -> list[SpanRecord]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError("body is not a valid ExportTraceServiceRequest") from exc
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _proto_value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_attributes = {a.key: _proto_value(a.value) for a in scope.attributes}
            for span in scope_spans.spans:
                spans.append(
                    _record(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={a.key: _proto_value(a.value) for a in span.attributes},
                        status_code=span.status.code,
                        status_message=span.status.message,
                        resource=resource,
                        scope=(scope.name, scope.version, scope_attributes),
                        events=tuple(
                            SpanEvent(
                                e.name,
                                e.time_unix_nano,
                                {a.key: _proto_value(a.value) for a in e.attributes},
                            )
                            for e in span.events
                        ),
                    )
                )
    return spans


def _proto_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":  # by far the most common: first
        return value.string_value
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return orjson.dumps(
            {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
        ).decode()
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def _from_json(body: bytes) -> list[SpanRecord]:
    try:
        request = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise OtlpError("body is not valid JSON") from exc
    if not isinstance(request, dict):
        raise OtlpError("body must be an ExportTraceServiceRequest object")
    spans = []
    for resource_spans in _list(request, "resourceSpans"):
        resource = _json_attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in _list(resource_spans, "scopeSpans"):
            scope = scope_spans.get("scope") or {}
            scope_attributes = _json_attributes(scope.get("attributes"))
            for span in _list(scope_spans, "spans"):
                status = span.get("status") or {}
                spans.append(
                    _record(
                        trace_id=str(span.get("traceId") or "").lower(),
                        span_id=str(span.get("spanId") or "").lower(),
                        parent_span_id=str(span.get("parentSpanId") or "").lower(),
                        name=str(span.get("name") or ""),
                        start_ns=_int64(span.get("startTimeUnixNano")),
                        end_ns=_int64(span.get("endTimeUnixNano")),
                        attributes=_json_attributes(span.get("attributes")),
                        status_code=_int64(status.get("code")),
                        status_message=str(status.get("message") or ""),
                        resource=resource,
                        scope=(
                            str(scope.get("name") or ""),
                            str(scope.get("version") or ""),
                            scope_attributes,
                        ),  # fmt: skip
                        events=tuple(
                            SpanEvent(
                                str(e.get("name") or ""),
                                _int64(e.get("timeUnixNano")),
                                _json_attributes(e.get("attributes")),
                            )
                            for e in _list(span, "events")
                        ),
                    )
                )
    return spans


def _record(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    scope: tuple[str, str, dict[str, Any]],
    start_ns: int,
    end_ns: int,
    **fields: Any,
) -> SpanRecord:
    if len(trace_id) != 32 or len(span_id) != 16 or not _is_hex(trace_id + span_id):
        raise OtlpError("every span needs a 16-byte traceId and an 8-byte spanId")
    # One edge missing: copy the other; an end before the start is clamped to the start.
    start_ns, end_ns = start_ns or end_ns, end_ns or start_ns
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id or None,
        start_ns=start_ns,
        end_ns=max(end_ns, start_ns),
        scope_name=scope[0],
        scope_version=scope[1],
        scope_attributes=scope[2],
        **fields,
    )


def _json_attributes(attributes: Any) -> dict[str, Any]:
    if not isinstance(attributes, list):
        return {}
    return {
        str(a.get("key")): _json_value(a.get("value") or {})
        for a in attributes
        if isinstance(a, dict) and a.get("key") is not None
    }


def _json_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return _int64(value["intValue"])
    if "doubleValue" in value:
        double = value["doubleValue"]
        return float(double) if isinstance(double, str) else double
    if "arrayValue" in value:
        return [_json_value(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        pairs = (value["kvlistValue"] or {}).get("values") or []
        return orjson.dumps({p["key"]: _json_value(p.get("value") or {}) for p in pairs}).decode()
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _int64(value: Any) -> int:
    if isinstance(value, dict):  # {low, high} halves, as some JS encoders send
        return (int(value.get("high", 0)) << 32) | (int(value.get("low", 0)) & 0xFFFFFFFF)
    try:
        return int(value or 0)
    except (TypeError, ValueError) as exc:
        raise OtlpError(f"not an integer: {value!r}") from exc


def _list(container: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = container.get(key) or []
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _is_hex(text: str) -> bool:
    return _HEX.fullmatch(text) is not None
