"""The services' producer against the real broker: one that falls out of step with the broker
(as aiokafka does when a batch expires unsent while a restarting broker has no leader) is replaced,
so the service delivers again instead of being refused for as long as it lives."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OutOfOrderSequenceNumber, ProducerClosed
from structlog.testing import capture_logs

from libs.common.kafka import KafkaCluster, Producer, Topic, ensure_topics, make_producer


async def stored(kafka: KafkaCluster, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        values: list[bytes] = []
        while await consumer.position(partition) < end:
            batch = await consumer.getmany(partition, timeout_ms=1000)
            values.extend(record.value or b"" for record in batch.get(partition, []))
        return values
    finally:
        await consumer.stop()


def break_sequence(producer: Producer, topic: str) -> None:
    """What aiokafka does to a batch that expires unsent: its sequence number is spent, so the
    broker expects a number the producer will never send again (reached through private state,
    since a real expiry takes a broker without a leader for request_timeout_ms)."""
    producer._client._txn_manager.increment_sequence_number(TopicPartition(topic, 0), 1)


async def test_a_producer_out_of_step_with_the_broker_is_replaced(kafka: KafkaCluster) -> None:
    await ensure_topics(kafka, {Topic.INGESTION_EVENTS: 1})
    topic = kafka.topic(Topic.INGESTION_EVENTS)
    producer = make_producer(kafka, "test")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"a", key=b"k")
        break_sequence(producer, topic)
        with capture_logs() as logs:
            # Refused together: every caller hears it (and retries), one replacement serves all.
            refused = await asyncio.gather(
                *(producer.send_and_wait(topic, b"refused", key=b"k") for _ in range(5)),
                return_exceptions=True,
            )
        assert all(isinstance(error, OutOfOrderSequenceNumber) for error in refused), refused
        assert [log["event"] for log in logs] == ["kafka_producer_replaced"]
        await producer.send_and_wait(topic, b"b", key=b"k")
        await asyncio.gather(*(producer.send_and_wait(topic, v, key=b"k") for v in (b"c", b"d")))
    finally:
        await producer.stop()
    assert await stored(kafka, topic) == [b"a", b"b", b"c", b"d"]


async def test_a_send_that_finds_the_producer_closed_is_refused_and_the_next_one_delivered(
    kafka: KafkaCluster,
) -> None:
    await ensure_topics(kafka, {Topic.INGESTION_EVENTS: 1})
    topic = kafka.topic(Topic.INGESTION_EVENTS)
    producer = make_producer(kafka, "test")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"a", key=b"k")
        await producer._client.stop()  # closed under it: aiokafka refuses every later send
        with pytest.raises(ProducerClosed):
            await producer.send_and_wait(topic, b"refused", key=b"k")
        await producer.send_and_wait(topic, b"b", key=b"k")
    finally:
        await producer.stop()
    assert await stored(kafka, topic) == [b"a", b"b"]
