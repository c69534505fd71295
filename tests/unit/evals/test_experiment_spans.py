"""Experiment items from spans: the SDKs' span layouts (as the ingestion service maps them to
observation events, experiment attributes under `metadata.experiment`) give one item per item
root observation (Python 5: the experiment-item-task span; JS: the experiment-item-run span), and
nothing for other spans."""

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from libs.common.event_batches import encode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import InvalidMessage
from services.evals.consumer import decode_items
from services.evals.experiments import experiment_items

TRACE = "b9476d60b682ee29af6ce4258a3d30d5"


def span(span_id: str, parent: str | None, name: str, **attrs: Any) -> events_pb2.IngestionEvent:
    """An observation event as the ingestion service makes it from a span."""
    experiment = {
        k.removeprefix("langfuse.experiment."): v
        for k, v in attrs.items()
        if k.startswith("langfuse.experiment.")
    }
    body = {
        "id": span_id, "traceId": TRACE, "name": name, "parentObservationId": parent,
        "startTime": "2025-12-01T02:40:00.000Z", "endTime": "2025-12-01T02:40:00.250Z",
        "environment": attrs.get("langfuse.environment", "default"), "level": "DEFAULT",
        "metadata": {"experiment": experiment, "scope": {"name": "langfuse-sdk"}},
        **{k: v for k, v in attrs.items() if k in ("input", "output")},
    }  # fmt: skip
    if not experiment:
        del body["metadata"]["experiment"]
    return events_pb2.IngestionEvent(
        project_id="p1", type=events_pb2.EVENT_TYPE_OBSERVATION_CREATE, entity_id=span_id,
        trace_id=TRACE, body_json=orjson.dumps(body),
    )  # fmt: skip


def experiment(root: str, **extra: str) -> dict[str, str]:
    """What the runners propagate onto an item's spans (Python 5 on the wire, dataset item)."""
    return {
        "langfuse.environment": "sdk-experiment",
        "langfuse.experiment.id": "f827ed0b611b6b2f",
        "langfuse.experiment.name": "run-A",
        "langfuse.experiment.metadata": '{"k": "v"}',
        "langfuse.experiment.dataset.id": "ds-1",
        "langfuse.experiment.item.id": "item-0",
        "langfuse.experiment.item.metadata": '{"m": 0}',
        "langfuse.experiment.item.root_observation_id": root,
        **extra,
    }


def items_of(spans: list[events_pb2.IngestionEvent]) -> list[Any]:
    trace = events_pb2.IngestionEvent(project_id="p1", type=events_pb2.EVENT_TYPE_TRACE_CREATE)
    return experiment_items(events_pb2.IngestionEventBatch(events=[trace, *spans]))


def test_python5_item_is_its_task_span() -> None:
    on_item = experiment(
        "task1",
        **{
            "langfuse.experiment.description": "desc",
            "langfuse.experiment.item.expected_output": '{"answer": 42}',
        },
    )
    spans = [
        span("task1", "run1", "experiment-item-task", **on_item,
             input={"q": 1}, output="out"),
        span("eval1", "run1", "experiment-item-evaluation", **experiment("task1")),
        span("judge1", "eval1", "acc", **experiment("task1")),
        span("run1", None, "experiment-item-run", **on_item),
    ]  # fmt: skip
    [item] = items_of(spans)
    assert (item.project_id, item.experiment_id, item.run_name) == (
        "p1",
        "f827ed0b611b6b2f",
        "run-A",
    )
    assert (item.dataset_id, item.item_id, item.trace_id) == ("ds-1", "item-0", TRACE)
    assert item.observation_id == "task1"
    assert item.description == "desc"
    assert item.experiment_metadata == {"k": "v"}
    assert item.item_metadata == {"m": 0}
    assert item.expected_output == {"answer": 42}
    assert (item.input, item.output) == ({"q": 1}, "out")
    assert item.environment == "sdk-experiment"
    assert item.start_time == datetime(2025, 12, 1, 2, 40, tzinfo=UTC)
    assert (item.end_time - item.start_time).total_seconds() == 0.25


def test_js_item_is_its_run_span_and_local_data_has_no_dataset() -> None:
    attrs = experiment("run1")
    del attrs["langfuse.experiment.dataset.id"]
    spans = [
        span("child", "run1", "task-llm", **attrs),
        span("run1", None, "experiment-item-run", **attrs),
    ]
    [item] = items_of(spans)
    assert (item.observation_id, item.dataset_id) == ("run1", None)


def test_plain_spans_and_spans_without_a_root_give_nothing() -> None:
    assert items_of([span("a", None, "plain")]) == []
    assert items_of([span("a", None, "other", **experiment("missing-root"))]) == []


@pytest.mark.parametrize(
    "key", ["langfuse.experiment.id", "langfuse.experiment.name", "langfuse.experiment.item.id"]
)
def test_an_item_without_its_ids_is_skipped(key: str) -> None:
    attrs = experiment("run1")
    del attrs[key]
    assert items_of([span("run1", None, "experiment-item-run", **attrs)]) == []


def test_oversized_ids_are_skipped() -> None:
    attrs = experiment("run1", **{"langfuse.experiment.name": "x" * 1001})
    assert items_of([span("run1", None, "experiment-item-run", **attrs)]) == []


def test_nul_characters_become_replacement_characters() -> None:
    attrs = experiment("run1", **{"langfuse.experiment.name": "run\x00A"})
    [item] = items_of(
        [span("run1", None, "experiment-item-run", input={"q\x00": "a\x00b"}, **attrs)]
    )
    assert item.run_name == "run\ufffdA" and item.input == {"q\ufffd": "a\ufffdb"}


def test_kafka_messages_decode_to_their_items_and_garbage_is_poison() -> None:
    attrs = experiment("run1")
    with_item = events_pb2.IngestionEventBatch(events=[span("run1", None, "run", **attrs)])
    without = events_pb2.IngestionEventBatch(events=[span("a", None, "plain")])

    def record(value: bytes) -> Any:
        return SimpleNamespace(value=value)

    assert [i.observation_id for i in decode_items(record(encode_event_batch(with_item)))] == [
        "run1"
    ]
    assert decode_items(record(encode_event_batch(without))) == []
    with pytest.raises(InvalidMessage):
        decode_items(record(b"\x1f\x8bnot gzip"))
