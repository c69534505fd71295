"""What a request costs on the write path: one event-log object holding every event, one index
statement naming its traces, and one Kafka message per partition, each trace's events together
on the partition its `project:trace` key chooses. A failure inside one event of a batch, even a
bug, costs only that event: it is answered 500 inside the 207 and the good events beside it are
still logged and published."""

from typing import Any

import orjson
import pytest

from libs.common.event_batches import decode_event_batch
from libs.common.gen.obs.ingestion.v1 import ingestion_pb2
from libs.common.kafka import partition_of
from libs.common.scope import PROJECT_ID_KEY
from services.ingestion import handlers
from services.ingestion.handlers import IngestionServicer
from services.ingestion.score_configs import ScoreConfigs

PARTITIONS = [0, 1, 2, 3]


class Call:
    """What the servicer reads of a gRPC call: the project scope in its metadata."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((PROJECT_ID_KEY, "proj"),)


class EventLog:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, value: bytes) -> None:
        self.objects[key] = value


class Index:
    def __init__(self) -> None:
        self.statements: list[tuple[str, str, set[str]]] = []

    async def add(self, project_id: str, key: str, trace_ids: Any) -> None:
        self.statements.append((project_id, key, set(trace_ids)))


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, bytes]] = []  # (partition, key, value)

    async def partitions(self, topic: str) -> list[int]:
        return PARTITIONS

    async def send_and_wait(self, topic: str, value: bytes, *, key: bytes, partition: int) -> None:
        self.sent.append((partition, key, value))


def servicer() -> tuple[IngestionServicer, EventLog, Index, Producer]:
    log, index, producer = EventLog(), Index(), Producer()
    # No score names a config here, so the evals client is never asked.
    configs = ScoreConfigs(None, None)  # type: ignore[arg-type]
    return (
        IngestionServicer(log, index, producer, "events", score_configs=configs),  # type: ignore[arg-type]
        log,
        index,
        producer,
    )


def trace(trace_id: str) -> dict[str, Any]:
    return {"id": f"evt-{trace_id}", "type": "trace-create", "timestamp": "2026-11-22T10:00:00Z",
            "body": {"id": trace_id}}  # fmt: skip


def span(trace_id: str, index: int) -> dict[str, Any]:
    span_id = f"{trace_id}-s{index}"
    return {"id": f"evt-{span_id}", "type": "span-create", "timestamp": "2026-11-22T10:00:00Z",
            "body": {"id": span_id, "traceId": trace_id}}  # fmt: skip


async def test_a_request_of_many_traces_is_one_object_and_one_message_per_partition() -> None:
    service, log, index, producer = servicer()
    traces = [f"trace-{n}" for n in range(20)]
    batch = [event for t in traces for event in (trace(t), *(span(t, i) for i in range(4)))]
    body = orjson.dumps({"batch": batch})
    reply = await service.IngestBatch(ingestion_pb2.IngestBatchRequest(body=body), Call())
    assert len(reply.successes) == 100 and not reply.errors

    [(key, value)] = log.objects.items()
    logged = decode_event_batch(value).events
    assert sorted(e.event_id for e in logged) == sorted(item["id"] for item in batch)
    assert {e.event_log_key for e in logged} == {key} and key.startswith("events/proj/")
    assert index.statements == [("proj", key, set(traces))]

    partitions = [partition for partition, _, _ in producer.sent]
    expected = {partition_of(f"proj:{t}".encode(), PARTITIONS) for t in traces}
    assert sorted(partitions) == sorted(expected)  # one message per partition used
    assert {k for _, k, _ in producer.sent} == {b"proj"}
    for partition, _, value in producer.sent:
        events = decode_event_batch(value).events
        assert {partition_of(f"proj:{e.trace_id}".encode(), PARTITIONS) for e in events} == {
            partition
        }
        # A trace's events are all in one message, in the order they were sent.
        for t in {e.trace_id for e in events}:
            ids = [e.event_id for e in events if e.trace_id == t]
            assert ids == [f"evt-{t}", *(f"evt-{t}-s{i}" for i in range(4))]


async def test_a_bug_in_one_event_answers_500_for_it_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    real_accept = handlers.accept

    def accept(item: Any, *args: Any) -> Any:
        if item["body"]["id"] == "buggy":
            raise RuntimeError("a bug")
        return real_accept(item, *args)

    monkeypatch.setattr(handlers, "accept", accept)
    service, log, index, producer = servicer()
    body = orjson.dumps({"batch": [trace("good-1"), trace("buggy"), trace("good-2")]})
    reply = await service.IngestBatch(ingestion_pb2.IngestBatchRequest(body=body), Call())
    assert [s.id for s in reply.successes] == ["evt-good-1", "evt-good-2"]
    assert [(e.id, e.status) for e in reply.errors] == [("evt-buggy", 500)]
    published = [e.entity_id for _, _, v in producer.sent for e in decode_event_batch(v).events]
    assert sorted(published) == ["good-1", "good-2"]
    assert len(log.objects) == 1 and index.statements[0][2] == {"good-1", "good-2"}
