"""Bench rows of the metrics API v2 (issue 11) at 10,000,000 observations (`BENCH_ONLY=metrics`):
three queries as the SDKs' `api.metrics` sends them, each timed sequentially through the
gateway, p95, over the reads10m section's project (scripts/bench_reads.py), filled to that size
first if it is not: scripts/bench_dataset.py's 30 days of SDK-shaped traces, written straight
into chDB with the query service stopped.
"""

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from scripts.bench import GATEWAY, Row
from scripts.bench_reads import OBSERVATIONS, PROJECT_ID, fill_to
from scripts.bench_support import check, p95_ms, tenant

SAMPLES = int(os.environ.get("BENCH_METRICS_SAMPLES", "40"))
WARMUP = 3


def queries(now: datetime) -> dict[str, dict[str, Any]]:
    """The three figures' queries over the last 30 days (the dataset's tags are tag-0..tag-9)."""
    window = {
        "fromTimestamp": (now - timedelta(days=30)).isoformat(timespec="milliseconds"),
        "toTimestamp": now.isoformat(timespec="milliseconds"),
    }
    return {
        "cost per model per day, 30 days": {
            "view": "observations", "dimensions": [{"field": "providedModelName"}],
            "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
            "timeDimension": {"granularity": "day"}, **window,
        },
        "p95 latency per observation name": {
            "view": "observations", "dimensions": [{"field": "name"}],
            "metrics": [{"measure": "latency", "aggregation": "p95"}], **window,
        },
        "count per trace name, tag filter": {
            "view": "observations", "dimensions": [{"field": "traceName"}],
            "metrics": [{"measure": "count", "aggregation": "count"}],
            "filters": [{"column": "tags", "type": "arrayOptions", "operator": "any of",
                         "value": ["tag-3"]}], **window,
        },
    }  # fmt: skip


async def _metrics(client: httpx.AsyncClient, query: dict[str, Any]) -> list[dict[str, Any]]:
    response = check(
        await client.get("/api/public/v2/metrics", params={"query": orjson.dumps(query).decode()})
    )
    return response.json()["data"]


async def metrics_rows(gateway: str, auth: tuple[str, str], stored: int) -> list[Row]:
    """The three queries' p95 over SAMPLES sequential requests each, after WARMUP (the first
    builds the rollups of the window's whole days)."""
    async with httpx.AsyncClient(base_url=gateway, auth=auth, timeout=120) as client:
        deadline = time.monotonic() + 120
        while (await client.get("/api/public/traces", params={"limit": 1})).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the stack did not answer within 120 s")
            await asyncio.sleep(0.5)
        rows = []
        for name, query in queries(datetime.now(UTC)).items():
            samples = []
            for index in range(WARMUP + SAMPLES):
                started = time.perf_counter()
                await _metrics(client, query)
                if index >= WARMUP:
                    samples.append(time.perf_counter() - started)
            rows.append((f"metrics v2: {name}, p95 ({stored / 1e6:.1f} M obs stored)",
                         f"{p95_ms(samples):.0f} ms", "<= 300 ms"))  # fmt: skip
    return rows


async def metrics_10m_rows() -> list[Row]:
    """The reads10m section's project, filled to OBSERVATIONS first."""
    bench = await tenant(PROJECT_ID)
    stored = await fill_to(PROJECT_ID, OBSERVATIONS)
    return await metrics_rows(GATEWAY, (bench.public_key, bench.secret_key), stored)
