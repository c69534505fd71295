import asyncio
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common.kafka import (
    BatchConsumer,
    ConsumerSettings,
    InvalidMessage,
    KafkaCluster,
    Record,
    Topic,
    dlq_topic,
    ensure_topics,
    make_producer,
)
from tests.integration.conftest import unique
from tests.support.eventually import eventually


def decode(record: Record) -> str:
    if record.value == b"poison":
        raise InvalidMessage("not a valid event")
    return bytes(record.value or b"").decode()


def settings(kafka: KafkaCluster, topic: str, group: str, attempts: int = 8) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group,
        topics=(topic,),
        max_handler_attempts=attempts,
        session_timeout_ms=6000,
        heartbeat_interval_ms=200,
    )


async def produce(kafka: KafkaCluster, topic: str, values: Sequence[bytes]) -> None:
    producer = make_producer(kafka, "test")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"project:trace")
    finally:
        await producer.stop()


async def committed(kafka: KafkaCluster, topic: str, group: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def consume_until_committed(
    kafka: KafkaCluster, topic: str, group: str, offset: int
) -> list[str]:
    """Runs a BatchConsumer until the group's committed offset reaches `offset`."""
    seen: list[str] = []

    async def handle(batch: Sequence[str]) -> None:
        seen.extend(batch)

    stop = asyncio.Event()
    producer = make_producer(kafka, "dlq")
    await producer.start()
    consumer = BatchConsumer(settings(kafka, topic, group), decode, handle, producer)
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(lambda: committed(kafka, topic, group), lambda got: got == offset)
    finally:
        stop.set()
        await task
        await producer.stop()
    return seen


@pytest.fixture
async def topic(kafka: KafkaCluster) -> str:
    await ensure_topics(kafka, {Topic.INGESTION_EVENTS: 1})
    return kafka.topic(Topic.INGESTION_EVENTS)


async def test_handles_in_batches_and_commits_after_success(
    kafka: KafkaCluster, topic: str
) -> None:
    await produce(kafka, topic, [b"a", b"b", b"c"])
    assert await consume_until_committed(kafka, topic, unique("it.group"), 3) == ["a", "b", "c"]


async def test_a_poison_message_goes_to_the_dlq_and_does_not_block(
    kafka: KafkaCluster, topic: str
) -> None:
    await produce(kafka, topic, [b"a", b"poison", b"c"])
    assert await consume_until_committed(kafka, topic, unique("it.group"), 3) == ["a", "c"]

    reader = AIOKafkaConsumer(
        dlq_topic(topic), bootstrap_servers=kafka.bootstrap_servers, auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        record = await asyncio.wait_for(reader.getone(), timeout=15)
    finally:
        await reader.stop()
    headers = dict(record.headers)
    assert record.value == b"poison"
    assert headers["error"] == b"not a valid event"
    assert headers["original-topic"] == topic.encode()
    assert headers["original-offset"] == b"1"


async def test_a_failing_handler_commits_nothing_and_the_records_come_back(
    kafka: KafkaCluster, topic: str
) -> None:
    await produce(kafka, topic, [b"a", b"b"])
    group = unique("it.group")
    producer = make_producer(kafka, "dlq")
    await producer.start()

    async def broken(batch: Sequence[str]) -> None:
        raise ConnectionError("sink down")

    failing = BatchConsumer(settings(kafka, topic, group, attempts=2), decode, broken, producer)
    try:
        with pytest.raises(ConnectionError):
            await failing.run(asyncio.Event())
    finally:
        await producer.stop()
    assert await committed(kafka, topic, group) is None
    assert await consume_until_committed(kafka, topic, group, 2) == ["a", "b"]
