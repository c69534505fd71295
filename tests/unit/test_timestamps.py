"""Timestamps convert exactly, to the microsecond, both ways."""

from datetime import UTC, datetime

from libs.common.timestamps import from_timestamp, to_timestamp


def test_datetimes_round_trip_through_timestamps_to_the_microsecond() -> None:
    for moment in (
        datetime(2026, 11, 29, 15, 0, 0, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ):
        stamp = to_timestamp(moment)
        assert stamp.ToDatetime(tzinfo=UTC) == moment
        assert from_timestamp(stamp) == moment
