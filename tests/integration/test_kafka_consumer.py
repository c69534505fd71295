"""The batch consumer against the real broker: commit after success, poison records isolated and
dead-lettered with their origin, outages waited out (never dead-lettered, reported to health),
and a dead letter never lost when the DLQ cannot take it."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from libs.common.dlq import DeadLetter, read_dead_letters
from libs.common.health import HealthWatch
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
from tests.integration.conftest import PG_SERVER, unique
from tests.support.eventually import eventually

Handler = Callable[[Sequence[str]], Awaitable[None]]
T = TypeVar("T")


def now(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """A probe for `eventually` of a value in memory."""

    async def probe() -> T:
        return read()

    return probe


def decode(record: Record) -> str:
    if record.value == b"undecodable":
        raise InvalidMessage("not a valid event")
    return bytes(record.value or b"").decode()


def settings(kafka: KafkaCluster, topic: str, group: str) -> ConsumerSettings:
    return ConsumerSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group,
        topics=(topic,),
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


async def dead_letters(kafka: KafkaCluster) -> list[DeadLetter]:
    return await read_dead_letters(kafka, Topic.INGESTION_EVENTS)


@asynccontextmanager
async def consuming(
    kafka: KafkaCluster, topic: str, group: str, handle: Handler
) -> AsyncIterator[tuple[BatchConsumer[str], asyncio.Task[None]]]:
    """A BatchConsumer running until the block ends."""
    stop = asyncio.Event()
    producer = make_producer(kafka, "dlq")
    await producer.start()
    consumer = BatchConsumer(settings(kafka, topic, group), decode, handle, producer)
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer, task
    finally:
        stop.set()
        await task
        await producer.stop()


async def consume_until_committed(
    kafka: KafkaCluster, topic: str, group: str, offset: int
) -> list[str]:
    seen: list[str] = []

    async def handle(batch: Sequence[str]) -> None:
        seen.extend(batch)

    async with consuming(kafka, topic, group, handle):
        await eventually(lambda: committed(kafka, topic, group), lambda got: got == offset)
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


async def test_an_undecodable_record_goes_to_the_dlq_and_does_not_block(
    kafka: KafkaCluster, topic: str
) -> None:
    await produce(kafka, topic, [b"a", b"undecodable", b"c"])
    assert await consume_until_committed(kafka, topic, unique("it.group"), 3) == ["a", "c"]

    [record] = await dead_letters(kafka)
    headers = record.headers
    assert record.value == b"undecodable"
    assert headers["error"] == "InvalidMessage: not a valid event"
    assert headers["original-topic"] == topic
    assert headers["original-offset"] == "1"


async def test_a_record_the_handler_rejects_is_isolated_and_the_others_are_handled(
    kafka: KafkaCluster, topic: str
) -> None:
    """The handler writes all or nothing and fails for any batch holding the bad record: the
    consumer splits the batch until the bad record is alone, dead-letters it and commits."""
    await produce(kafka, topic, [b"a", b"b", b"bad", b"c", b"d"])
    group = unique("it.group")
    written: list[str] = []

    async def handle(batch: Sequence[str]) -> None:
        if "bad" in batch:
            raise ValueError("cost out of range")
        written.extend(batch)

    async with consuming(kafka, topic, group, handle) as (_, task):
        await eventually(lambda: committed(kafka, topic, group), lambda got: got == 5)
        assert not task.done()  # still consuming
    assert sorted(written) == ["a", "b", "c", "d"]

    [record] = await dead_letters(kafka)
    headers = record.headers
    assert (record.value, record.key) == (b"bad", b"project:trace")
    assert headers["error"] == "ValueError: cost out of range"
    assert headers["original-topic"] == topic
    assert headers["original-partition"] == "0"
    assert headers["original-offset"] == "2"
    assert headers["consumer-group"] == group
    assert headers["dead-lettered-at"].startswith("20")


async def test_a_half_is_tried_once_and_not_at_all_when_its_first_sibling_was_handled(
    kafka: KafkaCluster, topic: str
) -> None:
    """A failing batch of 8 with the bad record last: each first half is handled in one call,
    so the failure is in the second half, which is split without a call of its own; the bad
    record alone gets its max_record_attempts (3) calls."""
    good = [str(i) for i in range(7)]
    await produce(kafka, topic, [value.encode() for value in [*good, "bad"]])
    group = unique("it.group")
    calls: list[list[str]] = []

    async def handle(batch: Sequence[str]) -> None:
        calls.append(list(batch))
        if "bad" in batch:
            raise ValueError("unwritable")

    async with consuming(kafka, topic, group, handle):
        await eventually(lambda: committed(kafka, topic, group), lambda got: got == 8)
    assert calls == [[*good, "bad"], good[:4], good[4:6], good[6:], ["bad"], ["bad"], ["bad"]]
    [record] = await dead_letters(kafka)
    assert record.value == b"bad"


async def test_an_outage_is_waited_out_never_dead_lettered_and_health_follows_it(
    kafka: KafkaCluster, topic: str
) -> None:
    await produce(kafka, topic, [b"a", b"b"])
    group = unique("it.group")
    sink_down = True
    written: list[str] = []
    reported: list[bool] = []

    async def handle(batch: Sequence[str]) -> None:
        if sink_down:
            raise ConnectionRefusedError("sink unreachable")
        written.extend(batch)

    async def set_serving(serving: bool) -> None:
        reported.append(serving)

    async with consuming(kafka, topic, group, handle) as (consumer, task):
        watch = HealthWatch({}, [consumer], interval=0.05, stuck_after=0.5)
        stop_watch = asyncio.Event()
        watching = asyncio.create_task(watch.run(stop_watch, set_serving))
        await eventually(now(lambda: list(reported)), lambda got: got == [False])
        assert not task.done()
        assert await committed(kafka, topic, group) is None
        assert written == []

        sink_down = False
        await eventually(lambda: committed(kafka, topic, group), lambda got: got == 2)
        await eventually(now(lambda: list(reported)), lambda got: got == [False, True])
        stop_watch.set()
        await watching
    assert written == ["a", "b"]
    assert await dead_letters(kafka) == []


async def test_a_dead_letter_the_dlq_refuses_is_retried_not_lost(
    kafka: KafkaCluster, topic: str
) -> None:
    """The DLQ accepts nothing while its max.message.bytes is tiny: the consumer keeps the
    record (uncommitted, stuck) until the DLQ takes it."""
    await set_max_message_bytes(kafka, dlq_topic(topic), 16)
    await produce(kafka, topic, [b"a", b"bad"])
    group = unique("it.group")

    async def handle(batch: Sequence[str]) -> None:
        if "bad" in batch:
            raise ValueError("unwritable")

    async with consuming(kafka, topic, group, handle) as (consumer, task):
        await eventually(now(consumer.stuck_for), lambda got: got > 0)
        assert await committed(kafka, topic, group) is None
        assert not task.done()

        await set_max_message_bytes(kafka, dlq_topic(topic), 1024 * 1024)
        await eventually(lambda: committed(kafka, topic, group), lambda got: got == 2)
        assert consumer.stuck_for() == 0
    [record] = await dead_letters(kafka)
    assert record.value == b"bad"


async def set_max_message_bytes(kafka: KafkaCluster, topic: str, size: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": size})
        await admin.alter_configs([resource])
    finally:
        await admin.close()


async def test_health_follows_a_store_that_stops_and_starts_answering() -> None:
    """The store's address is switched from a closed port to the real PostgreSQL: NOT_SERVING
    (after two failed checks), then SERVING again."""
    dsn = "postgresql://obs:obs@127.0.0.1:1/postgres"
    reported: list[bool] = []

    async def ping() -> None:
        connection = await asyncpg.connect(dsn)
        await connection.close()

    async def set_serving(serving: bool) -> None:
        reported.append(serving)

    watch = HealthWatch({"postgresql": ping}, interval=0.05)
    assert "postgresql" in await watch.failing()
    stop = asyncio.Event()
    watching = asyncio.create_task(watch.run(stop, set_serving))
    try:
        await eventually(now(lambda: list(reported)), lambda got: got == [False])
        dsn = f"{PG_SERVER}/postgres"
        await eventually(now(lambda: list(reported)), lambda got: got == [False, True])
        assert await watch.failing() == {}
    finally:
        stop.set()
        await watching


async def bounded_batches(
    kafka: KafkaCluster, topic: str, records: int, fetched: list[int] | None = None, **bounds: Any
) -> list[list[str]]:
    """The batches a consumer with these `ConsumerSettings` bounds hands over until `records`
    records are handled; `fetched` gets the offset of every record it took from the broker."""
    batches: list[list[str]] = []

    async def handle(batch: Sequence[str]) -> None:
        batches.append(list(batch))

    stop = asyncio.Event()
    producer = make_producer(kafka, "dlq")
    await producer.start()
    bounded = dataclasses.replace(settings(kafka, topic, unique("it.group")), **bounds)
    consumer = BatchConsumer(bounded, decode, handle, producer)
    if fetched is not None:
        getmany = consumer._consumer.getmany

        async def counted(*args: Any, **kwargs: Any) -> dict[TopicPartition, list[Record]]:
            got = await getmany(*args, **kwargs)
            fetched.extend(record.offset for records in got.values() for record in records)
            return got

        consumer._consumer.getmany = counted  # type: ignore[method-assign]
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(now(lambda: sum(map(len, batches))), lambda n: n >= records)
    finally:
        stop.set()
        await task
        await producer.stop()
    return batches


async def test_a_batch_ends_at_its_byte_bound_and_the_rest_follows_in_order(
    kafka: KafkaCluster, topic: str
) -> None:
    values = [f"{n:03d}".encode() * 33 for n in range(10)]  # 99 bytes each
    await produce(kafka, topic, values)
    batches = await bounded_batches(kafka, topic, 10, max_bytes=250, linger_ms=500)
    assert [len(batch) for batch in batches] == [3, 3, 3, 1]
    assert [value for batch in batches for value in batch] == [v.decode() for v in values]


async def test_records_past_the_byte_bound_are_not_fetched_again(
    kafka: KafkaCluster, topic: str
) -> None:
    # A writer behind on the topic fetches up to 8 MiB per partition and keeps a batch's worth:
    # the rest waits in memory for the next batches instead of being fetched again.
    values = [f"{n:03d}".encode() * 33 for n in range(10)]  # 99 bytes each
    await produce(kafka, topic, values)
    fetched: list[int] = []
    batches = await bounded_batches(kafka, topic, 10, fetched, max_bytes=250, linger_ms=500)
    assert [value for batch in batches for value in batch] == [v.decode() for v in values]
    assert sorted(fetched) == list(range(10))


async def test_the_byte_bound_counts_what_record_bytes_says_a_record_holds(
    kafka: KafkaCluster, topic: str
) -> None:
    # The writer counts the events a compressed value holds, not its compressed length.
    await produce(kafka, topic, [b"%d" % n for n in range(6)])
    batches = await bounded_batches(
        kafka, topic, 6, max_bytes=250, linger_ms=500, record_bytes=lambda value: 100
    )
    assert [len(batch) for batch in batches] == [3, 3]


async def test_the_rebalance_hook_runs_when_partitions_are_assigned(
    kafka: KafkaCluster, topic: str
) -> None:
    rebalances: list[int] = []
    stop = asyncio.Event()
    producer = make_producer(kafka, "dlq")
    await producer.start()

    async def handle(batch: Sequence[str]) -> None:
        pass

    consumer = BatchConsumer(
        settings(kafka, topic, unique("it.group")), decode, handle, producer,
        on_rebalance=lambda: rebalances.append(1),
    )  # fmt: skip
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(now(lambda: len(rebalances)), lambda n: n >= 1)
    finally:
        stop.set()
        await task
        await producer.stop()
