"""Reading and replaying a dead-letter topic (`python -m services.<name> dlq list|replay`).

The batch consumer (libs/common/kafka.py) sends a record it could not handle to `<topic>.dlq`
(one partition) with headers naming the error and where it came from. Listing reads that topic
from its start; replaying publishes chosen records again to the topic they came from, with their
key and their own headers, so every consumer group of that topic handles them again (sinks are
idempotent). A replay does not remove anything from the DLQ: Kafka topics are append-only and
retention clears them; a record that fails again is dead-lettered again, at a new offset.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.common.kafka import (
    AT_HEADER,
    DLQ_HEADERS,
    ERROR_HEADER,
    GROUP_HEADER,
    OFFSET_HEADER,
    PARTITION_HEADER,
    TOPIC_HEADER,
    KafkaCluster,
    Topic,
    dlq_topic,
    make_producer,
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    offset: int  # on the DLQ
    headers: dict[str, str]  # the DLQ's headers (DLQ_HEADERS)
    key: bytes | None
    value: bytes | None
    own_headers: list[tuple[str, bytes]]  # the record's own, replayed with it

    @property
    def group(self) -> str:
        """The consumer group that gave up on it."""
        return self.headers.get(GROUP_HEADER, "")

    def line(self) -> str:
        h = self.headers
        origin = f"{h.get(TOPIC_HEADER)}/{h.get(PARTITION_HEADER)}@{h.get(OFFSET_HEADER)}"
        key = (self.key or b"").decode(errors="replace")
        error = h.get(ERROR_HEADER, "").replace("\n", " ")
        return f"{self.offset}\t{origin}\t{h.get(AT_HEADER)}\t{self.group}\tkey={key}\t{error}"


async def read_dead_letters(cluster: KafkaCluster, topic: Topic) -> list[DeadLetter]:
    """Every record on `topic`'s DLQ, oldest first."""
    partition = TopicPartition(dlq_topic(cluster.topic(topic)), 0)
    # No group: nothing is committed, and an assigned partition starts at its earliest record.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        if partition.topic not in await consumer.topics():
            return []  # not created yet (`migrate` creates it): nothing was dead-lettered
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        letters: list[DeadLetter] = []
        while await consumer.position(partition) < end:
            batch = await consumer.getmany(partition, timeout_ms=1000)
            for record in batch.get(partition, []):
                if record.offset >= end:
                    break
                letters.append(_letter(record.offset, record.key, record.value, record.headers))
        return letters
    finally:
        await consumer.stop()


async def replay(cluster: KafkaCluster, topic: Topic, letters: Sequence[DeadLetter]) -> None:
    """Publishes these dead letters to `topic` again (never to a topic named in a header)."""
    producer = make_producer(cluster, "dlq-replay")
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(
                cluster.topic(topic), letter.value, key=letter.key, headers=letter.own_headers
            )
    finally:
        await producer.stop()


def _letter(
    offset: int, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> DeadLetter:
    ours = {name: raw.decode(errors="replace") for name, raw in headers if name in DLQ_HEADERS}
    own = [(name, raw) for name, raw in headers if name not in DLQ_HEADERS]
    return DeadLetter(offset, ours, key, value, own)
