"""The value of a message on `ingestion.events.v1`, which is also the body of its event-log
object: a gzip-compressed IngestionEventBatch. Compressing once in the producer shrinks what the
broker, the consumer and S3 each handle (SDK payloads are text-heavy: 150 KB of spans is a few KB
compressed), and the same bytes serve both the log and the topic."""

import gzip

from libs.common.gen.obs.events.v1 import events_pb2

_GZIP_MAGIC = b"\x1f\x8b"


def encode_event_batch(batch: events_pb2.IngestionEventBatch) -> bytes:
    # Level 1: most of the size win for a fraction of the CPU; mtime 0 keeps bytes reproducible.
    return gzip.compress(batch.SerializeToString(), compresslevel=1, mtime=0)


def decode_event_batch(value: bytes) -> events_pb2.IngestionEventBatch:
    """Raises on anything that is not an event batch."""
    return events_pb2.IngestionEventBatch.FromString(event_batch_bytes(value))


def event_batch_bytes(value: bytes) -> bytes:
    """The serialized batch, for consumers that look for a marker in the bodies before paying
    for parsing. Also reads uncompressed batches (an IngestionEventBatch never starts with gzip's
    magic bytes: its first byte is field 1's tag, 0x0a)."""
    return gzip.decompress(value) if value.startswith(_GZIP_MAGIC) else value
