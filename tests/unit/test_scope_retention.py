"""A project's retention travels with each call's scope, and reads within the call see only what
it keeps (libs/common/scope.py); query's reads turn it into a time condition per table."""

from datetime import UTC, datetime, timedelta

import pytest

from libs.common.errors import Unauthenticated
from libs.common.scope import (
    RETENTION_DAYS_KEY,
    ProjectScope,
    read_cutoff,
    reading_within,
    retention_cutoff,
    scope_from,
)
from services.query import retention
from services.query.filters import OBSERVATION_FILTER_COLUMNS, Where, equality_filters
from services.query.store import current


class Context:
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def test_the_retention_travels_in_the_metadata_and_back() -> None:
    scope = ProjectScope("p", retention_days=7)
    assert (RETENTION_DAYS_KEY, "7") in scope.metadata("r")
    assert scope_from(Context(scope.metadata())) == scope  # type: ignore[arg-type]


def test_a_project_that_keeps_data_forever_sends_no_retention() -> None:
    scope = ProjectScope("p")
    assert RETENTION_DAYS_KEY not in dict(scope.metadata())
    assert scope_from(Context(scope.metadata())).retention_days is None  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "0", "-3", "7.5", "٣", "x"])
def test_a_malformed_retention_is_refused(value: str) -> None:
    metadata = (("x-obs-project-id", "p"), (RETENTION_DAYS_KEY, value))
    with pytest.raises(Unauthenticated):
        scope_from(Context(metadata))  # type: ignore[arg-type]


def test_reads_within_a_call_see_its_cutoff_and_only_there() -> None:
    assert read_cutoff() is None
    with reading_within({RETENTION_DAYS_KEY: "3"}):
        cutoff = read_cutoff()
        assert cutoff is not None
        assert abs(datetime.now(UTC) - timedelta(days=3) - cutoff) < timedelta(seconds=5)
    assert read_cutoff() is None
    with reading_within({}):
        assert read_cutoff() is None


def test_every_read_of_a_project_with_retention_has_its_tables_time_condition() -> None:
    cutoff = datetime(2026, 11, 28, 5, 6, 7, 891000, tzinfo=UTC)
    assert retention.within("observations", cutoff) == (
        " AND start_time >= toDateTime64('2026-11-28 05:06:07.891', 3, 'UTC')"
    )
    assert retention.within("traces", None) == ""
    assert "timestamp >=" not in current("scores", "1")
    with reading_within({RETENTION_DAYS_KEY: "3"}):
        assert "AND timestamp >= toDateTime64(" in current("scores", "1")


def test_the_cutoff_is_days_before_now() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert retention_cutoff(3, now) == datetime(2026, 11, 28, tzinfo=UTC)
    assert retention_cutoff(None, now) is None


def test_a_retention_reaching_before_anything_storable_keeps_everything() -> None:
    """The API takes retentions up to 2^31 - 1 days; no date is that far back."""
    assert retention_cutoff(2**31 - 1) is None
    assert retention_cutoff(20_000, datetime(2026, 12, 1, tzinfo=UTC)) is not None
    with reading_within({RETENTION_DAYS_KEY: str(2**31 - 1)}):
        assert read_cutoff() is None


def test_a_filter_on_an_observations_trace_looks_only_at_traces_the_retention_keeps() -> None:
    where = Where()
    equality_filters(where, OBSERVATION_FILTER_COLUMNS, {"userId": ["u"]})
    assert "timestamp >=" not in where.sql()
    where = Where()
    with reading_within({RETENTION_DAYS_KEY: "3"}):
        equality_filters(where, OBSERVATION_FILTER_COLUMNS, {"userId": ["u"]})
    assert "trace_id IN (SELECT id FROM traces FINAL" in where.sql()
    assert "AND timestamp >= toDateTime64(" in where.sql()
