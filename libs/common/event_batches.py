"""The value of a message on `ingestion.events.v1`, which is also the body of its event-log
object: a zstd-compressed IngestionEventBatch. Compressing once in the producer shrinks what the
broker, the consumer and S3 each handle (SDK payloads are text-heavy: 850 KB of events is about
170 KB compressed), and the same bytes serve both the log and the topic.

zstd level 1 (through pyarrow, already a dependency) compresses about three times faster than
gzip level 1 and a little smaller; at SDK-like load gzip alone was ~29 µs of ingestion CPU per
observation. Each value is a zstd skippable frame holding the sizes of the data frame after it,
then that frame: pyarrow decompresses only with the exact output size known, values still
concatenate (an event-log object is its request's values one after the other), and the whole is
a standard zstd stream (`zstd -d` reads it, skipping the size frames). Values written before,
gzip members or plain serialized batches, still read."""

import gzip
import struct

import pyarrow as pa

from libs.common.gen.obs.events.v1 import events_pb2

_ZSTD = pa.Codec("zstd", compression_level=1)
_GZIP_MAGIC = b"\x1f\x8b"
# Skippable frame: magic 0x184D2A50 (little-endian), the length of what follows (8), then the
# data frame's compressed size and its decompressed size.
_SIZES_MAGIC = b"\x50\x2a\x4d\x18"
_SIZES = struct.Struct("<4sIII")
# Far above any batch (a request body is at most 32 MiB of OTLP): a corrupt size fails here
# instead of allocating gigabytes.
_MAX_BATCH_BYTES = 512 * 1024 * 1024


def encode_event_batch(batch: events_pb2.IngestionEventBatch) -> bytes:
    raw = batch.SerializeToString()
    frame = _ZSTD.compress(raw, asbytes=True)
    return _SIZES.pack(_SIZES_MAGIC, 8, len(frame), len(raw)) + frame


def decode_event_batch(value: bytes) -> events_pb2.IngestionEventBatch:
    """Raises on anything that is not an event batch."""
    return events_pb2.IngestionEventBatch.FromString(event_batch_bytes(value))


def event_batch_bytes(value: bytes) -> bytes:
    """The serialized batch, for consumers that look for a marker in the bodies before paying
    for parsing. Also reads gzip and uncompressed batches (an IngestionEventBatch never starts
    with either magic: its first byte is field 1's tag, 0x0a)."""
    if value.startswith(_SIZES_MAGIC):
        return _decompress_frames(value)
    return gzip.decompress(value) if value.startswith(_GZIP_MAGIC) else value


def event_batch_size(value: bytes) -> int:
    """The serialized size of the batch in `value`, read from its first frame's header without
    decompressing (a consumer bounds its batches by what they hold, not by compressed bytes);
    the value's own length for the older forms."""
    if value.startswith(_SIZES_MAGIC) and len(value) >= _SIZES.size:
        return int(_SIZES.unpack_from(value)[3])
    return len(value)


def _decompress_frames(value: bytes) -> bytes:
    """Every (sizes, data frame) pair of `value`, decompressed and joined."""
    view = memoryview(value)
    parts = []
    offset = 0
    while offset < len(view):
        magic, length, compressed, size = _SIZES.unpack_from(view, offset)
        start = offset + _SIZES.size
        if magic != _SIZES_MAGIC or length != 8 or start + compressed > len(view):
            raise ValueError("not an event batch: a bad or truncated zstd frame")
        if size > _MAX_BATCH_BYTES:
            raise ValueError(f"event batch frame claims {size} bytes")
        frame = view[start : start + compressed]
        parts.append(_ZSTD.decompress(frame, decompressed_size=size, asbytes=True))
        offset = start + compressed
    return b"".join(parts)
