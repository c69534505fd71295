"""What the writer's memory takes from each announced deletion (services/query/deletions.py)."""

from aiokafka.structs import ConsumerRecord

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import KafkaCluster, Topic
from services.query.deletions import DeletionListener
from services.query.recent_state import RecentState
from services.query.rows import Merged

KAFKA = KafkaCluster("localhost:9092", namespace="ns.")


def notice(topic: Topic, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(KAFKA.topic(topic), 0, 0, 0, 0, None, value, None, 0, len(value), [])


def remembering(*keys: tuple[str, str, str]) -> RecentState:
    recent = RecentState(capacity=10)
    recent.put({key: Merged({"timestamp": "2026-01-01T00:00:00.000Z"}) for key in keys})
    return recent


async def test_each_topic_takes_out_what_its_deletion_removed() -> None:
    keys = [("trace", "p", "t"), ("trace", "p", "u"), ("trace", "q", "t"), ("trace", "r", "t")]
    recent = remembering(*keys)
    listener = DeletionListener(KAFKA, recent)
    retention = events_pb2.ProjectRetention(project_id="q")
    retention.cutoff.GetCurrentTime()
    records = [
        notice(Topic.INGESTION_DELETIONS, events_pb2.TracesDeleted(
            project_id="p", trace_ids=["t"]).SerializeToString()),
        notice(Topic.PROJECT_RETENTION, retention.SerializeToString()),
        notice(Topic.PROJECT_DELETIONS, events_pb2.ProjectDeleted(
            project_id="r").SerializeToString()),
    ]  # fmt: skip
    await listener.handle([listener.decode(record) for record in records])
    assert [key for key in keys if recent.get(key)] == [("trace", "p", "u")]


async def test_an_unreadable_notice_costs_the_memory_never_a_missed_deletion() -> None:
    recent = remembering(("trace", "p", "t"))
    listener = DeletionListener(KAFKA, recent)
    await listener.handle([listener.decode(notice(Topic.INGESTION_DELETIONS, b"\xff\xff"))])
    assert len(recent) == 0
