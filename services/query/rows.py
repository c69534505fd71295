"""Merging an entity's events into its current state, and state to and from ClickHouse rows.
Pure: no I/O.

Langfuse's rules (events may arrive in any order and more than once): events apply in envelope
time order, creates before updates on a tie; a later defined value overwrites; some fields keep
their first value; metadata deep-merges; tags union; input/output take the last truthy value; an
empty usage or cost map never erases one. Every rule is idempotent, so a replayed event changes
nothing."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from services.query.pricing import Priced

IMMUTABLE = {
    "trace": {"id", "timestamp", "environment"},
    "observation": {"id", "traceId", "startTime", "environment", "type"},
    "score": {"id", "timestamp", "traceId", "environment"},
}
_NEVER_ERASED_BY_EMPTY = {"usageDetails", "costDetails", "metadata"}


@dataclass(frozen=True, slots=True)
class Change:
    """One event's body for an entity, with what orders it."""

    event_time: datetime
    is_create: bool
    body: dict[str, Any]


def merge(kind: str, stored: dict[str, Any] | None, changes: Iterable[Change]) -> dict[str, Any]:
    state = dict(stored or {})
    immutable = IMMUTABLE[kind]
    for change in sorted(changes, key=lambda c: (c.event_time, not c.is_create)):
        for key, value in change.body.items():
            if value is None or (key in immutable and state.get(key) is not None):
                continue
            if key in _NEVER_ERASED_BY_EMPTY and value == {}:
                continue
            if key == "metadata":
                state[key] = deep_merge(state.get(key) or {}, value)
            elif key == "tags":
                state[key] = sorted(set(state.get(key) or []) | set(value))
            elif key in ("input", "output"):
                if value:  # "", 0 and false never replace an earlier value
                    state[key] = value
            else:
                state[key] = value
    return state


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_time(value: Any) -> datetime | None:
    """ISO strings (ours) and ClickHouse DateTime64 values (strings from chDB, datetimes from the
    native driver), all as aware UTC datetimes."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(value: Any) -> str | None:
    parsed = parse_time(value)
    if parsed is None:
        return None
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def decode_json(value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def encode_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    return {str(k): orjson.dumps(v).decode() for k, v in (metadata or {}).items()}


def decode_metadata(metadata: dict[str, str] | None) -> dict[str, Any]:
    return {k: decode_json(v) for k, v in (metadata or {}).items()}


TRACE_COLUMNS = {
    "id": "id", "timestamp": "timestamp", "name": "name", "userId": "user_id",
    "sessionId": "session_id", "release": "release", "version": "version",
    "environment": "environment", "public": "public", "tags": "tags",
}  # fmt: skip
OBSERVATION_COLUMNS = {
    "id": "id", "traceId": "trace_id", "parentObservationId": "parent_observation_id",
    "type": "type", "name": "name", "startTime": "start_time", "endTime": "end_time",
    "completionStartTime": "completion_start_time", "environment": "environment",
    "level": "level", "statusMessage": "status_message", "version": "version",
    "model": "provided_model_name", "promptName": "prompt_name", "promptVersion": "prompt_version",
}  # fmt: skip
SCORE_COLUMNS = {
    "id": "id", "timestamp": "timestamp", "traceId": "trace_id",
    "observationId": "observation_id", "sessionId": "session_id",
    "datasetRunId": "dataset_run_id", "environment": "environment", "name": "name",
    "dataType": "data_type", "source": "source", "comment": "comment", "configId": "config_id",
    "queueId": "queue_id",
}  # fmt: skip
_TIME_FIELDS = {"timestamp", "startTime", "endTime", "completionStartTime"}


def usage_with_total(usage: dict[str, Any] | None) -> dict[str, int]:
    """Usage as priced and stored: `total` sums the other keys when the client gave none."""
    counts = {k: int(v) for k, v in (usage or {}).items()}
    if counts and "total" not in counts:
        counts["total"] = sum(counts.values())
    return counts


def to_row(
    kind: str, project_id: str, state: dict[str, Any], now: datetime, priced: Priced | None = None
) -> dict[str, Any]:
    """The ClickHouse row of a merged state; observations also take their computed price."""
    columns = {"trace": TRACE_COLUMNS, "observation": OBSERVATION_COLUMNS, "score": SCORE_COLUMNS}
    row: dict[str, Any] = {"project_id": project_id}
    for field, column in columns[kind].items():
        value = state.get(field)
        row[column] = parse_time(value) if field in _TIME_FIELDS else value
    row["metadata"] = encode_metadata(state.get("metadata"))
    row["created_at"] = parse_time(state.get("createdAt")) or now
    row["updated_at"] = now
    row["event_ts"] = now
    row["is_deleted"] = 0
    if kind == "trace":
        row["name"] = state.get("name") or ""
        row["public"] = bool(state.get("public", False))
        row["tags"] = state.get("tags") or []
        row["environment"] = state.get("environment") or "default"
        row["input"], row["output"] = (
            encode_json(state.get("input")),
            encode_json(state.get("output")),
        )
    elif kind == "observation":
        row["name"] = state.get("name") or ""
        row["level"] = state.get("level") or "DEFAULT"
        row["environment"] = state.get("environment") or "default"
        row["input"], row["output"] = (
            encode_json(state.get("input")),
            encode_json(state.get("output")),
        )
        row["model_parameters"] = encode_json(state.get("modelParameters"))
        row["provided_usage_details"] = {
            k: int(v) for k, v in (state.get("usageDetails") or {}).items()
        }
        row["usage_details"] = (
            priced.usage_details if priced else usage_with_total(state.get("usageDetails"))
        )
        row["provided_cost_details"] = {
            k: float(v) for k, v in (state.get("costDetails") or {}).items()
        }
        row["cost_details"] = priced.cost_details if priced else {}
        row["total_cost"] = priced.total_cost if priced else None
        row["internal_model_id"] = priced.model_id if priced else None
        row["usage_pricing_tier_name"] = priced.tier_name if priced else None
    else:
        value = state.get("value")
        row["value"] = float(value) if isinstance(value, int | float) else 0.0
        row["data_type"] = state.get("dataType") or (
            "CATEGORICAL" if isinstance(value, str) else "NUMERIC"
        )
        if row["data_type"] == "BOOLEAN":
            row["string_value"] = "True" if value == 1 else "False"
        elif isinstance(value, str):
            row["string_value"] = value
        elif row["data_type"] == "CATEGORICAL":  # checked against a config: number and label
            row["string_value"] = state.get("stringValue")
        else:
            row["string_value"] = None
        row["source"] = state.get("source") or "API"
        row["environment"] = state.get("environment") or "default"
    return row


def from_row(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """The merge state of a stored row (the inverse of `to_row`)."""
    columns = {"trace": TRACE_COLUMNS, "observation": OBSERVATION_COLUMNS, "score": SCORE_COLUMNS}
    state: dict[str, Any] = {}
    for field, column in columns[kind].items():
        value = row.get(column)
        state[field] = iso(value) if field in _TIME_FIELDS else value
    state["metadata"] = decode_metadata(row.get("metadata"))
    state["createdAt"] = iso(row.get("created_at"))
    state["updatedAt"] = iso(row.get("updated_at"))
    if kind in ("trace", "observation"):
        state["input"], state["output"] = (
            decode_json(row.get("input")),
            decode_json(row.get("output")),
        )
    if kind == "observation":
        state["modelParameters"] = decode_json(row.get("model_parameters"))
        # What the client gave (the input of later merges), and what was computed from it.
        state["usageDetails"] = _ints(row.get("provided_usage_details"))
        state["costDetails"] = _floats(row.get("provided_cost_details"))
        state["computedUsage"] = _ints(row.get("usage_details"))
        state["computedCost"] = _floats(row.get("cost_details"))
        state["pricingTier"] = row.get("usage_pricing_tier_name")
        total = row.get("total_cost")
        state["totalCost"] = float(total) if total is not None else None
    if kind == "score":
        # As Langfuse's v2 scores: a category's value is its config's number (0 without one).
        text = row.get("data_type") == "TEXT"
        state["value"] = row.get("string_value") if text else row.get("value")
        state["stringValue"] = row.get("string_value")
    return {k: v for k, v in state.items() if v is not None}


def _ints(values: dict[str, Any] | None) -> dict[str, int]:
    return {k: int(v) for k, v in (values or {}).items()}


def _floats(values: dict[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (values or {}).items()}
