"""Metrics queries on chDB against a brute-force recomputation: every combination of a dimension,
a measure and an aggregation over random rows, among which an older version of a row, a deleted
trace with its observations, an observation whose trace never came, and another project's rows."""

import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from libs.common.migrate import load_migrations, migrate
from services.query.analytics import AGGREGATIONS as AGGREGATION_NAMES
from services.query.analytics import V2_VIEWS, VIEWS, build, result_rows
from services.query.clickhouse import ClickHouseTarget, EmbeddedClickHouse
from services.query.server import MIGRATIONS
from services.query.store import TraceStore

START = datetime(2030, 5, 1, tzinfo=UTC)
# Versions written in the past: the tombstones of a deletion (written now) must be newer.
OLD, NEW = datetime(2020, 6, 1, tzinfo=UTC), datetime(2020, 6, 2, tzinfo=UTC)


def generated(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Traces and observations of project `p`, as stored rows."""
    rng = random.Random(seed)
    traces: list[dict[str, Any]] = [
        {"project_id": "p", "id": f"t{n}", "timestamp": START + timedelta(hours=n),
         "name": rng.choice(("chat", "rag")), "tags": [], "event_ts": NEW}
        for n in range(8)
    ]  # fmt: skip
    observations = []
    for n in range(60):
        start = START + timedelta(minutes=rng.randrange(3 * 24 * 60))
        has_end, has_usage = rng.random() < 0.85, rng.random() < 0.8
        usage = {"input": rng.randrange(500), "output": rng.randrange(300)} if has_usage else {}
        observations.append({
            "project_id": "p", "id": f"o{n}", "trace_id": f"t{rng.randrange(9)}",  # t8: none
            "type": rng.choice(("SPAN", "GENERATION")), "name": rng.choice(("a", "b", "c")),
            "environment": rng.choice(("default", "prod")),
            "provided_model_name": rng.choice(("m1", "m2", None)), "start_time": start,
            "end_time": start + timedelta(milliseconds=rng.randrange(1, 5000)) if has_end
            else None,
            "usage_details": {**usage, "total": sum(usage.values())} if usage else {},
            "total_cost": round(rng.uniform(0, 1), 6) if has_usage else None,
            "event_ts": NEW,
        })  # fmt: skip
    return traces, observations


@pytest.fixture(scope="module")
async def stored(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[TraceStore, list[dict[str, Any]], dict[str, str]]]:
    clickhouse = EmbeddedClickHouse(str(tmp_path_factory.mktemp("metrics") / "chdb"))
    await migrate(ClickHouseTarget(clickhouse), load_migrations(MIGRATIONS / "clickhouse"))
    store = TraceStore(clickhouse)
    traces, observations = generated(7)
    stale = [{**o, "name": "stale", "event_ts": OLD} for o in observations[:10]]
    other = [{**o, "project_id": "q"} for o in observations]
    times = {"created_at": NEW, "updated_at": NEW}
    await store.insert("trace", [{**t, **times} for t in traces])
    await store.insert("observation", [{**o, **times} for o in [*observations, *stale, *other]])
    await store.delete_traces("p", ["t0"])
    current = [o for o in observations if o["trace_id"] != "t0"]
    names = {t["id"]: t["name"] for t in traces if t["id"] != "t0"}
    yield store, current, names
    clickhouse.close()


def ms(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds() * 1000


MEASURES: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "count": lambda o: 1,
    "latency": lambda o: ms(o["start_time"], o["end_time"]),
    "totalTokens": lambda o: o["usage_details"].get("total", 0),
    "inputTokens": lambda o: o["usage_details"].get("input", 0),
    "totalCost": lambda o: o["total_cost"],
}


def quantile(values: list[float], level: float) -> float:
    ordered = sorted(values)
    position = level * (len(ordered) - 1)
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": sum, "count": len, "max": max, "min": min,
    "avg": lambda v: sum(v) / len(v),
    "p50": lambda v: quantile(v, 0.5), "p95": lambda v: quantile(v, 0.95),
}  # fmt: skip
DIMENSIONS: dict[str, Callable[[dict[str, Any], dict[str, str]], Any]] = {
    "name": lambda o, _: o["name"],
    "providedModelName": lambda o, _: o["provided_model_name"],
    "environment": lambda o, _: o["environment"],
    "traceName": lambda o, names: names.get(o["trace_id"]),
}


def expected(
    rows: list[dict[str, Any]], names: dict[str, str], dimension: str, measure: str,
    aggregation: str,
) -> dict[Any, float | None]:  # fmt: skip
    groups: dict[Any, list[float]] = defaultdict(list)
    for row in rows:
        key = DIMENSIONS[dimension](row, names)
        groups[key]  # every group appears, even when all its values are null
        value = MEASURES[measure](row)
        if value is not None:
            groups[key].append(float(value))
    count = aggregation == "count"
    return {k: (AGGREGATIONS[aggregation](v) if v or count else None) for k, v in groups.items()}


@pytest.mark.parametrize("dimension", list(DIMENSIONS))
async def test_every_measure_and_aggregation_matches_brute_force(
    stored: tuple[TraceStore, list[dict[str, Any]], dict[str, str]], dimension: str
) -> None:
    store, rows, names = stored
    for measure in MEASURES:
        for aggregation in AGGREGATIONS:
            query = {
                "view": "observations", "dimensions": [{"field": dimension}],
                "metrics": [{"measure": measure, "aggregation": aggregation}],
                "fromTimestamp": START.isoformat(),
                "toTimestamp": (START + timedelta(days=4)).isoformat(),
            }  # fmt: skip
            built = build(1, orjson.dumps(query).decode())
            answer = result_rows(built, await store.aggregate("p", built.sql, built.params))
            key = f"{aggregation}_{measure}"
            got = {row[dimension]: row[key] for row in answer}
            want = expected(rows, names, dimension, measure, aggregation)
            assert got == pytest.approx(want), (dimension, key)


async def test_filters_narrow_the_rows_counted(
    stored: tuple[TraceStore, list[dict[str, Any]], dict[str, str]],
) -> None:
    store, rows, names = stored
    query = {
        "view": "observations", "metrics": [{"measure": "count", "aggregation": "count"}],
        "filters": [
            {"column": "traceName", "type": "string", "operator": "=", "value": "chat"},
            {"column": "environment", "type": "stringOptions", "operator": "any of",
             "value": ["prod"]},
            {"column": "providedModelName", "type": "null", "operator": "is not null",
             "value": ""},
        ],
        "fromTimestamp": START.isoformat(), "toTimestamp": (START + timedelta(days=4)).isoformat(),
    }  # fmt: skip
    built = build(2, orjson.dumps(query).decode())
    [answer] = await store.aggregate("p", built.sql, built.params)
    assert answer["count_count"] == sum(
        1 for o in rows if names.get(o["trace_id"]) == "chat" and o["environment"] == "prod"
        and o["provided_model_name"] is not None
    )  # fmt: skip


@pytest.mark.parametrize("view", list(VIEWS))
async def test_every_field_measure_and_aggregation_of_a_view_runs(
    stored: tuple[TraceStore, list[dict[str, Any]], dict[str, str]], view: str
) -> None:
    """Each view grouped by all its dimensions at once (of each API version), with all its
    measures, once per aggregation and granularity; and filtered on each of its fields."""
    store = stored[0]
    described = VIEWS[view]
    window = {
        "view": view, "fromTimestamp": START.isoformat(),
        "toTimestamp": (START + timedelta(days=4)).isoformat(),
    }  # fmt: skip
    versions = (1, 2) if view in V2_VIEWS else (1,)
    granularities = ["minute", "hour", "day", "week", "month", "auto"] * 2
    for version in versions:
        hidden = described.high_cardinality if version == 2 else described.v2_only
        dimensions = [{"field": d} for d in described.dimensions if d not in hidden]
        queries = [
            {**window, "dimensions": dimensions, "timeDimension": {"granularity": granularity},
             "metrics": [{"measure": m, "aggregation": aggregation} for m in described.measures
                         if aggregation in ("count", "sum") or not described.measures[m].distinct]}
            for aggregation, granularity in zip(AGGREGATION_NAMES, granularities, strict=False)
        ] + [
            {**window, "metrics": [{"measure": "count", "aggregation": "count"}],
             "filters": [{"column": name, "type": "null", "operator": "is not null", "value": ""}]}
            for name in described.fields
        ]  # fmt: skip
        for query in queries:
            built = build(version, orjson.dumps(query).decode())
            result_rows(built, await store.aggregate("p", built.sql, built.params))
