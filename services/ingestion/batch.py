"""Validation and normalization of `POST /api/public/ingestion` batches, event by event: a bad
event becomes an error row and never costs the good ones beside it. Pure: no I/O."""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.scope import AccessLevel
from libs.common.timestamps import to_timestamp
from services.ingestion.usage import normalize_usage

_MAX_ID = 800
_LEVELS = {"DEBUG", "DEFAULT", "WARNING", "ERROR"}
_ENVIRONMENT = re.compile(r"^[a-z0-9\-_]+$")
_GENERATION_LIKE = {"agent", "tool", "chain", "retriever", "evaluator", "embedding", "guardrail"}
_OBSERVATION_TYPES = {
    "span-create": (events_pb2.EVENT_TYPE_OBSERVATION_CREATE, "SPAN"),
    "span-update": (events_pb2.EVENT_TYPE_OBSERVATION_UPDATE, "SPAN"),
    "generation-create": (events_pb2.EVENT_TYPE_OBSERVATION_CREATE, "GENERATION"),
    "generation-update": (events_pb2.EVENT_TYPE_OBSERVATION_UPDATE, "GENERATION"),
    "event-create": (events_pb2.EVENT_TYPE_OBSERVATION_CREATE, "EVENT"),
    **{
        f"{kind}-create": (events_pb2.EVENT_TYPE_OBSERVATION_CREATE, kind.upper())
        for kind in _GENERATION_LIKE
    },
}
_LEGACY_OBSERVATION = {
    "observation-create": events_pb2.EVENT_TYPE_OBSERVATION_CREATE,
    "observation-update": events_pb2.EVENT_TYPE_OBSERVATION_UPDATE,
}


class EventError(Exception):
    def __init__(self, status: int, message: str, error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted envelope: its id and the events to publish (none for sdk-log)."""

    envelope_id: str
    events: list[events_pb2.IngestionEvent]


def parse_envelope(raw: bytes) -> list[Any]:
    """The batch list; ValueError when the body is not `{"batch": [...]}`."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError("body is not valid JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise ValueError("expected an object with a 'batch' array")
    return body["batch"]


def accept(item: Any, project_id: str, access: AccessLevel, received_at: datetime) -> Accepted:
    """Validates one envelope and maps it to events; raises EventError."""
    if not isinstance(item, dict):
        raise EventError(400, "Invalid request data", "event must be an object")
    envelope_id = _id(item.get("id"), "id")
    kind = item.get("type")
    timestamp = _timestamp(item.get("timestamp"), "timestamp")
    if timestamp is None:
        raise EventError(400, "Invalid request data", "timestamp is required")
    body = item.get("body")
    if not isinstance(body, dict):
        raise EventError(400, "Invalid request data", "body must be an object")
    if access is AccessLevel.SCORES and kind not in ("score-create", "sdk-log"):
        raise EventError(401, "Access Scope Denied", "only scores may be sent with a public key")

    def event(
        kind_: int, observation_type: str, entity_id: str, trace_id: str, body_: dict[str, Any]
    ) -> events_pb2.IngestionEvent:
        return make_event(
            envelope_id, project_id, kind_, observation_type, entity_id, trace_id, body_,
            timestamp, received_at,
        )  # fmt: skip

    if kind == "sdk-log":
        return Accepted(envelope_id, [])
    if kind == "trace-create":
        trace = _trace_body(body)
        return Accepted(
            envelope_id,
            [event(events_pb2.EVENT_TYPE_TRACE_CREATE, "", trace["id"], trace["id"], trace)],
        )
    if kind == "score-create":
        score = _score_body(body)
        trace_id = score.get("traceId") or ""
        return Accepted(
            envelope_id,
            [event(events_pb2.EVENT_TYPE_SCORE_CREATE, "", score["id"], trace_id, score)],
        )
    if kind in _OBSERVATION_TYPES or kind in _LEGACY_OBSERVATION:
        if kind in _OBSERVATION_TYPES:
            event_type, observation_type = _OBSERVATION_TYPES[kind]
        else:
            event_type = _LEGACY_OBSERVATION[kind]
            observation_type = body.get("type")
            if observation_type not in ("GENERATION", "SPAN", "EVENT"):
                raise EventError(
                    400, "Invalid request data", "type must be GENERATION, SPAN or EVENT"
                )
        observation = _observation_body(body)
        events = []
        if "traceId" not in observation:
            # Pre-2.0 SDKs sent observations without a trace: they get a wrapper trace.
            observation["traceId"] = observation["id"]
            wrapper = {"id": observation["id"], "timestamp": _iso(timestamp)}
            events.append(
                event(events_pb2.EVENT_TYPE_TRACE_CREATE, "", wrapper["id"], wrapper["id"], wrapper)
            )
        events.append(
            event(
                event_type, observation_type, observation["id"], observation["traceId"], observation
            )
        )
        return Accepted(envelope_id, events)
    raise EventError(400, "Invalid request data", f"unknown event type: {kind!r}")


def score_event(item: Any, project_id: str, received_at: datetime) -> events_pb2.IngestionEvent:
    """One item of `POST /api/public/scores` (an object, or an element of Python 5's array)."""
    if not isinstance(item, dict):
        raise EventError(400, "Invalid request data", "a score must be an object")
    timestamp = _timestamp(item.get("timestamp"), "timestamp") or received_at
    score = _score_body(item)
    return make_event(
        f"score-{score['id']}", project_id, events_pb2.EVENT_TYPE_SCORE_CREATE, "", score["id"],
        score.get("traceId") or "", score, timestamp, received_at,
    )  # fmt: skip


def make_event(
    event_id: str,
    project_id: str,
    kind: int,
    observation_type: str,
    entity_id: str,
    trace_id: str,
    body: dict[str, Any],
    event_time: datetime,
    received_at: datetime,
) -> events_pb2.IngestionEvent:
    return events_pb2.IngestionEvent(
        event_id=event_id,
        project_id=project_id,
        type=kind,
        observation_type=observation_type,
        entity_id=entity_id,
        trace_id=trace_id,
        body_json=orjson.dumps(body),
        event_time=to_timestamp(event_time),
        received_at=to_timestamp(received_at),
    )


def normalize_environment(value: Any) -> str:
    """Langfuse's rule: lowercase, strip `langfuse` prefixes, 40 chars, else silently default."""
    if not isinstance(value, str) or not value:
        return "default"
    lowered = value.lower()
    while True:
        stripped = re.sub(r"^langfuse[-_]?", "", lowered)
        if stripped == lowered:
            break
        lowered = stripped
    lowered = lowered[:40]
    return lowered if _ENVIRONMENT.match(lowered) else "default"


def _trace_body(body: dict[str, Any]) -> dict[str, Any]:
    trace: dict[str, Any] = {"id": _id(body.get("id"), "id", default=str(uuid.uuid4()))}
    _copy_strings(body, trace, ("name", "userId", "sessionId", "release", "version"))
    if isinstance(trace.get("name"), str) and len(trace["name"]) > 1000:
        raise EventError(400, "Invalid request data", "name must be at most 1000 characters")
    if (stamp := _timestamp(body.get("timestamp"), "timestamp")) is not None:
        trace["timestamp"] = _iso(stamp)
    for field in ("input", "output"):
        if field in body:
            trace[field] = body[field]
    if "metadata" in body and body["metadata"] is not None:
        trace["metadata"] = _metadata(body["metadata"])
    if body.get("tags") is not None:
        if not isinstance(body["tags"], list) or not all(isinstance(t, str) for t in body["tags"]):
            raise EventError(400, "Invalid request data", "tags must be a list of strings")
        trace["tags"] = body["tags"]
    if body.get("public") is not None:
        if not isinstance(body["public"], bool):
            raise EventError(400, "Invalid request data", "public must be a boolean")
        trace["public"] = body["public"]
    trace["environment"] = normalize_environment(body.get("environment"))
    return trace


def _observation_body(body: dict[str, Any]) -> dict[str, Any]:
    observation: dict[str, Any] = {"id": _id(body.get("id"), "id")}
    if body.get("traceId") is not None:
        observation["traceId"] = _id(body["traceId"], "traceId")
    if body.get("parentObservationId") is not None:
        observation["parentObservationId"] = _id(body["parentObservationId"], "parentObservationId")
    _copy_strings(body, observation, ("name", "statusMessage", "version", "model", "promptName"))
    for field in ("startTime", "endTime", "completionStartTime"):
        if (stamp := _timestamp(body.get(field), field)) is not None:
            observation[field] = _iso(stamp)
    for field in ("input", "output"):
        if field in body:
            observation[field] = body[field]
    if "metadata" in body and body["metadata"] is not None:
        observation["metadata"] = _metadata(body["metadata"])
    if body.get("level") is not None:
        if body["level"] not in _LEVELS:
            raise EventError(
                400, "Invalid request data", "level must be DEBUG, DEFAULT, WARNING or ERROR"
            )
        observation["level"] = body["level"]
    if body.get("modelParameters") is not None:
        if not isinstance(body["modelParameters"], dict):
            raise EventError(400, "Invalid request data", "modelParameters must be an object")
        observation["modelParameters"] = body["modelParameters"]
    version = body.get("promptVersion")
    if (observation.get("promptName") is None) != (version is None):
        raise EventError(400, "Invalid request data", "promptName and promptVersion go together")
    if version is not None:
        if not isinstance(version, int) or isinstance(version, bool):
            raise EventError(400, "Invalid request data", "promptVersion must be an integer")
        observation["promptVersion"] = version
    usage, cost = normalize_usage(body)
    if usage is not None:
        observation["usageDetails"] = usage
    if cost is not None:
        observation["costDetails"] = cost
    observation["environment"] = normalize_environment(body.get("environment"))
    return observation


def _score_body(body: dict[str, Any]) -> dict[str, Any]:
    score: dict[str, Any] = {"id": _id(body.get("id") or str(uuid.uuid4()), "id")}
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise EventError(400, "Invalid request data", "name is required")
    score["name"] = name
    for field in ("traceId", "observationId", "sessionId", "datasetRunId"):
        if body.get(field) is not None:
            score[field] = _id(body[field], field)
    subjects = [f for f in ("traceId", "sessionId", "datasetRunId") if f in score]
    if len(subjects) != 1:
        raise EventError(
            400, "Invalid request data", "exactly one of traceId, sessionId, datasetRunId"
        )
    if "observationId" in score and "traceId" not in score:
        raise EventError(400, "Invalid request data", "observationId needs traceId")
    value = body.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise EventError(400, "Invalid request data", "value must be a number or a string")
    score["value"] = value
    _copy_strings(body, score, ("comment", "configId", "queueId", "dataType", "source"))
    _check_score_type(score)
    if "metadata" in body and body["metadata"] is not None:
        score["metadata"] = _metadata(body["metadata"])
    score["environment"] = normalize_environment(body.get("environment"))
    return score


_SCORE_TYPES = {"NUMERIC", "CATEGORICAL", "BOOLEAN", "TEXT", "CORRECTION"}


def _check_score_type(score: dict[str, Any]) -> None:
    """The value must suit the data type (Langfuse infers NUMERIC or CATEGORICAL when absent)."""
    kind, value = score.get("dataType"), score["value"]
    if kind is None:
        return
    if kind not in _SCORE_TYPES:
        raise EventError(400, "Invalid request data", f"unknown dataType: {kind}")
    if kind == "NUMERIC" and isinstance(value, str):
        raise EventError(400, "Invalid request data", "a NUMERIC score needs a number")
    if kind == "BOOLEAN" and value not in (0, 1):
        raise EventError(400, "Invalid request data", "a BOOLEAN score is 0 or 1")
    if kind in ("CATEGORICAL", "TEXT", "CORRECTION") and not isinstance(value, str):
        raise EventError(400, "Invalid request data", f"a {kind} score needs a string")
    if kind == "TEXT" and not 1 <= len(value) <= 500:
        raise EventError(400, "Invalid request data", "a TEXT score has 1-500 characters")


def _id(value: Any, field: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value or len(value) > _MAX_ID or "\r" in value:
        raise EventError(
            400, "Invalid request data", f"{field} must be a string of 1-800 characters"
        )
    return value


def _timestamp(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(400, "Invalid request data", f"{field} must be an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EventError(
            400, "Invalid request data", f"{field} must be an ISO 8601 timestamp"
        ) from exc
    if parsed.tzinfo is None:
        raise EventError(400, "Invalid request data", f"{field} needs a UTC offset")
    return parsed.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _metadata(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"metadata": value}


def _copy_strings(source: dict[str, Any], target: dict[str, Any], fields: tuple[str, ...]) -> None:
    for field in fields:
        value = source.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise EventError(400, "Invalid request data", f"{field} must be a string")
        target[field] = value
