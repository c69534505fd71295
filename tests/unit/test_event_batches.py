"""Messages on ingestion.events.v1 are zstd-compressed batches that concatenate; gzip and plain
ones written before still read."""

import gzip

import pytest

from libs.common.event_batches import decode_event_batch, encode_event_batch, event_batch_size
from libs.common.gen.obs.events.v1 import events_pb2


def batch(event_id: str = "e1") -> events_pb2.IngestionEventBatch:
    event = events_pb2.IngestionEvent(
        event_id=event_id, project_id="p", body_json=b'{"x": "y"}' * 50
    )
    return events_pb2.IngestionEventBatch(events=[event])


def test_a_batch_round_trips_compressed_and_deterministically() -> None:
    encoded = encode_event_batch(batch())
    assert decode_event_batch(encoded) == batch()
    assert encoded == encode_event_batch(batch())
    assert len(encoded) < len(batch().SerializeToString())


def test_values_one_after_the_other_read_as_one_batch_of_all_their_events() -> None:
    # An event-log object is its request's per-partition values joined.
    joined = encode_event_batch(batch("e1")) + encode_event_batch(batch("e2"))
    assert [event.event_id for event in decode_event_batch(joined).events] == ["e1", "e2"]


def test_a_batch_tells_its_serialized_size_without_being_decompressed() -> None:
    serialized = batch().SerializeToString()
    assert event_batch_size(encode_event_batch(batch())) == len(serialized)
    assert event_batch_size(serialized) == len(serialized)  # an older, plain value: its length


def test_gzip_and_uncompressed_batches_written_before_still_read() -> None:
    serialized = batch().SerializeToString()
    assert decode_event_batch(gzip.compress(serialized, mtime=0)) == batch()
    assert decode_event_batch(serialized) == batch()


@pytest.mark.parametrize(
    "corrupt",
    [
        b"\x1f\x8b" + b"garbage",
        encode_event_batch(batch())[:-5],  # truncated
        encode_event_batch(batch()) + b"\x00",  # trailing bytes
        b"\x50\x2a\x4d\x18\x08\x00\x00\x00\x04\x00\x00\x00\xff\xff\xff\xffabcd",  # size claim
    ],
)
def test_corrupt_compressed_bytes_raise(corrupt: bytes) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any error makes the message a poison one
        decode_event_batch(corrupt)
