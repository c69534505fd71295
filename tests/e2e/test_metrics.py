"""The metrics API end to end: data the test generates (seeded, in a time window of its own) goes
through ingestion, then every answer of /v2/metrics, /metrics (v1) and /metrics/daily, through
HTTP and the official SDKs, must equal a brute-force recomputation from the generated data.
A deleted trace and a second project's identical data must never be counted."""

import asyncio
import json
import random
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langfuse import Langfuse

from tests.e2e.admin import new_project
from tests.e2e.conftest import PUBLIC_KEY, SECRET_KEY, Stack
from tests.support.devenv import ROOT
from tests.support.eventually import eventually

AUTH = (PUBLIC_KEY, SECRET_KEY)
SDK3_PYTHON = ROOT / ".dev" / "venvs" / "langfuse3" / "bin" / "python"
MODELS = ("m-alpha", "m-beta")


@dataclass
class Generation:
    id: str
    trace_id: str
    name: str
    model: str
    start: datetime
    latency_ms: int
    input: int
    output: int
    input_cost: float
    output_cost: float


@dataclass
class Trace:
    id: str
    name: str
    tags: list[str]
    timestamp: datetime
    score: float
    generations: list[Generation] = field(default_factory=list)


@dataclass
class Dataset:
    start: datetime
    end: datetime
    traces: list[Trace]
    deleted: Trace

    @property
    def generations(self) -> list[Generation]:
        return [g for t in self.traces for g in t.generations]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generate(seed: int) -> Dataset:
    """Traces over three days of a window no other test writes to (the year 2031)."""
    rng = random.Random(seed)
    start = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(0, 3000, 4))
    traces = []
    for index in range(13):
        timestamp = start + timedelta(seconds=rng.randrange(0, 3 * 86400 - 600))
        trace = Trace(
            id=uuid.uuid4().hex, name=rng.choice(("chat", "search", "summarize")),
            tags=sorted(rng.sample(("prod", "beta", "eu"), rng.randint(0, 2))),
            timestamp=timestamp, score=round(rng.uniform(0, 1), 3),
        )  # fmt: skip
        for number in range(rng.randint(1, 4)):
            trace.generations.append(Generation(
                id=f"{trace.id}-{number}", trace_id=trace.id, name=rng.choice(("plan", "answer")),
                model=MODELS[(index + number) % 2],
                start=timestamp + timedelta(seconds=number, milliseconds=rng.randrange(1000)),
                latency_ms=rng.randrange(50, 9000), input=rng.randrange(1, 2000),
                output=rng.randrange(1, 800), input_cost=round(rng.uniform(0, 0.05), 6),
                output_cost=round(rng.uniform(0, 0.1), 6),
            ))  # fmt: skip
        traces.append(trace)
    return Dataset(start, start + timedelta(days=3), traces[:-1], traces[-1])


def events(trace: Trace) -> list[dict[str, Any]]:
    """A trace, its generations created without an end and then ended by an update (so that only
    the current version of each row holds the right latency), and a numeric score."""
    stamp = iso(trace.timestamp)
    batch = [
        {"id": uuid.uuid4().hex, "type": "trace-create", "timestamp": stamp,
         "body": {"id": trace.id, "name": trace.name, "tags": trace.tags, "timestamp": stamp}},
        {"id": uuid.uuid4().hex, "type": "score-create", "timestamp": stamp,
         "body": {"id": f"{trace.id}-score", "traceId": trace.id, "name": "quality",
                  "value": trace.score, "timestamp": stamp}},
    ]  # fmt: skip
    for g in trace.generations:
        end = g.start + timedelta(milliseconds=g.latency_ms)
        batch += [
            {"id": uuid.uuid4().hex, "type": "generation-create", "timestamp": iso(g.start),
             "body": {"id": g.id, "traceId": g.trace_id, "name": g.name, "model": g.model,
                      "startTime": iso(g.start),
                      "usageDetails": {"input": g.input, "output": g.output},
                      "costDetails": {"input": g.input_cost, "output": g.output_cost}}},
            {"id": uuid.uuid4().hex, "type": "generation-update", "timestamp": iso(end),
             "body": {"id": g.id, "traceId": g.trace_id, "endTime": iso(end)}},
        ]  # fmt: skip
    return batch


async def ingest(client: httpx.AsyncClient, data: Dataset) -> None:
    everything = [*data.traces, data.deleted]
    batch = [event for trace in everything for event in events(trace)]
    response = await client.post("/api/public/ingestion", json={"batch": batch})
    assert response.status_code == 207 and not response.json()["errors"], response.text
    expected = {g.id: iso(g.start + timedelta(milliseconds=g.latency_ms))
                for t in everything for g in t.generations}  # fmt: skip

    async def ended() -> dict[str, str]:
        params: dict[str, Any] = {
            "fromStartTime": iso(data.start),
            "toStartTime": iso(data.end),
            "limit": 100,
        }
        reply = await client.get("/api/public/observations", params=params)
        return {o["id"]: o["endTime"] for o in reply.json()["data"]}

    async def scored() -> int:
        params = {"name": "quality", **window(data)}
        reply = await client.get("/api/public/v2/scores", params=params)
        return int(reply.json()["meta"]["totalItems"])

    await eventually(ended, lambda seen: seen == expected, timeout=60)
    await eventually(scored, lambda n: n == len(everything), timeout=60)
    deleted = await client.delete(f"/api/public/traces/{data.deleted.id}")
    assert deleted.status_code == 200


@pytest.fixture(scope="module")
async def projects(stack: Stack) -> tuple[Dataset, tuple[str, str]]:
    """The first project's data, and the same data under new ids in a second project (same
    window, same names and numbers), with the second project's key."""
    seed = random.randrange(1 << 30)
    mine = generate(seed)
    other_auth = new_project(stack, "metrics")
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH, timeout=30) as client,
        httpx.AsyncClient(base_url=stack.gateway_url, auth=other_auth, timeout=30) as stranger,
    ):
        await asyncio.gather(ingest(client, mine), ingest(stranger, generate(seed)))
    return mine, other_auth


@pytest.fixture(scope="module")
def data(projects: tuple[Dataset, tuple[str, str]]) -> Dataset:
    return projects[0]


def window(data: Dataset) -> dict[str, str]:
    return {"fromTimestamp": iso(data.start), "toTimestamp": iso(data.end)}


async def metrics(
    stack: Stack, path: str, query: dict[str, Any], auth: tuple[str, str] = AUTH
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=auth, timeout=30) as client:
        response = await client.get(path, params={"query": json.dumps(query)})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


def grouped(items: Iterable[Any], key: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def quantile(values: list[float], level: float) -> float:
    """Linear interpolation between the closest ranks: what ClickHouse's `quantile` computes
    exactly for fewer than 8,192 values."""
    ordered = sorted(values)
    position = level * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def keyed(rows: list[dict[str, Any]], name: str) -> dict[Any, dict[str, Any]]:
    return {row[name]: row for row in rows}


async def test_cost_and_tokens_per_model_equal_a_recomputation(stack: Stack, data: Dataset) -> None:
    query = {
        "view": "observations", "dimensions": [{"field": "providedModelName"}],
        "metrics": [{"measure": m, "aggregation": "sum"} for m in (
            "totalCost", "inputCost", "outputCost", "totalTokens", "inputTokens", "outputTokens")]
        + [{"measure": "count", "aggregation": "count"}],
        **window(data),
    }  # fmt: skip
    rows = keyed(await metrics(stack, "/api/public/v2/metrics", query), "providedModelName")
    expected = grouped(data.generations, lambda g: g.model)
    assert set(rows) == set(expected)
    for model, generations in expected.items():
        row = rows[model]
        assert row["count_count"] == len(generations)
        assert row["sum_inputTokens"] == sum(g.input for g in generations)
        assert row["sum_outputTokens"] == sum(g.output for g in generations)
        assert row["sum_totalTokens"] == sum(g.input + g.output for g in generations)
        assert row["sum_inputCost"] == pytest.approx(sum(g.input_cost for g in generations))
        assert row["sum_outputCost"] == pytest.approx(sum(g.output_cost for g in generations))
        assert row["sum_totalCost"] == pytest.approx(
            sum(g.input_cost + g.output_cost for g in generations)
        )


async def test_latency_percentiles_per_observation_name(stack: Stack, data: Dataset) -> None:
    query = {
        "view": "observations", "dimensions": [{"field": "name"}],
        "metrics": [{"measure": "latency", "aggregation": a} for a in ("p95", "p50", "max", "avg")],
        "orderBy": [{"field": "name", "direction": "asc"}], **window(data),
    }  # fmt: skip
    rows = await metrics(stack, "/api/public/v2/metrics", query)
    expected = grouped(data.generations, lambda g: g.name)
    assert [row["name"] for row in rows] == sorted(expected)
    for row in rows:
        latencies = [float(g.latency_ms) for g in expected[row["name"]]]
        assert row["p95_latency"] == pytest.approx(quantile(latencies, 0.95))
        assert row["p50_latency"] == pytest.approx(quantile(latencies, 0.5))
        assert row["max_latency"] == max(latencies)
        assert row["avg_latency"] == pytest.approx(sum(latencies) / len(latencies))


async def test_counts_per_trace_name_with_a_tag_filter(stack: Stack, data: Dataset) -> None:
    tag_filter = {"column": "tags", "type": "arrayOptions", "operator": "any of", "value": ["prod"]}
    tagged = [t for t in data.traces if "prod" in t.tags]
    # v2: observations of traces with the tag, per trace name.
    query = {
        "view": "observations", "dimensions": [{"field": "traceName"}],
        "metrics": [{"measure": "count", "aggregation": "count"}], "filters": [tag_filter],
        **window(data),
    }  # fmt: skip
    rows = keyed(await metrics(stack, "/api/public/v2/metrics", query), "traceName")
    expected = {name: sum(len(t.generations) for t in traces)
                for name, traces in grouped(tagged, lambda t: t.name).items()}  # fmt: skip
    assert {name: row["count_count"] for name, row in rows.items()} == expected
    # v1: the traces themselves, with their observations' totals.
    query = {
        "view": "traces", "dimensions": [{"field": "name"}],
        "metrics": [{"measure": "count", "aggregation": "count"},
                    {"measure": "observationsCount", "aggregation": "sum"},
                    {"measure": "totalCost", "aggregation": "sum"}],
        "filters": [tag_filter], **window(data),
    }  # fmt: skip
    rows = keyed(await metrics(stack, "/api/public/metrics", query), "name")
    by_name = grouped(tagged, lambda t: t.name)
    assert {name: row["count_count"] for name, row in rows.items()} == {
        name: len(traces) for name, traces in by_name.items()
    }
    for name, traces in by_name.items():
        generations = [g for t in traces for g in t.generations]
        assert rows[name]["sum_observationsCount"] == len(generations)
        assert rows[name]["sum_totalCost"] == pytest.approx(
            sum(g.input_cost + g.output_cost for g in generations)
        )


async def test_counts_per_day_fill_the_window(stack: Stack, data: Dataset) -> None:
    query = {
        "view": "observations", "metrics": [{"measure": "count", "aggregation": "count"}],
        "timeDimension": {"granularity": "day"}, **window(data),
    }  # fmt: skip
    rows = await metrics(stack, "/api/public/v2/metrics", query)
    per_day = grouped(data.generations, lambda g: g.start.date())
    days = [data.start.date() + timedelta(days=n) for n in range(3)]
    assert [row["time_dimension"] for row in rows] == [f"{day}T00:00:00.000Z" for day in days]
    assert [row["count_count"] for row in rows] == [len(per_day.get(day, [])) for day in days]


async def test_numeric_scores_per_name_and_trace_name(stack: Stack, data: Dataset) -> None:
    query = {
        "view": "scores-numeric", "dimensions": [{"field": "name"}, {"field": "traceName"}],
        "metrics": [{"measure": "value", "aggregation": "avg"},
                    {"measure": "count", "aggregation": "count"}],
        **window(data),
    }  # fmt: skip
    rows = await metrics(stack, "/api/public/v2/metrics", query)
    expected = grouped(data.traces, lambda t: t.name)
    assert {(r["name"], r["traceName"]): r["count_count"] for r in rows} == {
        ("quality", name): len(traces) for name, traces in expected.items()
    }
    for row in rows:
        scores = [t.score for t in expected[row["traceName"]]]
        assert row["avg_value"] == pytest.approx(sum(scores) / len(scores))


async def test_daily_metrics_per_day_and_model(stack: Stack, data: Dataset) -> None:
    params: dict[str, Any] = {**window(data), "limit": 2, "page": 1}
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        first = (await client.get("/api/public/metrics/daily", params=params)).json()
        rest = (await client.get("/api/public/metrics/daily", params={**params, "page": 2})).json()
        tagged = await client.get(
            "/api/public/metrics/daily", params={**window(data), "tags": "prod"}
        )
        both = await client.get(  # all of them, comma-separated as Langfuse reads them
            "/api/public/metrics/daily", params={**window(data), "tags": "prod,beta"}
        )
    days = first["data"] + rest["data"]
    expected = expected_days(data.traces)
    assert first["meta"] == {"page": 1, "limit": 2, "totalItems": len(expected),
                             "totalPages": -(-len(expected) // 2)}  # fmt: skip
    assert days == expected[: len(days)] and len(days) == min(4, len(expected))
    assert tagged.json()["data"] == expected_days([t for t in data.traces if "prod" in t.tags])
    assert both.json()["data"] == expected_days(
        [t for t in data.traces if {"prod", "beta"} <= set(t.tags)]
    )


def expected_days(traces: list[Trace]) -> list[dict[str, Any]]:
    """Traces per day of their timestamp; their observations per day of their start and model."""
    days: dict[str, dict[str, Any]] = {}

    def day(moment: datetime) -> dict[str, Any]:
        date = moment.date().isoformat()
        return days.setdefault(date, {"date": date, "countTraces": 0, "countObservations": 0,
                                      "totalCost": 0.0, "usage": []})  # fmt: skip

    for trace in traces:
        day(trace.timestamp)["countTraces"] += 1
    generations = [g for t in traces for g in t.generations]
    for (date, model), group in sorted(
        grouped(generations, lambda g: (g.start.date(), g.model)).items()
    ):
        document = day(datetime.combine(date, datetime.min.time()))
        cost = sum(g.input_cost + g.output_cost for g in group)
        document["countObservations"] += len(group)
        document["totalCost"] += cost
        document["usage"].append({
            "model": model, "inputUsage": sum(g.input for g in group),
            "outputUsage": sum(g.output for g in group),
            "totalUsage": sum(g.input + g.output for g in group),
            "countObservations": len(group), "countTraces": len({g.trace_id for g in group}),
            "totalCost": pytest.approx(cost),
        })  # fmt: skip
    for document in days.values():
        document["totalCost"] = pytest.approx(document["totalCost"])
    return sorted(days.values(), key=lambda d: d["date"], reverse=True)


async def test_the_python_sdk_5_reads_v2_metrics(stack: Stack, data: Dataset) -> None:
    langfuse = Langfuse(
        public_key=PUBLIC_KEY, secret_key=SECRET_KEY, host=stack.gateway_url,
        tracing_enabled=False,
    )  # fmt: skip
    query = {
        "view": "observations", "dimensions": [{"field": "providedModelName"}],
        "metrics": [{"measure": "totalTokens", "aggregation": "sum"}], **window(data),
    }  # fmt: skip
    reply = await asyncio.to_thread(langfuse.api.metrics.metrics, query=json.dumps(query))
    expected = grouped(data.generations, lambda g: g.model)
    assert {row["providedModelName"]: row["sum_totalTokens"] for row in reply.data} == {
        model: sum(g.input + g.output for g in generations)
        for model, generations in expected.items()
    }


async def test_each_project_counts_only_its_own_copy(
    stack: Stack, projects: tuple[Dataset, tuple[str, str]]
) -> None:
    """Both projects hold the same numbers in the same window: each key sees one copy."""
    data, other_auth = projects
    query = {
        "view": "observations", "dimensions": [{"field": "providedModelName"}],
        "metrics": [{"measure": "count", "aggregation": "count"},
                    {"measure": "totalCost", "aggregation": "sum"}], **window(data),
    }  # fmt: skip
    expected = {
        model: (len(group), pytest.approx(sum(g.input_cost + g.output_cost for g in group)))
        for model, group in grouped(data.generations, lambda g: g.model).items()
    }
    for auth in (AUTH, other_auth):
        rows = await metrics(stack, "/api/public/v2/metrics", query, auth)
        assert {r["providedModelName"]: (r["count_count"], r["sum_totalCost"]) for r in rows} == (
            expected
        )
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=other_auth) as client:
        daily = await client.get("/api/public/metrics/daily", params=window(data))
    assert daily.json()["data"] == expected_days(data.traces)


SDK3_METRICS = """
import json, sys
from langfuse import Langfuse
client = Langfuse(public_key=sys.argv[1], secret_key=sys.argv[2], host=sys.argv[3])
v1 = client.api.metrics.metrics(query=sys.argv[4]).data
v2 = client.api.metrics_v_2.metrics(query=sys.argv[4]).data
print(json.dumps({"v1": v1, "v2": v2}))
"""


def test_the_python_sdk_3_reads_v1_and_v2_metrics(stack: Stack, data: Dataset) -> None:
    query = {
        "view": "observations", "dimensions": [{"field": "name"}],
        "metrics": [{"measure": "count", "aggregation": "count"}], **window(data),
    }  # fmt: skip
    result = subprocess.run(
        [str(SDK3_PYTHON), "-c", SDK3_METRICS, PUBLIC_KEY, SECRET_KEY, stack.gateway_url,
         json.dumps(query)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    answers = json.loads(result.stdout)
    expected = {name: len(g) for name, g in grouped(data.generations, lambda g: g.name).items()}
    for version in ("v1", "v2"):
        assert {row["name"]: row["count_count"] for row in answers[version]} == expected


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/api/public/v2/metrics", "{not json", "not valid JSON"),
        ("/api/public/v2/metrics", {"view": "traces"}, "unknown view 'traces'"),
        ("/api/public/v2/metrics", {"dimensions": [{"field": "traceId"}]}, "'traceId'"),
        ("/api/public/metrics", {"dimensions": [{"field": "color"}]}, "unknown dimension 'color'"),
        ("/api/public/metrics", {"metrics": [{"measure": "joy", "aggregation": "sum"}]},
         "unknown measure 'joy'"),
        ("/api/public/metrics", {"metrics": [{"measure": "count", "aggregation": "mode"}]},
         "unknown aggregation 'mode'"),
        ("/api/public/v2/metrics", {"config": {"row_limit": 1001}}, "config.row_limit"),
        ("/api/public/v2/metrics", {"timeDimension": {"granularity": "day"},
                                    "toTimestamp": None}, "toTimestamp is required"),
    ],
)  # fmt: skip
async def test_bad_queries_are_400s_naming_the_problem(
    stack: Stack, path: str, query: Any, named: str
) -> None:
    if isinstance(query, dict):
        base = {
            "view": "observations", "metrics": [{"measure": "count", "aggregation": "count"}],
            "fromTimestamp": "2031-01-01T00:00:00Z", "toTimestamp": "2031-01-02T00:00:00Z",
        }  # fmt: skip
        query = json.dumps({**base, **query})
    async with httpx.AsyncClient(base_url=stack.gateway_url, auth=AUTH) as client:
        response = await client.get(path, params={"query": query})
        missing = await client.get(path)
    assert response.status_code == 400 and named in response.json()["message"], response.text
    assert missing.status_code == 400 and "query" in missing.json()["message"]
