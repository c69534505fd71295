"""Kafka topics, the producer factory and the batch consumer every consuming service uses.

Delivery is at-least-once: a batch's offsets are committed only after its handler succeeded, and
sinks are idempotent under replay. A record that cannot be decoded is a poison message: it goes to
`<topic>.dlq` with its error and is committed past, so it never blocks its partition.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord

from libs.common.config import env
from libs.common.metrics import CONSUMED, CONSUMER_LAG, DEAD_LETTERED

log = structlog.get_logger()

T = TypeVar("T")
Record = ConsumerRecord[bytes, bytes]


class Topic(StrEnum):
    """Topic names: `<producer-domain>.<entity>.v<major>`; each has a `<name>.dlq` twin."""

    INGESTION_EVENTS = "ingestion.events.v1"
    INGESTION_DELETIONS = "ingestion.deletions.v1"
    PROMPT_CHANGES = "prompts.changes.v1"


@dataclass(frozen=True, slots=True)
class KafkaCluster:
    """The brokers, and a namespace put before every topic and consumer group name: empty in
    production; a test stack or a second local stack on the same brokers uses its own."""

    bootstrap_servers: str
    namespace: str = ""
    # Replicas of the topics `ensure_topics` creates: 1 for a single local broker, 3 in
    # production, where a send then waits for min(2, replicas) in-sync copies (acks=all).
    replication_factor: int = 1

    def topic(self, topic: Topic) -> str:
        return f"{self.namespace}{topic.value}"

    def group(self, name: str) -> str:
        return f"{self.namespace}{name}"


# Not slotted, so a service config can combine it with GrpcServiceSettings.
@dataclass(frozen=True, kw_only=True)
class KafkaClientSettings:
    """What every Kafka-using service reads from the environment (no service prefix)."""

    kafka_bootstrap_servers: str = env("KAFKA_BOOTSTRAP_SERVERS")
    kafka_namespace: str = env("KAFKA_NAMESPACE", "")
    kafka_replication_factor: int = env("KAFKA_REPLICATION_FACTOR", 1)

    @property
    def kafka(self) -> KafkaCluster:
        return KafkaCluster(
            self.kafka_bootstrap_servers, self.kafka_namespace, self.kafka_replication_factor
        )


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class InvalidMessage(Exception):
    """Raised by a decoder for a record that can never be processed (the poison-message path)."""


def make_producer(cluster: KafkaCluster, client_id: str) -> AIOKafkaProducer:
    # Set explicitly, never left to client defaults: a send counts only once every in-sync
    # replica has it, and the idempotent producer keeps retries from duplicating or reordering.
    return AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=16 * 1024 * 1024,
        request_timeout_ms=30_000,
    )


async def ensure_topics(cluster: KafkaCluster, partitions: Mapping[Topic, int]) -> None:
    """Create the topics (and their DLQs, one partition each) that do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    await admin.start()
    try:
        named = {cluster.topic(topic): count for topic, count in partitions.items()}
        wanted = {**{dlq_topic(t): 1 for t in named}, **named}
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name,
                num_partitions=count,
                replication_factor=cluster.replication_factor,
                topic_configs={"min.insync.replicas": str(min(2, cluster.replication_factor))},
            )
            for name, count in wanted.items()
            if name not in existing
        ]
        if new:
            # Another process may create them first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    bootstrap_servers: str
    group_id: str
    topics: tuple[str, ...]
    # "earliest" for work queues; "latest" for broadcast listeners that only need what comes next.
    auto_offset_reset: str = "earliest"
    max_records: int = 5000
    max_wait_ms: int = 50
    # After the first record of a batch, keep collecting this long (up to max_records): fewer,
    # larger batches for sinks that pay per write, at the cost of this much latency.
    linger_ms: int = 0
    # Stop (and let the orchestrator restart us) after this many poison messages in a row:
    # a flood of them means a bug or a wrong topic, not bad luck.
    max_consecutive_invalid: int = 1000
    max_handler_attempts: int = 8
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000


class BatchConsumer(Generic[T]):
    """Polls batches, decodes each record, hands the decoded batch to `handle` and commits.

    Contract: `decode` is pure and raises InvalidMessage for poison records. `handle` must be
    idempotent; a failing `handle` is retried with capped backoff without committing, and after
    `max_handler_attempts` the error propagates (the process exits and is restarted). On a
    rebalance the in-flight batch finishes and commits before partitions are given up.
    """

    def __init__(
        self,
        settings: ConsumerSettings,
        decode: Callable[[ConsumerRecord[bytes, bytes]], T],
        handle: Callable[[Sequence[T]], Awaitable[None]],
        dlq_producer: AIOKafkaProducer,
    ) -> None:
        self._settings = settings
        self._decode = decode
        self._handle = handle
        self._dlq = dlq_producer
        self._batch_lock = asyncio.Lock()
        self._consecutive_invalid = 0
        # enable_auto_commit is off explicitly: aiokafka's default would commit before the
        # handler ran, losing records on a crash.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self._consumer.start()
        self._consumer.subscribe(list(self._settings.topics), listener=_DrainOnRevoke(self))
        try:
            while not stop.is_set():
                batches = await self._poll()
                if batches:
                    async with self._batch_lock:
                        await self._process(batches)
        finally:
            await self._consumer.stop()

    async def _poll(self) -> dict[TopicPartition, list[Record]]:
        settings = self._settings
        batches = await self._consumer.getmany(
            timeout_ms=settings.max_wait_ms, max_records=settings.max_records
        )
        count = sum(len(records) for records in batches.values())
        deadline = time.monotonic() + settings.linger_ms / 1000
        while 0 < count < settings.max_records and (left := deadline - time.monotonic()) > 0:
            more = await self._consumer.getmany(
                timeout_ms=max(int(left * 1000), 1), max_records=settings.max_records - count
            )
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)
        return batches

    async def _process(self, batches: dict[TopicPartition, list[Record]]) -> None:
        decoded: list[T] = []
        for records in batches.values():
            for record in records:
                try:
                    decoded.append(self._decode(record))
                    self._consecutive_invalid = 0
                except InvalidMessage as exc:
                    await self._dead_letter(record, exc)
        if decoded:
            await self._handle_with_retry(decoded)
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced under us: another member re-reads from the last commit and the
            # idempotent sink absorbs the repeat.
            log.warning("commit_failed_after_rebalance", partitions=len(offsets))
            return
        for tp, records in batches.items():
            CONSUMED.labels(self._settings.group_id, tp.topic).inc(len(records))
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self._settings.group_id, tp.topic, tp.partition).set(
                    highwater - offsets[tp]
                )

    async def _handle_with_retry(self, decoded: list[T]) -> None:
        delay = 0.1
        for attempt in range(1, self._settings.max_handler_attempts + 1):
            try:
                await self._handle(decoded)
                return
            except Exception:
                if attempt == self._settings.max_handler_attempts:
                    raise
                log.exception("batch_handler_failed", attempt=attempt, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: InvalidMessage) -> None:
        self._consecutive_invalid += 1
        if self._consecutive_invalid > self._settings.max_consecutive_invalid:
            raise RuntimeError("too many consecutive invalid messages; stopping") from exc
        headers = [
            ("error", str(exc).encode()),
            ("original-topic", record.topic.encode()),
            ("original-partition", str(record.partition).encode()),
            ("original-offset", str(record.offset).encode()),
        ]
        await self._dlq.send_and_wait(
            dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
        )
        DEAD_LETTERED.labels(self._settings.group_id, record.topic).inc()
        log.warning("dead_lettered", topic=record.topic, offset=record.offset, error=str(exc))


class _DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Waits for the in-flight batch (which commits) before partitions are revoked."""

    def __init__(self, consumer: BatchConsumer[T]) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._consumer._batch_lock:
            pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass
