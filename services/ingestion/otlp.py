"""OTLP/HTTP trace exports, protobuf or JSON, gzip or not, read into plain span records.

OTLP/JSON is not the protobuf JSON mapping: ids are hex strings (not base64), int64 values may be
strings or numbers, and JS exporters send `{low, high}` halves. So JSON is read with declarations
of its own (msgspec) rather than with json_format: a field of the wrong type is a 400. Ids and
times are checked against what the stores hold (libs.common.limits). Pure: no I/O."""

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from libs.common import limits
from libs.common.errors import PayloadTooLarge


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


def read_export(
    body: bytes, content_type: str, content_encoding: str, max_bytes: int
) -> list[SpanRecord]:
    """The spans of an export; OtlpError (400) for what is not one, PayloadTooLarge (413) for a
    gzip body expanding past `max_bytes`."""
    if content_encoding.strip().lower() == "gzip":
        body = _gunzip(body, max_bytes)
    kind = content_type.lower()
    try:
        if "application/x-protobuf" in kind or "application/protobuf" in kind:
            return _from_protobuf(body)
        if "application/json" in kind:
            return _from_json(body)
    except (RecursionError, orjson.JSONEncodeError) as exc:
        raise OtlpError("attribute values are nested too deep") from exc
    raise OtlpError(f"unsupported content type: {content_type or 'none'}")


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """Streaming, so a small body that expands enormously is stopped at the cap instead of
    filling memory. Concatenated gzip members are read one after the other, as gzip does."""
    parts: list[bytes] = []
    size = 0
    rest = body
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            pending = rest
            while not inflater.eof:
                chunk = inflater.decompress(pending, max_bytes + 1 - size)
                pending = inflater.unconsumed_tail
                if not chunk and not pending and not inflater.eof:
                    raise OtlpError("body is not valid gzip: it ends early")
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"Request body decompresses to more than {max_bytes} bytes"
                    )
                parts.append(chunk)
            rest = inflater.unused_data
    except zlib.error as exc:
        raise OtlpError("body is not valid gzip") from exc
    return b"".join(parts)


def _from_protobuf(body: bytes) -> list[SpanRecord]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError("body is not a valid ExportTraceServiceRequest") from exc
    spans = []
    for resource_spans in request.resource_spans:
        resource = _proto_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_attributes = _proto_attributes(scope.attributes)
            for span in scope_spans.spans:
                spans.append(
                    _record(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_proto_attributes(span.attributes),
                        status_code=span.status.code,
                        status_message=span.status.message,
                        resource=resource,
                        scope=(scope.name, scope.version, scope_attributes),
                        events=tuple(
                            SpanEvent(e.name, e.time_unix_nano, _proto_attributes(e.attributes))
                            for e in span.events
                        ),
                    )
                )
    return spans


def _proto_attributes(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """String values, by far the most common, are read here rather than in a call each."""
    found = {}
    for attribute in attributes:
        value = attribute.value
        if value.WhichOneof("value") == "string_value":
            found[attribute.key] = value.string_value
        else:
            found[attribute.key] = _proto_value(value)
    return found


def _proto_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return orjson.dumps(_proto_attributes(value.kvlist_value.values)).decode()
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


class _Halves(msgspec.Struct):
    """An int64 as `{low, high}` 32-bit halves, as some JS encoders send it."""

    low: int = 0
    high: int = 0


Int64 = int | str | _Halves | None  # OTLP/JSON: a number, a decimal string, or halves


class _Value(msgspec.Struct, rename="camel"):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: Int64 = None
    double_value: float | str | None = None
    array_value: "_Array | None" = None
    kvlist_value: "_KeyValues | None" = None
    bytes_value: str | None = None


class _KeyValue(msgspec.Struct):
    key: str
    value: _Value | None = None


class _Array(msgspec.Struct):
    values: list[_Value] | None = None


class _KeyValues(msgspec.Struct):
    values: list[_KeyValue] | None = None


class _Attributed(msgspec.Struct):
    attributes: list[_KeyValue] | None = None


class _Scope(_Attributed):
    name: str | None = None
    version: str | None = None


class _Status(msgspec.Struct):
    code: Int64 = None
    message: str | None = None


class _Event(_Attributed, rename="camel"):
    name: str | None = None
    time_unix_nano: Int64 = None


class _Span(_Attributed, rename="camel"):
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    name: str | None = None
    start_time_unix_nano: Int64 = None
    end_time_unix_nano: Int64 = None
    status: _Status | None = None
    events: list[_Event] | None = None


class _ScopeSpans(msgspec.Struct):
    scope: _Scope | None = None
    spans: list[_Span] | None = None


class _ResourceSpans(msgspec.Struct, rename="camel"):
    resource: _Attributed | None = None
    scope_spans: list[_ScopeSpans] | None = None


class _Export(msgspec.Struct, rename="camel"):
    """ExportTraceServiceRequest in OTLP/JSON; unknown fields (dropped counts, schema URLs, ...)
    are ignored, a field of the wrong type is a 400."""

    resource_spans: list[_ResourceSpans] | None = None


_EXPORT = msgspec.json.Decoder(_Export)


def _from_json(body: bytes) -> list[SpanRecord]:
    try:
        request = _EXPORT.decode(body or b"{}")
    except msgspec.ValidationError as exc:
        raise OtlpError(f"invalid ExportTraceServiceRequest: {exc}".replace("`", "")) from exc
    except msgspec.DecodeError as exc:
        raise OtlpError("body is not valid JSON") from exc
    spans = []
    for resource_spans in request.resource_spans or ():
        resource = _json_attributes(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans or ():
            scope = scope_spans.scope or _Scope()
            scope_attributes = _json_attributes(scope)
            for span in scope_spans.spans or ():
                status = span.status or _Status()
                spans.append(
                    _record(
                        trace_id=(span.trace_id or "").lower(),
                        span_id=(span.span_id or "").lower(),
                        parent_span_id=(span.parent_span_id or "").lower(),
                        name=span.name or "",
                        start_ns=_int64(span.start_time_unix_nano),
                        end_ns=_int64(span.end_time_unix_nano),
                        attributes=_json_attributes(span),
                        status_code=_int64(status.code),
                        status_message=status.message or "",
                        resource=resource,
                        scope=(scope.name or "", scope.version or "", scope_attributes),
                        events=tuple(
                            SpanEvent(e.name or "", _int64(e.time_unix_nano), _json_attributes(e))
                            for e in span.events or ()
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
    if parent_span_id and (len(parent_span_id) != 16 or not _is_hex(parent_span_id)):
        raise OtlpError(f"span {span_id}: parentSpanId must be 8 bytes")
    # One edge missing: copy the other; an end before the start is clamped to the start.
    start_ns, end_ns = start_ns or end_ns, end_ns or start_ns
    for edge in (start_ns, end_ns):
        if not limits.EARLIEST_NS <= edge <= limits.LATEST_NS:
            raise OtlpError(f"span {span_id}: times must be {limits.TIME_RANGE}")
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


def _json_attributes(owner: _Attributed | None) -> dict[str, Any]:
    if owner is None or not owner.attributes:
        return {}
    attributes = {a.key: _json_value(a.value) for a in owner.attributes}
    if not limits.within_depth(attributes):  # protobuf's parser has a depth limit of its own
        raise OtlpError(f"attribute values nest deeper than {limits.MAX_DEPTH} levels")
    return attributes


def _json_value(value: _Value | None) -> Any:
    if value is None:
        return None
    if value.string_value is not None:
        return value.string_value
    if value.bool_value is not None:
        return value.bool_value
    if value.int_value is not None:
        return _int64(value.int_value)
    if value.double_value is not None:
        return _double(value.double_value)
    if value.array_value is not None:
        return [_json_value(v) for v in value.array_value.values or ()]
    if value.kvlist_value is not None:
        pairs = value.kvlist_value.values or ()
        return orjson.dumps({p.key: _json_value(p.value) for p in pairs}).decode()
    return value.bytes_value


def _int64(value: Int64) -> int:
    if isinstance(value, _Halves):
        number = (value.high << 32) | (value.low & 0xFFFFFFFF)
    else:
        try:
            number = int(value or 0)
        except ValueError as exc:
            raise OtlpError(f"not an integer: {value!r}") from exc
    if not -(2**63) <= number < 2**64:  # int64 values, and fixed64 times
        raise OtlpError(f"integer out of the 64-bit range: {number}")
    return number


def _double(value: float | str) -> float:
    try:
        return float(value)  # a string may say "NaN" or "Infinity", as protobuf's JSON does
    except ValueError as exc:
        raise OtlpError(f"not a number: {value!r}") from exc


def _is_hex(text: str) -> bool:
    return _HEX.fullmatch(text) is not None
