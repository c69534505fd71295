"""The judge yields to ingestion: WriterLoad reads the query writer's lag from the real broker
and says busy while the group is more records behind than its threshold."""

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from libs.common.kafka import GroupLag, KafkaCluster, Topic, ensure_topics
from services.evals.writer_load import WriterLoad
from tests.integration.conftest import unique
from tests.integration.test_kafka_consumer import now, produce
from tests.support.eventually import eventually


async def commit(kafka: KafkaCluster, topic: str, group: str, offset: int) -> None:
    # Without auto-commit: stopping would commit the consumer's position over this offset.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    try:
        await consumer.commit({partition: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


async def test_busy_while_the_writer_is_more_records_behind_than_the_threshold(
    kafka: KafkaCluster,
) -> None:
    await ensure_topics(kafka, {Topic.INGESTION_EVENTS: 1})
    topic, group = kafka.topic(Topic.INGESTION_EVENTS), unique("it.writer")
    load = WriterLoad(GroupLag(kafka.bootstrap_servers, group, [topic]), threshold=3)
    stop = asyncio.Event()
    watching = asyncio.create_task(load.run(stop))
    busy = now(load.busy)
    try:
        await produce(kafka, topic, [b"event"] * 3)
        await asyncio.sleep(1.5)  # a check ran: 3 behind is not more than 3
        assert not load.busy()
        await produce(kafka, topic, [b"event"])
        await eventually(busy, lambda answer: answer)
        await commit(kafka, topic, group, 2)  # the writer caught up to 2 behind
        await eventually(busy, lambda answer: not answer)
    finally:
        stop.set()
        await watching


async def test_without_a_broker_the_judge_is_not_held_back_and_the_watch_keeps_running() -> None:
    # Nothing listens on port 1: Kafka away, at start too, never stops the evals service.
    load = WriterLoad(GroupLag("127.0.0.1:1", "writer", ["ingestion.events.v1"]), threshold=0)
    stop = asyncio.Event()
    watching = asyncio.create_task(load.run(stop))
    await asyncio.sleep(2.5)  # a few checks, each failing
    assert not watching.done() and not load.busy()
    stop.set()
    await watching


async def test_the_lag_counts_records_from_the_commits_to_the_end_offsets(
    kafka: KafkaCluster,
) -> None:
    await ensure_topics(kafka, {Topic.INGESTION_EVENTS: 1})
    topic, group = kafka.topic(Topic.INGESTION_EVENTS), unique("it.writer")
    await produce(kafka, topic, [b"event"] * 5)
    lag = GroupLag(kafka.bootstrap_servers, group, [topic])
    await lag.start()
    try:
        ends = await lag.ends()
        assert await lag.behind() == 5  # nothing committed
        await commit(kafka, topic, group, 4)
        await produce(kafka, topic, [b"event"])
        assert await lag.behind(ends) == 1  # against the ends read before
        assert await lag.behind() == 2
    finally:
        await lag.close()
