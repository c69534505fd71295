"""Topic `gateway.projects.retention.v1`: once a day, the gateway announces for each project that
keeps its data a limited time the moment before which it keeps none (the cutoff), and every owning
service deletes what is older from its own stores, each in a consumer group of its own. The
cutoff is absolute, so handling is idempotent: a replay, or a crash before the offset was
committed, deletes nothing more the second time; a pass that stopped half-way is finished by it.

Reads hide the same data before any pass ran: the project's retention travels with each call
(libs/common/scope.py, read_cutoff())."""

from datetime import UTC, datetime

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import (
    ConsumerSettings,
    InvalidMessage,
    KafkaCluster,
    Producer,
    Record,
    Topic,
)
from libs.common.metrics import RETENTION_DELETED


def consumer_settings(cluster: KafkaCluster, service: str) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=cluster.bootstrap_servers,
        group_id=cluster.group(f"{service}.retention"),
        topics=(cluster.topic(Topic.PROJECT_RETENTION),),
        # A pass may take minutes (a ClickHouse delete over a month of rows): a few at a time.
        max_records=10,
        max_wait_ms=500,
    )


async def announce(
    producer: Producer, cluster: KafkaCluster, project_id: str, days: int, cutoff: datetime
) -> None:
    """Publishes the project's cutoff and waits until the broker has it."""
    event = events_pb2.ProjectRetention(project_id=project_id, retention_days=days)
    event.cutoff.FromDatetime(cutoff)
    await producer.send_and_wait(
        cluster.topic(Topic.PROJECT_RETENTION),
        value=event.SerializeToString(),
        key=project_id.encode(),
    )


def decode_retention(record: Record) -> events_pb2.ProjectRetention:
    try:
        event = events_pb2.ProjectRetention.FromString(record.value or b"")
    except Exception as exc:
        raise InvalidMessage(f"not a ProjectRetention message: {exc}") from exc
    if not event.project_id or not event.HasField("cutoff"):
        raise InvalidMessage("ProjectRetention without a project id or cutoff")
    return event


def cutoff_of(event: events_pb2.ProjectRetention) -> datetime:
    return event.cutoff.ToDatetime(tzinfo=UTC)


def deleted(service: str, store: str, count: int) -> None:
    """Counts what a pass deleted (`obs_retention_deleted_total{service, store}`)."""
    RETENTION_DELETED.labels(service, store).inc(count)
