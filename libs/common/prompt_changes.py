"""Listening to `prompts.changes.v1`, which the prompts service publishes on every create, label
change or delete. Every replica of every cache holder (prompts service, gateway) listens in a
consumer group of its own, so each sees every change."""

import uuid

from libs.common.gen.obs.events.v1 import events_pb2
from libs.common.kafka import ConsumerSettings, InvalidMessage, KafkaCluster, Record, Topic


def listener_settings(cluster: KafkaCluster, service: str) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=cluster.bootstrap_servers,
        group_id=cluster.group(f"{service}.prompt-cache-{uuid.uuid4().hex[:12]}"),
        topics=(cluster.topic(Topic.PROMPT_CHANGES),),
        auto_offset_reset="latest",
        max_wait_ms=100,
    )


def decode_change(record: Record) -> events_pb2.PromptChanged:
    try:
        return events_pb2.PromptChanged.FromString(record.value or b"")
    except Exception as exc:
        raise InvalidMessage(f"not a PromptChanged message: {exc}") from exc
