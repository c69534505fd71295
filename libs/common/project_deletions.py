"""Topic `gateway.projects.deleted.v1`: the gateway announces a deleted project (its keys are
already gone) and every owning service deletes that project's data from its own stores, each in a
consumer group of its own. Handlers must be idempotent: a replay, or the same project announced
again by a repeated DELETE, deletes nothing more."""

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


def consumer_settings(cluster: KafkaCluster, service: str) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=cluster.bootstrap_servers,
        group_id=cluster.group(f"{service}.project-deletions"),
        topics=(cluster.topic(Topic.PROJECT_DELETIONS),),
        max_records=100,
        max_wait_ms=200,
    )


async def announce(producer: Producer, cluster: KafkaCluster, org_id: str, project_id: str) -> None:
    """Publishes the deletion and waits until the broker has it."""
    event = events_pb2.ProjectDeleted(project_id=project_id, org_id=org_id)
    event.deleted_at.FromDatetime(datetime.now(UTC))
    await producer.send_and_wait(
        cluster.topic(Topic.PROJECT_DELETIONS),
        value=event.SerializeToString(),
        key=project_id.encode(),
    )


def decode_deletion(record: Record) -> events_pb2.ProjectDeleted:
    try:
        event = events_pb2.ProjectDeleted.FromString(record.value or b"")
    except Exception as exc:
        raise InvalidMessage(f"not a ProjectDeleted message: {exc}") from exc
    if not event.project_id:
        raise InvalidMessage("ProjectDeleted without a project id")
    return event
