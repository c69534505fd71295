"""`python -m services.<name> dlq list|replay` against the real broker: a record dead-lettered by
a broken handler is listed with its origin and error, and once the handler is fixed, a replay
publishes it again to its topic, with its key and its own headers, and it is handled."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common.kafka import (
    BatchConsumer,
    ConsumerSettings,
    KafkaCluster,
    Record,
    Topic,
    ensure_topics,
    make_producer,
)
from tests.integration.conftest import unique
from tests.support.devenv import ROOT
from tests.support.eventually import eventually


def dlq_command(kafka: KafkaCluster, *args: str) -> list[str]:
    """The query service's dlq command (it consumes ingestion.events.v1), with only the Kafka
    variables set."""
    env = {
        "PATH": os.environ["PATH"],
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_NAMESPACE": kafka.namespace,
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.query", "dlq", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


async def record_at(kafka: KafkaCluster, topic: str, offset: int) -> Record:
    partition = TopicPartition(topic, 0)
    reader = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    await reader.start()
    try:
        reader.assign([partition])
        reader.seek(partition, offset)
        return await asyncio.wait_for(reader.getone(), timeout=15)
    finally:
        await reader.stop()


async def test_a_dead_letter_is_listed_and_replayed_to_a_fixed_consumer(
    kafka: KafkaCluster,
) -> None:
    await ensure_topics(kafka, {Topic.INGESTION_EVENTS: 1})
    topic = kafka.topic(Topic.INGESTION_EVENTS)
    producer = make_producer(kafka, "test")
    await producer.start()
    await producer.send_and_wait(topic, b"good", key=b"p:1")
    await producer.send_and_wait(topic, b"bad", key=b"p:2", headers=[("trace", b"t-2")])

    broken = True
    handled: list[str] = []

    async def handle(batch: Sequence[str]) -> None:
        if broken and "bad" in batch:
            raise ValueError("no column holds this")
        handled.extend(batch)

    group = kafka.group(unique("query.writer"))  # the query service's dlq lists its groups
    settings = ConsumerSettings(kafka.bootstrap_servers, group, (topic,))
    consumer = BatchConsumer(settings, lambda r: bytes(r.value or b"").decode(), handle, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        [line] = await eventually(lambda: asyncio.to_thread(dlq_command, kafka, "list"), any)
        assert line.split("\t")[:2] == ["0", f"{topic}/0@1"]
        assert line.endswith("\tkey=p:2\tValueError: no column holds this")
        assert group in line
        assert handled == ["good"]

        broken = False
        [replayed] = await asyncio.to_thread(
            dlq_command, kafka, "replay", "--offset", "0", "--topic", "ingestion.events.v1"
        )
        assert replayed.startswith("replayed\t0\t")
        await eventually(lambda: asyncio.sleep(0, list(handled)), lambda seen: seen[-1:] == ["bad"])
    finally:
        stop.set()
        await task
        await producer.stop()
    again = await record_at(kafka, topic, 2)
    assert (again.key, again.value, list(again.headers)) == (b"p:2", b"bad", [("trace", b"t-2")])
