"""The store's fast read paths return exactly what the plain queries they replaced returned: every
list page and total against `SELECT * FROM <table> FINAL WHERE ... ORDER BY ... LIMIT ...`, a
trace's observations and rollups against a scan by trace id. The data is the bench's SDK-shaped
dataset over 60 days (so newest-first pages fall in the day, week, month or whole-table window
depending on their offset), plus what makes reads hard: newer versions of rows, deleted traces
and scores, a trace dated next year and one two years back, and another project."""

from collections.abc import AsyncIterator
from typing import Any

import pytest

from scripts.bench_dataset import fill
from services.query.clickhouse import EmbeddedClickHouse
from services.query.filters import (
    OBSERVATION_FILTER_COLUMNS,
    TRACE_FILTER_COLUMNS,
    Where,
    equality_filters,
)
from services.query.store import DAYS_OF_TRACES, KEY_COLUMNS, TraceStore, current

P = "reads-project"


@pytest.fixture(scope="module")
async def store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TraceStore]:
    path = tmp_path_factory.mktemp("reads") / "chdb"
    await fill(f"chdb://{path}", P, 6_000, days=60)
    await fill(f"chdb://{path}", "other-project", 600, days=3)
    clickhouse = EmbeddedClickHouse(str(path))
    store = TraceStore(clickhouse)
    newest = [r["id"] for r in await clickhouse.select(
        "SELECT id FROM traces WHERE project_id = {p:String} ORDER BY timestamp DESC LIMIT 40",
        {"p": P},
    )]  # fmt: skip
    params = {"project_id": P, "ids": newest[::3]}
    for table, column, change in (
        ("traces", "id", "'renamed' AS name"),
        ("observations", "trace_id", "'ERROR' AS level"),
        ("traces", "id", "timestamp + INTERVAL 400 DAY AS timestamp, concat(id, '-next') AS id"),
        ("traces", "id", "timestamp - INTERVAL 730 DAY AS timestamp, concat(id, '-old') AS id"),
    ):
        await clickhouse.execute(
            f"INSERT INTO {table} SELECT * REPLACE ({change}, now64(3) AS event_ts)"
            f" FROM {table} FINAL WHERE project_id = {{project_id:String}}"
            f" AND {column} IN {{ids:Array(String)}}",
            params,
        )
    await store.delete_traces(P, newest[1::4])
    [score] = await clickhouse.select(
        "SELECT id FROM scores WHERE project_id = {p:String} ORDER BY timestamp DESC LIMIT 1",
        {"p": P},
    )
    await store.delete_score(P, score["id"])
    yield store
    clickhouse.close()


async def plain_page(
    store: TraceStore, table: str, where: Where, order: str, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    params = {**where.params, "project_id": P}
    source = current(table, where.sql())
    rows = await store._ch.select(
        f"SELECT * FROM {source} ORDER BY {order} LIMIT {limit} OFFSET {offset}", params
    )
    [count] = await store._ch.select(f"SELECT count() AS total FROM {source}", params)
    return rows, int(count["total"])


def filtered(
    columns: dict[str, tuple[str, str]], keys: list[str] | None = None, **given: list[str]
) -> Where:
    where = Where()
    equality_filters(where, columns, given, keys or ())
    return where


TRACE_ORDER = "timestamp DESC, id DESC"
OBSERVATION_ORDER = "start_time DESC, id DESC"
CASES = [
    ("trace", "traces", lambda: Where(), TRACE_ORDER, 50, 0),
    ("trace", "traces", lambda: Where(), TRACE_ORDER, 10, 0),
    ("trace", "traces", lambda: Where(), TRACE_ORDER, 50, 150),
    ("trace", "traces", lambda: Where(), TRACE_ORDER, 50, 500),
    ("trace", "traces", lambda: Where(), TRACE_ORDER, 100, 10_000),
    ("trace", "traces", lambda: filtered(TRACE_FILTER_COLUMNS, name=["renamed"]), TRACE_ORDER,
     50, 0),
    ("trace", "traces", lambda: filtered(TRACE_FILTER_COLUMNS, tags=["tag-3"]), TRACE_ORDER,
     20, 5),
    ("trace", "traces", lambda: Where(), "name ASC, id ASC", 50, 30),
    ("trace", "traces", lambda: Where(), "timestamp ASC, id ASC", 50, 0),
    ("observation", "observations", lambda: Where(), OBSERVATION_ORDER, 50, 0),
    ("observation", "observations", lambda: Where(), OBSERVATION_ORDER, 100, 2_000),
    ("observation", "observations", lambda: filtered(OBSERVATION_FILTER_COLUMNS,
     type=["GENERATION"], level=["ERROR"]), OBSERVATION_ORDER, 50, 0),
    ("score", "scores", lambda: Where(), "timestamp DESC, id DESC", 50, 0),
    ("score", "scores", lambda: Where(), "timestamp DESC, id DESC", 50, 250),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "table", "where", "order", "limit", "offset"), CASES)
async def test_a_page_and_its_total_are_those_of_the_plain_query(
    store: TraceStore, kind: str, table: str, where: Any, order: str, limit: int, offset: int
) -> None:
    expected_rows, expected_total = await plain_page(store, table, where(), order, limit, offset)
    rows, total = await store.page_of(kind, P, where(), order, limit, offset)
    assert (rows, total) == (expected_rows, expected_total)
    more_rows, _ = await plain_page(store, table, where(), order, limit + 1, offset)
    window, more = await store.window(kind, P, where(), order, limit, offset)
    assert (window, more) == (more_rows[:limit], len(more_rows) > limit)


async def trace_ids(store: TraceStore) -> list[str]:
    """Every kind of trace: deleted, renamed, moved a year on or back, untouched, old."""
    rows = await store._ch.select(
        "SELECT DISTINCT id FROM traces WHERE project_id = {p:String}"
        " ORDER BY timestamp DESC LIMIT 60",
        {"p": P},
    )
    oldest = await store._ch.select(
        "SELECT id FROM traces WHERE project_id = {p:String} ORDER BY timestamp LIMIT 3", {"p": P}
    )
    return [r["id"] for r in rows + oldest] + ["no-such-trace"]


async def test_observations_and_scores_by_trace_are_those_of_a_scan_by_trace_id(
    store: TraceStore,
) -> None:
    ids = await trace_ids(store)
    for trace_id in ids:
        expected = await store._ch.select(
            f"SELECT * FROM {current('observations', 'trace_id = {t:String}')}"
            " ORDER BY start_time, id",
            {"project_id": P, "t": trace_id},
        )
        assert await store.observations_of(P, trace_id) == expected, trace_id
        expected = await store._ch.select(
            f"SELECT * FROM {current('scores', 'trace_id = {t:String}')} ORDER BY timestamp, id",
            {"project_id": P, "t": trace_id},
        )
        assert await store.scores_of(P, trace_id) == expected, trace_id
        # As the handler asks for a trace's observations: keyed conditions, read in one pass.
        where = filtered(
            OBSERVATION_FILTER_COLUMNS, KEY_COLUMNS["observations"], traceId=[trace_id]
        )
        plain = await plain_page(store, "observations", where, OBSERVATION_ORDER, 50, 0)
        where.add(DAYS_OF_TRACES, keyed=True, traces=[trace_id])
        assert where.by_key
        assert await store.page_of("observation", P, where, OBSERVATION_ORDER, 50, 0) == plain
        window, more = await store.window("observation", P, where, OBSERVATION_ORDER, 3, 1)
        assert (window, more) == (plain[0][1:4], len(plain[0]) > 4)


async def test_trace_rollups_are_those_of_a_scan_by_trace_id(store: TraceStore) -> None:
    ids = await trace_ids(store)
    expected = await store._ch.select(
        "SELECT trace_id, groupArray(id) AS ids, min(start_time) AS first_start,"
        " max(coalesce(end_time, start_time)) AS last_end,"
        " toFloat64(sum(coalesce(total_cost, 0))) AS total_cost"
        f" FROM {current('observations', 'trace_id IN {ids:Array(String)}')} GROUP BY trace_id",
        {"project_id": P, "ids": ids},
    )
    scores = await store._ch.select(
        "SELECT trace_id, groupArray(id) AS ids"
        f" FROM {current('scores', 'trace_id IN {ids:Array(String)}')} GROUP BY trace_id",
        {"project_id": P, "ids": ids},
    )
    rollups = await store.trace_rollups(P, ids)
    assert len(expected) > 40 and len(scores) > 20
    for row in expected:
        got = dict(rollups[row["trace_id"]])
        assert sorted(got.pop("ids")) == sorted(row.pop("ids"))
        assert {k: got[k] for k in row} == row
    assert {
        t: sorted(r.get("score_ids", [])) for t, r in rollups.items() if r.get("score_ids")
    } == {row["trace_id"]: sorted(row["ids"]) for row in scores}
    expected_scores = await store._ch.select(
        f"SELECT * FROM {current('scores', 'trace_id IN {ids:Array(String)}')}"
        " ORDER BY trace_id, timestamp, id",
        {"project_id": P, "ids": ids},
    )
    assert await store.scores_of_traces(P, ids) == expected_scores


async def test_a_total_counts_writes_made_through_the_store_at_once(store: TraceStore) -> None:
    where = filtered(TRACE_FILTER_COLUMNS, tags=["tag-7"])
    rows, total = await store.page_of("trace", P, where, TRACE_ORDER, 5, 0)
    assert (await store.page_of("trace", P, where, TRACE_ORDER, 5, 0))[1] == total
    await store.delete_traces(P, [rows[0]["id"]])
    assert (await store.page_of("trace", P, where, TRACE_ORDER, 5, 0))[1] == total - 1


async def test_an_observation_by_id_is_that_of_a_scan_by_id(store: TraceStore) -> None:
    """Ids of live, updated and deleted traces' observations, another project's and an unknown
    one: each found (or not) exactly as a scan of the id bloom filters finds it."""
    of_traces = await store._ch.select(
        "SELECT id FROM observations WHERE trace_id IN {t:Array(String)} ORDER BY id LIMIT 150",
        {"t": await trace_ids(store)},
    )
    others = await store._ch.select(
        "SELECT id FROM observations WHERE project_id = 'other-project' ORDER BY id LIMIT 5"
    )
    ids = [row["id"] for row in of_traces + others] + ["no-such-observation"]
    found = 0
    for observation_id in ids:
        expected = await store._ch.select(
            f"SELECT * FROM {current('observations', 'id = {i:String}')}",
            {"project_id": P, "i": observation_id},
        )
        assert await store.observation(P, observation_id) == (expected or [None])[0]
        found += bool(expected)
    # Both kinds are among the traces' ids (the dataset is random, so bounds, not counts): the live
    # ones found, the deleted traces' ones missing beside the other project's and the unknown id.
    assert found > 75
    assert len(ids) - found > 6


async def test_a_lookup_of_known_observations_is_the_page_of_those_ids_and_traces(
    store: TraceStore,
) -> None:
    """The judge's batched reads: observations by trace and id, of live, updated and deleted
    traces, with ids of no trace asked and an unknown one, newest first as a list page."""
    traces = await trace_ids(store)
    of_traces = await store._ch.select(
        "SELECT id FROM observations WHERE trace_id IN {t:Array(String)} ORDER BY id LIMIT 80",
        {"t": traces},
    )
    others = await store._ch.select(
        "SELECT id FROM observations WHERE project_id = {p:String} ORDER BY id LIMIT 5", {"p": P}
    )
    ids = [row["id"] for row in of_traces + others] + ["no-such-observation"]
    where = filtered(OBSERVATION_FILTER_COLUMNS, traceId=traces, id=ids)
    expected, _ = await plain_page(store, "observations", where, OBSERVATION_ORDER, 100, 0)
    assert await store.observations_among(P, traces, ids) == expected
    assert 0 < len(expected) < len(ids)  # found ones, and missing ones (the unknown id at least)


async def test_a_newest_page_is_the_plain_querys_when_the_newest_stored_rows_are_deleted(
    store: TraceStore,
) -> None:
    """Newest-first pages start from the day of a newest stored row counted without FINAL, so
    tombstones (and older versions) there must only widen the window: here every trace but the
    five oldest is deleted, so the newest stored rows are all tombstones."""
    project = "mostly-deleted-project"
    for table in ("traces", "observations"):
        await store._ch.execute(
            f"INSERT INTO {table} SELECT * REPLACE ('{project}' AS project_id) FROM"
            f" (SELECT * FROM {table} FINAL WHERE project_id = 'other-project')"
        )
    traces = await store._ch.select(
        "SELECT id FROM traces FINAL WHERE project_id = {p:String} ORDER BY timestamp, id",
        {"p": project},
    )
    assert len(traces) > 30
    await store.delete_traces(project, [row["id"] for row in traces[5:]])
    for table, order in (("traces", TRACE_ORDER), ("observations", OBSERVATION_ORDER)):
        for limit, offset in ((5, 0), (20, 0), (10, 15)):
            expected = await store._ch.select(
                f"SELECT * FROM {current(table, '1')} ORDER BY {order}"
                f" LIMIT {limit} OFFSET {offset}",
                {"project_id": project},
            )
            assert await store._page(table, project, Where(), order, limit, offset) == expected
