"""Kafka topics, the producer every service uses and the batch consumer every consuming one uses.

Delivery is at-least-once: a batch's offsets are committed only after its handler succeeded, and
sinks are idempotent under replay. A record that cannot be decoded or handled is a poison message:
it goes to `<topic>.dlq` with its error and is committed past, so it never blocks its partition
(libs/common/dlq.py lists and replays them). An unreachable broker or store is waited out instead.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Generic, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord, RecordMetadata

from libs.common.config import env
from libs.common.metrics import (
    CONSUMED,
    CONSUMER_LAG,
    CONSUMER_TRANSIENT_ERRORS,
    DEAD_LETTERED,
)
from libs.common.transient import is_transient

log = structlog.get_logger()

T = TypeVar("T")
Record = ConsumerRecord[bytes, bytes]


class Topic(StrEnum):
    """Topic names: `<producer-domain>.<entity>.v<major>`; each has a `<name>.dlq` twin."""

    INGESTION_EVENTS = "ingestion.events.v1"
    INGESTION_DELETIONS = "ingestion.deletions.v1"
    PROMPT_CHANGES = "prompts.changes.v1"
    PROJECT_DELETIONS = "gateway.projects.deleted.v1"
    PROJECT_RETENTION = "gateway.projects.retention.v1"


# The query service's writer group, whose lag the judge watches (services/evals/writer_load.py).
WRITER_GROUP = "query.clickhouse-writer"


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


# Failures after which an aiokafka producer never delivers again: its producer id and per-partition
# sequence numbers no longer match the broker's (aiokafka never resets them, where the Java client
# bumps its epoch), or it was closed.
_FATAL = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    ProducerFenced,
    InvalidProducerEpoch,
    ProducerClosed,
)


class Producer:
    """aiokafka's idempotent producer, replaced by a new one when it can no longer deliver.

    aiokafka numbers each partition's batches and never renumbers them: a batch that fails unsent
    leaves a gap (it does, for one, when a restarting broker had no leader for the partition for
    longer than request_timeout_ms: the batch expires with its number taken), and from then on
    the broker refuses every later batch of that partition as OutOfOrderSequenceNumber, for as
    long as the process lives. So the send that meets such a state fails (its caller answers
    UNAVAILABLE and the client retries: nothing acknowledged is lost, a message may be stored
    twice) and the next sends go through a new producer with a new id. Concurrent failures share
    one replacement.
    """

    def __init__(self, cluster: KafkaCluster, client_id: str) -> None:
        self._cluster = cluster
        self._client_id = client_id
        self._client = self._new_client()
        self._lock = asyncio.Lock()  # held while the producer is replaced or stopped
        self._stopped = False
        # Replaced producers being stopped (their pending batches end, delivered or failed).
        self._retiring: set[asyncio.Task[None]] = set()

    def _new_client(self) -> AIOKafkaProducer:
        # Set explicitly, never left to client defaults: a send counts only once every in-sync
        # replica has it, and the idempotent producer keeps retries from duplicating or reordering.
        return AIOKafkaProducer(
            bootstrap_servers=self._cluster.bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=16 * 1024 * 1024,
            request_timeout_ms=30_000,
        )

    async def start(self) -> None:
        await self._client.start()

    async def stop(self) -> None:
        async with self._lock:
            self._stopped = True
        await asyncio.gather(self._client.stop(), *self._retiring)

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> RecordMetadata:
        """Returns once the broker has the message; raises KafkaError when it may not. Without a
        `partition`, the key chooses it (`partition_of`)."""
        client = self._client
        try:
            delivery = await client.send(
                topic, value, key=key, headers=headers, partition=partition
            )
            return await delivery
        except _FATAL as exc:
            await self._replace(client, exc)
            raise

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partitions, in the order `partition_of` counts them."""
        return sorted(await self._client.partitions_for(topic))

    async def _replace(self, broken: AIOKafkaProducer, error: KafkaError) -> None:
        async with self._lock:
            if self._client is not broken or self._stopped:
                return  # another send replaced it already, or the service is stopping
            fresh = self._new_client()
            try:
                await fresh.start()
            except BaseException:
                await fresh.stop()
                raise  # the broker is away: the next fatal send tries again
            self._client = fresh
        log.warning("kafka_producer_replaced", client_id=self._client_id, error=repr(error))
        retiring = asyncio.create_task(broken.stop())
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)


def partition_of(key: bytes, partitions: list[int]) -> int:
    """The partition a send keyed by `key` goes to: aiokafka's default partitioner (murmur2, as
    the Java client), for producers that group several keys' records into one message."""
    return int(DefaultPartitioner()(key, partitions, partitions))


def make_producer(cluster: KafkaCluster, client_id: str) -> Producer:
    return Producer(cluster, client_id)


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
    # A batch stops growing once its records hold this many bytes (0: no bound), as
    # `record_bytes` counts them (the value's length unless told otherwise).
    max_bytes: int = 0
    record_bytes: Callable[[bytes], int] = len
    max_wait_ms: int = 50
    # After the first record of a batch, keep collecting this long (up to max_records): fewer,
    # larger batches for sinks that pay per write, at the cost of this much latency.
    linger_ms: int = 0
    # Calls of `handle` with one record alone that fail for its own sake before it is
    # dead-lettered (a failing batch is split first, so these are spent on the culprit only).
    max_record_attempts: int = 3
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000


# Headers of a dead letter, beside the record's own headers (libs/common/dlq.py reads them).
ERROR_HEADER = "error"
TOPIC_HEADER = "original-topic"
PARTITION_HEADER = "original-partition"
OFFSET_HEADER = "original-offset"
GROUP_HEADER = "consumer-group"
AT_HEADER = "dead-lettered-at"
DLQ_HEADERS = (
    ERROR_HEADER, TOPIC_HEADER, PARTITION_HEADER, OFFSET_HEADER, GROUP_HEADER, AT_HEADER
)  # fmt: skip
_ERROR_CHARS = 2000
_FIRST_DELAY = 0.1
_MAX_DELAY = 5.0


class _Stopping(Exception):
    """Stop was asked while a batch waited out a failure: it is left uncommitted."""


class BatchConsumer(Generic[T]):
    """Polls batches, decodes each record, hands the decoded batch to `handle` and commits.

    Contract: `decode` is pure; a record it cannot decode (InvalidMessage or any other error) is
    dead-lettered at once. `handle` must be idempotent and accept any subset of a batch. When it
    raises:
    - a transient error (the `transient` predicate, libs.common.transient by default: a broker
      or store that cannot be reached) repeats the same call without limit, with capped
      backoff; `stuck_for()` tells health how long;
    - any other error splits the records in halves, each handled on its own, down to single
      records; one that still fails after `max_record_attempts` is poison: it goes to
      `<topic>.dlq` with DLQ_HEADERS, a metric and a log line, and the batch moves on. Each
      half is tried once, and the second not at all when the first was handled: the failure is
      in it, so it is split at once.
    A dead letter is sent until the broker takes it, so a record is committed only once it is
    handled or on the DLQ. The process never exits because of a record. On a rebalance the
    in-flight batch finishes and commits before partitions are given up; on stop, a batch that
    is waiting out a failure is left uncommitted (whoever takes the partition replays it).
    """

    def __init__(
        self,
        settings: ConsumerSettings,
        decode: Callable[[ConsumerRecord[bytes, bytes]], T],
        handle: Callable[[Sequence[T]], Awaitable[None]],
        dlq_producer: Producer,
        transient: Callable[[BaseException], bool] = is_transient,
        on_rebalance: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        # Called once the in-flight batch is done, whenever partitions are revoked or assigned.
        self._on_rebalance = on_rebalance
        self._decode = decode
        self._handle = handle
        self._dlq = dlq_producer
        self._is_transient = transient
        self._batch_lock = asyncio.Lock()
        # Records fetched past a batch's byte bound, first in the next batch. Seeking back to
        # them instead made the broker send them again and this process parse them again: a
        # writer behind kept ~5 % of what it fetched (a fetch holds up to 8 MiB per partition).
        self._carried: dict[TopicPartition, list[Record]] = {}
        self._stop = asyncio.Event()
        self._stuck_since: float | None = None
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

    @property
    def name(self) -> str:
        return self._settings.group_id

    def stuck_for(self) -> float:
        """Seconds the current batch has been waiting out infrastructure errors (0 if none)."""
        return 0.0 if self._stuck_since is None else time.monotonic() - self._stuck_since

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        await self._consumer.start()
        self._consumer.subscribe(list(self._settings.topics), listener=_DrainOnRevoke(self))
        try:
            while not stop.is_set():
                batches = await self._poll()
                if batches:
                    async with self._batch_lock:
                        await self._process(batches)
        except _Stopping:
            log.info("consumer_stopped_mid_batch", group=self.name)
        finally:
            await self._consumer.stop()

    async def _poll(self) -> dict[TopicPartition, list[Record]]:
        """The next batch: the records carried from the last poll, then fetched ones. The
        consumer's position is past the carried records, so what it fetches follows them."""
        settings = self._settings
        # A fetch that raises ends `run`, and the carried records with it: nothing is committed
        # past them, so the partition's next owner reads them again.
        batches, self._carried = self._carried, {}
        if not batches:
            batches = await self._consumer.getmany(
                timeout_ms=settings.max_wait_ms, max_records=settings.max_records
            )
        measure = settings.record_bytes
        count = sum(len(records) for records in batches.values())
        size = sum(measure(r.value or b"") for records in batches.values() for r in records)
        deadline = time.monotonic() + settings.linger_ms / 1000
        while (
            0 < count < settings.max_records
            and (size < settings.max_bytes or not settings.max_bytes)
            and (left := deadline - time.monotonic()) > 0
        ):
            more = await self._consumer.getmany(
                timeout_ms=max(int(left * 1000), 1), max_records=settings.max_records - count
            )
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)
                size += sum(measure(r.value or b"") for r in records)
        return self._within_bytes(batches) if settings.max_bytes else batches

    def _within_bytes(
        self, batches: dict[TopicPartition, list[Record]]
    ) -> dict[TopicPartition, list[Record]]:
        """The records up to the one that reaches max_bytes (one fetch can hold far more); the
        rest are carried to the next poll, in order."""
        kept: dict[TopicPartition, list[Record]] = {}
        size = 0
        for tp, records in batches.items():
            for at, record in enumerate(records):
                if size >= self._settings.max_bytes:
                    self._carried[tp] = records[at:]
                    break
                kept.setdefault(tp, []).append(record)
                size += self._settings.record_bytes(record.value or b"")
        return kept

    async def _process(self, batches: dict[TopicPartition, list[Record]]) -> None:
        decoded: list[tuple[Record, T]] = []
        for records in batches.values():
            for record in records:
                try:
                    decoded.append((record, self._decode(record)))
                except Exception as exc:  # decode is pure: the record itself is at fault
                    await self._dead_letter(record, exc)
        if decoded:
            await self._settle(decoded)
        await self._commit(batches)

    async def _settle(self, items: list[tuple[Record, T]], failing: bool = False) -> bool:
        """Handles these records; the ones that fail for their own sake end on the DLQ. True when
        one call handled them all. `failing`: they are known to fail together, so several are
        split without a call."""
        if len(items) > 1:
            if not failing and await self._attempt(items) is None:
                return True
            middle = len(items) // 2
            first_handled = await self._settle(items[:middle])
            await self._settle(items[middle:], failing=first_handled)
            return False
        error = await self._attempt(items)
        if error is None:
            return True
        for _ in range(1, self._settings.max_record_attempts):
            await self._pause(_FIRST_DELAY)
            if (error := await self._attempt(items)) is None:
                return False
        await self._dead_letter(items[0][0], error)
        return False

    async def _attempt(self, items: list[tuple[Record, T]]) -> Exception | None:
        """One call of `handle`, repeated while it fails transiently; then the error, if any."""
        delay = _FIRST_DELAY
        while True:
            try:
                await self._handle([value for _, value in items])
            except Exception as exc:
                if self._is_transient(exc):
                    await self._wait_out(exc, delay, records=len(items))
                    delay = min(delay * 2, _MAX_DELAY)
                    continue
                self._stuck_since = None
                return exc
            self._stuck_since = None
            return None

    async def _dead_letter(self, record: Record, error: Exception) -> None:
        headers = [
            *record.headers,
            (ERROR_HEADER, f"{type(error).__name__}: {error}"[:_ERROR_CHARS].encode()),
            (TOPIC_HEADER, record.topic.encode()),
            (PARTITION_HEADER, str(record.partition).encode()),
            (OFFSET_HEADER, str(record.offset).encode()),
            (GROUP_HEADER, self.name.encode()),
            (AT_HEADER, datetime.now(UTC).isoformat(timespec="milliseconds").encode()),
        ]
        delay = _FIRST_DELAY
        while True:
            try:
                await self._dlq.send_and_wait(
                    dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
                )
                break
            except Exception as exc:
                # Whatever stops the send, skipping would lose the record: wait it out.
                await self._wait_out(exc, delay, records=1)
                delay = min(delay * 2, _MAX_DELAY)
        self._stuck_since = None
        DEAD_LETTERED.labels(self.name, record.topic).inc()
        log.error(
            "dead_lettered",
            group=self.name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            exc_info=error,
        )

    async def _wait_out(self, exc: Exception, delay: float, records: int) -> None:
        if self._stuck_since is None:
            self._stuck_since = time.monotonic()
        CONSUMER_TRANSIENT_ERRORS.labels(self.name, type(exc).__name__).inc()
        log.warning(
            "consumer_waiting_out_error",
            group=self.name,
            records=records,
            error=f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS],
            stuck_seconds=round(self.stuck_for(), 1),
            retry_in=delay,
        )
        await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        if self._stop.is_set():
            raise _Stopping

    async def _commit(self, batches: dict[TopicPartition, list[Record]]) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # A rebalance took the partitions (another member re-reads from the last commit) or
            # the broker is away (the next batch's commit covers these offsets). Either way the
            # records may be handled again, which the idempotent sinks absorb.
            log.warning("commit_failed", group=self.name, error=repr(exc))
            return
        for tp, offset in offsets.items():
            CONSUMED.labels(self.name, tp.topic).inc(len(batches[tp]))
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.name, tp.topic, tp.partition).set(highwater - offset)


class _DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Waits for the in-flight batch (which commits) before partitions are revoked."""

    def __init__(self, consumer: BatchConsumer[T]) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._consumer._batch_lock:
            # Positions restart from the committed offsets, which carried records are past:
            # whoever owns their partitions next fetches them again.
            self._consumer._carried = {}
            self._rebalanced()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._rebalanced()

    def _rebalanced(self) -> None:
        if self._consumer._on_rebalance is not None:
            self._consumer._on_rebalance()


class GroupLag:
    """How many records a consumer group has yet to commit on its topics: what the query service
    waits out before deleting a project, and what the judge watches to yield to ingestion."""

    def __init__(self, bootstrap_servers: str, group_id: str, topics: Sequence[str]) -> None:
        self._servers = bootstrap_servers
        self._group_id = group_id
        self._topics = list(topics)
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        """Connects; a failed start leaves nothing open and may be tried again."""
        self._reader = AIOKafkaConsumer(bootstrap_servers=self._servers)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self._servers)
        try:
            await self._reader.start()
            await self._admin.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self._admin.close()
        await self._reader.stop()

    async def ends(self) -> dict[TopicPartition, int]:
        """The end offset of each partition of the topics, now."""
        if not self._partitions:
            described = await self._admin.describe_topics(self._topics)
            self._partitions = [
                TopicPartition(topic["topic"], partition["partition"])
                for topic in described
                for partition in topic["partitions"]
            ]
        ends: dict[TopicPartition, int] = await self._reader.end_offsets(self._partitions)
        return ends

    async def behind(self, ends: Mapping[TopicPartition, int] | None = None) -> int:
        """Records between the group's commits and `ends` (default: the ends of now)."""
        ends = ends if ends is not None else await self.ends()
        committed = await self._admin.list_consumer_group_offsets(self._group_id)
        return sum(
            end - (committed[tp].offset if tp in committed else 0)
            for tp, end in ends.items()
            if end > 0
        )
