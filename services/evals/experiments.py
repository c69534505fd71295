"""Experiment items from the SDKs' spans. The experiment runners of Python 4/5 and JS put
`langfuse.experiment.*` attributes on an item's spans (the ingestion service keeps them under the
observation's `metadata.experiment`, keys without the prefix). Each item has one root
observation, the span whose id its `item.root_observation_id` names: Python 5's
`experiment-item-task` span, JS's `experiment-item-run` span; that span is the run item (its
trace, start, end, level, environment, input and output), the others are ignored. Python 5 sends
nothing else (it never calls POST /dataset-run-items), so these spans are how its runs exist.
Pure: no I/O."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from libs.common.gen.obs.events.v1 import events_pb2

_OBSERVATION_EVENTS = {
    events_pb2.EVENT_TYPE_OBSERVATION_CREATE,
    events_pb2.EVENT_TYPE_OBSERVATION_UPDATE,
}
# In the JSON body of every span that belongs to an experiment item, and rarely elsewhere.
EXPERIMENT_MARKER = b'"item.root_observation_id"'
# Ids and names beyond this are not the SDKs' (which send 16-hex ids and short names): skipped.
MAX_TEXT = 1000


@dataclass(frozen=True, slots=True)
class ExperimentItemSpan:
    """One item of one experiment run, as its root observation's span tells it."""

    project_id: str
    experiment_id: str
    run_name: str
    description: str | None
    experiment_metadata: dict[str, Any] | None
    dataset_id: str | None
    # The dataset item id, or for local data the SDK's hash of the item's input.
    item_id: str
    item_version: datetime | None
    item_metadata: dict[str, Any] | None
    expected_output: Any
    trace_id: str
    observation_id: str
    start_time: datetime
    end_time: datetime | None
    level: str
    environment: str
    input: Any
    output: Any
    metadata: dict[str, Any]


def experiment_items(batch: events_pb2.IngestionEventBatch) -> list[ExperimentItemSpan]:
    """The experiment items among a batch's events. Only observation bodies that carry the marker
    are parsed (most spans are not experiments). Raises on a body that is not JSON."""
    items = []
    for event in batch.events:
        if event.type not in _OBSERVATION_EVENTS or EXPERIMENT_MARKER not in event.body_json:
            continue
        body = orjson.loads(event.body_json)
        if b"\\u0000" in event.body_json:
            body = without_nul(body)
        item = item_from_observation(event.project_id, body)
        if item is not None:
            items.append(item)
    return items


def item_from_observation(project_id: str, body: dict[str, Any]) -> ExperimentItemSpan | None:
    """The item whose root observation this is, or None (not a root, or not an experiment)."""
    metadata = body.get("metadata")
    experiment = metadata.get("experiment") if isinstance(metadata, dict) else None
    if not isinstance(experiment, dict):
        return None
    observation_id, trace_id = body.get("id"), body.get("traceId")
    experiment_id, run_name = experiment.get("id"), experiment.get("name")
    item_id = experiment.get("item.id")
    texts = (observation_id, trace_id, experiment_id, run_name, item_id)
    if experiment.get("item.root_observation_id") != observation_id or not all(
        isinstance(text, str) and 0 < len(text) <= MAX_TEXT for text in texts
    ):
        return None
    start_time = _time(body.get("startTime"))
    if start_time is None:
        return None
    dataset_id = _text(experiment.get("dataset.id"))
    return ExperimentItemSpan(
        project_id=project_id,
        experiment_id=experiment_id,
        run_name=run_name,
        description=_text(experiment.get("description")),
        experiment_metadata=_object(experiment.get("metadata")),
        dataset_id=dataset_id if dataset_id and len(dataset_id) <= MAX_TEXT else None,
        item_id=item_id,
        item_version=_time(experiment.get("item.version")),
        item_metadata=_object(experiment.get("item.metadata")),
        expected_output=_json_or_text(experiment.get("item.expected_output")),
        trace_id=trace_id,
        observation_id=observation_id,
        start_time=start_time,
        end_time=_time(body.get("endTime")),
        level=body.get("level") or "DEFAULT",
        environment=body.get("environment") or "default",
        input=body.get("input"),
        output=body.get("output"),
        metadata=metadata,
    )


def without_nul(value: Any) -> Any:
    """PostgreSQL text and jsonb cannot hold NUL characters: each becomes U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _json_or_text(value: Any) -> Any:
    """The SDKs serialize objects as JSON text and send strings as they are."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _object(value: Any) -> dict[str, Any] | None:
    parsed = _json_or_text(value)
    return parsed if isinstance(parsed, dict) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
