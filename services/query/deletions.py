"""Deletions as the query service announces them and as its writer hears of them.

A trace deleted through the API (`DeleteTraces`) is tombstoned in ClickHouse by the replica that
took the call, then announced on `ingestion.deletions.v1`: every other owner of trace data (the
ingestion event log) deletes its part. The writer's memory (services/query/recent_state.py) must
let go of what a deletion removed, or a late event of a deleted trace would merge into the
remembered state and write the deleted fields back; the writer of a trace's partition may run in
another replica than the one that deleted it. So the replica that deletes forgets at once, and
every replica listens, in a consumer group of its own, to the three announcements of deleted
rows: deleted traces, deleted projects (`gateway.projects.deleted.v1`) and retention cutoffs
(`gateway.projects.retention.v1`). A project deletion or a retention pass runs in one replica
and may run after the announcement, so for those the writer keeps the cutoff and never trusts a
remembered state older than it (a deleted project: none).

A late event of a deleted trace then merges with nothing (the tombstoned rows are not read back)
and starts the entity afresh, as Langfuse does. An event merged while the deletion runs may
still land after it; another replica's writer forgets once the announcement reaches it."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from aiokafka.errors import KafkaError
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from libs.common.errors import Unavailable
from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import ConsumerSettings, KafkaCluster, Producer, Record, Topic
from libs.common.retention import cutoff_of
from services.query.recent_state import RecentState

log = structlog.get_logger()

# A deleted project's cutoff: every state of it is older.
END_OF_TIME = datetime.max.replace(tzinfo=UTC)


class DeletionNotices:
    def __init__(self, producer: Producer, topic: str, recent: RecentState) -> None:
        self._producer = producer
        self._topic = topic
        self._recent = recent

    async def traces_deleted(self, project_id: str, trace_ids: list[str]) -> None:
        """After the traces' rows were tombstoned: this replica's writer forgets them, the
        others and the event log learn of them."""
        self._recent.forget_traces(project_id, trace_ids)
        deleted_at = Timestamp()
        deleted_at.GetCurrentTime()
        notice = events_pb2.TracesDeleted(
            project_id=project_id, trace_ids=trace_ids, deleted_at=deleted_at
        )
        try:
            await self._producer.send_and_wait(
                self._topic, notice.SerializeToString(), key=project_id.encode()
            )
        except KafkaError as exc:
            # The rows are already gone; a retry by the client repeats both steps harmlessly.
            raise Unavailable("deletion could not be announced, retry later") from exc

    def score_deleted(self, project_id: str, score_id: str) -> None:
        """After a score's row was tombstoned: a score sent again under its id starts afresh
        (here; other replicas' writers let go of it within RecentState's age limit)."""
        self._recent.forget([("score", project_id, score_id)])


def listener_settings(kafka: KafkaCluster) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=kafka.group(f"query.writer-memory-{uuid.uuid4().hex[:12]}"),
        topics=tuple(
            kafka.topic(topic)
            for topic in (
                Topic.INGESTION_DELETIONS,
                Topic.PROJECT_DELETIONS,
                Topic.PROJECT_RETENTION,
            )
        ),
        auto_offset_reset="latest",
        max_wait_ms=100,
    )


class DeletionListener:
    """Takes what every announced deletion removed out of the writer's memory."""

    def __init__(self, kafka: KafkaCluster, recent: RecentState) -> None:
        self._recent = recent
        self._messages: dict[str, type[Message]] = {
            kafka.topic(Topic.INGESTION_DELETIONS): events_pb2.TracesDeleted,
            kafka.topic(Topic.PROJECT_DELETIONS): events_pb2.ProjectDeleted,
            kafka.topic(Topic.PROJECT_RETENTION): events_pb2.ProjectRetention,
        }

    def decode(self, record: Record) -> Message | None:
        """The announcement, or None for one that does not parse (its owners dead-letter it;
        here it costs the writer its whole memory, never a deletion missed)."""
        try:
            return self._messages[record.topic].FromString(record.value or b"")
        except Exception:
            return None

    async def handle(self, notices: Sequence[Message | None]) -> None:
        for notice in notices:
            if isinstance(notice, events_pb2.TracesDeleted):
                self._recent.forget_traces(notice.project_id, notice.trace_ids)
            elif isinstance(notice, events_pb2.ProjectDeleted):
                self._recent.forget_older(notice.project_id, END_OF_TIME)
            elif isinstance(notice, events_pb2.ProjectRetention) and notice.HasField("cutoff"):
                self._recent.forget_older(notice.project_id, cutoff_of(notice))
            else:
                log.warning("deletion_notice_unreadable", forgotten=len(self._recent))
                self._recent.clear()
