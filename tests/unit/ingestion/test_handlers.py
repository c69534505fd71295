"""A failure inside one event of a batch, even a bug, costs only that event: it is answered 500
inside the 207 and the good events beside it are still logged and published."""

from typing import Any

import orjson
import pytest

from libs.common.gen.obs.ingestion.v1 import ingestion_pb2
from libs.common.scope import PROJECT_ID_KEY
from services.ingestion import handlers
from services.ingestion.handlers import IngestionServicer
from services.ingestion.score_configs import ScoreConfigs


class Call:
    """What the servicer reads of a gRPC call: the project scope in its metadata."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((PROJECT_ID_KEY, "proj"),)


class EventLog:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, value: bytes) -> None:
        self.objects[key] = value


class Producer:
    def __init__(self) -> None:
        self.keys: list[bytes] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        self.keys.append(key)


def trace(trace_id: str) -> dict[str, Any]:
    return {"id": f"evt-{trace_id}", "type": "trace-create", "timestamp": "2026-11-22T10:00:00Z",
            "body": {"id": trace_id}}  # fmt: skip


async def test_a_bug_in_one_event_answers_500_for_it_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    real_accept = handlers.accept

    def accept(item: Any, *args: Any) -> Any:
        if item["body"]["id"] == "buggy":
            raise RuntimeError("a bug")
        return real_accept(item, *args)

    monkeypatch.setattr(handlers, "accept", accept)
    log, producer = EventLog(), Producer()
    # No score names a config here, so the evals client is never asked.
    configs = ScoreConfigs(None, None)  # type: ignore[arg-type]
    servicer = IngestionServicer(log, producer, "events", score_configs=configs)  # type: ignore[arg-type]
    body = orjson.dumps({"batch": [trace("good-1"), trace("buggy"), trace("good-2")]})
    reply = await servicer.IngestBatch(ingestion_pb2.IngestBatchRequest(body=body), Call())
    assert [s.id for s in reply.successes] == ["evt-good-1", "evt-good-2"]
    assert [(e.id, e.status) for e in reply.errors] == [("evt-buggy", 500)]
    assert producer.keys == [b"proj:good-1", b"proj:good-2"] and len(log.objects) == 2
