"""OpenTelemetry spans mapped to Langfuse's event model, following Langfuse's OTel ingestion:
one observation per span, and a trace event for roots, for spans carrying trace attributes, and a
shallow one otherwise (so a trace exists even if its root never arrives). Attribute sources:
Langfuse's own (`langfuse.*`, `user.id`, `session.id`), OpenTelemetry GenAI (`gen_ai.*`),
OpenInference (`input.value`, `llm.*`) and Traceloop. Pure: no I/O."""

import functools
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from libs.common import limits
from libs.common.gen.obs.events.v1 import events_pb2
from services.ingestion.batch import make_event, shared_fields
from services.ingestion.bodies import normalize_environment
from services.ingestion.otlp import SpanRecord

_LEVEL_ALIASES = {
    "TRACE": "DEBUG", "VERBOSE": "DEBUG", "DEBUG": "DEBUG", "INFO": "DEFAULT", "LOG": "DEFAULT",
    "NOTICE": "DEFAULT", "OK": "DEFAULT", "SUCCESS": "DEFAULT", "DEFAULT": "DEFAULT",
    "WARN": "WARNING", "WARNING": "WARNING", "FATAL": "ERROR", "CRITICAL": "ERROR",
    "ERROR": "ERROR",
}  # fmt: skip
_OPENINFERENCE_KINDS = {
    "CHAIN": "CHAIN", "RETRIEVER": "RETRIEVER", "LLM": "GENERATION", "EMBEDDING": "EMBEDDING",
    "AGENT": "AGENT", "TOOL": "TOOL", "GUARDRAIL": "GUARDRAIL", "EVALUATOR": "EVALUATOR",
}  # fmt: skip
_GEN_AI_OPERATIONS = {
    "chat": "GENERATION", "completion": "GENERATION", "text_completion": "GENERATION",
    "generate_content": "GENERATION", "generate": "GENERATION", "embeddings": "EMBEDDING",
    "invoke_agent": "AGENT", "create_agent": "AGENT", "execute_tool": "TOOL",
}  # fmt: skip
_MODEL_KEYS = (
    "langfuse.observation.model.name", "gen_ai.response.model", "ai.model.id",
    "gen_ai.request.model", "llm.response.model", "llm.model_name", "model",
)  # fmt: skip
_TYPE_MODEL_KEYS = (
    "langfuse.observation.model.name", "gen_ai.request.model", "gen_ai.response.model",
    "llm.model_name", "model",
)  # fmt: skip
_ENVIRONMENT_KEYS = (
    "langfuse.environment",
    "deployment.environment.name",
    "deployment.environment",
)
_TRACE_KEYS = ("user.id", "session.id", "langfuse.user.id", "langfuse.session.id")
# Every attribute _trace reads of a span that is not a root, but the metadata prefix.
_TRACE_ATTRIBUTES = frozenset((
    *_TRACE_KEYS, "langfuse.trace.tags", "langfuse.tags", "langfuse.trace.public",
    "langfuse.public", "langfuse.trace.name", "langfuse.trace.input", "langfuse.trace.output",
))  # fmt: skip
_DECIMAL = re.compile(r"\d+(\.\d+)?")
_IO_SOURCES = (
    ("langfuse.observation.input", "langfuse.observation.output"),
    ("traceloop.entity.input", "traceloop.entity.output"),
    ("input.value", "output.value"),
    ("gen_ai.input.messages", "gen_ai.output.messages"),
    ("gen_ai.prompt", "gen_ai.completion"),
    ("input", "output"),
)


def is_python5(span: SpanRecord, sdk_name: str, sdk_version: str) -> bool:
    """Python SDK 5 JSON-encodes every metadata value, strings too."""
    if span.scope_name == "langfuse-sdk" and _major(span.scope_version) >= 5:
        return span.resource.get("telemetry.sdk.language") == "python"
    return sdk_name.lower() == "python" and _major(sdk_version) >= 5


def otel_events(
    spans: list[SpanRecord],
    project_id: str,
    received_at: datetime,
    sdk_name: str,
    sdk_version: str,
) -> list[events_pb2.IngestionEvent]:
    """Trace events first (full ones, then partial ones, then one shallow one per trace unless
    the same export has the full trace), then one observation event per span. Replays converge
    because entities are upserted by trace and span id, whatever the event ids."""

    received = received_at.timestamp()
    shared = shared_fields(project_id, received_at, event_time=received_at)

    def event(kind: int, observation_type: str, entity_id: str, trace_id: str,
              body: dict[str, Any]) -> events_pb2.IngestionEvent:  # fmt: skip
        return make_event(shared, f"otel-{entity_id}-{received}", kind, observation_type,
                          entity_id, trace_id, orjson.dumps(body))  # fmt: skip

    # Spans of one export share a few scopes and resources: each is asked once.
    python5_of: dict[tuple[str, str, Any], bool] = {}

    traces: dict[str, list[events_pb2.IngestionEvent]] = {"full": [], "partial": []}
    shallow: dict[str, dict[str, Any]] = {}  # the first span's, per trace: they differ only in time
    full_ids: set[str] = set()
    observations = []
    for span in spans:
        scope = (span.scope_name, span.scope_version, span.resource.get("telemetry.sdk.language"))
        python5 = python5_of.get(scope)
        if python5 is None:
            python5 = python5_of[scope] = is_python5(span, sdk_name, sdk_version)
        observation, kind, trace, trace_kind = map_span(span, python5)
        if trace_kind == "shallow":
            shallow.setdefault(span.trace_id, trace)
        else:
            traces[trace_kind].append(
                event(events_pb2.EVENT_TYPE_TRACE_CREATE, "", span.trace_id, span.trace_id, trace)
            )
        if trace_kind == "full":
            full_ids.add(span.trace_id)
        observations.append(
            event(
                events_pb2.EVENT_TYPE_OBSERVATION_CREATE,
                kind,
                span.span_id,
                span.trace_id,
                observation,
            )  # fmt: skip
        )
    shallow_events = [
        event(events_pb2.EVENT_TYPE_TRACE_CREATE, "", trace_id, trace_id, trace)
        for trace_id, trace in shallow.items()
        if trace_id not in full_ids
    ]
    return [*traces["full"], *traces["partial"], *shallow_events, *observations]


def map_span(span: SpanRecord, python5: bool) -> tuple[dict[str, Any], str, dict[str, Any], str]:
    """(observation body, observation type, trace body, trace kind: full, partial or shallow)."""
    attrs = span.attributes
    prefixed = _by_prefix(attrs)
    environment = normalize_environment(_first(attrs, span.resource, _ENVIRONMENT_KEYS))
    kind = observation_type(span)
    observation: dict[str, Any] = {
        "id": span.span_id,
        "traceId": span.trace_id,
        "name": _text(attrs.get("gen_ai.tool.name") or attrs.get("logfire.msg")) or span.name,
        "startTime": _iso(span.start_ns),
        "environment": environment,
        "level": _level(span),
        "metadata": _observation_metadata(span, prefixed, python5),
    }
    if kind != "EVENT":
        observation["endTime"] = _iso(span.end_ns)
    if span.parent_span_id:
        observation["parentObservationId"] = span.parent_span_id
    status_message = attrs.get("langfuse.observation.status_message") or span.status_message
    _put(observation, "statusMessage", _text(status_message) or None)
    _put(observation, "version", _text(attrs.get("langfuse.version")))
    _put(observation, "model", _text(_first(attrs, {}, _MODEL_KEYS)))
    _put(observation, "modelParameters", _model_parameters(attrs, prefixed))
    _put(observation, "usageDetails", _usage(attrs, prefixed))
    _put(observation, "costDetails", _cost(attrs))
    _put(observation, "completionStartTime",
         _time(attrs.get("langfuse.observation.completion_start_time")))  # fmt: skip
    if kind == "GENERATION" and attrs.get("langfuse.observation.prompt.name"):
        version = _prompt_version(attrs.get("langfuse.observation.prompt.version"))
        if version is not None:
            observation["promptName"] = _text(attrs["langfuse.observation.prompt.name"])
            observation["promptVersion"] = version
    span_input, span_output = _io(span)
    _put(observation, "input", span_input)
    _put(observation, "output", span_output)
    trace, trace_kind = _trace(span, prefixed, python5, environment, span_input, span_output)
    return observation, kind, trace, trace_kind


def observation_type(span: SpanRecord) -> str:
    attrs = span.attributes
    declared = attrs.get("langfuse.observation.type")
    if isinstance(declared, str) and declared:
        return declared.upper()
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind.upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[kind.upper()]
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in _GEN_AI_OPERATIONS:
        return _GEN_AI_OPERATIONS[operation]
    if attrs.get("gen_ai.tool.name") or attrs.get("gen_ai.tool.call.id"):
        return "TOOL"
    if any(attrs.get(key) for key in _TYPE_MODEL_KEYS):
        return "GENERATION"
    return "SPAN"


def is_root(span: SpanRecord) -> bool:
    return not span.parent_span_id or span.attributes.get("langfuse.internal.as_root") is True


def _trace(
    span: SpanRecord,
    prefixed: dict[str, list[tuple[str, Any]]],
    python5: bool,
    environment: str,
    span_input: Any,
    span_output: Any,
) -> tuple[dict[str, Any], str]:
    attrs = span.attributes
    trace: dict[str, Any] = {"id": span.trace_id, "environment": environment}
    root = is_root(span)
    if (
        not root
        and attrs.keys().isdisjoint(_TRACE_ATTRIBUTES)
        and "langfuse.trace.metadata." not in prefixed
    ):  # most spans: none of the lookups below can find anything
        trace["timestamp"] = _iso(span.start_ns)
        return trace, "shallow"
    _put(trace, "userId", _text(attrs.get("langfuse.user.id") or attrs.get("user.id")))
    session_id = _text(attrs.get("langfuse.session.id") or attrs.get("session.id"))
    _put(trace, "sessionId", session_id if limits.is_id(session_id) else None)
    _put(trace, "tags", _tags(attrs.get("langfuse.trace.tags") or attrs.get("langfuse.tags")))
    public = attrs.get("langfuse.trace.public", attrs.get("langfuse.public"))
    if public is not None:
        trace["public"] = public is True or public == "true"
    metadata = _prefixed(prefixed, "langfuse.trace.metadata.", python5)
    _put(trace, "metadata", metadata or None)
    _put(trace, "name", _text(attrs.get("langfuse.trace.name")))
    for field, key in (("input", "langfuse.trace.input"), ("output", "langfuse.trace.output")):
        if isinstance(attrs.get(key), str):
            trace[field] = _json_or_text(attrs[key])
    if root:
        trace["timestamp"] = _iso(span.start_ns)
        trace.setdefault("name", span.name)
        if "input" not in trace:
            _put(trace, "input", span_input)
        if "output" not in trace:
            _put(trace, "output", span_output)
        release = attrs.get("langfuse.release") or span.resource.get("langfuse.release")
        _put(trace, "release", _text(release))
        version = attrs.get("langfuse.version") or span.resource.get("service.version")
        _put(trace, "version", _text(version))
        return trace, "full"
    if len(trace) > 2 or any(key in attrs for key in _TRACE_KEYS):
        return trace, "partial"
    trace["timestamp"] = _iso(span.start_ns)
    return trace, "shallow"


def _observation_metadata(
    span: SpanRecord, prefixed: dict[str, list[tuple[str, Any]]], python5: bool
) -> dict[str, Any]:
    attrs = span.attributes
    metadata: dict[str, Any] = {}
    whole = attrs.get("langfuse.observation.metadata")
    if isinstance(whole, str):
        parsed = _json_or_text(whole)
        if isinstance(parsed, dict):
            metadata.update(parsed)
    metadata.update(_prefixed(prefixed, "langfuse.observation.metadata.", python5))
    metadata.update(_prefixed(prefixed, "langfuse.metadata.", python5))
    experiment = _prefixed(prefixed, "langfuse.experiment.", python5=False)
    if experiment:
        metadata["experiment"] = experiment
    metadata["resourceAttributes"] = span.resource
    metadata["scope"] = {
        "name": span.scope_name, "version": span.scope_version,
        "attributes": span.scope_attributes,
    }  # fmt: skip
    if not span.scope_name.startswith("langfuse"):
        metadata["attributes"] = {
            k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in attrs.items()
        }
    return metadata


# The key prefixes whose attributes are read as a group; no one is the start of another.
_PREFIXES = (
    "langfuse.trace.metadata.", "langfuse.observation.metadata.", "langfuse.metadata.",
    "langfuse.experiment.", "gen_ai.request.", "llm.invocation_parameters.", "gen_ai.usage.",
    "llm.token_count.",
)  # fmt: skip


def _by_prefix(attrs: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """The attributes under each of _PREFIXES, as (the key after it, value): one pass over a
    span's attributes instead of one per prefix."""
    found: dict[str, list[tuple[str, Any]]] = {}
    for key, value in attrs.items():
        if key.startswith(_PREFIXES):
            prefix = next(p for p in _PREFIXES if key.startswith(p))
            found.setdefault(prefix, []).append((key[len(prefix) :], value))
    return found


def _prefixed(
    prefixed: dict[str, list[tuple[str, Any]]], prefix: str, python5: bool
) -> dict[str, Any]:
    return {
        key: _json_or_text(value) if python5 and isinstance(value, str) else value
        for key, value in prefixed.get(prefix, ())
        if key
    }


def _model_parameters(
    attrs: dict[str, Any], prefixed: dict[str, list[tuple[str, Any]]]
) -> dict[str, Any] | None:
    for key in (
        "langfuse.observation.model.parameters",
        "llm.invocation_parameters",
        "model_config",
    ):
        if isinstance(attrs.get(key), str):
            parsed = _json_or_text(attrs[key])
            if isinstance(parsed, dict):
                return parsed
    found = {}
    for prefix in ("gen_ai.request.", "llm.invocation_parameters."):
        for key, value in prefixed.get(prefix, ()):
            if prefix + key != "gen_ai.request.model":
                found[key] = (
                    value if isinstance(value, str | int | float) else orjson.dumps(value).decode()
                )
    return found or None


def _usage(
    attrs: dict[str, Any], prefixed: dict[str, list[tuple[str, Any]]]
) -> dict[str, int] | None:
    """Counts a UInt64 column holds, summing below 2^63; other values are ignored."""
    usage = _usage_attributes(attrs, prefixed)
    if not usage or sum(usage.values()) >= limits.MAX_USAGE:
        return None
    return usage


def _usage_attributes(
    attrs: dict[str, Any], prefixed: dict[str, list[tuple[str, Any]]]
) -> dict[str, int] | None:
    if isinstance(attrs.get("langfuse.observation.usage_details"), str):
        parsed = _json_or_text(attrs["langfuse.observation.usage_details"])
        if isinstance(parsed, dict):
            counts = {k: _count(v) for k, v in parsed.items()}
            return {k: v for k, v in counts.items() if v is not None}
    raw: dict[str, int] = {}
    for prefix in ("gen_ai.usage.", "llm.token_count."):
        for key, value in prefixed.get(prefix, ()):
            if prefix + key != "gen_ai.usage.cost":
                count = _count(value)
                if count is not None:
                    raw[key.removeprefix("details.")] = count
    if not raw:
        return None
    cache_read = raw.pop("cache_read_input_tokens", raw.pop("input_cached_tokens", 0))
    cache_creation = raw.pop("cache_creation_input_tokens", raw.pop("input_cache_creation", 0))
    reasoning = raw.pop("reasoning_tokens", raw.pop("output_reasoning_tokens", 0))
    audio = raw.pop("audio_tokens", raw.pop("output_audio_tokens", 0))
    usage: dict[str, int] = {}
    prompt = next(
        (raw.pop(k) for k in ("prompt_tokens", "input_tokens", "prompt") if k in raw), None
    )
    completion = next(
        (raw.pop(k) for k in ("completion_tokens", "output_tokens", "completion") if k in raw), None
    )
    total = next((raw.pop(k) for k in ("total_tokens", "total") if k in raw), None)
    if prompt is not None:
        usage["input"] = max(prompt - cache_read - cache_creation, 0)
    if completion is not None:
        usage["output"] = max(completion - reasoning - audio, 0)
    if total is not None:
        usage["total"] = total
    details = {
        "input_cached_tokens": cache_read,
        "input_cache_creation": cache_creation,
        "output_reasoning_tokens": reasoning,
        "output_audio_tokens": audio,
    }
    usage.update({key: value for key, value in details.items() if value})
    usage.update(raw)
    return usage or None


def _cost(attrs: dict[str, Any]) -> dict[str, float] | None:
    """Costs a Decimal64(12) column holds, summing below 1,000,000; other values are ignored."""
    cost = None
    if isinstance(attrs.get("langfuse.observation.cost_details"), str):
        parsed = _json_or_text(attrs["langfuse.observation.cost_details"])
        if isinstance(parsed, dict):
            numbers = {k: _numeric(v) for k, v in parsed.items()}
            cost = {k: float(v) for k, v in numbers.items() if limits.is_cost(v)}  # type: ignore[arg-type]
    if cost is None:
        for key in ("gen_ai.usage.cost", "llm.cost.total"):
            value = _numeric(attrs[key]) if key in attrs else None
            if limits.is_cost(value):
                cost = {"total": float(value)}  # type: ignore[arg-type]
                break
    if not cost or sum(cost.values()) >= limits.MAX_COST:
        return None
    return cost


def _io(span: SpanRecord) -> tuple[Any, Any]:
    attrs = span.attributes
    for input_key, output_key in _IO_SOURCES:
        if input_key in attrs or output_key in attrs:
            return _io_value(attrs.get(input_key)), _io_value(attrs.get(output_key))
    prompt = next((e for e in span.events if e.name == "gen_ai.content.prompt"), None)
    completion = next((e for e in span.events if e.name == "gen_ai.content.completion"), None)
    if prompt or completion:
        return (
            _io_value(prompt.attributes.get("gen_ai.prompt")) if prompt else None,
            _io_value(completion.attributes.get("gen_ai.completion")) if completion else None,
        )
    return None, None


def _io_value(value: Any) -> Any:
    return _json_or_text(value) if isinstance(value, str) else value


def _level(span: SpanRecord) -> str:
    declared = span.attributes.get("langfuse.observation.level")
    if isinstance(declared, str) and declared.upper() in _LEVEL_ALIASES:
        return _LEVEL_ALIASES[declared.upper()]
    return "ERROR" if span.status_code == 2 else "DEFAULT"


def _tags(value: Any) -> list[str] | None:
    if isinstance(value, list):
        return [str(v) for v in value]
    if not isinstance(value, str) or not value:
        return None
    parsed = _json_or_text(value)
    if isinstance(parsed, list):
        return [str(v) for v in parsed]
    return [part.strip() for part in value.split(",") if part.strip()]


def _first(attrs: dict[str, Any], fallback: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for source in (attrs, fallback):
        for key in keys:
            if source.get(key) not in (None, ""):
                return source[key]
    return None


def _json_or_text(value: str) -> Any:
    """JSON-encoded attributes parsed; what is not JSON, or nests deeper than the stores take,
    stays the text it was."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    return parsed if limits.within_depth(parsed) else value


def _numeric(value: Any) -> int | float | None:
    """A number, or a string of digits (some exporters stringify counts)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return float(value) if "." in value else int(value)
    return None


def _count(value: Any) -> int | None:
    if type(value) is int and 0 <= value < limits.MAX_USAGE:  # the usual case, first
        return value
    number = _numeric(value)
    return int(number) if limits.is_usage(number) else None  # type: ignore[arg-type]


def _prompt_version(value: Any) -> int | None:
    number = _numeric(value)
    if type(number) is int and 0 <= number <= limits.MAX_PROMPT_VERSION:
        return number
    return None


def _text(value: Any) -> str | None:
    """String fields from attributes of any type: scalars as text, arrays as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return orjson.dumps(value).decode()
    return str(value)


def _time(value: Any) -> str | None:
    """A timestamp attribute (ISO text, JSON-encoded or not) within what the columns hold."""
    if not isinstance(value, str):
        return None
    text = _json_or_text(value)
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not limits.time_in_range(moment):
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def _iso(nanos: int) -> str:
    seconds, millis = divmod(nanos // 1_000_000, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """The spans of one export mostly share their seconds: formatted once each."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _major(version: str) -> int:
    match = re.match(r"(\d+)", version or "")
    return int(match.group(1)) if match else 0
