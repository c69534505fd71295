"""`POST /api/public/ingestion` batches and `POST /api/public/scores` items, event by event: each
is checked against its declaration (services/ingestion/bodies.py) and mapped to the events to
publish; a bad event becomes an error row and never costs the good ones beside it. Pure: no I/O."""

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.limits import describe
from libs.common.scope import AccessLevel
from libs.common.timestamps import to_timestamp
from services.ingestion.bodies import (
    Body,
    Envelope,
    LegacyObservationBody,
    ObservationBody,
    ScoreBody,
    ScoreItem,
    SdkLogBody,
    TraceBody,
)

_CREATE = events_pb2.EVENT_TYPE_OBSERVATION_CREATE
_UPDATE = events_pb2.EVENT_TYPE_OBSERVATION_UPDATE
_GENERATION_LIKE = ("agent", "tool", "chain", "retriever", "evaluator", "embedding", "guardrail")
# Observation event types: (body declaration, event type, observation type).
_OBSERVATIONS: dict[str, tuple[type[ObservationBody], int, str]] = {
    "span-create": (ObservationBody, _CREATE, "SPAN"),
    "span-update": (ObservationBody, _UPDATE, "SPAN"),
    "generation-create": (ObservationBody, _CREATE, "GENERATION"),
    "generation-update": (ObservationBody, _UPDATE, "GENERATION"),
    "event-create": (ObservationBody, _CREATE, "EVENT"),
    **{f"{kind}-create": (ObservationBody, _CREATE, kind.upper()) for kind in _GENERATION_LIKE},
    # Very old SDKs: the body carries its type.
    "observation-create": (LegacyObservationBody, _CREATE, ""),
    "observation-update": (LegacyObservationBody, _UPDATE, ""),
}
_SCORES_ONLY = {"score-create", "sdk-log"}
_Declaration = TypeVar("_Declaration")


class EventError(Exception):
    def __init__(self, status: int, message: str, error: str = "", event_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error
        self.event_id = event_id  # the envelope's id when it had one


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted envelope: its id and the events to publish (none for sdk-log)."""

    envelope_id: str
    events: list[events_pb2.IngestionEvent]


def parse_envelope(raw: bytes) -> list[Any]:
    """The batch list; ValueError when the body is not `{"batch": [...]}`. orjson reads numbers
    as 64-bit integers or finite doubles (a JSON number beyond both fails here), so every number
    accepted below can be written again."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError("body is not valid JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise ValueError("expected an object with a 'batch' array")
    return body["batch"]


def accept(item: Any, project_id: str, access: AccessLevel, received_at: datetime) -> Accepted:
    """Validates one envelope and maps it to events; raises EventError."""
    event_id = item.get("id") if isinstance(item, dict) else None
    event_id = event_id if isinstance(event_id, str) else ""
    envelope = _convert(item, Envelope, "", event_id)
    kind = envelope.type
    if access is AccessLevel.SCORES and kind not in _SCORES_ONLY:
        raise EventError(
            401, "Access Scope Denied", "only scores may be sent with a public key", event_id
        )

    shared = shared_fields(project_id, received_at)
    event_time = to_timestamp(envelope.timestamp)

    def event(
        kind_: int, observation_type: str, entity_id: str, trace_id: str, body: Body | bytes
    ) -> events_pb2.IngestionEvent:
        body_json = body if isinstance(body, bytes) else body.encode()
        return make_event(shared, event_id, kind_, observation_type, entity_id, trace_id,
                          body_json, event_time)  # fmt: skip

    if kind == "trace-create":
        trace = _convert(envelope.body, TraceBody, "body", event_id)
        assert trace.id is not None  # generated when absent
        create = events_pb2.EVENT_TYPE_TRACE_CREATE
        return Accepted(event_id, [event(create, "", trace.id, trace.id, trace)])
    if kind in _OBSERVATIONS:
        declaration, event_type, observation_type = _OBSERVATIONS[kind]
        observation = _convert(envelope.body, declaration, "body", event_id)
        if isinstance(observation, LegacyObservationBody):
            observation_type = observation.type
        events = []
        if observation.trace_id is None:
            # Pre-2.0 SDKs sent observations without a trace: they get a wrapper trace.
            observation.trace_id = observation.id
            wrapper = orjson.dumps({"id": observation.id, "timestamp": _iso(envelope.timestamp)})
            events.append(event(events_pb2.EVENT_TYPE_TRACE_CREATE, "", observation.id,
                                observation.id, wrapper))  # fmt: skip
        events.append(
            event(event_type, observation_type, observation.id, observation.trace_id, observation)
        )
        return Accepted(event_id, events)
    if kind == "score-create":
        score = _convert(envelope.body, ScoreBody, "body", event_id)
        assert score.id is not None  # generated when absent
        create = events_pb2.EVENT_TYPE_SCORE_CREATE
        return Accepted(event_id, [event(create, "", score.id, score.trace_id or "", score)])
    if kind == "sdk-log":
        _convert(envelope.body, SdkLogBody, "body", event_id)
        return Accepted(event_id, [])
    raise EventError(400, "Invalid request data", f"type: unknown event type {kind!r}", event_id)


def score_event(item: Any, project_id: str, received_at: datetime) -> events_pb2.IngestionEvent:
    """One item of `POST /api/public/scores` (an object, or an element of Python 5's array)."""
    score = _convert(item, ScoreItem, "", "")
    assert score.id is not None  # generated when absent
    event_time, score.timestamp = score.timestamp or received_at, None
    return make_event(
        shared_fields(project_id, received_at), f"score-{score.id}",
        events_pb2.EVENT_TYPE_SCORE_CREATE, "", score.id, score.trace_id or "", score.encode(),
        to_timestamp(event_time),
    )  # fmt: skip


@functools.lru_cache(maxsize=64)
def shared_fields(
    project_id: str, received_at: datetime, event_time: datetime | None = None
) -> events_pb2.IngestionEvent:
    """The fields the events of one request share, merged into each by make_event: setting a
    Timestamp field costs about a microsecond per event, a merge a fraction of it. Every item
    of a request finds its request's (never modified) message here."""
    shared = events_pb2.IngestionEvent(project_id=project_id, received_at=to_timestamp(received_at))
    if event_time is not None:
        shared.event_time.CopyFrom(to_timestamp(event_time))
    return shared


def make_event(
    shared: events_pb2.IngestionEvent,
    event_id: str,
    kind: int,
    observation_type: str,
    entity_id: str,
    trace_id: str,
    body_json: bytes,
    event_time: Timestamp | None = None,
) -> events_pb2.IngestionEvent:
    """An event with `shared`'s fields; `event_time` when the shared one has none."""
    event = events_pb2.IngestionEvent(
        event_id=event_id,
        type=kind,
        observation_type=observation_type,
        entity_id=entity_id,
        trace_id=trace_id,
        body_json=body_json,
        event_time=event_time,
    )
    event.MergeFrom(shared)
    return event


def _convert(value: Any, declaration: type[_Declaration], path: str, event_id: str) -> _Declaration:
    try:
        return msgspec.convert(value, declaration)
    except msgspec.ValidationError as exc:
        raise EventError(400, "Invalid request data", describe(exc, path), event_id) from exc


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
