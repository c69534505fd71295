"""The metrics fast path on chDB (services/query/analytics.py, migrations 0008-0010): answers read
partly from per-day rollups equal a brute-force recomputation and the live query, for every
measure and aggregation the rollups keep, with partial days at both ends of the window; a build is
reused while nothing changed and rebuilt once a day's rows change (a new version, a deleted
trace), or, for the rollups by the trace's fields, once a trace of the day changes."""

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from libs.common.migrate import load_migrations, migrate
from services.query import analytics
from services.query.analytics import answer, build, result_rows
from services.query.clickhouse import ClickHouseTarget, EmbeddedClickHouse
from services.query.server import MIGRATIONS
from services.query.store import ROLLUP_TABLES, TraceStore
from tests.integration.test_metrics_query import quantile

# Whole past days (only days that are over are built), the window starting and ending mid-day.
START = datetime(2024, 3, 4, tzinfo=UTC)
WINDOW = (START + timedelta(hours=7), START + timedelta(days=4, hours=15))
OLD, NEW = datetime(2020, 6, 1, tzinfo=UTC), datetime(2020, 6, 2, tzinfo=UTC)


def generated(seed: int) -> list[dict[str, Any]]:
    """Observations of project `p` over five days, some without an end, usage or cost (groups
    where every value of a measure is null)."""
    rng = random.Random(seed)
    rows = []
    for n in range(300):
        start = START + timedelta(minutes=rng.randrange(5 * 24 * 60))
        has_end, has_usage = rng.random() < 0.85, rng.random() < 0.8
        total = rng.randrange(800)
        rows.append({
            "project_id": "p", "id": f"o{n}", "trace_id": f"t{n % 40}",
            "type": rng.choice(("SPAN", "GENERATION")),
            "name": rng.choice(("a", "b", "c", "lone")),
            "environment": rng.choice(("default", "prod")),
            "level": rng.choice(("DEFAULT", "ERROR")),
            "provided_model_name": rng.choice(("m1", "m2", None)), "start_time": start,
            "end_time": start + timedelta(milliseconds=rng.randrange(1, 5000)) if has_end
            else None,
            "usage_details": {"total": total} if has_usage else {},
            "total_cost": round(rng.uniform(0, 1), 6) if has_usage else None,
            "event_ts": NEW, "created_at": NEW, "updated_at": NEW,
        })  # fmt: skip
    for row in rows:
        if row["name"] == "lone":  # a group whose latencies and costs are all null
            row.update(end_time=None, total_cost=None, provided_model_name="m3")
    return rows


TRACES = [
    {"project_id": "p", "id": f"t{n}", "timestamp": START, "name": ("chat", "rag", "agent")[n % 3],
     "tags": [["x"], ["x", "y"], []][n % 3 if n % 2 else 2], "user_id": f"u{n % 4}",
     "event_ts": NEW, "created_at": NEW, "updated_at": NEW}
    for n in range(36)
]  # fmt: skip
TRACE_OF = {t["id"]: t for t in TRACES}


@pytest.fixture
async def stored(tmp_path: Any) -> AsyncIterator[tuple[TraceStore, list[dict[str, Any]]]]:
    clickhouse = EmbeddedClickHouse(str(tmp_path / "chdb"))
    await migrate(ClickHouseTarget(clickhouse), load_migrations(MIGRATIONS / "clickhouse"))
    store = TraceStore(clickhouse)
    rows = generated(11)
    stale = [{**o, "total_cost": 99.0, "name": "stale", "event_ts": OLD} for o in rows[:30]]
    other = [{**o, "project_id": "q"} for o in rows]
    await store.insert("observation", [*rows, *stale, *other])
    await store.insert("trace", TRACES)  # t36..t39 never came: their observations' name is null
    yield store, rows
    clickhouse.close()


MEASURES: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "count": lambda o: 1,
    "latency": lambda o: (
        None if o["end_time"] is None else (o["end_time"] - o["start_time"]).total_seconds() * 1000
    ),
    "totalCost": lambda o: o["total_cost"],
    "totalTokens": lambda o: o["usage_details"].get("total", 0),
}
AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": sum, "count": len, "max": max, "min": min, "avg": lambda v: sum(v) / len(v),
    "p50": lambda v: quantile(v, 0.5), "p95": lambda v: quantile(v, 0.95),
}  # fmt: skip
COLUMNS = {"name": "name", "providedModelName": "provided_model_name", "type": "type",
           "environment": "environment", "level": "level"}  # fmt: skip
BUCKETS: dict[str, Callable[[datetime], str]] = {
    "day": lambda t: f"{t.date()}T00:00:00.000Z",
    "week": lambda t: f"{(t - timedelta(days=t.weekday())).date()}T00:00:00.000Z",
    "month": lambda t: f"{t.date().replace(day=1)}T00:00:00.000Z",
}


def in_window(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in rows if WINDOW[0] <= o["start_time"] <= WINDOW[1]]


def expected(
    rows: list[dict[str, Any]], dimension: str | None, granularity: str | None, measure: str,
    aggregation: str,
) -> dict[Any, float | None]:  # fmt: skip
    groups: dict[Any, list[float]] = defaultdict(list)
    for row in in_window(rows):
        bucket = BUCKETS[granularity](row["start_time"]) if granularity else None
        key = (row[COLUMNS[dimension]] if dimension else None, bucket)
        groups[key]  # every group appears, even when all its values are null
        value = MEASURES[measure](row)
        if value is not None:
            groups[key].append(float(value))
    count = aggregation == "count"
    return {k: (AGGREGATIONS[aggregation](v) if v or count else None) for k, v in groups.items()}


def query(dimension: str | None, granularity: str | None, metrics: list[tuple[str, str]]) -> str:
    return orjson.dumps({
        "view": "observations", "dimensions": [{"field": dimension}] if dimension else [],
        "metrics": [{"measure": m, "aggregation": a} for m, a in metrics],
        **({"timeDimension": {"granularity": granularity}} if granularity else {}),
        "fromTimestamp": WINDOW[0].isoformat(), "toTimestamp": WINDOW[1].isoformat(),
        "config": {"row_limit": 1000},
    }).decode()  # fmt: skip


def pairs() -> list[tuple[str, str]]:
    table = analytics.ROLLUP_TABLES[0]
    return [(m, a) for m in MEASURES for a in AGGREGATIONS
            if analytics._rollup_aggregate(table, m, a) is not None]  # fmt: skip


async def builds(store: TraceStore, table: str = "observation_rollup_builds") -> dict[str, str]:
    rows = await store.aggregate(
        "p", f"SELECT day, build_id FROM {table} FINAL WHERE project_id = {{project_id:String}}",
        {},
    )  # fmt: skip
    return {str(r["day"]): str(r["build_id"]) for r in rows}


@pytest.mark.parametrize("granularity", [None, "day", "week", "month"])
async def test_answers_read_from_rollups_equal_brute_force(
    stored: tuple[TraceStore, list[dict[str, Any]]], granularity: str | None
) -> None:
    store, rows = stored
    for dimension in [*COLUMNS, None]:  # None: the window's totals
        raw = query(dimension, granularity, pairs())
        assert build(2, raw).rollup is not None
        answer_rows = await answer(store, "p", 2, raw)
        for measure, aggregation in pairs():
            key = f"{aggregation}_{measure}"
            got = {(r.get(dimension or ""), r.get("time_dimension")): r[key] for r in answer_rows}
            want = expected(rows, dimension, granularity, measure, aggregation)
            if granularity is None:
                assert got == pytest.approx(want), (dimension, key)
            else:  # the time grid is filled: buckets without rows hold nothing
                assert {k: v for k, v in got.items() if k[0] is not None or k in want} == (
                    pytest.approx({**dict.fromkeys(set(got) - set(want)), **want})
                ), (dimension, key)
    # The three whole days of the window were built (the partial ones at its ends are live).
    assert sorted(await builds(store)) == ["2024-03-05", "2024-03-06", "2024-03-07"]


async def test_a_build_is_reused_until_a_day_changes(
    stored: tuple[TraceStore, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, rows = stored
    # Parts settled (no merge makes a new part later) more than the slack before the build (part
    # times are whole seconds: a slack of one is the least that sees a change in the same second).
    await store.aggregate("p", "OPTIMIZE TABLE observations FINAL", {})
    monkeypatch.setattr(analytics, "ROLLUP_SLACK", timedelta(seconds=1))
    await asyncio.sleep(2)
    raw = query("name", "day", [("totalCost", "sum"), ("count", "count")])
    live = build(2, raw)
    first = await answer(store, "p", 2, raw)
    built = await builds(store)
    assert await answer(store, "p", 2, raw) == first
    assert await builds(store) == built

    # A new part without rows of the built days (another project's): the check that scans it
    # finds the builds still valid and stamps them anew, so that no later query scans it again.
    stamped = "SELECT max(built_at) AS at FROM observation_rollup_builds FINAL"
    [before] = await store.aggregate("p", stamped, {})
    await asyncio.sleep(1)
    await store.insert("observation", [{**rows[0], "project_id": "q", "id": "elsewhere"}])
    assert await answer(store, "p", 2, raw) == first
    [after] = await store.aggregate("p", stamped, {})
    assert await builds(store) == built and str(after["at"]) > str(before["at"])

    # A newer version of an observation on 2024-03-06 (a new name and cost) and a deleted trace.
    changed = next(o for o in in_window(rows) if o["start_time"].date().isoformat() == "2024-03-06")
    newer = {**changed, "name": "renamed", "total_cost": 5.0, "event_ts": NEW + timedelta(days=1)}
    await store.insert("observation", [newer])
    await store.delete_traces("p", ["t3"])
    rows = [newer if o is changed else o for o in rows if o["trace_id"] != "t3"]
    again = await answer(store, "p", 2, raw)
    now_live = result_rows(live, await store.aggregate("p", live.sql, live.params))

    def costs(answered: list[dict[str, Any]]) -> dict[Any, Any]:
        return {(r["name"], r["time_dimension"]): r["sum_totalCost"] for r in answered}

    assert costs(again) == pytest.approx(costs(now_live))
    want = expected(rows, "name", "day", "totalCost", "sum")
    assert {k: v for k, v in costs(again).items() if k in want} == pytest.approx(want)
    rebuilt = await builds(store)
    assert rebuilt["2024-03-06"] != built["2024-03-06"]

    # Another change: the day's third build; the first one's rows are gone, the second's stay
    # (a query that began before the third build may still read them).
    await store.insert("observation", [{**newer, "event_ts": NEW + timedelta(days=2)}])
    await answer(store, "p", 2, raw)
    third = (await builds(store))["2024-03-06"]
    kept = await store.aggregate(
        "p", "SELECT DISTINCT toString(build_id) AS build FROM observation_rollups"
        " WHERE project_id = {project_id:String} AND day = '2024-03-06'", {},
    )  # fmt: skip
    assert {r["build"] for r in kept} == {rebuilt["2024-03-06"], third}


async def test_a_build_outlives_the_request_that_began_it_and_is_shared(
    stored: tuple[TraceStore, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that gives up while its build runs (a deadline) leaves the build to finish; the
    next query reads it. Queries needing the same days at once share one build."""
    store, _ = stored
    await store.aggregate("p", "OPTIMIZE TABLE observations FINAL", {})  # parts settled
    monkeypatch.setattr(analytics, "ROLLUP_SLACK", timedelta(seconds=1))
    await asyncio.sleep(2)
    raw = query("name", "day", [("count", "count")])
    request = asyncio.ensure_future(answer(store, "p", 2, raw))
    while not analytics._BUILDING:  # the build has begun
        await asyncio.sleep(0.01)
    [building] = analytics._BUILDING.values()
    request.cancel()
    build_id = await building
    built = await builds(store)
    assert set(built.values()) == {build_id}
    assert await answer(store, "p", 2, raw) and await builds(store) == built

    other = "observation_trace_field_rollup_builds"
    traces = query("traceName", None, [("count", "count")])
    first, second = await asyncio.gather(
        answer(store, "p", 2, traces), answer(store, "p", 2, traces)
    )
    assert first == second and len(set((await builds(store, other)).values())) == 1


async def test_queries_the_rollups_do_not_keep_stay_live(
    stored: tuple[TraceStore, list[dict[str, Any]]],
) -> None:
    store, _ = stored
    for raw in (
        query("name", "hour", [("count", "count")]),  # finer than a day
        with_filter(
            query("traceName", None, [("latency", "p95")]),  # no samples per trace
            {"column": "userId", "type": "stringOptions", "operator": "any of", "value": ["u1"]},
        ),  # fmt: skip
        query("name", None, [("totalCost", "p95")]),  # no quantile samples of cost
        query("name", None, [("inputTokens", "sum")]),  # a measure the rollups don't keep
        orjson.dumps(
            {
                **orjson.loads(query("name", None, [("count", "count")])),  # both kinds
                "dimensions": [{"field": "name"}, {"field": "traceName"}],
            }
        ).decode(),
    ):
        assert build(2, raw).rollup is None
        await answer(store, "p", 2, raw)
    assert await builds(store) == {}


def with_filter(raw: str, *filters: dict[str, Any]) -> str:
    return orjson.dumps({**orjson.loads(raw), "filters": list(filters)}).decode()


TRACE_FILTERS: dict[str, tuple[dict[str, Any] | None, Callable[[dict[str, Any]], bool], str]] = {
    # name: (the filter, which traces pass it, the rollups that answer)
    "none": (None, lambda t: True, "observation_trace_field_rollups"),
    "tag x": ({"column": "tags", "type": "arrayOptions", "operator": "any of", "value": ["x"]},
              lambda t: "x" in t["tags"], "observation_trace_field_rollups"),
    # Observations whose trace never came have no tags, yet they don't pass (as live).
    "not tag y": ({"column": "tags", "type": "arrayOptions", "operator": "none of",
                   "value": ["y"]}, lambda t: "y" not in t["tags"],
                  "observation_trace_field_rollups"),
    "user u1": ({"column": "userId", "type": "stringOptions", "operator": "any of",
                 "value": ["u1"]}, lambda t: t["user_id"] == "u1", "observation_trace_rollups"),
}  # fmt: skip


def assert_trace_metrics(
    answer_rows: list[dict[str, Any]], rows: list[dict[str, Any]], traces: dict[str, Any],
    metrics: list[tuple[str, str]], passes: Callable[[dict[str, Any]], bool] | None,
) -> None:  # fmt: skip
    """The answer grouped by traceName and week equals brute force over `rows` joined to
    `traces` (only observations whose trace passes `passes`, when given)."""
    if passes is not None:
        rows = [o for o in rows if o["trace_id"] in traces and passes(traces[o["trace_id"]])]
    rows = [{**o, "trace_name": traces.get(o["trace_id"], {}).get("name")} for o in rows]
    for measure, aggregation in metrics:
        key = f"{aggregation}_{measure}"
        got = {(r["traceName"], r["time_dimension"]): r[key] for r in answer_rows}
        COLUMNS["traceName"] = "trace_name"
        try:
            want = expected(rows, "traceName", "week", measure, aggregation)
        finally:
            del COLUMNS["traceName"]
        assert {k: v for k, v in got.items() if k in want} == pytest.approx(want), key
        assert all(v in (None, 0) for k, v in got.items() if k not in want), key


@pytest.mark.parametrize("case", list(TRACE_FILTERS))
async def test_trace_dimensions_read_from_trace_rollups_equal_brute_force(
    stored: tuple[TraceStore, list[dict[str, Any]]], case: str
) -> None:
    store, rows = stored
    condition, passes, table = TRACE_FILTERS[case]
    metrics = [("count", "count"), ("totalCost", "sum"), ("latency", "avg"), ("latency", "max")]
    if table == "observation_trace_field_rollups":
        metrics.append(("latency", "p95"))
    raw = query("traceName", "week", metrics)
    if condition is not None:
        raw = with_filter(raw, condition)
    built = build(2, raw)
    assert built.rollup is not None and built.rollup.table.table == table
    answer_rows = await answer(store, "p", 2, raw)
    assert_trace_metrics(answer_rows, rows, TRACE_OF, metrics, passes if condition else None)
    assert sorted(await builds(store, built.rollup.table.builds)) == [
        "2024-03-05", "2024-03-06", "2024-03-07",
    ]  # fmt: skip


async def test_a_trace_changed_after_its_days_were_rolled_up_is_read_as_it_is_now(
    stored: tuple[TraceStore, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trace renamed and retagged, and a trace that comes after its observations, once their
    days were built: those days are built again (their builds would count them under the old
    name and tags), and the answers equal brute force over the traces as they are now."""
    store, rows = stored
    await store.aggregate("p", "OPTIMIZE TABLE observations FINAL", {})
    await store.aggregate("p", "OPTIMIZE TABLE traces FINAL", {})
    monkeypatch.setattr(analytics, "ROLLUP_SLACK", timedelta(seconds=1))
    await asyncio.sleep(2)
    metrics = [("count", "count"), ("totalCost", "sum"), ("latency", "p95")]
    tagged = with_filter(query("traceName", "week", metrics), TRACE_FILTERS["tag x"][0] or {})
    await answer(store, "p", 2, tagged)
    table = "observation_trace_field_rollup_builds"
    built = await builds(store, table)
    assert await answer(store, "p", 2, tagged) and await builds(store, table) == built  # reused

    changed = {**TRACE_OF["t4"], "name": "renamed", "tags": ["x"], "event_ts": NEW + timedelta(1)}
    late = {**TRACE_OF["t0"], "id": "t36", "name": "late", "tags": ["x"]}
    await store.insert("trace", [changed, late])
    traces = {**TRACE_OF, "t4": changed, "t36": late}
    days_of = {o["start_time"].date().isoformat() for o in rows if o["trace_id"] in ("t4", "t36")}
    assert days_of & set(built)  # the change touches built days

    answer_rows = await answer(store, "p", 2, tagged)
    assert_trace_metrics(answer_rows, rows, traces, metrics, TRACE_FILTERS["tag x"][1])
    untagged = query("traceName", "week", metrics)
    assert_trace_metrics(await answer(store, "p", 2, untagged), rows, traces, metrics, None)
    rebuilt = await builds(store, table)
    assert all(rebuilt[day] != built[day] for day in days_of & set(built))


async def test_a_deleted_projects_rollups_go_with_its_rows(
    stored: tuple[TraceStore, list[dict[str, Any]]],
) -> None:
    store, _ = stored
    by_user = with_filter(query("traceName", None, [("count", "count")]),
                          TRACE_FILTERS["user u1"][0] or {})  # fmt: skip
    for raw in (query("name", None, [("count", "count")]),
                query("traceName", None, [("count", "count")]), by_user):  # fmt: skip
        await answer(store, "p", 2, raw)
        await answer(store, "q", 2, raw)
    await store.delete_project("p")
    for table in ROLLUP_TABLES:
        rows = await store.aggregate(
            "p", f"SELECT DISTINCT project_id FROM {table} ORDER BY project_id", {}
        )
        assert rows == [{"project_id": "q"}], table
