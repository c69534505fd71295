"""Messages on ingestion.events.v1 are gzip-compressed batches; plain ones still read."""

import pytest

from libs.common.event_batches import decode_event_batch, encode_event_batch
from libs.common.gen.obs.events.v1 import events_pb2


def batch() -> events_pb2.IngestionEventBatch:
    event = events_pb2.IngestionEvent(event_id="e1", project_id="p", body_json=b'{"x": "y"}' * 50)
    return events_pb2.IngestionEventBatch(events=[event])


def test_a_batch_round_trips_compressed_and_deterministically() -> None:
    encoded = encode_event_batch(batch())
    assert decode_event_batch(encoded) == batch()
    assert encoded == encode_event_batch(batch())
    assert len(encoded) < len(batch().SerializeToString())


def test_an_uncompressed_batch_still_reads() -> None:
    assert decode_event_batch(batch().SerializeToString()) == batch()


def test_corrupt_compressed_bytes_raise() -> None:
    with pytest.raises(Exception):  # noqa: B017 - any error makes the message a poison one
        decode_event_batch(b"\x1f\x8b" + b"garbage")
